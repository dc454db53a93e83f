//! Console login as a browser meets it, against a real nats-server: the login form, strict
//! HttpOnly session cookies, protected pages, throttled guessing, CSRF-protected logout, expiry,
//! disabled accounts, foreign origins, and the audit events and metrics attempts leave.
//! (`hardening.rs` holds the tests of bursts, lockouts of real people, live streams and cookies
//! over HTTPS.)

use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Form, Router};
use futures::StreamExt;
use lfr_dispatch::auth::{self, Auth, AuthConfig, CurrentSession, Role};
use lfr_schemas::{AuditAction, AuditEvent};
use lfr_testkit::NatsServer;
use reqwest::header::{HeaderMap, ACCEPT, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use std::net::SocketAddr;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

struct Console {
    base: String,
    http: reqwest::Client,
    auth: Auth,
    registry: prometheus::Registry,
    js: async_nats::jetstream::Context,
}

/// The operator's page: who is asking, whether they may see `match-day`, and a CSRF field.
async fn operator_page(session: CurrentSession) -> Response {
    if let Err(status) = auth::require_role(&session, &[Role::Operator, Role::Supervisor]) {
        return status.into_response();
    }
    Html(format!(
        "account={} role={} match-day={} {}",
        session.account,
        session.role,
        session.may_see("match-day"),
        auth::csrf_field(&session)
    ))
    .into_response()
}

#[derive(serde::Deserialize)]
struct Confirm {
    #[serde(default)]
    csrf: String,
}

/// A state-changing form post, as the console's alert review will be.
async fn operator_post(session: CurrentSession, Form(form): Form<Confirm>) -> Response {
    if let Err(refused) = auth::verify_csrf(&session, &form.csrf) {
        return refused;
    }
    format!("confirmed by {}", session.account).into_response()
}

async fn supervisor_page(session: CurrentSession) -> Response {
    match auth::require_role(&session, &[Role::Supervisor]) {
        Ok(()) => "supervisor page".into_response(),
        Err(status) => status.into_response(),
    }
}

async fn console(nats: &NatsServer, config: AuthConfig) -> Console {
    let common = lfr_common::config::Common {
        nats: nats.nats_config(lfr_testkit::Identity::Dispatch),
        ..Default::default()
    };
    let registry = lfr_common::telemetry::registry("dispatch");
    // Connected as the dispatch service connects, with its identity.
    let bus = lfr_common::bus::Bus::connect(&common, "dispatch", &registry)
        .await
        .unwrap();
    let auth = Auth::new(&bus.jetstream, config, &registry).await.unwrap();
    let pages = Router::new()
        .route("/operator", get(operator_page).post(operator_post))
        .route("/supervisor", get(supervisor_page))
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
    Console {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        auth,
        registry,
        js: nats.admin().await,
    }
}

fn insecure() -> AuthConfig {
    AuthConfig {
        cookie_secure: false,
        ..Default::default()
    }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers[LOCATION].to_str().unwrap()
    }

    /// The `lfr_session` Set-Cookie line, if any.
    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("lfr_session="))
    }

    /// The cookie to send back: `lfr_session=<token>`.
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

impl Console {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn post(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Answer {
        self.post_with(path, cookie, fields, &[]).await
    }

    async fn post_with(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
        headers: &[(&'static str, String)],
    ) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(lfr_testkit::form(fields));
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.send(req).await
    }

    async fn login(&self, account: &str, password: &str) -> Answer {
        self.post(
            "/login",
            None,
            &[("account", account), ("password", password)],
        )
        .await
    }

    async fn get(&self, path: &str, cookie: Option<&str>, html: bool) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        if html {
            req = req.header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8");
        }
        self.send(req).await
    }

    fn logins(&self, result: &str) -> f64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        lfr_testkit::metric(&text, "lfr_dispatch_logins_total", &[("result", result)])
            .unwrap_or(0.0)
    }

    /// Every audit event of the system subject, oldest first.
    async fn audit(&self) -> Vec<AuditEvent> {
        let events = lfr_testkit::records(&self.js, "AUDIT", "lfr.audit.system").await;
        events.into_iter().map(|(_, e)| e).collect()
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

fn login_events<'a>(events: &'a [AuditEvent], justification: &str) -> Vec<&'a AuditEvent> {
    events
        .iter()
        .filter(|e| e.action == AuditAction::Login && e.justification == justification)
        .collect()
}

