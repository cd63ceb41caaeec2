//! Ditto's benchmarks. [`micro`] measures the elastic VM's primitives (exit round trip,
//! worker wake latency, cold start, dispatch throughput, a sleeping worker's CPU);
//! [`summary`] turns samples into medians and tails; [`report`] writes report files.

pub mod elastic;
pub mod entities;
pub mod fair;
pub mod functions;
pub mod micro;
pub mod platform;
pub mod plot;
pub mod report;
pub mod soak;
pub mod summary;
pub mod v8;
