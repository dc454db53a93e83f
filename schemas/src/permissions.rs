//! Who may do what on the bus: the permission matrix, as data.
//!
//! Every lfr component connects to NATS as its own [`Identity`]. What each identity may do is
//! written here once, in domain terms ([`Grant`]: publish alerts, pull from a stage's consumer,
//! read a bucket, erase from a stream...), and [`Grant::render`] turns it into the NATS subjects
//! that the server enforces. The same matrix becomes the server configuration of `lfr up`, of the
//! compose stack and of the Helm chart, and `docs/security.md` explains it: so what a faulty or
//! compromised component can do is decided by the server, not by the component's own code.
//!
//! Rules the matrix keeps:
//! - **Nobody but the administrator declares anything.** Services check that the topology exists
//!   ([`crate::streams`]) and never need the right to create, change or delete a stream.
//! - **No one can delete AUDIT or trim it**, the administrator included: stream deletion and
//!   AUDIT's message deletion and purge are denied to every identity.
//! - **Decisions come from dispatch alone** (operators' decisions, officers' outcomes, blue-list
//!   walk tests), candidate alerts from match alone, erasure records from purge alone, holds and their releases from
//!   the administrator (`lfr retention hold`, `lfr retention release`) alone.
//! - **Live biometric streams are read only by the next stage**, through its durable consumer; the
//!   administrator can declare those consumers but not pull from them.
//! - **Replies are private**: each identity has its own inbox prefix (`_INBOX_<identity>`) and may
//!   subscribe to no one else's.

use crate::streams::{self, buckets, consumers};
use crate::subjects;

/// A component with its own credentials on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    Ingest,
    Detect,
    Embed,
    Match,
    Dispatch,
    Purge,
    /// The operator CLI (`lfr`).
    Admin,
    /// The topology keeper (`lfr bus init [--watch]`): declares, reads and writes nothing else.
    Bus,
    /// The multi-camera load test.
    Loadtest,
}

impl Identity {
    pub const ALL: [Identity; 9] = [
        Identity::Ingest,
        Identity::Detect,
        Identity::Embed,
        Identity::Match,
        Identity::Dispatch,
        Identity::Purge,
        Identity::Admin,
        Identity::Bus,
        Identity::Loadtest,
    ];

