//! The matcher raises alerts only sealed: without a usable master key it does not start at all,
//! and says why without repeating the key.

use lfr_common::Shutdown;
use std::process::Command;

fn matcher() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lfr-match"));
    // Nothing to connect to: the key is checked before the bus.
    c.env("LFR_NATS__URL", "nats://127.0.0.1:1")
        .env("LFR_MATCH__HTTP_ADDR", "127.0.0.1:0")
        .env_remove("LFR_CONFIG");
    c
}

#[test]
fn the_binary_refuses_to_start_without_the_master_key() {
    let out = matcher().env_remove("LFR_MASTER_KEY").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refuses to start") && stderr.contains("LFR_MASTER_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn the_binary_refuses_a_malformed_master_key_without_printing_it() {
    for bad in ["c2hvcnQ=", "the-key-is-not-base64-at-all-but-it-is-long!"] {
        let out = matcher().env("LFR_MASTER_KEY", bad).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("LFR_MASTER_KEY is malformed"), "{stderr}");
        assert!(!stderr.contains(bad), "the key was printed: {stderr}");
    }
}

#[test]
fn the_binary_refuses_a_weak_master_key_without_printing_it() {
    // All zeros, and one repeated byte: placeholders, not keys.
    for weak in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=",
    ] {
        let out = matcher().env("LFR_MASTER_KEY", weak).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("LFR_MASTER_KEY is too weak"), "{stderr}");
        assert!(!stderr.contains(weak), "the key was printed: {stderr}");
    }
}

#[tokio::test]
async fn start_refuses_a_configuration_without_a_key() {
    if std::env::var_os("LFR_MASTER_KEY").is_some() {
        eprintln!("LFR_MASTER_KEY is set in this environment: nothing to test");
        return;
    }
    let mut config = lfr_match::Config::default();
    config.common.nats.url = "nats://127.0.0.1:1".into();
    config.matcher.http_addr = "127.0.0.1:0".parse().unwrap();
    assert!(config.master_key.is_none());
    let e = lfr_match::start(config, Shutdown::new())
        .await
        .err()
        .expect("started without a master key");
    assert!(e.to_string().contains("LFR_MASTER_KEY is not set"), "{e}");
}
