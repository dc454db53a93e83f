//! A pipeline stage: consume a stream through a durable pull consumer shared by every replica,
//! hand messages to the stage's handler, then acknowledge each.
//!
//! The loop is the same shape for detect, embed, match and dispatch (input -> transform -> output),
//! so the rules live here once:
//! - a message that is not the expected kind or version is **terminated** (never redelivered) and
//!   counted under `lfr_stage_rejected_total{reason}`: a poison message must not loop forever;
//! - a handler's [`HandleError::Retry`] is negatively acknowledged with a delay; the transient TTL
//!   still bounds how long a frame can wait;
//! - on shutdown the stage stops pulling, finishes the messages in hand, and returns;
//! - if the consumer disappears (NATS restarted without its memory streams) the topology and the
//!   consumer are declared again after a back-off;
//! - **shed, don't queue**: a stage with a [`StageSpec::shed_at`] drops a message whose frame is
//!   already older than that share of `bus.latency_budget` when the stage takes it, and counts it
//!   under `lfr_stage_shed_total`. Past capacity a backlog then costs one decode per stale frame,
//!   not one inference, and latency stays near the budget instead of climbing to the TTL. The
//!   first costly stage sheds early (detect: half the budget) and the next late (embed: all of
//!   it), so what detect chose to work on reaches embed in time: with one limit for both, a
//!   detect near capacity took frames just under the budget and embed threw away every face of
//!   them, work done and passes lost (the fault harness's soak);
//! - a consumer declared active/standby (`ConsumerSpec::active_standby`: match) is pulled as a
//!   pinned client of its priority group: the server delivers to one replica and moves the pin to
//!   a standby when that one stops pulling.
//!
//! A [`Handler`] takes one message at a time; a [`BatchHandler`] takes up to `max_batch` messages
//! that arrived within `max_wait` of the first (the embedder batches faces across cameras).

use crate::bus::Bus;
use crate::config::Common;
use crate::service::{self, Context, Running};
use crate::telemetry::{Health, LATENCY_BUCKETS};
use crate::Shutdown;
use async_nats::jetstream::consumer::{pull, PriorityPolicy};
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use lfr_schemas::streams::STANDBY_GROUP;
use lfr_schemas::{Message, Timestamp};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a stage reads from, and how much it takes at once.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Metric label and log field.
    pub name: &'static str,
    pub stream: &'static str,
    /// Durable consumer name (declared by `lfr bus init`, see `lfr_schemas::streams::consumers`);
    /// replicas of one stage share it and split the work.
    pub durable: &'static str,
    /// Largest batch given to the handler (1 for one-at-a-time stages).
    pub max_batch: usize,
    /// How long to wait for a batch to fill once its first message has arrived.
    pub max_wait: Duration,
    /// Drop a message whose frame is older than this share of the latency budget instead of
    /// working on it. For the costly stages (detect, embed); `None` for match, where the work is
    /// done and dropping loses an alert.
    pub shed_at: Option<f64>,
}

/// Why a handler did not complete a message.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth another try (the bus was briefly unavailable): negative acknowledgement.
    #[error("retry: {0}")]
    Retry(anyhow::Error),
    /// Can never succeed (undecodable image, impossible content): terminate and count.
    #[error("{reason}: {error}")]
    Reject {
        reason: &'static str,
        error: anyhow::Error,
    },
}

impl HandleError {
    pub fn reject(reason: &'static str, error: impl Into<anyhow::Error>) -> HandleError {
        HandleError::Reject {
            reason,
            error: error.into(),
        }
    }
}

/// What a stage does with one message.
pub trait Handler: Send + Sync + 'static {
    type Input: Message + Send;
    fn handle(&self, input: Self::Input) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// When the data in this message was captured, for the age-on-arrival histogram.
    fn captured_at(_input: &Self::Input) -> Option<Timestamp> {
        None
    }
}

/// What a stage does with a batch of messages: one result per input, in order.
pub trait BatchHandler: Send + Sync + 'static {
    type Input: Message + Send;
    fn handle_batch(
        &self,
        inputs: Vec<Self::Input>,
    ) -> impl Future<Output = Vec<Result<(), HandleError>>> + Send;

    fn captured_at(_input: &Self::Input) -> Option<Timestamp> {
        None
    }
}

/// A one-at-a-time handler is a batch handler whose batches hold one message (for services that
/// call [`run`] themselves rather than [`start_service`]).
pub struct OneByOne<H>(pub H);

impl<H: Handler> BatchHandler for OneByOne<H> {
    type Input = H::Input;

    async fn handle_batch(&self, inputs: Vec<H::Input>) -> Vec<Result<(), HandleError>> {
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            results.push(self.0.handle(input).await);
        }
        results
    }

    fn captured_at(input: &H::Input) -> Option<Timestamp> {
        H::captured_at(input)
    }
}

