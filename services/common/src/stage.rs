//! A pipeline stage: consume a stream through a durable pull consumer shared by every replica,
//! hand each message to the stage's [`Handler`], then acknowledge.
//!
//! The loop is the same shape for detect, embed, match and dispatch (input -> transform -> output),
//! so the rules live here once:
//! - a message that is not the expected kind or version is **terminated** (never redelivered) and
//!   counted under `lfr_stage_rejected_total{reason}`: a poison message must not loop forever;
//! - a handler's [`HandleError::Retry`] is negatively acknowledged with a delay; the transient TTL
//!   still bounds how long a frame can wait;
//! - on shutdown the stage stops pulling, finishes the message in hand, and returns;
//! - if the consumer disappears (NATS restarted without its memory streams) the topology and the
//!   consumer are declared again after a back-off.

use crate::bus::Bus;
use crate::config::Common;
use crate::service::{self, Running};
use crate::telemetry::{Health, LATENCY_BUCKETS};
use crate::Shutdown;
use async_nats::jetstream::{consumer::pull, AckKind};
use futures::StreamExt;
use lfr_schemas::{Message, Timestamp};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a stage reads from.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Metric label and log field.
    pub name: &'static str,
    pub stream: &'static str,
    /// Durable consumer name; replicas of one stage share it and split the work.
    pub durable: &'static str,
    /// Only these subjects of the stream (e.g. candidate alerts, not decisions).
    pub filter_subject: Option<&'static str>,
    /// Messages handed out but not yet acknowledged, across all replicas.
    pub max_ack_pending: i64,
    /// How long the server waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
}

/// Why a handler did not complete a message.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth another try (a dependency was briefly unavailable): negative acknowledgement.
    #[error("retry: {0}")]
    Retry(anyhow::Error),
    /// Can never succeed (undecodable image, impossible content): terminate and count.
    #[error("{reason}: {error}")]
    Reject {
        reason: &'static str,
        error: anyhow::Error,
    },
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

#[derive(Clone)]
struct StageMetrics {
    messages: IntCounterVec,
    rejected: IntCounterVec,
    handle_seconds: HistogramVec,
    age_seconds: HistogramVec,
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
                HistogramOpts::new("stage_handle_seconds", "Time to handle one message")
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
        };
        registry.register(Box::new(m.messages.clone()))?;
        registry.register(Box::new(m.age_seconds.clone()))?;
        registry.register(Box::new(m.rejected.clone()))?;
        registry.register(Box::new(m.handle_seconds.clone()))?;
        Ok(m)
    }
}

/// Start a service that is one stage: telemetry, bus, then the consume loop in a task.
/// `make_handler` builds the handler once the service's registry exists (for its own metrics).
pub async fn start_service<H: Handler>(
    name: &'static str,
    common: &Common,
    http_addr: SocketAddr,
    spec: StageSpec,
    make_handler: impl FnOnce(&Registry) -> anyhow::Result<H>,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    let ctx = service::start(name, common, http_addr, shutdown).await?;
    let handler = make_handler(&ctx.registry)?;
    let metrics_addr = ctx.metrics_addr;
    let done = tokio::spawn(async move {
        if let Err(e) = run(
            &ctx.bus,
            spec,
            handler,
            &ctx.registry,
            &ctx.health,
            &ctx.shutdown,
        )
        .await
        {
            tracing::error!(service = name, error = %e, "stage failed");
        }
        let _ = ctx.bus.client.flush().await;
    });
    Ok(Running { metrics_addr, done })
}

/// Run a stage until shutdown.
pub async fn run<H: Handler>(
    bus: &Bus,
    spec: StageSpec,
    handler: H,
    registry: &Registry,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let metrics = StageMetrics::new(registry)?;
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_triggered() {
        match consume(bus, &spec, &handler, &metrics, health, shutdown).await {
            Ok(()) => break,
            Err(e) => {
                health.set_ready(false);
                tracing::warn!(stage = spec.name, error = %e, retry_in = ?backoff, "consumer lost; re-declaring");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.requested() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                bus.redeclare_topology().await;
            }
        }
    }
    tracing::info!(stage = spec.name, "stage stopped");
    Ok(())
}

/// One consumer session: returns `Ok` on shutdown, `Err` when the consumer must be re-created.
async fn consume<H: Handler>(
    bus: &Bus,
    spec: &StageSpec,
    handler: &H,
    metrics: &StageMetrics,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let stream = bus.jetstream.get_stream(spec.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            spec.durable,
            pull::Config {
                durable_name: Some(spec.durable.to_string()),
                filter_subject: spec.filter_subject.unwrap_or_default().to_string(),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ack_wait: spec.ack_wait,
                max_ack_pending: spec.max_ack_pending,
                ..Default::default()
            },
        )
        .await?;
    // Small batches: a replica should not hoard frames another replica could be handling.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(4)
        .messages()
        .await?;
    health.set_ready(true);
    tracing::info!(stage = spec.name, stream = spec.stream, "consuming");
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.requested() => return Ok(()),
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // Heartbeat misses and the like are transient; the stream recovers or ends.
                tracing::debug!(stage = spec.name, error = %e, "consumer stream error");
                if is_fatal(&e) {
                    anyhow::bail!("consumer stream failed: {e}");
                }
                continue;
            }
            None => anyhow::bail!("consumer stream ended"),
        };
        let started = Instant::now();
        let outcome = match H::Input::decode(&message.payload) {
            Err(e) => {
                tracing::warn!(stage = spec.name, subject = %message.subject, error = %e, "refusing message");
                metrics
                    .rejected
                    .with_label_values(&[spec.name, e.reason()])
                    .inc();
                ack(&message, AckKind::Term, spec.name).await;
                "rejected"
            }
            Ok(input) => {
                if let Some(at) = H::captured_at(&input) {
                    metrics
                        .age_seconds
                        .with_label_values(&[spec.name])
                        .observe(at.until(Timestamp::now()).as_secs_f64());
                }
                match handler.handle(input).await {
                    Ok(()) => {
                        ack(&message, AckKind::Ack, spec.name).await;
                        "ok"
                    }
                    Err(HandleError::Reject { reason, error }) => {
                        tracing::warn!(stage = spec.name, reason, error = %error, "rejecting message");
                        metrics
                            .rejected
                            .with_label_values(&[spec.name, reason])
                            .inc();
                        ack(&message, AckKind::Term, spec.name).await;
                        "rejected"
                    }
                    Err(HandleError::Retry(error)) => {
                        tracing::warn!(stage = spec.name, error = %error, "will retry message");
                        ack(
                            &message,
                            AckKind::Nak(Some(Duration::from_millis(250))),
                            spec.name,
                        )
                        .await;
                        "retried"
                    }
                }
            }
        };
        metrics
            .messages
            .with_label_values(&[spec.name, outcome])
            .inc();
        metrics
            .handle_seconds
            .with_label_values(&[spec.name])
            .observe(started.elapsed().as_secs_f64());
    }
}

fn is_fatal(e: &async_nats::jetstream::consumer::pull::MessagesError) -> bool {
    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
    matches!(
        e.kind(),
        K::ConsumerDeleted | K::NoResponders | K::MissingHeartbeat
    )
}

async fn ack(message: &async_nats::jetstream::Message, kind: AckKind, stage: &str) {
    // `ack_with` only sends; a lost ack is redelivered by the server after `ack_wait`.
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(stage, error = %e, "acknowledgement not sent");
    }
}