#[tokio::test]
async fn a_good_password_opens_a_session_in_a_strict_http_only_cookie() {
    let nats = NatsServer::start().await;
    let c = console(&nats, insecure()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    c.create("supt-1", Role::Supervisor, &[]).await;

    // The form.
    let page = c.get("/login", None, true).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    for field in [
        r#"name="account""#,
        r#"name="password""#,
        r#"type="password""#,
    ] {
        assert!(page.body.contains(field), "{field}: {}", page.body);
    }

    // Without a session: a browser goes to the login page and comes back; anything else is 401.
    let sent = c.get("/operator?d=1", None, true).await;
    assert_eq!(sent.status, 303);
    assert_eq!(sent.location(), "/login?next=/operator%3Fd%3D1");
    assert_eq!(c.get("/operator", None, false).await.status, 401);
    assert_eq!(
        c.get("/operator", Some("lfr_session=forged"), false)
            .await
            .status,
        401
    );
    assert_eq!(
        c.post("/operator", None, &[("csrf", "x")]).await.status,
        401
    );

    // The right password: 303 to the role's home, with a strict, HttpOnly session cookie.
    let login = c.login("op-1", PASSWORD).await;
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.location(), "/operator");
    let set = login.set_cookie().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    assert!(!set.contains("Secure"), "cookie_secure = false: {set}");
    let cookie = login.cookie();
    assert_eq!(cookie.len(), "lfr_session=".len() + 64);

    let page = c.get("/operator", Some(&cookie), true).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("account=op-1 role=operator match-day=true"),
        "{}",
        page.body
    );
    assert_eq!(
        c.get("/supervisor", Some(&cookie), true).await.status,
        403,
        "an operator is no supervisor"
    );
    let again = c
        .get("/login?next=/operator%3Fd%3D2", Some(&cookie), true)
        .await;
    assert_eq!(again.status, 303, "already logged in");
    assert_eq!(again.location(), "/operator?d=2");

    // `next` is followed when it is a path here, ignored otherwise.
    for (next, to) in [
        ("/operator?d=1", "/operator?d=1"),
        ("//evil.example/", "/supervisor"),
        ("https://evil.example/", "/supervisor"),
    ] {
        let login = c
            .post(
                "/login",
                None,
                &[
                    ("account", "supt-1"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(login.status, 303);
        assert_eq!(login.location(), to, "next={next}");
    }
    let supt = c.login("supt-1", PASSWORD).await.cookie();
    assert_eq!(c.get("/supervisor", Some(&supt), true).await.status, 200);

    // The sessions bucket holds hashes of tokens, never a token.
    let token = cookie.trim_start_matches("lfr_session=");
    let sessions = c.js.get_key_value("lfr-sessions").await.unwrap();
    let mut keys = sessions.keys().await.unwrap();
    let mut n = 0;
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        assert_ne!(key, token);
        let value = sessions.get(&key).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&value).contains(token));
        n += 1;
    }
    assert_eq!(n, 5, "one per login");

    // Every login is counted and audited, naming the account and its role; no event names a
    // password or a hash.
    assert_eq!(c.logins("ok"), 5.0);
    assert_eq!(c.logins("bad_credentials"), 0.0);
    let events = c.audit().await;
    let ok = login_events(&events, "login succeeded");
    assert_eq!(ok.len(), 5, "{events:?}");
    assert_eq!(ok[0].actor, "op-1");
    assert_eq!(ok[0].role, "operator");
    assert_eq!(ok[0].object, "account/op-1");
    assert_eq!(ok[0].deployment, None);
    assert_eq!(ok[1].role, "supervisor");
    let printed = format!("{events:?}");
    assert!(!printed.contains(PASSWORD) && !printed.contains("argon2"));
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_five_failures_lock_the_account_out_from_that_address() {
    let nats = NatsServer::start().await;
    // Vary the client address through a proxy header, to throttle by account from an address and
    // by address.
    let c = console(
        &nats,
        AuthConfig {
            client_ip_header: Some("x-forwarded-for".into()),
            max_failed_logins_per_address: 5,
            ..insecure()
        },
    )
    .await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    c.create("op-2", Role::Operator, &["match-day"]).await;
    let login_from = |account: &'static str, password: &'static str, ip: String| {
        let c = &c;
        async move {
            c.post_with(
                "/login",
                None,
                &[("account", account), ("password", password)],
                &[("x-forwarded-for", format!("192.0.2.1, {ip}"))],
            )
            .await
        }
    };

    // A wrong password and an unknown account get the same answer, and no cookie.
    let wrong = login_from("op-1", "not the password", "10.0.0.1".into()).await;
    let ghost = login_from("gh ost<>", PASSWORD, "10.0.0.9".into()).await;
    for refused in [&wrong, &ghost] {
        assert_eq!(refused.status, 401);
        assert!(refused.body.contains("Wrong account or password."));
        assert!(refused.set_cookie().is_none());
        assert!(
            refused.body.contains(r#"name="password""#),
            "the form again"
        );
    }

    // Four more failures for op-1 from the same address: op-1 is locked from there, and even
    // the right password is refused there.
    for _ in 2..=5 {
        let refused = login_from("op-1", "still not it", "10.0.0.1".into()).await;
        assert_eq!(refused.status, 401);
    }
    let locked = login_from("op-1", PASSWORD, "10.0.0.1".into()).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.body.contains("Too many attempts, try later."));
    assert!(locked.set_cookie().is_none());
    let retry: u64 = locked.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
    // Other accounts elsewhere are not affected.
    assert_eq!(
        login_from("op-2", PASSWORD, "10.0.0.7".into()).await.status,
        303
    );

    // Five failures from one address across accounts lock the address.
    for account in ["a", "b", "c", "d", "e"] {
        assert_eq!(
            login_from(account, "guess guess guess", "10.0.1.1".into())
                .await
                .status,
            401
        );
    }
    assert_eq!(
        login_from("op-2", PASSWORD, "10.0.1.1".into()).await.status,
        429
    );

    assert_eq!(c.logins("bad_credentials"), 11.0);
    assert_eq!(c.logins("throttled"), 2.0);
    assert_eq!(c.logins("ok"), 1.0);
    let events = c.audit().await;
    let bad = login_events(&events, "login refused: bad credentials");
    assert_eq!(bad.len(), 9, "{events:?}");
    assert_eq!(bad[0].actor, "op-1");
    assert_eq!(bad[0].role, "unauthenticated");
    assert_eq!(bad[1].actor, "ghost", "typed ids are sanitised");
    assert_eq!(bad[1].object, "account/ghost");
    // The failures that started lockouts say so, once each; the refusals during them are
    // counted, not recorded.
    let locking: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| e.justification.contains("locked out for 900 s"))
        .collect();
    assert_eq!(locking.len(), 2, "{events:?}");
    assert_eq!(locking[0].actor, "op-1");
    assert!(locking[0]
        .justification
        .contains("5 failed logins of this account from this address"));
    assert!(locking[1]
        .justification
        .contains("5 failed logins from this address"));
    assert!(login_events(&events, "login refused: throttled").is_empty());
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_ends_the_session() {
    let nats = NatsServer::start().await;
    let c = console(&nats, insecure()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let cookie = c.login("op-1", PASSWORD).await.cookie();
    let page = c.get("/operator", Some(&cookie), true).await;
    let csrf = page.csrf();

    // Handlers check the token with verify_csrf.
    let posted = c.post("/operator", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(posted.status, 200);
    assert_eq!(posted.body, "confirmed by op-1");
    for bad in [vec![], vec![("csrf", "0".repeat(64))]] {
        let fields: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            c.post("/operator", Some(&cookie), &fields).await.status,
            403
        );
    }

    // Logout without the token, or with another, is refused and the session lives on.
    assert_eq!(c.post("/logout", Some(&cookie), &[]).await.status, 403);
    let other = c.login("op-1", PASSWORD).await.cookie();
    let other_csrf = c.get("/operator", Some(&other), true).await.csrf();
    assert_ne!(other_csrf, csrf, "each session has its own token");
    assert_eq!(
        c.post("/logout", Some(&cookie), &[("csrf", &other_csrf)])
            .await
            .status,
        403
    );
    assert_eq!(c.get("/operator", Some(&cookie), true).await.status, 200);

    // With it: the session ends, the cookie is cleared, and the old cookie opens nothing.
    let out = c.post("/logout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/login");
    let cleared = out.set_cookie().unwrap();
    assert!(
        cleared.starts_with("lfr_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(c.get("/operator", Some(&cookie), false).await.status, 401);
    assert_eq!(
        c.get("/operator", Some(&other), false).await.status,
        200,
        "only that session ended"
    );
    // Logging out with no session is harmless.
    assert_eq!(c.post("/logout", Some(&cookie), &[]).await.status, 303);

    let events = c.audit().await;
    let out = login_events(&events, "logout");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].actor, "op-1");
}

#[tokio::test]
async fn a_session_ends_with_its_ttl() {
    let nats = NatsServer::start().await;
    let c = console(
        &nats,
        AuthConfig {
            session_ttl: Duration::from_secs(1),
            ..insecure()
        },
    )
    .await;
    c.create("off-1", Role::Officer, &["match-day"]).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let login = c.login("off-1", PASSWORD).await;
    assert_eq!(login.location(), "/handheld");
    assert!(login.set_cookie().unwrap().contains("Max-Age=1"));
    let cookie = c.login("op-1", PASSWORD).await.cookie();
    assert_eq!(c.get("/operator", Some(&cookie), true).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(c.get("/operator", Some(&cookie), false).await.status, 401);
    let sent = c.get("/operator", Some(&cookie), true).await;
    assert_eq!(sent.status, 303);
    assert!(sent.location().starts_with("/login?next="));
    assert!(
        sent.set_cookie().unwrap().contains("Max-Age=0"),
        "the dead cookie is cleared"
    );
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in_and_its_sessions_stop() {
    let nats = NatsServer::start().await;
    let c = console(&nats, insecure()).await;
    c.create("op-1", Role::Operator, &["fair"]).await;
    let cookie = c.login("op-1", PASSWORD).await.cookie();
    let page = c.get("/operator", Some(&cookie), true).await;
    assert!(page.body.contains("match-day=false"), "{}", page.body);

    // A new assignment applies to the open session at once.
    c.auth
        .accounts
        .assign("op-1", vec!["match-day".into()])
        .await
        .unwrap();
    let page = c.get("/operator", Some(&cookie), true).await;
    assert!(page.body.contains("match-day=true"), "{}", page.body);

    c.auth.accounts.disable("op-1").await.unwrap();
    assert_eq!(c.get("/operator", Some(&cookie), false).await.status, 401);
    let refused = c.login("op-1", PASSWORD).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("disabled"));
    assert!(refused.set_cookie().is_none());
    let wrong = c.login("op-1", "not the password").await;
    assert_eq!(
        wrong.status, 401,
        "a wrong password says nothing about the account"
    );
    assert_eq!(c.logins("disabled"), 1.0);

    c.auth.accounts.enable("op-1").await.unwrap();
    assert_eq!(
        c.get("/operator", Some(&cookie), false).await.status,
        401,
        "a session ended by disabling stays ended"
    );
    assert_eq!(c.login("op-1", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn writes_from_another_origin_are_refused() {
    let nats = NatsServer::start().await;
    let c = console(&nats, insecure()).await;
    c.create("op-1", Role::Operator, &["match-day"]).await;
    let evil = [("origin", "http://evil.example".to_string())];
    let here = [("origin", c.base.clone())];
    let credentials = [("account", "op-1"), ("password", PASSWORD)];

    let login = c.post_with("/login", None, &credentials, &evil).await;
    assert_eq!(login.status, 403);
    assert!(login.set_cookie().is_none());
    let login = c.post_with("/login", None, &credentials, &here).await;
    assert_eq!(login.status, 303);
    let cookie = login.cookie();
    let csrf = c.get("/operator", Some(&cookie), true).await.csrf();

    let fields = [("csrf", csrf.as_str())];
    for headers in [
        evil.to_vec(),
        vec![("origin", "null".to_string())],
        vec![("sec-fetch-site", "cross-site".to_string())],
    ] {
        assert_eq!(
            c.post_with("/operator", Some(&cookie), &fields, &headers)
                .await
                .status,
            403,
            "{headers:?}"
        );
        assert_eq!(
            c.post_with("/logout", Some(&cookie), &fields, &headers)
                .await
                .status,
            403
        );
    }
    let ok = c
        .post_with(
            "/operator",
            Some(&cookie),
            &fields,
            &[
                ("origin", c.base.clone()),
                ("sec-fetch-site", "same-origin".to_string()),
            ],
        )
        .await;
    assert_eq!(ok.status, 200);
    // Reads are not writes: a cross-site GET of a page is answered (SameSite=Strict keeps the
    // cookie off cross-site requests in real browsers).
    assert_eq!(c.get("/operator", Some(&cookie), true).await.status, 200);
}

#[test]
fn the_auth_section_reads_from_the_configuration_file_with_defaults_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lfr.toml");
    std::fs::write(
        &path,
        "[dispatch.auth]\nsession_ttl = 28800\ncookie_secure = false\n\
         client_ip_header = \"X-Forwarded-For\"\n",
    )
    .unwrap();
    let config: lfr_dispatch::Config = lfr_common::config::load(Some(&path)).unwrap();
    let auth = config.dispatch.auth;
    assert_eq!(auth.session_ttl, Duration::from_secs(8 * 3600));
    assert!(!auth.cookie_secure);
    assert_eq!(auth.client_ip_header.as_deref(), Some("X-Forwarded-For"));
    assert_eq!(auth.max_failed_logins, 5);
    assert_eq!(auth.lockout, Duration::from_secs(900));
}
