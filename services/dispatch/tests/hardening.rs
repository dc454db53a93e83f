//! The console's login and sessions under attack and under change, against a real nats-server
//! (and, for live streams and cookies, the real dispatch service):
//!
//! - a burst of wrong passwords runs no more argon2 checks than the throttle's limit, and argon2
//!   runs in a bounded pool whose overflow is refused at once;
//! - hammering an account leaves a bounded number of audit events;
//! - a guesser elsewhere cannot lock an operator out, and one address cannot try many accounts;
//! - a new password ends the account's sessions; logout, disabling and de-assignment end open
//!   live streams within seconds;
//! - over HTTPS the session cookie has the `__Host-` prefix and answers carry HSTS, and dispatch
//!   refuses to serve plain HTTP on a network address.

use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use futures::future::join_all;
use lfr_common::Shutdown;
use lfr_dispatch::auth::{self, AccountError, Accounts, Auth, AuthConfig, CurrentSession, Role};
use lfr_schemas::{AuditAction, AuditEvent};
use lfr_testkit::{Identity, NatsServer};
use reqwest::header::{HeaderMap, ACCEPT, COOKIE, RETRY_AFTER, SET_COOKIE};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
const WRONG: &str = "not the password at all";

// ---------------------------------------------------------------------------------------------
// Login against the auth module alone (as tests/auth.rs does).

struct Login {
    base: String,
    http: reqwest::Client,
    auth: Auth,
    registry: prometheus::Registry,
    js: async_nats::jetstream::Context,
}

async fn operator_page(session: CurrentSession) -> Response {
    Html(format!(
        "account={} {}",
        session.account,
        auth::csrf_field(&session)
    ))
    .into_response()
}

async fn login_console(nats: &NatsServer, config: AuthConfig) -> Login {
    let common = lfr_common::config::Common {
        nats: nats.nats_config(Identity::Dispatch),
        ..Default::default()
    };
    let registry = lfr_common::telemetry::registry("dispatch");
    // Connected as the dispatch service is.
    let bus = lfr_common::bus::Bus::connect(&common, "dispatch", &registry)
        .await
        .unwrap();
    let auth = Auth::new(&bus.jetstream, config, &registry).await.unwrap();
    let pages =
        Router::new()
            .route("/operator", get(operator_page))
            .layer(middleware::from_fn_with_state(
                auth.clone(),
                auth::require_session,
            ));
    let app = auth::router(auth.clone()).merge(pages);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    Login {
        base,
        http: client(),
        auth,
        registry,
        js: nats.admin().await,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Plain HTTP on the loopback, client addresses from `X-Forwarded-For`.
fn proxied() -> AuthConfig {
    AuthConfig {
        cookie_secure: false,
        client_ip_header: Some("x-forwarded-for".into()),
        ..Default::default()
    }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
    took: Duration,
}

impl Answer {
    /// The session's Set-Cookie line (either name), if any.
    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("lfr_session=") || c.starts_with("__Host-lfr_session="))
    }

    /// The cookie to send back: `<name>=<token>`.
    fn cookie(&self) -> String {
        let line = self.set_cookie().expect("a session cookie");
        line.split(';').next().unwrap().to_string()
    }

    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a CSRF field")
            + 19;
        self.body[at..at + 64].to_string()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    Answer {
        status,
        headers,
        body,
        took: started.elapsed(),
    }
}

async fn post_login(
    http: &reqwest::Client,
    base: &str,
    account: &str,
    password: &str,
    from: Option<&str>,
) -> Answer {
    let mut req = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(lfr_testkit::form(&[
            ("account", account),
            ("password", password),
        ]));
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    send(req).await
}

async fn open_page(http: &reqwest::Client, base: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = http.get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    send(req.header(ACCEPT, "text/html")).await
}

impl Login {
    async fn login(&self, account: &str, password: &str, from: Option<&str>) -> Answer {
        post_login(&self.http, &self.base, account, password, from).await
    }

