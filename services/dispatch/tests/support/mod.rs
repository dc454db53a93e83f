//! Shared set-up for the console's tests: a live deployment through every gate, and a person at
//! the console over plain HTTP (session cookie and CSRF token).

#![allow(dead_code)]

use lfr_schemas::{Timestamp, WatchlistCategory};
use lfr_watchlist::deployment::{Deployment, NewDeployment};
use lfr_watchlist::list::{sha256_hex, Entry, WatchList};
use lfr_watchlist::store::Store;
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery";

/// A dispatch service on `nats` as its own identity, on free loopback ports, over plain HTTP,
/// opening images with `master`.
pub fn config(
    nats: &lfr_testkit::NatsServer,
    master: lfr_vault::MasterKey,
) -> lfr_dispatch::Config {
    let mut config = lfr_dispatch::Config::default();
    config.common.nats = nats.nats_config(lfr_testkit::Identity::Dispatch);
    config.dispatch.http_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.console_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.auth.cookie_secure = false;
    config.master_key = Some(master);
    config
}
pub const WAIT: Duration = Duration::from_secs(20);

/// Deployment `id` over camera `gate-1`, live for an hour, its one-entry list showing
/// `reference_image`, through every gate (authorised, reviewed, active).
pub async fn deployment(store: &Store, id: &str, reference_image: &[u8]) {
    let now = Timestamp::now();
    let d = Deployment::create(NewDeployment {
        id: id.into(),
        name: "Match day".into(),
        location: "North gate".into(),
        cameras: vec!["gate-1".into()],
        starts_at: now,
        ends_at: Timestamp(now.0 + 3_600_000_000_000),
        purpose: "Locate wanted offenders".into(),
        default_threshold: 0.6,
        thresholds: Default::default(),
        setup_window_secs: 0,
        governance: Some(lfr_testkit::deployments::governance()),
        threshold_override: None,
    })
    .unwrap();
    store.create(&d).await.unwrap();
    let sha = sha256_hex(reference_image);
    let list = WatchList::new(
        id,
        "mobilefacenet",
        vec![Entry {
            reference: "CUST-0001".into(),
            category: WatchlistCategory::Wanted,
            note: String::new(),
            image_sha256: sha.clone(),
            template: vec![1.0, 0.0],
        }],
    );
    let attached = store
        .put_watchlist(&list, &[(sha, reference_image.to_vec())])
        .await
        .unwrap();
    // Through every gate: officers see alerts of a live deployment only.
    store
        .update(id, |d| {
            d.attach(attached.clone())?;
            d.authorise(
                "supt-1",
                lfr_watchlist::deployment::Rank::Superintendent,
                now,
            )?;
            d.review("insp-1", &attached.digest, now)?;
            d.activate(now)
        })
        .await
        .unwrap();
}

/// A person at the console over plain HTTP: their session cookie and CSRF token.
pub struct Person {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Person {
    pub async fn log_in(base: &str, account: &str) -> Person {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = http
            .post(format!("{base}/login"))
            .form(&[("account", account), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303, "{account} logs in");
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let home = login.headers()["location"].to_str().unwrap().to_string();
        let page = http
            .get(format!("{base}{home}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
        let csrf = page[at..at + 64].to_string();
        Person {
            http,
            base: base.into(),
            cookie,
            csrf,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `POST` JSON (or nothing) to the deployments API as this person; the status and the answer.
    pub async fn api_post(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(fields)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
