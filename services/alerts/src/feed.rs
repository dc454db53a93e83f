//! Reading ALERTS into the [`Book`]: an ordered consumer from the first message, resumed after
//! the last folded one if the connection or the server goes away, so nothing is folded twice and
//! nothing is skipped.
//!
//! The console reports ready (`/readyz`) only once the book has caught up with what the stream
//! held at start: an operator never sees a queue with alerts missing because the replica had not
//! read them yet.
//!
//! A watchdog checks for progress every [`STALL_CHECK`]: when ALERTS holds messages past the last
//! folded one and none arrived since the previous check, the consumer is taken as stuck and
//! followed afresh from there. That happens after the whole NATS cluster restarts: the client's
//! own recovery of an ordered consumer asks for consumer information and deletions that a
//! least-privilege reader may not make, and would wait for them for good, silently: the
//! operator's queue would stop receiving alerts.

use crate::book::Book;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures::StreamExt;
use lfr_common::Shutdown;
use lfr_schemas::{streams, subjects};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use std::time::Duration;
use tokio::sync::watch;

/// What the feed counts, on the service's registry.
#[derive(Clone)]
pub struct FeedMetrics {
    folded: IntCounterVec,
    malformed: IntCounter,
}

impl FeedMetrics {
    pub fn new(registry: &Registry) -> anyhow::Result<FeedMetrics> {
        let m = FeedMetrics {
            folded: IntCounterVec::new(
                Opts::new(
                    "alerts_folded_total",
                    "Messages read from ALERTS, by kind (candidate, blue, decision, outcome, release, hold, lift, erased)",
                ),
                &["kind"],
            )?,
            malformed: IntCounter::new(
                "alerts_malformed_total",
                "Messages on ALERTS that could not be read (skipped)",
            )?,
        };
        registry.register(Box::new(m.folded.clone()))?;
        registry.register(Box::new(m.malformed.clone()))?;
        Ok(m)
    }
}

/// Fold ALERTS into `book` until shutdown; `caught_up` turns true once the backlog is read.
pub async fn run(
    js: jetstream::Context,
    book: Book,
    metrics: FeedMetrics,
    caught_up: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let mut next_seq = 1u64;
    loop {
        let read = follow(&js, &book, &metrics, &caught_up, &mut next_seq);
        tokio::select! {
            _ = shutdown.requested() => return,
            result = read => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, next_seq, "reading ALERTS interrupted; resuming");
                }
            }
        }
        tokio::select! {
            _ = shutdown.requested() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The book as ALERTS holds it now: read to the end once (for the command line).
pub async fn snapshot(js: &jetstream::Context) -> anyhow::Result<Book> {
    let book = Book::default();
    let metrics = FeedMetrics::new(&Registry::new())?;
    let (caught_up, mut caught_up_rx) = watch::channel(false);
    let mut next_seq = 1;
    tokio::select! {
        result = follow(js, &book, &metrics, &caught_up, &mut next_seq) => {
            result?;
        }
        _ = caught_up_rx.wait_for(|c| *c) => {}
        _ = tokio::time::sleep(Duration::from_secs(60)) => anyhow::bail!("reading ALERTS took over a minute"),
    }
    Ok(book)
}

/// How often the feed checks that it is still moving.
pub const STALL_CHECK: Duration = Duration::from_secs(5);

/// Follow the stream from `next_seq` until an error.
async fn follow(
    js: &jetstream::Context,
    book: &Book,
    metrics: &FeedMetrics,
    caught_up: &watch::Sender<bool>,
    next_seq: &mut u64,
) -> anyhow::Result<()> {
    let stream = js.get_stream(streams::ALERTS).await?;
    let last = stream.get_info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subjects::ALERTS_ALL.into(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *next_seq,
            },
            ..Default::default()
        })
        .await?;
    if last < *next_seq {
        let _ = caught_up.send(true);
    }
    let mut messages = consumer.messages().await?;
    let mut watchdog = tokio::time::interval(STALL_CHECK);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    watchdog.tick().await;
    let mut at_last_check = *next_seq;
    loop {
        let message = tokio::select! {
            message = messages.next() => match message {
                Some(message) => message?,
                None => break,
            },
            _ = watchdog.tick() => {
                if *next_seq == at_last_check {
                    let last = stream.get_info().await?.state.last_sequence;
                    anyhow::ensure!(
                        last < *next_seq,
                        "no message from ALERTS in {STALL_CHECK:?} though it holds up to {last}: the consumer is stuck"
                    );
                }
                at_last_check = *next_seq;
                continue;
            }
        };
        let seq = message
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence;
        let subject = message.subject.as_str();
        match book.fold(subject, seq, &message.payload) {
            Ok(()) => {
                let kind = subject.rsplit('.').next().unwrap_or_default();
                metrics.folded.with_label_values(&[kind]).inc();
            }
            Err(e) => {
                metrics.malformed.inc();
                tracing::warn!(seq, error = %e, "unreadable message on ALERTS skipped");
            }
        }
        *next_seq = seq + 1;
        if seq >= last {
            let _ = caught_up.send(true);
        }
    }
    anyhow::bail!("the ALERTS consumer ended")
}
