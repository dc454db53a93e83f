//! The JetStream topology as plain data: every stream, every key-value bucket and every durable
//! consumer lfr uses, described once. One administrative step (`lfr bus init`) declares it; the
//! services only check that what they need exists as specified (`lfr_common::topology`), so no
//! service needs the right to create, change or delete anything on the bus.
//!
//! Three families of stream:
//! - **transient** (FRAMES, FACES, EMBEDDINGS): memory storage, work-queue retention (a message
//!   disappears once a stage acknowledges it), a short age limit and a per-message TTL, bounded in
//!   size with discard-old. Biometric data that nobody processes expires in seconds and never
//!   touches disk.
//! - **records** (ALERTS, AUDIT, WATCHLISTS): file storage. ALERTS is erased by the purge service
//!   according to the retention policy; AUDIT refuses deletes and purges so the log cannot be
//!   quietly trimmed; WATCHLISTS holds each deployment's list and custody images until its wipe.
//! - **buckets** ([`buckets`]): key-value stores, which JetStream keeps as streams named `KV_<bucket>`
//!   on subjects `$KV.<bucket>.>`. Declaring them as stream specs keeps one declaration and one check
//!   for everything.

use crate::subjects;
use std::time::Duration;

pub const FRAMES: &str = "FRAMES";
pub const FACES: &str = "FACES";
pub const EMBEDDINGS: &str = "EMBEDDINGS";
pub const ALERTS: &str = "ALERTS";
pub const AUDIT: &str = "AUDIT";
pub const WATCHLISTS: &str = "WATCHLISTS";

/// Key-value buckets (each a stream `KV_<name>`).
pub mod buckets {
    /// One JSON record per deployment (lifecycle, gates, attached list).
    pub const DEPLOYMENTS: &str = "lfr-deployments";
    /// Every matcher replica's report of the list it loaded; expires so a dead replica drops out.
    pub const LOADS: &str = "lfr-watchlist-loads";
    /// Console accounts: argon2id password hashes, roles, assignments.
    pub const ACCOUNTS: &str = "lfr-accounts";
    /// Console sessions keyed by the sha256 of their token.
    pub const SESSIONS: &str = "lfr-sessions";
    /// Per-deployment data keys wrapped by the master key (lfr-vault).
    pub const KEYS: &str = "lfr-keys";
    /// Registered subject access requests: who asked, who verified their identity, the scope,
    /// and every search and disclosure made for the request (`lfr access`).
    pub const ACCESS_REQUESTS: &str = "lfr-access-requests";
    /// When each watch-list entry last alerted in each deployment, keyed by an opaque digest of
    /// both: a matcher that takes over from a lost one does not raise a person's alert twice.
    /// Memory only, expiring after [`super::ALERTED_TTL`]; holds no face, no name, no reference.
    pub const ALERTED: &str = "lfr-match-alerted";
    /// The audit chain's head, signed by the verifier (the purge service) after each intact check:
    /// outside AUDIT, written by purge alone, never deleted or purged (`lfr_common::anchor`).
    pub const AUDIT_ANCHORS: &str = "lfr-audit-anchors";

    /// The stream that holds a bucket.
    pub fn stream(bucket: &str) -> String {
        format!("KV_{bucket}")
    }

    /// The subjects of a bucket's keys.
    pub fn subjects(bucket: &str) -> String {
        format!("$KV.{bucket}.>")
    }
}

/// Revisions of the latest audit anchor kept (every anchor ever signed, in practice).
pub const AUDIT_ANCHOR_HISTORY: i64 = 1_000_000;

/// How long the matchers remember that an entry alerted (at least `match.corroboration.
/// realert_after`).
pub const ALERTED_TTL: Duration = Duration::from_secs(600);

/// How long a matcher replica's load report counts.
pub const LOAD_REPORT_TTL: Duration = Duration::from_secs(60);

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
    pub name: String,
    pub description: &'static str,
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
    /// Messages kept per subject (a bucket's history); zero or negative means unlimited.
    pub max_messages_per_subject: i64,
    /// When full, refuse new messages instead of discarding the oldest.
    pub discard_new: bool,
    /// Rollups (a key-value purge) allowed.
    pub allow_rollup: bool,
    /// Reads of single messages answered by any replica (key-value gets).
    pub allow_direct: bool,
    /// Copies kept on distinct servers of a cluster: `bus.replicas` for records and buckets, one
    /// for the transient streams (frames are worth nothing seconds later; copying them would
    /// triple the bus's traffic for no record).
    pub replicas: usize,
}

