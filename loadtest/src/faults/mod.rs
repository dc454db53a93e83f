//! # The fault harness: the pipeline under load while its parts die
//!
//! A three-node NATS cluster ([`cluster`]) with every record stream and bucket on three replicas,
//! the real detect, embed and two match services ([`fleet`]: the matchers active and standby),
//! the load test's simulated cameras showing watch-listed people walking past, and the keeper
//! (`lfr bus init --watch`'s repair loop) re-declaring what a restart lost. Then, one segment of
//! camera time per fault, with the fault injected a few seconds in:
//!
//! | fault | what is done | recovered when |
//! |---|---|---|
//! | `nats-node` | SIGKILL the node leading ALERTS, start it again after `down` | every service ready |
//! | `match-active` | SIGKILL the matcher that is receiving templates | the standby handles one |
//! | `detect`, `embed` | SIGKILL the stage, start it again after `down` | it is ready |
//! | `dispatch` | SIGKILL dispatch while an operator's decision is in flight, start it again | it is ready |
//! | `purge` | ask for a purge pass, SIGKILL purge at its first erasure, start it again | its first pass is done |
//! | `disk-full` | fill the store disk of the node leading ALERTS, free it after `down`; restart the node if it does not heal | the node is healthy, every service ready |
//! | `cluster` | stop all three nodes (SIGTERM), start them after `down` | every service ready |
//!
//! Each segment is scored from the durable record, not from what went by: the alerts are read
//! back from ALERTS. A pass is **up** when it began and ended outside the outage (with the
//! tracker's gap as margin on either side): every up pass must be alerted exactly once. Passes
//! that overlap the outage are **at risk**: counted and reported, alerted or not. Duplicates and
//! strays are counted over all passes. After the last fault the audit chain is verified whole.
//!
//! Throughout, an operator and an officer work the console ([`desk`]): the second person of the
//! scene is on a reviewed list, so each of their alerts is decided and given an outcome. Every
//! segment checks those records against ALERTS: none that dispatch acknowledged is lost, none is
//! stored twice, none is left undone. Purge keeps alerts for `retention` (a few segments), so by
//! the `purge` fault the first segments' alerts are due: every one must be gone from ALERTS after
//! the restarted purge's first pass, and each erasure recorded on AUDIT.

pub mod cluster;
pub mod desk;
pub mod fleet;

use crate::cameras::{self, Counts};
use crate::deployment;
use crate::observe::SeenAlert;
use crate::scene::{Samples, Scene};
use crate::schedule::{self, PassShape, Plan};
use crate::score;
use crate::scrape;
use async_nats::jetstream;
use cluster::Cluster;
use desk::Desk;
use fleet::Fleet;
use futures::StreamExt;
use lfr_common::bus::Bus;
use lfr_common::config::{Common, NatsConfig};
use lfr_identity::Credentials;
use lfr_match::corroborate::Rule;
use lfr_schemas::permissions::Identity;
use lfr_schemas::{
    streams, subjects, AlertDecision, AlertOutcome, AuditAction, CandidateAlert, Message, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    NatsNode,
    MatchActive,
    Detect,
    Embed,
    Dispatch,
    Purge,
    DiskFull,
    Cluster,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::NatsNode,
        Fault::MatchActive,
        Fault::Detect,
        Fault::Embed,
        Fault::Dispatch,
        Fault::Purge,
        Fault::DiskFull,
        Fault::Cluster,
    ];
}

/// How long and how hard the harness runs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub cameras: usize,
    pub fps: f64,
    /// Camera time per fault.
    pub segment: Duration,
    /// When, into the segment, the fault strikes.
    pub strike_at: Duration,
    /// How long a killed part stays down before it is started again.
    pub down: Duration,
    /// Each fault this many times.
    pub rounds: usize,
    pub faults: Vec<Fault>,
}

impl Profile {
    /// What `scripts/test.sh` runs: each fault once, about four minutes on two cores.
    pub fn short() -> Profile {
        Profile {
            cameras: 2,
            fps: 5.0,
            segment: Duration::from_secs(30),
            strike_at: Duration::from_secs(8),
            down: Duration::from_secs(4),
            rounds: 1,
            faults: Fault::ALL.to_vec(),
        }
    }

    /// The documented soak: longer segments, every fault five times.
    pub fn soak() -> Profile {
        Profile {
            segment: Duration::from_secs(60),
            strike_at: Duration::from_secs(20),
            down: Duration::from_secs(10),
            rounds: 5,
            ..Profile::short()
        }
    }
}

