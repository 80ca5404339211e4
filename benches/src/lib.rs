//! Shared helpers for the actlog benchmarks.
//!
//! * [`generator`] is the deterministic event workload (a lighting
//!   controller's activity, by seed); [`workload`] writes it (once) to events
//!   files and loads it into prepared logs of a given size.
//! * [`query_set`] is the engine's query set prepared against such a log, run
//!   by the `queries` criterion bench and the `engine_figures` runner.
//! * [`sqlite_design`] is the SQLite design actlog replaces (schema, ingest,
//!   the query set translated to SQL, export, retention).
//! * [`versus`] holds each operation of the side-by-side comparison for both
//!   stores, shared by the `versus` runner, the `versus` criterion suite and
//!   the cross-check test; [`report`] turns the runner's figures into the
//!   README table and the SVG chart.
//! * [`slow_disk`] emulates a disk slower to sync than this one, for the
//!   `append` bench's group-commit cases.

pub mod generator;
pub mod query_set;
pub mod report;
pub mod slow_disk;
pub mod sqlite_design;
pub mod versus;
pub mod workload;
