//! # lfr-watchlist: a bespoke, authorised, verified watch list per deployment
//!
//! The DPIA's rules for watch lists live here, once, for the CLI, the match service and purge:
//!
//! - [`deployment`]: a deployment's record and lifecycle (draft, authorised, active, ended) and the
//!   gates between the states: authorisation, a review of the list no more than 48 hours before
//!   the deployment starts, and a list that is exactly the one reviewed.
//! - [`enrol`]: turning custody images and their manifest into watch-list entries, refusing (and
//!   listing, with the reason) any image that would make a poor reference.
//! - [`list`]: the watch list itself and its digest: what the matcher loads must hash to what was
//!   authorised.
//! - [`store`]: deployments, lists and load reports in JetStream; secure erasure on wipe.

pub mod deployment;
pub mod enrol;
pub mod list;
pub mod store;
