//! `lfr deployment` as a supervisor uses it, against a real nats-server and the real models: the
//! gates refuse activation until authorisation and review, and ending wipes the list.

use lfr_testkit::{sample_photo, NatsServer};
use std::process::{Command, Output};

fn utc(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("deployment")
        .envs(nats.admin_env())
        .args(args)
        .output()
        .unwrap()
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
async fn a_supervisor_takes_a_deployment_through_its_gates_and_ends_it() {
    let nats = NatsServer::start().await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(sample_photo("faces/obama.jpg"), folder.path().join("a.jpg")).unwrap();
    std::fs::copy(
        sample_photo("group/sample1.jpg"),
        folder.path().join("group.jpg"),
    )
    .unwrap();
    std::fs::write(
        folder.path().join("manifest.toml"),
        "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"a.jpg\"\n\
         [[entry]]\nreference = \"CUST-G\"\ncategory = \"risk\"\nimage = \"group.jpg\"\n",
    )
    .unwrap();
    let (start, end) = (utc("+1 hour"), utc("+6 hours"));
    ok(lfr(
        &nats,
        &[
            "create",
            "--id",
            "match-day",
            "--name",
            "Match day",
            "--location",
            "North gate",
            "--cameras",
            "gate-1,gate-2",
            "--start",
            &start,
            "--end",
            &end,
            "--purpose",
            "Locate wanted offenders",
        ],
    ));
    refused(
        lfr(&nats, &["activate", "--id", "match-day"]),
        "not authorised",
    );

    let enrolled = ok(lfr(
        &nats,
        &[
            "enrol",
            "--id",
            "match-day",
            "--folder",
            &folder.path().to_string_lossy(),
        ],
    ));
    assert!(enrolled.contains("REFUSED CUST-G"), "{enrolled}");
    let digest = enrolled
        .rsplit("digest ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(digest.len(), 64, "{enrolled}");

    refused(
        lfr(&nats, &["activate", "--id", "match-day"]),
        "not authorised",
    );
    ok(lfr(
        &nats,
        &["authorise", "--id", "match-day", "--officer", "supt-17"],
    ));
    refused(
        lfr(&nats, &["activate", "--id", "match-day"]),
        "not been reviewed",
    );
    refused(
        lfr(
            &nats,
            &[
                "review",
                "--id",
                "match-day",
                "--reviewer",
                "insp-4",
                "--digest",
                "abc",
            ],
        ),
        "signed off list abc",
    );
    ok(lfr(
        &nats,
        &[
            "review",
            "--id",
            "match-day",
            "--reviewer",
            "insp-4",
            "--digest",
            &digest,
        ],
    ));
    ok(lfr(&nats, &["activate", "--id", "match-day"]));
    let shown = ok(lfr(&nats, &["show", "--id", "match-day"]));
    assert!(
        shown.contains("\"state\": \"Active\"") && shown.contains("Unverified"),
        "{shown}"
    );

    let ended = ok(lfr(&nats, &["end", "--id", "match-day", "--by", "supt-17"]));
    assert!(ended.contains("\"messages_erased\":2"), "{ended}");
    let shown = ok(lfr(&nats, &["show", "--id", "match-day"]));
    assert!(shown.contains("\"state\": \"Ended\""), "{shown}");

    // Each step left an audit event.
    let js = nats.admin().await;
    let mut audit = js.get_stream("AUDIT").await.unwrap();
    let messages = audit.info().await.unwrap().state.messages;
    assert_eq!(
        messages, 6,
        "create, enrol, authorise, review, activate, end"
    );
}

#[tokio::test]
async fn enrol_takes_a_tar_archive_as_the_console_api_does() {
    let nats = NatsServer::start().await;
    let folder = tempfile::tempdir().unwrap();
    let custody = folder.path().join("custody");
    std::fs::create_dir(&custody).unwrap();
    std::fs::copy(sample_photo("faces/obama.jpg"), custody.join("a.jpg")).unwrap();
    std::fs::copy(sample_photo("faces/biden.jpg"), custody.join("b.jpg")).unwrap();
    std::fs::write(
        custody.join("manifest.toml"),
        "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"a.jpg\"\n\
         [[entry]]\nreference = \"CUST-B\"\ncategory = \"blue\"\nimage = \"b.jpg\"\n",
    )
    .unwrap();
    let archive = folder.path().join("custody.tar.gz");
    let tarred = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(folder.path())
        .arg("custody")
        .status()
        .unwrap();
    assert!(tarred.success());
    let (start, end) = (utc("+1 hour"), utc("+6 hours"));
    ok(lfr(
        &nats,
        &[
            "create",
            "--id",
            "fair",
            "--name",
            "Fair",
            "--location",
            "Square",
            "--cameras",
            "sq-1",
            "--start",
            &start,
            "--end",
            &end,
            "--purpose",
            "Locate missing people",
        ],
    ));
    let archive = archive.to_string_lossy();
    refused(
        lfr(
            &nats,
            &[
                "enrol",
                "--id",
                "fair",
                "--archive",
                &archive,
                "--folder",
                ".",
            ],
        ),
        "cannot be used with",
    );
    let enrolled = ok(lfr(
        &nats,
        &["enrol", "--id", "fair", "--archive", &archive],
    ));
    assert!(
        enrolled.contains("enrolled 2 entries (2 subjects), refused 0"),
        "{enrolled}"
    );
    refused(
        lfr(&nats, &["enrol", "--id", "nowhere", "--archive", &archive]),
        "no deployment nowhere",
    );
}
