//! The context crop of an alert's probe, from the detect replica that found the face.
//!
//! Detect makes a face's context crop (head and upper torso, bystanders blurred) only when asked
//! (`lfr_detect::context`), so that the crops of the faces that match nothing are never made. The
//! matcher asks when it raises an alert: a [`ContextRequest`] to the subject the face names, with
//! a timeout. An alert is never held back for its crop: if the replica has let the frame go, has
//! restarted or does not answer, the alert goes out without one, counted in
//! `lfr_match_context_total{outcome}` and logged (the operator still sees the probe and the
//! watch-list image).
//!
//! The crop is asked for as soon as a face matches ([`Prefetch::start`]), not when its track
//! alerts: the second matching face that corroborates the alert comes a few hundred milliseconds
//! later, and by then the crop is made. A crop that no alert takes is dropped after [`KEEP`].

use lfr_common::bus::Bus;
use lfr_schemas::{subjects, Context, ContextReply, ContextRequest, FaceRef, Message, Redacted};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long the matcher waits for a crop before raising the alert without it.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// How long a crop asked for ahead is kept for an alert to take it (a track's evidence is its
/// best matching face while the track lasts; an older one is asked for again).
pub const KEEP: Duration = Duration::from_secs(10);

type Slot = Arc<OnceCell<(Redacted, Fetched)>>;

/// Crops asked for ahead, by face: only faces that matched an entry, kept in memory for [`KEEP`]
/// at most, and taken out by the alert that shows one.
#[derive(Default)]
pub struct Prefetch {
    slots: Arc<Mutex<HashMap<FaceRef, Slot>>>,
}

impl Prefetch {
    /// Ask for the crop of a face that matched, in the background.
    pub fn start(&self, bus: &Bus, face: &FaceRef, context: &Context) {
        if matches!(context, Context::Crop(_)) {
            return;
        }
        let asked = tokio::time::Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.contains_key(face) {
                return;
            }
            let slot = Slot::default();
            slots.insert(face.clone(), slot.clone());
            slot
        };
        let (bus, face, context) = (bus.clone(), face.clone(), context.clone());
        let slots = self.slots.clone();
        tokio::spawn(async move {
            slot.get_or_init(|| fetch(&bus, &face, &context)).await;
            // Not taken by an alert within KEEP of asking: let it go.
            tokio::time::sleep_until(asked + KEEP).await;
            let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.get(&face).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&face);
            }
        });
    }

    /// The crop of an alert's probe: the one asked for ahead (waiting for it if it is still on
    /// its way), or asked for now.
    pub async fn take(&self, bus: &Bus, face: &FaceRef, context: &Context) -> (Redacted, Fetched) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(face)
            .unwrap_or_default();
        slot.get_or_init(|| fetch(bus, face, context)).await.clone()
    }
}

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
