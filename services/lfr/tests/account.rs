//! `lfr account` as an administrator uses it on first run, against a real nats-server: create
//! the first supervisor with a password on stdin and no login (first-run bootstrap, recorded as
//! `bootstrap`), then everything else as that supervisor, logged in: list without hashes, refuse
//! a taken id and a weak password, assign, disable, and an audit event for every change naming
//! the account. Once a supervisor exists, nothing is changed without a supervisor's session.

mod support;

use lfr_testkit::NatsServer;
use std::path::Path;
use std::process::Output;
use support::{ok, refused, NOT_LOGGED_IN};

const PASSWORD: &str = "correct horse battery";

/// `lfr account <args>` with `stdin`, as the session in `session` (`None`: nobody logged in).
fn lfr(nats: &NatsServer, session: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["account"];
    all.extend(args);
    support::run(
        support::lfr(nats, session, &all),
        stdin.unwrap_or("").as_bytes(),
    )
}

/// Log `id` in with `password`, its session in `session`.
fn login(nats: &NatsServer, session: &Path, id: &str, password: &str) {
    let login = ["login", "--account", id, "--password-stdin"];
    ok(support::run(
        support::lfr(nats, Some(session), &login),
        format!("{password}\n").as_bytes(),
    ));
}

#[tokio::test]
async fn the_first_supervisor_is_created_from_the_terminal_and_listed_without_its_hash() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let line = format!("{PASSWORD}\n");
    let sessions = tempfile::tempdir().unwrap();
    let supt = sessions.path().join("supt-17.session");

    // First run, nobody can log in yet: only the first supervisor may be created.
    refused(
        lfr(
            &nats,
            None,
            &[
                "create",
                "--id",
                "op-1",
                "--role",
                "operator",
                "--password-stdin",
            ],
            Some(&line),
        ),
        "no active supervisor account exists yet",
    );
    refused(
        lfr(&nats, None, &["disable", "--id", "op-1"], None),
        "no active supervisor account exists yet",
    );
    assert_eq!(lfr_testkit::stream_messages(&js, "AUDIT").await, 0);
    let created = ok(lfr(
        &nats,
        None,
        &[
            "create",
            "--id",
            "supt-17",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        Some(&line),
    ));
    assert!(
        created.contains("created supervisor account supt-17"),
        "{created}"
    );
    assert!(created.contains("first-run bootstrap"), "{created}");

    // Now a supervisor exists: without a session nothing is changed or recorded, not even
    // another supervisor.
    for args in [
        &[
            "create",
            "--id",
            "supt-18",
            "--role",
            "supervisor",
            "--password-stdin",
        ][..],
        &[
            "create",
            "--id",
            "op-3",
            "--role",
            "operator",
            "--password-stdin",
        ][..],
        &["disable", "--id", "supt-17"][..],
        &["rank", "--id", "supt-17", "--rank", "chief-constable"][..],
    ] {
        refused(lfr(&nats, None, args, Some(&line)), NOT_LOGGED_IN);
    }
    assert_eq!(ok(lfr(&nats, None, &["list"], None)).lines().count(), 2);
    assert_eq!(lfr_testkit::stream_messages(&js, "AUDIT").await, 1);

    login(&nats, &supt, "supt-17", PASSWORD);
    let me = Some(supt.as_path());
    let created = ok(lfr(
        &nats,
        me,
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
    assert!(!created.contains("bootstrap"), "{created}");

    let listed = ok(lfr(&nats, None, &["list"], None));
    let supt_line = listed.lines().find(|l| l.starts_with("supt-17")).unwrap();
    assert!(
        supt_line.contains("supervisor")
            && supt_line.contains("active")
            && supt_line.contains("(all)"),
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
            me,
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
            me,
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
            me,
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
            me,
            &["create", "--id", "x", "--role", "admin", "--password-stdin"],
            Some(&line),
        ),
        "no role",
    );
    refused(
        lfr(
            &nats,
            me,
            &[
                "create",
                "--id",
                "bootstrap",
                "--role",
                "supervisor",
                "--password-stdin",
            ],
            Some(&line),
        ),
        "names an actor of the audit trail that is not a person",
    );
    assert_eq!(ok(lfr(&nats, None, &["list"], None)).lines().count(), 3);

    // An operator's own session does not administer accounts.
    let op_session = sessions.path().join("op-3.session");
    login(&nats, &op_session, "op-3", PASSWORD);
    refused(
        lfr(
            &nats,
            Some(&op_session),
            &["assign", "--id", "op-3", "--deployments", "fair,away-day"],
            None,
        ),
        "`lfr account assign` is a supervisor's step: you are logged in as op-3 (operator)",
    );

    // Assign, change the password, disable.
    let assigned = ok(lfr(
        &nats,
        me,
        &["assign", "--id", "op-3", "--deployments", "fair"],
        None,
    ));
    assert!(assigned.contains("op-3 now works on: fair"), "{assigned}");
    ok(lfr(
        &nats,
        me,
        &["password", "--id", "op-3", "--password-stdin"],
        Some("a brand new passphrase\n"),
    ));
    refused(
        lfr(
            &nats,
            me,
            &["password", "--id", "nobody", "--password-stdin"],
            Some(&line),
        ),
        "no account nobody",
    );
    ok(lfr(&nats, me, &["disable", "--id", "op-3"], None));
    let listed = ok(lfr(&nats, None, &["list"], None));
    let op = listed.lines().find(|l| l.starts_with("op-3")).unwrap();
    assert!(op.contains("disabled") && op.ends_with("fair"), "{listed}");

    // The console sees what the CLI did.
    let accounts = lfr_dispatch::auth::Accounts::open(&js).await.unwrap();
    assert!(accounts.verify("supt-17", PASSWORD).await.is_ok());
    assert!(matches!(
        accounts.verify("op-3", "a brand new passphrase").await,
        Err(lfr_dispatch::auth::LoginRefused::Disabled)
    ));

    // create (bootstrap), then create, assign, password, disable as supt-17: five changes, each
    // naming who made it; and the two logins.
    let events = lfr_common::audit::query(&js, &Default::default())
        .await
        .unwrap()
        .events;
    let changes: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e.event.action == lfr_schemas::AuditAction::ConfigurationChange)
        .map(|e| {
            (
                e.event.actor.as_str(),
                e.event.role.as_str(),
                e.event.object.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("bootstrap", "supervisor", "account/supt-17"),
            ("supt-17", "supervisor", "account/op-3"),
            ("supt-17", "supervisor", "account/op-3"),
            ("supt-17", "supervisor", "account/op-3"),
            ("supt-17", "supervisor", "account/op-3"),
        ]
    );
    let logins = events
        .iter()
        .filter(|e| e.event.action == lfr_schemas::AuditAction::Login)
        .count();
    assert_eq!((events.len(), logins), (7, 2));
}

#[tokio::test]
async fn with_every_supervisor_disabled_the_first_run_bootstrap_opens_again() {
    let nats = NatsServer::start().await;
    let first = support::Person::bootstrap(&nats, "supt-1", None);
    ok(first.lfr(&["account", "disable", "--id", "supt-1"]));
    // Nobody can log in as a supervisor any more: a new one may be created without a login,
    // recorded as the bootstrap, and nothing else.
    refused(
        lfr(&nats, None, &["enable", "--id", "supt-1"], None),
        "no active supervisor account exists yet",
    );
    let created = ok(lfr(
        &nats,
        None,
        &[
            "create",
            "--id",
            "supt-2",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
    assert!(created.contains("first-run bootstrap"), "{created}");
    refused(
        lfr(&nats, None, &["enable", "--id", "supt-1"], None),
        NOT_LOGGED_IN,
    );
}
