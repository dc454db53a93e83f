//! The JetStream topology as plain data. `lfr-common` turns these specs into server calls; keeping
//! them here means every service, test and tool agrees on what the bus retains and for how long.
//!
//! Two families of stream:
//! - **transient** (FRAMES, FACES, EMBEDDINGS): memory storage, work-queue retention (a message
//!   disappears once a stage acknowledges it), a short age limit and a per-message TTL, bounded in
//!   size with discard-old. Biometric data that nobody processes expires in seconds and never
//!   touches disk.
//! - **records** (ALERTS, AUDIT): file storage. ALERTS is erased by the purge service according to
//!   the retention policy; AUDIT refuses deletes and purges so the log cannot be quietly trimmed.

use crate::subjects;
use std::time::Duration;

pub const FRAMES: &str = "FRAMES";
pub const FACES: &str = "FACES";
pub const EMBEDDINGS: &str = "EMBEDDINGS";
pub const ALERTS: &str = "ALERTS";
pub const AUDIT: &str = "AUDIT";

/// Durable consumer names: one per stage, shared by all replicas of that stage.
pub mod consumers {
    pub const DETECT: &str = "detect";
    pub const EMBED: &str = "embed";
    pub const MATCH: &str = "match";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Memory,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Gone once acknowledged.
    WorkQueue,
    /// Kept until limits (age, size) or an explicit delete remove it.
    Limits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: Vec<String>,
    pub storage: Storage,
    pub retention: Retention,
    /// Zero means unlimited.
    pub max_age: Duration,
    /// Negative means unlimited.
    pub max_bytes: i64,
    pub max_messages: i64,
    /// Largest single message the stream accepts.
    pub max_message_size: i32,
    pub allow_message_ttl: bool,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub duplicate_window: Duration,
}

/// The knobs operators may turn; everything else about the topology is fixed by the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyLimits {
    /// Age limit of FRAMES, FACES and EMBEDDINGS (and the default per-message TTL).
    pub transient_max_age: Duration,
    /// Memory cap of each transient stream; the oldest messages go first when it is reached.
    pub transient_max_bytes: i64,
    /// Hard age backstop on ALERTS; the purge service erases earlier according to policy.
    pub alerts_max_age: Duration,
}

impl Default for TopologyLimits {
    fn default() -> Self {
        TopologyLimits {
            transient_max_age: Duration::from_secs(5),
            transient_max_bytes: 256 * 1024 * 1024,
            alerts_max_age: Duration::ZERO,
        }
    }
}

/// Every stream lfr needs, in dependency order.
pub fn topology(limits: &TopologyLimits) -> Vec<StreamSpec> {
    let transient = |name, subject: &str| StreamSpec {
        name,
        subjects: vec![subject.to_string()],
        storage: Storage::Memory,
        retention: Retention::WorkQueue,
        max_age: limits.transient_max_age,
        max_bytes: limits.transient_max_bytes,
        max_messages: -1,
        max_message_size: 16 * 1024 * 1024,
        allow_message_ttl: true,
        deny_delete: false,
        deny_purge: false,
        // The server refuses a duplicate window longer than the age limit.
        duplicate_window: limits.transient_max_age,
    };
    let record = |name, subject: &str, deny| StreamSpec {
        name,
        subjects: vec![subject.to_string()],
        storage: Storage::File,
        retention: Retention::Limits,
        max_age: Duration::ZERO,
        max_bytes: -1,
        max_messages: -1,
        max_message_size: 16 * 1024 * 1024,
        allow_message_ttl: false,
        deny_delete: deny,
        deny_purge: deny,
        duplicate_window: Duration::from_secs(120),
    };
    vec![
        transient(FRAMES, subjects::FRAMES_ALL),
        transient(FACES, subjects::FACES_ALL),
        transient(EMBEDDINGS, subjects::EMBEDDINGS_ALL),
        StreamSpec {
            max_age: limits.alerts_max_age,
            ..record(ALERTS, subjects::ALERTS_ALL, false)
        },
        record(AUDIT, subjects::AUDIT_ALL, true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biometric_streams_are_in_memory_and_expire() {
        let specs = topology(&TopologyLimits::default());
        for s in specs
            .iter()
            .filter(|s| [FRAMES, FACES, EMBEDDINGS].contains(&s.name))
        {
            assert_eq!(s.storage, Storage::Memory, "{}", s.name);
            assert_eq!(s.retention, Retention::WorkQueue, "{}", s.name);
            assert!(
                s.max_age > Duration::ZERO && s.allow_message_ttl,
                "{}",
                s.name
            );
            assert!(s.max_bytes > 0, "{} must be bounded", s.name);
        }
        let audit = specs.iter().find(|s| s.name == AUDIT).unwrap();
        assert!(audit.deny_delete && audit.deny_purge && audit.storage == Storage::File);
    }
}
