//! Clean stops in every state: each service binary, running against a real nats-server, stops on
//! SIGTERM or SIGINT within 10 s when NATS is gone, when its stdout and stderr are pipes nobody
//! reads any more (`lfr up | tee log` after Ctrl-C killed `tee`), and when both hold at once; and
//! `lfr up`, sent Ctrl-C as a terminal sends it (SIGINT to its whole process group) with its
//! output's reader gone, stops every service, ends the demonstration deployment, and stops
//! nats-server last: the server runs in a process group of its own, so the SIGINT never reaches it.
//!
//! Dispatch holds an operator's live stream (`/events`) open meanwhile, as a console page does.
//! Each service must exit with status 0: a stop rescued by the services' last-resort deadline
//! (exit status 1) fails these tests as a hang would.

mod support;

use lfr_common::config::NatsConfig;
use lfr_common::local_nats::{LocalNats, Setup};
use lfr_testkit::{eventually, free_port, Identity, NatsServer};
use lfr_watchlist::deployment::State;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const SERVICES: [&str; 6] = ["ingest", "detect", "embed", "match", "dispatch", "purge"];

/// What the issue promises: a service stops within this long of the signal, whatever else holds.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How a service's standard output and error are connected.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    /// To files (read back when a test fails).
    Files,
    /// To pipes whose read ends are closed at once: every write fails with EPIPE.
    Closed,
}

/// One service binary started by a test.
struct Started {
    name: &'static str,
    child: Child,
    http: SocketAddr,
    log: PathBuf,
}

/// The services of a test, and where dispatch's console listens.
struct System {
    services: Vec<Started>,
    console: SocketAddr,
}

fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_lfr"))
        .parent()
        .unwrap()
        .join(format!("lfr-{name}"));
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Every service against `nats`, the sample camera covered by a live deployment (so frames are
/// in flight), purge passing every second (so a pass may be under way when the signal comes).
async fn start_services(nats: &NatsServer, dir: &Path, output: Output) -> System {
    let ports: Vec<u16> = SERVICES.iter().map(|_| free_port()).collect();
    let console = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let addr = |s: &str| {
        let i = SERVICES.iter().position(|x| *x == s).unwrap();
        format!("127.0.0.1:{}", ports[i])
    };
    let config = format!(
        "[nats]\nurl = \"{url}\"\nca = {ca:?}\n\n[log]\nfilter = \"info\"\n\n\
         [ingest]\nhttp_addr = \"{ingest}\"\n\n[[ingest.cameras]]\nid = \"sample\"\n\
         source = \"dir:{sample}\"\nfps = 4.0\nrepeat = true\n\n\
         [detect]\nhttp_addr = \"{detect}\"\n\n[embed]\nhttp_addr = \"{embed}\"\n\n\
         [match]\nhttp_addr = \"{matcher}\"\n\n\
         [dispatch]\nhttp_addr = \"{dispatch}\"\nconsole_addr = \"{console}\"\n\n\
         [dispatch.auth]\ncookie_secure = false\n\n\
         [purge]\nhttp_addr = \"{purge}\"\ninterval = 1.0\n",
        url = nats.url(),
        ca = nats.ca_file().display().to_string(),
        sample = lfr_testkit::sample_photo("faces").display(),
        ingest = addr("ingest"),
        detect = addr("detect"),
        embed = addr("embed"),
        matcher = addr("match"),
        dispatch = addr("dispatch"),
        purge = addr("purge"),
    );
    // A console account, so a test can hold a live stream open as an operator's page does.
    let accounts = lfr_dispatch::auth::Accounts::open(&nats.admin().await)
        .await
        .unwrap();
    accounts
        .create(
            "op-1",
            lfr_dispatch::auth::Role::Operator,
            support::PASSWORD,
            vec!["testkit-live".into()],
        )
        .await
        .unwrap();
    let config_path = dir.join("lfr.toml");
    std::fs::write(&config_path, config).unwrap();
    let master_key = lfr_vault::MasterKey::generate().to_base64();
    let mut started = Vec::new();
    for (name, port) in SERVICES.into_iter().zip(&ports) {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(bin(name));
        command
            .arg("--config")
            .arg(&config_path)
            .env_remove("LFR_CONFIG")
            .env(
                "LFR_NATS__CREDENTIALS",
                nats.credentials_file(Identity::of(name).unwrap()),
            )
            .env("LFR_MASTER_KEY", master_key.as_str())
            .env("OMP_NUM_THREADS", "1")
            .kill_on_drop(true);
        match output {
            Output::Files => {
                let file = std::fs::File::create(&log).unwrap();
                command.stdout(file.try_clone().unwrap()).stderr(file);
            }
            Output::Closed => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let mut child = command.spawn().unwrap();
        // Closing the read ends: from its first log line on, every write the service makes fails.
        drop(child.stdout.take());
        drop(child.stderr.take());
        started.push(Started {
            name,
            child,
            http: SocketAddr::from(([127, 0, 0, 1], *port)),
            log,
        });
    }
    System {
        services: started,
        console,
    }
}

/// Log in to the console as `op-1` and open its live stream (`/events`), as an operator's page
/// keeps it open: the stream never ends by itself, so the console must cut it to stop.
async fn open_live_stream(console: SocketAddr) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("http://{console}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(lfr_testkit::form(&[
            ("account", "op-1"),
            ("password", support::PASSWORD),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303, "console login");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("lfr_session="))
        .expect("a session cookie");
    let stream = http
        .get(format!("http://{console}/events"))
        .header("cookie", cookie.split(';').next().unwrap())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200, "live stream opened");
    stream
}

