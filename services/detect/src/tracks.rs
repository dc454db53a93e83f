//! Track-aware detection: what detect does with each frame of a camera, given what it has seen.
//!
//! A camera sees the same people in frame after frame. Searching every frame in full, and
//! publishing every face of every frame, spends most of the box's CPU on faces the matcher has
//! just seen. So detect keeps, per camera, the **tracks** of the faces it found (geometry only: a
//! box, a velocity and times; never pixels or templates), and plans each frame:
//!
//! - **Full**: search the whole frame. At most every `full_every` of capture time per camera, and
//!   at once when a tracked face could not be found again (it left, or turned away) so that new
//!   faces are never missed for long.
//! - **Regions**: between full searches, only the tracks that are *due* a face are searched, each
//!   in a region around where its box is predicted to be (constant velocity): a fraction of a
//!   frame's cost.
//! - **Skip**: no track is due and no full search is: the frame is acknowledged unread (not even
//!   decoded).
//!
//! A track is **due** when it has published fewer than `first_faces` (2) faces (a new person's
//! first two faces go out back to back, so the matcher can corroborate them at once) or when
//! `1 / faces_per_second` has passed since its last published face (give or take a quarter of
//! that, so that a face a full search found is taken rather than searched for again a frame
//! later). So the embedder and matcher get about `faces_per_second` faces per person per second at
//! most, and at least one per track. A face refused by the quality gate (too small, turned,
//! blurred) takes its track's turn too: the person is looked at again one interval later, not
//! searched for around every frame while they are too far away.
//!
//! Faces found in a full search are joined to tracks by overlap with their predicted boxes; a
//! face that overlaps none starts a track, and a track that no face joined has ended. Time is the frames' capture time, so a backlog is
//! planned as it was captured. Tracks end `track_gap` after they were last seen; a camera that
//! sends nothing for [`CAMERA_IDLE`] is forgotten.

use lfr_schemas::Timestamp;
use lfr_vision::detector::iou;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// `[detect.tracking]`: how often a camera's frame is searched in full, and how many faces of one
/// person go on to be embedded. `full_every = 0` and `faces_per_second = 0` search every frame
/// and publish every face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tracking {
    /// Capture time between two full searches of one camera's frames (less a quarter: a frame a
    /// little early is searched rather than the next).
    #[serde(with = "lfr_common::config::secs")]
    pub full_every: Duration,
    /// Most faces of one track published per second of capture time (0: every face)...
    pub faces_per_second: f32,
    /// ...after its first `first_faces`, which go out back to back (the next frames), so that the
    /// matcher can corroborate a new person at once rather than a whole interval later.
    pub first_faces: u32,
    /// A track not seen for this long has ended.
    #[serde(with = "lfr_common::config::secs")]
    pub track_gap: Duration,
    /// Least overlap (intersection over union) of a face with a track's predicted box to continue
    /// that track.
    pub track_iou: f32,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            full_every: Duration::from_millis(300),
            faces_per_second: 3.0,
            first_faces: 2,
            track_gap: Duration::from_secs(1),
            track_iou: 0.2,
        }
    }
}

impl Tracking {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.faces_per_second.is_finite() && self.faces_per_second >= 0.0,
            "detect.tracking.faces_per_second must be 0 (every face) or more, not {}",
            self.faces_per_second
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.track_iou),
            "detect.tracking.track_iou must be in [0, 1), not {}",
            self.track_iou
        );
        anyhow::ensure!(
            self.track_gap >= self.full_every,
            "detect.tracking.track_gap ({:?}) must be at least full_every ({:?}): a track must \
             live until the next full search can find it again",
            self.track_gap,
            self.full_every
        );
        Ok(())
    }

    /// Whether `track` may publish a face captured `at`: one of its first `first_faces`, or from
    /// a quarter of an interval before `next_publish` (frames come at whole frame intervals, and
    /// a face a full search found a little early is worth more than a region search for it a
    /// frame later).
    fn due(&self, track: &Track, at: Timestamp) -> bool {
        let early = self.publish_interval() / 4;
        track.turns < self.first_faces
            || track
                .next_publish
                .is_none_or(|next| later(at, early) >= next)
    }

    fn publish_interval(&self) -> Duration {
        if self.faces_per_second > 0.0 {
            Duration::from_secs_f32(1.0 / self.faces_per_second)
        } else {
            Duration::ZERO
        }
    }
}

