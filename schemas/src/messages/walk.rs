//! Blue-list walk tests: a staff volunteer on the blue watch list walks past a camera on purpose,
//! and the technical team records it, so that the system's **miss rate** is measured live rather
//! than assumed. Each recorded walk is later matched to the blue alert it caused, or counted as a
//! miss (`lfr_alerts::walks`).

use super::Timestamp;
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

/// Who walked past: the volunteer's blue-list entry (then only an alert on that entry counts), or
/// a label the technical team uses for a volunteer (then any blue alert on the camera counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Walker {
    /// The opaque watch-list reference of the volunteer's blue-list entry.
    Entry(String),
    /// A label such as "volunteer 3": no watch-list reference.
    Label(String),
}

/// One walk past one camera, recorded in the console by the technical team.
///
/// Published by dispatch alone on `lfr.alerts.<deployment>.walk`; folded by every reader of
/// ALERTS, the first record of a `walk_id` winning. It holds no image and no template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlueWalk {
    pub walk_id: String,
    pub deployment: String,
    pub camera: String,
    pub walker: Walker,
    /// When the volunteer set off past the camera.
    pub started_at: Timestamp,
    /// Account id of the person who recorded it, never a name.
    pub recorded_by: String,
    pub recorded_at: Timestamp,
}

impl Message for BlueWalk {
    const KIND: Kind = Kind::BlueWalk;
    const VERSION: u8 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_round_trips_and_is_not_another_kind() {
        let walk = BlueWalk {
            walk_id: "w1".into(),
            deployment: "d1".into(),
            camera: "gate-1".into(),
            walker: Walker::Label("volunteer 3".into()),
            started_at: Timestamp(5),
            recorded_by: "tech-1".into(),
            recorded_at: Timestamp(6),
        };
        assert_eq!(BlueWalk::decode(&walk.encode()).unwrap(), walk);
        assert!(crate::AlertDecision::decode(&walk.encode()).is_err());
    }
}
