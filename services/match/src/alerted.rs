//! The replicas' shared memory of who alerted: one person passing is one alert, even across a
//! takeover.
//!
//! The tracker ([`crate::corroborate`]) keeps "entry E alerted at T" in the memory of the replica
//! that raised it. Match runs active/standby (one pinned replica; `lfr_schemas::streams::
//! ConsumerSpec::active_standby`), so when the active replica dies the standby takes the rest of
//! the pass with empty tracks and would corroborate the same person again. Before raising, a
//! replica therefore asks the `lfr-match-alerted` bucket whether the entry alerted within
//! `realert_after`; after raising, it says so there.
//!
//! The order keeps the guarantee one-sided: the ledger is written only once the alert is stored,
//! so a ledger entry always means an alert exists (never a lost one), and a crash between the two
//! can at worst let one duplicate through. A ledger the bus cannot answer is treated as empty for
//! the same reason: a duplicate the operator dismisses is better than a missed alert.
//!
//! Keys are a digest of the deployment and the entry reference: the bucket holds no reference,
//! name or face, and expires in minutes (memory only).

use lfr_schemas::streams::buckets;
use lfr_schemas::Timestamp;
use lfr_watchlist::list::hex;
use sha2::{Digest, Sha256};
use std::time::Duration;

#[derive(Clone)]
pub struct Ledger {
    kv: async_nats::jetstream::kv::Store,
}

impl Ledger {
    pub async fn open(js: &async_nats::jetstream::Context) -> anyhow::Result<Ledger> {
        let kv = js
            .get_key_value(buckets::ALERTED)
            .await
            .map_err(|e| anyhow::anyhow!("bucket {}: {e}", buckets::ALERTED))?;
        Ok(Ledger { kv })
    }

    /// When this entry last alerted in this deployment, if within `window` before `now`.
    pub async fn alerted_within(
        &self,
        deployment: &str,
        reference: &str,
        now: Timestamp,
        window: Duration,
    ) -> anyhow::Result<Option<Timestamp>> {
        let Some(value) = self.kv.get(key(deployment, reference)).await? else {
            return Ok(None);
        };
        let at = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Timestamp)
            .ok_or_else(|| anyhow::anyhow!("unreadable ledger entry"))?;
        // A capture time later than this probe's is the same pass seen first by the other replica.
        Ok((at > now || at.until(now) < window).then_some(at))
    }

    /// Say that this entry alerted at `at` (the capture time of the alert's probe).
    pub async fn record(
        &self,
        deployment: &str,
        reference: &str,
        at: Timestamp,
    ) -> anyhow::Result<()> {
        self.kv
            .put(key(deployment, reference), at.0.to_string().into())
            .await?;
        Ok(())
    }
}

/// Opaque and fixed-length: it reveals neither deployment nor entry.
fn key(deployment: &str, reference: &str) -> String {
    let mut h = Sha256::new();
    for part in [deployment, reference] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_opaque_and_distinguish_deployments_and_entries() {
        let a = key("dep-1", "subject-7");
        assert_eq!(a.len(), 32);
        assert!(!a.contains("dep") && !a.contains("subject"));
        assert_ne!(a, key("dep-2", "subject-7"));
        assert_ne!(a, key("dep-1", "subject-8"));
        // Length-prefixed parts: moving the boundary changes the key.
        assert_ne!(key("ab", "c"), key("a", "bc"));
    }
}
