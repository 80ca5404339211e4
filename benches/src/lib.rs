//! Shared helpers for the actlog benchmarks.
