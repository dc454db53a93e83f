//! # lfr-watchlist: a bespoke, authorised, verified watch list per deployment
//!
//! The DPIA's rules for watch lists live here, once, for the CLI, the match service and purge:
//!
//! - [`deployment`]: a deployment's record and lifecycle (draft, authorised, active, ended) and the
//!   gates between the states: authorisation, a review of the list no more than 48 hours before
//!   the deployment starts, and a list that is exactly the one reviewed.
//! - [`coverage`]: which cameras a live, verified deployment covers now (and in which phase: live
//!   or set-up), for ingest's gated capture, detect's and embed's second line, and officers' feeds.
//! - [`gate`]: that second line as a stage wrapper: a frame or face of an uncovered camera is
//!   acknowledged unread, and counted.
//! - [`enrol`]: turning custody images and their manifest into watch-list entries, refusing (and
//!   listing, with the reason) any image that would make a poor reference.
//! - [`list`]: the watch list itself and its digest: what the matcher loads must hash to what was
//!   authorised.
//! - [`store`]: deployments, lists and load reports in JetStream; secure erasure on wipe.
//! - [`lifecycle`]: the steps (create, enrol, authorise, review, activate, end, show) as one
//!   async method each, with the gate checks and the audit events, for every front end.
//! - [`api`]: the lifecycle as a JSON HTTP API (an axum router) for the web console.
//! - [`archive`]: unpacking an uploaded watch-list archive safely.
//! - [`time`]: the one way operators write times (`2026-11-28T12:00:00Z`).

pub mod api;
pub mod archive;
pub mod coverage;
pub mod deployment;
pub mod enrol;
pub mod gate;
pub mod lifecycle;
pub mod list;
pub mod store;
pub mod time;
