//! Audit events: every service records collections, alterations, consultations, disclosures,
//! combinations and erasures on the AUDIT stream (file storage, deny delete, deny purge), with who,
//! when, why. Events name objects by reference and digest, never by content: no face image or
//! template is ever written to the audit log.

use lfr_schemas::{subjects, AuditAction, AuditEvent, Message, Timestamp};

/// Builds and records one event.
pub struct Audit<'a> {
    pub actor: &'a str,
    pub role: &'a str,
}

impl Audit<'_> {
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        js: &async_nats::jetstream::Context,
        action: AuditAction,
        deployment: Option<&str>,
        object: String,
        justification: &str,
        recipients: Vec<String>,
        digest: Option<String>,
    ) -> anyhow::Result<AuditEvent> {
        let at = Timestamp::now();
        let event = AuditEvent {
            event_id: format!("{}-{}", at.0, std::process::id()),
            at,
            action,
            actor: self.actor.into(),
            role: self.role.into(),
            deployment: deployment.map(Into::into),
            object,
            justification: justification.into(),
            recipients,
            digest,
        };
        js.publish(subjects::audit(deployment), event.encode().into())
            .await?
            .await
            .map_err(|e| anyhow::anyhow!("audit event not stored: {e}"))?;
        Ok(event)
    }
}
