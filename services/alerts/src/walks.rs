//! Blue-list walk tests, scored: which recorded walk the system saw, and which it missed.
//!
//! The technical team records each walk of a staff volunteer past a camera ([`BlueWalk`]). A walk
//! is **alerted** when a blue-list alert of the same deployment and camera saw a face within the
//! [`WalkRule::window`] after the walk started (and, when the walk names the volunteer's blue-list
//! entry, an alert on that entry); it is **missed** once the window has passed without one, and
//! **waiting** until then. The live miss rate is missed / (alerted + missed).
//!
//! Rules that keep the rate honest:
//! - one alert satisfies at most one walk (two volunteers walking together need two alerts);
//! - walks naming an entry are scored before walks with only a label, so a label's walk does not
//!   take the one alert a named walk could use;
//! - alerts are compared as [`Sighting`]s, which keep only a digest of the entry reference: the
//!   same form survives the alert's erasure, so an old walk does not turn into a miss when
//!   retention erases the alert it caused.

use lfr_schemas::{BlueWalk, CandidateAlert, Timestamp, Walker};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::time::Duration;

/// How long after a walk starts its alert may come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalkRule {
    pub window: Duration,
}

impl Default for WalkRule {
    fn default() -> Self {
        WalkRule {
            window: Duration::from_secs(120),
        }
    }
}

/// What a blue-list alert tells about a walk: where and when a volunteer was seen, on which
/// entry (as a digest).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub alert_id: String,
    pub camera: String,
    /// When the matching frame was captured.
    pub seen_at: Timestamp,
    /// sha256 of the entry reference ([`entry_digest`]).
    pub entry: String,
}

impl Sighting {
    pub fn of(alert: &CandidateAlert) -> Sighting {
        Sighting {
            alert_id: alert.alert_id.clone(),
            camera: alert.probe.frame.camera.clone(),
            seen_at: alert.probe.frame.captured_at,
            entry: entry_digest(&alert.entry_ref),
        }
    }
}

/// The form in which entry references are compared (and kept after erasure).
pub fn entry_digest(reference: &str) -> String {
    lfr_schemas::hex(&Sha256::digest(reference.as_bytes()))
}

/// What became of one walk.
#[derive(Debug, Clone, PartialEq)]
pub enum WalkResult {
    /// A blue alert saw the volunteer, this long after the walk started.
    Alerted {
        alert_id: String,
        after: Duration,
    },
    /// The window is still open.
    Waiting,
    Missed,
}

/// Score `walks` (of one deployment) against its blue `sightings` at `now`, in the order given.
pub fn score(
    walks: &[BlueWalk],
    sightings: &[Sighting],
    rule: WalkRule,
    now: Timestamp,
) -> Vec<WalkResult> {
    let mut order: Vec<usize> = (0..walks.len()).collect();
    order.sort_by_key(|&i| {
        let w = &walks[i];
        (matches!(w.walker, Walker::Label(_)), w.started_at, i)
    });
    let window = rule.window.as_nanos() as u64;
    let mut used = HashSet::new();
    let mut results = vec![WalkResult::Waiting; walks.len()];
    for i in order {
        let walk = &walks[i];
        let wanted = match &walk.walker {
            Walker::Entry(reference) => Some(entry_digest(reference)),
            Walker::Label(_) => None,
        };
        let closes = walk.started_at.0.saturating_add(window);
        let found = sightings
            .iter()
            .filter(|s| {
                s.camera == walk.camera
                    && s.seen_at >= walk.started_at
                    && s.seen_at.0 <= closes
                    && wanted.as_ref().is_none_or(|e| *e == s.entry)
                    && !used.contains(&s.alert_id)
            })
            .min_by_key(|s| (s.seen_at, s.alert_id.clone()));
        results[i] = match found {
            Some(s) => {
                used.insert(s.alert_id.clone());
                WalkResult::Alerted {
                    alert_id: s.alert_id.clone(),
                    after: walk.started_at.until(s.seen_at),
                }
            }
            None if now.0 <= closes => WalkResult::Waiting,
            None => WalkResult::Missed,
        };
    }
    results
}

/// Walks scored so far, and the miss rate they give.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MissTally {
    pub walks: usize,
    pub alerted: usize,
    pub missed: usize,
    pub waiting: usize,
}

