//! The shared stage loop with a toy handler on a real nats-server: what every stage relies on
//! without any model in the way. A poison message is terminated and counted, a retry comes back,
//! a frame older than the latency budget is shed unprocessed and counted, and a shutdown returns.

use lfr_common::config::Common;
use lfr_common::stage::{self, HandleError, Handler, StageSpec};
use lfr_common::Shutdown;
use lfr_schemas::permissions::Identity;
use lfr_schemas::{streams, subjects, Frame, FrameRef, Message, Timestamp};
use lfr_testkit::{eventually, metric, scrape, NatsServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records the frames it handles; asks for frame 7 once more the first time it sees it.
#[derive(Clone, Default)]
struct Toy {
    handled: Arc<Mutex<Vec<u64>>>,
}

impl Handler for Toy {
    type Input = Frame;

    async fn handle(&self, frame: Frame) -> Result<(), HandleError> {
        let mut handled = self.handled.lock().unwrap();
        let again = frame.source.seq == 7 && !handled.contains(&7);
        handled.push(frame.source.seq);
        if again {
            return Err(HandleError::Retry(anyhow::anyhow!("the bus blinked")));
        }
        Ok(())
    }

    fn captured_at(frame: &Frame) -> Option<Timestamp> {
        Some(frame.source.captured_at)
    }
}

fn frame(seq: u64, age: Duration) -> Frame {
    Frame {
        source: FrameRef {
            camera: "gate-1".into(),
            epoch: Timestamp(1),
            seq,
            captured_at: Timestamp(Timestamp::now().0 - age.as_nanos() as u64),
        },
        width: 2,
        height: 2,
        jpeg: vec![0u8; 4].into(),
    }
}

#[tokio::test]
async fn poison_is_refused_retries_return_stale_frames_are_shed_and_shutdown_returns() {
    let nats = NatsServer::start().await;
    let mut common = Common {
        nats: nats.nats_config(Identity::Detect),
        ..Default::default()
    };
    common.bus.latency_budget = Duration::from_secs(2);
    let toy = Toy::default();
    let shutdown = Shutdown::new();
    let spec = StageSpec {
        name: "toy",
        stream: streams::FRAMES,
        durable: streams::consumers::DETECT,
        max_batch: 4,
        max_wait: Duration::from_millis(20),
        // As detect: past half the budget.
        shed_at: Some(0.5),
    };
    let handler = toy.clone();
    let running = stage::start_service(
        "detect",
        &common,
        "127.0.0.1:0".parse().unwrap(),
        spec,
        move |_| Ok(handler),
        shutdown.clone(),
    )
    .await
    .unwrap();

    let camera = nats.jetstream(Identity::Ingest).await;
    let subject = subjects::frames("gate-1");
    let fresh = Duration::from_millis(0);
    // Older than half the budget, not than the budget: shed by a stage that sheds at half.
    let stale = Duration::from_millis(1500);
    for (seq, age) in [(1, fresh), (2, stale), (7, fresh), (3, stale), (4, fresh)] {
        let ack = camera
            .publish(subject.clone(), frame(seq, age).encode().into())
            .await
            .unwrap();
        ack.await.unwrap();
    }
    let poison = camera
        .publish(subject.clone(), b"not a frame".to_vec().into())
        .await
        .unwrap();
    poison.await.unwrap();

    let addr = running.metrics_addr;
    let counted = eventually(Duration::from_secs(15), || async {
        let text = scrape(addr).await;
        let ok = metric(&text, "lfr_stage_messages_total", &[("outcome", "ok")])?;
        let shed = metric(&text, "lfr_stage_shed_total", &[("stage", "toy")])?;
        let rejected = metric(&text, "lfr_stage_rejected_total", &[("stage", "toy")])?;
        let retried = metric(&text, "lfr_stage_messages_total", &[("outcome", "retried")])?;
        (ok >= 3.0 && shed >= 2.0 && rejected >= 1.0).then_some((ok, shed, rejected, retried))
    })
    .await
    .expect("every message accounted for");
    assert_eq!(counted, (3.0, 2.0, 1.0, 1.0));
    let mut handled = toy.handled.lock().unwrap().clone();
    handled.sort();
    // The stale frames never reached the handler; frame 7 came back once after its retry.
    assert_eq!(handled, vec![1, 4, 7, 7]);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), running.done)
        .await
        .expect("the stage stops within 5 s of a shutdown")
        .unwrap();
}
