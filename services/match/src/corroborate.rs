//! Corroboration and de-duplication: one person walking past makes one alert.
//!
//! A camera sees a person in many consecutive frames. Each frame's face is a separate probe, and a
//! single frame can match by accident (blur, a turned head, a look-alike in one pose). So the
//! matcher does not alert on a frame; it alerts on a **track**:
//!
//! - Faces of one camera are joined into tracks by position: a face belongs to the track whose last
//!   box it overlaps most (intersection over union at least `track_iou`), if that track was seen
//!   within `track_gap`. Otherwise it starts a new track.
//! - A track alerts for an entry when at least `min_frames` of its last `window` frames matched
//!   that entry, or when one frame scored at least `instant_score` (a near-certain match should
//!   not wait for a second frame).
//! - A track alerts for an entry once. An entry that alerted in this deployment does not alert
//!   again for `realert_after`, from any track or camera: a person who lingers, or crosses two
//!   cameras of one pinch point, is one alert.
//!
//! Privacy: a track keeps only geometry (a box and a time) for frames that did not match. The
//! evidence an alert needs (probe chip, context crop) is kept only for frames that matched, only
//! the best one per entry, and only until the track ends.
//!
//! Time is the frames' capture time, not the arrival time, so a backlog replays with the same
//! result.

