//! # lfr-purge: retention enforcement, with proof
//!
//! What is kept, for how long, and proof that it was erased. Every `interval`, and whenever asked
//! (`lfr retention purge`, a request on `lfr.purge.run`), a **pass**:
//!
//! 1. reads the state of every alert from ALERTS (its own [`Book`], kept current by the feed);
//! 2. erases, through the [`eraser`], every alert past its retention period ([`policy`]: 30 days
//!    by default) that no hold keeps (an arrest as its latest outcome, or a hold for a complaint,
//!    an access request or an investigation on the alert or its deployment), verifying each
//!    erasure and recording both on AUDIT;
//! 3. wipes the watch lists of deployments that have ended (a backstop behind `lfr deployment
//!    end`), ending first any deployment whose authorised time is over but that nobody ended;
//! 4. destroys the data key of every ended deployment none of whose alerts remains
//!    (**crypto-shredding**: copies of its alerts in replicas or backups become unreadable);
//! 5. verifies the audit chain against the latest signed anchor, read back from the anchors bucket
//!    (so a restart loses nothing), and signs the new head when intact (`lfr_audit_chain_intact`;
//!    [`lfr_common::anchor`]: with `anchor_key_file` configured, else the anchor of its previous
//!    pass, in memory);
//! 6. updates the metrics and the retention [`report`], counting the holds that have stood longer
//!    than the review period (default 90 days) without review (`lfr_purge_holds_due_review`).

pub mod clock;
pub mod eraser;
pub mod policy;
pub mod report;

use clock::Clock;
use eraser::{Eraser, ACTOR};
use futures::StreamExt;
use lfr_alerts::{feed, Book};
use lfr_common::anchor::{AnchorKey, Notary, PublicKey, Verdict};
use lfr_common::audit::{self as audit_log, Anchor};
use lfr_common::bus::Bus;
use lfr_common::config::{secs, Common};
use lfr_common::service::{self, Running};
use lfr_common::Shutdown;
use lfr_schemas::{AuditAction, AuditObject, HoldReason, Timestamp};
use lfr_vault::Shredder;
use lfr_watchlist::deployment::State;
use lfr_watchlist::store::Store;
use policy::{Fate, Policy};
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// Where `lfr retention purge` asks for a pass now (NATS request/reply; the reply is the pass's
/// [`PassSummary`] as JSON).
pub const RUN_SUBJECT: &str = "lfr.purge.run";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
    pub purge: PurgeConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PurgeConfig {
    pub http_addr: SocketAddr,
    /// Time between purge passes.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// How long alert data is kept after the alert was raised (unless a hold keeps it).
    #[serde(with = "secs")]
    pub retention: Duration,
    /// How long a hold may stand without review before it is listed for one.
    #[serde(with = "secs")]
    pub hold_review: Duration,
    /// The private key this verifier signs audit anchors with (64 hex digits; created, mode
    /// 0600, when missing). No other component may hold it. Unset: the anchor lives in memory
    /// only and is lost on restart (docs/security.md, "Audit anchors").
    pub anchor_key_file: Option<PathBuf>,
    /// Public keys of earlier anchor keys whose anchors are still trusted (after a rotation).
    pub previous_anchor_keys: Vec<String>,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            http_addr: "127.0.0.1:9106".parse().unwrap(),
            interval: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 86_400),
            hold_review: policy::DEFAULT_REVIEW,
            anchor_key_file: None,
            previous_anchor_keys: Vec::new(),
        }
    }
}