async fn ready(addr: SocketAddr) -> bool {
    lfr_common::http::get(addr, "/readyz").await.is_ok()
}

/// Wait until every service answers `/readyz` with 200; fail at once if one exits.
async fn wait_ready(services: &mut [Started]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    for s in services.iter_mut() {
        while !ready(s.http).await {
            let exited = s.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "lfr-{} never became ready (exited: {exited:?}); it wrote:\n{}",
                    s.name,
                    tail(&s.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "(no log: output closed)".into());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -s {signal} {pid}");
}

/// Send `sig` to every service at once; each must exit with status 0 within [`STOP_LIMIT`].
/// Returns how long each took.
async fn stop_all(
    services: Vec<Started>,
    sig: &'static str,
    state: &'static str,
) -> Vec<(&'static str, Duration)> {
    let sent = Instant::now();
    for s in &services {
        signal(s.child.id().expect("still running"), sig);
    }
    let waits = services.into_iter().map(|mut s| async move {
        let status = tokio::time::timeout(STOP_LIMIT, s.child.wait()).await;
        let took = sent.elapsed();
        match status {
            Ok(status) => {
                let status = status.unwrap();
                assert!(
                    status.success(),
                    "lfr-{} {state}: exited with {status} after SIG{sig} (not a clean stop); it wrote:\n{}",
                    s.name,
                    tail(&s.log)
                );
            }
            Err(_) => panic!(
                "lfr-{} {state}: still running {STOP_LIMIT:?} after SIG{sig}; it wrote:\n{}",
                s.name,
                tail(&s.log)
            ),
        }
        (s.name, took)
    });
    let took = futures_join(waits).await;
    eprintln!(
        "{state}: stopped after SIG{sig} in {}",
        took.iter()
            .map(|(n, t)| format!("{n} {:.2} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    took
}

/// Await every future, concurrently.
async fn futures_join<T: Send + 'static>(
    waits: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = waits.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

#[tokio::test]
async fn every_service_stops_on_sigterm_with_nats_gone() {
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _covered = nats.cover(&["sample"]).await;
    let System {
        mut services,
        console,
    } = start_services(&nats, dir.path(), Output::Files).await;
    wait_ready(&mut services).await;
    let _page = open_live_stream(console).await;
    nats.kill().await;
    // Long enough for every client to find the server gone and publishes to start failing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_all(services, "TERM", "with NATS gone").await;
}

#[tokio::test]
async fn every_service_stops_on_sigint_with_its_output_closed() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _covered = nats.cover(&["sample"]).await;
    let System {
        mut services,
        console,
    } = start_services(&nats, dir.path(), Output::Closed).await;
    // Ready means each has logged its whole start-up into the closed pipes and carried on.
    wait_ready(&mut services).await;
    let _page = open_live_stream(console).await;
    stop_all(services, "INT", "with stdout and stderr closed").await;
}

#[tokio::test]
async fn every_service_stops_on_sigint_with_nats_gone_and_its_output_closed() {
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _covered = nats.cover(&["sample"]).await;
    let System {
        mut services,
        console,
    } = start_services(&nats, dir.path(), Output::Closed).await;
    wait_ready(&mut services).await;
    let _page = open_live_stream(console).await;
    nats.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_all(services, "INT", "with NATS gone and output closed").await;
}

/// How long `lfr up` may take from Ctrl-C to its own exit: its services stop (at most 10 s each,
/// in two steps), the demonstration deployment is ended, then NATS stops.
const UP_STOP_LIMIT: Duration = Duration::from_secs(25);

/// `/proc/<pid>/stat`: (command, state, parent, process group).
fn stat(pid: u32) -> Option<(String, char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 2..].split(' ').collect();
    Some((
        comm,
        rest[0].chars().next()?,
        rest[1].parse().ok()?,
        rest[2].parse().ok()?,
    ))
}

/// The children of `parent`: (pid, command).
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((comm, _, ppid, _)) = stat(pid) {
            if ppid == parent {
                found.push((pid, comm));
            }
        }
    }
    found
}

/// Kills, when dropped, a process group and some processes: what a failed test leaves running.
struct Reaper {
    group: u32,
    pids: Vec<u32>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let targets =
            std::iter::once(format!("-{}", self.group)).chain(self.pids.iter().map(u32::to_string));
        for target in targets {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &target])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Gone, or exited and waiting to be reaped.
fn exited(pid: u32) -> bool {
    stat(pid).is_none_or(|(_, state, _, _)| state == 'Z' || state == 'X')
}

/// JetStream on the server at `nats_url` as `identity`, with `lfr up`'s credentials in `state`.
async fn jetstream_as(
    nats_url: &str,
    state: &Path,
    identity: Identity,
) -> async_nats::jetstream::Context {
    let config = NatsConfig {
        url: nats_url.into(),
        credentials: Some(
            state
                .join("run/bus/creds")
                .join(format!("{}.nk", identity.name())),
        ),
        ca: Some(state.join("run/bus/tls/ca.pem")),
        ..Default::default()
    };
    let client = lfr_common::bus::connect_options(&config, identity)
        .await
        .unwrap()
        .connect(nats_url)
        .await
        .unwrap();
    async_nats::jetstream::new(client)
}

/// The demonstration deployments in the store of `nats_url`, read as the administrator.
async fn demo_states(nats_url: &str, state: &Path) -> Vec<(String, State)> {
    let js = jetstream_as(nats_url, state, Identity::Admin).await;
    let lifecycle =
        lfr_watchlist::lifecycle::Lifecycle::open(&js, lfr_vision::config::ModelsConfig::default())
            .await
            .unwrap();
    lifecycle
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.id.starts_with("demo-"))
        .map(|d| (d.id, d.state))
        .collect()
}

