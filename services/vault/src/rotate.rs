//! Master-key rotation: every stored data key re-wrapped under a new master key, and every copy
//! wrapped under the old one securely erased, so that the old master key opens nothing in the
//! store any more.
//!
//! The bucket keeps one message per key, so the new copy of a key cannot be written beside the
//! old one, and overwriting would leave the old copy's bytes on disk (a message replaced under
//! the per-key limit is unindexed, not erased). Each deployment's key therefore goes through four
//! steps, and an interruption between any two (a crash, a lost connection) loses nothing:
//!
//! 1. **stage**: the key, wrapped under the new master key, is stored as `rewrap.<deployment>`
//!    (a name no deployment can have: ids have no `.`);
//! 2. **erase**: the old copy, exactly the revision that was read, is securely erased (JetStream
//!    overwrites its bytes, in a store in clear). Had anything replaced it since it was read, the
//!    erasure fails and the rotation stops: optimistic concurrency;
//! 3. **store**: the staged copy becomes the deployment's key, only if the deployment still has
//!    none;
//! 4. the staged copy is securely erased.
//!
//! A rotation run again first finishes what an interrupted one left: a staged copy whose
//! deployment has no key is stored as its key (step 3), one beside its deployment's key (the same
//! data key, checked) is erased (step 4), and one whose deployment was destroyed since is erased,
//! never restored. Keys already under the new master key are left alone.
//!
//! Rotation is offline: match (which creates keys) and everything else holding the old master key
//! must be stopped first; a key created between steps 2 and 3 stops the rotation with an error
//! rather than let two keys exist for one deployment.

use crate::{
    check_id, store_error, unwrap_key, wrap_key, Bucket, MasterKey, VaultError, WrappedKey,
};
use async_nats::jetstream::kv;
use futures::StreamExt;
use zeroize::Zeroizing;

/// Prefix of a staged copy's name in the bucket: `rewrap.<deployment>`.
pub(crate) const STAGING_PREFIX: &str = "rewrap.";

/// The name a deployment's key is staged under during a rotation.
pub(crate) fn staging_key(deployment: &str) -> String {
    format!("{STAGING_PREFIX}{deployment}")
}

/// What a rotation did. Names deployments only, never key material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Deployments whose data key was re-wrapped under the new master key.
    pub rewrapped: Vec<String>,
    /// Deployments whose data key was already under it (left by an earlier, interrupted run).
    pub already: Vec<String>,
    /// Copies wrapped under the old master key that were securely erased.
    pub erased: usize,
    /// Keys an interrupted run had staged and that were stored as their deployment's key again.
    pub restored: usize,
}

/// Re-wrap every key of `bucket` from `old` to `new`; see the module's documentation.
pub(crate) async fn rotate(
    bucket: &Bucket,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Rotation, VaultError> {
    let mut rotation = Rotation::default();
    let (_, staged) = names(bucket).await?;
    for name in staged {
        finish_interrupted(bucket, &name, old, new, &mut rotation).await?;
    }
    let (deployments, _) = names(bucket).await?;
    for deployment in deployments {
        rewrap_one(bucket, &deployment, old, new, &mut rotation).await?;
    }
    Ok(rotation)
}

/// Deployments with a key, and staged copies, by name.
async fn names(bucket: &Bucket) -> Result<(Vec<String>, Vec<String>), VaultError> {
    let mut keys = bucket
        .kv
        .keys()
        .await
        .map_err(|e| store_error("list keys", e))?;
    let (mut deployments, mut staged) = (Vec::new(), Vec::new());
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| store_error("list keys", e))?;
        if key.starts_with(STAGING_PREFIX) {
            staged.push(key);
        } else if check_id(&key).is_ok() {
            deployments.push(key);
        }
    }
    deployments.sort();
    staged.sort();
    Ok((deployments, staged))
}

