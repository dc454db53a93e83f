//! `lfr deployment` as supervisors use it, each logged in as their own account, against a real
//! nats-server and the real models: duties are separated (the enroller neither authorises nor
//! reviews), only a superintendent authorises, the gates refuse activation until governance,
//! authorisation and review, and ending wipes the list.

use lfr_testkit::{sample_photo, NatsServer};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn utc(offset: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `lfr deployment <args>` with nobody logged in.
fn lfr(nats: &NatsServer, args: &[&str]) -> Output {
    as_person(nats, None, &["deployment"], args)
}

/// `lfr <command> <args>` with `session` as the session file (`None`: nobody logged in).
fn as_person(nats: &NatsServer, session: Option<&Path>, command: &[&str], args: &[&str]) -> Output {
    let nobody = std::env::temp_dir().join("lfr-test-nobody-logged-in");
    Command::new(env!("CARGO_BIN_EXE_lfr"))
        .args(command)
        .envs(nats.admin_env())
        .env("LFR_SESSION_FILE", session.unwrap_or(&nobody))
        .env_remove("LFR_SESSION")
        .args(args)
        .output()
        .unwrap()
}

/// `lfr <args>` with `input` on stdin and `session` as the session file.
fn with_stdin(nats: &NatsServer, session: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lfr"))
        .args(args)
        .envs(nats.admin_env())
        .env("LFR_SESSION_FILE", session)
        .env_remove("LFR_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{input}\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

const PASSWORD: &str = "a long passphrase";

/// A person of the test: a supervisor account (with `rank`), logged in with its own session file.
struct Person<'a> {
    nats: &'a NatsServer,
    session: PathBuf,
}

impl<'a> Person<'a> {
    fn new(nats: &'a NatsServer, dir: &Path, id: &str, rank: &str) -> Person<'a> {
        let session = dir.join(format!("{id}.session"));
        let create = [
            "account",
            "create",
            "--id",
            id,
            "--role",
            "supervisor",
            "--password-stdin",
            "--rank",
            rank,
        ];
        ok(with_stdin(nats, &session, &create, PASSWORD));
        let login = ["login", "--account", id, "--password-stdin"];
        let said = ok(with_stdin(nats, &session, &login, PASSWORD));
        assert!(said.contains(&format!("logged in as {id}")), "{said}");
        Person { nats, session }
    }

    fn deployment(&self, args: &[&str]) -> Output {
        as_person(self.nats, Some(&self.session), &["deployment"], args)
    }
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
    let people = tempfile::tempdir().unwrap();
    // The enroller has authorising rank too: duties, not rank, keep them from authorising.
    let enroller = Person::new(&nats, people.path(), "supt-9", "superintendent");
    let inspector = Person::new(&nats, people.path(), "insp-4", "inspector");
    let superintendent = Person::new(&nats, people.path(), "supt-17", "superintendent");

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
        created.contains("threshold 0.677"),
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
    let people = tempfile::tempdir().unwrap();
    let sergeant = Person::new(&nats, people.path(), "sgt-12", "sergeant");
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