/// A camera that sent nothing for this long is forgotten with its tracks.
pub const CAMERA_IDLE: Duration = Duration::from_secs(60);

/// A face box `[x1, y1, x2, y2]` in the pixels of the frame as decoded.
pub type Box4 = [f32; 4];

/// Which track, within one camera.
pub type TrackId = u64;

/// What to do with one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Search the whole frame.
    Full,
    /// Search only around these tracks' predicted boxes.
    Regions(Vec<(TrackId, Box4)>),
    /// Nothing to search: acknowledge the frame unread.
    Skip,
}

impl Plan {
    /// The plan's name, for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Plan::Full => "full",
            Plan::Regions(_) => "regions",
            Plan::Skip => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: TrackId,
    bbox: Box4,
    /// Pixels per second of the box's centre, from the last two sightings.
    velocity: [f32; 2],
    last_seen: Timestamp,
    /// When the track may publish again; `None` until its first face is published.
    next_publish: Option<Timestamp>,
    /// Faces published (or refused by the quality gate) so far.
    turns: u32,
}

impl Track {
    fn predicted(&self, at: Timestamp) -> Box4 {
        let dt = self.last_seen.until(at).as_secs_f32();
        let [vx, vy] = self.velocity;
        let [x1, y1, x2, y2] = self.bbox;
        [x1 + vx * dt, y1 + vy * dt, x2 + vx * dt, y2 + vy * dt]
    }

    fn seen(&mut self, bbox: Box4, at: Timestamp) {
        let dt = self.last_seen.until(at).as_secs_f32();
        if dt > 0.0 {
            let centre = |b: &Box4| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0];
            let ([ax, ay], [bx, by]) = (centre(&self.bbox), centre(&bbox));
            self.velocity = [(bx - ax) / dt, (by - ay) / dt];
        }
        self.bbox = bbox;
        self.last_seen = self.last_seen.max(at);
    }
}

#[derive(Debug, Default)]
struct Camera {
    tracks: Vec<Track>,
    last_full: Option<Timestamp>,
    /// A tracked face was not found again: search the next frame in full.
    search_again: bool,
    last_frame: Timestamp,
    next_id: TrackId,
}

/// The tracks of every camera this replica sees.
#[derive(Debug)]
pub struct Tracker {
    rule: Tracking,
    cameras: HashMap<String, Camera>,
}

impl Tracker {
    pub fn new(rule: Tracking) -> Tracker {
        Tracker {
            rule,
            cameras: HashMap::new(),
        }
    }

    /// Cameras with state kept.
    pub fn cameras(&self) -> usize {
        self.cameras.len()
    }

    /// Tracks alive across all cameras.
    pub fn tracks(&self) -> usize {
        self.cameras.values().map(|c| c.tracks.len()).sum()
    }

    /// What to do with `camera`'s frame captured `at`. Ends tracks past their gap and forgets
    /// idle cameras first.
    pub fn plan(&mut self, camera: &str, at: Timestamp) -> Plan {
        self.cameras
            .retain(|name, c| name == camera || c.last_frame.until(at) < CAMERA_IDLE);
        let rule = &self.rule;
        let (gap, full_every) = (rule.track_gap, rule.full_every);
        let cam = self.cameras.entry(camera.to_owned()).or_default();
        cam.last_frame = cam.last_frame.max(at);
        cam.tracks.retain(|t| t.last_seen.until(at) < gap);
        // A quarter early counts: frames come at whole intervals, with jitter, and a full search
        // a frame late would leave the tracks due in between to costlier region searches.
        let full_due = cam
            .last_full
            .is_none_or(|last| at >= last && last.until(at) >= full_every - full_every / 4);
        if full_due || cam.search_again {
            return Plan::Full;
        }
        let due: Vec<(TrackId, Box4)> = cam
            .tracks
            .iter()
            .filter(|t| rule.due(t, at))
            .map(|t| (t.id, t.predicted(at)))
            .collect();
        if due.is_empty() {
            Plan::Skip
        } else {
            Plan::Regions(due)
        }
    }

