//! # lfr-loadtest: how many cameras a set of nodes can carry, and where the time goes
//!
//! Simulated cameras publish synthetic frames (real face photos composited on backgrounds, some
//! with watch-listed people walking past at known times) to the real pipeline over NATS, and the
//! run measures, step by step: frames per second sustained, messages lost per stage, latency from
//! capture to each stage (p50/p95/p99), alerts expected against raised, and CPU and memory per
//! process. Ramp mode adds cameras until a step misses the budget (p99 capture-to-decision and
//! capture-to-alert under 1 s, no watch-listed person lost). An in-process baseline runs the same
//! frames through the same code without the bus, so the report can price the architecture.
//!
//! Modules, in the order a run uses them: [`scene`] draws the frames, [`schedule`] places the
//! passes, [`system`] starts (or finds) NATS and the services, [`deployment`] makes the watch list,
//! [`cameras`] publish, [`observe`] times messages on the bus, [`step`] and [`ramp`] run and judge
//! the steps, [`baseline`] is the in-process comparison, [`report`] writes the results.
//!
//! Safety: traffic goes only to the NATS server it started on loopback, or to the one URL the
//! operator gave; every step is bounded in frames, every run in minutes, and it stops by itself.

pub mod baseline;
pub mod cameras;
pub mod cli;
pub mod deployment;
pub mod faults;
pub mod live;
pub mod observe;
pub mod ramp;
pub mod reference;
pub mod report;
pub mod results;
pub mod scene;
pub mod schedule;
pub mod score;
pub mod scrape;
pub mod stats;
pub mod step;
pub mod system;
pub mod usage;
