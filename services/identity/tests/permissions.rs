//! The permission matrix as the server enforces it: a real nats-server running the generated
//! configuration (TLS, one nkey user per identity, store encrypted), and for every identity what
//! it must do working and what it must not do refused by the server, with the server's own
//! permission-violation error as proof.

use async_nats::jetstream;
use futures::StreamExt;
use lfr_schemas::streams;
use lfr_testkit::{Identity, NatsServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something a component could try on the bus.
#[derive(Debug, Clone)]
enum Try {
    /// A JetStream publish, acknowledged.
    Publish(&'static str),
    /// Put a key into a bucket.
    Put(&'static str, &'static str),
    /// Read a key of a bucket.
    Get(&'static str, &'static str),
    /// Delete a key of a bucket (a delete marker).
    Delete(&'static str, &'static str),
    /// Replay a stream through an ordered consumer.
    Replay(&'static str),
    /// Pull from a stage's durable consumer.
    Pull(&'static str, &'static str),
    /// Create a consumer of one's own on a stream.
    NewConsumer(&'static str),
    /// Delete a whole stream.
    DeleteStream(&'static str),
    /// Purge a stream.
    PurgeStream(&'static str),
    /// Delete one message of a stream.
    DeleteMessage(&'static str),
    /// Watch a subject live.
    Subscribe(&'static str),
    /// Send a request (a core publish: no stream holds it).
    Ask(&'static str),
}

use Identity::*;
use Try::*;

/// (who, what, must it work)
fn cases() -> Vec<(Identity, Try, bool)> {
    vec![
        // What each must do.
        (Ingest, Publish("lfr.frames.gate-1"), true),
        (Detect, Pull("FRAMES", "detect"), true),
        (Detect, Publish("lfr.faces.gate-1"), true),
        (Embed, Pull("FACES", "embed"), true),
        (Embed, Publish("lfr.embeddings.gate-1"), true),
        (Match, Pull("EMBEDDINGS", "match"), true),
        (Match, Publish("lfr.alerts.day-1.candidate"), true),
        (Match, Publish("lfr.alerts.day-1.blue"), true),
        (Match, Replay("WATCHLISTS"), true),
        (Match, Get("lfr-deployments", "day-1"), true),
        (Match, Put("lfr-watchlist-loads", "day-1.replica-a"), true),
        (Match, Put("lfr-keys", "day-1"), true),
        (Dispatch, Publish("lfr.alerts.day-1.decision"), true),
        (Dispatch, Publish("lfr.alerts.day-1.outcome"), true),
        (Dispatch, Replay("ALERTS"), true),
        (Dispatch, Put("lfr-sessions", "abc"), true),
        (Dispatch, Put("lfr-accounts", "op-1"), true),
        (Dispatch, Get("lfr-keys", "day-1"), true),
        (Dispatch, Replay("AUDIT"), true),
        (Purge, Publish("lfr.alerts.day-1.erased"), true),
        (Purge, Replay("ALERTS"), true),
        (Purge, DeleteMessage("ALERTS"), true),
        (Purge, Replay("AUDIT"), true),
        (Admin, Publish("lfr.alerts.day-1.release"), true),
        (Admin, Publish("lfr.alerts.day-1.hold"), true),
        (Admin, Publish("lfr.alerts.day-1.lift"), true),
        (Admin, Put("lfr-access-requests", "SAR-1"), true),
        // Gated capture: the stages read which cameras a live deployment covers.
        (Ingest, Get("lfr-deployments", "day-1"), true),
        (Ingest, Get("lfr-watchlist-loads", "day-1.replica"), true),
        (Embed, Get("lfr-deployments", "day-1"), true),
        (Admin, Put("lfr-deployments", "day-2"), true),
        (Admin, Replay("AUDIT"), true),
        // Signed audit anchors: the verifier writes them, the administrator reads them.
        (Purge, Put("lfr-audit-anchors", "latest"), true),
        (Admin, Get("lfr-audit-anchors", "head"), true),
        (Loadtest, Publish("lfr.frames.loadtest-01"), true),
        (Loadtest, Subscribe("lfr.faces.loadtest-01"), true),
        // Context crops: detect answers, the matcher asks, nobody else does either.
        (Detect, Subscribe("lfr.context.replica-a"), true),
        (Match, Ask("lfr.context.replica-a"), true),
        // A faulty or compromised detect.
        (Detect, Publish("lfr.alerts.day-1.decision"), false),
        (Detect, Publish("lfr.alerts.day-1.release"), false),
        (Detect, Publish("lfr.alerts.day-1.erased"), false),
        (Detect, Publish("lfr.alerts.day-1.candidate"), false),
        (Detect, Put("lfr-sessions", "forged"), false),
        (Detect, Put("lfr-deployments", "day-1"), false),
        (Detect, Put("lfr-watchlist-loads", "day-1.fake"), false),
        (Detect, Replay("WATCHLISTS"), false),
        (Detect, Get("lfr-keys", "day-1"), false),
        (Detect, Delete("lfr-keys", "day-1"), false),
        (Detect, Get("lfr-accounts", "op-1"), false),
        (Detect, DeleteStream("AUDIT"), false),
        (Detect, Subscribe("_INBOX_dispatch.>"), false),
        (Detect, Pull("EMBEDDINGS", "match"), false),
        (Detect, Publish("lfr.alerts.day-1.lift"), false),
        (Detect, Ask("lfr.context.replica-b"), false),
        // The other stages and services.
        (Ingest, Put("lfr-deployments", "day-7"), false),
        (Ingest, Put("lfr-watchlist-loads", "day-1.fake"), false),
        (Ingest, Replay("WATCHLISTS"), false),
        (Ingest, Get("lfr-keys", "day-1"), false),
        (Dispatch, Publish("lfr.alerts.day-1.hold"), false),
        (Dispatch, Publish("lfr.alerts.day-1.lift"), false),
        (Dispatch, Get("lfr-access-requests", "SAR-1"), false),
        (Match, Get("lfr-access-requests", "SAR-1"), false),
        (Purge, Publish("lfr.alerts.day-1.lift"), false),
        (Ingest, Subscribe("lfr.frames.>"), false),
        (Ingest, Replay("FRAMES"), false),
        (Embed, Replay("ALERTS"), false),
        (Embed, Publish("lfr.frames.gate-1"), false),
        (Embed, Ask("lfr.context.replica-a"), false),
        (Ingest, Ask("lfr.context.replica-a"), false),
        (Dispatch, Ask("lfr.context.replica-a"), false),
        (Match, Subscribe("lfr.context.replica-c"), false),
        (Loadtest, Ask("lfr.context.replica-a"), false),
        (Match, Publish("lfr.alerts.day-1.decision"), false),
        (Match, Put("lfr-sessions", "forged"), false),
        (Match, Replay("ALERTS"), false),
        (Dispatch, Pull("FRAMES", "detect"), false),
        (Dispatch, NewConsumer("FRAMES"), false),
        (Dispatch, Publish("lfr.alerts.day-1.candidate"), false),
        (Dispatch, Publish("lfr.alerts.day-1.release"), false),
        (Dispatch, DeleteStream("ALERTS"), false),
        (Purge, Publish("lfr.alerts.day-1.candidate"), false),
        (Purge, Publish("lfr.alerts.day-1.decision"), false),
        (Purge, Put("lfr-sessions", "forged"), false),
        (Purge, Pull("FACES", "embed"), false),
        // The administrator declares, but cannot erase the record or read live faces.
        (Admin, DeleteStream("AUDIT"), false),
        (Admin, PurgeStream("AUDIT"), false),
        (Admin, DeleteMessage("AUDIT"), false),
        (Admin, Pull("FRAMES", "detect"), false),
        (Admin, NewConsumer("FACES"), false),
        (Admin, Subscribe("lfr.faces.>"), false),
        (Admin, Publish("lfr.alerts.day-1.decision"), false),
        (Admin, Publish("lfr.alerts.day-1.candidate"), false),
        // Nobody but the verifier may write an anchor, and nobody may remove one.
        (Admin, Put("lfr-audit-anchors", "latest"), false),
        (Admin, Delete("lfr-audit-anchors", "latest"), false),
        (Admin, PurgeStream("KV_lfr-audit-anchors"), false),
        (Admin, DeleteMessage("KV_lfr-audit-anchors"), false),
        (Admin, DeleteStream("KV_lfr-audit-anchors"), false),
        (Dispatch, Put("lfr-audit-anchors", "latest"), false),
        (Dispatch, Get("lfr-audit-anchors", "latest"), false),
        (Match, Put("lfr-audit-anchors", "latest"), false),
        (Purge, PurgeStream("KV_lfr-audit-anchors"), false),
        (Purge, DeleteMessage("KV_lfr-audit-anchors"), false),
        (Purge, DeleteStream("KV_lfr-audit-anchors"), false),
        // The load test, outside its own cameras and deployments.
        (Loadtest, Publish("lfr.frames.gate-1"), false),
        (Loadtest, Subscribe("lfr.faces.gate-1"), false),
        (Loadtest, Subscribe("lfr.alerts.day-1.candidate"), false),
        (Loadtest, Replay("ALERTS"), false),
        (Loadtest, Publish("lfr.alerts.day-1.decision"), false),
    ]
}

/// A client of `identity` that keeps the server's errors (permission violations).
async fn connect(nats: &NatsServer, identity: Identity) -> (async_nats::Client, Errors) {
    let errors: Errors = Arc::default();
    let seen = errors.clone();
    let options = lfr_common::bus::connect_options(&nats.nats_config(identity), identity)
        .await
        .unwrap()
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().unwrap().push(e.to_string());
                }
            }
        });
    (options.connect(nats.url()).await.unwrap(), errors)
}

type Errors = Arc<Mutex<Vec<String>>>;

/// Do `attempt`; `Ok` if the server let it happen.
async fn attempt(client: &async_nats::Client, what: &Try) -> Result<(), String> {
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(1500))
        .build(client.clone());
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match what {
        Publish(subject) => {
            let ack = js
                .publish(*subject, "probe".into())
                .await
                .map_err(|x| e(&x))?;
            ack.await.map(|_| ()).map_err(|x| e(&x))
        }
        Put(bucket, key) => {
            let kv = js.get_key_value(*bucket).await.map_err(|x| e(&x))?;
            kv.put(*key, "probe".into())
                .await
                .map(|_| ())
                .map_err(|x| e(&x))
        }
        Get(bucket, key) => {
            let kv = js.get_key_value(*bucket).await.map_err(|x| e(&x))?;
            kv.get(*key).await.map(|_| ()).map_err(|x| e(&x))
        }
        Delete(bucket, key) => {
            let kv = js.get_key_value(*bucket).await.map_err(|x| e(&x))?;
            kv.delete(*key).await.map_err(|x| e(&x))
        }
        Replay(stream) => {
            let s = js.get_stream(*stream).await.map_err(|x| e(&x))?;
            let consumer = s
                .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
                .await
                .map_err(|x| e(&x))?;
            let mut messages = consumer.messages().await.map_err(|x| e(&x))?;
            match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
                Ok(Some(Ok(_))) => Ok(()),
                Ok(Some(Err(x))) => Err(e(&x)),
                Ok(None) | Err(_) => Err("no message replayed".into()),
            }
        }
        Pull(stream, durable) => {
            let s = js.get_stream_no_info(*stream).await.map_err(|x| e(&x))?;
            let consumer: jetstream::consumer::PullConsumer =
                s.get_consumer(durable).await.map_err(|x| e(&x))?;
            // An active/standby consumer (match) is pulled only as a pinned client of its group.
            if consumer.cached_info().config.priority_policy
                == jetstream::consumer::PriorityPolicy::PinnedClient
            {
                let mut pulled = consumer
                    .stream()
                    .group(lfr_schemas::streams::STANDBY_GROUP)
                    .max_messages_per_batch(1)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .map_err(|x| e(&x))?;
                return match tokio::time::timeout(Duration::from_secs(1), pulled.next()).await {
                    Ok(Some(Err(x))) => Err(e(&x)),
                    _ => Ok(()),
                };
            }
            let mut batch = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(|x| e(&x))?;
            match batch.next().await {
                Some(Err(x)) => Err(e(&x)),
                _ => Ok(()),
            }
        }
        NewConsumer(stream) => {
            let s = js.get_stream_no_info(*stream).await.map_err(|x| e(&x))?;
            s.create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("spy".into()),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|x| e(&x))
        }
        DeleteStream(stream) => js
            .delete_stream(*stream)
            .await
            .map(|_| ())
            .map_err(|x| e(&x)),
        PurgeStream(stream) => {
            let s = js.get_stream_no_info(*stream).await.map_err(|x| e(&x))?;
            s.purge().await.map(|_| ()).map_err(|x| e(&x))
        }
        DeleteMessage(stream) => {
            let s = js.get_stream_no_info(*stream).await.map_err(|x| e(&x))?;
            s.delete_message(1).await.map(|_| ()).map_err(|x| e(&x))
        }
        Ask(subject) => {
            client
                .publish(*subject, "probe".into())
                .await
                .map_err(|x| e(&x))?;
            client.flush().await.map_err(|x| e(&x))?;
            // A refused publish is answered by an asynchronous error.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }
        Subscribe(subject) => {
            let _sub = client.subscribe(*subject).await.map_err(|x| e(&x))?;
            client.flush().await.map_err(|x| e(&x))?;
            // A refused subscription is answered by an asynchronous error.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }
    }
}

/// Something in each stream and bucket, so replays and gets have something to find.
async fn seed(nats: &NatsServer) {
    let admin = nats.admin().await;
    for (subject, payload) in [
        // The administrator may release holds: its one way onto ALERTS.
        ("lfr.alerts.day-1.release", "alert"),
        ("lfr.audit.system", "event"),
        ("lfr.watchlist.day-1.list", "list"),
    ] {
        let ack = admin.publish(subject, payload.into()).await.unwrap().await;
        ack.unwrap_or_else(|e| panic!("seeding {subject}: {e}"));
    }
    // The purge service's deletion needs a message 1 on ALERTS: the one above.
    for (bucket, key) in [("lfr-deployments", "day-1"), ("lfr-accounts", "op-1")] {
        let kv = admin.get_key_value(bucket).await.unwrap();
        kv.put(key, "{}".into()).await.unwrap();
    }
}

#[tokio::test]
async fn every_identity_may_do_its_job_and_nothing_more() {
    let nats = NatsServer::start().await;
    seed(&nats).await;
    let mut clients = std::collections::HashMap::new();
    for identity in Identity::ALL {
        clients.insert(identity, connect(&nats, identity).await);
    }
    let results = futures::future::join_all(cases().into_iter().map(|(who, what, must)| {
        let (client, errors) = clients[&who].clone();
        async move {
            let result = attempt(&client, &what).await;
            (who, what, must, result, errors)
        }
    }))
    .await;
    // Server errors arrive asynchronously: give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut failures = Vec::new();
    for (who, what, must, result, errors) in results {
        let violations = errors.lock().unwrap().clone();
        let refused_by_server = violations.iter().any(|v| {
            v.contains("Permissions Violation")
                && refused_subjects(&what)
                    .iter()
                    .any(|s| v.contains(&format!("\"{s}\"")))
        });
        // Refusals are judged by the server's own violation error: a refused subscription or
        // pull request is simply never answered.
        match (must, &result) {
            (true, Ok(())) if refused_by_server => {
                failures.push(format!("{who:?} must {what:?}: refused ({violations:?})"))
            }
            (true, Ok(())) => {}
            (true, Err(e)) => failures.push(format!("{who:?} must {what:?}: {e}")),
            (false, _) if !refused_by_server => failures.push(format!(
                "{who:?} must not {what:?}: no permission violation from the server ({result:?})"
            )),
            (false, _) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // And the record is intact.
    let admin = nats.admin().await;
    let mut audit = admin.get_stream(streams::AUDIT).await.unwrap();
    assert_eq!(audit.info().await.unwrap().state.messages, 1);

    // Nor can the administrator (or the topology keeper) weaken AUDIT so as to trim it later:
    // the server refuses to lift deny_delete or deny_purge once set.
    for identity in [Identity::Admin, Identity::Bus] {
        let js = nats.jetstream(identity).await;
        let spec = streams::topology(&Default::default())
            .into_iter()
            .find(|s| s.name == streams::AUDIT)
            .unwrap();
        for weaker in [
            streams::StreamSpec {
                deny_delete: false,
                ..spec.clone()
            },
            streams::StreamSpec {
                deny_purge: false,
                ..spec.clone()
            },
        ] {
            let refused = js
                .update_stream(lfr_common::topology::stream_config(&weaker))
                .await;
            assert!(refused.is_err(), "{identity:?} weakened AUDIT");
        }
    }
    let info = audit.info().await.unwrap();
    assert!(info.config.deny_delete && info.config.deny_purge);
}

/// The subjects whose refusal by the server stops an attempt (the first step that is refused).
fn refused_subjects(what: &Try) -> Vec<String> {
    match what {
        Publish(s) | Subscribe(s) | Ask(s) => vec![s.to_string()],
        Put(b, k) | Get(b, k) | Delete(b, k) => vec![
            format!("$JS.API.STREAM.INFO.KV_{b}"),
            format!("$KV.{b}.{k}"),
            format!("$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.{k}"),
        ],
        Replay(s) => vec![
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}"),
        ],
        NewConsumer(s) => vec![format!("$JS.API.CONSUMER.CREATE.{s}.spy")],
        Pull(s, d) => vec![
            format!("$JS.API.CONSUMER.INFO.{s}.{d}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{d}"),
        ],
        DeleteStream(s) => vec![format!("$JS.API.STREAM.DELETE.{s}")],
        PurgeStream(s) => vec![format!("$JS.API.STREAM.PURGE.{s}")],
        DeleteMessage(s) => vec![format!("$JS.API.STREAM.MSG.DELETE.{s}")],
    }
}

#[tokio::test]
async fn without_credentials_or_tls_nothing_connects() {
    let nats = NatsServer::start().await;
    // No credentials: refused.
    let mut config = nats.nats_config(Identity::Detect);
    config.credentials = None;
    let anonymous = lfr_common::bus::connect_options(&config, Identity::Detect)
        .await
        .unwrap()
        .connect(nats.url())
        .await;
    assert!(anonymous.is_err(), "an anonymous client connected");
    // Plain text to a TLS server: refused.
    let plain = nats.url().replace("tls://", "nats://");
    let mut config = nats.nats_config(Identity::Detect);
    config.ca = None;
    config.url = plain.clone();
    let cleartext = lfr_common::bus::connect_options(&config, Identity::Detect)
        .await
        .unwrap()
        .connect(plain)
        .await;
    assert!(cleartext.is_err(), "a client connected without TLS");
    // Someone else's seed does not make you them: a forged seed is refused.
    let forged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(forged.path(), nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let mut config = nats.nats_config(Identity::Detect);
    config.credentials = Some(forged.path().to_path_buf());
    let stranger = lfr_common::bus::connect_options(&config, Identity::Detect)
        .await
        .unwrap()
        .connect(nats.url())
        .await;
    assert!(stranger.is_err(), "an unknown nkey connected");
}