#[derive(Clone)]
struct StageMetrics {
    messages: IntCounterVec,
    rejected: IntCounterVec,
    handle_seconds: HistogramVec,
    age_seconds: HistogramVec,
    batch_size: Histogram,
    shed: IntCounterVec,
}

impl StageMetrics {
    fn new(registry: &Registry) -> anyhow::Result<StageMetrics> {
        let m = StageMetrics {
            messages: IntCounterVec::new(
                Opts::new("stage_messages_total", "Messages consumed, by outcome"),
                &["stage", "outcome"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "stage_rejected_total",
                    "Messages refused and terminated, by reason",
                ),
                &["stage", "reason"],
            )?,
            handle_seconds: HistogramVec::new(
                HistogramOpts::new("stage_handle_seconds", "Time to handle one batch")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["stage"],
            )?,
            age_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "stage_message_age_seconds",
                    "Time from capture of the frame to this stage receiving the message",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["stage"],
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("stage_batch_size", "Messages handled together")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
            )?,
            shed: IntCounterVec::new(
                Opts::new(
                    "stage_shed_total",
                    "Messages dropped unprocessed: their frame was older than the latency budget",
                ),
                &["stage"],
            )?,
        };
        registry.register(Box::new(m.messages.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.handle_seconds.clone()))?;
        registry.register(Box::new(m.age_seconds.clone()))?;
        registry.register(Box::new(m.batch_size.clone()))?;
        registry.register(Box::new(m.shed.clone()))?;
        Ok(m)
    }
}

/// Start a service that is one stage: telemetry, bus, then the consume loop in a task.
/// `make_handler` builds the handler from the started service (its bus, its registry).
pub async fn start_service<H: Handler>(
    name: &'static str,
    common: &Common,
    http_addr: SocketAddr,
    spec: StageSpec,
    make_handler: impl FnOnce(&Context) -> anyhow::Result<H>,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    start_batched_service(
        name,
        common,
        http_addr,
        spec,
        |ctx| make_handler(ctx).map(OneByOne),
        shutdown,
    )
    .await
}

/// [`start_service`] for a stage that handles batches.
pub async fn start_batched_service<H: BatchHandler>(
    name: &'static str,
    common: &Common,
    http_addr: SocketAddr,
    spec: StageSpec,
    make_handler: impl FnOnce(&Context) -> anyhow::Result<H>,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    common.bus.validate()?;
    let ctx = service::start(name, common, http_addr, shutdown).await?;
    let handler = make_handler(&ctx)?;
    let metrics_addr = ctx.metrics_addr;
    let budget = common.bus.latency_budget;
    let done = tokio::spawn(async move {
        let ran = run(
            &ctx.bus,
            spec,
            budget,
            handler,
            &ctx.registry,
            &ctx.health,
            &ctx.shutdown,
        )
        .await;
        if let Err(e) = ran {
            tracing::error!(service = name, error = %e, "stage failed");
        }
        ctx.bus.flush_before_exit().await;
    });
    Ok(Running { metrics_addr, done })
}

