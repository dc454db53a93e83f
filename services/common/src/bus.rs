//! The bus: one NATS connection per component, as its own identity, and publishing that respects
//! the transient streams' TTL.
//!
//! A component authenticates with its own credentials (an nkey seed, or a `.creds` file), over TLS
//! when a CA is configured or the URL says `tls://`, and receives replies on its own inbox prefix
//! (`_INBOX_<identity>`), the only one its permissions let it subscribe to. It declares nothing:
//! the topology is the administrator's (`lfr bus init`, [`crate::topology`]).
//!
//! Connections retry forever: a service that starts before NATS, or loses it, waits and reconnects
//! rather than crashing. A publish that finds its stream missing (NATS restarted without its memory
//! streams, before `lfr bus init --watch` declared them again) is counted and refused.

use crate::config::{Common, NatsConfig};
use crate::telemetry::LATENCY_BUCKETS;
use crate::{redact, topology};
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::{self, context::PublishErrorKind};
use lfr_schemas::permissions::Identity;
use lfr_schemas::Message;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    /// Who this connection is on the bus.
    pub identity: Identity,
    common: Arc<Common>,
    metrics: BusMetrics,
}

#[derive(Clone)]
struct BusMetrics {
    connected: IntGauge,
    disconnects: IntCounter,
    publish_seconds: HistogramVec,
    publish_failures: IntCounterVec,
    topology_problems: IntGauge,
    permission_violations: IntCounter,
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
            permission_violations: IntCounter::new(
                "bus_permission_violations_total",
                "Publishes and subscriptions the server refused: this identity tried what the permission matrix does not give it",
            )?,
            topology_problems: IntGauge::new(
                "bus_topology_problems",
                "Streams, buckets and consumers this service uses that are missing or differ from the contract, as last checked",
            )?,
        };
        registry.register(Box::new(m.connected.clone()))?;
        registry.register(Box::new(m.topology_problems.clone()))?;
        registry.register(Box::new(m.permission_violations.clone()))?;
        registry.register(Box::new(m.disconnects.clone()))?;
        registry.register(Box::new(m.publish_seconds.clone()))?;
        registry.register(Box::new(m.publish_failures.clone()))?;
        Ok(m)
    }
}

/// The servers of a `nats.url`: one URL, or several separated by commas (a cluster's nodes, so
/// a client reconnects to a survivor when its server goes).
pub fn server_addrs(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let addrs = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| anyhow::anyhow!("invalid NATS URL {}: {e}", redact::url(u)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!addrs.is_empty(), "no NATS URL given");
    Ok(addrs)
}

impl Bus {
    /// Connect as `component`'s identity, retrying until NATS answers (or the caller gives up).
    pub async fn connect(
        common: &Common,
        component: &str,
        registry: &Registry,
    ) -> anyhow::Result<Bus> {
        let identity = Identity::of(component)
            .ok_or_else(|| anyhow::anyhow!("{component} has no identity on the bus"))?;
        let metrics = BusMetrics::new(registry)?;
        let events = metrics.clone();
        let options = connect_options(&common.nats, identity)
            .await?
            .name(format!("lfr-{component}"))
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
                        async_nats::Event::ServerError(e)
                            if e.to_string().contains("Permissions Violation") =>
                        {
                            // A bug or a compromise: the server refused, and says what.
                            m.permission_violations.inc();
                            tracing::error!(error = %e, "refused by the NATS server's permissions");
                        }
                        other => tracing::warn!(event = %other, "NATS event"),
                    }
                }
            });
        let client = options
            .connect(server_addrs(&common.nats.url)?)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot connect to NATS at {}: {e}",
                    redact::url(&common.nats.url)
                )
            })?;
        metrics.connected.set(1);
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(common.nats.ack_timeout)
            .build(client.clone());
        Ok(Bus {
            client,
            jetstream,
            identity,
            common: Arc::new(common.clone()),
            metrics,
        })
    }

    /// What this identity uses that is missing or differs from the contract (empty: ready).
    pub async fn topology_problems(&self) -> Vec<String> {
        let limits = self.common.bus.topology_limits();
        let problems = topology::check(&self.jetstream, self.identity, &limits).await;
        self.metrics.topology_problems.set(problems.len() as i64);
        problems
    }

    /// Send what is buffered before the service exits, but do not wait for a server that is gone:
    /// a service told to stop while NATS is unreachable must still stop (a Kubernetes pod gets 30 s).
    pub async fn flush_before_exit(&self) {
        // Disconnected: nothing can be sent, and waiting for a reconnect only delays the stop.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            tracing::warn!("NATS unreachable: exiting without flushing");
            return;
        }
        match tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush to NATS before exiting"),
            Err(_) => tracing::warn!("NATS unreachable: exiting without flushing"),
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
    /// Wait for the acknowledgement, recording latency or the failure.
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
                    tracing::warn!(stream = self.stream, "stream missing: the administrator must declare the topology (lfr bus init)");
                }
                Err(e)
            }
        }
    }
}

/// Connection options for `identity`: its credentials, TLS with the configured CA, its own inbox.
pub async fn connect_options(
    nats: &NatsConfig,
    identity: Identity,
) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut options =
        async_nats::ConnectOptions::new().custom_inbox_prefix(identity.inbox_prefix());
    if let Some(path) = &nats.credentials {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read NATS credentials {}: {e}", path.display()))?;
        options = if text.contains("BEGIN NATS USER JWT") {
            options
                .credentials(&text)
                .map_err(|e| anyhow::anyhow!("invalid NATS credentials {}: {e}", path.display()))?
        } else {
            let seed = text.trim();
            anyhow::ensure!(
                seed.starts_with("SU"),
                "{} holds neither an nkey seed nor a .creds file",
                path.display()
            );
            options.nkey(seed.to_string())
        };
    }
    if let Some(ca) = &nats.ca {
        anyhow::ensure!(ca.is_file(), "NATS CA {} not found", ca.display());
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    } else if nats.url.split(',').any(|u| u.trim().starts_with("tls://")) {
        options = options.require_tls(true);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_names_every_server_and_a_bad_one_is_refused() {
        let addrs =
            server_addrs("tls://127.0.0.1:4222, tls://127.0.0.1:4223,tls://10.0.0.5:4222").unwrap();
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[1].port(), 4223);
        assert!(server_addrs("nats://127.0.0.1:4222,nats://host:notaport").is_err());
        assert!(server_addrs(" , ").is_err());
    }
}