    /// The six services of the pipeline (what a deployment runs).
    pub const SERVICES: [Identity; 6] = [
        Identity::Ingest,
        Identity::Detect,
        Identity::Embed,
        Identity::Match,
        Identity::Dispatch,
        Identity::Purge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Identity::Ingest => "ingest",
            Identity::Detect => "detect",
            Identity::Embed => "embed",
            Identity::Match => "match",
            Identity::Dispatch => "dispatch",
            Identity::Purge => "purge",
            Identity::Admin => "admin",
            Identity::Bus => "bus",
            Identity::Loadtest => "loadtest",
        }
    }

    /// The identity a component connects as, by the name it gives itself (`cli` is the
    /// administrator).
    pub fn of(component: &str) -> Option<Identity> {
        match component {
            "cli" | "lfr" => Some(Identity::Admin),
            other => Identity::ALL.into_iter().find(|i| i.name() == other),
        }
    }

    /// Where replies to this identity's requests are delivered (its own inbox prefix).
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name())
    }

    /// What this identity may do.
    pub fn grants(self) -> Vec<Grant> {
        use Grant::*;
        let alerts = |kind: &str| Publish {
            stream: streams::ALERTS,
            subject: format!("lfr.alerts.*.{kind}"),
        };
        let bucket = |b: &str| buckets::stream(b);
        let write = |b: &str| Write {
            stream: buckets::stream(b),
            subject: buckets::subjects(b),
        };
        match self {
            // Gated capture: ingest, detect and embed read the deployment records and the
            // matchers' load reports (schedules and digests, no biometric data) to know which
            // cameras a live, verified deployment covers.
            Identity::Ingest => vec![
                Publish {
                    stream: streams::FRAMES,
                    subject: "lfr.frames.*".into(),
                },
                Read(bucket(buckets::DEPLOYMENTS)),
                Read(bucket(buckets::LOADS)),
            ],
            Identity::Detect => vec![
                Consume(streams::FRAMES, consumers::DETECT),
                Publish {
                    stream: streams::FACES,
                    subject: "lfr.faces.*".into(),
                },
                // The context crop of a face that matched, made when the matcher asks for it.
                Serve(subjects::CONTEXT_ALL.into()),
                Read(bucket(buckets::DEPLOYMENTS)),
                Read(bucket(buckets::LOADS)),
            ],
            Identity::Embed => vec![
                Consume(streams::FACES, consumers::EMBED),
                Publish {
                    stream: streams::EMBEDDINGS,
                    subject: "lfr.embeddings.*".into(),
                },
                Read(bucket(buckets::DEPLOYMENTS)),
                Read(bucket(buckets::LOADS)),
            ],
            Identity::Match => vec![
                Consume(streams::EMBEDDINGS, consumers::MATCH),
                Read(bucket(buckets::DEPLOYMENTS)),
                Read(streams::WATCHLISTS.into()),
                Read(bucket(buckets::LOADS)),
                write(buckets::LOADS),
                // The replicas' shared memory of who alerted (opaque digests and times).
                Read(bucket(buckets::ALERTED)),
                write(buckets::ALERTED),
                // Sealing an alert creates its deployment's data key on first use.
                Read(bucket(buckets::KEYS)),
                write(buckets::KEYS),
                alerts("candidate"),
                alerts("blue"),
                // The context crop of a face that matched, from the detect replica holding it.
                Request(subjects::CONTEXT_ALL.into()),
                Audit,
            ],
            Identity::Dispatch => vec![
                Read(streams::ALERTS.into()),
                alerts("decision"),
                alerts("outcome"),
                // Blue-list walk tests, recorded by the technical team in the console.
                alerts("walk"),
                Read(bucket(buckets::ACCOUNTS)),
                write(buckets::ACCOUNTS),
                Read(bucket(buckets::SESSIONS)),
                write(buckets::SESSIONS),
                // The deployments API: create, enrol, authorise, review, activate, end and wipe.
                Read(bucket(buckets::DEPLOYMENTS)),
                write(buckets::DEPLOYMENTS),
                Read(streams::WATCHLISTS.into()),
                Write {
                    stream: streams::WATCHLISTS.into(),
                    subject: subjects::WATCHLISTS_ALL.into(),
                },
                Erase(streams::WATCHLISTS.into()),
                Read(bucket(buckets::LOADS)),
                write(buckets::LOADS),
                // Unsealing alert images for the people allowed to see them.
                Read(bucket(buckets::KEYS)),
                Audit,
                Read(streams::AUDIT.into()),
            ],
            Identity::Purge => vec![
                Read(streams::ALERTS.into()),
                alerts("erased"),
                Erase(streams::ALERTS.into()),
                Read(bucket(buckets::DEPLOYMENTS)),
                write(buckets::DEPLOYMENTS),
                Read(streams::WATCHLISTS.into()),
                Erase(streams::WATCHLISTS.into()),
                Read(bucket(buckets::LOADS)),
                write(buckets::LOADS),
                // Crypto-shredding: secure erasure of a data key and its purge marker.
                Read(bucket(buckets::KEYS)),
                write(buckets::KEYS),
                Erase(bucket(buckets::KEYS)),
                Audit,
                Read(streams::AUDIT.into()),
                // The verifier: the only writer of the signed audit anchors.
                Read(bucket(buckets::AUDIT_ANCHORS)),
                write(buckets::AUDIT_ANCHORS),
                Serve(subjects::PURGE_RUN.into()),
            ],
            Identity::Bus => vec![Declare],
            Identity::Admin => {
                let mut grants = vec![Declare];
                for s in [streams::ALERTS, streams::AUDIT, streams::WATCHLISTS] {
                    grants.push(Read(s.into()));
                }
                for b in [
                    buckets::DEPLOYMENTS,
                    buckets::LOADS,
                    buckets::ACCOUNTS,
                    buckets::SESSIONS,
                    buckets::KEYS,
                    // `lfr access`: registered requests; no service reads or writes them.
                    buckets::ACCESS_REQUESTS,
                ] {
                    grants.push(Read(bucket(b)));
                    grants.push(write(b));
                }
                // `lfr audit verify` and `lfr audit anchors export`: read, never write.
                grants.push(Read(bucket(buckets::AUDIT_ANCHORS)));
                grants.extend([
                    Write {
                        stream: streams::WATCHLISTS.into(),
                        subject: subjects::WATCHLISTS_ALL.into(),
                    },
                    Erase(streams::WATCHLISTS.into()),
                    // Master-key rotation (`lfr vault rotate`) erases the old wrapped copies.
                    Erase(bucket(buckets::KEYS)),
                    // `lfr retention release`: lifting a legal hold is an administrative act.
                    alerts("release"),
                    // `lfr retention hold` and its release: holds for a complaint, an access
                    // request or an investigation, placed and released administratively too.
                    alerts("hold"),
                    alerts("lift"),
                    Audit,
                    Request(subjects::PURGE_RUN.into()),
                ]);
                grants
            }
            Identity::Loadtest => vec![
                // Its simulated cameras only, and only blue-list alerts (its watch list is blue):
                // never a real camera's faces, never a candidate alert of a real person.
                LoadtestCameras,
                Observe("lfr.alerts.*.blue".into()),
                Inspect(streams::FRAMES),
                Inspect(streams::FACES),
                Inspect(streams::EMBEDDINGS),
                // Its own deployment, through every gate, as an administrator would.
                Read(bucket(buckets::DEPLOYMENTS)),
                write(buckets::DEPLOYMENTS),
                Read(streams::WATCHLISTS.into()),
                Write {
                    stream: streams::WATCHLISTS.into(),
                    subject: subjects::WATCHLISTS_ALL.into(),
                },
                Erase(streams::WATCHLISTS.into()),
                Read(bucket(buckets::LOADS)),
                write(buckets::LOADS),
                Audit,
            ],
        }
    }

    /// Whether the server lets this identity publish `subject`.
    pub fn may_publish(self, subject: &str) -> bool {
        let p = self.permissions();
        let matches = |pattern: &String| subject_matches(pattern, subject);
        p.publish_allow.iter().any(matches) && !p.publish_deny.iter().any(matches)
    }

    /// The server-side permissions of this identity.
    pub fn permissions(self) -> Permissions {
        let mut p = Permissions {
            publish_allow: Vec::new(),
            publish_deny: DENIED_TO_ALL.iter().map(|s| s.to_string()).collect(),
            subscribe_allow: vec![format!("{}.>", self.inbox_prefix())],
            allow_responses: false,
        };
        for grant in self.grants() {
            grant.render(&mut p);
        }
        p.publish_allow.sort();
        p.publish_allow.dedup();
        p.subscribe_allow.sort();
        p.subscribe_allow.dedup();
        p
    }
}

