//! The bus: one NATS connection per service, the JetStream topology declared idempotently at
//! start-up, and publishing that respects the transient streams' TTL.
//!
//! Connections retry forever: a service that starts before NATS, or loses it, waits and reconnects
//! rather than crashing. Memory streams do not survive a server restart, so when a publish finds its
//! stream missing the topology is declared again (at most once per second) and the loss is counted.

use crate::config::Common;
use crate::telemetry::LATENCY_BUCKETS;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use lfr_schemas::streams::{self, Retention, Storage, StreamSpec};
use lfr_schemas::Message;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    common: Arc<Common>,
    metrics: BusMetrics,
    last_declared: Arc<Mutex<Option<Instant>>>,
}

#[derive(Clone)]
struct BusMetrics {
    connected: IntGauge,
    disconnects: IntCounter,
    publish_seconds: HistogramVec,
    publish_failures: IntCounterVec,
    redeclared: IntCounter,
}

impl BusMetrics {
    fn new(registry: &Registry) -> anyhow::Result<BusMetrics> {
        let m = BusMetrics {
            connected: IntGauge::new("bus_connected", "1 while connected to NATS")?,
            disconnects: IntCounter::new("bus_disconnects_total", "Connections to NATS lost")?,
            publish_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "bus_publish_seconds",
                    "JetStream publish latency, send to server acknowledgement",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["stream"],
            )?,
            publish_failures: IntCounterVec::new(
                Opts::new(
                    "bus_publish_failures_total",
                    "Publishes the server did not acknowledge",
                ),
                &["stream", "reason"],
            )?,
            redeclared: IntCounter::new(
                "bus_topology_redeclared_total",
                "Times the stream topology was declared again after a stream went missing",
            )?,
        };
        registry.register(Box::new(m.connected.clone()))?;
        registry.register(Box::new(m.disconnects.clone()))?;
        registry.register(Box::new(m.publish_seconds.clone()))?;
        registry.register(Box::new(m.publish_failures.clone()))?;
        registry.register(Box::new(m.redeclared.clone()))?;
        Ok(m)
    }
}

