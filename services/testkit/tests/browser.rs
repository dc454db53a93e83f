//! The browser harness against a real page: a form posted by one browser, a live (SSE) page watched
//! by another, screenshots of both, and no chromedriver or Chromium left behind.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::{Form, Router};
use futures::Stream;
use lfr_testkit::browser::{process_alive, Browser};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

const FIRST_LOAD: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct App {
    received: Arc<Mutex<Vec<String>>>,
    events: broadcast::Sender<String>,
}

const FORM: &str = r#"<!doctype html><title>form</title>
<form id="f" method="post" action="/submit">
  <input id="name" name="name" autocomplete="off">
  <button type="submit">Send</button>
</form>"#;

const LIVE: &str = r#"<!doctype html><title>live</title>
<p id="status">connecting</p>
<ul id="messages"></ul>
<script>
  const es = new EventSource('/events');
  es.onopen = () => { document.getElementById('status').textContent = 'open'; };
  es.onmessage = (e) => {
    const li = document.createElement('li');
    li.textContent = e.data;
    document.getElementById('messages').appendChild(li);
  };
</script>"#;

async fn submit(State(app): State<App>, Form(form): Form<HashMap<String, String>>) -> Redirect {
    let name = form.get("name").cloned().unwrap_or_default();
    app.received.lock().unwrap().push(name);
    Redirect::to("/result")
}

async fn result(State(app): State<App>) -> Html<String> {
    let items: String = app
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|n| format!("<li>{}</li>", n.replace('&', "&amp;").replace('<', "&lt;")))
        .collect();
    Html(format!(
        "<!doctype html><title>result</title><ul id=\"result\">{items}</ul>"
    ))
}

async fn events(State(app): State<App>) -> impl IntoResponse {
    // Subscribed before the response (and so before the page's `open` event).
    let rx = app.events.subscribe();
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            let data = rx.recv().await.ok()?;
            Some((Ok(Event::default().data(data)), rx))
        }));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn serve() -> (String, App) {
    let app = App {
        received: Arc::default(),
        events: broadcast::channel(16).0,
    };
    let router = Router::new()
        .route("/", get(|| async { Html(FORM) }))
        .route("/submit", axum::routing::post(submit))
        .route("/result", get(result))
        .route("/live", get(|| async { Html(LIVE) }))
        .route("/events", get(events))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, app)
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_a_form_and_a_live_page() {
    let started = Instant::now();
    let (base, app) = serve().await;
    let (desk, phone) = tokio::join!(Browser::start(), Browser::with_window(390, 844));
    eprintln!("two browsers up in {:?}", started.elapsed());

    // The form, submitted once by clicking its button and once through a field's form.
    desk.goto(&format!("{base}/")).await;
    desk.wait_for("#name", FIRST_LOAD).await;
    desk.fill("#name", "PC Dibble").await;
    desk.click("button[type=submit]").await;
    desk.wait_for_text("#result", "PC Dibble", FIRST_LOAD).await;
    assert!(
        desk.url().await.ends_with("/result"),
        "{}",
        desk.url().await
    );
    desk.goto(&format!("{base}/")).await;
    desk.fill("#name", "Sgt <Wilson>").await;
    desk.submit("#name").await;
    let shown = desk
        .wait_for_text("#result", "Sgt <Wilson>", FIRST_LOAD)
        .await;
    assert_eq!(shown, "PC Dibble\nSgt <Wilson>");
    assert_eq!(
        *app.received.lock().unwrap(),
        vec!["PC Dibble".to_string(), "Sgt <Wilson>".to_string()]
    );
    assert!(desk.exists("#result li").await);
    assert!(!desk.exists("#name").await);

    // The live page, on a phone-sized window, sees a message pushed after it connected.
    phone.goto(&format!("{base}/live")).await;
    phone.wait_for_text("#status", "open", FIRST_LOAD).await;
    assert!(!phone.exists("#messages li").await);
    let width = phone
        .client()
        .execute("return window.innerWidth", vec![])
        .await
        .unwrap();
    assert_eq!(width, 390);
    app.events.send("alert 1: confirmed".into()).unwrap();
    phone
        .wait_for_text("#messages", "alert 1: confirmed", Duration::from_secs(10))
        .await;
    assert_eq!(phone.text("#messages li").await, "alert 1: confirmed");

    let shots = [
        desk.screenshot("testkit-browser-form").await,
        phone.screenshot("testkit-browser-live").await,
    ];
    for shot in &shots {
        assert_png(shot);
    }

    // Both sessions had Chromium processes, in their own groups, and none outlive close().
    let pids: Vec<u32> = desk.pids().into_iter().chain(phone.pids()).collect();
    for b in [&desk, &phone] {
        assert!(b.pids().contains(&b.driver_pid()));
        assert!(b.pids().len() > 1, "no Chromium under {}", b.driver_pid());
    }
    let closing = Instant::now();
    tokio::join!(desk.close(), phone.close());
    eprintln!("closed in {:?}", closing.elapsed());
    let alive: Vec<u32> = pids.into_iter().filter(|p| process_alive(*p)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
    eprintln!("done in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_dropped_browser_leaves_no_process() {
    let (base, _app) = serve().await;
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/live")).await;
    browser.wait_for_text("#status", "open", FIRST_LOAD).await;
    let pids = browser.pids();
    assert!(pids.len() > 1, "{pids:?}");
    drop(browser); // as when a test panics
    let alive: Vec<u32> = pids.into_iter().filter(|p| process_alive(*p)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
}

#[tokio::test]
async fn a_failed_wait_names_the_page_and_keeps_a_screenshot() {
    use futures::FutureExt;
    let (base, _app) = serve().await;
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    let failed =
        std::panic::AssertUnwindSafe(browser.wait_for("#missing", Duration::from_millis(500)))
            .catch_unwind()
            .await;
    let message = *failed
        .expect_err("#missing is not on the page")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("no #missing within 500ms"), "{message}");
    assert!(message.contains(&format!("at {base}/")), "{message}");
    let shot = message.split("screenshot: ").nth(1).expect(&message).trim();
    assert_png(std::path::Path::new(shot));
    std::fs::remove_file(shot).unwrap();
    browser.close().await;
}
