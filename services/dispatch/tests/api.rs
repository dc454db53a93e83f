//! The console's deployments API as the web console will use it, against a real nats-server, the
//! real models and real photos: token authentication, the DPIA's gates as 409s, a watch list
//! uploaded as a tar archive, hostile archives refused, the end's secure erasure, and an audit
//! event for every step that happened.

mod support;

use lfr_common::Shutdown;
use lfr_dispatch::auth::{Accounts, Role};
use lfr_testkit::{sample_photo, stream_messages, NatsServer};
use lfr_watchlist::deployment::Rank;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "correct-horse-battery-staple";

fn utc(offset: &str) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Console {
    base: String,
    http: reqwest::Client,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl Console {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&v).unwrap()),
            Body::Raw(content_type, bytes) => req.header("content-type", content_type).body(bytes),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{path}: {status} answered non-JSON {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(TOKEN), Body::None)
            .await
    }

    async fn post(&self, path: &str, body: Body) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(TOKEN), body)
            .await
    }

    async fn put_archive(
        &self,
        path: &str,
        content_type: &'static str,
        tar: Vec<u8>,
    ) -> (u16, Value) {
        self.call(
            reqwest::Method::PUT,
            path,
            Some(TOKEN),
            Body::Raw(content_type, tar),
        )
        .await
    }
}

fn tar_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

