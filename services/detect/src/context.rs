//! Context crops on request: made only for the faces that match.
//!
//! An alert shows the probe's head and upper torso with every other face blurred
//! ([`lfr_vision::redact::blur_bystanders`]), and that crop costs as much as a third of a frame's
//! whole search (the crop is searched again as it will be published). Almost no face makes an
//! alert, so by default (`context = "on_request"`) detect does not make the crop with the face.
//! It publishes the face with [`Context::OnRequest`], naming this replica's own subject
//! ([`subjects::context`]), and holds the frame's JPEG with the face's detections in memory for
//! `context_hold` ([`HeldFaces`]). When the matcher has a hit it asks ([`ContextRequest`]) and this
//! replica makes the crop, exactly as it would have with the face, and answers ([`ContextReply`]).
//!
//! So the crops of faces that match nothing are never made, which is less work and less personal
//! data in flight. What is held is what the frame stream held anyway (the JPEG), in this process's
//! memory only, for seconds, bounded in bytes; a frame older than `context_hold`, or held by a
//! replica that has since restarted, is [`ContextReply::Gone`], and the alert goes out without its
//! crop rather than not at all (the matcher counts it).

use crate::lock;
use crate::metrics::DetectMetrics;
use lfr_common::bus::Bus;
use lfr_common::Shutdown;
use lfr_schemas::{ContextReply, ContextRequest, FaceRef, Message};
use lfr_vision::detector::Detection;
use lfr_vision::faces::FaceFinder;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a face's context crop is made (`[detect] context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// Only when the matcher asks for it: the faces that match nothing never get one.
    #[default]
    OnRequest,
    /// With every face, before it is published (what detect did before: costs a crop search per
    /// face).
    WithFace,
}

/// One published face, as needed to make its crop later: the frame's JPEG (shared by the frame's
/// faces), the face's detection and every detection near it (the bystanders to blur), in the
/// coordinates of the frame as decoded for the detector.
pub struct HeldFace {
    pub jpeg: Arc<Vec<u8>>,
    pub detection: Detection,
    pub everyone: Vec<Detection>,
}

/// The faces published lately, by face, oldest first; older than `hold` or beyond `max_bytes` of
/// JPEG, they are let go.
pub struct HeldFaces {
    hold: Duration,
    max_bytes: usize,
    bytes: usize,
    order: VecDeque<(Instant, FaceRef)>,
    faces: HashMap<FaceRef, HeldFace>,
}

impl HeldFaces {
    pub fn new(hold: Duration, max_bytes: usize) -> HeldFaces {
        HeldFaces {
            hold,
            max_bytes,
            bytes: 0,
            order: VecDeque::new(),
            faces: HashMap::new(),
        }
    }

    /// Hold a face (its frame's JPEG is counted once per face: a frame's faces share it, so the
    /// bound is conservative).
    pub fn hold(&mut self, face: FaceRef, held: HeldFace, now: Instant) {
        self.bytes += held.jpeg.len();
        if let Some(old) = self.faces.insert(face.clone(), held) {
            self.bytes -= old.jpeg.len();
        }
        self.order.push_back((now, face));
        self.let_go(now);
    }

    /// The face, if it is still held.
    pub fn get(&mut self, face: &FaceRef, now: Instant) -> Option<&HeldFace> {
        self.let_go(now);
        self.faces.get(face)
    }

    pub fn len(&self) -> usize {
        self.faces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    fn let_go(&mut self, now: Instant) {
        while let Some((at, face)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) > self.hold;
            if !expired && self.bytes <= self.max_bytes {
                break;
            }
            if let Some(held) = self.faces.remove(face) {
                self.bytes -= held.jpeg.len();
            }
            self.order.pop_front();
        }
    }
}

/// What answers this replica's context requests.
pub struct Responder {
    pub held: Arc<Mutex<HeldFaces>>,
    /// The crop is searched again with it (not a worker's: a request never waits for a frame).
    pub finder: Arc<Mutex<FaceFinder>>,
    pub input_side: u32,
    pub metrics: DetectMetrics,
}

