//! The console opens an alert's sealed images with the master key, in memory, for the response:
//! all three come from the alert itself (the watch-list image too, so it outlives the deployment's
//! list), an image moved from another alert or sealed under another deployment's key is never
//! served, and once the deployment's key is destroyed the images are gone (410). Without a master
//! key the service does not start.

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{
    subjects, CandidateAlert, FaceRef, FrameRef, Message, Sealed, Timestamp, WatchlistCategory,
};
use lfr_testkit::{eventually, sample_photo, NatsServer};
use lfr_vault::{AlertImage, MasterKey, Vault};
use std::time::Duration;

mod support;

use support::{Person, PASSWORD};

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(sample_photo(name)).unwrap()
}

async fn seal(
    vault: &Vault,
    deployment: &str,
    id: &str,
    image: AlertImage,
    bytes: &[u8],
) -> Sealed {
    vault
        .seal(deployment, &image.aad(deployment, id), bytes)
        .await
        .unwrap()
}

/// An alert of `deployment` with the given sealed images.
fn alert(id: &str, deployment: &str, images: [Sealed; 3]) -> CandidateAlert {
    let [probe_jpeg, context_jpeg, reference_jpeg] = images;
    CandidateAlert {
        alert_id: id.into(),
        deployment: deployment.into(),
        raised_at: Timestamp::now(),
        probe: FaceRef {
            frame: FrameRef {
                camera: "gate-1".into(),
                epoch: Timestamp(1),
                seq: 7,
                captured_at: Timestamp::now(),
            },
            index: 0,
        },
        category: WatchlistCategory::Wanted,
        entry_ref: "CUST-0001".into(),
        reference_image_sha256: "0".repeat(64),
        watchlist_digest: "0".repeat(64),
        score: 0.81,
        corroborating_frames: 2,
        track_frames: 3,
        probe_jpeg,
        context_jpeg,
        reference_jpeg,
    }
}

async fn raise(js: &jetstream::Context, alert: &CandidateAlert) {
    js.publish(
        subjects::alert_candidates(&alert.deployment),
        alert.encode().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// A supervisor's session fetches images.
impl Person {
    async fn image(&self, alert: &str, image: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}/alerts/{alert}/{image}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 200 {
            assert_eq!(r.headers()["content-type"], "image/jpeg");
        }
        (status, r.bytes().await.unwrap().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_sealed_images_until_their_key_is_destroyed() {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    // Alerts are raised as the matcher raises them, under its identity.
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let master = MasterKey::generate();
    let vault = Vault::open(&js, master.clone()).await.unwrap();
    let config = support::config(&nats, master);
    let shutdown = Shutdown::new();
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    Accounts::open(&js)
        .await
        .unwrap()
        .create("sup-1", Role::Supervisor, PASSWORD, vec![])
        .await
        .unwrap();
    let sup = Person::log_in(&format!("http://{}", dispatch.console_addr), "sup-1").await;

    let (face, context, reference) = (
        photo("faces/obama2.jpg"),
        photo("faces/obama3.jpg"),
        photo("faces/obama.jpg"),
    );
    let a1 = alert(
        "a1",
        "match-day",
        [
            seal(&vault, "match-day", "a1", AlertImage::Probe, &face).await,
            seal(&vault, "match-day", "a1", AlertImage::Context, &context).await,
            seal(&vault, "match-day", "a1", AlertImage::Reference, &reference).await,
        ],
    );
    // a2 carries a1's probe (moved), a context sealed under another deployment's key, and no
    // reference image (the matcher found none in the store).
    let a2 = alert(
        "a2",
        "match-day",
        [
            a1.probe_jpeg.clone(),
            seal(&vault, "other-day", "a2", AlertImage::Context, &context).await,
            seal(&vault, "match-day", "a2", AlertImage::Reference, b"").await,
        ],
    );
    raise(&matcher, &a1).await;
    raise(&matcher, &a2).await;

    let shown = eventually(Duration::from_secs(10), || async {
        (sup.image("a2", "reference.jpg").await.0 == 404
            && sup.image("a1", "probe.jpg").await.0 == 200)
            .then_some(())
    })
    .await;
    assert!(shown.is_some(), "the console never showed the alert");
    assert_eq!(sup.image("a1", "probe.jpg").await, (200, face));
    assert_eq!(sup.image("a1", "context.jpg").await, (200, context));
    // The watch-list image comes from the alert: no list was ever stored for this deployment.
    assert_eq!(sup.image("a1", "reference.jpg").await, (200, reference));
    assert_eq!(sup.image("a1", "other.jpg").await.0, 404);
    // Nothing that does not open as this alert's own image is served.
    assert_eq!(sup.image("a2", "probe.jpg").await.0, 500);
    assert_eq!(sup.image("a2", "context.jpg").await.0, 404);

    // Crypto-shredding: once the deployment's key is destroyed (by the purge service), the
    // console's cached key goes too, and the images are gone.
    let purge = lfr_vault::Shredder::open(&nats.jetstream(lfr_testkit::Identity::Purge).await)
        .await
        .unwrap();
    assert!(purge.destroy("match-day").await.unwrap());
    let gone = eventually(Duration::from_secs(10), || async {
        (sup.image("a1", "probe.jpg").await.0 == 410).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "an image was served after its key was destroyed"
    );
    for image in ["context.jpg", "reference.jpg"] {
        assert_eq!(sup.image("a1", image).await.0, 410);
    }

    shutdown.trigger();
    dispatch.done.await.unwrap();
}

#[tokio::test]
async fn dispatch_refuses_to_start_without_a_master_key() {
    if std::env::var_os("LFR_MASTER_KEY").is_some() {
        eprintln!("LFR_MASTER_KEY is set in this environment: nothing to test");
        return;
    }
    let mut config = lfr_dispatch::Config::default();
    config.common.nats.url = "nats://127.0.0.1:1".into();
    config.dispatch.http_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.console_addr = "127.0.0.1:0".parse().unwrap();
    let e = lfr_dispatch::start(config, Shutdown::new())
        .await
        .err()
        .expect("started without a master key");
    assert!(e.to_string().contains("LFR_MASTER_KEY is not set"), "{e}");
}
