//! Oversight pages. **Supervisors** (the technical team among them) see every deployment with its
//! load verification and its **live accuracy** (faces compared, alerts, rejected as false, the
//! false-alert rate per alert and per face compared), and the blue-list alerts: staff volunteers
//! walking past, which measure how many people on the watch list the system misses, and are
//! never sent to officers. The technical team records each **walk test** here ([`super::walks`]);
//! every walk is shown scored (alerted or missed, before, during or after the live window) with
//! the deployment's live miss rate. **Auditors**
//! see the latest audit events, read-only. Both see every standing **hold** (complaint, access
//! request, investigation, on an alert or a whole deployment, and arrests' legal holds) with its
//! reason, case reference, age and last review, those unreviewed for 90 days flagged for review
//! (placed and released with `lfr retention hold` / `release`; ids and cases only, no images).

use super::operator::{facts, images};
use super::{allow, html, walks, Console};
use crate::auth::{CurrentSession, Role, Session};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use axum::extract::State;
use axum::response::Response;
use futures::StreamExt;
use lfr_alerts::accuracy::{one_in, thousands};
use lfr_alerts::holds::DEFAULT_REVIEW;
use lfr_schemas::{streams, subjects, AuditAction, AuditEvent, Message, Timestamp};
use lfr_watchlist::lifecycle::Verification;
use std::time::Duration;

/// Audit events the auditor's page shows.
const AUDIT_PAGE: u64 = 200;

pub async fn supervisor(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Supervisor]) {
        return refused;
    }
    let mut rows = String::new();
    let mut accuracy = String::new();
    let mut paused = String::new();
    let now = Timestamp::now();
    for d in console.lifecycle.list().await.unwrap_or_default() {
        paused.push_str(&super::review::banner(&d, Timestamp::now()));
        let view = console.lifecycle.view(d.clone()).await;
        let reports = view
            .as_ref()
            .map(|v| v.load_reports.clone())
            .unwrap_or_default();
        accuracy.push_str(&accuracy_row(
            &d.id,
            &console
                .metrics
                .accuracy
                .rates(&console.book, &d, &reports, now),
        ));
        let verification = match view.map(|v| v.verification) {
            Ok(Verification::Verified { replicas }) => format!("verified ({replicas} replicas)"),
            Ok(Verification::Unverified { reason }) => format!("NOT verified: {reason}"),
            Err(_) => "unknown".into(),
        };
        let list = d
            .watchlist
            .as_ref()
            .map(|l| {
                format!(
                    "{} entries, {}",
                    l.entries,
                    &l.digest[..12.min(l.digest.len())]
                )
            })
            .unwrap_or_else(|| "none".into());
        let blue = console
            .book
            .select(|e| e.is_blue() && e.alert.deployment == d.id)
            .len();
        rows.push_str(&format!(
            "<tr><td><a href=\"/deployments/{id}\">{id}</a></td><td>{name}</td><td>{state:?}</td><td>{cameras}</td><td>{list}</td>\
             <td>{verification}</td><td>{blue}</td></tr>",
            id = html::escape(&d.id),
            name = html::escape(&d.name),
            state = d.state,
            cameras = html::escape(&d.cameras.join(", ")),
            list = html::escape(&list),
            verification = html::escape(&verification),
        ));
    }
    let blue = blue_section(&console, &session).await;
    let holds = render_holds(&console);
    let walk_form = walks::form(&session);
    let body = format!(
        r#"{paused}<h2>Deployments</h2>
<table><thead><tr><th>Id</th><th>Name</th><th>State</th><th>Cameras</th><th>Watch list</th><th>Load verification</th><th>Blue-list alerts</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Live accuracy</h2>
<p>False alerts are alerts operators rejected (blue-list alerts are staff and not counted); the DPIA holds them under 1 in 1,000 faces compared.</p>
<table id="accuracy"><thead><tr><th>Deployment</th><th>Faces compared</th><th>Alerts</th><th>Rejected as false</th><th>False alerts per alert</th><th>False alerts per face compared</th><th>Blue walks</th><th>Missed</th><th>Miss rate</th></tr></thead>
<tbody>{accuracy}</tbody></table>
{holds}
<h2>Blue watch list: staff volunteers recognised</h2>
<p>These measure the system; they never reach officers. Record each walk test past a camera:</p>
{walk_form}
<section id="blue" data-live="/supervisor/blue">{blue}</section>"#
    );
    html::page(
        &session,
        "Supervision",
        "supervisor",
        Some("/supervisor/blue"),
        &body,
    )
}

pub async fn blue(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Supervisor]) {
        return refused;
    }
    html::fragment(blue_section(&console, &session).await)
}