/// Steps 1 to 4 for one deployment.
async fn rewrap_one(
    bucket: &Bucket,
    deployment: &str,
    old: &MasterKey,
    new: &MasterKey,
    rotation: &mut Rotation,
) -> Result<(), VaultError> {
    let Some(entry) = current(bucket, deployment).await? else {
        return Ok(()); // destroyed since it was listed: nothing to rotate
    };
    let record = parse(deployment, &entry)?;
    if record.master_key == new.fingerprint() {
        rotation.already.push(deployment.into());
        return Ok(());
    }
    let key = unwrap_key(old, deployment, &record)?;
    let again = wrap_key(new, deployment, &key, record.created_at);
    drop(key);

    // 1. Stage.
    let staging = staging_key(deployment);
    let staged = bucket
        .kv
        .create(&staging, again.clone().into())
        .await
        .map_err(|e| store_error("stage the re-wrapped key", e))?;

    // 2. Erase the old copy: exactly the revision read above.
    if let Err(e) = erase(bucket, entry.revision).await {
        let replaced = current(bucket, deployment)
            .await?
            .is_none_or(|now| now.revision != entry.revision);
        let why = if replaced {
            format!(
                "the data key of {deployment} changed while it was being re-wrapped: stop every \
                 service holding the master key (match, dispatch, purge) and rotate again"
            )
        } else {
            match e {
                VaultError::Store(why) => why,
                other => other.to_string(),
            }
        };
        // The staged copy must not outlive a key destroyed or replaced meanwhile.
        return Err(VaultError::Store(match erase(bucket, staged).await {
            Ok(()) => why,
            Err(_) => format!("{why}; the staged copy {staging} could not be erased either"),
        }));
    }
    rotation.erased += 1;
    // Older revisions, had the bucket ever kept more than one per key.
    rotation.erased += bucket.erase_every_copy(deployment).await?;

    // 3. Store the staged copy as the key, only if the deployment still has none.
    store_as_key(bucket, deployment, again).await?;

    // 4. Erase the staged copy.
    erase(bucket, staged).await?;
    tracing::info!(
        %deployment,
        from = %old.fingerprint(),
        to = %new.fingerprint(),
        "data key re-wrapped under the new master key; the old copy is erased"
    );
    rotation.rewrapped.push(deployment.into());
    Ok(())
}

/// What an interrupted rotation left at `name` (`rewrap.<deployment>`): stored as the key if the
/// deployment lost its own (interrupted after step 2), else checked to be the same key and erased.
async fn finish_interrupted(
    bucket: &Bucket,
    name: &str,
    old: &MasterKey,
    new: &MasterKey,
    rotation: &mut Rotation,
) -> Result<(), VaultError> {
    let deployment = &name[STAGING_PREFIX.len()..];
    check_id(deployment)?;
    let Some(staged) = current(bucket, name).await? else {
        return Ok(());
    };
    let staged_key = unwrap_either(deployment, &parse(deployment, &staged)?, old, new)?;
    match latest(bucket, deployment).await? {
        None => {
            store_as_key(bucket, deployment, staged.value.to_vec()).await?;
            tracing::info!(%deployment, "data key restored from an interrupted rotation");
            rotation.restored += 1;
        }
        // Destroyed since: the staged copy goes the same way, it is never restored.
        Some(marker) if marker.operation != kv::Operation::Put => {}
        Some(live) => {
            let live_key = unwrap_either(deployment, &parse(deployment, &live)?, old, new)?;
            if *live_key != *staged_key {
                return Err(VaultError::Store(format!(
                    "{deployment} has two different data keys: its own and one an interrupted \
                     rotation staged as {name}; nothing was changed, investigate before rotating"
                )));
            }
        }
    }
    erase(bucket, staged.revision).await
}

/// Store `record` as the deployment's key, expecting it to have none (at most a deletion marker).
async fn store_as_key(
    bucket: &Bucket,
    deployment: &str,
    record: Vec<u8>,
) -> Result<(), VaultError> {
    let expected = latest(bucket, deployment).await?.map_or(0, |e| e.revision);
    bucket
        .kv
        .update(deployment, record.into(), expected)
        .await
        .map_err(|e| {
            VaultError::Store(format!(
                "a data key was created for {deployment} while its key was being re-wrapped (is \
                 match still running?); the re-wrapped key is kept as {}: stop every service and \
                 rotate again ({e})",
                staging_key(deployment)
            ))
        })?;
    Ok(())
}

/// Securely erase the message `revision` (JetStream overwrites its bytes).
async fn erase(bucket: &Bucket, revision: u64) -> Result<(), VaultError> {
    match bucket.stream.delete_message(revision).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(VaultError::Store(format!(
            "secure erasure of revision {revision} refused"
        ))),
        // The server does not answer an identity without the right to erase: it times out.
        Err(e) => Err(VaultError::Store(format!(
            "secure erasure refused: {e} (the identity needs the right to erase from {})",
            lfr_schemas::streams::buckets::stream(crate::BUCKET)
        ))),
    }
}

/// The latest entry of `key`, whatever its operation.
async fn latest(bucket: &Bucket, key: &str) -> Result<Option<kv::Entry>, VaultError> {
    bucket
        .kv
        .entry(key)
        .await
        .map_err(|e| store_error("read", e))
}

/// The stored record of `key`, if it has one (not a deletion marker).
async fn current(bucket: &Bucket, key: &str) -> Result<Option<kv::Entry>, VaultError> {
    Ok(latest(bucket, key)
        .await?
        .filter(|e| e.operation == kv::Operation::Put))
}

fn parse(deployment: &str, entry: &kv::Entry) -> Result<WrappedKey, VaultError> {
    serde_json::from_slice(&entry.value).map_err(|_| VaultError::CorruptKey {
        key: deployment.into(),
    })
}

/// Unwrap `record` with whichever of the two master keys wrapped it.
fn unwrap_either(
    deployment: &str,
    record: &WrappedKey,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let master = if record.master_key == new.fingerprint() {
        new
    } else {
        old
    };
    unwrap_key(master, deployment, record)
}