impl MissTally {
    pub fn of(results: &[WalkResult]) -> MissTally {
        let mut t = MissTally {
            walks: results.len(),
            ..Default::default()
        };
        for r in results {
            match r {
                WalkResult::Alerted { .. } => t.alerted += 1,
                WalkResult::Missed => t.missed += 1,
                WalkResult::Waiting => t.waiting += 1,
            }
        }
        t
    }

    /// missed / (alerted + missed); `None` before any walk was decided.
    pub fn miss_rate(&self) -> Option<f64> {
        let decided = self.alerted + self.missed;
        (decided > 0).then(|| self.missed as f64 / decided as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn walk(id: &str, camera: &str, at: u64, walker: Walker) -> BlueWalk {
        BlueWalk {
            walk_id: id.into(),
            deployment: "d1".into(),
            camera: camera.into(),
            walker,
            started_at: Timestamp(at * S),
            recorded_by: "tech-1".into(),
            recorded_at: Timestamp(at * S),
        }
    }

    fn seen(id: &str, camera: &str, at: u64, entry: &str) -> Sighting {
        Sighting {
            alert_id: id.into(),
            camera: camera.into(),
            seen_at: Timestamp(at * S),
            entry: entry_digest(entry),
        }
    }

    fn label() -> Walker {
        Walker::Label("volunteer".into())
    }

    const RULE: WalkRule = WalkRule {
        window: Duration::from_secs(120),
    };

    #[test]
    fn the_window_includes_its_edges_and_nothing_outside() {
        let walks = [walk("w1", "gate-1", 100, label())];
        let at = |t: u64| {
            score(
                &walks,
                &[seen("a", "gate-1", t, "BLUE-1")],
                RULE,
                Timestamp(1000 * S),
            )
        };
        assert!(
            matches!(at(100)[0], WalkResult::Alerted { .. }),
            "at the start"
        );
        assert!(
            matches!(at(220)[0], WalkResult::Alerted { .. }),
            "at the end"
        );
        assert_eq!(at(99)[0], WalkResult::Missed, "before the walk");
        assert_eq!(at(221)[0], WalkResult::Missed, "after the window");
        let other_camera = score(
            &walks,
            &[seen("a", "gate-2", 150, "B")],
            RULE,
            Timestamp(1000 * S),
        );
        assert_eq!(other_camera[0], WalkResult::Missed);
    }

    #[test]
    fn a_walk_waits_until_its_window_has_passed() {
        let walks = [walk("w1", "gate-1", 100, label())];
        assert_eq!(
            score(&walks, &[], RULE, Timestamp(220 * S))[0],
            WalkResult::Waiting
        );
        assert_eq!(
            score(&walks, &[], RULE, Timestamp(221 * S))[0],
            WalkResult::Missed
        );
        assert_eq!(MissTally::of(&[WalkResult::Waiting]).miss_rate(), None);
    }

    #[test]
    fn one_alert_cannot_satisfy_two_walks() {
        let walks = [
            walk("w1", "gate-1", 100, label()),
            walk("w2", "gate-1", 110, label()),
        ];
        let results = score(
            &walks,
            &[seen("a", "gate-1", 115, "B")],
            RULE,
            Timestamp(1000 * S),
        );
        assert!(
            matches!(&results[0], WalkResult::Alerted { alert_id, after } if alert_id == "a" && *after == Duration::from_secs(15))
        );
        assert_eq!(results[1], WalkResult::Missed);
        let tally = MissTally::of(&results);
        assert_eq!(tally.miss_rate(), Some(0.5));
    }

    #[test]
    fn a_named_walk_needs_its_entry_and_goes_first() {
        let walks = [
            walk("w1", "gate-1", 100, label()),
            walk("w2", "gate-1", 100, Walker::Entry("BLUE-2".into())),
        ];
        // Only BLUE-2's alert: the named walk takes it, the label's walk is missed.
        let results = score(
            &walks,
            &[seen("a", "gate-1", 105, "BLUE-2")],
            RULE,
            Timestamp(1000 * S),
        );
        assert_eq!(results[0], WalkResult::Missed);
        assert!(matches!(&results[1], WalkResult::Alerted { alert_id, .. } if alert_id == "a"));
        // Another volunteer's alert does not count for a named walk.
        let results = score(
            &walks[1..],
            &[seen("a", "gate-1", 105, "BLUE-1")],
            RULE,
            Timestamp(1000 * S),
        );
        assert_eq!(results[0], WalkResult::Missed);
    }
}
