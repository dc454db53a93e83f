//! The retention report: per deployment, what alert data is held, why, and the day it will be
//! erased. Built from a [`Book`] by the purge service (each pass) and by `lfr retention report`.

use crate::policy::{Fate, Policy};
use lfr_alerts::{Book, Entry};
use lfr_schemas::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: Timestamp,
    pub retention_days: f64,
    pub deployments: Vec<DeploymentReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    pub deployment: String,
    pub alerts: usize,
    pub legal_holds: usize,
    pub overdue: usize,
    /// The earliest erasure date among its alerts not on hold.
    pub next_erasure: Option<Timestamp>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub alert_id: String,
    pub category: &'static str,
    pub raised_at: Timestamp,
    /// pending, confirmed, rejected, or blue.
    pub state: &'static str,
    pub outcome: Option<&'static str>,
    /// Why it is held: "retention period" or "legal hold (arrest)".
    pub held_for: &'static str,
    pub erase_after: Option<Timestamp>,
    pub overdue: bool,
}

pub fn build(book: &Book, policy: &Policy, now: Timestamp) -> Report {
    let mut by_deployment: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for entry in book.all() {
        by_deployment
            .entry(entry.alert.deployment.clone())
            .or_default()
            .push(entry);
    }
    let deployments = by_deployment
        .into_iter()
        .map(|(deployment, mut entries)| {
            entries.sort_by_key(|e| e.seq);
            let items: Vec<Item> = entries.iter().map(|e| item(e, policy, now)).collect();
            DeploymentReport {
                deployment,
                alerts: items.len(),
                legal_holds: items.iter().filter(|i| i.erase_after.is_none()).count(),
                overdue: items.iter().filter(|i| i.overdue).count(),
                next_erasure: items.iter().filter_map(|i| i.erase_after).min(),
                items,
            }
        })
        .collect();
    Report {
        generated_at: now,
        retention_days: policy.retention.as_secs_f64() / 86_400.0,
        deployments,
    }
}

fn item(e: &Entry, policy: &Policy, now: Timestamp) -> Item {
    let state = if e.is_blue() {
        "blue"
    } else {
        match &e.decision {
            None => "pending",
            Some(d) => d.decision.as_str(),
        }
    };
    let fate = policy.fate(e, now);
    Item {
        alert_id: e.alert.alert_id.clone(),
        category: e.alert.category.as_str(),
        raised_at: e.alert.raised_at,
        state,
        outcome: e.outcome().map(|o| o.outcome.as_str()),
        held_for: if fate == Fate::Hold {
            "legal hold (arrest)"
        } else {
            "retention period"
        },
        erase_after: e.erase_after(policy.retention),
        overdue: policy.is_overdue(e, now),
    }
}