/// Obama and Biden with their manifest, under `prefix` (`""` or `"custody/"`).
fn watchlist_tar(prefix: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let manifest = "[[entry]]\nreference = \"CUST-A\"\ncategory = \"wanted\"\nimage = \"a.jpg\"\n\
                    [[entry]]\nreference = \"CUST-B\"\ncategory = \"blue\"\nimage = \"img/b.jpg\"\n";
    tar_file(
        &mut b,
        &format!("{prefix}manifest.toml"),
        manifest.as_bytes(),
    );
    let photo = |name: &str| std::fs::read(sample_photo(name)).unwrap();
    tar_file(&mut b, &format!("{prefix}a.jpg"), &photo("faces/obama.jpg"));
    tar_file(
        &mut b,
        &format!("{prefix}img/b.jpg"),
        &photo("faces/biden.jpg"),
    );
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar whose one entry is named `../evil` (written by hand: `tar::Builder` refuses such names).
fn evil_tar() -> Vec<u8> {
    let mut h = tar::Header::new_old();
    let name = b"../evil";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_api_takes_a_deployment_through_its_gates_with_a_token() {
    let nats = NatsServer::start().await;
    let mut config = lfr_dispatch::Config::default();
    config.common.nats = nats.nats_config(lfr_testkit::Identity::Dispatch);
    config.dispatch.http_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.console_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.api_token = Some(TOKEN.into());
    config.master_key = Some(lfr_vault::MasterKey::generate());
    let shutdown = Shutdown::new();
    let running = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let api = Console {
        base: format!("http://{}", running.console_addr),
        http: reqwest::Client::new(),
    };

    // No token, a wrong token, another scheme: 401, and nothing is read or changed.
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = api
            .call(reqwest::Method::GET, "/api/deployments", token, Body::None)
            .await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/api/deployments",
            Some("wrong"),
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(status, 401);

    // Create a draft; the same id twice is a conflict, nonsense is refused.
    let create = json!({
        "id": "match-day",
        "name": "Match day",
        "location": "North gate",
        "cameras": ["gate-1", "gate-2"],
        "start": utc("+1 hour"),
        "end": utc("+6 hours"),
        "purpose": "Locate wanted offenders",
    });
    let (status, body) = api
        .post("/api/deployments", Body::Json(create.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "Draft");
    // No threshold given: the embedder's calibrated 1-in-1,000 point.
    assert_eq!(
        body["default_threshold"]
            .as_f64()
            .map(|t| (t * 1000.0).round()),
        Some(678.0)
    );
    let (status, body) = api
        .post("/api/deployments", Body::Json(create.clone()))
        .await;
    assert_eq!(status, 409, "{body}");
    let mut bad = create.clone();
    bad["id"] = json!("other");
    bad["start"] = json!("tomorrow");
    let (status, body) = api.post("/api/deployments", Body::Json(bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("UTC"), "{body}");
    let mut bad = create.clone();
    bad["id"] = json!("other");
    bad["end"] = bad["start"].clone();
    let (status, body) = api.post("/api/deployments", Body::Json(bad)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .post(
            "/api/deployments",
            Body::Json(json!({ "padding": "x".repeat(100_000) })),
        )
        .await;
    assert_eq!(status, 413, "a JSON body is small: {body}");

    // Hostile or mislabelled archives never reach enrolment.
    let watchlist = "/api/deployments/match-day/watchlist";
    let (status, body) = api
        .put_archive(watchlist, "application/x-tar", evil_tar())
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("leaves the archive"),
        "{body}"
    );
    let (status, body) = api
        .put_archive(watchlist, "application/gzip", gzip(&evil_tar()))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .put_archive(watchlist, "image/jpeg", watchlist_tar(""))
        .await;
    assert_eq!(status, 415, "{body}");

    // A gzip of a folder, then a plain tar: both enrol both photos (well over the JSON limit).
    let (status, body) = api
        .put_archive(
            watchlist,
            "application/gzip",
            gzip(&watchlist_tar("custody/")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let first_digest = body["attached"]["digest"].as_str().unwrap().to_string();
    let (status, body) = api
        .put_archive(watchlist, "application/x-tar", watchlist_tar(""))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attached"]["entries"], 2, "{body}");
    assert_eq!(body["attached"]["subjects"], 2, "{body}");
    assert_eq!(body["refused"], json!([]), "{body}");
    let digest = body["attached"]["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    assert_eq!(digest, first_digest, "same images, same list");

    // The gates: 403 for who may not take a step, 409 naming the reason for a gate.
    // The shared token prepares; it never authorises, reviews or activates (no one person).
    for step in ["authorise", "activate"] {
        let (status, body) = api
            .post(&format!("/api/deployments/match-day/{step}"), Body::None)
            .await;
        assert_eq!(status, 403, "{step}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("shared API token"),
            "{body}"
        );
    }
    let (status, body) = api
        .post(
            "/api/deployments/match-day/review",
            Body::Json(json!({ "digest": digest })),
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // People do, each as their own account: a superintendent authorises, an inspector reviews.
    let js = nats.admin().await;
    let accounts = Accounts::open(&js).await.unwrap();
    for (id, rank) in [
        ("supt-17", Rank::Superintendent),
        ("insp-4", Rank::Inspector),
    ] {
        accounts
            .create(id, Role::Supervisor, support::PASSWORD, vec![])
            .await
            .unwrap();
        accounts.set_rank(id, Some(rank)).await.unwrap();
    }
    let superintendent = support::Person::log_in(&api.base, "supt-17").await;
    let inspector = support::Person::log_in(&api.base, "insp-4").await;
    let (status, body) = inspector
        .api_post("/api/deployments/match-day/authorise", None)
        .await;
    assert_eq!(
        status, 403,
        "an inspector is not of authorising rank: {body}"
    );
    let (status, body) = superintendent
        .api_post("/api/deployments/match-day/activate", None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not authorised"),
        "{body}"
    );
    let (status, body) = superintendent
        .api_post("/api/deployments/match-day/authorise", None)
        .await;
    assert_eq!(status, 409, "no governance record yet: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("governance"),
        "{body}"
    );
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/api/deployments/match-day/governance",
            Some(TOKEN),
            Body::Json(json!({
                "gold": "ACC Smith", "silver": "Supt Jones", "bronze": "Insp Patel",
                "objectives": "Locate wanted offenders", "intelligence_case": "INT/2026/0042",
                "signage": "Signs at every gate",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = superintendent
        .api_post("/api/deployments/match-day/authorise", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorisation"]["officer"], "supt-17");
    assert_eq!(body["authorisation"]["rank"], "superintendent");
    assert_eq!(body["authorisation"]["digest"], digest.as_str());
    let (status, body) = api
        .post("/api/deployments/match-day/activate", Body::None)
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = superintendent
        .api_post("/api/deployments/match-day/activate", None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not been reviewed"),
        "{body}"
    );
    let (status, body) = inspector
        .api_post(
            "/api/deployments/match-day/review",
            Some(json!({ "digest": "abc" })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("signed off list abc"),
        "{body}"
    );
    let (status, body) = inspector
        .api_post(
            "/api/deployments/match-day/review",
            Some(json!({ "digest": digest })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = inspector
        .api_post("/api/deployments/match-day/activate", None)
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, view) = api.get("/api/deployments/match-day").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["deployment"]["state"], "Active", "{view}");
    assert_eq!(view["deployment"]["watchlist"]["digest"], digest.as_str());
    assert_eq!(view["verification"]["status"], "unverified", "{view}");
    assert_eq!(view["load_reports"], json!([]));
    let (status, all) = api.get("/api/deployments").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let (status, body) = api
        .put_archive(watchlist, "application/x-tar", watchlist_tar(""))
        .await;
    assert_eq!(
        status, 409,
        "an active deployment's list cannot change: {body}"
    );

    // End: the list is erased, and the record says what went.
    let (status, wiped) = api.post("/api/deployments/match-day/end", Body::None).await;
    assert_eq!(status, 200, "{wiped}");
    assert!(wiped["messages_erased"].as_u64().unwrap() > 0, "{wiped}");
    assert_eq!(wiped["list_digest"], digest.as_str());
    let (_, view) = api.get("/api/deployments/match-day").await;
    assert_eq!(view["deployment"]["state"], "Ended", "{view}");
    let (status, _) = api.post("/api/deployments/match-day/end", Body::None).await;
    assert_eq!(status, 409, "an ended deployment cannot end again");

    // Unknown deployments, and ids that could never be one.
    for path in ["/api/deployments/nope", "/api/deployments/no.such.*"] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = superintendent
        .api_post("/api/deployments/nope/activate", None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api
        .put_archive(
            "/api/deployments/nope/watchlist",
            "application/x-tar",
            watchlist_tar(""),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // Exactly the steps that happened left an audit event: create, two enrolments, governance,
    // authorise, review, activate, end, and the two logins.
    assert_eq!(stream_messages(&js, "AUDIT").await, 10);

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), running.done)
        .await
        .expect("dispatch stops on shutdown")
        .unwrap();
    assert!(
        reqwest::get(format!("{}/api/deployments", api.base))
            .await
            .is_err(),
        "the console stopped with the service"
    );
}

#[tokio::test]
async fn without_a_configured_token_every_api_request_is_refused() {
    let nats = NatsServer::start().await;
    let mut config = lfr_dispatch::Config::default();
    config.common.nats = nats.nats_config(lfr_testkit::Identity::Dispatch);
    config.dispatch.http_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.console_addr = "127.0.0.1:0".parse().unwrap();
    assert!(config.dispatch.api_token.is_none(), "never defaulted");
    config.master_key = Some(lfr_vault::MasterKey::generate());
    let shutdown = Shutdown::new();
    let running = lfr_dispatch::start(config, shutdown.clone()).await.unwrap();
    let api = Console {
        base: format!("http://{}", running.console_addr),
        http: reqwest::Client::new(),
    };
    for token in [None, Some(""), Some("anything")] {
        let (status, _) = api
            .call(reqwest::Method::GET, "/api/deployments", token, Body::None)
            .await;
        assert_eq!(status, 401, "{token:?}");
    }

    // The router itself refuses a request that no authentication layer vouched for.
    let js = nats.admin().await;
    let lifecycle = lfr_watchlist::lifecycle::Lifecycle::open(&js, Default::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare = Console {
        base: format!("http://{}", listener.local_addr().unwrap()),
        http: reqwest::Client::new(),
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, lfr_watchlist::api::router(lifecycle))
            .await
            .unwrap()
    });
    let (status, body) = bare.get("/api/deployments").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = bare.post("/api/deployments/x/end", Body::None).await;
    assert_eq!(status, 401, "{body}");
    server.abort();

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), running.done)
        .await
        .unwrap()
        .unwrap();
}
