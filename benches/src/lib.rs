//! Shared helpers for the actlog benchmarks.
//!
//! * [`workload`] generates (once) the shared deterministic event workload and
//!   loads it into prepared logs of a given size.
//! * [`query_set`] is the engine's query set prepared against such a log, run
//!   by the `queries` criterion bench and the `engine_figures` runner.

pub mod query_set;
pub mod workload;