impl PurgeConfig {
    pub fn policy(&self) -> Policy {
        Policy {
            retention: self.retention,
            grace: self.interval * 2,
            review: self.hold_review,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PassSummary {
    pub at: Timestamp,
    pub alerts_erased: usize,
    pub messages_erased: usize,
    pub erasures_unverified: usize,
    pub watchlists_wiped: usize,
    pub keys_destroyed: usize,
    /// Alerts kept for their retention period.
    pub held: usize,
    /// Alerts kept by a hold (an arrest's, or one placed for a case).
    pub legal_holds: usize,
    pub overdue: usize,
    /// Standing holds (the arrests' included).
    pub holds: usize,
    /// Standing holds not reviewed for the review period: for review.
    pub holds_due_review: usize,
    /// The audit chain verified intact (from the first event, and against the last pass's anchor).
    pub audit_chain_intact: bool,
    pub audit_chain_length: u64,
    /// The chain length covered by the latest signed anchor (0: none).
    #[serde(default)]
    pub audit_anchored: u64,
}

#[derive(Clone)]
struct PurgeMetrics {
    passes: IntCounter,
    erased: IntCounter,
    unverified: IntCounter,
    wiped: IntCounter,
    held: IntGaugeVec,
    by_state: IntGaugeVec,
    overdue: IntGauge,
    keys_destroyed: IntCounter,
    chain_length: IntGauge,
    chain_intact: IntGauge,
    anchored: IntGauge,
    holds: IntGaugeVec,
    holds_due_review: IntGauge,
}

impl PurgeMetrics {
    fn new(registry: &Registry) -> anyhow::Result<PurgeMetrics> {
        let m = PurgeMetrics {
            passes: IntCounter::new("purge_passes_total", "Purge passes completed")?,
            erased: IntCounter::new(
                "purge_alerts_erased_total",
                "Alerts whose data was erased (retention period over)",
            )?,
            unverified: IntCounter::new(
                "purge_erasures_unverified_total",
                "Erasures whose verification found data remaining (must stay 0)",
            )?,
            wiped: IntCounter::new(
                "purge_watchlists_wiped_total",
                "Watch lists of ended deployments wiped by the backstop",
            )?,
            held: IntGaugeVec::new(
                Opts::new(
                    "purge_alerts_held",
                    "Alerts whose data is held, by reason (retention; legal_hold: an arrest or a hold placed for a case)",
                ),
                &["reason"],
            )?,
            by_state: IntGaugeVec::new(
                Opts::new(
                    "purge_alerts_by_state",
                    "Alerts held, by state (pending, confirmed, rejected, blue)",
                ),
                &["state"],
            )?,
            overdue: IntGauge::new(
                "purge_overdue",
                "Alerts past their erasure date by more than two intervals (must be 0)",
            )?,
            keys_destroyed: IntCounter::new(
                "purge_keys_destroyed_total",
                "Data keys of ended deployments destroyed (crypto-shredding)",
            )?,
            chain_length: IntGauge::new(
                "audit_chain_length",
                "Audit events verified in an unbroken hash chain",
            )?,
            chain_intact: IntGauge::new(
                "audit_chain_intact",
                "1 when the audit hash chain verified intact at the last pass (0: investigate)",
            )?,
            anchored: IntGauge::new(
                "audit_chain_anchored",
                "Audit events covered by the latest signed anchor (outside AUDIT)",
            )?,
            holds: IntGaugeVec::new(
                Opts::new(
                    "purge_holds",
                    "Standing holds, by reason (complaint, access-request, investigation, arrest)",
                ),
                &["reason"],
            )?,
            holds_due_review: IntGauge::new(
                "purge_holds_due_review",
                "Standing holds not reviewed for the review period (default 90 days): review them",
            )?,
        };
        registry.register(Box::new(m.holds.clone()))?;
        registry.register(Box::new(m.holds_due_review.clone()))?;
        registry.register(Box::new(m.keys_destroyed.clone()))?;
        registry.register(Box::new(m.chain_length.clone()))?;
        registry.register(Box::new(m.chain_intact.clone()))?;
        registry.register(Box::new(m.anchored.clone()))?;
        registry.register(Box::new(m.passes.clone()))?;
        registry.register(Box::new(m.erased.clone()))?;
        registry.register(Box::new(m.unverified.clone()))?;
        registry.register(Box::new(m.wiped.clone()))?;
        registry.register(Box::new(m.held.clone()))?;
        registry.register(Box::new(m.by_state.clone()))?;
        registry.register(Box::new(m.overdue.clone()))?;
        Ok(m)
    }
}

/// The purge pass and what it needs.
pub struct Purger {
    pub book: Book,
    pub store: Store,
    pub eraser: Eraser,
    pub policy: Policy,
    pub clock: Clock,
    pub shredder: Shredder,
    metrics: PurgeMetrics,
    /// The audit chain's head at the last intact verification: a later pass that finds the chain
    /// shorter, or different up to it, has found tampering. Without a notary only.
    anchor: Mutex<Option<Anchor>>,
    /// Signs the chain's head and keeps it in the anchors bucket, with `anchor_key_file`.
    notary: Option<Notary>,
    /// One pass at a time (schedule and requests).
    running: Mutex<()>,
    /// The service's shutdown: a pass under way then finishes the erasure in hand and leaves the
    /// rest to the next start (every step is re-derived from the book), so NATS gone cannot hold
    /// the stop through one request time-out after another.
    stopping: Shutdown,
}

impl Purger {
    /// Shutdown came: the pass stops between steps, never inside one (an erasure is deleted,
    /// announced, recorded and verified as a whole).
    fn cut_short(&self) -> bool {
        let stop = self.stopping.is_triggered();
        if stop {
            tracing::info!("shutting down: the rest of this purge pass is left to the next");
        }
        stop
    }

    pub async fn pass(&self) -> PassSummary {
        let _one = self.running.lock().await;
        let now = self.clock.now();
        let mut summary = PassSummary {
            at: now,
            ..Default::default()
        };
        let mut erased_now = std::collections::HashSet::new();
        for entry in self.book.all() {
            if self.cut_short() {
                return summary;
            }
            match self.policy.fate(&entry, now) {
                Fate::Erase => {
                    let why = format!(
                        "retention period of {} days ended",
                        self.policy.retention.as_secs() / 86_400
                    );
                    match self.eraser.erase(&entry, &why).await {
                        Ok(erased) => {
                            erased_now.insert(erased.alert_id.clone());
                            summary.alerts_erased += 1;
                            summary.messages_erased += erased.messages;
                            self.metrics.erased.inc();
                            if !erased.verified {
                                summary.erasures_unverified += 1;
                                self.metrics.unverified.inc();
                            }
                        }
                        Err(e) => {
                            tracing::error!(alert = %entry.alert.alert_id, error = %e, "erasure failed; retried next pass");
                        }
                    }
                }
                Fate::Hold => summary.legal_holds += 1,
                Fate::Keep { .. } => summary.held += 1,
            }
        }
        // Overdue: late, and not erased by this pass either.
        summary.overdue = self
            .book
            .all()
            .iter()
            .filter(|e| self.policy.is_overdue(e, now) && !erased_now.contains(&e.alert.alert_id))
            .count();
        if self.cut_short() {
            return summary;
        }
        let ended = self.wipe_ended(now, &mut summary).await;
        let remaining: std::collections::HashSet<String> = self
            .book
            .all()
            .into_iter()
            .filter(|e| !erased_now.contains(&e.alert.alert_id))
            .map(|e| e.alert.deployment.clone())
            .collect();
        for deployment in ended.iter().filter(|d| !remaining.contains(*d)) {
            if self.cut_short() {
                return summary;
            }
            summary.keys_destroyed += self.shred(deployment).await;
        }
        if self.cut_short() {
            return summary;
        }
        self.check_audit_chain(&mut summary).await;
        self.metrics.passes.inc();
        self.metrics
            .held
            .with_label_values(&["retention"])
            .set(summary.held as i64);
        self.metrics
            .held
            .with_label_values(&["legal_hold"])
            .set(summary.legal_holds as i64);
        self.metrics.overdue.set(summary.overdue as i64);
        let mut states: std::collections::BTreeMap<&str, i64> =
            ["pending", "confirmed", "rejected", "blue"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        let report = report::build(&self.book, &self.policy, now);
        for d in &report.deployments {
            for item in &d.items {
                if !erased_now.contains(&item.alert_id) {
                    *states.entry(item.state).or_default() += 1;
                }
            }
        }
        for (state, n) in states {
            self.metrics.by_state.with_label_values(&[state]).set(n);
        }
        // Holds: by reason (no case references, no identities), and those due for review.
        let mut reasons: std::collections::BTreeMap<&str, i64> = HoldReason::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(["arrest"])
            .map(|r| (r, 0))
            .collect();
        for h in &report.holds {
            *reasons.entry(h.reason).or_default() += 1;
        }
        for (reason, n) in reasons {
            self.metrics.holds.with_label_values(&[reason]).set(n);
        }
        summary.holds = report.holds.len();
        summary.holds_due_review = report.holds_due_review;
        self.metrics
            .holds_due_review
            .set(report.holds_due_review as i64);
        if report.holds_due_review > 0 {
            tracing::warn!(
                due = report.holds_due_review,
                review_days = report.review_days,
                "holds due for review: lfr retention holds --due-review"
            );
        }
        tracing::info!(
            erased = summary.alerts_erased,
            held = summary.held,
            legal_holds = summary.legal_holds,
            overdue = summary.overdue,
            holds = summary.holds,
            "purge pass"
        );
        summary
    }

    /// Destroy an ended deployment's data key, if it still has one; 1 if destroyed.
    async fn shred(&self, deployment: &str) -> usize {
        match self.shredder.destroy(deployment).await {
            Ok(true) => {
                self.metrics.keys_destroyed.inc();
                let _ = ACTOR
                    .event(AuditAction::Erasure, AuditObject::Key(deployment.into()))
                    .deployment(deployment)
                    .why("data key destroyed (crypto-shredding): the deployment has ended and none of its alerts remains, so any residual copy is unreadable")
                    .record(&self.eraser.bus.jetstream)
                    .await;
                tracing::info!(%deployment, "data key destroyed");
                1
            }
            Ok(false) => 0,
            Err(e) => {
                tracing::error!(%deployment, error = %e, "data key not destroyed; retried next pass");
                0
            }
        }
    }

    /// Verify the whole audit chain, and that it still extends the latest anchor.
    async fn check_audit_chain(&self, summary: &mut PassSummary) {
        match self.verdict().await {
            Ok(verdict) => {
                summary.audit_chain_intact = verdict.is_intact();
                summary.audit_chain_length = verdict.chain.verified_events();
                summary.audit_anchored = verdict
                    .signed
                    .iter()
                    .chain(&verdict.checked)
                    .map(|a| a.seq)
                    .max()
                    .unwrap_or(0);
                self.metrics
                    .chain_length
                    .set(verdict.chain.verified_events() as i64);
                self.metrics.chain_intact.set(verdict.is_intact() as i64);
                self.metrics.anchored.set(summary.audit_anchored as i64);
                if !verdict.is_intact() {
                    tracing::error!(report = %verdict, "the audit chain is broken");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the audit chain could not be checked"),
        }
    }

    async fn verdict(&self) -> anyhow::Result<Verdict> {
        let js = &self.eraser.bus.jetstream;
        if let Some(notary) = &self.notary {
            return notary.check_and_anchor(js, self.clock.now()).await;
        }
        let mut anchor = self.anchor.lock().await;
        let chain = audit_log::verify_against(js, anchor.as_ref()).await?;
        if chain.is_intact() {
            *anchor = chain.anchor();
        }
        Ok(Verdict {
            chain,
            problems: Vec::new(),
            checked: Vec::new(),
            signed: None,
        })
    }

    /// End deployments whose time is over, and wipe the stored lists of every ended deployment
    /// that still has one. Returns the ended deployments.
    async fn wipe_ended(&self, now: Timestamp, summary: &mut PassSummary) -> Vec<String> {
        let deployments = match self.store.all().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deployments");
                return Vec::new();
            }
        };
        let mut ended = Vec::new();
        for d in deployments {
            // Over once its last window closes (the set-up window after the end, if any).
            if d.state != State::Ended && now >= d.closes_at() {
                match self.store.update(&d.id, |d| d.end(now)).await {
                    Ok(_) => {
                        let _ = ACTOR
                            .event(AuditAction::Alteration, AuditObject::Deployment(d.id.clone()))
                            .deployment(&d.id)
                            .why("deployment ended by the purge service: its authorised time is over")
                            .record(&self.eraser.bus.jetstream)
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(deployment = %d.id, error = %e, "cannot end an expired deployment");
                        continue;
                    }
                }
            } else if d.state != State::Ended {
                continue;
            }
            ended.push(d.id.clone());
            match self.store.watchlist(&d.id).await {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(deployment = %d.id, error = %e, "cannot read a watch list");
                    continue;
                }
            }
            match self.store.wipe(&d.id).await {
                Ok(record) => {
                    summary.watchlists_wiped += 1;
                    self.metrics.wiped.inc();
                    let mut wiped = ACTOR
                        .event(AuditAction::Erasure, AuditObject::Watchlist(d.id.clone()))
                        .deployment(&d.id)
                        .why(format!(
                            "watch list of an ended deployment wiped by the purge service: {} messages ({} bytes), images {}",
                            record.messages_erased,
                            record.bytes_erased,
                            record.image_sha256s.join(",")
                        ));
                    if let Some(digest) = &record.list_digest {
                        wiped = wiped.digest(digest);
                    }
                    let _ = wiped.record(&self.eraser.bus.jetstream).await;
                }
                Err(e) => tracing::error!(deployment = %d.id, error = %e, "watch-list wipe failed"),
            }
        }
        ended
    }
}

/// The notary of `config`: its key loaded (or made, the first time), with the earlier keys.
fn notary(config: &PurgeConfig) -> anyhow::Result<Option<Notary>> {
    let Some(path) = &config.anchor_key_file else {
        tracing::warn!("no [purge] anchor_key_file: audit anchors are kept in memory only, and a restart forgets them");
        return Ok(None);
    };
    let (key, created) = AnchorKey::load_or_create(path)?;
    let previous = config
        .previous_anchor_keys
        .iter()
        .map(|k| k.parse::<PublicKey>())
        .collect::<anyhow::Result<Vec<_>>>()?;
    if created {
        tracing::warn!(path = %path.display(), public_key = %key.public(), "generated the audit anchor key; give verifiers its public key (lfr audit verify --anchor-key)");
    }
    tracing::info!(public_key = %key.public(), "audit anchors signed with this key");
    Ok(Some(Notary::new(key, previous)))
}

/// A started purge service: its telemetry address, the purger (tests drive passes and the clock
/// through it), and a task that ends when it has stopped.
pub struct Started {
    pub running: Running,
    pub purger: std::sync::Arc<Purger>,
}

pub async fn start(config: Config, shutdown: Shutdown) -> anyhow::Result<Running> {
    Ok(start_with_clock(config, Clock::system(), shutdown)
        .await?
        .running)
}

pub async fn start_with_clock(
    config: Config,
    clock: Clock,
    shutdown: Shutdown,
) -> anyhow::Result<Started> {
    let ctx = service::start("purge", &config.common, config.purge.http_addr, shutdown).await?;
    let metrics = PurgeMetrics::new(&ctx.registry)?;
    let bus: Bus = ctx.bus.clone();
    let store = Store::open(&bus.jetstream).await?;
    let book = Book::default();
    let (caught_up, mut caught_up_rx) = watch::channel(false);
    let feed = tokio::spawn(feed::run(
        bus.jetstream.clone(),
        book.clone(),
        feed::FeedMetrics::new(&ctx.registry)?,
        caught_up,
        ctx.shutdown.clone(),
    ));
    let purger = std::sync::Arc::new(Purger {
        book,
        store,
        eraser: Eraser { bus: bus.clone() },
        policy: config.purge.policy(),
        clock,
        shredder: Shredder::open(&bus.jetstream).await?,
        metrics,
        anchor: Mutex::new(None),
        notary: notary(&config.purge)?,
        running: Mutex::new(()),
        stopping: ctx.shutdown.clone(),
    });
    let mut requests = bus.client.subscribe(RUN_SUBJECT).await?;
    let metrics_addr = ctx.metrics_addr;
    let looper = purger.clone();
    let done = tokio::spawn(async move {
        // No pass before the book holds every alert: erasing from half a picture is not allowed.
        tokio::select! {
            _ = caught_up_rx.wait_for(|c| *c) => {}
            _ = ctx.shutdown.requested() => return,
        }
        ctx.health.set_ready(true);
        let mut schedule = tokio::time::interval(config.purge.interval);
        loop {
            tokio::select! {
                _ = schedule.tick() => {
                    looper.pass().await;
                }
                Some(request) = requests.next() => {
                    let summary = looper.pass().await;
                    if let Some(reply) = request.reply {
                        let body = serde_json::to_vec(&summary).unwrap_or_default();
                        let _ = bus.client.publish(reply, body.into()).await;
                    }
                }
                _ = ctx.shutdown.requested() => break,
            }
        }
        let _ = feed.await;
        bus.flush_before_exit().await;
    });
    Ok(Started {
        running: Running { metrics_addr, done },
        purger,
    })
}