/// Most cameras the load test simulates, and their ids.
pub const LOADTEST_CAMERAS: usize = 64;

pub fn loadtest_camera(i: usize) -> String {
    format!("loadtest-{i:02}")
}

fn loadtest_cameras() -> impl Iterator<Item = String> {
    (0..LOADTEST_CAMERAS).map(loadtest_camera)
}

/// What no identity may ever do: delete a stream, or remove anything from the audit log.
pub const DENIED_TO_ALL: [&str; 3] = [
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.AUDIT",
    "$JS.API.STREAM.MSG.DELETE.AUDIT",
];

/// One right, in the domain's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Publish messages to a stream on `subject` (a pattern); the server's acknowledgement
    /// comes back to the identity's inbox.
    Publish {
        stream: &'static str,
        subject: String,
    },
    /// Pull from a stage's durable consumer and acknowledge what it handled.
    Consume(&'static str, &'static str),
    /// Read a stream or bucket: its state, replays and watches (ordered consumers), single gets.
    Read(String),
    /// Put, update and delete keys or messages of a stream on `subject` (a pattern).
    Write { stream: String, subject: String },
    /// Remove messages of a stream: secure deletion and filtered purges (erasure, wipes).
    Erase(String),
    /// A transient stream's state and its consumers' (how much is pending), nothing of its content.
    Inspect(&'static str),
    /// Append to the audit log (which needs reading the end of the chain).
    Audit,
    /// Answer requests on a subject.
    Serve(String),
    /// Send requests to a subject.
    Request(String),
    /// Watch a subject live without consuming it (core subscription).
    Observe(String),
    /// Publish frames of the load test's own cameras (`loadtest-00` to `loadtest-63`; NATS
    /// wildcards match whole tokens only, so they are listed) and watch their faces and templates.
    LoadtestCameras,
    /// Declare the topology: create and update streams and buckets, create the stages' durable
    /// consumers.
    Declare,
}