impl StreamSpec {
    /// Whether this spec describes a key-value bucket.
    pub fn is_bucket(&self) -> bool {
        self.name.starts_with("KV_")
    }
}

/// A durable pull consumer of a pipeline stage, shared by all replicas of that stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub durable: &'static str,
    /// Messages handed out but not yet acknowledged, across all replicas.
    pub max_ack_pending: i64,
    /// How long the server waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
    /// One replica at a time: the server pins every message to one pulling replica (a pinned
    /// client of the priority group [`STANDBY_GROUP`]) and keeps the others on standby; the pin
    /// moves when the active replica has not pulled for this long. For a stage whose state
    /// follows a camera's frames in order (match's tracks); `None` shares the work out.
    pub active_standby: Option<Duration>,
}

/// The priority group a pinned stage's replicas pull in.
pub const STANDBY_GROUP: &str = "active";

/// The durable consumers of the pipeline stages.
pub fn consumers() -> Vec<ConsumerSpec> {
    let stage = |stream, durable, max_ack_pending| ConsumerSpec {
        stream,
        durable,
        max_ack_pending,
        ack_wait: Duration::from_secs(10),
        active_standby: None,
    };
    vec![
        stage(FRAMES, consumers::DETECT, 64),
        stage(FACES, consumers::EMBED, 256),
        // Corroboration follows each camera's tracks, so one matcher sees every template; a
        // standby takes over within seconds (matching costs microseconds a template, so one
        // active replica is never the bottleneck). Templates the lost replica held are
        // redelivered after `ack_wait`, inside the transient TTL.
        ConsumerSpec {
            ack_wait: Duration::from_secs(2),
            active_standby: Some(Duration::from_secs(3)),
            ..stage(EMBEDDINGS, consumers::MATCH, 64)
        },
    ]
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
    /// Age limit of the sessions bucket: no console session outlives it.
    pub session_max_age: Duration,
    /// Copies of every record stream and bucket (1 on one server; 3 on a three-node cluster, so
    /// losing one node loses no alert, record or account).
    pub replicas: usize,
}

impl Default for TopologyLimits {
    fn default() -> Self {
        TopologyLimits {
            transient_max_age: Duration::from_secs(5),
            transient_max_bytes: 256 * 1024 * 1024,
            alerts_max_age: Duration::ZERO,
            session_max_age: Duration::from_secs(12 * 3600),
            replicas: 1,
        }
    }
}

/// Every stream and bucket lfr needs, in dependency order.
pub fn topology(limits: &TopologyLimits) -> Vec<StreamSpec> {
    let transient = |name: &str, subject: &str| StreamSpec {
        name: name.to_string(),
        description: "lfr transient biometric stream: memory only, expires in seconds",
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
        max_messages_per_subject: 0,
        discard_new: false,
        allow_rollup: false,
        allow_direct: false,
        replicas: 1,
    };
    let record = |name: &str, subject: &str, deny| StreamSpec {
        name: name.to_string(),
        description: "lfr record stream",
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
        max_messages_per_subject: 0,
        discard_new: false,
        allow_rollup: false,
        allow_direct: false,
        replicas: limits.replicas,
    };
    // As JetStream's key-value layer declares a bucket: one stream per bucket, direct gets,
    // rollups for purges, deletes refused except where secure erasure needs them.
    let bucket = |name: &str, description, history, storage, max_age| StreamSpec {
        name: buckets::stream(name),
        description,
        subjects: vec![buckets::subjects(name)],
        storage,
        retention: Retention::Limits,
        max_age,
        max_bytes: -1,
        max_messages: -1,
        max_message_size: 1024 * 1024,
        allow_message_ttl: false,
        deny_delete: true,
        deny_purge: false,
        duplicate_window: Duration::from_secs(120).min(if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age
        }),
        max_messages_per_subject: history,
        discard_new: true,
        allow_rollup: true,
        allow_direct: true,
        replicas: limits.replicas,
    };
    vec![
        transient(FRAMES, subjects::FRAMES_ALL),
        transient(FACES, subjects::FACES_ALL),
        transient(EMBEDDINGS, subjects::EMBEDDINGS_ALL),
        StreamSpec {
            max_age: limits.alerts_max_age,
            ..record(ALERTS, subjects::ALERTS_ALL, false)
        },
        StreamSpec {
            description: "lfr audit log: hash-chained, never deleted",
            ..record(AUDIT, subjects::AUDIT_ALL, true)
        },
        StreamSpec {
            description: "lfr watch lists and custody images, wiped when a deployment ends",
            ..record(WATCHLISTS, subjects::WATCHLISTS_ALL, false)
        },
        bucket(
            buckets::DEPLOYMENTS,
            "lfr deployments",
            10,
            Storage::File,
            Duration::ZERO,
        ),
        bucket(
            buckets::LOADS,
            "lfr watch lists loaded by each matcher replica",
            1,
            Storage::Memory,
            LOAD_REPORT_TTL,
        ),
        bucket(
            buckets::ALERTED,
            "lfr entries alerted recently, by opaque digest, shared by the matcher replicas",
            1,
            Storage::Memory,
            ALERTED_TTL,
        ),
        bucket(
            buckets::ACCOUNTS,
            "lfr console accounts (argon2id password hashes)",
            10,
            Storage::File,
            Duration::ZERO,
        ),
        bucket(
            buckets::SESSIONS,
            "lfr console sessions, keyed by sha256 of the token",
            1,
            Storage::File,
            limits.session_max_age,
        ),
        StreamSpec {
            // Deletes allowed: destroying a data key erases its message securely.
            max_message_size: 4096,
            deny_delete: false,
            ..bucket(
                buckets::KEYS,
                "lfr data keys, wrapped under the master key (lfr-vault)",
                1,
                Storage::File,
                Duration::ZERO,
            )
        },
        bucket(
            buckets::ACCESS_REQUESTS,
            "lfr subject access requests and the searches made for them",
            64,
            Storage::File,
            Duration::ZERO,
        ),
        StreamSpec {
            // Every anchor kept (a million revisions: over a century of hourly passes; key-value
            // clients refuse an unlimited history), none removable: no deletes, no purges, no
            // rollups (a key-value purge is a rollup).
            max_message_size: 4096,
            deny_purge: true,
            discard_new: false,
            allow_rollup: false,
            ..bucket(
                buckets::AUDIT_ANCHORS,
                "lfr audit anchors: the chain head signed by the verifier, never deleted",
                AUDIT_ANCHOR_HISTORY,
                Storage::File,
                Duration::ZERO,
            )
        },
    ]
}

