//! Audit events: the processing operations that UK DPA 2018 s.62 requires a log of.

use super::Timestamp;
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    Collection,
    Alteration,
    Consultation,
    Disclosure,
    Combination,
    Erasure,
    Login,
    ConfigurationChange,
}

/// One logged operation: who, when, why, on what. Objects are references and digests, never
/// images or templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: String,
    pub at: Timestamp,
    pub action: AuditAction,
    /// Account id or service name.
    pub actor: String,
    pub role: String,
    pub deployment: Option<String>,
    /// What was acted on, e.g. `alert/<id>` or `watchlist/<deployment>`.
    pub object: String,
    pub justification: String,
    /// Accounts or devices a disclosure went to.
    pub recipients: Vec<String>,
    /// Hex sha256 of the object's content, where there is content.
    pub digest: Option<String>,
}

impl Message for AuditEvent {
    const KIND: Kind = Kind::AuditEvent;
    const VERSION: u8 = 1;
}