/// What one fault cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultResult {
    pub fault: Fault,
    pub round: usize,
    /// Passes made while the pipeline was up, and how many of them were alerted.
    pub passes_up: u64,
    pub alerted_up: u64,
    /// Passes that overlapped the outage, and how many of them were alerted anyway.
    pub passes_at_risk: u64,
    pub alerted_at_risk: u64,
    /// Alerts beyond the first for one pass, over all passes.
    pub duplicates: u64,
    /// Alerts that belong to no pass.
    pub unexpected: u64,
    pub frames_offered: u64,
    /// Frames the bus took (the rest were refused or unanswered while it was down).
    pub frames_published: u64,
    /// From the restart (for the active matcher: from its death) until every service was ready
    /// (for the matcher: until the standby handled a template).
    pub ready_seconds: f64,
    /// From the same moment until the pipeline worked on fresh frames again (the outage's
    /// backlog handled, shed or expired).
    pub recovery_seconds: f64,
    /// The console's records of the segment's reviewable alerts.
    #[serde(default)]
    pub records: Records,
    /// What the `purge` fault left to the next pass, and what that pass did.
    #[serde(default)]
    pub erasures: Option<Erasures>,
    /// Frames detect and faces embed dropped unprocessed as too old during the segment
    /// (`lfr_stage_shed_total`): the outage's backlog, or a stage past its capacity.
    #[serde(default)]
    pub shed: Shed,
    /// What the fault did beyond the table's figures, in words (the `disk-full` fault: how much
    /// was filled, and whether the node healed by itself).
    #[serde(default)]
    pub note: Option<String>,
}

/// Messages shed by the costly stages in one segment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Shed {
    pub frames: u64,
    pub faces: u64,
}

/// The segment's reviewable alerts (not blue), and their decisions and outcomes: acknowledged by
/// dispatch to the desk, and stored on ALERTS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    pub reviewable: u64,
    pub decisions_acknowledged: u64,
    pub decisions_stored: u64,
    pub outcomes_acknowledged: u64,
    pub outcomes_stored: u64,
    /// Decisions or outcomes stored beyond the first for one alert.
    pub duplicates: u64,
    /// Acknowledged to the desk and not on ALERTS.
    pub lost: u64,
    /// Presses that got no answer (dispatch down), pressed again.
    pub unanswered: u64,
    /// The `dispatch` fault: whether the decision in flight when it was killed got no answer.
    pub in_flight_cut: Option<bool>,
}

/// The `purge` fault: alerts due for erasure when the pass was asked for, and their fate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Erasures {
    pub due: u64,
    /// Erased by the pass before purge was killed.
    pub before_kill: u64,
    /// Due alerts with a message still on ALERTS after the restarted purge's first pass.
    pub left: u64,
    /// Due alerts with no erasure record on AUDIT.
    pub unrecorded: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub profile: String,
    pub results: Vec<FaultResult>,
    /// The audit chain read back whole after the last fault.
    pub audit_intact: bool,
    pub audit_events: u64,
    /// Streams, buckets or consumers the keeper found missing and declared again.
    pub repairs: u64,
}

impl Outcome {
    /// Every up pass alerted once, nothing doubled or stray, the record intact.
    pub fn failures(&self, recovery_limit: Duration) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.results {
            let what = format!("{:?} (round {})", r.fault, r.round);
            if r.alerted_up != r.passes_up {
                out.push(format!(
                    "{what}: {} of {} passes made while up alerted",
                    r.alerted_up, r.passes_up
                ));
            }
            if r.duplicates > 0 || r.unexpected > 0 {
                out.push(format!(
                    "{what}: {} duplicate and {} stray alerts",
                    r.duplicates, r.unexpected
                ));
            }
            let rec = &r.records;
            if rec.lost > 0 || rec.duplicates > 0 {
                out.push(format!(
                    "{what}: {} decisions or outcomes lost, {} stored twice",
                    rec.lost, rec.duplicates
                ));
            }
            if rec.decisions_stored < rec.reviewable || rec.outcomes_stored < rec.reviewable {
                out.push(format!(
                    "{what}: of {} reviewable alerts, {} decided and {} given an outcome",
                    rec.reviewable, rec.decisions_stored, rec.outcomes_stored
                ));
            }
            if r.fault == Fault::Dispatch && rec.reviewable == 0 {
                out.push(format!("{what}: no alert reached the operator"));
            }
            match &r.erasures {
                Some(e) if e.due == 0 || e.before_kill == 0 => out.push(format!(
                    "{what}: purge was not killed mid-pass ({} due, {} erased before the kill)",
                    e.due, e.before_kill
                )),
                Some(e) if e.left > 0 || e.unrecorded > 0 => out.push(format!(
                    "{what}: of {} due, {} still on ALERTS and {} erased unrecorded",
                    e.due, e.left, e.unrecorded
                )),
                None if r.fault == Fault::Purge => out.push(format!("{what}: no erasure figures")),
                _ => {}
            }
            if r.recovery_seconds > recovery_limit.as_secs_f64() {
                out.push(format!(
                    "{what}: recovered in {:.1} s, over {recovery_limit:?}",
                    r.recovery_seconds
                ));
            }
        }
        if !self.audit_intact {
            out.push("the audit chain is broken".into());
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Fault harness ({} profile)\n\n| fault | round | up passes alerted | at-risk passes alerted | duplicates | strays | frames taken | shed: frames, faces | ready | caught up |\n|---|---|---|---|---|---|---|---|---|---|\n",
            self.profile
        );
        for r in &self.results {
            md += &format!(
                "| {:?} | {} | {}/{} | {}/{} | {} | {} | {}/{} | {}, {} | {:.1} s | {:.1} s |\n",
                r.fault,
                r.round,
                r.alerted_up,
                r.passes_up,
                r.alerted_at_risk,
                r.passes_at_risk,
                r.duplicates,
                r.unexpected,
                r.frames_published,
                r.frames_offered,
                r.shed.frames,
                r.shed.faces,
                r.ready_seconds,
                r.recovery_seconds
            );
        }
        md += "\nThe console's records (reviewable alerts: decided and given an outcome by the desk):\n\n| fault | round | reviewable | decisions stored (acknowledged) | outcomes stored (acknowledged) | duplicates | lost | presses unanswered |\n|---|---|---|---|---|---|---|---|\n";
        for r in &self.results {
            let rec = &r.records;
            md += &format!(
                "| {:?} | {} | {} | {} ({}) | {} ({}) | {} | {} | {}{} |\n",
                r.fault,
                r.round,
                rec.reviewable,
                rec.decisions_stored,
                rec.decisions_acknowledged,
                rec.outcomes_stored,
                rec.outcomes_acknowledged,
                rec.duplicates,
                rec.lost,
                rec.unanswered,
                match rec.in_flight_cut {
                    Some(true) => " (the decision in flight was cut off)",
                    Some(false) => " (the decision in flight was answered)",
                    None => "",
                }
            );
        }
        for r in &self.results {
            if let Some(n) = &r.note {
                md += &format!("\n{:?} (round {}): {n}.\n", r.fault, r.round);
            }
        }
        for r in &self.results {
            if let Some(e) = &r.erasures {
                md += &format!(
                    "\nPurge killed mid-pass (round {}): {} alerts due, {} erased before the kill; after the restarted purge's first pass {} left on ALERTS, {} without an erasure record.\n",
                    r.round, e.due, e.before_kill, e.left, e.unrecorded
                );
            }
        }
        md += &format!(
            "\nAudit chain: {} ({} events). Keeper repairs: {}.\n",
            if self.audit_intact {
                "intact"
            } else {
                "BROKEN"
            },
            self.audit_events,
            self.repairs
        );
        md
    }
}