impl Bus {
    /// Connect (retrying until NATS answers or shutdown) and declare the topology.
    pub async fn connect(
        common: &Common,
        service: &str,
        registry: &Registry,
    ) -> anyhow::Result<Bus> {
        let metrics = BusMetrics::new(registry)?;
        let events = metrics.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("lfr-{service}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * 2u64.saturating_pow(attempt.min(6) as u32)).min(5000))
            })
            .event_callback(move |event| {
                let m = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            m.connected.set(1);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            m.connected.set(0);
                            m.disconnects.inc();
                            tracing::warn!("lost connection to NATS; reconnecting");
                        }
                        other => tracing::warn!(event = %other, "NATS event"),
                    }
                }
            });
        if let Some(creds) = &common.nats.credentials {
            options = options.credentials_file(creds).await.map_err(|e| {
                anyhow::anyhow!("cannot read NATS credentials {}: {e}", creds.display())
            })?;
        }
        let client = options
            .connect(common.nats.url.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {}: {e}", common.nats.url))?;
        metrics.connected.set(1);
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(common.nats.ack_timeout)
            .build(client.clone());
        let bus = Bus {
            client,
            jetstream,
            common: Arc::new(common.clone()),
            metrics,
            last_declared: Arc::new(Mutex::new(None)),
        };
        bus.declare_topology().await?;
        Ok(bus)
    }

    /// Create or update every stream of the contract. Idempotent; safe from many services at once.
    pub async fn declare_topology(&self) -> anyhow::Result<()> {
        let limits = self.common.bus.topology_limits();
        for spec in streams::topology(&limits) {
            self.jetstream
                .create_or_update_stream(stream_config(&spec))
                .await
                .map_err(|e| anyhow::anyhow!("cannot declare stream {}: {e}", spec.name))?;
        }
        *self.last_declared.lock().await = Some(Instant::now());
        tracing::debug!("stream topology declared");
        Ok(())
    }

    /// Send what is buffered before the service exits, but do not wait for a server that is gone:
    /// a service told to stop while NATS is unreachable must still stop (a Kubernetes pod gets 30 s).
    pub async fn flush_before_exit(&self) {
        match tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush to NATS before exiting"),
            Err(_) => tracing::warn!("NATS unreachable: exiting without flushing"),
        }
    }

    /// Declare again after a stream went missing (e.g. NATS restarted and lost its memory streams),
    /// at most once a second however many publishers notice.
    pub async fn redeclare_topology(&self) {
        {
            let mut last = self.last_declared.lock().await;
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.metrics.redeclared.inc();
        if let Err(e) = self.declare_topology().await {
            tracing::warn!(error = %e, "re-declaring the stream topology failed; will retry");
        }
    }

    /// Publish to a transient stream with the configured per-message TTL. Returns once the message
    /// is sent; await the returned [`Published`] for the server's acknowledgement.
    pub async fn publish_transient<M: Message>(
        &self,
        stream: &'static str,
        subject: String,
        message: &M,
    ) -> Result<Published, PublishError> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.encode().into())
            .ttl(self.common.bus.transient_ttl);
        self.send(stream, subject, publish).await
    }

    /// Publish a record (an alert, a decision) to a file-backed stream. `id` becomes the
    /// `Nats-Msg-Id`, so a publish retried after a lost acknowledgement is stored once.
    pub async fn publish_record<M: Message>(
        &self,
        stream: &'static str,
        subject: String,
        id: &str,
        message: &M,
    ) -> Result<Published, PublishError> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.encode().into())
            .message_id(id);
        self.send(stream, subject, publish).await
    }

    /// Send, counting a failure; the acknowledgement is awaited through [`Published`].
    async fn send(
        &self,
        stream: &'static str,
        subject: String,
        publish: jetstream::message::PublishMessage,
    ) -> Result<Published, PublishError> {
        let started = Instant::now();
        let ack = self.jetstream.send_publish(subject, publish).await;
        let ack = ack.inspect_err(|e| self.count_failure(stream, e))?;
        Ok(Published {
            ack,
            started,
            stream,
            bus: self.clone(),
        })
    }

    fn count_failure(&self, stream: &str, e: &PublishError) {
        let reason = match e.kind() {
            PublishErrorKind::StreamNotFound => "stream_not_found",
            PublishErrorKind::TimedOut => "timeout",
            PublishErrorKind::BrokenPipe => "disconnected",
            PublishErrorKind::MaxPayloadExceeded => "too_large",
            _ => "other",
        };
        self.metrics
            .publish_failures
            .with_label_values(&[stream, reason])
            .inc();
    }
}

/// A sent publish awaiting the server's acknowledgement.
pub struct Published {
    ack: PublishAckFuture,
    started: Instant,
    stream: &'static str,
    bus: Bus,
}

impl Published {
    /// Wait for the acknowledgement, recording latency or the failure. A missing stream triggers a
    /// re-declaration of the topology so the next publish can succeed.
    pub async fn acknowledged(self) -> Result<(), PublishError> {
        match self.ack.await {
            Ok(_) => {
                self.bus
                    .metrics
                    .publish_seconds
                    .with_label_values(&[self.stream])
                    .observe(self.started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(e) => {
                self.bus.count_failure(self.stream, &e);
                if e.kind() == PublishErrorKind::StreamNotFound {
                    self.bus.redeclare_topology().await;
                }
                Err(e)
            }
        }
    }
}

/// The server-side configuration for one stream of the contract.
pub fn stream_config(spec: &StreamSpec) -> stream::Config {
    stream::Config {
        name: spec.name.to_string(),
        subjects: spec.subjects.clone(),
        storage: match spec.storage {
            Storage::Memory => stream::StorageType::Memory,
            Storage::File => stream::StorageType::File,
        },
        retention: match spec.retention {
            Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
            Retention::Limits => stream::RetentionPolicy::Limits,
        },
        discard: stream::DiscardPolicy::Old,
        max_age: spec.max_age,
        max_bytes: spec.max_bytes,
        max_messages: spec.max_messages,
        max_message_size: spec.max_message_size,
        allow_message_ttl: spec.allow_message_ttl,
        deny_delete: spec.deny_delete,
        deny_purge: spec.deny_purge,
        duplicate_window: spec.duplicate_window,
        ..Default::default()
    }
}
