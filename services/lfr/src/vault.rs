//! `lfr vault`: rotating the master key.
//!
//! ```text
//! export LFR_MASTER_KEY=...        # the current master key (base64 of 32 bytes)
//! export LFR_NEW_MASTER_KEY=...    # the new one: head -c 32 /dev/urandom | base64
//! lfr login --account sup-1       # the rotation acts as a supervisor's account
//! lfr vault rotate
//! ```
//!
//! Every deployment's data key is re-wrapped under the new master key and every copy wrapped under
//! the current one is securely erased from the key store ([`lfr_vault::Vault::rewrap`]); sealed
//! alert images are untouched (their data keys do not change). Offline: stop match, dispatch and
//! purge first, restart them with the new key as `LFR_MASTER_KEY` afterwards. An interrupted run
//! is finished by running it again with the same two keys.
//!
//! Recorded on AUDIT (`ConfigurationChange`, object `vault/lfr-keys`, actor the logged-in
//! supervisor, [`crate::login::supervisor`]): the start, and how it ended, with both keys'
//! fingerprints. Without a login nothing is rotated. The keys themselves are never printed.

use lfr_common::audit::Audit;
use lfr_schemas::{AuditAction, AuditObject};
use lfr_vault::{MasterKey, Rotation, Vault, BUCKET};
use lfr_watchlist::lifecycle::Actor;

/// Where `lfr vault rotate` reads the new master key (the current one is in `LFR_MASTER_KEY`).
pub const NEW_MASTER_KEY_ENV: &str = "LFR_NEW_MASTER_KEY";

#[derive(clap::Args)]
pub struct VaultArgs {
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Re-wrap every data key under the master key in LFR_NEW_MASTER_KEY and securely erase the
    /// copies wrapped under the current one (LFR_MASTER_KEY). Stop match, dispatch and purge
    /// first; restart them with the new key.
    Rotate,
}

pub async fn run(args: VaultArgs) -> anyhow::Result<()> {
    match args.command {
        Command::Rotate => rotate(&args.nats).await,
    }
}

async fn rotate(nats: &crate::connect::NatsArgs) -> anyhow::Result<()> {
    let old = MasterKey::from_env()?;
    let new = MasterKey::from_env_var(NEW_MASTER_KEY_ENV)?;
    anyhow::ensure!(
        old.fingerprint() != new.fingerprint(),
        "{NEW_MASTER_KEY_ENV} holds the current master key ({}): nothing would change. Generate \
         the new key with `head -c 32 /dev/urandom | base64`",
        old.fingerprint()
    );
    let bus = nats.bus().await?;
    let js = &bus.jetstream;
    // Key administration is a supervisor's: refused before the key store is touched.
    let by = &crate::login::supervisor(js, "lfr vault rotate").await?;
    let vault = Vault::open(js, old.clone()).await?;
    let from_to = format!(
        "from master key {} to {}",
        old.fingerprint(),
        new.fingerprint()
    );
    record(js, by, format!("master key rotation {from_to} started")).await?;
    match vault.rewrap(&new).await {
        Ok(rotation) => {
            let done = format!("master key rotated {from_to}: {}", summary(&rotation));
            record(js, by, done).await?;
            print_outcome(&rotation, &old, &new);
        }
        Err(e) => {
            record(
                js,
                by,
                format!("master key rotation {from_to} stopped: {e}"),
            )
            .await?;
            anyhow::bail!(
                "the rotation stopped: {e}. No data key is lost: run it again with the same two \
                 keys to finish it"
            );
        }
    }
    let _ = bus.client.flush().await;
    Ok(())
}

/// One audit event about the key store (`vault/lfr-keys`), by the logged-in account.
async fn record(
    js: &async_nats::jetstream::Context,
    by: &Actor,
    justification: String,
) -> anyhow::Result<()> {
    Audit {
        actor: &by.id,
        role: &by.role,
    }
    .event(
        AuditAction::ConfigurationChange,
        AuditObject::Vault(BUCKET.into()),
    )
    .why(justification)
    .record(js)
    .await?;
    Ok(())
}

/// Counts, for the audit event.
fn summary(r: &Rotation) -> String {
    format!(
        "{} data keys re-wrapped, {} already under the new key, {} restored from an interrupted \
         run; {} copies under the old key securely erased",
        r.rewrapped.len(),
        r.already.len(),
        r.restored,
        r.erased
    )
}

fn print_outcome(r: &Rotation, old: &MasterKey, new: &MasterKey) {
    let list = |d: &[String]| {
        if d.is_empty() {
            "none".to_string()
        } else {
            d.join(", ")
        }
    };
    println!(
        "re-wrapped {} data keys under master key {}: {}",
        r.rewrapped.len(),
        new.fingerprint(),
        list(&r.rewrapped)
    );
    println!("already under it: {}", list(&r.already));
    if r.restored > 0 {
        println!("restored from an interrupted rotation: {}", r.restored);
    }
    println!(
        "copies under the old master key securely erased: {}",
        r.erased
    );
    println!(
        "Restart match, dispatch and purge with LFR_MASTER_KEY set to the new key (fingerprint \
         {}), then destroy the old one (fingerprint {}) wherever it is kept.",
        new.fingerprint(),
        old.fingerprint()
    );
}