/// The spec of one stream or bucket stream by name.
pub fn spec<'a>(topology: &'a [StreamSpec], name: &str) -> Option<&'a StreamSpec> {
    topology.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biometric_streams_are_in_memory_and_expire() {
        let specs = topology(&TopologyLimits::default());
        for s in specs
            .iter()
            .filter(|s| [FRAMES, FACES, EMBEDDINGS].contains(&s.name.as_str()))
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

    #[test]
    fn every_bucket_is_a_kv_stream_and_every_consumer_has_its_stream() {
        let specs = topology(&TopologyLimits::default());
        for b in [
            buckets::DEPLOYMENTS,
            buckets::LOADS,
            buckets::ALERTED,
            buckets::ACCOUNTS,
            buckets::SESSIONS,
            buckets::KEYS,
            buckets::ACCESS_REQUESTS,
        ] {
            let s = spec(&specs, &buckets::stream(b)).expect(b);
            assert!(s.is_bucket() && s.allow_direct && s.max_messages_per_subject >= 1);
            assert_eq!(s.subjects, [format!("$KV.{b}.>")]);
        }
        let anchors = spec(&specs, &buckets::stream(buckets::AUDIT_ANCHORS)).unwrap();
        assert!(anchors.is_bucket() && anchors.storage == Storage::File);
        assert!(anchors.deny_delete && anchors.deny_purge && !anchors.allow_rollup);
        assert!(anchors.max_messages_per_subject >= 1_000_000 && anchors.max_age.is_zero());
        let keys = spec(&specs, &buckets::stream(buckets::KEYS)).unwrap();
        assert!(!keys.deny_delete && keys.max_messages_per_subject == 1);
        for c in consumers() {
            assert!(spec(&specs, c.stream).is_some(), "{}", c.stream);
        }
    }

    #[test]
    fn records_and_buckets_take_the_replicas_and_transient_streams_keep_one() {
        let specs = topology(&TopologyLimits {
            replicas: 3,
            ..Default::default()
        });
        for s in &specs {
            let transient = [FRAMES, FACES, EMBEDDINGS].contains(&s.name.as_str());
            assert_eq!(s.replicas, if transient { 1 } else { 3 }, "{}", s.name);
        }
        let pinned: Vec<_> = consumers()
            .into_iter()
            .filter(|c| c.active_standby.is_some())
            .collect();
        assert_eq!(pinned.len(), 1);
        assert_eq!(pinned[0].durable, consumers::MATCH);
        // A redelivered template must still be alive when it comes back.
        assert!(pinned[0].ack_wait < TopologyLimits::default().transient_max_age);
    }
}