    /// The faces a full search of `camera`'s frame captured `at` found: each is joined to the
    /// track whose predicted box it overlaps most (or starts one). Returns, per face, its track
    /// and whether that track is due a face.
    pub fn searched(
        &mut self,
        camera: &str,
        at: Timestamp,
        faces: &[Box4],
    ) -> Vec<(TrackId, bool)> {
        let rule = &self.rule;
        let cam = self.cameras.entry(camera.to_owned()).or_default();
        cam.last_full = Some(cam.last_full.map_or(at, |last| last.max(at)));
        cam.search_again = false;
        let mut taken: Vec<TrackId> = Vec::new();
        let mut out = Vec::with_capacity(faces.len());
        for bbox in faces {
            let best = cam
                .tracks
                .iter()
                .filter(|t| !taken.contains(&t.id))
                .map(|t| (t.id, iou(&t.predicted(at), bbox)))
                .filter(|(_, overlap)| *overlap >= rule.track_iou)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(id, _)| id);
            let track = match best {
                Some(id) => {
                    let track = cam.tracks.iter_mut().find(|t| t.id == id).expect("found");
                    track.seen(*bbox, at);
                    track
                }
                None => {
                    cam.tracks.push(Track {
                        id: cam.next_id,
                        bbox: *bbox,
                        velocity: [0.0, 0.0],
                        last_seen: at,
                        next_publish: None,
                        turns: 0,
                    });
                    cam.next_id += 1;
                    cam.tracks.last_mut().expect("just pushed")
                }
            };
            taken.push(track.id);
            out.push((track.id, rule.due(track, at)));
        }
        // A full search is the truth: a track it did not find has ended (the person left, turned
        // away or was hidden), rather than be searched for around where it might be.
        cam.tracks.retain(|t| taken.contains(&t.id));
        out
    }

    /// A region search for `track` found its face again at `bbox`, or (`None`) did not: then the
    /// next frame is searched in full.
    pub fn refound(&mut self, camera: &str, track: TrackId, at: Timestamp, bbox: Option<Box4>) {
        let Some(cam) = self.cameras.get_mut(camera) else {
            return;
        };
        match (bbox, cam.tracks.iter_mut().find(|t| t.id == track)) {
            (Some(bbox), Some(t)) => t.seen(bbox, at),
            _ => cam.search_again = true,
        }
    }

    /// `track`'s face captured `at` was published, or refused by the quality gate: it is next
    /// due `1 / faces_per_second` later.
    pub fn took_turn(&mut self, camera: &str, track: TrackId, at: Timestamp) {
        let interval = self.rule.publish_interval();
        let first = self.rule.first_faces;
        if let Some(t) = self
            .cameras
            .get_mut(camera)
            .and_then(|c| c.tracks.iter_mut().find(|t| t.id == track))
        {
            // The first faces' burst keeps the first face's cadence, which full searches share.
            if t.next_publish.is_none() || t.turns >= first {
                t.next_publish = Some(later(at, interval));
            }
            t.turns += 1;
        }
    }
}

fn later(at: Timestamp, by: Duration) -> Timestamp {
    Timestamp(at.0 + by.as_nanos() as u64)
}