/// The matcher's re-alert window in the harness: short, so a segment holds many passes.
const REALERT_AFTER: Duration = Duration::from_secs(3);
/// Messages live this long on the transient streams.
const TTL: Duration = Duration::from_secs(5);
/// How long every service may take to be ready after a restart before the harness gives up.
const READY_LIMIT: Duration = Duration::from_secs(90);

/// How long a node whose full disk was freed may take to heal by itself before it is restarted.
const HEAL_WAIT: Duration = Duration::from_secs(5);

/// How long purge keeps an alert in the harness: long enough for a segment to be judged from
/// ALERTS first (its camera time and a few seconds of drain), short enough that earlier
/// segments' alerts are due by the `purge` fault. Run alone, that fault has nothing to erase.
fn retention(profile: &Profile) -> Duration {
    profile.segment + Duration::from_secs(20)
}

/// Run the harness with `profile`; the service logs go under `out/logs`.
pub async fn run(profile: &Profile, bin_dir: &Path, out: &Path) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let identities = [
        Identity::Detect,
        Identity::Embed,
        Identity::Match,
        Identity::Dispatch,
        Identity::Purge,
        Identity::Bus,
        Identity::Loadtest,
        Identity::Admin,
    ];
    let credentials = Credentials::generate(&dir.path().join("creds"), &identities)?;
    let tls = lfr_identity::tls::generate(&dir.path().join("tls"), &["127.0.0.1".into()])?;
    let ca = tls.ca.clone();
    let mut cluster = Cluster::start(dir.path(), tls, credentials.clone()).await?;
    let config = dir.path().join("lfr.toml");
    let url = cluster.url();
    std::fs::write(&config, config_toml(&url, &ca, retention(profile)))?;
    let common = |identity: Identity| Common {
        nats: NatsConfig {
            url: url.clone(),
            credentials: Some(credentials.file(identity)),
            ca: Some(ca.clone()),
            ..Default::default()
        },
        ..lfr_common::config::load::<Common>(Some(&config)).unwrap_or_default()
    };
    // Each connection counts into its own registry (nobody scrapes the harness).
    let keeper = Bus::connect(&common(Identity::Bus), "bus", &Default::default()).await?;
    let limits = common(Identity::Bus).bus.topology_limits();
    declare_when_quorate(&keeper.jetstream, &limits).await?;
    let repairs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let keeping = tokio::spawn(keep(keeper.jetstream.clone(), limits, repairs.clone()));

    let members = [
        ("detect", "detect"),
        ("embed", "embed"),
        ("match-a", "match"),
        ("match-b", "match"),
        ("dispatch", "dispatch"),
        ("purge", "purge"),
    ];
    let mut fleet = Fleet::start(
        &members,
        bin_dir,
        &config,
        &out.join("logs"),
        credentials.clone(),
    )
    .await?;
    let outcome = async {
        fleet.wait_ready(READY_LIMIT).await?;
        let bus =
            Bus::connect(&common(Identity::Loadtest), "loadtest", &Default::default()).await?;
        let admin = Bus::connect(&common(Identity::Admin), "cli", &Default::default()).await?;
        let samples = Samples::under(&Samples::default_root());
        // The harness's own bus: the second person on a reviewed list, created as the
        // administrator (the load test's identity may raise blue-list alerts only).
        let dep = deployment::start_with(
            &admin.jetstream,
            &samples,
            profile.cameras,
            2,
            deployment::Lists::Reviewed,
        )
        .await?;
        let scored = async {
            for m in ["match-a", "match-b"] {
                wait_verified(fleet.addr(m), &dep.id).await?;
            }
            console_accounts(&admin.jetstream, &dep.id).await?;
            let desk = Desk::start(fleet.console).await?;
            let pass_frames = ((1.2 * profile.fps).round() as usize).max(2);
            let scene = Arc::new(Scene::build(&samples, 640, 480, pass_frames)?);
            let shape = PassShape {
                frames: scene.pass_frames as u64,
                variants: [scene.variants(0), scene.variants(1)],
                realert_after: REALERT_AFTER,
                track_gap: Rule::default().track_gap,
            };
            let mut results = Vec::new();
            for round in 1..=profile.rounds {
                for fault in &profile.faults {
                    let mut segment = Segment {
                        profile,
                        fault: *fault,
                        cluster: &mut cluster,
                        fleet: &mut fleet,
                        bus: &bus,
                        admin: &admin.jetstream,
                        desk: &desk,
                        retention: retention(profile),
                        scene: scene.clone(),
                        shape,
                        deployment: &dep.id,
                    };
                    let mut result = segment.run().await?;
                    result.round = round;
                    tracing::info!(?result, "fault done");
                    results.push(result);
                }
            }
            desk.stop();
            let chain = lfr_common::audit::verify(&admin.jetstream).await?;
            let audit_events = match &chain {
                lfr_common::audit::ChainReport::Intact { events, .. } => *events,
                lfr_common::audit::ChainReport::Broken { verified, .. } => *verified,
            };
            anyhow::Ok(Outcome {
                profile: String::new(),
                results,
                audit_intact: chain.is_intact(),
                audit_events,
                repairs: repairs.load(Ordering::Relaxed),
            })
        }
        .await;
        dep.end().await;
        scored
    }
    .await;
    keeping.abort();
    fleet.stop().await;
    cluster.stop_all().await;
    outcome
}