/// The walk tests of every deployment that has any, then the blue-list alerts.
async fn blue_section(console: &Console, session: &Session) -> String {
    let now = Timestamp::now();
    let mut out = String::new();
    for d in console.lifecycle.list().await.unwrap_or_default() {
        if console.book.walks(&d.id).is_empty() {
            continue;
        }
        let rates = console.metrics.accuracy.rates(&console.book, &d, &[], now);
        out.push_str(&walks::table(&d.id, &rates));
    }
    out.push_str(&render_blue(console, session).await);
    out
}

/// One deployment's line of the live accuracy table.
fn accuracy_row(deployment: &str, rates: &crate::accuracy::Rates) -> String {
    let fa = &rates.false_alerts;
    let per_alert = fa
        .per_alert()
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into());
    let miss_rate = rates
        .misses
        .miss_rate()
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into());
    format!(
        r#"<tr data-deployment="{id}"><td>{id}</td><td class="compared">{compared}</td><td>{alerts}</td><td class="rejected">{rejected}</td><td class="per-alert">{per_alert}</td><td class="per-compared">{per_compared}</td><td>{walks}</td><td>{missed}</td><td class="miss-rate">{miss_rate}</td></tr>"#,
        id = html::escape(deployment),
        compared = thousands(rates.compared),
        alerts = fa.alerts,
        rejected = fa.rejected,
        per_compared = one_in(fa.per_compared(rates.compared)),
        walks = rates.misses.walks,
        missed = rates.misses.missed,
    )
}

async fn render_blue(console: &Console, session: &Session) -> String {
    let alerts = console.book.select(|e| e.is_blue());
    if alerts.is_empty() {
        return r#"<p class="empty">No blue-list alerts.</p>"#.into();
    }
    let mut out = String::new();
    for (shown, entry) in alerts.iter().take(50).enumerate() {
        if let Err(e) = console
            .shown(session, entry, AuditAction::Consultation)
            .await
        {
            out.push_str(&console.unaudited_list(alerts.len().min(50) - shown, &e));
            break;
        }
        out.push_str(&format!(
            r#"<article class="alert" data-alert="{id}"><span class="flag blue">BLUE LIST</span>{images}{facts}</article>"#,
            id = html::escape(&entry.alert.alert_id),
            images = images(entry),
            facts = facts(entry),
        ));
    }
    out
}

pub async fn auditor(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Auditor]) {
        return refused;
    }
    let rows = match latest_audit(&console).await {
        Ok(events) => events
            .iter()
            .rev()
            .map(|e| {
                format!(
                    "<tr><td>{at}</td><td>{action:?}</td><td>{actor} ({role})</td><td>{deployment}</td>\
                     <td>{object}</td><td>{why}</td><td>{recipients}</td></tr>",
                    at = html::clock(e.at),
                    action = e.action,
                    actor = html::escape(&e.actor),
                    role = html::escape(&e.role),
                    deployment = html::escape(e.deployment.as_deref().unwrap_or("")),
                    object = html::escape(&e.object),
                    why = html::escape(&e.justification),
                    recipients = html::escape(&e.recipients.join(", ")),
                )
            })
            .collect::<String>(),
        Err(e) => {
            tracing::warn!(error = %e, "audit events unavailable");
            r#"<tr><td colspan="7">The audit record is unavailable.</td></tr>"#.into()
        }
    };
    let holds = render_holds(&console);
    let deployments = deployment_records(&console).await;
    let body = format!(
        r#"{deployments}{holds}
<h2>Latest audit events</h2>
<table><thead><tr><th>When</th><th>Action</th><th>Who</th><th>Deployment</th><th>Object</th><th>Why</th><th>Disclosed to</th></tr></thead>
<tbody>{rows}</tbody></table>"#
    );
    html::page(&session, "Audit", "auditor", None, &body)
}

/// Every deployment with its authorisation and review, each linking to its full record
/// (governance, authorising officer and rank, review): what an auditor checks a deployment by.
async fn deployment_records(console: &Console) -> String {
    let mut rows = String::new();
    for d in console.lifecycle.list().await.unwrap_or_default() {
        let authorised = d
            .authorisation
            .as_ref()
            .map(|a| {
                format!(
                    "{} ({})",
                    a.officer,
                    a.rank.map(|r| r.as_str()).unwrap_or("rank not recorded")
                )
            })
            .unwrap_or_else(|| "no".into());
        let reviewed = d
            .review
            .as_ref()
            .map(|r| {
                format!(
                    "{} at {}",
                    r.reviewer,
                    lfr_watchlist::time::format_utc(r.at)
                )
            })
            .unwrap_or_else(|| "no".into());
        rows.push_str(&format!(
            "<tr><td><a href=\"/deployments/{id}\">{id}</a></td><td>{state:?}</td><td>{authorised}</td><td>{reviewed}</td><td>{governed}</td></tr>",
            id = html::escape(&d.id),
            state = d.state,
            authorised = html::escape(&authorised),
            reviewed = html::escape(&reviewed),
            governed = if d.governance.is_some() { "recorded" } else { "missing" },
        ));
    }
    format!(
        r#"<h2>Deployments</h2>
<table><thead><tr><th>Id</th><th>State</th><th>Authorised by</th><th>Reviewed by</th><th>Governance</th></tr></thead>
<tbody>{rows}</tbody></table>"#
    )
}

