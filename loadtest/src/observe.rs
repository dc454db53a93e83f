//! Watching the load test's own messages go by, for exact per-message latencies.
//!
//! Plain (core NATS) subscriptions to the load test's cameras' face and template subjects, and to
//! its deployment's alerts, receive a copy of each message as it is published: the work queues are
//! not consumed, nothing is acknowledged, and the stages see no difference. Only the timestamps
//! are kept; the images in the copies are dropped at once. Only the load test's own cameras are
//! subscribed, so on a shared system no real camera's faces ever reach this process.

use crate::deployment::camera;
use futures::StreamExt;
use lfr_schemas::{CandidateAlert, DetectedFace, Embedding, Message, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One alert as the scoring needs it.
#[derive(Debug, Clone)]
pub struct SeenAlert {
    pub camera: String,
    /// Capture time of the frame the alert shows (the best-matching frame of the track).
    pub captured_at: Timestamp,
    /// When the alert went by on the bus: stored on ALERTS, there for the console.
    pub stored_at: Timestamp,
    pub entry_ref: String,
}

/// What went by since the last [`Observer::take`].
#[derive(Debug, Default)]
pub struct Seen {
    /// Capture to faces published, per face, seconds.
    pub detect: Vec<f64>,
    /// Capture to template published, per face.
    pub embed: Vec<f64>,
    /// Face published to template published, per face (joined on camera, frame and face index).
    pub embed_own: Vec<f64>,
    pub alerts: Vec<SeenAlert>,
    /// Decode failures (should be none).
    pub undecodable: u64,
}

#[derive(Default)]
struct State {
    seen: Seen,
    /// Detection time of faces whose template has not gone by yet.
    detected: HashMap<(String, u64, u16), Timestamp>,
}

pub struct Observer {
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Observer {
    pub async fn start(
        client: &async_nats::Client,
        cameras: usize,
        deployment: &str,
    ) -> anyhow::Result<Observer> {
        let state = Arc::new(Mutex::new(State::default()));
        let mut tasks = Vec::new();
        for c in 0..cameras {
            let id = camera(c);
            let faces = client.subscribe(lfr_schemas::subjects::faces(&id)).await?;
            let templates = client
                .subscribe(lfr_schemas::subjects::embeddings(&id))
                .await?;
            tasks.push(tokio::spawn(watch(faces, state.clone(), on_face)));
            tasks.push(tokio::spawn(watch(templates, state.clone(), on_template)));
        }
        // Its list is blue: blue-list alerts are all it raises and all its identity may watch.
        let alerts = client
            .subscribe(lfr_schemas::subjects::blue_alerts(deployment))
            .await?;
        tasks.push(tokio::spawn(watch(alerts, state.clone(), on_alert)));
        // Subscriptions are registered with the server before the first frame is published.
        client.flush().await?;
        Ok(Observer { state, tasks })
    }

    /// Everything seen since the last call.
    pub fn take(&self) -> Seen {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.detected.clear();
        std::mem::take(&mut s.seen)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn watch(
    mut sub: async_nats::Subscriber,
    state: Arc<Mutex<State>>,
    on: fn(&mut State, &async_nats::Message, Timestamp),
) {
    while let Some(message) = sub.next().await {
        let now = Timestamp::now();
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        on(&mut s, &message, now);
    }
}

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    from.until(to).as_secs_f64()
}

fn on_face(s: &mut State, message: &async_nats::Message, _now: Timestamp) {
    let Ok(face) = DetectedFace::decode(&message.payload) else {
        s.seen.undecodable += 1;
        return;
    };
    let f = &face.face.frame;
    s.seen.detect.push(secs(f.captured_at, face.detected_at));
    s.detected
        .insert((f.camera.clone(), f.seq, face.face.index), face.detected_at);
}

fn on_template(s: &mut State, message: &async_nats::Message, _now: Timestamp) {
    let Ok(t) = Embedding::decode(&message.payload) else {
        s.seen.undecodable += 1;
        return;
    };
    let f = &t.face.frame;
    s.seen.embed.push(secs(f.captured_at, t.embedded_at));
    if let Some(detected) = s.detected.remove(&(f.camera.clone(), f.seq, t.face.index)) {
        s.seen.embed_own.push(secs(detected, t.embedded_at));
    }
}

fn on_alert(s: &mut State, message: &async_nats::Message, now: Timestamp) {
    let subject = message.subject.as_str();
    if !(subject.ends_with(".candidate") || subject.ends_with(".blue")) {
        return;
    }
    let Ok(alert) = CandidateAlert::decode(&message.payload) else {
        s.seen.undecodable += 1;
        return;
    };
    s.seen.alerts.push(SeenAlert {
        camera: alert.probe.frame.camera.clone(),
        captured_at: alert.probe.frame.captured_at,
        stored_at: now,
        entry_ref: alert.entry_ref.clone(),
    });
}
