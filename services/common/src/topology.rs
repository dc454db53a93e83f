//! The topology on a server: declared once by the administrator, checked by everyone else.
//!
//! [`declare`] creates or updates every stream, bucket and stage consumer of the contract
//! (`lfr_schemas::streams`); only the administrator identity may (`lfr bus init`, run by `lfr up`,
//! the Helm chart's hook Job and the compose stack). [`check`] is what a service does instead at
//! start and after losing a consumer: it asks the server for each stream and consumer its
//! identity uses and compares it with the contract, so a service never runs against a stream that
//! keeps frames on disk or an AUDIT that allows deletes, and never needs the right to fix one.

use async_nats::jetstream::{self, consumer, stream};
use lfr_schemas::permissions::{Grant, Identity};
use lfr_schemas::streams::{self, ConsumerSpec, Retention, Storage, StreamSpec, TopologyLimits};
use std::time::Duration;

/// Create or update every stream and bucket, then the stages' durable consumers. Idempotent.
pub async fn declare(js: &jetstream::Context, limits: &TopologyLimits) -> anyhow::Result<()> {
    for spec in streams::topology(limits) {
        js.create_or_update_stream(stream_config(&spec))
            .await
            .map_err(|e| anyhow::anyhow!("cannot declare stream {}: {e}", spec.name))?;
    }
    for c in streams::consumers() {
        let stream = js.get_stream(c.stream).await?;
        if let Err(e) = stream.create_consumer(consumer_config(&c)).await {
            // Some settings (a priority policy) cannot change in place. A stage consumer holds no
            // record, only positions in a transient stream, so it is replaced.
            tracing::warn!(stream = c.stream, consumer = c.durable, error = %e, "consumer cannot be updated; replacing it");
            stream.delete_consumer(c.durable).await.map_err(|e| {
                anyhow::anyhow!("cannot replace consumer {}/{}: {e}", c.stream, c.durable)
            })?;
            stream
                .create_consumer(consumer_config(&c))
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot declare consumer {}/{}: {e}", c.stream, c.durable)
                })?;
        }
    }
    Ok(())
}

/// Declare what is missing or differs, and say what that was (empty when all was in place).
/// What `lfr bus init --watch` repeats, so memory streams lost with a server come back.
pub async fn repair(
    js: &jetstream::Context,
    limits: &TopologyLimits,
) -> anyhow::Result<Vec<String>> {
    let problems = check(js, Identity::Admin, limits).await;
    if !problems.is_empty() {
        declare(js, limits).await?;
    }
    Ok(problems)
}