/// One standing hold, for the table.
struct HoldRow {
    deployment: String,
    held: String,
    reason: &'static str,
    case: String,
    by: String,
    placed_at: Timestamp,
    reviewed_at: Timestamp,
}

/// Every standing hold, oldest first: placed ones, then arrests' legal holds.
fn render_holds(console: &Console) -> String {
    let now = Timestamp::now();
    let mut rows: Vec<HoldRow> = console
        .book
        .holds()
        .into_iter()
        .filter(|h| h.is_active())
        .map(|h| HoldRow {
            deployment: h.deployment().into(),
            held: match h.alert_id() {
                Some(a) => format!("alert {a}"),
                None => format!(
                    "whole deployment ({} alerts)",
                    console
                        .book
                        .select(|e| e.alert.deployment == h.deployment())
                        .len()
                ),
            },
            reason: h.reason().as_str(),
            case: h.case_reference().into(),
            by: h.placed.actor.clone(),
            placed_at: h.placed.placed_at,
            reviewed_at: h.reviewed_at,
        })
        .collect();
    for e in console.book.select(|e| e.on_legal_hold()) {
        let Some(since) = e.legal_hold_since() else {
            continue;
        };
        let corrected = e
            .corrected_outcomes()
            .iter()
            .map(|o| o.outcome.as_str())
            .collect::<Vec<_>>();
        rows.push(HoldRow {
            deployment: e.alert.deployment.clone(),
            held: if corrected.is_empty() {
                format!("alert {}", e.alert.alert_id)
            } else {
                format!(
                    "alert {} (outcomes before: {})",
                    e.alert.alert_id,
                    corrected.join(", ")
                )
            },
            reason: "arrest",
            case: "-".into(),
            by: e.outcome().map(|o| o.actor.clone()).unwrap_or_default(),
            placed_at: since,
            reviewed_at: since,
        });
    }
    rows.sort_by_key(|r| r.placed_at);
    let days = |t: Timestamp| t.until(now).as_secs() / 86_400;
    let date = |t: Timestamp| lfr_watchlist::time::format_utc(t)[..10].to_string();
    let due = rows
        .iter()
        .filter(|r| r.reviewed_at.until(now) >= DEFAULT_REVIEW)
        .count();
    let body: String = rows
        .iter()
        .map(|r| {
            let flag = if r.reviewed_at.until(now) >= DEFAULT_REVIEW {
                r#"<span class="flag">REVIEW DUE</span>"#
            } else {
                ""
            };
            format!(
                "<tr><td>{deployment}</td><td>{held}</td><td>{reason}</td><td>{case}</td>\
                 <td>{placed}</td><td>{by}</td><td>{age}</td><td>{reviewed}</td><td>{flag}</td></tr>",
                deployment = html::escape(&r.deployment),
                held = html::escape(&r.held),
                reason = r.reason,
                case = html::escape(&r.case),
                placed = date(r.placed_at),
                by = html::escape(&r.by),
                age = days(r.placed_at),
                reviewed = date(r.reviewed_at),
            )
        })
        .collect();
    let body = if body.is_empty() {
        r#"<tr><td colspan="9">No holds.</td></tr>"#.into()
    } else {
        body
    };
    format!(
        r#"<h2>Holds</h2>
<p>Alert data kept past its retention period: {n} standing, {due} due for review (not reviewed for {review} days). Placed, reviewed and released with <code>lfr retention hold</code> and <code>lfr retention release</code>.</p>
<table id="holds"><thead><tr><th>Deployment</th><th>Holds</th><th>Reason</th><th>Case</th><th>Placed</th><th>By</th><th>Age (days)</th><th>Last review</th><th>Review</th></tr></thead>
<tbody>{body}</tbody></table>"#,
        n = rows.len(),
        review = DEFAULT_REVIEW.as_secs() / 86_400,
    )
}

/// The last [`AUDIT_PAGE`] events on AUDIT, oldest first.
async fn latest_audit(console: &Console) -> anyhow::Result<Vec<AuditEvent>> {
    let js = &console.bus.jetstream;
    let stream = js.get_stream(streams::AUDIT).await?;
    let last = stream.get_info().await?.state.last_sequence;
    if last == 0 {
        return Ok(Vec::new());
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subjects::AUDIT_ALL.into(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: last.saturating_sub(AUDIT_PAGE - 1).max(1),
            },
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await?.take(pending as usize);
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
        if let Ok(event) = AuditEvent::decode(&m?.payload) {
            out.push(event);
        }
    }
    Ok(out)
}
