//! `lfr deployment` as supervisors use it, each logged in as their own account, against a real
//! nats-server and the real models: duties are separated (the enroller neither authorises nor
//! reviews), only a superintendent authorises, the gates refuse activation until governance,
//! authorisation and review, and ending wipes the list.

mod support;

use lfr_testkit::{sample_photo, NatsServer};
use std::process::{Command, Output};
use support::{ok, refused, Person};

fn utc(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `lfr deployment <args>` with nobody logged in.
fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    let mut all = vec!["deployment"];
    all.extend(args);
    support::nobody(nats, &all)
}

#[tokio::test]
async fn separated_accounts_take_a_deployment_through_its_gates_and_end_it() {
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
    // The enroller has authorising rank too: duties, not rank, keep them from authorising.
    let enroller = Person::bootstrap(&nats, "supt-9", Some("superintendent"));
    let inspector = enroller.create("insp-4", "supervisor", Some("inspector"));
    let superintendent = enroller.create("supt-17", "supervisor", Some("superintendent"));

    let (start, end) = (utc("+1 hour"), utc("+6 hours"));
    let create = [
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
    ];
    // Nobody logged in: nothing is created, and the command says how to log in.
    refused(lfr(&nats, &create), "not logged in: run `lfr login");
    // Looser than the calibrated point without a reason: refused.
    let mut loose = create.to_vec();
    loose.extend(["--threshold", "0.5"]);
    refused(
        enroller.deployment(&loose),
        "looser than the embedder's calibrated",
    );
    let created = ok(enroller.deployment(&create));
    assert!(
        created.contains("threshold 0.678"),
        "the calibrated default: {created}"
    );

    let enrolled = ok(enroller.deployment(&[
        "enrol",
        "--id",
        "match-day",
        "--folder",
        &folder.path().to_string_lossy(),
    ]));
    assert!(enrolled.contains("REFUSED CUST-G"), "{enrolled}");
    let digest = enrolled
        .rsplit("digest ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(digest.len(), 64, "{enrolled}");

    // No governance record yet: an authorisation is refused.
    refused(
        superintendent.deployment(&["authorise", "--id", "match-day"]),
        "no complete governance record",
    );
    ok(enroller.deployment(&[
        "govern",
        "--id",
        "match-day",
        "--gold",
        "ACC Smith",
        "--silver",
        "Supt Jones",
        "--bronze",
        "Insp Patel",
        "--objectives",
        "Locate wanted offenders attending the match",
        "--intelligence-case",
        "INT/2026/0042",
        "--signage",
        "Signs at every gate; press notice on 26 November",
    ]));
    refused(
        enroller.deployment(&["activate", "--id", "match-day"]),
        "not authorised",
    );
    // The enroller may not authorise; an inspector is not of authorising rank.
    refused(
        enroller.deployment(&["authorise", "--id", "match-day"]),
        "supt-9 enrolled the watch list",
    );
    refused(
        inspector.deployment(&["authorise", "--id", "match-day"]),
        "authorised by a superintendent or above",
    );
    let authorised = ok(superintendent.deployment(&["authorise", "--id", "match-day"]));
    assert!(authorised.contains(&digest), "names the list: {authorised}");
    refused(
        enroller.deployment(&["activate", "--id", "match-day"]),
        "not been reviewed",
    );
    refused(
        inspector.deployment(&["review", "--id", "match-day", "--digest", "abc"]),
        "signed off list abc",
    );
    refused(
        enroller.deployment(&["review", "--id", "match-day", "--digest", &digest]),
        "supt-9 enrolled the watch list",
    );
    ok(inspector.deployment(&["review", "--id", "match-day", "--digest", &digest]));
    ok(enroller.deployment(&["activate", "--id", "match-day"]));
    let shown = ok(lfr(&nats, &["show", "--id", "match-day"]));
    assert!(
        shown.contains("\"state\": \"Active\"") && shown.contains("Unverified"),
        "{shown}"
    );
    assert!(shown.contains("\"rank\": \"superintendent\""), "{shown}");
    assert!(shown.contains("INT/2026/0042"), "{shown}");

    let ended = ok(superintendent.deployment(&["end", "--id", "match-day"]));
    assert!(ended.contains("\"messages_erased\":2"), "{ended}");
    let shown = ok(lfr(&nats, &["show", "--id", "match-day"]));
    assert!(shown.contains("\"state\": \"Ended\""), "{shown}");

    // Each step that happened left one audit event naming the account that took it.
    let js = nats.admin().await;
    let filter = lfr_common::audit::AuditFilter {
        deployment: Some("match-day".into()),
        ..Default::default()
    };
    let events = lfr_common::audit::query(&js, &filter).await.unwrap().events;
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.actor.as_str(), e.event.justification.as_str()))
        .collect();
    let actors: Vec<&str> = steps.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        actors,
        ["supt-9", "supt-9", "supt-9", "supt-17", "insp-4", "supt-9", "supt-17"],
        "create, enrol, govern, authorise, review, activate, end: {steps:?}"
    );
    assert!(steps[2].1.contains("INT/2026/0042"), "{steps:?}");
    assert!(steps[3].1.contains("superintendent"), "{steps:?}");
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
    let sergeant = Person::bootstrap(&nats, "sgt-12", Some("sergeant"));
    let (start, end) = (utc("+1 hour"), utc("+6 hours"));
    ok(sergeant.deployment(&[
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
    ]));
    let archive = archive.to_string_lossy();
    refused(
        sergeant.deployment(&[
            "enrol",
            "--id",
            "fair",
            "--archive",
            &archive,
            "--folder",
            ".",
        ]),
        "cannot be used with",
    );
    let enrolled = ok(sergeant.deployment(&["enrol", "--id", "fair", "--archive", &archive]));
    assert!(
        enrolled.contains("enrolled 2 entries (2 subjects), refused 0"),
        "{enrolled}"
    );
    refused(
        sergeant.deployment(&["enrol", "--id", "nowhere", "--archive", &archive]),
        "no deployment nowhere",
    );
}
