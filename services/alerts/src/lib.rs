//! # lfr-alerts: what happened to every alert, from the record
//!
//! ALERTS is the record of alerts: candidate alerts raised by the matcher, operators' decisions,
//! officers' outcomes (the latest counts: later ones correct earlier ones), holds and their
//! releases, and erasures, appended in order. [`book`] folds that record into the current state
//! of each alert; [`feed`] keeps a book up to date by following the stream; [`holds`] places and
//! releases holds (complaint, access request, investigation; the arrest hold's release) for any
//! front end; [`accuracy`] counts false alerts and [`walks`] scores blue-list walk tests (the live
//! false-alert and miss rates). The console (dispatch) and the purge service each hold a book, so
//! they agree on what an alert is, whether a hold keeps it, and when it must be erased.

pub mod accuracy;
pub mod book;
pub mod feed;
pub mod holds;
pub mod walks;

pub use book::{Book, Change, Entry, Hold};
