//! `lfr account` as an administrator uses it on first run, against a real nats-server: create
//! the first supervisor with a password on stdin, list without hashes, refuse a taken id and a
//! weak password, assign, disable, and an audit event for every change.

use lfr_testkit::NatsServer;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const PASSWORD: &str = "correct horse battery";

fn lfr(nats: &NatsServer, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("account")
        .envs(nats.admin_env())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn refused(out: Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains(why),
        "expected refusal '{why}', got: {err}"
    );
}

#[tokio::test]
async fn the_first_supervisor_is_created_from_the_terminal_and_listed_without_its_hash() {
    let nats = NatsServer::start().await;
    let line = format!("{PASSWORD}\n");
    let created = ok(lfr(
        &nats,
        &[
            "create",
            "--id",
            "supt-17",
            "--role",
            "supervisor",
            "--password-stdin",
            "--by",
            "installer",
        ],
        Some(&line),
    ));
    assert!(
        created.contains("created supervisor account supt-17"),
        "{created}"
    );
    let created = ok(lfr(
        &nats,
        &[
            "create",
            "--id",
            "op-3",
            "--role",
            "operator",
            "--deployments",
            "match-day,fair",
            "--password-stdin",
        ],
        Some(PASSWORD),
    ));
    assert!(created.contains("deployments: match-day,fair"), "{created}");

    let listed = ok(lfr(&nats, &["list"], None));
    let supt = listed.lines().find(|l| l.starts_with("supt-17")).unwrap();
    assert!(
        supt.contains("supervisor") && supt.contains("active") && supt.contains("(all)"),
        "{listed}"
    );
    let op = listed.lines().find(|l| l.starts_with("op-3")).unwrap();
    assert!(
        op.contains("operator") && op.contains("match-day,fair"),
        "{listed}"
    );
    assert!(
        !listed.contains("argon2") && !listed.contains(PASSWORD),
        "{listed}"
    );

    // The same id again, a weak password, a bad id or role: refused, nothing changed.
    refused(
        lfr(
            &nats,
            &[
                "create",
                "--id",
                "supt-17",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            Some(&line),
        ),
        "account supt-17 already exists",
    );
    refused(
        lfr(
            &nats,
            &[
                "create",
                "--id",
                "aud-1",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            Some("short\n"),
        ),
        "at least 12 characters",
    );
    refused(
        lfr(
            &nats,
            &[
                "create",
                "--id",
                "a.b",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            Some(&line),
        ),
        "account id",
    );
    refused(
        lfr(
            &nats,
            &["create", "--id", "x", "--role", "admin", "--password-stdin"],
            Some(&line),
        ),
        "no role",
    );
    assert_eq!(ok(lfr(&nats, &["list"], None)).lines().count(), 3);

    // Assign, change the password, disable.
    let assigned = ok(lfr(
        &nats,
        &["assign", "--id", "op-3", "--deployments", "fair"],
        None,
    ));
    assert!(assigned.contains("op-3 now works on: fair"), "{assigned}");
    ok(lfr(
        &nats,
        &["password", "--id", "op-3", "--password-stdin"],
        Some("a brand new passphrase\n"),
    ));
    refused(
        lfr(
            &nats,
            &["password", "--id", "nobody", "--password-stdin"],
            Some(&line),
        ),
        "no account nobody",
    );
    ok(lfr(&nats, &["disable", "--id", "op-3"], None));
    let listed = ok(lfr(&nats, &["list"], None));
    let op = listed.lines().find(|l| l.starts_with("op-3")).unwrap();
    assert!(op.contains("disabled") && op.ends_with("fair"), "{listed}");

    // The console sees what the CLI did.
    let js = nats.admin().await;
    let accounts = lfr_dispatch::auth::Accounts::open(&js).await.unwrap();
    assert!(accounts.verify("supt-17", PASSWORD).await.is_ok());
    assert!(matches!(
        accounts.verify("op-3", "a brand new passphrase").await,
        Err(lfr_dispatch::auth::LoginRefused::Disabled)
    ));

    // create, create, assign, password, disable: five audit events.
    assert_eq!(lfr_testkit::stream_messages(&js, "AUDIT").await, 5);
}
