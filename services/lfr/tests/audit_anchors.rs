//! Signed audit anchors against a real, secured nats-server: the purge service signs the chain's
//! head and keeps it in the anchors bucket; after AUDIT is deleted and rebuilt with valid hashes,
//! or cut short, and every process restarted, `lfr audit verify` exits 1 naming the break and
//! purge's `lfr_audit_chain_intact` is 0. A forged anchor is rejected, and no identity but purge
//! can write to the bucket or remove anything from it.
//!
//! Deleting AUDIT takes more than any bus identity has (the server refuses stream deletion to
//! all): the tests do it as someone with the server's own rights would, by stopping it and
//! removing the stream's directory from its store, then declaring the topology again.

use async_nats::jetstream;
use lfr_common::anchor::{self, AnchorKey, Latest, SignedAnchor};
use lfr_common::audit::{self, append_event};
use lfr_common::Shutdown;
use lfr_purge::{PassSummary, Started};
use lfr_schemas::{subjects, AuditAction, AuditEvent, Message, Timestamp};
use lfr_testkit::{metric, scrape, Identity, NatsServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `lfr audit ARGS` as the administrator.
fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("audit")
        .envs(nats.admin_env())
        .env_remove("LFR_AUDIT_ANCHOR_KEYS")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// An event as dispatch writes one (dispatch's own identity: an ordinary writer).
fn event(n: u32) -> AuditEvent {
    AuditEvent {
        event_id: format!("event-{n}"),
        at: Timestamp::now(),
        action: AuditAction::Consultation,
        actor: "op-1".into(),
        role: "operator".into(),
        deployment: Some("match-day".into()),
        object: format!("alert/{n}"),
        justification: format!("review {n}"),
        recipients: vec![],
        digest: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

async fn write_events(nats: &NatsServer, range: std::ops::RangeInclusive<u32>) {
    let writer = nats.jetstream(Identity::Dispatch).await;
    for n in range {
        append_event(&writer, event(n)).await.unwrap();
    }
}

/// The purge service, a fresh instance, with its anchor key in `key_file`.
struct Purge {
    started: Started,
    shutdown: Shutdown,
}

impl Purge {
    async fn start(nats: &NatsServer, key_file: &Path) -> Purge {
        let mut config = lfr_purge::Config::default();
        config.common.nats = nats.nats_config(Identity::Purge);
        config.purge.http_addr = "127.0.0.1:0".parse().unwrap();
        config.purge.anchor_key_file = Some(key_file.to_path_buf());
        let shutdown = Shutdown::new();
        let started = lfr_purge::start_with_clock(
            config,
            lfr_purge::clock::Clock::system(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        Purge { started, shutdown }
    }

    async fn pass(&self) -> PassSummary {
        self.started.purger.pass().await
    }

    async fn chain_intact_metric(&self) -> Option<f64> {
        let text = scrape(self.started.running.metrics_addr).await;
        metric(&text, "lfr_audit_chain_intact", &[])
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.started.running.done.await;
    }
}

/// AUDIT deleted as only the server's own rights allow: stop it, remove the stream's directory,
/// start it again and declare the topology (a new, empty AUDIT).
async fn delete_audit_on_disk(nats: &mut NatsServer) {
    nats.server.stop().await;
    let dir = find_dir(nats.store_dir(), "AUDIT").expect("AUDIT's directory in the store");
    std::fs::remove_dir_all(&dir).unwrap();
    nats.restart().await;
    nats.declare().await;
}

fn find_dir(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == name)
            && path
                .parent()
                .is_some_and(|p| p.file_name().is_some_and(|n| n == "streams"))
        {
            return Some(path);
        }
        if let Some(found) = find_dir(&path, name) {
            return Some(found);
        }
    }
    None
}

async fn latest(nats: &NatsServer) -> SignedAnchor {
    match anchor::latest(&nats.admin().await).await.unwrap() {
        Latest::Found(a) => a,
        other => panic!("no anchor: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_deleted_and_rebuilt_with_valid_hashes_is_caught_after_every_restart() {
    let mut nats = NatsServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("audit-anchor.key");
    write_events(&nats, 1..=5).await;

    let purge = Purge::start(&nats, &key_file).await;
    let pass = purge.pass().await;
    assert!(pass.audit_chain_intact, "{pass:?}");
    assert_eq!((pass.audit_chain_length, pass.audit_anchored), (5, 5));
    let key = AnchorKey::load(&key_file).unwrap().public().to_string();
    let anchored = latest(&nats).await;
    assert_eq!(anchored.seq, 5);
    assert_eq!(anchored.key, key);

    // The auditor checks, and keeps the anchor offline.
    let out = lfr(&nats, &["verify", "--anchor-key", &key]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("signed anchor: sequence 5"),
        "{}",
        stdout(&out)
    );
    let kept = secrets.path().join("kept.json");
    let out = lfr(
        &nats,
        &[
            "anchors",
            "export",
            "--anchor-key",
            &key,
            "--out",
            kept.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        SignedAnchor::from_json(&std::fs::read_to_string(&kept).unwrap()).unwrap(),
        anchored
    );
    // Signed anchors found, no key to trust them with: the check cannot be made.
    let out = lfr(&nats, &["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("--anchor-key"), "{}", stderr(&out));
    purge.stop().await;

    // A clean restart of everything changes nothing: no false alarm.
    nats.server.stop().await;
    nats.restart().await;
    // The topology keeper brings back the memory buckets a restart loses.
    nats.declare().await;
    let purge = Purge::start(&nats, &key_file).await;
    let pass = purge.pass().await;
    assert!(pass.audit_chain_intact, "{pass:?}");
    assert_eq!(purge.chain_intact_metric().await, Some(1.0));
    purge.stop().await;

    // The attack: AUDIT deleted and rebuilt with seven events of valid hashes.
    delete_audit_on_disk(&mut nats).await;
    write_events(&nats, 1..=7).await;
    let admin = nats.admin().await;
    let alone = audit::verify(&admin).await.unwrap();
    assert!(
        alone.is_intact(),
        "on its own the rebuilt log verifies: {alone}"
    );

    // Every service restarted: a fresh purge reads the anchor back and finds the break.
    let purge = Purge::start(&nats, &key_file).await;
    let pass = purge.pass().await;
    assert!(!pass.audit_chain_intact, "{pass:?}");
    assert_eq!(purge.chain_intact_metric().await, Some(0.0));
    assert_eq!(
        latest(&nats).await,
        anchored,
        "a rebuilt log is never anchored"
    );
    purge.stop().await;

    let out = lfr(&nats, &["verify", "--anchor-key", &key]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("BROKEN at sequence 5: not the event anchored here"),
        "{text}"
    );
    assert!(text.contains("AUDIT RE-CREATED"), "{text}");
    // The kept copy alone (its own key trusted) proves the same.
    let out = lfr(&nats, &["verify", "--anchor-file", kept.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("BROKEN at sequence 5"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_short_is_caught_after_a_restart() {
    let mut nats = NatsServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("audit-anchor.key");
    write_events(&nats, 1..=8).await;
    let purge = Purge::start(&nats, &key_file).await;
    assert_eq!(purge.pass().await.audit_anchored, 8);
    purge.stop().await;
    let key = AnchorKey::load(&key_file).unwrap().public().to_string();

    // The first five events, byte for byte, and nothing after: a consistent, shorter chain.
    let admin = nats.admin().await;
    let kept: Vec<(String, AuditEvent)> =
        lfr_testkit::records(&admin, "AUDIT", subjects::AUDIT_ALL).await;
    delete_audit_on_disk(&mut nats).await;
    let writer = nats.jetstream(Identity::Dispatch).await;
    for (subject, e) in kept.into_iter().take(5) {
        writer
            .publish(subject, e.encode().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert!(audit::verify(&nats.admin().await)
        .await
        .unwrap()
        .is_intact());

    let purge = Purge::start(&nats, &key_file).await;
    assert!(!purge.pass().await.audit_chain_intact);
    assert_eq!(purge.chain_intact_metric().await, Some(0.0));
    purge.stop().await;
    let out = lfr(&nats, &["verify", "--anchor-key", &key]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "BROKEN at sequence 6: the log ends here, but an anchor says it reached sequence 8"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_anchors_are_rejected_and_only_purge_writes_the_bucket() {
    let nats = NatsServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("audit-anchor.key");
    write_events(&nats, 1..=3).await;
    let purge = Purge::start(&nats, &key_file).await;
    assert!(purge.pass().await.audit_chain_intact);
    let key = AnchorKey::load(&key_file).unwrap().public().to_string();
    let genuine = latest(&nats).await;

    // Writers other than purge, the administrator included, cannot write an anchor at all.
    let forger = AnchorKey::generate().unwrap();
    let forged = forger.sign(&genuine.point(), Timestamp::now(), genuine.audit_created_ns);
    for identity in [Identity::Dispatch, Identity::Admin, Identity::Match] {
        let js = jetstream::ContextBuilder::new()
            .timeout(std::time::Duration::from_millis(1500))
            .build(nats.client(identity).await);
        assert!(
            anchor::store(&js, &forged).await.is_err(),
            "{identity:?} stored an anchor"
        );
    }
    // Nor can anyone remove anchors: the stream refuses purges and rollups, and the server
    // refuses to lift that once set.
    let admin = nats.admin().await;
    let bucket =
        lfr_schemas::streams::buckets::stream(lfr_schemas::streams::buckets::AUDIT_ANCHORS);
    let spec = lfr_schemas::streams::topology(&Default::default())
        .into_iter()
        .find(|s| s.name == bucket)
        .unwrap();
    for weaker in [
        lfr_schemas::streams::StreamSpec {
            deny_delete: false,
            ..spec.clone()
        },
        lfr_schemas::streams::StreamSpec {
            deny_purge: false,
            ..spec.clone()
        },
    ] {
        let refused = admin
            .update_stream(lfr_common::topology::stream_config(&weaker))
            .await;
        assert!(
            refused.is_err(),
            "the administrator weakened the anchors bucket"
        );
    }
    assert!(admin.delete_stream(&bucket).await.is_err());
    // Even with purge's credentials (not its key), a rollup that would drop history is refused.
    let purge_js = nats.jetstream(Identity::Purge).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let rollup = purge_js
        .publish_with_headers(anchor::subject(), headers, "{}".into())
        .await
        .unwrap()
        .await;
    assert!(rollup.is_err(), "a rollup was accepted");

    // With purge's credentials but not its key, a forged anchor can be written: it is rejected.
    anchor::store(&purge_js, &forged).await.unwrap();
    let pass = purge.pass().await;
    assert!(!pass.audit_chain_intact, "{pass:?}");
    assert_eq!(purge.chain_intact_metric().await, Some(0.0));
    let out = lfr(&nats, &["verify", "--anchor-key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("UNTRUSTED anchor (sequence 3)"),
        "{}",
        stdout(&out)
    );
    // Claiming the trusted key without holding it: the signature does not verify.
    let claimed = SignedAnchor {
        key: key.clone(),
        ..forged
    };
    anchor::store(&purge_js, &claimed).await.unwrap();
    let out = lfr(&nats, &["verify", "--anchor-key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FORGED anchor (sequence 3): its signature does not verify"),
        "{}",
        stdout(&out)
    );
    purge.stop().await;
}
