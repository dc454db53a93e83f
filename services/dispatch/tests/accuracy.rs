//! Live accuracy at the console and in the metrics, against a real nats-server and dispatch:
//! blue-list walk tests recorded by the technical team and scored against blue alerts (the miss
//! rate), and alerts rejected by operators per face compared (the false-alert rate).

use async_nats::jetstream;
use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_schemas::{
    streams, subjects, AuditAction, AuditEvent, BlueWalk, CandidateAlert, Message, Timestamp,
    WatchlistCategory,
};
use lfr_testkit::{eventually, metric, records, scrape, NatsServer};
use lfr_vault::MasterKey;
use lfr_watchlist::store::{LoadReport, Store};
use lfr_watchlist::time::format_utc;

mod support;

use support::{deployment, Person, PASSWORD, WAIT};

const SECOND: u64 = 1_000_000_000;

/// A dispatch service with a live deployment `match-day` over `gate-1`, and its accounts.
struct Setup {
    _nats: NatsServer,
    js: jetstream::Context,
    matcher: jetstream::Context,
    store: Store,
    dispatch: lfr_dispatch::Running,
    base: String,
    _shutdown: Shutdown,
}

async fn setup() -> Setup {
    let nats = NatsServer::start().await;
    let js = nats.admin().await;
    let matcher = nats.jetstream(lfr_testkit::Identity::Match).await;
    let shutdown = Shutdown::new();
    let config = support::config(&nats, MasterKey::generate());
    let dispatch = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let base = format!("http://{}", dispatch.console_addr);
    let store = Store::open(&js).await.unwrap();
    deployment(&store, "match-day", b"reference image").await;
    let accounts = Accounts::open(&js).await.unwrap();
    for (id, role) in [("op-1", Role::Operator), ("tech-1", Role::Supervisor)] {
        accounts
            .create(id, role, PASSWORD, vec!["match-day".into()])
            .await
            .unwrap();
    }
    Setup {
        _nats: nats,
        js,
        matcher,
        store,
        dispatch,
        base,
        _shutdown: shutdown,
    }
}

