//! The ALERTS feed against a real nats-server, read as the console reads it (dispatch's own
//! least-privilege identity): alerts stored after the server was killed and started again still
//! reach the book. Before the feed's progress watchdog, its consumer's recovery waited for good
//! on requests that identity may not make, and the operator's queue silently stopped filling.

use lfr_alerts::feed::{self, FeedMetrics};
use lfr_alerts::Book;
use lfr_common::Shutdown;
use lfr_schemas::{subjects, Message, Timestamp};
use lfr_testkit::{candidate_alert, eventually, Identity, NatsServer};
use std::time::{Duration, Instant};

async fn raise(nats: &NatsServer, id: &str) {
    let subject = subjects::alert_candidates("d1");
    nats.author(&subject)
        .await
        .publish(
            subject,
            candidate_alert(id, "d1", Timestamp::now()).encode().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn alerts_stored_after_a_server_restart_reach_the_console_s_book() {
    let mut nats = NatsServer::start().await;
    let book = Book::default();
    let (caught_up, _) = tokio::sync::watch::channel(false);
    let shutdown = Shutdown::new();
    let feed = tokio::spawn(feed::run(
        nats.jetstream(Identity::Dispatch).await,
        book.clone(),
        FeedMetrics::new(&prometheus::Registry::new()).unwrap(),
        caught_up,
        shutdown.clone(),
    ));
    raise(&nats, "before").await;
    let folded = eventually(Duration::from_secs(10), || async {
        book.get("before").map(|_| ())
    })
    .await;
    assert!(folded.is_some(), "an alert reaches the book");

    nats.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart().await;
    // The memory streams went with the server: declared again, as the keeper does.
    nats.declare().await;
    let raised = Instant::now();
    raise(&nats, "after").await;
    let folded = eventually(Duration::from_secs(30), || async {
        book.get("after").map(|_| ())
    })
    .await;
    assert!(
        folded.is_some(),
        "an alert stored after the restart never reached the book"
    );
    eprintln!("folded {:?} after it was stored", raised.elapsed());
    assert!(book.get("before").is_some(), "the book keeps what it had");
    shutdown.trigger();
    feed.await.unwrap();
}