#[tokio::test]
async fn lfr_up_stops_on_ctrl_c_with_its_reader_gone_and_nats_last() {
    for s in SERVICES {
        bin(s);
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let (config, ports) = support::up_config(&SERVICES);
    std::fs::write(tmp.path().join("lfr.toml"), config).unwrap();
    let (nats_port, monitor_port) = (free_port(), free_port());

    // `lfr up 2>&1 | tee log` in a terminal: its own process group (the terminal's foreground
    // job), stdout and stderr into one pipe whose reader this test plays.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("up")
        .arg("--config")
        .arg(tmp.path().join("lfr.toml"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--sample")
        .arg(lfr_testkit::sample_photo("faces"))
        .args(["--nats-port", &nats_port.to_string()])
        .args(["--nats-monitor-port", &monitor_port.to_string()])
        .env_remove("LFR_MASTER_KEY")
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let up_pid = up.id().unwrap();
    // A failing test must not leave lfr up's services and server running (the server is in a
    // group of its own, and nothing kills a child when its parent is killed outright).
    let mut reaper = Reaper {
        group: up_pid,
        pids: Vec::new(),
    };
    // The reader keeps the log until it is aborted: then its end of the pipe is closed.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
        .unwrap();
    let tee = tokio::spawn({
        let log = log.clone();
        async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line);
            }
        }
    });
    let said = || log.lock().unwrap().join("\n");

    for (s, p) in SERVICES.iter().zip(&ports) {
        let http = SocketAddr::from(([127, 0, 0, 1], *p));
        let up_now = eventually(Duration::from_secs(180), || async {
            ready(http).await.then_some(())
        })
        .await;
        assert!(
            up_now.is_some(),
            "lfr-{s} under lfr up never became ready:\n{}",
            said()
        );
    }
    let url = format!("tls://127.0.0.1:{nats_port}");
    let demos = demo_states(&url, &state).await;
    assert!(
        demos.len() == 1 && demos[0].1 == State::Active,
        "one live demonstration deployment while up: {demos:?}"
    );

    // Who runs where: the services in lfr up's process group, nats-server in its own.
    let kids = children(up_pid);
    let nats_pid = kids
        .iter()
        .find(|(_, c)| c == "nats-server")
        .map(|(p, _)| *p)
        .expect("lfr up runs nats-server");
    reaper.pids.push(nats_pid);
    let service_pids: Vec<(u32, String)> = kids
        .iter()
        .filter(|(_, c)| c.starts_with("lfr-"))
        .cloned()
        .collect();
    assert_eq!(service_pids.len(), SERVICES.len(), "{kids:?}");
    let up_group = stat(up_pid).unwrap().3;
    assert_eq!(up_group, up_pid, "lfr up leads its own group here");
    assert_ne!(
        stat(nats_pid).unwrap().3,
        up_group,
        "nats-server shares lfr up's process group: a terminal's Ctrl-C would reach it"
    );
    for (pid, comm) in &service_pids {
        assert_eq!(stat(*pid).unwrap().3, up_group, "{comm}");
    }

    // `tee` is gone: nobody reads lfr up's (and its services') output any more, and for a
    // moment they carry on writing into the closed pipe.
    tee.abort();
    assert!(tee.await.unwrap_err().is_cancelled());
    assert!(said().contains("lfr is up"), "{}", said());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Ctrl-C: SIGINT to the whole foreground process group.
    let ctrl_c = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{up_group}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut gone: Vec<(String, u32, Option<Duration>)> = service_pids
        .iter()
        .map(|(p, c)| (c.clone(), *p, None))
        .chain([("nats-server".to_string(), nats_pid, None)])
        .collect();
    let status = loop {
        for (_, pid, at) in gone.iter_mut() {
            if at.is_none() && exited(*pid) {
                *at = Some(ctrl_c.elapsed());
            }
        }
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        assert!(
            ctrl_c.elapsed() < UP_STOP_LIMIT,
            "lfr up still running {UP_STOP_LIMIT:?} after Ctrl-C; exited so far: {gone:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let up_took = ctrl_c.elapsed();
    for (_, pid, at) in gone.iter_mut() {
        if at.is_none() && exited(*pid) {
            *at = Some(up_took);
        }
    }
    assert!(status.success(), "lfr up exited with {status}");
    eprintln!(
        "lfr up stopped {:.2} s after Ctrl-C; {}",
        up_took.as_secs_f64(),
        gone.iter()
            .map(|(c, _, at)| format!("{c} {:.2} s", at.unwrap_or_default().as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let nats_at = gone
        .last()
        .unwrap()
        .2
        .expect("nats-server stopped with lfr up");
    for (comm, _, at) in &gone[..gone.len() - 1] {
        let at = at.unwrap_or_else(|| panic!("{comm} still running after lfr up exited"));
        assert!(at < STOP_LIMIT, "{comm} took {at:?} to stop");
        assert!(at < nats_at, "nats-server stopped before {comm}: {gone:?}");
    }
    // The server was told to stop by lfr up (SIGTERM), not by the terminal's SIGINT.
    let nats_log = std::fs::read_to_string(state.join("jetstream/nats-server.log")).unwrap();
    assert!(
        nats_log.contains("Trapped \"terminated\" signal") && !nats_log.contains("\"interrupt\""),
        "{nats_log}"
    );

    // The demonstration deployment is recorded as ended: read back from the store, on the same
    // server configuration and key.
    let setup = Setup {
        config: std::fs::read_to_string(state.join("jetstream/lfr-nats.conf")).unwrap(),
        env: vec![(
            lfr_identity::server::STORE_KEY_ENV.into(),
            std::fs::read_to_string(state.join("nats-store.key"))
                .unwrap()
                .trim()
                .to_string(),
        )],
        tls: true,
    };
    let mut again = LocalNats::start_with(nats_port, free_port(), &state.join("jetstream"), setup)
        .await
        .unwrap();
    // The memory buckets went with the server: declared again, as the keeper would.
    let keeper = jetstream_as(&url, &state, Identity::Bus).await;
    lfr_common::topology::declare(&keeper, &Default::default())
        .await
        .unwrap();
    let demos = demo_states(&url, &state).await;
    again.stop().await;
    assert!(
        demos.len() == 1 && demos[0].1 == State::Ended,
        "the demonstration deployment was not ended: {demos:?}"
    );
}
