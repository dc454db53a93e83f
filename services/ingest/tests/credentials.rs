//! A camera's credentials stay in its configuration: the real binary, given a camera whose URL
//! carries a password (in its userinfo and in its query string) and that cannot be reached,
//! reports, counts and retries the failure without the password appearing anywhere it writes:
//! its logs at debug level (OpenCV's and FFmpeg's own output included) and its metrics.

// Not every test binary uses all of the shared set-up's re-exports.
#[allow(unused_imports)]
mod support;

use lfr_common::config::LogFormat;
use lfr_testkit::{eventually, free_port, metric, NatsServer};
use std::process::Stdio;
use std::time::Duration;
use support::*;

const SECRET: &str = "hunter2";

#[tokio::test]
async fn a_camera_password_never_reaches_the_logs_errors_or_metrics() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: opening fails at once, and again after every back-off.
    let source = format!("rtsp://user:{SECRET}@127.0.0.1:1/x?password={SECRET}");
    let mut cfg = config(&nats, vec![camera("gate-1", &source, 5.0)]);
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    cfg.ingest.http_addr = metrics_addr;
    cfg.ingest.initial_backoff = Duration::from_millis(100);
    cfg.ingest.max_backoff = Duration::from_millis(200);
    cfg.common.log.format = LogFormat::Json;
    let config_file = dir.path().join("lfr.toml");
    std::fs::write(&config_file, toml::to_string(&cfg).unwrap()).unwrap();

    // Gated capture: a live deployment covers the camera, so ingest tries to open it.
    let _covered = nats.cover(&["gate-1"]).await;
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut ingest = tokio::process::Command::new(env!("CARGO_BIN_EXE_lfr-ingest"))
        .arg("--config")
        .arg(&config_file)
        .env_remove("LFR_CONFIG")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Failed, counted, retried.
    let failures = |text: &str| {
        metric(
            text,
            "lfr_ingest_camera_failures_total",
            &[("camera", "gate-1"), ("reason", "open_failed")],
        )
        .unwrap_or(0.0)
    };
    let metrics = eventually(Duration::from_secs(30), || async {
        let text = lfr_common::http::get(metrics_addr, "/metrics").await.ok()?;
        (failures(&text) >= 2.0).then_some(text)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the unreachable camera's failures were never counted; ingest wrote:\n{}{}",
            std::fs::read_to_string(&stdout).unwrap_or_default(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });

    // Stop it cleanly (SIGTERM), so every log line is written.
    let pid = ingest.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), ingest.wait())
        .await
        .expect("ingest stops on SIGTERM")
        .unwrap();

    let logs =
        std::fs::read_to_string(&stdout).unwrap() + &std::fs::read_to_string(&stderr).unwrap();
    // What was logged is there, the camera named and its URL without credentials...
    assert!(logs.contains("camera source failed"), "{logs}");
    assert!(
        logs.contains("rtsp://***@127.0.0.1:1/x?password=***"),
        "{logs}"
    );
    // ...and the password nowhere.
    assert!(
        !logs.contains(SECRET),
        "the camera's password was logged:\n{logs}"
    );
    assert!(!metrics.contains(SECRET), "{metrics}");
}