/// An alert as the matcher raises it (under its identity), its face seen on `gate-1` at `seen`.
async fn raise(
    matcher: &jetstream::Context,
    id: &str,
    category: WatchlistCategory,
    seen: Timestamp,
) {
    let mut alert: CandidateAlert = lfr_testkit::candidate_alert(id, "match-day", seen);
    alert.category = category;
    let subject = match category {
        WatchlistCategory::Blue => subjects::blue_alerts("match-day"),
        _ => subjects::alert_candidates("match-day"),
    };
    matcher
        .publish(subject, alert.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

impl Person {
    async fn walk(&self, fields: &[(&str, &str)]) -> u16 {
        let mut form = vec![
            ("csrf", self.csrf.as_str()),
            ("deployment", "match-day"),
            ("camera", "gate-1"),
        ];
        form.extend_from_slice(fields);
        self.post("/supervisor/walks", &form).await
    }

    /// Wait until the supervisor page shows `text`.
    async fn supervisor_shows(&self, text: &str) -> String {
        eventually(WAIT, || async {
            let (_, page) = self.get("/supervisor").await;
            page.contains(text).then_some(page)
        })
        .await
        .unwrap_or_else(|| panic!("the supervisor page shows {text}"))
    }
}

/// Wait until dispatch exports `name{deployment="match-day"}` equal to `value`.
async fn gauge_reaches(addr: std::net::SocketAddr, name: &str, value: f64) {
    let seen = eventually(WAIT, || async {
        let m = scrape(addr).await;
        let v = metric(&m, name, &[("deployment", "match-day")]);
        (v.is_some_and(|v| (v - value).abs() < 1e-9)).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{name} reaches {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_recorded_walks_nine_alerted_give_a_ten_percent_miss_rate() {
    let s = setup().await;
    let tech = Person::log_in(&s.base, "tech-1").await;
    // Ten walks, a minute apart, all over 2 minutes ago (their windows have passed).
    let first = Timestamp::now().0 / SECOND * SECOND - 20 * 60 * SECOND;
    let starts: Vec<Timestamp> = (0..10)
        .map(|i| Timestamp(first + i * 60 * SECOND))
        .collect();
    for (i, at) in starts.iter().enumerate() {
        let label = format!("volunteer {i}");
        let status = tech
            .walk(&[("label", &label), ("started_at", &format_utc(*at))])
            .await;
        assert_eq!(status, 303, "walk {i} recorded");
    }
    // Nine of them were seen, 20 s in; the last one was not.
    for (i, at) in starts.iter().take(9).enumerate() {
        raise(
            &s.matcher,
            &format!("b{i}"),
            WatchlistCategory::Blue,
            Timestamp(at.0 + 20 * SECOND),
        )
        .await;
    }
    // A blue alert outside every walk's window (3 minutes after the last walk) proves nothing.
    raise(
        &s.matcher,
        "late",
        WatchlistCategory::Blue,
        Timestamp(starts[9].0 + 180 * SECOND),
    )
    .await;
    let page = tech
        .supervisor_shows(
            "10 walks: 9 alerted, 1 missed, 0 waiting. Miss rate: <strong>10.0%</strong>",
        )
        .await;
    assert_eq!(page.matches("MISSED").count(), 1);
    assert!(page.contains("alerted after 20s (b0)"));
    assert!(
        page.contains(r#"<td class="miss-rate">10.0%</td>"#),
        "the accuracy table"
    );
    gauge_reaches(s.dispatch.metrics_addr, "lfr_blue_walk_miss_rate", 0.1).await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_blue_walks", 10.0).await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_blue_walk_misses", 1.0).await;

    // Each walk is on ALERTS, by the account that recorded it, and on AUDIT.
    let walks = records::<BlueWalk>(&s.js, streams::ALERTS, "lfr.alerts.*.walk").await;
    assert_eq!(walks.len(), 10);
    assert!(walks
        .iter()
        .all(|(_, w)| w.recorded_by == "tech-1" && w.camera == "gate-1"));
    let audit = records::<AuditEvent>(&s.js, streams::AUDIT, subjects::AUDIT_ALL).await;
    let recorded = audit
        .iter()
        .filter(|(_, e)| {
            e.action == AuditAction::Collection
                && e.actor == "tech-1"
                && e.object == "deployment/match-day"
                && e.justification.starts_with("blue-list walk test")
        })
        .count();
    assert_eq!(recorded, 10);

    // A walk naming someone who is not on the blue list (a watch-list subject) is refused, as
    // are a camera the deployment does not cover, no volunteer, and an operator recording one.
    assert_eq!(tech.walk(&[("reference", "CUST-0001")]).await, 400);
    assert_eq!(
        tech.post(
            "/supervisor/walks",
            &[
                ("csrf", &tech.csrf),
                ("deployment", "match-day"),
                ("camera", "gate-9"),
                ("label", "v")
            ],
        )
        .await,
        400
    );
    assert_eq!(tech.walk(&[]).await, 400);
    assert_eq!(
        tech.post(
            "/supervisor/walks",
            &[
                ("csrf", "forged"),
                ("deployment", "match-day"),
                ("camera", "gate-1"),
                ("label", "v")
            ],
        )
        .await,
        403,
        "without the session's CSRF token"
    );
    let operator = Person::log_in(&s.base, "op-1").await;
    assert_eq!(operator.walk(&[("label", "v")]).await, 403);
    let walks = records::<BlueWalk>(&s.js, streams::ALERTS, "lfr.alerts.*.walk").await;
    assert_eq!(walks.len(), 10, "nothing refused was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_rejected_by_operators_move_the_false_alert_rate() {
    let s = setup().await;
    // Two matcher replicas have compared 3,000 and 1,000 faces with the whole list.
    for (replica, compared) in [("m-1", 3_000), ("m-2", 1_000)] {
        s.store
            .report_load(
                "match-day",
                &LoadReport {
                    replica: replica.into(),
                    digest: "0".repeat(64),
                    entries: 1,
                    at: Timestamp::now(),
                    probes_compared: compared,
                },
            )
            .await
            .unwrap();
    }
    let now = Timestamp::now();
    for i in 0..4 {
        raise(&s.matcher, &format!("a{i}"), WatchlistCategory::Wanted, now).await;
    }
    // Blue alerts are staff, not false alerts.
    raise(&s.matcher, "b1", WatchlistCategory::Blue, now).await;
    let tech = Person::log_in(&s.base, "tech-1").await;
    tech.supervisor_shows(
        r#"<td class="compared">4,000</td><td>4</td><td class="rejected">0</td>"#,
    )
    .await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_false_alert_rate", 0.0).await;

    let operator = Person::log_in(&s.base, "op-1").await;
    for (id, decision) in [("a0", "reject"), ("a1", "reject"), ("a2", "confirm")] {
        let path = format!("/alerts/{id}/decision");
        let status = operator
            .post(&path, &[("csrf", &operator.csrf), ("decision", decision)])
            .await;
        assert_eq!(status, 303, "{id} {decision}");
    }
    // 2 rejected of 4,000 compared: 1 in 2,000; of 4 alerts: half.
    gauge_reaches(
        s.dispatch.metrics_addr,
        "lfr_false_alert_rate",
        2.0 / 4000.0,
    )
    .await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_false_alerts_per_alert", 0.5).await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_alerts_rejected", 2.0).await;
    gauge_reaches(s.dispatch.metrics_addr, "lfr_faces_compared", 4000.0).await;
    let page = tech
        .supervisor_shows(r#"<td class="rejected">2</td>"#)
        .await;
    assert!(page
        .contains(r#"<td class="per-alert">50.0%</td><td class="per-compared">1 in 2,000</td>"#));
}