use lfr_schemas::{BoundingBox, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The corroboration rule (`[match.corroboration]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    /// Frames of a track that must match the same entry...
    pub min_frames: u16,
    /// ...among the track's last `window` frames.
    pub window: u16,
    /// A single frame scoring at least this alerts at once (above 1 to switch off).
    pub instant_score: f32,
    /// Least overlap (intersection over union) for a face to continue a track.
    pub track_iou: f32,
    /// A track not seen for this long has ended.
    #[serde(with = "lfr_common::config::secs")]
    pub track_gap: Duration,
    /// An entry that alerted does not alert again within this time.
    #[serde(with = "lfr_common::config::secs")]
    pub realert_after: Duration,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            min_frames: 2,
            window: 5,
            instant_score: 0.85,
            track_iou: 0.2,
            track_gap: Duration::from_secs(2),
            realert_after: Duration::from_secs(60),
        }
    }
}

impl Rule {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.min_frames >= 1 && self.min_frames <= self.window,
            "corroboration needs 1 <= min_frames <= window (got {} of {})",
            self.min_frames,
            self.window
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.track_iou),
            "track_iou must be in 0..1"
        );
        anyhow::ensure!(
            self.realert_after <= lfr_schemas::streams::ALERTED_TTL,
            "realert_after may not exceed {:?}, how long the replicas share who alerted",
            lfr_schemas::streams::ALERTED_TTL
        );
        Ok(())
    }
}

/// One face of one frame, as the tracker sees it.
#[derive(Debug, Clone)]
pub struct Sighting<E> {
    pub camera: String,
    pub captured_at: Timestamp,
    pub bbox: BoundingBox,
    /// The watch-list entry it matched, with the score and the evidence to show; `None` for a
    /// face that matched nobody.
    pub hit: Option<Hit<E>>,
}

#[derive(Debug, Clone)]
pub struct Hit<E> {
    pub entry: usize,
    pub score: f32,
    pub evidence: E,
}

/// The tracker's decision for one sighting.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<E> {
    /// Nothing to raise (yet).
    Quiet,
    /// Raise an alert for `entry` with the best evidence of the track.
    Alert {
        entry: usize,
        score: f32,
        evidence: E,
        matched_frames: u16,
        track_frames: u16,
    },
}

struct Track<E> {
    bbox: BoundingBox,
    last_seen: Timestamp,
    frames: u16,
    /// The entry each of the last `window` frames matched, if any.
    recent: VecDeque<Option<usize>>,
    /// Best-scoring evidence per matched entry.
    best: HashMap<usize, (f32, E)>,
    alerted: Vec<usize>,
}

/// The tracks of one deployment's cameras, and when each entry last alerted.
pub struct Tracker<E> {
    rule: Rule,
    tracks: HashMap<String, Vec<Track<E>>>,
    last_alert: HashMap<usize, Timestamp>,
}

impl<E: Clone> Tracker<E> {
    pub fn new(rule: Rule) -> Tracker<E> {
        Tracker {
            rule,
            tracks: HashMap::new(),
            last_alert: HashMap::new(),
        }
    }

    /// Open tracks over all cameras.
    pub fn tracks(&self) -> usize {
        self.tracks.values().map(Vec::len).sum()
    }

    /// Take one sighting into its track and decide.
    pub fn observe(&mut self, sighting: Sighting<E>) -> Verdict<E> {
        let rule = &self.rule;
        let now = sighting.captured_at;
        let tracks = self.tracks.entry(sighting.camera).or_default();
        tracks.retain(|t| t.last_seen.until(now) <= rule.track_gap || t.last_seen > now);

        // The open track this face continues: best overlap, and not already given a face of this
        // frame (two people side by side are two tracks).
        let continued = tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.last_seen != now)
            .map(|(i, t)| (i, iou(&t.bbox, &sighting.bbox)))
            .filter(|(_, overlap)| *overlap >= rule.track_iou)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let track = match continued {
            Some(i) => &mut tracks[i],
            None => {
                tracks.push(Track {
                    bbox: sighting.bbox,
                    last_seen: now,
                    frames: 0,
                    recent: VecDeque::new(),
                    best: HashMap::new(),
                    alerted: Vec::new(),
                });
                tracks.last_mut().expect("just pushed")
            }
        };
        track.bbox = sighting.bbox;
        track.last_seen = track.last_seen.max(now);
        track.frames = track.frames.saturating_add(1);
        track
            .recent
            .push_back(sighting.hit.as_ref().map(|h| h.entry));
        if track.recent.len() > rule.window as usize {
            track.recent.pop_front();
        }
        let Some(hit) = sighting.hit else {
            return Verdict::Quiet;
        };
        let entry = hit.entry;
        let instant = hit.score >= rule.instant_score;
        match track.best.get(&entry) {
            Some((best, _)) if *best >= hit.score => {}
            _ => {
                track.best.insert(entry, (hit.score, hit.evidence));
            }
        }
        let matched = track.recent.iter().filter(|e| **e == Some(entry)).count() as u16;
        if track.alerted.contains(&entry) || !(instant || matched >= rule.min_frames) {
            return Verdict::Quiet;
        }
        if let Some(last) = self.last_alert.get(&entry) {
            if last.until(now) < rule.realert_after {
                // Same person, already alerted: this track is part of that alert.
                track.alerted.push(entry);
                return Verdict::Quiet;
            }
        }
        track.alerted.push(entry);
        self.last_alert.insert(entry, now);
        let (score, evidence) = track.best.get(&entry).cloned().expect("inserted above");
        Verdict::Alert {
            entry,
            score,
            evidence,
            matched_frames: matched,
            track_frames: track.frames,
        }
    }

    /// Forget that an alert was raised (its publication failed), so a redelivered probe can raise
    /// it again.
    pub fn retract(&mut self, camera: &str, entry: usize) {
        self.last_alert.remove(&entry);
        for track in self.tracks.get_mut(camera).into_iter().flatten() {
            track.alerted.retain(|e| *e != entry);
        }
    }
}

/// Intersection over union of two boxes, 0 when they do not overlap.
pub fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let x1 = a.x.max(b.x);
    let y1 = a.y.max(b.y);
    let x2 = (a.x + a.width).min(b.x + b.width);
    let y2 = (a.y + a.height).min(b.y + b.height);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a.width * a.height + b.width * b.height - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp(1_800_000_000_000 * MS + ms * MS)
    }

    fn bbox(x: f32) -> BoundingBox {
        BoundingBox {
            x,
            y: 100.0,
            width: 80.0,
            height: 100.0,
        }
    }

    fn seen(camera: &str, ms: u64, x: f32, hit: Option<(usize, f32)>) -> Sighting<u64> {
        Sighting {
            camera: camera.into(),
            captured_at: at(ms),
            bbox: bbox(x),
            hit: hit.map(|(entry, score)| Hit {
                entry,
                score,
                evidence: ms,
            }),
        }
    }

    fn alerts(tracker: &mut Tracker<u64>, sightings: Vec<Sighting<u64>>) -> Vec<(usize, u64)> {
        sightings
            .into_iter()
            .filter_map(|s| match tracker.observe(s) {
                Verdict::Alert {
                    entry, evidence, ..
                } => Some((entry, evidence)),
                Verdict::Quiet => None,
            })
            .collect()
    }

    /// A person walking 10 px a frame at 5 fps, matching entry 7 in the given frames.
    fn pass(camera: &str, start_ms: u64, scores: &[Option<f32>]) -> Vec<Sighting<u64>> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                seen(
                    camera,
                    start_ms + 200 * i as u64,
                    100.0 + 10.0 * i as f32,
                    s.map(|s| (7, s)),
                )
            })
            .collect()
    }

    #[test]
    fn a_pass_with_several_matching_frames_alerts_once_with_its_best_frame() {
        let mut t = Tracker::new(Rule::default());
        let got = alerts(
            &mut t,
            pass(
                "gate-1",
                0,
                &[None, Some(0.7), Some(0.75), Some(0.72), Some(0.8), None],
            ),
        );
        assert_eq!(
            got,
            vec![(7, 400)],
            "alert at the second match, best so far"
        );
    }

    #[test]
    fn a_single_noisy_frame_does_not_alert() {
        let mut t = Tracker::new(Rule::default());
        let got = alerts(
            &mut t,
            pass(
                "gate-1",
                0,
                &[None, Some(0.7), None, None, None, None, None],
            ),
        );
        assert!(got.is_empty());
    }

    #[test]
    fn matches_far_apart_in_a_long_track_do_not_corroborate_each_other() {
        let mut t = Tracker::new(Rule::default());
        let mut scores = vec![Some(0.7)];
        scores.extend([None; 5]);
        scores.push(Some(0.7));
        assert!(alerts(&mut t, pass("gate-1", 0, &scores)).is_empty());
    }

    #[test]
    fn one_very_high_score_alerts_at_once() {
        let mut t = Tracker::new(Rule::default());
        let got = alerts(&mut t, pass("gate-1", 0, &[Some(0.9), Some(0.9)]));
        assert_eq!(got, vec![(7, 0)]);
    }

    #[test]
    fn the_same_entry_on_another_camera_or_track_within_the_window_is_the_same_alert() {
        let mut t = Tracker::new(Rule::default());
        let mut s = pass("gate-1", 0, &[Some(0.7), Some(0.7)]);
        s.extend(pass("gate-2", 500, &[Some(0.7), Some(0.7)]));
        // A later pass on gate-1 after its track ended, still within `realert_after`.
        s.extend(pass("gate-1", 10_000, &[Some(0.7), Some(0.7)]));
        assert_eq!(alerts(&mut t, s).len(), 1);
        // After `realert_after`, the person passing again is a new alert.
        let again = alerts(&mut t, pass("gate-1", 61_000, &[Some(0.7), Some(0.7)]));
        assert_eq!(again, vec![(7, 61_000)], "with the best (first) frame");
    }

    #[test]
    fn two_people_side_by_side_are_two_tracks() {
        let mut t = Tracker::new(Rule {
            realert_after: Duration::ZERO,
            ..Rule::default()
        });
        let mut s = Vec::new();
        for i in 0..3u64 {
            // Entry 7 on the left matches only in frame 0; entry 9 on the right only in frame 1.
            let left = (i == 0).then_some((7, 0.7));
            let right = (i == 1).then_some((9, 0.7));
            s.push(seen("gate-1", i * 200, 100.0, left));
            s.push(seen("gate-1", i * 200, 400.0, right));
        }
        assert!(
            alerts(&mut t, s).is_empty(),
            "matches of two tracks must not add up"
        );
        assert_eq!(t.tracks(), 2);
    }

    #[test]
    fn tracks_end_after_the_gap_and_a_retracted_alert_can_be_raised_again() {
        let mut t = Tracker::new(Rule::default());
        alerts(&mut t, pass("gate-1", 0, &[None]));
        alerts(&mut t, pass("gate-1", 5_000, &[None]));
        assert_eq!(t.tracks(), 1, "the first track ended");
        let got = alerts(&mut t, pass("gate-1", 6_000, &[Some(0.7), Some(0.7)]));
        assert_eq!(got.len(), 1);
        t.retract("gate-1", 7);
        let got = alerts(&mut t, pass("gate-1", 6_400, &[Some(0.7)]));
        assert_eq!(
            got.len(),
            1,
            "redelivery after a failed publish alerts again"
        );
    }

    #[test]
    fn overlap_is_symmetric_and_zero_apart() {
        assert!((iou(&bbox(100.0), &bbox(100.0)) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&bbox(0.0), &bbox(500.0)), 0.0);
        assert_eq!(
            iou(&bbox(100.0), &bbox(140.0)),
            iou(&bbox(140.0), &bbox(100.0))
        );
        assert!(Rule {
            min_frames: 6,
            ..Rule::default()
        }
        .validate()
        .is_err());
    }
}