impl Grant {
    /// Add the NATS subjects this grant needs to `p`.
    pub fn render(&self, p: &mut Permissions) {
        let mut publish = |s: String| p.publish_allow.push(s);
        let info = |stream: &str| format!("$JS.API.STREAM.INFO.{stream}");
        match self {
            Grant::Publish { stream, subject } => {
                publish(info(stream));
                publish(subject.clone());
            }
            Grant::Consume(stream, durable) => {
                publish(info(stream));
                publish(format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"));
                publish(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"));
                publish(format!("$JS.ACK.{stream}.{durable}.>"));
            }
            Grant::Read(stream) => {
                publish(info(stream));
                // Ordered consumers (replays, key watches) are created without a name, and
                // pulled from under the name the server gives them.
                publish(format!("$JS.API.CONSUMER.CREATE.{stream}"));
                publish(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
                publish(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
                publish(format!("$JS.API.STREAM.MSG.GET.{stream}"));
                publish(format!("$JS.API.DIRECT.GET.{stream}"));
                publish(format!("$JS.API.DIRECT.GET.{stream}.>"));
                publish(format!("$JS.FC.{stream}.>"));
            }
            Grant::Write { stream, subject } => {
                publish(info(stream));
                publish(subject.clone());
            }
            Grant::Erase(stream) => {
                publish(info(stream));
                publish(format!("$JS.API.STREAM.MSG.DELETE.{stream}"));
                publish(format!("$JS.API.STREAM.PURGE.{stream}"));
            }
            Grant::Inspect(stream) => {
                publish(info(stream));
                publish(format!("$JS.API.CONSUMER.INFO.{stream}.*"));
            }
            Grant::Audit => {
                publish(info(streams::AUDIT));
                publish(format!("$JS.API.STREAM.MSG.GET.{}", streams::AUDIT));
                publish(subjects::AUDIT_ALL.into());
            }
            Grant::Serve(subject) => {
                p.subscribe_allow.push(subject.clone());
                p.allow_responses = true;
            }
            Grant::Request(subject) => publish(subject.clone()),
            Grant::Observe(subject) => p.subscribe_allow.push(subject.clone()),
            Grant::LoadtestCameras => {
                p.publish_allow.push(info(streams::FRAMES));
                for camera in loadtest_cameras() {
                    p.publish_allow.push(subjects::frames(&camera));
                    p.subscribe_allow.push(subjects::faces(&camera));
                    p.subscribe_allow.push(subjects::embeddings(&camera));
                }
            }
            Grant::Declare => {
                for s in [
                    "$JS.API.INFO",
                    "$JS.API.STREAM.CREATE.*",
                    "$JS.API.STREAM.UPDATE.*",
                    "$JS.API.STREAM.INFO.*",
                    "$JS.API.STREAM.NAMES",
                    "$JS.API.STREAM.LIST",
                    "$JS.API.CONSUMER.INFO.*.*",
                    "$JS.API.CONSUMER.NAMES.*",
                ] {
                    publish(s.into());
                }
                // The stages' consumers by their exact names: declaring one is not reading it.
                for c in streams::consumers() {
                    publish(format!(
                        "$JS.API.CONSUMER.CREATE.{}.{}",
                        c.stream, c.durable
                    ));
                    publish(format!(
                        "$JS.API.CONSUMER.DURABLE.CREATE.{}.{}",
                        c.stream, c.durable
                    ));
                }
            }
        }
    }

    /// One line for the operators' table in `docs/security.md`.
    pub fn describe(&self) -> String {
        match self {
            Grant::Publish { stream, subject } => format!("publish `{subject}` to {stream}"),
            Grant::Consume(stream, durable) => format!("pull and acknowledge {stream}/{durable}"),
            Grant::Read(stream) => format!("read {stream}"),
            Grant::Write { stream, subject } => format!("write `{subject}` ({stream})"),
            Grant::Erase(stream) => format!("erase from {stream}"),
            Grant::Inspect(stream) => format!("see {stream}'s counts (not its content)"),
            Grant::Audit => "append to AUDIT".into(),
            Grant::Serve(subject) => format!("answer requests on `{subject}`"),
            Grant::Request(subject) => format!("send requests to `{subject}`"),
            Grant::Observe(subject) => format!("watch `{subject}` live"),
            Grant::LoadtestCameras => {
                "publish frames of `loadtest-00`…`loadtest-63`, watch their faces and templates"
                    .into()
            }
            Grant::Declare => "declare streams, buckets and the stages' consumers".into(),
        }
    }
}

/// NATS permissions of one user, as the server configuration writes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// May reply to requests it received (a service that answers requests).
    pub allow_responses: bool,
}

impl Permissions {
    /// The `permissions` block of a NATS server configuration user entry.
    pub fn to_nats_conf(&self, indent: &str) -> String {
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| format!("{indent}      {},\n", quote(s)))
                .collect::<String>()
        };
        let mut out = format!("{indent}permissions: {{\n");
        out += &format!(
            "{indent}  publish: {{\n{indent}    allow: [\n{}{indent}    ]\n{indent}    deny: [\n{}{indent}    ]\n{indent}  }}\n",
            list(&self.publish_allow),
            list(&self.publish_deny)
        );
        out += &format!(
            "{indent}  subscribe: {{\n{indent}    allow: [\n{}{indent}    ]\n{indent}  }}\n",
            list(&self.subscribe_allow)
        );
        if self.allow_responses {
            out += &format!("{indent}  allow_responses: true\n");
        }
        out += &format!("{indent}}}\n");
        out
    }
}

/// A NATS configuration string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `authorization` block of a NATS server configuration: one nkey user per identity given
/// (public keys only: nothing secret is in the server's configuration).
pub fn authorization_block(users: &[(Identity, String)]) -> String {
    let mut out = String::from("authorization {\n  users: [\n");
    for (identity, public_key) in users {
        out += &format!("    # {}\n    {{\n", identity.name());
        out += &format!("      nkey: {}\n", quote(public_key));
        out += &identity.permissions().to_nats_conf("      ");
        out += "    }\n";
    }
    out += "  ]\n}\n";
    out
}

/// NATS wildcard matching (`*` one token, `>` the rest), as the server applies permissions.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn may_publish(i: Identity, subject: &str) -> bool {
        i.may_publish(subject)
    }

    #[test]
    fn decisions_candidates_erasures_and_releases_each_have_one_author() {
        let authors = |subject: &str| {
            Identity::ALL
                .into_iter()
                .filter(|i| may_publish(*i, subject))
                .collect::<Vec<_>>()
        };
        assert_eq!(authors("lfr.alerts.d1.decision"), [Identity::Dispatch]);
        assert_eq!(authors("lfr.alerts.d1.outcome"), [Identity::Dispatch]);
        assert_eq!(authors("lfr.alerts.d1.walk"), [Identity::Dispatch]);
        assert_eq!(authors("lfr.alerts.d1.candidate"), [Identity::Match]);
        assert_eq!(authors("lfr.alerts.d1.erased"), [Identity::Purge]);
        assert_eq!(authors("lfr.alerts.d1.release"), [Identity::Admin]);
        assert_eq!(authors("lfr.alerts.d1.hold"), [Identity::Admin]);
        assert_eq!(authors("lfr.alerts.d1.lift"), [Identity::Admin]);
        assert_eq!(authors("$JS.API.STREAM.DELETE.AUDIT"), []);
        assert_eq!(authors("$JS.API.STREAM.MSG.DELETE.AUDIT"), []);
        assert_eq!(
            authors("$KV.lfr-sessions.x"),
            [Identity::Dispatch, Identity::Admin]
        );
        // Signed audit anchors: written by the verifier alone, removable by nobody.
        assert_eq!(authors("$KV.lfr-audit-anchors.latest"), [Identity::Purge]);
        for erase in ["MSG.DELETE", "PURGE", "DELETE"] {
            let api = format!("$JS.API.STREAM.{erase}.KV_lfr-audit-anchors");
            assert_eq!(authors(&api), [], "{api}");
        }
        // Subject access requests: the administrator's CLI only, for writing and reading.
        assert_eq!(authors("$KV.lfr-access-requests.SAR-1"), [Identity::Admin]);
        assert_eq!(
            authors("$JS.API.DIRECT.GET.KV_lfr-access-requests.$KV.lfr-access-requests.SAR-1"),
            [Identity::Admin]
        );
    }

    #[test]
    fn only_the_next_stage_pulls_live_biometric_data() {
        for (stream, durable, stage) in [
            ("FRAMES", "detect", Identity::Detect),
            ("FACES", "embed", Identity::Embed),
            ("EMBEDDINGS", "match", Identity::Match),
        ] {
            let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}");
            for i in Identity::ALL {
                assert_eq!(may_publish(i, &next), i == stage, "{i:?} on {stream}");
                let create = format!("$JS.API.CONSUMER.CREATE.{stream}");
                assert!(!may_publish(i, &create), "{i:?} may create on {stream}");
            }
        }
    }

    #[test]
    fn inboxes_are_private_and_only_purge_and_detect_answer_requests() {
        for i in Identity::ALL {
            let p = i.permissions();
            assert!(p
                .subscribe_allow
                .contains(&format!("_INBOX_{}.>", i.name())));
            assert!(!p
                .subscribe_allow
                .iter()
                .any(|s| s == "_INBOX.>" || s == ">"));
            let answers = [Identity::Purge, Identity::Detect].contains(&i);
            assert_eq!(p.allow_responses, answers, "{i:?}");
            assert_eq!(Identity::of(i.name()), Some(i));
        }
        assert_eq!(Identity::of("cli"), Some(Identity::Admin));
    }

    #[test]
    fn the_server_configuration_names_every_user_by_public_key_only() {
        let users: Vec<_> = Identity::ALL
            .into_iter()
            .map(|i| (i, format!("U{}", i.name().to_uppercase())))
            .collect();
        let conf = authorization_block(&users);
        assert_eq!(conf.matches("nkey:").count(), Identity::ALL.len());
        assert!(conf.contains("\"$JS.API.CONSUMER.MSG.NEXT.FRAMES.detect\""));
        assert!(conf.contains("allow_responses: true"));
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
