//! What the `lfr` command tests share: running the binary against a test server as the
//! administrator, as a person logged in with their own account (a session file each, as
//! `LFR_SESSION_FILE`), or as nobody, and reading its answer.
//!
//! The first person of a test is the first supervisor, created as on a fresh install without a
//! login ("first-run bootstrap"); everyone else is created by a logged-in supervisor, as
//! `lfr account create` demands once one exists.
#![allow(dead_code)]

use lfr_testkit::NatsServer;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "a long passphrase";

/// A configuration for `lfr up` that puts each of `services`' HTTP endpoints on a free loopback
/// port (returned in the same order) and dispatch's console on any free port, not 8080.
pub fn up_config(services: &[&str]) -> (String, Vec<u16>) {
    let ports: Vec<u16> = services.iter().map(|_| lfr_testkit::free_port()).collect();
    let config = services
        .iter()
        .zip(&ports)
        .map(|(s, p)| {
            let console = if *s == "dispatch" {
                "console_addr = \"127.0.0.1:0\"\n"
            } else {
                ""
            };
            format!("[{s}]\nhttp_addr = \"127.0.0.1:{p}\"\n{console}")
        })
        .collect();
    (config, ports)
}

/// `lfr <args>` against `nats` as the administrator, with `session` as the session file
/// (`None`: nobody logged in). Add environment, then [`run`] it.
pub fn lfr(nats: &NatsServer, session: Option<&Path>, args: &[&str]) -> Command {
    let nobody = std::env::temp_dir().join("lfr-test-nobody-logged-in");
    let mut command = Command::new(env!("CARGO_BIN_EXE_lfr"));
    command
        .args(args)
        .envs(nats.admin_env())
        .env("LFR_SESSION_FILE", session.unwrap_or(&nobody))
        .env_remove("LFR_SESSION");
    command
}

/// `lfr <args>` with nobody logged in.
pub fn nobody(nats: &NatsServer, args: &[&str]) -> Output {
    run(lfr(nats, None, args), b"")
}

/// Run `command` with `stdin` on its standard input.
pub fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// A person of the test: an account, logged in with its own session file.
pub struct Person<'a> {
    pub nats: &'a NatsServer,
    pub id: String,
    pub session: PathBuf,
    /// Holds the session file.
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl<'a> Person<'a> {
    /// The first supervisor (with `rank`, if any), created with nobody logged in as on a fresh
    /// install, then logged in.
    pub fn bootstrap(nats: &'a NatsServer, id: &str, rank: Option<&str>) -> Person<'a> {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let created = ok(create(nats, None, id, "supervisor", rank));
        assert!(created.contains("first-run bootstrap"), "{created}");
        Person::login(nats, dir, id)
    }

    /// Another account, created by this (logged-in supervisor) person, then logged in.
    pub fn create(&self, id: &str, role: &str, rank: Option<&str>) -> Person<'a> {
        let created = ok(create(self.nats, Some(&self.session), id, role, rank));
        assert!(!created.contains("bootstrap"), "{created}");
        Person::login(self.nats, self._dir.clone(), id)
    }

    fn login(nats: &'a NatsServer, dir: std::sync::Arc<tempfile::TempDir>, id: &str) -> Person<'a> {
        let session = dir.path().join(format!("{id}.session"));
        let login = ["login", "--account", id, "--password-stdin"];
        let said = ok(run(
            lfr(nats, Some(&session), &login),
            format!("{PASSWORD}\n").as_bytes(),
        ));
        assert!(said.contains(&format!("logged in as {id}")), "{said}");
        Person {
            nats,
            id: id.into(),
            session,
            _dir: dir,
        }
    }

    /// `lfr <args>` as this person, to add environment to before [`run`].
    pub fn command(&self, args: &[&str]) -> Command {
        lfr(self.nats, Some(&self.session), args)
    }

    /// `lfr <args>` as this person.
    pub fn lfr(&self, args: &[&str]) -> Output {
        run(self.command(args), b"")
    }

    /// `lfr deployment <args>` as this person.
    pub fn deployment(&self, args: &[&str]) -> Output {
        let mut all = vec!["deployment"];
        all.extend(args);
        self.lfr(&all)
    }
}

/// `lfr account create` of `id` with [`PASSWORD`], as `session` (`None`: nobody).
fn create(
    nats: &NatsServer,
    session: Option<&Path>,
    id: &str,
    role: &str,
    rank: Option<&str>,
) -> Output {
    let mut args = vec![
        "account",
        "create",
        "--id",
        id,
        "--role",
        role,
        "--password-stdin",
    ];
    if let Some(rank) = rank {
        args.extend(["--rank", rank]);
    }
    run(
        lfr(nats, session, &args),
        format!("{PASSWORD}\n").as_bytes(),
    )
}

/// What it printed, after checking it succeeded.
pub fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Check it failed saying `why`.
pub fn refused(out: Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains(why),
        "expected refusal '{why}', got: {err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The refusal of every step that records who took it, with nobody logged in.
pub const NOT_LOGGED_IN: &str = "not logged in: run `lfr login --account <your account>`";