impl Responder {
    /// Answer the requests on `subject` until shutdown. The subscription is made before this
    /// returns, so no face naming `subject` is published before someone listens on it.
    pub async fn serve(
        self: Arc<Self>,
        bus: &Bus,
        subject: String,
        shutdown: Shutdown,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let mut requests = bus.client.subscribe(subject).await?;
        let client = bus.client.clone();
        Ok(tokio::spawn(async move {
            use futures::StreamExt;
            loop {
                let request = tokio::select! {
                    _ = shutdown.requested() => break,
                    next = requests.next() => match next {
                        Some(request) => request,
                        None => break,
                    },
                };
                let Some(reply_to) = request.reply else {
                    self.metrics.context_request("no_reply_subject");
                    continue;
                };
                let responder = self.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let (reply, outcome) = responder.answer(&request.payload).await;
                    responder.metrics.context_request(outcome);
                    if let Err(e) = client.publish(reply_to, reply.encode().into()).await {
                        tracing::warn!(error = %e, "context reply not sent");
                    }
                });
            }
        }))
    }

    /// The reply to one request, and its outcome for the metric.
    async fn answer(self: &Arc<Self>, payload: &[u8]) -> (ContextReply, &'static str) {
        let request = match ContextRequest::decode(payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(reason = e.reason(), "malformed context request refused");
                return (
                    ContextReply::Failed("malformed_request".into()),
                    "malformed",
                );
            }
        };
        let Some((jpeg, detection, everyone)) = lock(&self.held)
            .get(&request.face, Instant::now())
            .map(|h| (h.jpeg.clone(), h.detection.clone(), h.everyone.clone()))
        else {
            return (ContextReply::Gone, "gone");
        };
        let responder = self.clone();
        let made = tokio::task::spawn_blocking(move || {
            let (image, _) = lfr_vision::image::decode_jpeg(&jpeg, responder.input_side)?;
            lock(&responder.finder).context(&image, &detection, &everyone)
        })
        .await;
        match made {
            Ok(Ok(crop)) => {
                self.metrics.context_made(&crop.bystanders);
                (ContextReply::Crop(crop.jpeg.into()), "made")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "context crop not made");
                (ContextReply::Failed("crop_failed".into()), "failed")
            }
            Err(e) => {
                tracing::error!(error = %e, "context crop task failed");
                (ContextReply::Failed("crop_failed".into()), "failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfr_schemas::{FrameRef, Timestamp};

    fn face(seq: u64) -> FaceRef {
        FaceRef {
            frame: FrameRef {
                camera: "gate-1".into(),
                epoch: Timestamp(1),
                seq,
                captured_at: Timestamp(2),
            },
            index: 0,
        }
    }

    fn held(bytes: usize) -> HeldFace {
        HeldFace {
            jpeg: Arc::new(vec![0; bytes]),
            detection: Detection {
                score: 0.99,
                bbox: [0.0, 0.0, 10.0, 10.0],
                landmarks: [[0.0; 2]; 5],
            },
            everyone: Vec::new(),
        }
    }

    #[test]
    fn faces_are_let_go_after_the_hold() {
        let mut faces = HeldFaces::new(Duration::from_secs(10), usize::MAX);
        let t0 = Instant::now();
        faces.hold(face(1), held(100), t0);
        faces.hold(face(2), held(100), t0 + Duration::from_secs(6));
        assert!(faces.get(&face(1), t0 + Duration::from_secs(10)).is_some());
        assert!(faces.get(&face(1), t0 + Duration::from_secs(11)).is_none());
        assert!(faces.get(&face(2), t0 + Duration::from_secs(11)).is_some());
        assert!(faces.get(&face(2), t0 + Duration::from_secs(17)).is_none());
        assert!(faces.is_empty());
    }

    #[test]
    fn the_oldest_faces_are_let_go_beyond_the_byte_bound() {
        let mut faces = HeldFaces::new(Duration::from_secs(10), 250);
        let t0 = Instant::now();
        for seq in 1..=3 {
            faces.hold(face(seq), held(100), t0);
        }
        assert_eq!(faces.len(), 2);
        assert!(faces.get(&face(1), t0).is_none());
        assert!(faces.get(&face(3), t0).is_some());
    }
}
