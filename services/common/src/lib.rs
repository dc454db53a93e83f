//! # lfr-common: what every lfr service shares
//!
//! Each service's `main.rs` reads as its own description because the plumbing lives here, once:
//!
//! - [`config`]: one TOML file for the whole system, each service reading its section, with
//!   `LFR_...` environment overrides.
//! - [`audit`]: recording who did what, when and why on the AUDIT stream.
//! - [`anchor`]: the audit chain's head signed by the verifier and kept outside AUDIT.
//! - [`bus`]: connecting to NATS as the component's own identity (credentials, TLS, private inbox;
//!   reconnecting forever, counting disconnects), and publishing with a per-message TTL.
//! - [`topology`]: the administrator's declaration of streams, buckets and consumers from
//!   `lfr-schemas`, and the check every service makes instead.
//! - [`local_nats`]: a nats-server child process, for `lfr up` and for integration tests.
//! - [`telemetry`]: structured logs, a per-service Prometheus registry, and the HTTP endpoints
//!   `/metrics`, `/healthz` and `/readyz`.
//! - [`stage`]: the consume -> handle -> acknowledge loop of a pipeline stage, with its metrics and
//!   clean refusal of malformed messages.
//! - [`service`]: the start-up every binary shares, so each `main.rs` is a few lines.
//! - [`shutdown`]: SIGTERM/SIGINT turned into a cancellation every task can watch.
//! - [`redact`]: credentials out of camera and NATS URLs before they reach a log, an error or a
//!   metric.

pub mod anchor;
pub mod audit;
pub mod bus;
pub mod calendar;
pub mod config;
pub mod http;
pub mod local_nats;
pub mod markup;
pub mod redact;
pub mod service;
pub mod shutdown;
pub mod stage;
pub mod telemetry;
pub mod topology;

pub use shutdown::Shutdown;