/// Run a stage until shutdown.
pub async fn run<H: BatchHandler>(
    bus: &Bus,
    spec: StageSpec,
    budget: Duration,
    handler: H,
    registry: &Registry,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let metrics = StageMetrics::new(registry)?;
    // Present from the start, so a rate over it reads zero rather than nothing.
    metrics.shed.with_label_values(&[spec.name]);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_triggered() {
        match consume(bus, &spec, budget, &handler, &metrics, health, shutdown).await {
            Ok(()) => break,
            Err(e) => {
                health.set_ready(false);
                tracing::warn!(stage = spec.name, error = %e, retry_in = ?backoff, "consumer lost; waiting for the topology");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.requested() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                // Not ready, with the reason, until the administrator's topology is back.
                if service::wait_for_topology(bus, health, shutdown)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    tracing::info!(stage = spec.name, "stage stopped");
    Ok(())
}

type Delivery = async_nats::jetstream::Message;

/// One consumer session: returns `Ok` on shutdown, `Err` when the consumer must be re-created.
async fn consume<H: BatchHandler>(
    bus: &Bus,
    spec: &StageSpec,
    budget: Duration,
    handler: &H,
    metrics: &StageMetrics,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    // Setting up talks to the server, which may be unreachable: a shutdown must not wait for it.
    let setup = async {
        // Bind to the consumer the administrator declared; a stage never creates one.
        let stream = bus.jetstream.get_stream_no_info(spec.stream).await?;
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_consumer(spec.durable)
            .await
            .map_err(|e| anyhow::anyhow!("consumer {}/{}: {e}", spec.stream, spec.durable))?;
        // Small pulls: a replica should not hoard work another replica could be doing.
        let batch = spec.max_batch.clamp(1, 64);
        let pinned = consumer.cached_info().config.priority_policy == PriorityPolicy::PinnedClient;
        if pinned {
            let stream = consumer
                .stream()
                .group(STANDBY_GROUP)
                .max_messages_per_batch(batch)
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_EXPIRES / 2)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("pinned pull failed: {e}"))?;
            return anyhow::Ok(Puller::Pinned(Box::new(stream)));
        }
        anyhow::Ok(Puller::Requests(Box::new(Requests {
            consumer,
            batch,
            current: None,
            current_ends: tokio::time::Instant::now(),
            idle_since: tokio::time::Instant::now(),
        })))
    };
    let mut messages = tokio::select! {
        messages = setup => messages?,
        _ = shutdown.requested() => return Ok(()),
    };
    health.set_ready(true);
    tracing::info!(stage = spec.name, stream = spec.stream, "consuming");
    loop {
        let first = tokio::select! {
            next = messages.next() => next?,
            _ = shutdown.requested() => return Ok(()),
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + spec.max_wait;
        while batch.len() < spec.max_batch {
            match tokio::time::timeout_at(deadline, messages.next_in_request()).await {
                Ok(Some(next)) => batch.push(next?),
                Ok(None) | Err(_) => break,
            }
        }
        handle(batch, spec, budget, handler, metrics).await;
    }
}

/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// After this long without a message, check that the consumer still exists (NATS may have
/// restarted without its memory streams, and a pull to a missing consumer is simply not answered).
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// How a stage takes its messages.
enum Puller {
    /// Shared work: short pull requests (below).
    Requests(Box<Requests>),
    /// Active/standby: one long-lived pull stream, the only form that holds a pin (the client
    /// renews its pin id with every pull it makes). Its heartbeats end it when the server or
    /// the consumer is gone. Match is never overloaded, where the stall below was seen.
    Pinned(Box<pull::Stream>),
}

impl Puller {
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        match self {
            Puller::Requests(r) => r.next().await,
            Puller::Pinned(stream) => match stream.next().await {
                Some(Ok(message)) => Ok(message),
                Some(Err(e)) => Err(anyhow::anyhow!("pinned pull failed: {e}")),
                None => Err(anyhow::anyhow!("pinned pull ended")),
            },
        }
    }

    async fn next_in_request(&mut self) -> Option<anyhow::Result<Delivery>> {
        match self {
            Puller::Requests(r) => r.next_in_request().await,
            // The caller bounds the wait; the stream has no request boundaries to respect.
            Puller::Pinned(stream) => stream
                .next()
                .await
                .map(|m| m.map_err(|e| anyhow::anyhow!("pinned pull failed: {e}"))),
        }
    }
}

/// Short pull requests, one after another, instead of one long-lived pull subscription. Under
/// overload the long-lived form was seen to stall silently: the server held no waiting pull while
/// the client believed one was outstanding, and frames expired unread (the load test, 7 cameras at
/// 5 fps on 2 cores: the detect stage idle at 0.0 cores with 165 frames pending). A request that
/// lives at most [`PULL_EXPIRES`] cannot be lost for longer than that: the client stops waiting
/// for one [`REQUEST_SLACK`] after it should have ended, because a server that restarted while
/// it was outstanding never answers it.
struct Requests {
    consumer: async_nats::jetstream::consumer::PullConsumer,
    batch: usize,
    current: Option<pull::Batch>,
    /// When the current request ends at the latest, slack included.
    current_ends: tokio::time::Instant,
    idle_since: tokio::time::Instant,
}

/// How long past its expiry a pull request is waited for.
const REQUEST_SLACK: Duration = Duration::from_secs(1);

impl Requests {
    /// The next message, pulling again as often as needed; `Err` when the consumer must be
    /// re-created.
    async fn next(&mut self) -> anyhow::Result<Delivery> {
        loop {
            if let Some(next) = self.next_in_request().await {
                return next;
            }
            if self.idle_since.elapsed() >= IDLE_CHECK {
                self.consumer
                    .info()
                    .await
                    .map_err(|e| anyhow::anyhow!("consumer gone: {e}"))?;
                self.idle_since = tokio::time::Instant::now();
            }
            self.current = Some(
                self.consumer
                    .batch()
                    .max_messages(self.batch)
                    .expires(PULL_EXPIRES)
                    .messages()
                    .await
                    .map_err(|e| anyhow::anyhow!("pull request failed: {e}"))?,
            );
            self.current_ends = tokio::time::Instant::now() + PULL_EXPIRES + REQUEST_SLACK;
        }
    }

    /// The next message of the pull request in progress, without asking for more (`None` when
    /// there is no request or it is over): filling a batch must not leave a request half made.
    async fn next_in_request(&mut self) -> Option<anyhow::Result<Delivery>> {
        let current = self.current.as_mut()?;
        let Ok(next) = tokio::time::timeout_at(self.current_ends, current.next()).await else {
            // Past its expiry and still open: the server lost it. Pull afresh.
            tracing::debug!("pull request unanswered past its expiry; pulling again");
            self.current = None;
            return None;
        };
        match next {
            Some(Ok(message)) => {
                self.idle_since = tokio::time::Instant::now();
                Some(Ok(message))
            }
            Some(Err(e)) => {
                self.current = None;
                Some(Err(anyhow::anyhow!("consumer stream failed: {e}")))
            }
            None => {
                self.current = None;
                None
            }
        }
    }
}

/// Whether a message this old is past the stage's share of the latency budget.
fn too_old(age: Duration, budget: Duration, shed_at: Option<f64>) -> bool {
    shed_at.is_some_and(|share| age > budget.mul_f64(share))
}

async fn handle<H: BatchHandler>(
    deliveries: Vec<Delivery>,
    spec: &StageSpec,
    budget: Duration,
    handler: &H,
    metrics: &StageMetrics,
) {
    if deliveries.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut accepted = Vec::with_capacity(deliveries.len());
    let mut inputs = Vec::with_capacity(deliveries.len());
    for message in deliveries {
        match H::Input::decode(&message.payload) {
            Ok(input) => {
                let age = H::captured_at(&input).map(|at| at.until(Timestamp::now()));
                if let Some(age) = age {
                    metrics
                        .age_seconds
                        .with_label_values(&[spec.name])
                        .observe(age.as_secs_f64());
                }
                if age.is_some_and(|age| too_old(age, budget, spec.shed_at)) {
                    // Too late to be worth the inference: gone now, counted, never redelivered.
                    metrics.shed.with_label_values(&[spec.name]).inc();
                    metrics
                        .messages
                        .with_label_values(&[spec.name, "shed"])
                        .inc();
                    ack(&message, AckKind::Term, spec.name).await;
                    continue;
                }
                inputs.push(input);
                accepted.push(message);
            }
            Err(e) => {
                tracing::warn!(stage = spec.name, subject = %message.subject, error = %e, "refusing message");
                reject(&message, e.reason(), spec, metrics).await;
            }
        }
    }
    if inputs.is_empty() {
        return;
    }
    metrics.batch_size.observe(inputs.len() as f64);
    let results = handler.handle_batch(inputs).await;
    for (message, result) in accepted.iter().zip(results) {
        match result {
            Ok(()) => {
                ack(message, AckKind::Ack, spec.name).await;
                metrics.messages.with_label_values(&[spec.name, "ok"]).inc();
            }
            Err(HandleError::Reject { reason, error }) => {
                tracing::warn!(stage = spec.name, reason, error = %error, "rejecting message");
                reject(message, reason, spec, metrics).await;
            }
            Err(HandleError::Retry(error)) => {
                tracing::warn!(stage = spec.name, error = %error, "will retry message");
                ack(
                    message,
                    AckKind::Nak(Some(Duration::from_millis(250))),
                    spec.name,
                )
                .await;
                metrics
                    .messages
                    .with_label_values(&[spec.name, "retried"])
                    .inc();
            }
        }
    }
    metrics
        .handle_seconds
        .with_label_values(&[spec.name])
        .observe(started.elapsed().as_secs_f64());
}

async fn reject(
    message: &Delivery,
    reason: &'static str,
    spec: &StageSpec,
    metrics: &StageMetrics,
) {
    metrics
        .rejected
        .with_label_values(&[spec.name, reason])
        .inc();
    metrics
        .messages
        .with_label_values(&[spec.name, "rejected"])
        .inc();
    ack(message, AckKind::Term, spec.name).await;
}

async fn ack(message: &Delivery, kind: AckKind, stage: &str) {
    // `ack_with` only sends; a lost ack is redelivered by the server after `ack_wait`.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(stage, error = %e, "acknowledgement not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_sheds_past_its_share_of_the_budget_and_match_never() {
        let budget = Duration::from_secs(2);
        let age = Duration::from_millis(1500);
        assert!(
            too_old(age, budget, Some(0.5)),
            "detect: past half the budget"
        );
        assert!(
            !too_old(age, budget, Some(1.0)),
            "embed: still inside the budget"
        );
        assert!(too_old(Duration::from_millis(2001), budget, Some(1.0)));
        assert!(
            !too_old(Duration::from_secs(60), budget, None),
            "match never sheds"
        );
    }
}
