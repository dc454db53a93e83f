//! `lfr up` as an operator runs it: a real nats-server, every service binary, the sample camera
//! replaying real photos; frames flow through ingest, detect and embed to templates, the
//! demonstration deployment's watch list raises a candidate and a blue-list alert (sealed under
//! the master key `lfr up` generated for the box), every service is ready, and SIGTERM stops it
//! all cleanly.

mod support;

use lfr_testkit::{eventually, free_port, metric};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

async fn get(url: String) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

#[tokio::test]
async fn lfr_up_runs_the_pipeline_and_stops_cleanly() {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_lfr"))
        .parent()
        .unwrap()
        .to_path_buf();
    for s in ["ingest", "detect", "embed", "match", "dispatch", "purge"] {
        assert!(
            bin_dir.join(format!("lfr-{s}")).exists(),
            "lfr-{s} not built: run `cargo build --workspace --bins` first"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let sample = lfr_testkit::sample_photo("faces");
    let services = ["ingest", "detect", "embed", "match", "dispatch", "purge"];
    let (config, ports) = support::up_config(&services);
    let config_path = tmp.path().join("lfr.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("up")
        .arg("--config")
        .arg(&config_path)
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .arg("--sample")
        .arg(&sample)
        .args(["--nats-port", &free_port().to_string()])
        .args(["--nats-monitor-port", &free_port().to_string()])
        // A fresh machine: no master key given, so `lfr up` makes one.
        .env_remove("LFR_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let ingest = ports[0];
    let detect = ports[1];
    let flowing = eventually(Duration::from_secs(60), || async {
        let (_, i) = get(format!("http://127.0.0.1:{ingest}/metrics")).await?;
        let (_, d) = get(format!("http://127.0.0.1:{detect}/metrics")).await?;
        let published = metric(&i, "lfr_ingest_frames_total", &[("camera", "sample")])?;
        let detected = metric(&d, "lfr_stage_messages_total", &[("outcome", "ok")])?;
        (published >= 2.0 && detected >= 1.0).then_some(())
    })
    .await;
    assert!(
        flowing.is_some(),
        "sample frames did not reach the detect stage"
    );
    let matcher = ports[3];
    let alerted = eventually(Duration::from_secs(60), || async {
        let (_, m) = get(format!("http://127.0.0.1:{matcher}/metrics")).await?;
        let wanted = metric(&m, "lfr_match_alerts_total", &[("category", "wanted")])?;
        let blue = metric(&m, "lfr_match_alerts_total", &[("category", "blue")])?;
        (wanted >= 1.0 && blue >= 1.0).then_some(())
    })
    .await;
    assert!(
        alerted.is_some(),
        "the demonstration deployment raised no alerts"
    );
    let dispatch = ports[4];
    let queued = eventually(Duration::from_secs(20), || async {
        let (_, d) = get(format!("http://127.0.0.1:{dispatch}/metrics")).await?;
        let candidates = metric(&d, "lfr_alerts_folded_total", &[("kind", "candidate")])?;
        (candidates >= 1.0).then_some(())
    })
    .await;
    assert!(queued.is_some(), "the console did not receive the alert");
    let key_file = tmp.path().join("state/master.key");
    let key = std::fs::read_to_string(&key_file).expect("lfr up generated a master key");
    assert_eq!(key.trim().len(), 44, "base64 of 32 bytes");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for (s, p) in services.iter().zip(&ports) {
        let ready = get(format!("http://127.0.0.1:{p}/readyz")).await;
        assert_eq!(ready.map(|r| r.0), Some(200), "{s} not ready");
    }

    // The bus is secured as in production: one private seed per service, a server configuration
    // with public keys only, TLS, the store encrypted under a key kept 0600.
    let state = tmp.path().join("state");
    let server_conf = std::fs::read_to_string(state.join("jetstream/lfr-nats.conf")).unwrap();
    assert!(server_conf.contains("cipher: chachapoly") && server_conf.contains("tls {"));
    for s in services.iter().chain(&["admin", "bus"]) {
        let seed_file = state.join(format!("run/bus/creds/{s}.nk"));
        let seed = std::fs::read_to_string(&seed_file).expect("a seed per service");
        assert!(seed.starts_with("SU") && !server_conf.contains(seed.trim()));
        assert_eq!(
            std::fs::metadata(&seed_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let store_key = state.join("nats-store.key");
    assert_eq!(
        std::fs::metadata(&store_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let admin_env = std::fs::read_to_string(state.join("run/admin.env")).unwrap();
    let url = admin_env
        .lines()
        .find_map(|l| l.strip_prefix("export LFR_NATS__URL="))
        .unwrap()
        .to_string();
    assert!(url.starts_with("tls://"), "{url}");
    assert!(
        async_nats::connect(url.replace("tls://", "nats://"))
            .await
            .is_err(),
        "an anonymous client without the CA connected"
    );

    let pid = up.id().unwrap().to_string();
    std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), up.wait())
        .await
        .expect("lfr up stops within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "lfr up exited with {status}");
    for (s, p) in services.iter().zip(&ports) {
        assert!(
            get(format!("http://127.0.0.1:{p}/healthz")).await.is_none(),
            "{s} still running"
        );
    }
}
