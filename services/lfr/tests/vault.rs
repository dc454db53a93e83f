//! `lfr vault rotate` as an administrator runs it against a real nats-server: the current key in
//! `LFR_MASTER_KEY`, the new one in `LFR_NEW_MASTER_KEY`. Alerts sealed before open with the new
//! key, the old key opens nothing, the rotation is on AUDIT, and a missing, weak or unchanged new
//! key is refused, with neither key ever printed.

use lfr_schemas::{streams, subjects, AuditAction, AuditEvent};
use lfr_testkit::{records, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault, VaultError};
use std::process::{Command, Output};

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 sealed before the rotation";

fn rotate(nats: &NatsServer, old: Option<&MasterKey>, new: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lfr"));
    c.args(["vault", "rotate", "--by", "admin-7"])
        .envs(nats.admin_env())
        .env_remove("LFR_MASTER_KEY")
        .env_remove("LFR_NEW_MASTER_KEY");
    if let Some(old) = old {
        c.env("LFR_MASTER_KEY", old.to_base64().as_str());
    }
    if let Some(new) = new {
        c.env("LFR_NEW_MASTER_KEY", new);
    }
    c.output().unwrap()
}

/// Everything the command wrote, after checking that neither key is in it.
fn printed(out: &Output, keys: &[&MasterKey]) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for key in keys {
        assert!(
            !text.contains(key.to_base64().as_str()),
            "a key was printed: {text}"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_every_key_is_audited_and_refuses_bad_new_keys() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let sealer = Vault::open(&js, old.clone()).await.unwrap();
    let aad = AlertImage::Probe.aad("match-day", "a1");
    let sealed = [
        sealer.seal("match-day", &aad, JPEG).await.unwrap(),
        sealer.seal("fair-day", &aad, JPEG).await.unwrap(),
    ];

    // Refused before anything changes: no new key, a weak one, the current one.
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let current = old.to_base64();
    for (new_key, why) in [
        (None, "LFR_NEW_MASTER_KEY is not set"),
        (Some(zeros), "LFR_NEW_MASTER_KEY is too weak"),
        (Some("c2hvcnQ="), "LFR_NEW_MASTER_KEY is malformed"),
        (Some(current.as_str()), "holds the current master key"),
    ] {
        let out = rotate(&nats, Some(&old), new_key);
        let text = printed(&out, &[&old, &new]);
        assert!(!out.status.success() && text.contains(why), "{why}: {text}");
    }
    let out = rotate(&nats, None, Some(new.to_base64().as_str()));
    assert!(printed(&out, &[&new]).contains("LFR_MASTER_KEY is not set"));
    assert_eq!(sealer.unseal(&sealed[0], &aad).await.unwrap(), JPEG);

    let out = rotate(&nats, Some(&old), Some(new.to_base64().as_str()));
    let text = printed(&out, &[&old, &new]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "re-wrapped 2 data keys under master key {}: fair-day, match-day",
            new.fingerprint()
        )) && text.contains("securely erased: 2"),
        "{text}"
    );

    // Sealed before, opened after with the new key; the old key opens nothing.
    let rotated = Vault::open(&js, new.clone()).await.unwrap();
    let stale = Vault::open(&js, old.clone()).await.unwrap();
    for s in &sealed {
        assert_eq!(rotated.unseal(s, &aad).await.unwrap(), JPEG);
        assert!(matches!(
            stale.unseal(s, &aad).await,
            Err(VaultError::WrongMasterKey { .. })
        ));
    }

    // Running it again changes nothing and says so.
    let out = rotate(&nats, Some(&old), Some(new.to_base64().as_str()));
    let text = printed(&out, &[&old, &new]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("re-wrapped 0 data keys")
            && text.contains("already under it: fair-day, match-day"),
        "{text}"
    );

    // On AUDIT: a start and an end per run, by the actor, naming the keys by fingerprint only.
    let events: Vec<AuditEvent> = records(&js, streams::AUDIT, subjects::AUDIT_ALL)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    for e in &events {
        assert_eq!(e.action, AuditAction::ConfigurationChange);
        assert_eq!(
            (e.actor.as_str(), e.object.as_str()),
            ("admin-7", "vault/lfr-keys")
        );
        assert!(
            e.justification.contains(&format!(
                "from master key {} to {}",
                old.fingerprint(),
                new.fingerprint()
            )),
            "{}",
            e.justification
        );
        assert!(!e.justification.contains(old.to_base64().as_str()));
        assert!(!e.justification.contains(new.to_base64().as_str()));
    }
    assert!(events[0].justification.ends_with("started"));
    assert!(
        events[1].justification.contains("2 data keys re-wrapped")
            && events[1]
                .justification
                .contains("2 copies under the old key securely erased"),
        "{}",
        events[1].justification
    );
}