    /// `n` logins for `account` with `password`, all at once.
    async fn burst(&self, n: usize, account: &str, password: &str, from: Option<&str>) -> Vec<u16> {
        join_all((0..n).map(|_| self.login(account, password, from)))
            .await
            .into_iter()
            .map(|a| a.status)
            .collect()
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        lfr_testkit::metric(&text, name, labels)
    }

    fn logins(&self, result: &str) -> f64 {
        self.metric("lfr_dispatch_logins_total", &[("result", result)])
            .unwrap_or(0.0)
    }

    async fn login_events(&self) -> Vec<AuditEvent> {
        lfr_testkit::records(&self.js, "AUDIT", "lfr.audit.system")
            .await
            .into_iter()
            .map(|(_, e): (_, AuditEvent)| e)
            .filter(|e| e.action == AuditAction::Login)
            .collect()
    }

    async fn create(&self, id: &str, role: Role, deployments: &[&str]) {
        self.auth
            .accounts
            .create(
                id,
                role,
                PASSWORD,
                deployments.iter().map(|d| d.to_string()).collect(),
            )
            .await
            .unwrap();
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_runs_no_more_password_checks_than_the_limit() {
    let nats = NatsServer::start().await;
    let c = login_console(
        &nats,
        AuthConfig {
            cookie_secure: false,
            ..Default::default()
        },
    )
    .await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let limit = c.auth.config().max_failed_logins as usize;

    let statuses = c.burst(200, "op-1", WRONG, None).await;
    let checked = count(&statuses, 401);
    assert!(
        (1..=limit).contains(&checked),
        "{checked} wrong passwords checked: {statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 200 - checked, "{statuses:?}");
    let checks = c
        .metric("lfr_dispatch_password_checks_total", &[])
        .expect("password checks are counted");
    assert_eq!(
        checks as usize, checked,
        "one argon2 check per 401, none for a 429"
    );
    assert!(checks as usize <= limit);
    assert_eq!(c.logins("throttled") as usize, 200 - checked);
    assert!(c.auth.checks.peak() <= c.auth.checks.concurrent());

    // And the account is now locked from here: the right password is refused unchecked.
    assert_eq!(c.login("op-1", PASSWORD, None).await.status, 429);
    assert_eq!(
        c.metric("lfr_dispatch_password_checks_total", &[]),
        Some(checks)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_run_in_a_bounded_pool_and_overflow_is_refused_at_once() {
    let nats = NatsServer::start().await;
    let c = login_console(
        &nats,
        AuthConfig {
            password_checks: 1,
            password_check_queue: 2,
            ..proxied()
        },
    )
    .await;
    // Different accounts from different addresses: the throttle lets every one through, so
    // only the pool stands between the burst and memory.
    let answers = join_all((0..60).map(|i| {
        let account = format!("someone-{i}");
        let from = format!("10.9.{}.{}", i / 200, i % 200 + 1);
        let c = &c;
        async move { c.login(&account, WRONG, Some(&from)).await }
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(!busy.is_empty(), "overflow refused: {statuses:?}");
    assert_eq!(busy.len() + count(&statuses, 401), 60, "{statuses:?}");
    for b in &busy {
        assert!(b.body.contains("Too many sign-ins at once"), "{}", b.body);
        assert_eq!(b.headers[RETRY_AFTER], "1");
        assert!(b.set_cookie().is_none());
    }
    let fastest_busy = busy.iter().map(|a| a.took).min().unwrap();
    let slowest_checked = answers
        .iter()
        .filter(|a| a.status == 401)
        .map(|a| a.took)
        .max()
        .unwrap();
    assert!(
        fastest_busy < slowest_checked,
        "refused without waiting: {fastest_busy:?} vs {slowest_checked:?}"
    );
    assert_eq!(
        c.auth.checks.peak(),
        1,
        "never more than one argon2 at once"
    );
    assert_eq!(
        c.metric("lfr_dispatch_password_checks_total", &[]),
        Some(count(&statuses, 401) as f64)
    );
    assert_eq!(c.logins("busy") as usize, busy.len());
    // Nothing was checked for them, so nothing counts against the throttle: each can retry.
    let retried = c.login("someone-0", WRONG, Some("10.9.0.1")).await;
    assert_eq!(retried.status, 401);
    // Busy refusals are not recorded: nothing was checked.
    let events = c.login_events().await;
    assert_eq!(events.len(), count(&statuses, 401) + 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_wrong_logins_leave_a_bounded_number_of_audit_events() {
    let nats = NatsServer::start().await;
    let c = login_console(&nats, proxied()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let limit = c.auth.config().max_failed_logins as usize;
    // In waves of twenty, as a scripted guesser would.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.extend(c.burst(20, "op-1", WRONG, Some("203.0.113.9")).await);
    }
    assert_eq!(statuses.len(), 200);
    assert_eq!(count(&statuses, 401), limit, "{statuses:?}");
    assert_eq!(c.logins("throttled") as usize, 200 - limit);

    let events = c.login_events().await;
    assert!(
        events.len() <= limit,
        "{} audit events for 200 wrong logins: {events:?}",
        events.len()
    );
    assert!(events.iter().all(|e| e.actor == "op-1"));
    let summaries: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.justification.contains("locked out"))
        .collect();
    assert_eq!(summaries.len(), 1, "one summary per lockout: {events:?}");
    assert!(
        summaries[0]
            .justification
            .contains(&format!("{limit} failed logins")),
        "{}",
        summaries[0].justification
    );
    assert!(
        !format!("{events:?}").contains("203.0.113.9"),
        "no addresses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_elsewhere_cannot_lock_an_operator_out() {
    let nats = NatsServer::start().await;
    let c = login_console(&nats, proxied()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let statuses = c.burst(200, "op-1", WRONG, Some("203.0.113.9")).await;
    assert_eq!(count(&statuses, 303), 0);
    // The guesser is locked out of op-1, the right password included...
    assert_eq!(
        c.login("op-1", PASSWORD, Some("203.0.113.9")).await.status,
        429
    );
    // ...but the operator, at their own workstation, logs in.
    let login = c.login("op-1", PASSWORD, Some("10.20.30.40")).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let page = open_page(&c.http, &c.base, "/operator", Some(&login.cookie())).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("account=op-1"));
    // A couple of typos of their own do not lock them out either.
    for _ in 0..2 {
        assert_eq!(
            c.login("op-1", WRONG, Some("10.20.30.40")).await.status,
            401
        );
    }
    assert_eq!(
        c.login("op-1", PASSWORD, Some("10.20.30.40")).await.status,
        303
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_try_many_accounts() {
    let nats = NatsServer::start().await;
    let c = login_console(&nats, proxied()).await;
    c.create("op-2", Role::Operator, &["match-day"]).await;
    let per_address = c.auth.config().max_failed_logins_per_address as usize;
    assert!(per_address > c.auth.config().max_failed_logins as usize);
    // One wrong password each for many accounts: below each account's limit, but the address
    // runs out.
    for i in 0..per_address {
        let account = format!("guess-{i}");
        let answer = c.login(&account, WRONG, Some("198.51.100.7")).await;
        assert_eq!(answer.status, 401, "attempt {i}");
    }
    let locked = c.login("op-2", PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(
        locked.status, 429,
        "the address is locked, for every account"
    );
    assert!(locked.set_cookie().is_none());
    assert_eq!(
        c.login("op-2", PASSWORD, Some("198.51.100.8")).await.status,
        303,
        "other addresses are not"
    );
    let events = c.login_events().await;
    let summaries: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.justification.contains("locked out"))
        .collect();
    assert_eq!(summaries.len(), 1, "{events:?}");
    assert!(summaries[0]
        .justification
        .contains(&format!("{per_address} failed logins from this address")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_every_session_opened_with_the_old_one() {
    let nats = NatsServer::start().await;
    let c = login_console(&nats, proxied()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    c.create("op-2", Role::Operator, &["match-day"]).await;
    let first = c.login("op-1", PASSWORD, Some("10.0.0.1")).await.cookie();
    let second = c.login("op-1", PASSWORD, Some("10.0.0.2")).await.cookie();
    let other = c.login("op-2", PASSWORD, Some("10.0.0.3")).await.cookie();
    for cookie in [&first, &second, &other] {
        assert_eq!(
            open_page(&c.http, &c.base, "/operator", Some(cookie))
                .await
                .status,
            200
        );
    }

    // As `lfr account password` does.
    const NEW: &str = "a brand new passphrase";
    c.auth.accounts.set_password("op-1", NEW).await.unwrap();
    for cookie in [&first, &second] {
        let refused = open_page(&c.http, &c.base, "/operator", Some(cookie)).await;
        assert_eq!(refused.status, 303, "back to the login page");
        assert!(refused.set_cookie().unwrap().contains("Max-Age=0"));
    }
    assert_eq!(
        open_page(&c.http, &c.base, "/operator", Some(&other))
            .await
            .status,
        200,
        "other accounts' sessions live on"
    );
    assert_eq!(
        c.login("op-1", PASSWORD, Some("10.0.0.1")).await.status,
        401
    );
    let fresh = c.login("op-1", NEW, Some("10.0.0.1")).await;
    assert_eq!(fresh.status, 303);
    assert_eq!(
        open_page(&c.http, &c.base, "/operator", Some(&fresh.cookie()))
            .await
            .status,
        200
    );
    // The old sessions stay ended.
    assert_eq!(
        open_page(&c.http, &c.base, "/operator", Some(&first))
            .await
            .status,
        303
    );
}

// ---------------------------------------------------------------------------------------------
// The real dispatch service: live streams, cookies over HTTPS, refusing plain HTTP.

struct Dispatch {
    base: String,
    http: reqwest::Client,
    accounts: Accounts,
    shutdown: Shutdown,
    done: tokio::task::JoinHandle<()>,
}

fn dispatch_config(nats: &NatsServer, cookie_secure: bool) -> lfr_dispatch::Config {
    let mut config = lfr_dispatch::Config::default();
    config.common.nats = nats.nats_config(Identity::Dispatch);
    config.dispatch.http_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.console_addr = "127.0.0.1:0".parse().unwrap();
    config.dispatch.auth.cookie_secure = cookie_secure;
    config.master_key = Some(lfr_vault::MasterKey::generate());
    config
}

/// Start dispatch with `config`, failing the test (not hanging it) if it does not come up.
async fn start(config: lfr_dispatch::Config, shutdown: Shutdown) -> lfr_dispatch::Running {
    tokio::time::timeout(STARTUP, lfr_dispatch::start(config, shutdown))
        .await
        .expect("dispatch started in time (is the topology declared as the contract says?)")
        .unwrap()
}

const STARTUP: Duration = Duration::from_secs(60);

async fn dispatch(nats: &NatsServer, cookie_secure: bool) -> Dispatch {
    let shutdown = Shutdown::new();
    let running = start(dispatch_config(nats, cookie_secure), shutdown.clone()).await;
    // Accounts are made as `lfr account create` makes them.
    let accounts = Accounts::open(&nats.admin().await).await.unwrap();
    for (id, role, deployments) in [
        ("op-1", Role::Operator, vec!["match-day"]),
        ("op-2", Role::Operator, vec!["match-day"]),
        ("op-3", Role::Operator, vec!["match-day"]),
        ("sup-1", Role::Supervisor, vec![]),
    ] {
        let deployments = deployments.into_iter().map(String::from).collect();
        match accounts.create(id, role, PASSWORD, deployments).await {
            Ok(_) | Err(AccountError::Exists(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    Dispatch {
        base: format!("http://{}", running.console_addr),
        http: client(),
        accounts,
        shutdown,
        done: running.done,
    }
}

impl Dispatch {
    async fn log_in(&self, account: &str) -> String {
        let login = post_login(&self.http, &self.base, account, PASSWORD, None).await;
        assert_eq!(login.status, 303, "{}", login.body);
        login.cookie()
    }

    /// Open `/events` as `cookie`'s session.
    async fn events(&self, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/events", self.base))
            .header(COOKIE, cookie)
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.done).await;
    }
}

/// Read `stream` until it ends; `Err` with what was read if it is still open after `within`.
async fn ends_within(stream: &mut reqwest::Response, within: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(Some(_))) => continue,
            Err(_) => return Err(format!("still open after {within:?}")),
        }
    }
}

/// A live stream that is open and says nothing for a while is still open.
async fn stays_open(stream: &mut reqwest::Response, for_: Duration) {
    assert!(ends_within(stream, for_).await.is_err(), "the stream ended");
}

const FEW_SECONDS: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_end_at_logout_at_disabling_and_at_de_assignment() {
    let nats = NatsServer::start().await;
    let d = dispatch(&nats, false).await;
    let op1 = d.log_in("op-1").await;
    let op2 = d.log_in("op-2").await;
    let op3 = d.log_in("op-3").await;
    let sup = d.log_in("sup-1").await;
    let mut streams = Vec::new();
    for cookie in [&op1, &op2, &op3, &sup] {
        let stream = d.events(cookie).await;
        assert_eq!(stream.status(), 200);
        assert!(stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        streams.push(stream);
    }
    let [mut s1, mut s2, mut s3, mut s_sup]: [reqwest::Response; 4] = streams.try_into().unwrap();

    // Logout (the page's own form, with its CSRF token) ends op-1's stream.
    let page = open_page(&d.http, &d.base, "/operator", Some(&op1)).await;
    assert_eq!(page.status, 200);
    let out = send(
        d.http
            .post(format!("{}/logout", d.base))
            .header(COOKIE, &op1)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(lfr_testkit::form(&[("csrf", &page.csrf())])),
    )
    .await;
    assert_eq!(out.status, 303);
    ends_within(&mut s1, FEW_SECONDS)
        .await
        .expect("the stream ends at logout");
    assert_eq!(d.events(&op1).await.status(), 401, "and cannot be reopened");

    // Disabling op-2 (as `lfr account disable` does) ends op-2's stream.
    d.accounts.disable("op-2").await.unwrap();
    ends_within(&mut s2, FEW_SECONDS)
        .await
        .expect("the stream ends when the account is disabled");
    assert_eq!(d.events(&op2).await.status(), 401);

    // Taking match-day away from op-3 ends op-3's stream; the page's browser reconnects and is
    // then told only of what op-3 may see now.
    d.accounts.assign("op-3", vec![]).await.unwrap();
    ends_within(&mut s3, FEW_SECONDS)
        .await
        .expect("the stream ends at de-assignment");
    let mut reopened = d.events(&op3).await;
    assert_eq!(reopened.status(), 200, "the session itself lives on");

    // Streams whose sessions still stand are not touched.
    stays_open(&mut s_sup, Duration::from_secs(3)).await;
    stays_open(&mut reopened, Duration::from_secs(3)).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_ends_when_its_password_changes() {
    let nats = NatsServer::start().await;
    let d = dispatch(&nats, false).await;
    let op1 = d.log_in("op-1").await;
    let mut stream = d.events(&op1).await;
    assert_eq!(stream.status(), 200);
    d.accounts
        .set_password("op-1", "a brand new passphrase")
        .await
        .unwrap();
    ends_within(&mut stream, FEW_SECONDS)
        .await
        .expect("the stream ends when the password changes");
    assert_eq!(d.events(&op1).await.status(), 401);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_session_cookie_has_the_host_prefix_and_answers_carry_hsts() {
    let nats = NatsServer::start().await;
    let d = dispatch(&nats, true).await;
    let hsts = |h: &HeaderMap| {
        h.get("strict-transport-security")
            .map(|v| v.to_str().unwrap().to_string())
    };

    let page = open_page(&d.http, &d.base, "/login", None).await;
    assert_eq!(page.status, 200);
    let policy = hsts(&page.headers).expect("HSTS on the login page");
    assert!(policy.starts_with("max-age="), "{policy}");
    let max_age: u64 = policy["max-age=".len()..]
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age >= 180 * 24 * 3600, "{policy}");

    let login = post_login(&d.http, &d.base, "op-1", PASSWORD, None).await;
    assert_eq!(login.status, 303);
    assert!(hsts(&login.headers).is_some());
    let set = login.set_cookie().unwrap();
    assert!(set.starts_with("__Host-lfr_session="), "{set}");
    for attribute in ["; Secure", "; Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");

    let cookie = login.cookie();
    let operator = open_page(&d.http, &d.base, "/operator", Some(&cookie)).await;
    assert_eq!(operator.status, 200);
    assert!(hsts(&operator.headers).is_some());
    // The same token under the plain name is not read: it could have been planted.
    let token = cookie.trim_start_matches("__Host-lfr_session=");
    let planted = open_page(
        &d.http,
        &d.base,
        "/operator",
        Some(&format!("lfr_session={token}")),
    )
    .await;
    assert_eq!(planted.status, 303, "sent to log in");
    // The API answers carry it too.
    let api = send(d.http.get(format!("{}/api/deployments", d.base))).await;
    assert_eq!(api.status, 401);
    assert!(hsts(&api.headers).is_some());

    // Logout clears the prefixed cookie.
    let out = send(
        d.http
            .post(format!("{}/logout", d.base))
            .header(COOKIE, &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(lfr_testkit::form(&[("csrf", &operator.csrf())])),
    )
    .await;
    assert_eq!(out.status, 303);
    let cleared = out.set_cookie().unwrap();
    assert!(
        cleared.starts_with("__Host-lfr_session=;")
            && cleared.contains("Max-Age=0")
            && cleared.contains("; Secure"),
        "{cleared}"
    );
    d.stop().await;

    // Plain HTTP on the loopback: the plain name, no HSTS.
    let d = dispatch(&nats, false).await;
    let login = post_login(&d.http, &d.base, "op-1", PASSWORD, None).await;
    assert!(login.set_cookie().unwrap().starts_with("lfr_session="));
    assert!(hsts(&login.headers).is_none());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_a_network_address_is_refused_at_start() {
    let nats = NatsServer::start().await;
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let mut config = dispatch_config(&nats, false);
        config.dispatch.console_addr = addr.parse().unwrap();
        let refused = tokio::time::timeout(STARTUP, lfr_dispatch::start(config, Shutdown::new()))
            .await
            .expect("refused at once");
        let message = refused.err().expect("refused").to_string();
        assert!(message.contains("cookie_secure = false"), "{message}");
        assert!(message.contains("network address"), "{message}");
    }
    // Secure cookies on a network address: fine (TLS terminates in front).
    let mut config = dispatch_config(&nats, true);
    config.dispatch.console_addr = "0.0.0.0:0".parse().unwrap();
    let shutdown = Shutdown::new();
    let running = start(config, shutdown.clone()).await;
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), running.done).await;
    // An explicit acknowledgement (a container port published on the host's loopback only).
    let mut config = dispatch_config(&nats, false);
    config.dispatch.console_addr = "0.0.0.0:0".parse().unwrap();
    config.dispatch.auth.allow_plain_http = true;
    let shutdown = Shutdown::new();
    let running = start(config, shutdown.clone()).await;
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(10), running.done).await;
}

#[test]
fn the_new_auth_keys_read_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lfr.toml");
    std::fs::write(
        &path,
        "[dispatch.auth]\nmax_failed_logins_per_address = 50\npassword_checks = 4\n\
         password_check_queue = 8\nallow_plain_http = true\n",
    )
    .unwrap();
    let config: lfr_dispatch::Config = lfr_common::config::load(Some(&path)).unwrap();
    let auth = config.dispatch.auth;
    assert_eq!(auth.max_failed_logins_per_address, 50);
    assert_eq!((auth.password_checks, auth.password_check_queue), (4, 8));
    assert!(auth.allow_plain_http);
    assert_eq!(auth.max_failed_logins, 5, "defaults for the rest");
}