/// Where to search for a tracked face: its predicted box grown by one box size on every side (the
/// face may have moved or grown), and down to the bottom of its context crop, so that every
/// bystander who could appear in the crop is found and blurred.
pub fn region_around(bbox: &Box4) -> Box4 {
    let (w, h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
    [
        bbox[0] - 1.5 * w,
        bbox[1] - 1.0 * h,
        bbox[2] + 1.5 * w,
        bbox[3] + 3.0 * h,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp(1_000_000 * MS + ms * MS)
    }

    fn face(x: f32) -> Box4 {
        [x, 100.0, x + 80.0, 180.0]
    }

    /// The default rule but one first face: the tests of the rate.
    fn tracker() -> Tracker {
        at_rate(Tracking::default().faces_per_second)
    }

    /// [`tracker`] at `faces_per_second`.
    fn at_rate(faces_per_second: f32) -> Tracker {
        Tracker::new(Tracking {
            faces_per_second,
            first_faces: 1,
            ..Tracking::default()
        })
    }

    #[test]
    fn first_frame_is_searched_in_full_and_its_faces_are_due() {
        let mut t = tracker();
        assert_eq!(t.plan("cam", at(0)), Plan::Full);
        let found = t.searched("cam", at(0), &[face(0.0), face(300.0)]);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, due)| *due));
        assert_ne!(found[0].0, found[1].0);
    }

    #[test]
    fn frames_between_full_searches_are_skipped_while_no_track_is_due() {
        let mut t = tracker();
        t.plan("cam", at(0));
        let found = t.searched("cam", at(0), &[face(0.0)]);
        t.took_turn("cam", found[0].0, at(0));
        // 10 fps: the next two frames come before full_every (300 ms), and the face is not due
        // again before 333 ms less a quarter of that (250 ms): the next full search takes it.
        assert_eq!(t.plan("cam", at(100)), Plan::Skip);
        assert_eq!(t.plan("cam", at(200)), Plan::Skip);
        // A frame a hair early (capture times carry jitter) is still the full search.
        assert_eq!(t.plan("cam", Timestamp(at(300).0 - 1_000)), Plan::Full);
        let (_, due) = t.searched("cam", at(300), &[face(0.0)])[0];
        assert!(due, "a full search 33 ms early takes the face");
    }

    #[test]
    fn a_track_due_between_full_searches_is_searched_in_its_region() {
        let mut t = at_rate(5.0);
        t.plan("cam", at(0));
        let id = t.searched("cam", at(0), &[face(0.0)])[0].0;
        t.took_turn("cam", id, at(0));
        assert_eq!(t.plan("cam", at(100)), Plan::Skip);
        match t.plan("cam", at(200)) {
            Plan::Regions(due) => assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), [id]),
            other => panic!("expected a region search, got {other:?}"),
        }
        t.refound("cam", id, at(200), Some(face(24.0)));
        t.took_turn("cam", id, at(200));
        assert_eq!(t.plan("cam", at(300)), Plan::Full);
    }

    #[test]
    fn a_face_not_found_again_makes_the_next_frame_a_full_search() {
        let mut t = at_rate(10.0);
        t.plan("cam", at(0));
        let id = t.searched("cam", at(0), &[face(0.0)])[0].0;
        t.took_turn("cam", id, at(0));
        assert!(matches!(t.plan("cam", at(100)), Plan::Regions(_)));
        t.refound("cam", id, at(100), None);
        assert_eq!(t.plan("cam", at(200)), Plan::Full);
    }

    #[test]
    fn a_moving_face_keeps_its_track_by_its_predicted_box() {
        let mut t = tracker();
        // 40 px per 100 ms: after 300 ms the box has moved 120 px, further than its own width,
        // so only the velocity keeps the overlap.
        t.plan("cam", at(0));
        let id = t.searched("cam", at(0), &[face(0.0)])[0].0;
        t.plan("cam", at(100));
        t.refound("cam", id, at(100), Some(face(40.0)));
        t.plan("cam", at(400));
        let found = t.searched("cam", at(400), &[face(160.0)]);
        assert_eq!(found[0].0, id);
    }

    #[test]
    fn a_track_publishes_at_most_faces_per_second() {
        let mut t = tracker();
        let mut published = 0;
        // 10 fps for 3 s, one face in view, searched in full every frame for the test's sake.
        for frame in 0..30 {
            let now = at(frame * 100);
            t.plan("cam", now);
            let (id, due) = t.searched("cam", now, &[face(frame as f32)])[0];
            if due {
                t.took_turn("cam", id, now);
                published += 1;
            }
        }
        // 3 a second, due from 250 ms after the last: every third frame of 10 fps.
        assert_eq!(published, 10);
    }

    #[test]
    fn a_track_is_due_until_it_takes_its_turn() {
        let mut t = at_rate(2.0);
        t.plan("cam", at(0));
        let (id, due) = t.searched("cam", at(0), &[face(0.0)])[0];
        assert!(due);
        // Its face was lost before it was published or refused: still due, so searched for.
        assert_eq!(t.plan("cam", at(100)), Plan::Regions(vec![(id, face(0.0))]));
        t.refound("cam", id, at(100), Some(face(0.0)));
        t.took_turn("cam", id, at(100));
        // Refused or published at 100 ms: next due at 600 ms (less a quarter: 475 ms).
        assert_eq!(t.plan("cam", at(200)), Plan::Skip);
        assert_eq!(t.plan("cam", at(300)), Plan::Full);
        let (_, due) = t.searched("cam", at(300), &[face(0.0)])[0];
        assert!(!due);
        assert_eq!(t.plan("cam", at(400)), Plan::Skip);
        assert!(matches!(t.plan("cam", at(500)), Plan::Regions(_)));
    }

    #[test]
    fn a_new_track_publishes_its_first_two_faces_back_to_back_then_keeps_the_full_cadence() {
        let mut t = Tracker::new(Tracking::default());
        t.plan("cam", at(0));
        let id = t.searched("cam", at(0), &[face(0.0)])[0].0;
        t.took_turn("cam", id, at(0));
        // The second face at once, from the next frame.
        assert_eq!(t.plan("cam", at(100)), Plan::Regions(vec![(id, face(0.0))]));
        t.refound("cam", id, at(100), Some(face(0.0)));
        t.took_turn("cam", id, at(100));
        // Then on the first face's cadence: the full searches take it, no region search.
        assert_eq!(t.plan("cam", at(200)), Plan::Skip);
        assert_eq!(t.plan("cam", at(300)), Plan::Full);
        assert!(t.searched("cam", at(300), &[face(0.0)])[0].1);
        t.took_turn("cam", id, at(300));
        assert_eq!(t.plan("cam", at(400)), Plan::Skip);
        assert_eq!(t.plan("cam", at(500)), Plan::Skip);
        assert_eq!(t.plan("cam", at(600)), Plan::Full);
    }

    #[test]
    fn a_track_a_full_search_does_not_find_ends() {
        let mut t = tracker();
        t.plan("cam", at(0));
        let found = t.searched("cam", at(0), &[face(0.0), face(300.0)]);
        t.took_turn("cam", found[0].0, at(0));
        t.took_turn("cam", found[1].0, at(0));
        t.plan("cam", at(300));
        let again = t.searched("cam", at(300), &[face(300.0)]);
        assert_eq!(again[0].0, found[1].0);
        assert_eq!(t.tracks(), 1);
    }

    #[test]
    fn tracks_end_after_their_gap_and_idle_cameras_are_forgotten() {
        let mut t = tracker();
        t.plan("a", at(0));
        t.searched("a", at(0), &[face(0.0)]);
        assert_eq!(t.tracks(), 1);
        t.plan("a", at(1_100));
        assert_eq!(t.tracks(), 0);
        t.plan("b", at(61_200));
        assert_eq!(t.cameras(), 1);
    }

    #[test]
    fn off_searches_every_frame_and_publishes_every_face() {
        let mut t = Tracker::new(Tracking {
            full_every: Duration::ZERO,
            faces_per_second: 0.0,
            ..Tracking::default()
        });
        for frame in 0..5 {
            let now = at(frame * 100);
            assert_eq!(t.plan("cam", now), Plan::Full);
            let (id, due) = t.searched("cam", now, &[face(0.0)])[0];
            assert!(due);
            t.took_turn("cam", id, now);
        }
    }

    #[test]
    fn a_rule_that_would_lose_tracks_is_refused() {
        let rule = Tracking {
            full_every: Duration::from_secs(2),
            ..Tracking::default()
        };
        assert!(rule.validate().is_err());
        assert!(Tracking::default().validate().is_ok());
        assert!(Tracking {
            faces_per_second: f32::NAN,
            ..Tracking::default()
        }
        .validate()
        .is_err());
    }
}
