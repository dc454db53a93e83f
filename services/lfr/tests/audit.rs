//! `lfr audit` as an auditor uses it against a real nats-server: verify's exit status says whether
//! the chain is intact, and query filters what it prints.

use lfr_common::audit::Audit;
use lfr_schemas::streams::{self, TopologyLimits};
use lfr_schemas::{subjects, AuditAction, AuditEvent, AuditObject, Message, Timestamp};
use lfr_testkit::NatsServer;
use std::process::{Command, Output};

fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("audit")
        .envs(nats.admin_env())
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn connect(nats: &NatsServer) -> async_nats::jetstream::Context {
    let js = nats.admin().await;
    for spec in streams::topology(&TopologyLimits::default()) {
        js.create_or_update_stream(lfr_common::topology::stream_config(&spec))
            .await
            .unwrap();
    }
    js
}

async fn record(js: &async_nats::jetstream::Context, actor: &str, action: AuditAction, n: u32) {
    Audit {
        actor,
        role: "operator",
    }
    .event(action, AuditObject::Alert(n.to_string()))
    .deployment("match-day")
    .why(format!("reason {n}"))
    .recipient("officer-9")
    .record(js)
    .await
    .unwrap();
}

#[tokio::test]
async fn verify_exits_0_when_intact_and_1_at_the_first_broken_link() {
    let nats = NatsServer::start().await;
    let js = connect(&nats).await;

    // An empty log is intact.
    let out = lfr(&nats, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("intact: 0 events"),
        "{}",
        stdout(&out)
    );

    for n in 1..=5 {
        record(&js, "op-1", AuditAction::Consultation, n).await;
    }
    let out = lfr(&nats, &["verify"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("intact: 5 events"), "{text}");
    let anchor = text
        .lines()
        .find_map(|l| l.strip_prefix("anchor "))
        .expect("an anchor line")
        .to_string();
    assert!(anchor.starts_with("5:"), "{anchor}");
    assert_eq!(
        lfr(&nats, &["verify", "--anchor", &anchor]).status.code(),
        Some(0)
    );

    // An event published around the chain (not linked onto event 5) breaks it at sequence 6.
    let mut forged = AuditEvent {
        event_id: "forged".into(),
        at: Timestamp::now(),
        action: AuditAction::Erasure,
        actor: "intruder".into(),
        role: "supervisor".into(),
        deployment: None,
        object: "alerts/match-day".into(),
        justification: "tidy up".into(),
        recipients: vec![],
        digest: None,
        prev_hash: String::new(),
        hash: String::new(),
    };
    forged.seal(AuditEvent::GENESIS_HASH);
    js.publish(subjects::audit(None), forged.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
    record(&js, "op-1", AuditAction::Consultation, 7).await;
    let out = lfr(&nats, &["verify"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("BROKEN at sequence 6: does not follow the event before it"),
        "{text}"
    );
    assert!(text.contains("5 events before it are intact"), "{text}");

    // An anchor the log no longer passes through.
    let wrong = format!("5:{}", "0".repeat(64));
    let out = lfr(&nats, &["verify", "--anchor", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("BROKEN at sequence 5: not the event anchored here"));

    // No server: the check could not be made.
    let nowhere = format!("tls://127.0.0.1:{}", lfr_testkit::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_lfr"))
        .args(["audit", "verify"])
        .envs(nats.admin_env())
        .env("LFR_NATS__URL", nowhere)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot verify"));
}

#[tokio::test]
async fn query_prints_only_what_the_filters_select() {
    let nats = NatsServer::start().await;
    let js = connect(&nats).await;
    record(&js, "op-1", AuditAction::Consultation, 1).await;
    record(&js, "op-2", AuditAction::Consultation, 2).await;
    record(&js, "op-1", AuditAction::Disclosure, 3).await;
    record(&js, "op-2", AuditAction::Disclosure, 4).await;

    let out = lfr(&nats, &["query", "--actor", "op-2"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("seq=2 consultation op-2/operator deployment=match-day object=alert/2 recipients=officer-9 justification=\"reason 2\""), "{text}");
    assert!(
        lines[1].contains("seq=4 disclosure op-2/operator"),
        "{text}"
    );
    assert!(lines.iter().all(|l| !l.contains("op-1")), "{text}");
    // Times print as `--since` takes them.
    assert!(
        lines[0].starts_with("20") && lines[0].as_bytes()[19] == b'Z',
        "{text}"
    );

    let out = lfr(
        &nats,
        &[
            "query",
            "--actor",
            "op-1",
            "--action",
            "disclosure",
            "--json",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["seq"], 3);
    assert_eq!(events[0]["object"], "alert/3");
    assert_eq!(events[0]["action"], "disclosure");
    assert_eq!(events[0]["hash"].as_str().unwrap().len(), 64);

    let out = lfr(
        &nats,
        &[
            "query",
            "--object",
            "alert/*",
            "--until",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    let out = lfr(
        &nats,
        &[
            "query",
            "--object",
            "alert/*",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert_eq!(stdout(&out).lines().count(), 4);

    let out = lfr(&nats, &["query", "--action", "peeking"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown action"));
}
