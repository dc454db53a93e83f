//! Erasing one alert's data, then proving it is gone.
//!
//! 1. Record the erasure on AUDIT: which alert, how many messages and bytes, and the sha256 of the
//!    candidate message (a digest, so the record proves *what* was erased without keeping it).
//!    First, so that an erasure cut short (purge killed) is on the record all the same; the next
//!    pass finishes it.
//! 2. Delete every message of the alert from ALERTS (its decision, outcomes, release, and its
//!    candidate last) by stream sequence. JetStream's default delete is a **secure erase**: the
//!    stored bytes are overwritten, not just unlinked.
//! 3. Announce the erasure on ALERTS (`lfr.alerts.<deployment>.erased`, ids only) so every
//!    reader's book forgets the alert.
//! 4. **Verify**: ask the stream for each erased sequence again; every one must be gone. The result
//!    is recorded on AUDIT too, and a failure is counted and logged as an error.

use async_nats::jetstream::{self, stream::Stream};
use lfr_alerts::Entry;
use lfr_common::audit::Audit;
use lfr_common::bus::Bus;
use lfr_schemas::{streams, subjects, AlertsErased, AuditAction, AuditObject, Timestamp};
use lfr_watchlist::list::sha256_hex;

/// What was erased of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Erased {
    pub alert_id: String,
    pub deployment: String,
    pub messages: usize,
    pub bytes: usize,
    /// sha256 of the candidate alert message as it was stored.
    pub digest: Option<String>,
    /// Every erased sequence is confirmed gone.
    pub verified: bool,
}

pub const ACTOR: Audit<'static> = Audit {
    actor: "lfr-purge",
    role: "service",
};

pub struct Eraser {
    pub bus: Bus,
}

impl Eraser {
    async fn alerts(&self) -> anyhow::Result<Stream> {
        Ok(self.bus.jetstream.get_stream(streams::ALERTS).await?)
    }

    /// Record, erase `entry`'s messages, announce and verify. `why` goes on the audit record.
    pub async fn erase(&self, entry: &Entry, why: &str) -> anyhow::Result<Erased> {
        let stream = self.alerts().await?;
        let alert = &entry.alert;
        let mut bytes = 0;
        let mut digest = None;
        for &seq in &entry.seqs {
            // Already gone (an earlier pass was interrupted): nothing to read.
            if let Ok(m) = stream.get_raw_message(seq).await {
                bytes += m.payload.len();
                if seq == entry.seqs[0] {
                    digest = Some(sha256_hex(&m.payload));
                }
            }
        }
        let mut erasure = ACTOR
            .event(
                AuditAction::Erasure,
                AuditObject::Alert(alert.alert_id.clone()),
            )
            .deployment(&alert.deployment)
            .why(format!(
                "{why}: {} messages ({bytes} bytes) securely erased from ALERTS",
                entry.seqs.len()
            ));
        if let Some(d) = &digest {
            erasure = erasure.digest(d);
        }
        // On the record before the first byte goes: every reader of ALERTS (purge's own book
        // included) learns of an alert from its candidate message, so once that is deleted
        // nothing would ever record the erasure. Killed after this record, the next pass
        // erases what is left and records it again: a second record, never none.
        erasure.clone().record(&self.bus.jetstream).await?;
        // The candidate last: while it stands, the alert is in every book, and a pass cut
        // short here leaves no decision or outcome behind without it.
        let mut erased = Vec::new();
        for &seq in entry.seqs.iter().rev() {
            match stream.delete_message(seq).await {
                Ok(_) => erased.push(seq),
                Err(e) if is_missing(&e) => erased.push(seq),
                Err(e) => anyhow::bail!(
                    "cannot erase message {seq} of alert {}: {e}",
                    alert.alert_id
                ),
            }
        }
        let marker = AlertsErased {
            deployment: alert.deployment.clone(),
            alert_ids: vec![alert.alert_id.clone()],
            erased_at: Timestamp::now(),
            reason: why.into(),
        };
        self.bus
            .publish_record(
                streams::ALERTS,
                subjects::alerts_erased(&alert.deployment),
                &format!("{}.erased", alert.alert_id),
                &marker,
            )
            .await?
            .acknowledged()
            .await?;
        let verified = self.verify(&stream, &erased).await;
        erasure
            .why(if verified {
                format!(
                    "erasure verified: none of the {} messages remains",
                    erased.len()
                )
            } else {
                "erasure verification FAILED: a message remains".to_string()
            })
            .record(&self.bus.jetstream)
            .await?;
        Ok(Erased {
            alert_id: alert.alert_id.clone(),
            deployment: alert.deployment.clone(),
            messages: erased.len(),
            bytes,
            digest,
            verified,
        })
    }

    /// Every sequence in `seqs` is gone from the stream.
    async fn verify(&self, stream: &Stream, seqs: &[u64]) -> bool {
        for &seq in seqs {
            match stream.get_raw_message(seq).await {
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
                Ok(_) => {
                    tracing::error!(seq, "erased message still present");
                    return false;
                }
                Err(e) => {
                    tracing::error!(seq, error = %e, "cannot check an erasure");
                    return false;
                }
            }
        }
        true
    }
}

fn is_missing(e: &jetstream::stream::DeleteMessageError) -> bool {
    e.to_string().contains("no message found") || e.to_string().contains("not found")
}
