//! Wall-clock timestamps as nanoseconds since the Unix epoch: compact on the wire and directly
//! comparable across services for latency measurement (frame capture to alert).

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// Time elapsed from `self` to `later`, zero if `later` is earlier (clocks of two hosts).
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Timestamp(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        )
    }
}