/// Everything `identity` uses that is missing or differs from the contract, one reason each.
pub async fn check(
    js: &jetstream::Context,
    identity: Identity,
    limits: &TopologyLimits,
) -> Vec<String> {
    let topology = streams::topology(limits);
    let mut problems = Vec::new();
    for name in streams_used(identity, &topology) {
        let Some(spec) = streams::spec(&topology, &name) else {
            continue;
        };
        match js.get_stream(&name).await {
            Ok(s) => problems.extend(
                differences(spec, &s.cached_info().config)
                    .into_iter()
                    .map(|d| format!("stream {name}: {d}")),
            ),
            Err(e) => problems.push(format!("stream {name}: {e}")),
        }
    }
    for c in consumers_used(identity) {
        let found = match js.get_stream_no_info(c.stream).await {
            Ok(s) => s.consumer_info(c.durable).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match found {
            Ok(info) => {
                let cfg = &info.config;
                let want = consumer_config(&c);
                if cfg.ack_wait != want.ack_wait
                    || cfg.max_ack_pending != want.max_ack_pending
                    || cfg.priority_policy != want.priority_policy
                    || cfg.priority_groups != want.priority_groups
                {
                    problems.push(format!(
                        "consumer {}/{} differs from the contract",
                        c.stream, c.durable
                    ));
                }
            }
            Err(e) => problems.push(format!("consumer {}/{}: {e}", c.stream, c.durable)),
        }
    }
    problems
}

/// The streams named in `identity`'s grants, in topology order (the administrator: all).
fn streams_used(identity: Identity, topology: &[StreamSpec]) -> Vec<String> {
    let grants = identity.grants();
    let uses = |name: &str| {
        grants.iter().any(|g| match g {
            Grant::Declare => true,
            Grant::Publish { stream, .. } | Grant::Consume(stream, _) | Grant::Inspect(stream) => {
                *stream == name
            }
            Grant::Read(stream) | Grant::Write { stream, .. } | Grant::Erase(stream) => {
                stream == name
            }
            Grant::Audit => name == streams::AUDIT,
            Grant::LoadtestCameras => name == streams::FRAMES,
            Grant::Serve(_) | Grant::Request(_) | Grant::Observe(_) => false,
        })
    };
    topology
        .iter()
        .filter(|s| uses(&s.name))
        .map(|s| s.name.clone())
        .collect()
}

fn consumers_used(identity: Identity) -> Vec<ConsumerSpec> {
    let grants = identity.grants();
    streams::consumers()
        .into_iter()
        .filter(|c| {
            grants.iter().any(|g| match g {
                Grant::Declare => true,
                Grant::Consume(stream, durable) => *stream == c.stream && *durable == c.durable,
                _ => false,
            })
        })
        .collect()
}

/// How a stream on the server differs from its spec, in words.
pub fn differences(spec: &StreamSpec, actual: &stream::Config) -> Vec<String> {
    let want = stream_config(spec);
    let mut out = Vec::new();
    let mut compare = |what: &str, have: String, expected: String| {
        if have != expected {
            out.push(format!("{what} is {have}, the contract says {expected}"));
        }
    };
    macro_rules! fields {
        ($($field:ident as $name:literal),* $(,)?) => {
            $(compare($name, format!("{:?}", actual.$field), format!("{:?}", want.$field));)*
        };
    }
    fields!(
        subjects as "subjects",
        storage as "storage",
        retention as "retention",
        max_age as "max_age",
        max_bytes as "max_bytes",
        allow_message_ttl as "allow_msg_ttl",
        deny_delete as "deny_delete",
        deny_purge as "deny_purge",
        num_replicas as "replicas",
    );
    // The server stores "unlimited" as -1 whether it was given as 0 or -1.
    let limit = |v: i64| {
        if v <= 0 {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    compare(
        "max_msgs_per_subject",
        limit(actual.max_messages_per_subject),
        limit(want.max_messages_per_subject),
    );
    out
}

/// The server-side configuration for one stream or bucket of the contract.
pub fn stream_config(spec: &StreamSpec) -> stream::Config {
    stream::Config {
        name: spec.name.clone(),
        description: Some(spec.description.to_string()),
        subjects: spec.subjects.clone(),
        storage: match spec.storage {
            Storage::Memory => stream::StorageType::Memory,
            Storage::File => stream::StorageType::File,
        },
        retention: match spec.retention {
            Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
            Retention::Limits => stream::RetentionPolicy::Limits,
        },
        discard: if spec.discard_new {
            stream::DiscardPolicy::New
        } else {
            stream::DiscardPolicy::Old
        },
        max_age: spec.max_age,
        max_bytes: spec.max_bytes,
        max_messages: spec.max_messages,
        max_messages_per_subject: spec.max_messages_per_subject,
        max_message_size: spec.max_message_size,
        allow_message_ttl: spec.allow_message_ttl,
        deny_delete: spec.deny_delete,
        deny_purge: spec.deny_purge,
        allow_rollup: spec.allow_rollup,
        allow_direct: spec.allow_direct,
        duplicate_window: spec.duplicate_window,
        num_replicas: spec.replicas,
        ..Default::default()
    }
}

/// The server-side configuration of a stage's durable consumer.
pub fn consumer_config(c: &ConsumerSpec) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(c.durable.to_string()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: c.ack_wait,
        max_ack_pending: c.max_ack_pending,
        ..match c.active_standby {
            Some(timeout) => consumer::pull::Config {
                priority_policy: consumer::PriorityPolicy::PinnedClient,
                priority_groups: vec![streams::STANDBY_GROUP.to_string()],
                priority_timeout: timeout,
                ..Default::default()
            },
            None => Default::default(),
        }
    }
}

/// How often a service waiting for the topology asks again.
pub const RECHECK: Duration = Duration::from_secs(2);
