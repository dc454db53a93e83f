//! `lfr vault rotate` as an administrator runs it against a real nats-server: the current key in
//! `LFR_MASTER_KEY`, the new one in `LFR_NEW_MASTER_KEY`. Alerts sealed before open with the new
//! key, the old key opens nothing, the rotation is on AUDIT, and a missing, weak or unchanged new
//! key is refused, with neither key ever printed. The rotation acts as the supervisor logged in:
//! with nobody logged in nothing is rotated and nothing recorded.

use lfr_schemas::{streams, subjects, AuditAction, AuditEvent};
use lfr_testkit::{records, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault, VaultError};
use std::process::Output;
use support::Person;

mod support;

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 sealed before the rotation";

/// `lfr vault rotate` as `who` (`None`: nobody logged in).
fn rotate(
    nats: &NatsServer,
    who: Option<&Person>,
    old: Option<&MasterKey>,
    new: Option<&str>,
) -> Output {
    let args = ["vault", "rotate"];
    let mut c = match who {
        Some(person) => person.command(&args),
        None => support::lfr(nats, None, &args),
    };
    c.env_remove("LFR_MASTER_KEY")
        .env_remove("LFR_NEW_MASTER_KEY");
    if let Some(old) = old {
        c.env("LFR_MASTER_KEY", old.to_base64().as_str());
    }
    if let Some(new) = new {
        c.env("LFR_NEW_MASTER_KEY", new);
    }
    support::run(c, b"")
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

/// The AUDIT events about the key store.
async fn vault_events(js: &async_nats::jetstream::Context) -> Vec<AuditEvent> {
    records(js, streams::AUDIT, subjects::AUDIT_ALL)
        .await
        .into_iter()
        .map(|(_, e): (_, AuditEvent)| e)
        .filter(|e| e.object == "vault/lfr-keys")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_every_key_is_audited_and_refuses_bad_new_keys() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let admin = Person::bootstrap(&nats, "sup-7", None);
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
        let out = rotate(&nats, Some(&admin), Some(&old), new_key);
        let text = printed(&out, &[&old, &new]);
        assert!(!out.status.success() && text.contains(why), "{why}: {text}");
    }
    let out = rotate(&nats, Some(&admin), None, Some(new.to_base64().as_str()));
    assert!(printed(&out, &[&new]).contains("LFR_MASTER_KEY is not set"));
    assert_eq!(sealer.unseal(&sealed[0], &aad).await.unwrap(), JPEG);

    // Nobody logged in: refused, nothing rotated, nothing on AUDIT about the key store.
    let out = rotate(&nats, None, Some(&old), Some(new.to_base64().as_str()));
    let text = printed(&out, &[&old, &new]);
    assert!(
        !out.status.success() && text.contains(support::NOT_LOGGED_IN),
        "{text}"
    );
    assert_eq!(sealer.unseal(&sealed[0], &aad).await.unwrap(), JPEG);
    assert!(vault_events(&js).await.is_empty());

    let out = rotate(
        &nats,
        Some(&admin),
        Some(&old),
        Some(new.to_base64().as_str()),
    );
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
    let out = rotate(
        &nats,
        Some(&admin),
        Some(&old),
        Some(new.to_base64().as_str()),
    );
    let text = printed(&out, &[&old, &new]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("re-wrapped 0 data keys")
            && text.contains("already under it: fair-day, match-day"),
        "{text}"
    );

    // On AUDIT: a start and an end per run, by the account logged in, naming the keys by
    // fingerprint only.
    let events = vault_events(&js).await;
    assert_eq!(events.len(), 4, "{events:?}");
    for e in &events {
        assert_eq!(e.action, AuditAction::ConfigurationChange);
        assert_eq!((e.actor.as_str(), e.role.as_str()), ("sup-7", "supervisor"));
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