/// A fresh cluster elects its meta leader a moment after its nodes start: declare once it has.
async fn declare_when_quorate(
    js: &jetstream::Context,
    limits: &streams::TopologyLimits,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match lfr_common::topology::declare(js, limits).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "cluster not ready for the topology yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The keeper's loop, as `lfr bus init --watch` runs it: declare what went missing.
async fn keep(
    js: jetstream::Context,
    limits: streams::TopologyLimits,
    repairs: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match lfr_common::topology::repair(&js, &limits).await {
            Ok(problems) if !problems.is_empty() => {
                tracing::info!(?problems, "keeper declared the topology again");
                repairs.fetch_add(problems.len() as u64, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "keeper could not repair yet"),
        }
    }
}

async fn wait_verified(addr: std::net::SocketAddr, deployment: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        if let Ok(s) = scrape::fetch(addr).await {
            if s.sum(
                "lfr_match_watchlist_verified",
                &[("deployment", deployment)],
            ) >= 1.0
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("a matcher did not verify the harness's watch list within 60 s")
}

/// One file for every service: the cluster's URLs, three replicas, the short re-alert window,
/// the console over plain HTTP on loopback, purge passing only when asked (and at its start).
fn config_toml(url: &str, ca: &Path, retention: Duration) -> String {
    format!(
        "[nats]\nurl = \"{url}\"\nca = {ca:?}\n\n[bus]\nreplicas = {}\ntransient_ttl = {}\n\n\
         [log]\nfilter = \"info\"\n\n[match.corroboration]\nrealert_after = {}\n\n\
         [dispatch.auth]\ncookie_secure = false\n\n\
         [purge]\ninterval = 86400\nretention = {}\n",
        cluster::NODES,
        TTL.as_secs_f64(),
        REALERT_AFTER.as_secs_f64(),
        retention.as_secs_f64(),
    )
}

/// The desk's operator and officer, assigned to the harness's deployment.
async fn console_accounts(admin: &jetstream::Context, deployment: &str) -> anyhow::Result<()> {
    use lfr_dispatch::auth::{Accounts, Role};
    let accounts = Accounts::open(admin).await?;
    for (id, role) in [
        (desk::OPERATOR, Role::Operator),
        (desk::OFFICER, Role::Officer),
    ] {
        accounts
            .create(id, role, desk::PASSWORD, vec![deployment.to_string()])
            .await
            .map_err(|e| anyhow::anyhow!("console account {id}: {e}"))?;
    }
    Ok(())
}

struct Segment<'a> {
    profile: &'a Profile,
    fault: Fault,
    cluster: &'a mut Cluster,
    fleet: &'a mut Fleet,
    bus: &'a Bus,
    admin: &'a jetstream::Context,
    desk: &'a Desk,
    retention: Duration,
    scene: Arc<Scene>,
    shape: PassShape,
    deployment: &'a str,
}

/// When the pipeline was down during a segment, in capture time.
struct Outage {
    from: Timestamp,
    to: Timestamp,
    ready: Duration,
    recovery: Duration,
    /// The `purge` fault's alerts due and erased before the kill (judged after the segment).
    erasures: Option<(Vec<String>, u64)>,
    note: Option<String>,
}

impl Segment<'_> {
    async fn run(&mut self) -> anyhow::Result<FaultResult> {
        // The last segment's tracks and alerts lapse first, so its people are not this one's.
        tokio::time::sleep(
            self.shape.realert_after.max(self.shape.track_gap) + Duration::from_secs(1),
        )
        .await;
        let p = self.profile;
        let plan = Arc::new(schedule::plan(
            p.cameras,
            p.fps,
            p.segment.as_secs_f64(),
            self.shape,
        ));
        let lead = Duration::from_millis(200);
        let start = Instant::now() + lead;
        let start_wall = Timestamp(Timestamp::now().0 + lead.as_nanos() as u64);
        let counts = Arc::new(Counts::default());
        let unanswered = self.desk.tally.unanswered();
        let shed_before = self.shed().await;
        let (bus, scene, planned, counted) = (
            self.bus.clone(),
            self.scene.clone(),
            plan.clone(),
            counts.clone(),
        );
        let cameras = tokio::spawn(async move {
            cameras::run(&bus, scene, planned, start, start_wall, counted).await
        });
        tokio::time::sleep_until(start + p.strike_at).await;
        let outage = self.strike().await?;
        cameras.await?;
        self.drain().await;
        self.desk.settle(Duration::from_secs(30)).await;
        let alerts = read_alerts(self.admin, self.deployment, start_wall).await?;
        let mut result = judge(
            self.fault, &plan, &alerts, start_wall, &outage, &counts, self.shape,
        );
        result.shed = since(shed_before, self.shed().await);
        result.records = self.records(start_wall).await?;
        result.records.unanswered -= unanswered;
        if self.fault == Fault::Dispatch {
            result.records.in_flight_cut = self.desk.tally.armed_unanswered();
        }
        if let Some((due, before_kill)) = &outage.erasures {
            result.erasures = Some(self.erasures(due, *before_kill).await?);
        }
        Ok(result)
    }

    /// The segment's reviewable alerts against their decisions and outcomes on ALERTS.
    async fn records(&self, since: Timestamp) -> anyhow::Result<Records> {
        let dep = self.deployment;
        let alerts: Vec<CandidateAlert> =
            read_records(self.admin, &[subjects::alert_candidates(dep)]).await?;
        let ids: Vec<String> = alerts
            .into_iter()
            .filter(|a| a.probe.frame.captured_at >= since)
            .map(|a| a.alert_id)
            .collect();
        let count = |found: Vec<String>| {
            let mut n = std::collections::HashMap::<String, u64>::new();
            for id in found {
                *n.entry(id).or_default() += 1;
            }
            n
        };
        let decisions = count(
            read_records::<AlertDecision>(self.admin, &[subjects::alert_decisions(dep)])
                .await?
                .into_iter()
                .map(|d| d.alert_id)
                .collect(),
        );
        let outcomes = count(
            read_records::<AlertOutcome>(self.admin, &[subjects::alert_outcomes(dep)])
                .await?
                .into_iter()
                .map(|o| o.alert_id)
                .collect(),
        );
        let mut r = Records {
            reviewable: ids.len() as u64,
            unanswered: self.desk.tally.unanswered(),
            ..Default::default()
        };
        for id in &ids {
            let acked = self.desk.tally.acknowledged(id);
            let (d, o) = (
                decisions.get(id).copied().unwrap_or(0),
                outcomes.get(id).copied().unwrap_or(0),
            );
            r.decisions_acknowledged += u64::from(acked.decision);
            r.outcomes_acknowledged += u64::from(acked.outcome);
            r.decisions_stored += u64::from(d > 0);
            r.outcomes_stored += u64::from(o > 0);
            r.duplicates += d.saturating_sub(1) + o.saturating_sub(1);
            r.lost += u64::from(acked.decision && d == 0) + u64::from(acked.outcome && o == 0);
        }
        Ok(r)
    }

    /// What became of the alerts due when purge was killed mid-pass.
    async fn erasures(&self, due: &[String], before_kill: u64) -> anyhow::Result<Erasures> {
        let dep = self.deployment;
        let still: std::collections::HashSet<String> = read_records::<CandidateAlert>(
            self.admin,
            &[subjects::alert_candidates(dep), subjects::blue_alerts(dep)],
        )
        .await?
        .into_iter()
        .map(|a| a.alert_id)
        .collect();
        let recorded: std::collections::HashSet<String> = lfr_common::audit::query(
            self.admin,
            &lfr_common::audit::AuditFilter {
                deployment: Some(dep.to_string()),
                action: Some(AuditAction::Erasure),
                object: Some(lfr_common::audit::ObjectMatch::Prefix("alert/".into())),
                ..Default::default()
            },
        )
        .await?
        .events
        .into_iter()
        .filter_map(|e| e.event.object.strip_prefix("alert/").map(str::to_string))
        .collect();
        Ok(Erasures {
            due: due.len() as u64,
            before_kill,
            left: due.iter().filter(|id| still.contains(*id)).count() as u64,
            unrecorded: due.iter().filter(|id| !recorded.contains(*id)).count() as u64,
        })
    }

    /// Alerts of the deployment past their retention now (with a second's margin).
    async fn due_alerts(&self) -> anyhow::Result<Vec<String>> {
        let dep = self.deployment;
        let cutoff = Timestamp::now()
            .0
            .saturating_sub((self.retention + Duration::from_secs(1)).as_nanos() as u64);
        Ok(read_records::<CandidateAlert>(
            self.admin,
            &[subjects::alert_candidates(dep), subjects::blue_alerts(dep)],
        )
        .await?
        .into_iter()
        .filter(|a| a.raised_at.0 < cutoff)
        .map(|a| a.alert_id)
        .collect())
    }

    /// Inject the fault, undo it, and wait for the pipeline to work again.
    async fn strike(&mut self) -> anyhow::Result<Outage> {
        let mut from = Timestamp::now();
        let down = self.profile.down;
        let mut erasures = None;
        let mut note = None;
        let recovery = match self.fault {
            Fault::NatsNode => {
                let leader = alerts_leader(self.admin).await;
                let i = leader.and_then(|l| self.cluster.index_of(&l)).unwrap_or(0);
                tracing::info!(node = %cluster::node_name(i), "killing the NATS node leading ALERTS");
                self.cluster.kill(i).await;
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                self.cluster.restart(i).await?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                self.records_writable().await?;
                restarted.elapsed()
            }
            Fault::MatchActive => {
                let active = self.active_matcher().await;
                let standby = if active == "match-a" {
                    "match-b"
                } else {
                    "match-a"
                };
                let before = handled(self.fleet.addr(standby)).await;
                tracing::info!(%active, "killing the active matcher");
                let killed = Instant::now();
                self.fleet.kill(active).await;
                // Taken over once the standby handles a template.
                while handled(self.fleet.addr(standby)).await <= before
                    && killed.elapsed() < READY_LIMIT
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let takeover = killed.elapsed();
                tokio::time::sleep(down.saturating_sub(takeover)).await;
                self.fleet.restart(active)?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                takeover
            }
            Fault::Detect | Fault::Embed => {
                let name = if self.fault == Fault::Detect {
                    "detect"
                } else {
                    "embed"
                };
                self.fleet.kill(name).await;
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                self.fleet.restart(name)?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                restarted.elapsed()
            }
            Fault::Dispatch => {
                // While the operator's next decision is in flight (a segment with no reviewable
                // alert by half-time is struck anyway, and fails its check).
                let in_flight = self.desk.arm();
                let _ = tokio::time::timeout(self.profile.segment / 2, in_flight).await;
                from = Timestamp::now();
                tracing::info!("killing dispatch under an operator's decision");
                self.fleet.kill("dispatch").await;
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                self.fleet.restart("dispatch")?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                restarted.elapsed()
            }
            Fault::Purge => {
                let due = self.due_alerts().await?;
                let addr = self.fleet.addr("purge");
                let before = counter(addr, "lfr_purge_alerts_erased_total", &[]).await;
                // A pass now, as `lfr retention run` asks for one; killed at its first erasure.
                self.admin
                    .client()
                    .publish(subjects::PURGE_RUN, Default::default())
                    .await?;
                let asked = Instant::now();
                let mut erased = 0.0;
                while erased == 0.0 && asked.elapsed() < Duration::from_secs(30) {
                    erased = counter(addr, "lfr_purge_alerts_erased_total", &[]).await - before;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tracing::info!(due = due.len(), erased, "killing purge mid-pass");
                self.fleet.kill("purge").await;
                erasures = Some((due, erased as u64));
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                self.fleet.restart("purge")?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                // Recovered once the pass it makes at start is done: that pass finishes the job.
                while counter(addr, "lfr_purge_passes_total", &[]).await < 1.0
                    && restarted.elapsed() < READY_LIMIT
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                restarted.elapsed()
            }
            Fault::DiskFull => {
                if let Err(why) = self.cluster.disks() {
                    // Nothing struck: the segment is judged as any other, and says why.
                    tracing::warn!(%why, "disk-full fault skipped");
                    note = Some(format!("SKIPPED: {why}"));
                    return Ok(Outage {
                        from,
                        to: Timestamp::now(),
                        ready: Duration::ZERO,
                        recovery: Duration::ZERO,
                        erasures,
                        note,
                    });
                }
                let leader = alerts_leader(self.admin).await;
                let i = leader.and_then(|l| self.cluster.index_of(&l)).unwrap_or(0);
                let node = cluster::node_name(i);
                let filled = self.cluster.fill_disk(i)?;
                tracing::info!(%node, filled, "the store disk of the node leading ALERTS is full");
                tokio::time::sleep(down).await;
                self.cluster.free_disk(i)?;
                let freed = Instant::now();
                // Does the node take writes again by itself? If not, the runbook's remedy:
                // restart it (its store is intact; it catches up from the others).
                let healed = self.node_healthy(i, HEAL_WAIT).await;
                if !healed {
                    tracing::warn!(%node, "still unhealthy after its disk was freed: restarting it");
                    self.cluster.restart(i).await?;
                    anyhow::ensure!(
                        self.node_healthy(i, READY_LIMIT).await,
                        "{node} unhealthy after its restart"
                    );
                }
                note = Some(format!(
                    "{node}'s store disk filled ({} MiB) for {:?}; {}",
                    filled >> 20,
                    down,
                    if healed {
                        "healthy again without a restart once freed"
                    } else {
                        "still failing once freed: restarted, then healthy"
                    }
                ));
                self.fleet.wait_ready(READY_LIMIT).await?;
                self.records_writable().await?;
                freed.elapsed()
            }
            Fault::Cluster => {
                self.cluster.stop_all().await;
                tokio::time::sleep(down).await;
                let restarted = Instant::now();
                self.cluster.start_all().await?;
                self.fleet.wait_ready(READY_LIMIT).await?;
                self.records_writable().await?;
                restarted.elapsed()
            }
        };
        // Ready is not recovered: the backlog left by the outage must be worked off or shed
        // first, or a pass right after it is judged on a pipeline still catching up.
        let caught_up = Instant::now();
        self.wait_caught_up().await;
        Ok(Outage {
            from,
            to: Timestamp::now(),
            ready: recovery,
            recovery: recovery + caught_up.elapsed(),
            erasures,
            note,
        })
    }

    /// Until ALERTS and AUDIT have a leader and every replica current again: services answer
    /// ready as soon as they are connected, but a record stream that is still electing its
    /// leader cannot store an alert yet.
    async fn records_writable(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        while !(replicas_current(self.admin, streams::ALERTS).await
            && replicas_current(self.admin, streams::AUDIT).await)
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "ALERTS or AUDIT without a current leader {READY_LIMIT:?} after the fault"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Until node `i` passes its full health check (every stream it holds current) and ALERTS
    /// and AUDIT have every replica current; whether that happened within `limit`.
    async fn node_healthy(&self, i: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.cluster.nodes[i].healthy_all().await
                && replicas_current(self.admin, streams::ALERTS).await
                && replicas_current(self.admin, streams::AUDIT).await
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    /// Messages waiting in the transient streams, and the age of the oldest (unknown: long).
    async fn backlog(&self) -> (u64, Duration) {
        let (mut messages, mut oldest) = (0, Duration::ZERO);
        for stream in [streams::FRAMES, streams::FACES, streams::EMBEDDINGS] {
            let info = match self.admin.get_stream(stream).await {
                Ok(mut s) => s.info().await.ok().map(|i| i.state.clone()),
                Err(_) => None,
            };
            let Some(state) = info else {
                return (u64::MAX, TTL);
            };
            messages += state.messages;
            if state.messages > 0 {
                let first = state.first_timestamp.unix_timestamp_nanos().max(0) as u64;
                oldest = oldest.max(Timestamp(first).until(Timestamp::now()));
            }
        }
        (messages, oldest)
    }

    /// Until every stage works on fresh messages again: nothing waits longer than a second
    /// (what the outage left has been handled, shed or has expired with the TTL).
    async fn wait_caught_up(&self) {
        let limit = Instant::now() + TTL * 3;
        while self.backlog().await.1 > Duration::from_secs(1) && Instant::now() < limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What detect and embed have shed so far (0 for one that does not answer).
    async fn shed(&self) -> Shed {
        let count = |name: &'static str| async move {
            counter(
                self.fleet.addr(name),
                "lfr_stage_shed_total",
                &[("stage", name)],
            )
            .await as u64
        };
        Shed {
            frames: count("detect").await,
            faces: count("embed").await,
        }
    }

    /// The matcher whose handled count moves (the pinned one); `match-a` if neither does.
    async fn active_matcher(&self) -> &'static str {
        let a = handled(self.fleet.addr("match-a")).await;
        let b = handled(self.fleet.addr("match-b")).await;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if handled(self.fleet.addr("match-b")).await > b {
                return "match-b";
            }
            if handled(self.fleet.addr("match-a")).await > a {
                return "match-a";
            }
        }
        "match-a"
    }

    /// Wait for the transient streams to empty (handled or expired), then a moment for the last
    /// alert to be stored.
    async fn drain(&self) {
        let limit = Instant::now() + TTL * 3;
        while self.backlog().await.0 > 0 && Instant::now() < limit {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// Shed since `before`; a stage restarted in between counts from zero again.
fn since(before: Shed, now: Shed) -> Shed {
    let delta = |b: u64, n: u64| if n >= b { n - b } else { n };
    Shed {
        frames: delta(before.frames, now.frames),
        faces: delta(before.faces, now.faces),
    }
}

/// Templates a matcher has handled (0 while it does not answer).
async fn handled(addr: std::net::SocketAddr) -> f64 {
    counter(
        addr,
        "lfr_stage_messages_total",
        &[("stage", "match"), ("outcome", "ok")],
    )
    .await
}

/// A counter's value, summed over the series with these labels (0 while the service does not
/// answer).
async fn counter(addr: std::net::SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape::fetch(addr)
        .await
        .map(|s| s.sum(name, labels))
        .unwrap_or(0.0)
}

/// The stream has a leader and every other replica is current and online.
async fn replicas_current(js: &jetstream::Context, stream: &str) -> bool {
    let Ok(mut stream) = js.get_stream(stream).await else {
        return false;
    };
    let Ok(info) = stream.info().await else {
        return false;
    };
    info.cluster
        .as_ref()
        .is_some_and(|c| c.leader.is_some() && c.replicas.iter().all(|r| r.current && !r.offline))
}

/// The server name of the node leading ALERTS.
async fn alerts_leader(js: &jetstream::Context) -> Option<String> {
    let mut stream = js.get_stream(streams::ALERTS).await.ok()?;
    stream.info().await.ok()?.cluster.as_ref()?.leader.clone()
}

/// The deployment's alerts (reviewed and blue) stored on ALERTS for frames captured since
/// `since`, read back from the stream.
async fn read_alerts(
    js: &jetstream::Context,
    deployment: &str,
    since: Timestamp,
) -> anyhow::Result<Vec<SeenAlert>> {
    let subjects = [
        subjects::alert_candidates(deployment),
        subjects::blue_alerts(deployment),
    ];
    Ok(read_stored(js, &subjects)
        .await?
        .into_iter()
        .filter_map(|(payload, stored_at)| {
            let alert = CandidateAlert::decode(&payload).ok()?;
            (alert.probe.frame.captured_at >= since).then(|| SeenAlert {
                camera: alert.probe.frame.camera.clone(),
                captured_at: alert.probe.frame.captured_at,
                stored_at,
                entry_ref: alert.entry_ref.clone(),
            })
        })
        .collect())
}

/// Every message of type `M` on ALERTS under `subjects`, decoded (what does not decode is
/// skipped), oldest first.
async fn read_records<M: Message>(
    js: &jetstream::Context,
    subjects: &[String],
) -> anyhow::Result<Vec<M>> {
    Ok(read_stored(js, subjects)
        .await?
        .into_iter()
        .filter_map(|(payload, _)| M::decode(&payload).ok())
        .collect())
}

/// Every message on ALERTS under `subjects` with when it was stored, oldest first, to the end of
/// what the stream held when asked. A read that stalls (a consumer recovering from a restart
/// can) starts again where it stopped; one that cannot finish fails rather than come back short.
async fn read_stored(
    js: &jetstream::Context,
    subjects: &[String],
) -> anyhow::Result<Vec<(Vec<u8>, Timestamp)>> {
    let stream = js.get_stream(streams::ALERTS).await?;
    let mut out = Vec::new();
    let mut next = 1;
    for _ in 0..5 {
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subjects: subjects.to_vec(),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await?;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(3), messages.next()).await
        {
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            next = info.stream_sequence + 1;
            let stored_at = Timestamp(info.published.unix_timestamp_nanos().max(0) as u64);
            let done = info.pending == 0;
            out.push((message.payload.to_vec(), stored_at));
            if done {
                return Ok(out);
            }
        }
        tracing::warn!(
            next,
            "reading ALERTS stalled; reading on from where it stopped"
        );
    }
    anyhow::bail!("ALERTS could not be read to the end")
}

/// Score a segment: up passes against at-risk ones, duplicates, strays, frames.
fn judge(
    fault: Fault,
    plan: &Plan,
    alerts: &[SeenAlert],
    start_wall: Timestamp,
    outage: &Outage,
    counts: &Counts,
    shape: PassShape,
) -> FaultResult {
    let (per_pass, unexpected) = score::per_pass(plan, alerts, start_wall);
    // A pass is at risk if any of its frames, or the track that outlives them, fell in the outage.
    let margin = shape.track_gap.as_nanos() as u64;
    let frame_time =
        |frame: u64, c: usize| start_wall.0 + cameras::offset(plan, c, frame).as_nanos() as u64;
    let mut r = FaultResult {
        fault,
        round: 0,
        passes_up: 0,
        alerted_up: 0,
        passes_at_risk: 0,
        alerted_at_risk: 0,
        duplicates: per_pass.iter().map(|n| n.saturating_sub(1)).sum(),
        unexpected,
        frames_offered: plan.frames * plan.cameras as u64,
        frames_published: counts.published.load(Ordering::Relaxed),
        ready_seconds: outage.ready.as_secs_f64(),
        recovery_seconds: outage.recovery.as_secs_f64(),
        records: Records::default(),
        shed: Shed::default(),
        erasures: None,
        note: outage.note.clone(),
    };
    for (pass, n) in plan.passes.iter().zip(&per_pass) {
        let from = frame_time(pass.first_frame, pass.camera);
        let to = frame_time(pass.first_frame + pass.frames, pass.camera) + margin;
        let at_risk = from < outage.to.0 + margin && to > outage.from.0;
        if at_risk {
            r.passes_at_risk += 1;
            r.alerted_at_risk += u64::from(*n > 0);
        } else {
            r.passes_up += 1;
            r.alerted_up += u64::from(*n > 0);
            if *n == 0 {
                let rel = |t: u64| (t as f64 - outage.from.0 as f64) / 1e9;
                tracing::warn!(
                    ?fault,
                    camera = pass.camera,
                    starts_s = format!("{:+.1}", rel(from)),
                    outage_ends_s = format!("{:+.1}", rel(outage.to.0)),
                    "a pass made while the pipeline was up raised no alert"
                );
            }
        }
    }
    r
}

/// Where a harness run writes its report.
pub fn write(outcome: &Outcome, out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("faults.json"),
        serde_json::to_string_pretty(outcome)?,
    )?;
    let md = out.join("faults.md");
    std::fs::write(&md, outcome.markdown())?;
    Ok(md)
}
