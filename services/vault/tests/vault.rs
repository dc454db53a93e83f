//! The vault against a real nats-server: sealing and opening, what binds a ciphertext to its alert
//! and deployment, one key per deployment however many replicas race to create it, the master key,
//! rotation, and crypto-shredding down to the bytes in the store's files.

use async_nats::jetstream;
use lfr_testkit::{eventually, files_containing, Identity, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Shredder, Vault, VaultError, BUCKET};
use std::time::Duration;

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 a face that must never be read once its deployment is gone";

/// A connection with the permissions of `identity`: match seals (and creates keys), dispatch
/// opens, purge destroys, the administrator (`lfr vault rotate`) rotates.
async fn connect(nats: &NatsServer, identity: Identity) -> jetstream::Context {
    nats.jetstream(identity).await
}

/// The wrapped data key of `deployment` as stored (the base64 text of its ciphertext).
async fn wrapped_key(js: &jetstream::Context, deployment: &str) -> Option<String> {
    let kv = js.get_key_value(BUCKET).await.unwrap();
    let record = kv.get(deployment).await.unwrap()?;
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    Some(record["wrapped"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn sealed_data_opens_only_with_its_own_associated_data_and_key() {
    let nats = NatsServer::start().await;
    let js = connect(&nats, Identity::Match).await;
    let master = MasterKey::generate();
    let vault = Vault::open(&js, master.clone()).await.unwrap();
    let aad = AlertImage::Probe.aad("match-day", "a1");

    let sealed = vault.seal("match-day", &aad, JPEG).await.unwrap();
    assert_eq!(sealed.key, "match-day");
    assert_eq!(sealed.nonce.len(), 24);
    assert_eq!(sealed.ciphertext.len(), JPEG.len() + 16);
    assert!(!sealed
        .ciphertext
        .windows(8)
        .any(|w| JPEG.windows(8).any(|j| j == w)));
    let printed = format!("{sealed:?}");
    assert!(
        printed.contains("redacted") && !printed.contains("255, 216"),
        "{printed}"
    );
    assert_eq!(vault.unseal(&sealed, &aad).await.unwrap(), JPEG);

    // Another replica with the same master key reads the key from the store.
    let replica = Vault::open(&connect(&nats, Identity::Dispatch).await, master.clone())
        .await
        .unwrap();
    assert_eq!(replica.unseal(&sealed, &aad).await.unwrap(), JPEG);
    // Random nonces: the same image sealed twice gives two different ciphertexts.
    let again = vault.seal("match-day", &aad, JPEG).await.unwrap();
    assert_ne!(again.ciphertext, sealed.ciphertext);

    // Another alert's or another image's associated data.
    for wrong in [
        AlertImage::Probe.aad("match-day", "a2"),
        AlertImage::Context.aad("match-day", "a1"),
        AlertImage::Probe.aad("other-day", "a1"),
        Vec::new(),
    ] {
        let e = vault.unseal(&sealed, &wrong).await.unwrap_err();
        assert!(matches!(e, VaultError::Unsealable { .. }), "{e}");
    }
    // Another deployment's key, an altered ciphertext, a damaged nonce.
    vault.seal("other-day", &aad, b"x").await.unwrap();
    let mut moved = sealed.clone();
    moved.key = "other-day".into();
    let mut altered = sealed.clone();
    altered.ciphertext.0[3] ^= 1;
    let mut short_nonce = sealed.clone();
    short_nonce.nonce.pop();
    for bad in [moved, altered, short_nonce] {
        let e = vault.unseal(&bad, &aad).await.unwrap_err();
        assert!(matches!(e, VaultError::Unsealable { .. }), "{e}");
    }
    // No key at all, and ids that are not deployment ids.
    let mut unknown = sealed.clone();
    unknown.key = "never-day".into();
    let e = vault.unseal(&unknown, &aad).await.unwrap_err();
    assert!(matches!(e, VaultError::NoKey { .. }) && e.is_gone(), "{e}");
    assert!(!vault.exists("never-day").await.unwrap());
    for bad in ["", "a.b", "a>", "a b"] {
        assert!(matches!(
            vault.seal(bad, &aad, JPEG).await,
            Err(VaultError::InvalidKeyId(_))
        ));
    }
    assert_eq!(
        vault.deployments().await.unwrap(),
        ["match-day", "other-day"]
    );
}

#[tokio::test]
async fn another_master_key_cannot_unwrap_the_data_key_nor_replace_it() {
    let nats = NatsServer::start().await;
    let js = connect(&nats, Identity::Match).await;
    let right = Vault::open(&js, MasterKey::generate()).await.unwrap();
    let aad = AlertImage::Context.aad("match-day", "a1");
    let sealed = right.seal("match-day", &aad, JPEG).await.unwrap();
    let stored = wrapped_key(&js, "match-day").await.unwrap();

    let wrong = Vault::open(&js, MasterKey::generate()).await.unwrap();
    let e = wrong.unseal(&sealed, &aad).await.unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(e, VaultError::WrongMasterKey { .. })
            && message.contains("LFR_MASTER_KEY")
            && message.contains(right.master_fingerprint())
            && message.contains(wrong.master_fingerprint()),
        "{message}"
    );
    // Sealing with the wrong master key fails too, and leaves the deployment's key as it was.
    assert!(matches!(
        wrong.seal("match-day", &aad, JPEG).await,
        Err(VaultError::WrongMasterKey { .. })
    ));
    assert_eq!(wrapped_key(&js, "match-day").await.unwrap(), stored);
    assert_eq!(right.unseal(&sealed, &aad).await.unwrap(), JPEG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_create_a_key_end_with_one() {
    let nats = NatsServer::start().await;
    let master = MasterKey::generate();
    let a = Vault::open(&connect(&nats, Identity::Match).await, master.clone())
        .await
        .unwrap();
    let b = Vault::open(&connect(&nats, Identity::Match).await, master.clone())
        .await
        .unwrap();
    let deployments: Vec<String> = (0..8).map(|i| format!("race-{i}")).collect();
    let aad = b"race";
    let mut sealed = Vec::new();
    for d in &deployments {
        let (x, y) = tokio::join!(a.seal(d, aad, b"from a"), b.seal(d, aad, b"from b"));
        sealed.push((x.unwrap(), y.unwrap()));
    }
    // A third replica, which never saw either key in memory, opens both ciphertexts of each.
    let c = Vault::open(&connect(&nats, Identity::Match).await, master)
        .await
        .unwrap();
    for (x, y) in &sealed {
        assert_eq!(c.unseal(x, aad).await.unwrap(), b"from a");
        assert_eq!(c.unseal(y, aad).await.unwrap(), b"from b");
        assert_eq!(a.unseal(y, aad).await.unwrap(), b"from b");
        assert_eq!(b.unseal(x, aad).await.unwrap(), b"from a");
    }
    // One stored key per deployment, written once.
    let js = connect(&nats, Identity::Match).await;
    let info = js
        .get_stream(format!("KV_{BUCKET}"))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, deployments.len() as u64);
    assert_eq!(info.state.last_sequence, deployments.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_key_leaves_nothing_that_opens_anywhere() {
    // A store in clear, so that the bytes in its files can be looked for (an encrypted store
    // holds none to find, and the server does not overwrite what it erases there).
    let nats = NatsServer::start_open().await;
    nats.declare().await;
    let js = connect(&nats, Identity::Purge).await;
    let master = MasterKey::generate();
    let purge = Vault::open(&js, master.clone()).await.unwrap();
    let aad = AlertImage::Probe.aad("ended-day", "a1");
    let sealed = purge.seal("ended-day", &aad, JPEG).await.unwrap();
    let kept = purge.seal("live-day", &aad, JPEG).await.unwrap();
    let kept_aad = aad.clone();

    // A console replica has the key in memory from showing the image.
    let console = Vault::open(&connect(&nats, Identity::Dispatch).await, master.clone())
        .await
        .unwrap();
    assert_eq!(console.unseal(&sealed, &aad).await.unwrap(), JPEG);

    // The wrapped key is in the store's files (that is what must go).
    let wrapped = wrapped_key(&js, "ended-day").await.unwrap();
    let on_disk = eventually(Duration::from_secs(5), || async {
        (!files_containing(nats.store_dir(), wrapped.as_bytes()).is_empty()).then_some(())
    })
    .await;
    assert!(
        on_disk.is_some(),
        "the wrapped key was never written to disk"
    );

    assert!(purge.exists("ended-day").await.unwrap());
    assert!(purge.destroy("ended-day").await.unwrap());
    assert!(!purge.destroy("ended-day").await.unwrap(), "idempotent");
    assert!(!purge.destroy("never-day").await.unwrap());
    assert!(!purge.exists("ended-day").await.unwrap());
    assert_eq!(purge.deployments().await.unwrap(), ["live-day"]);

    // The vault that destroyed it, the replica that had it cached, and a fresh one: none opens it.
    let e = purge.unseal(&sealed, &aad).await.unwrap_err();
    assert!(
        matches!(e, VaultError::Destroyed { .. }) && e.is_gone(),
        "{e}"
    );
    let forgotten = eventually(Duration::from_secs(5), || async {
        console.unseal(&sealed, &aad).await.err()
    })
    .await
    .expect("the console replica forgot the destroyed key");
    assert!(
        matches!(forgotten, VaultError::Destroyed { .. }),
        "{forgotten}"
    );
    let fresh = Vault::open(&connect(&nats, Identity::Dispatch).await, master.clone())
        .await
        .unwrap();
    assert!(matches!(
        fresh.unseal(&sealed, &aad).await,
        Err(VaultError::Destroyed { .. })
    ));
    // Other deployments are untouched.
    assert_eq!(console.unseal(&kept, &kept_aad).await.unwrap(), JPEG);

    // The wrapped key's bytes were overwritten in the store's files, not merely unindexed.
    let erased = eventually(Duration::from_secs(5), || async {
        files_containing(nats.store_dir(), wrapped.as_bytes())
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        erased.is_some(),
        "the destroyed key's bytes are still in {:?}",
        files_containing(nats.store_dir(), wrapped.as_bytes())
    );

    // A late seal for the deployment makes a new, unrelated key: the old data stays unreadable.
    let late = purge.seal("ended-day", &aad, b"late").await.unwrap();
    assert_eq!(fresh.unseal(&late, &aad).await.unwrap(), b"late");
    assert!(matches!(
        fresh.unseal(&sealed, &aad).await,
        Err(VaultError::Unsealable { .. })
    ));
}

/// Every message the key bucket's stream holds, as text.
async fn stored_records(js: &jetstream::Context) -> Vec<String> {
    let stream = js.get_stream(format!("KV_{BUCKET}")).await.unwrap();
    let state = stream.clone().info().await.unwrap().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_rewraps_every_data_key_and_erases_the_old_copies() {
    // A store in clear, so that the old copies' bytes can be looked for in its files.
    let nats = NatsServer::start_open().await;
    nats.declare().await;
    let js = connect(&nats, Identity::Admin).await;
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let matcher = Vault::open(&connect(&nats, Identity::Match).await, old.clone())
        .await
        .unwrap();
    let aad = AlertImage::Reference.aad("d1", "a1");
    let one = matcher.seal("d1", &aad, JPEG).await.unwrap();
    let two = matcher.seal("d2", &aad, JPEG).await.unwrap();
    // A crypto-shredded deployment stays shredded.
    let shredded = matcher.seal("gone", &aad, JPEG).await.unwrap();
    let purge = Shredder::open(&connect(&nats, Identity::Purge).await)
        .await
        .unwrap();
    assert!(purge.destroy("gone").await.unwrap());
    let vault = Vault::open(&js, old.clone()).await.unwrap();
    let before = [
        wrapped_key(&js, "d1").await.unwrap(),
        wrapped_key(&js, "d2").await.unwrap(),
    ];
    let on_disk = eventually(Duration::from_secs(5), || async {
        before
            .iter()
            .all(|w| !files_containing(nats.store_dir(), w.as_bytes()).is_empty())
            .then_some(())
    })
    .await;
    assert!(
        on_disk.is_some(),
        "the wrapped keys were never written to disk"
    );

    let rotation = vault.rewrap(&new).await.unwrap();
    assert_eq!(rotation.rewrapped, ["d1", "d2"]);
    assert_eq!(rotation.erased, 2);
    assert!(rotation.already.is_empty() && rotation.restored == 0);
    let again = vault.rewrap(&new).await.unwrap();
    assert!(again.rewrapped.is_empty() && again.erased == 0, "{again:?}");
    assert_eq!(again.already, ["d1", "d2"], "already rotated");

    // What was sealed before the rotation opens with the new key: the data keys are unchanged.
    let rotated = Vault::open(&connect(&nats, Identity::Match).await, new.clone())
        .await
        .unwrap();
    assert_eq!(rotated.unseal(&one, &aad).await.unwrap(), JPEG);
    assert_eq!(rotated.unseal(&two, &aad).await.unwrap(), JPEG);
    assert!(rotated.unseal(&shredded, &aad).await.unwrap_err().is_gone());
    assert_eq!(rotated.deployments().await.unwrap(), ["d1", "d2"]);
    let late = rotated.seal("d1", &aad, b"late").await.unwrap();
    assert_eq!(rotated.unseal(&late, &aad).await.unwrap(), b"late");

    // The old key opens nothing: every stored key is wrapped under the new one...
    let stale = Vault::open(&connect(&nats, Identity::Dispatch).await, old.clone())
        .await
        .unwrap();
    for sealed in [&one, &two, &late] {
        assert!(matches!(
            stale.unseal(sealed, &aad).await,
            Err(VaultError::WrongMasterKey { .. })
        ));
    }
    let records = stored_records(&js).await;
    assert!(
        records.iter().all(|r| !r.contains(old.fingerprint())),
        "{records:?}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.contains(new.fingerprint()))
            .count(),
        2,
        "one copy per key, no staged copy left: {records:?}"
    );
    // ...and the old copies' bytes are overwritten in the store's files, not merely replaced.
    let erased = eventually(Duration::from_secs(5), || async {
        before
            .iter()
            .all(|w| files_containing(nats.store_dir(), w.as_bytes()).is_empty())
            .then_some(())
    })
    .await;
    assert!(
        erased.is_some(),
        "copies wrapped under the old master key are still in {:?}",
        before
            .iter()
            .flat_map(|w| files_containing(nats.store_dir(), w.as_bytes()))
            .collect::<Vec<_>>()
    );

    // A key wrapped under neither key stops a rotation, changing nothing.
    let third = Vault::open(&js, MasterKey::generate()).await.unwrap();
    assert!(matches!(
        third.rewrap(&old).await,
        Err(VaultError::WrongMasterKey { .. })
    ));
    assert_eq!(rotated.unseal(&one, &aad).await.unwrap(), JPEG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_by_the_next_one_and_loses_no_key() {
    let nats = NatsServer::start().await;
    let js = connect(&nats, Identity::Admin).await;
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let matcher = Vault::open(&connect(&nats, Identity::Match).await, old.clone())
        .await
        .unwrap();
    let aad = AlertImage::Probe.aad("d1", "a1");
    let mut sealed = Vec::new();
    for d in ["d1", "d2", "d3"] {
        sealed.push(matcher.seal(d, &aad, JPEG).await.unwrap());
    }
    // Rotate, so that copies wrapped under the new key exist to stage by hand below.
    let vault = Vault::open(&js, old.clone()).await.unwrap();
    vault.rewrap(&new).await.unwrap();
    let kv = js.get_key_value(BUCKET).await.unwrap();
    let stream = js.get_stream(format!("KV_{BUCKET}")).await.unwrap();
    // d1: interrupted after the old copy was erased (only the staged copy is left).
    let d1 = kv.entry("d1").await.unwrap().unwrap();
    kv.create("rewrap.d1", d1.value.clone()).await.unwrap();
    assert!(stream.delete_message(d1.revision).await.unwrap());
    // d2: interrupted before the staged copy was erased.
    let d2 = kv.get("d2").await.unwrap().unwrap();
    kv.create("rewrap.d2", d2).await.unwrap();
    // d3: a staged copy of a key since destroyed must go with it.
    let d3 = kv.get("d3").await.unwrap().unwrap();
    kv.create("rewrap.d3", d3.clone()).await.unwrap();
    let purge = Shredder::open(&connect(&nats, Identity::Purge).await)
        .await
        .unwrap();
    assert_eq!(
        purge.deployments().await.unwrap(),
        ["d2", "d3"],
        "no staged copy listed"
    );
    assert!(purge.destroy("d3").await.unwrap());
    assert!(kv.get("rewrap.d3").await.unwrap().is_none());
    // ...and one found beside a destroyed key is erased, never restored.
    kv.create("rewrap.d3", d3).await.unwrap();

    let finished = vault.rewrap(&new).await.unwrap();
    assert_eq!(finished.restored, 1, "{finished:?}");
    assert_eq!(finished.already, ["d1", "d2"]);
    for staged in ["rewrap.d1", "rewrap.d2", "rewrap.d3"] {
        assert!(kv.get(staged).await.unwrap().is_none(), "{staged} left");
    }
    let rotated = Vault::open(&connect(&nats, Identity::Dispatch).await, new)
        .await
        .unwrap();
    assert_eq!(rotated.unseal(&sealed[0], &aad).await.unwrap(), JPEG);
    assert_eq!(rotated.unseal(&sealed[1], &aad).await.unwrap(), JPEG);
    assert!(rotated
        .unseal(&sealed[2], &aad)
        .await
        .unwrap_err()
        .is_gone());
    assert_eq!(
        stored_records(&js).await.len(),
        2 + 1,
        "d1, d2 and d3's purge marker"
    );
}

#[tokio::test]
async fn a_lazy_vault_opens_its_bucket_on_first_use() {
    // Started before the administrator declared the topology: made, failing, then working.
    let nats = NatsServer::start_undeclared().await;
    let js = connect(&nats, Identity::Match).await;
    let vault = Vault::new(&js, MasterKey::generate());
    assert!(matches!(
        vault.seal("d1", b"", JPEG).await,
        Err(VaultError::Store(_))
    ));
    nats.declare().await;
    let sealed = vault.seal("d1", b"", JPEG).await.unwrap();
    assert_eq!(vault.unseal(&sealed, b"").await.unwrap(), JPEG);
    let config = nats
        .admin()
        .await
        .get_stream(format!("KV_{BUCKET}"))
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert!(!config.deny_delete, "keys must be erasable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_service_shreds_without_the_master_key() {
    let nats = NatsServer::start().await;
    let js = connect(&nats, Identity::Match).await;
    let console = Vault::open(&js, MasterKey::generate()).await.unwrap();
    let aad = AlertImage::Probe.aad("ended-day", "a1");
    let sealed = console.seal("ended-day", &aad, JPEG).await.unwrap();
    assert_eq!(console.unseal(&sealed, &aad).await.unwrap(), JPEG);

    let purge = Shredder::open(&connect(&nats, Identity::Purge).await)
        .await
        .unwrap();
    assert_eq!(purge.deployments().await.unwrap(), ["ended-day"]);
    assert!(purge.exists("ended-day").await.unwrap());
    assert!(purge.destroy("ended-day").await.unwrap());
    assert!(!purge.destroy("ended-day").await.unwrap());
    assert!(!purge.exists("ended-day").await.unwrap());
    assert!(purge.deployments().await.unwrap().is_empty());
    let forgotten = eventually(Duration::from_secs(5), || async {
        console.unseal(&sealed, &aad).await.err()
    })
    .await
    .expect("the console forgot the destroyed key");
    assert!(forgotten.is_gone(), "{forgotten}");
}
