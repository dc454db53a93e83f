//! `lfr eval`: measuring how a model and threshold would behave before a deployment.
//!
//! - [`run`]: photos in, gallery and probes through the services' own pipeline, report out.
//! - [`metrics`]: open-set identification and verification figures (FPIR, FNIR, TAR at FAR) and
//!   the threshold that keeps to a target, as NIST FRVT and ISO/IEC 19795-1 define them.
//! - [`det_plot`]: the DET curve of those figures as a standalone SVG.
//! - [`calibration`]: the 1-in-1,000 threshold written into the model manifest, as every
//!   deployment's default.

pub mod calibration;
pub mod det_plot;
pub mod metrics;
pub mod run;
