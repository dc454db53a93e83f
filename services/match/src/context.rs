//! The context crop of an alert's probe, from the detect replica that found the face.
//!
//! Detect makes a face's context crop (head and upper torso, bystanders blurred) only when asked
//! (`lfr_detect::context`), so that the crops of the faces that match nothing are never made. The
//! matcher asks when it raises an alert: a [`ContextRequest`] to the subject the face names, with
//! a timeout. An alert is never held back for its crop: if the replica has let the frame go, has
//! restarted or does not answer, the alert goes out without one, counted in
//! `lfr_match_context_total{outcome}` and logged (the operator still sees the probe and the
//! watch-list image).

use lfr_common::bus::Bus;
use lfr_schemas::{subjects, Context, ContextReply, ContextRequest, FaceRef, Message, Redacted};
use std::time::Duration;

/// How long the matcher waits for a crop before raising the alert without it.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// What became of an alert's context crop (the metric's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// It came with the face.
    WithFace,
    /// Detect made it on request.
    Made,
    /// Detect no longer held the frame.
    Gone,
    /// Detect could not make it, or said something else.
    Failed,
    /// No answer within [`TIMEOUT`] (no replica listens on the subject any more).
    Unanswered,
    /// The face named a subject that is not a context subject: not asked.
    BadSubject,
}

impl Fetched {
    pub const ALL: [Fetched; 6] = [
        Fetched::WithFace,
        Fetched::Made,
        Fetched::Gone,
        Fetched::Failed,
        Fetched::Unanswered,
        Fetched::BadSubject,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Fetched::WithFace => "with_face",
            Fetched::Made => "made",
            Fetched::Gone => "gone",
            Fetched::Failed => "failed",
            Fetched::Unanswered => "unanswered",
            Fetched::BadSubject => "bad_subject",
        }
    }
}

/// The crop of `face` (empty when there is none), and how it was had.
pub async fn fetch(bus: &Bus, face: &FaceRef, context: &Context) -> (Redacted, Fetched) {
    let subject = match context {
        Context::Crop(jpeg) => return (jpeg.clone(), Fetched::WithFace),
        Context::OnRequest { subject } => subject,
    };
    if !is_context_subject(subject) {
        return (Redacted::default(), Fetched::BadSubject);
    }
    let request = ContextRequest { face: face.clone() }.encode();
    let asked =
        tokio::time::timeout(TIMEOUT, bus.client.request(subject.clone(), request.into())).await;
    let reply = match asked {
        Ok(Ok(message)) => ContextReply::decode(&message.payload),
        // No responders, or no answer in time: the replica is gone.
        Ok(Err(_)) | Err(_) => return (Redacted::default(), Fetched::Unanswered),
    };
    match reply {
        Ok(ContextReply::Crop(jpeg)) => (jpeg, Fetched::Made),
        Ok(ContextReply::Gone) => (Redacted::default(), Fetched::Gone),
        Ok(ContextReply::Failed(_)) | Err(_) => (Redacted::default(), Fetched::Failed),
    }
}

/// `lfr.context.<one token>`, as [`subjects::context`] makes them: a face cannot make the
/// matcher send its request anywhere else (the bus would refuse it too).
fn is_context_subject(subject: &str) -> bool {
    subject
        .strip_prefix("lfr.context.")
        .is_some_and(|replica| subjects::validate_token("replica", replica).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_context_subject_is_asked() {
        assert!(is_context_subject("lfr.context.AbC123xyz"));
        for bad in [
            "lfr.purge.run",
            "lfr.context.",
            "lfr.context.a.b",
            "lfr.context.*",
            "lfr.context.>",
            "other.lfr.context.x",
        ] {
            assert!(!is_context_subject(bad), "{bad}");
        }
    }
}
