//! Coverage read from the real buckets, as ingest reads it (with ingest's own identity): what the
//! test kit's stand-in deployment writes is what the lifecycle writes, and changes are seen at
//! once.

use lfr_schemas::Timestamp;
use lfr_testkit::coverage::Window;
use lfr_testkit::{eventually, Identity, NatsServer};
use lfr_watchlist::coverage;
use lfr_watchlist::deployment::Phase;
use std::time::Duration;

const SEC: u64 = 1_000_000_000;

#[tokio::test]
async fn ingest_sees_a_deployment_open_and_close_its_cameras() {
    let nats = NatsServer::start().await;
    let shutdown = lfr_common::Shutdown::new();
    let view = coverage::watch(
        nats.jetstream(Identity::Ingest).await,
        Duration::from_secs(30),
        shutdown.clone(),
    );
    assert!(!view.covers("gate-1", Timestamp::now()), "nothing yet");

    let now = Timestamp::now();
    let window = Window {
        deployment: "d1".into(),
        cameras: vec!["gate-1".into()],
        starts_at: Timestamp(now.0 + 3 * SEC),
        ends_at: Timestamp(now.0 + 3600 * SEC),
        setup_window_secs: 2,
    };
    let _covered = nats.cover_window(window.clone()).await;
    let seen = eventually(Duration::from_secs(2), || {
        let view = view.clone();
        async move { view.phase("gate-1", Timestamp::now()) }
    })
    .await;
    assert_eq!(
        seen,
        Some(Phase::SetUp),
        "the set-up window opens 2 s early"
    );
    assert!(!view.covers("gate-2", Timestamp::now()));
    let live = eventually(Duration::from_secs(4), || {
        let view = view.clone();
        async move { (view.phase("gate-1", Timestamp::now()) == Some(Phase::Live)).then_some(()) }
    })
    .await;
    assert!(live.is_some(), "live at the start");
    assert_eq!(view.live_deployments(Timestamp::now()).len(), 1);

    let ended_at = std::time::Instant::now();
    nats.end_cover(&window).await;
    let closed = eventually(Duration::from_secs(2), || {
        let view = view.clone();
        async move { (!view.covers("gate-1", Timestamp::now())).then_some(()) }
    })
    .await;
    assert!(closed.is_some(), "an ended deployment covers nothing");
    println!("coverage closed {:?} after the end", ended_at.elapsed());
    shutdown.trigger();
}
