//! # lfr-alerts: what happened to every alert, from the record
//!
//! ALERTS is the record of alerts: candidate alerts raised by the matcher, operators' decisions,
//! officers' outcomes, legal-hold releases and erasures, appended in order. [`book`] folds that
//! record into the current state of each alert; [`feed`] keeps a book up to date by following the
//! stream. The console (dispatch) and the purge service each hold a book, so they agree on what
//! an alert is, whether it is under legal hold, and when it must be erased.

pub mod book;
pub mod feed;

pub use book::{Book, Change, Entry};
