//! Browser tests in real headless Chromium, driven through `chromedriver` (WebDriver).
//!
//! [`Browser::start`] starts a private `chromedriver` on a free loopback port and opens a session
//! in a fresh Chromium profile (its own cookies, storage and cache), so two `Browser`s in one test
//! are two independent people: an operator at the console and an officer with a handheld, say.
//!
//! ```no_run
//! # async fn example(base: &str) {
//! use lfr_testkit::browser::Browser;
//! use std::time::Duration;
//!
//! let operator = Browser::start().await; // 1280x900
//! let officer = Browser::with_window(390, 844).await; // phone-sized
//!
//! operator.goto(&format!("{base}/login")).await;
//! operator.fill("input[name=user]", "op-1").await;
//! operator.submit("form#login").await; // or operator.click("button[type=submit]")
//! operator.wait_for("#review-queue", Duration::from_secs(20)).await;
//!
//! officer.goto(&format!("{base}/feed")).await;
//! // Live pages update over SSE: poll until the text shows up.
//! officer.wait_for_text("#alerts", "confirmed", Duration::from_secs(20)).await;
//! let png = officer.screenshot("feed-after-confirm").await; // target/artefacts/feed-after-confirm.png
//! # let _ = png;
//!
//! operator.close().await;
//! officer.close().await;
//! # }
//! ```
//!
//! Conventions:
//! - Every helper panics with the selector, the page's URL and a screenshot path on failure, so a
//!   test reads as a list of steps without `?` or `unwrap`.
//! - [`fill`](Browser::fill), [`click`](Browser::click), [`submit`](Browser::submit) and
//!   [`text`](Browser::text) first wait up to [`DEFAULT_WAIT`] for their element to exist;
//!   [`exists`](Browser::exists) does not wait. Anything that arrives later (an SSE update, a
//!   redirect) is awaited with [`wait_for`](Browser::wait_for) or
//!   [`wait_for_text`](Browser::wait_for_text). The machines running tests have two cores:
//!   Chromium's first page can take seconds, so give waits 20 s rather than 2.
//! - [`screenshot`](Browser::screenshot) writes `<name>.png` to `$LFR_ARTEFACTS`, else to
//!   `<workspace>/target/artefacts/`; pick names unique to the test, as tests run in parallel.
//! - Call [`close`](Browser::close) at the end. If a test panics first, dropping the `Browser`
//!   kills chromedriver's whole process group (Chromium included), so nothing is left running.
//! - Anything not wrapped here is on the underlying [`fantoccini::Client`]: [`Browser::client`].
//!
//! Binaries: `/usr/bin/chromedriver` and `/usr/bin/chromium` (Debian's `chromium-driver` and
//! `chromium`, installed by `scripts/setup.sh`), or `$LFR_CHROMEDRIVER` and `$LFR_CHROMIUM`.
//! Chromium runs with `--no-sandbox` (tests run as root here) and with its background networking
//! off: the test machines have no route out, and Chromium's own calls home would only slow it down.

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Browser::fill`], [`Browser::click`], [`Browser::submit`] and [`Browser::text`] wait
/// for their element to appear.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);

/// Window size of [`Browser::start`].
pub const DEFAULT_WINDOW: (u32, u32) = (1280, 900);

/// How long chromedriver may take to answer, and Chromium to open a session.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium session with its own chromedriver and its own empty profile.
pub struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    /// Holds the profile (`--user-data-dir`) and chromedriver's log; removed on drop.
    dir: tempfile::TempDir,
    /// Set once chromedriver is reaped: its pid (and group id) may be reused after that.
    stopped: bool,
}

impl Browser {
    /// A desktop-sized browser (1280x900).
    pub async fn start() -> Browser {
        Browser::with_window(DEFAULT_WINDOW.0, DEFAULT_WINDOW.1).await
    }

    /// A browser whose viewport is exactly `width` x `height` CSS pixels (`window.innerWidth` is
    /// `width`; screenshots are that size), e.g. 390x844 for a phone-sized page. Chromium's window
    /// cannot be narrower than 500 px, so the size is set by device-metrics emulation, at pixel
    /// ratio 1 and with desktop behaviour: no touch events, and `<meta name=viewport>` ignored
    /// (so a page is laid out at `width` whether or not it has one).
    pub async fn with_window(width: u32, height: u32) -> Browser {
        let chromedriver = binary("LFR_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver");
        let chromium = binary("LFR_CHROMIUM", "/usr/bin/chromium", "chromium");
        let dir = tempfile::Builder::new()
            .prefix("lfr-browser-")
            .tempdir()
            .expect("temp dir for the browser profile");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let crash_dir = dir.path().join("crash");

        // The port was free a moment ago; if chromedriver loses the race it exits, and we retry.
        let mut attempt = 0;
        let (driver, port) = loop {
            attempt += 1;
            let port = crate::free_port();
            let mut driver = spawn_driver(&chromedriver, port, &log, &crash_dir);
            match wait_until_ready(&mut driver, port).await {
                Ok(()) => break (driver, port),
                Err(why) => {
                    kill_group(&mut driver);
                    if attempt == 3 {
                        panic!(
                            "chromedriver ({}) did not start: {why}\n{}",
                            chromedriver.display(),
                            read_log(&log)
                        );
                    }
                }
            }
        };

        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            // Chromium's window is at least 500 px wide, even headless: the viewport's exact size
            // comes from the device metrics below.
            format!("--window-size={},{height}", width.max(500)),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": args,
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": width,
                        "height": height,
                        "pixelRatio": 1.0,
                        "mobile": false,
                        "touch": false,
                    },
                },
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connect = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let browser = match connect {
            Ok(client) => Browser {
                client,
                driver,
                port,
                dir,
                stopped: false,
            },
            Err(e) => {
                let mut driver = driver;
                kill_group(&mut driver);
                panic!(
                    "Chromium ({}) did not start a session: {e}\n{}",
                    chromium.display(),
                    read_log(&log)
                );
            }
        };
        browser
            .client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(60)),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap_or_else(|e| panic!("browser: set timeouts: {e}"));
        browser
    }

    /// The underlying WebDriver client, for anything not wrapped here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Open `url` and wait for its `load` event.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("goto {url}: {e}")).await
        }
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => self.fail(&format!("current url: {e}")).await,
        }
    }

    /// Replace the value of the field at `css` with `text` (typed, so input events fire).
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css, DEFAULT_WAIT).await;
        if let Err(e) = field.clear().await {
            self.fail(&format!("clear {css}: {e}")).await
        }
        if let Err(e) = field.send_keys(text).await {
            self.fail(&format!("type into {css}: {e}")).await
        }
    }

    /// Click the element at `css`.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("click {css}: {e}")).await
        }
    }

    /// Submit the form at `css`, or the form of the field at `css`, as pressing its submit button
    /// would (`requestSubmit`: validation and `submit` handlers run). Wait for what the next page
    /// shows with [`Browser::wait_for`].
    pub async fn submit(&self, css: &str) {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        const SCRIPT: &str = "const e = arguments[0];
            const form = e instanceof HTMLFormElement ? e : e.form;
            if (!form) { return 'no form'; }
            form.requestSubmit();
            return 'ok';";
        let arg = serde_json::to_value(&element).expect("element reference as JSON");
        match self.client.execute(SCRIPT, vec![arg]).await {
            Ok(serde_json::Value::String(s)) if s == "ok" => {}
            Ok(other) => {
                self.fail(&format!("submit {css}: {other} (not a form nor in one)"))
                    .await
            }
            Err(e) => self.fail(&format!("submit {css}: {e}")).await,
        }
    }

    /// The rendered text of the element at `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        match element.text().await {
            Ok(t) => t,
            Err(e) => self.fail(&format!("text of {css}: {e}")).await,
        }
    }

    /// Whether an element matches `css` right now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        match self.client.find_all(Locator::Css(css)).await {
            Ok(found) => !found.is_empty(),
            Err(e) => self.fail(&format!("find {css}: {e}")).await,
        }
    }

    /// Wait up to `timeout` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                self.fail(&format!("no {css} within {timeout:?}: {e}"))
                    .await
            }
        }
    }

    /// Wait up to `timeout` until the element at `css` exists and its text contains `needle`;
    /// returns its whole text. For live pages (SSE): the element may be replaced meanwhile.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                // A stale element (replaced between find and text) just means: look again.
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last = text;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "{css} did not show {needle:?} within {timeout:?}; last text: {last:?}"
                ))
                .await
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Save a PNG of the viewport as `<artefacts>/<name>.png` and return its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name).await {
            Ok(path) => path,
            Err(e) => panic!("screenshot {name}: {e}"),
        }
    }

    async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let png = self.client.screenshot().await.map_err(|e| e.to_string())?;
        let dir = artefacts_dir();
        let stem: String = name
            .trim_end_matches(".png")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{stem}.png"));
        std::fs::write(&path, png).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The chromedriver's process id (also its process group's: Chromium runs inside it).
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// The loopback port chromedriver listens on.
    pub fn driver_port(&self) -> u16 {
        self.port
    }

    /// Every live process of this browser: chromedriver and Chromium's browser, renderer, GPU and
    /// utility processes (those in chromedriver's process group or using this profile).
    pub fn pids(&self) -> Vec<u32> {
        if self.stopped {
            return Vec::new();
        }
        browser_processes(Some(self.driver.id()), self.dir.path())
    }

    /// End the session (Chromium quits) and stop chromedriver.
    pub async fn close(mut self) {
        // Let Chromium shut down cleanly (and reap its children); the group kill then ends
        // chromedriver and anything that outlived it.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && browser_processes(Some(self.driver.id()), self.dir.path()).len() > 1
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop();
    }

    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // Listed while chromedriver is unreaped, so the group id is still ours.
        let pids = browser_processes(Some(self.driver.id()), self.dir.path());
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        // A kill is delivered asynchronously: give them a moment to be gone.
        let deadline = Instant::now() + Duration::from_secs(3);
        while pids.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.driver);
        // Chromium processes that left the group, if any: they name our profile directory.
        for pid in browser_processes(None, self.dir.path()) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    /// Panic with `what`, the page's URL and a screenshot of the moment.
    async fn fail(&self, what: &str) -> ! {
        // A hung chromedriver must not turn a failure into a hang.
        let limit = Duration::from_secs(5);
        let url = match tokio::time::timeout(limit, self.client.current_url()).await {
            Ok(Ok(u)) => u.to_string(),
            _ => "?".into(),
        };
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!("failure-{millis}");
        let shot = tokio::time::timeout(limit, self.try_screenshot(&name));
        let shot = match shot.await {
            Ok(Ok(p)) => p.display().to_string(),
            Ok(Err(e)) => format!("(none: {e})"),
            Err(_) => "(none: timed out)".into(),
        };
        panic!("browser: {what}\n  at {url}\n  screenshot: {shot}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where screenshots go: `$LFR_ARTEFACTS`, else `<workspace>/target/artefacts` (created).
pub fn artefacts_dir() -> PathBuf {
    let dir = std::env::var_os("LFR_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artefacts"));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create artefacts dir {}: {e}", dir.display()));
    dir.canonicalize().unwrap_or(dir)
}

fn binary(var: &str, default: &str, what: &str) -> PathBuf {
    find_binary(std::env::var_os(var), var, default, what)
}

fn find_binary(set: Option<std::ffi::OsString>, var: &str, default: &str, what: &str) -> PathBuf {
    let path = set
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{what} not found at {} (set {var} to use another): run scripts/setup.sh",
        path.display()
    );
    path
}

fn spawn_driver(chromedriver: &Path, port: u16, log: &Path, crash_dir: &Path) -> Child {
    let out = File::create(log).expect("chromedriver log file");
    let err = out.try_clone().expect("chromedriver log file");
    use std::os::unix::process::CommandExt;
    Command::new(chromedriver)
        .arg(format!("--port={port}"))
        // Chromium's crash handler otherwise keeps its database in ~/.config/chromium; here it
        // stays in the temp dir and names it, so it is found and ended with the rest.
        .env("BREAKPAD_DUMP_LOCATION", crash_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, which Chromium inherits: one kill ends them all.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e}: run scripts/setup.sh",
                chromedriver.display()
            )
        })
}

/// Poll chromedriver's `/status` until it says ready; `Err` if it exits or takes too long.
async fn wait_until_ready(driver: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if let Ok(resp) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
            if let Ok(body) = resp.text().await {
                if body.contains("\"ready\":true") || body.contains("\"ready\": true") {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer on port {port} within {START_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL the process group led by `driver`, and reap the leader.
fn kill_group(driver: &mut Child) {
    let pgid = driver.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = driver.kill();
    let _ = driver.wait();
}

fn read_log(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("chromedriver log ({}):\n{}", log.display(), tail.join("\n"))
}

/// Live (not zombie) processes in process group `pgid` or whose command line names `dir`.
fn browser_processes(pgid: Option<u32>, dir: &Path) -> Vec<u32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let pgrp = fields.nth(1).and_then(|s| s.parse::<u32>().ok());
        if state == "Z" || state == "X" {
            continue;
        }
        let in_group = pgid.is_some() && pgrp == pgid;
        let uses_dir = !needle.is_empty()
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false);
        if in_group || uses_dir {
            pids.push(pid);
        }
    }
    pids
}

/// Whether process `pid` is still running (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "chromedriver not found at /nowhere/chromedriver (set LFR_CHROMEDRIVER to use another): run scripts/setup.sh"
    )]
    fn a_missing_binary_says_what_to_run() {
        find_binary(
            Some("/nowhere/chromedriver".into()),
            "LFR_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "chromedriver",
        );
    }

    #[test]
    fn artefacts_go_under_the_workspace_target_dir() {
        if std::env::var_os("LFR_ARTEFACTS").is_none() {
            let dir = artefacts_dir();
            assert!(dir.ends_with("target/artefacts"), "{}", dir.display());
            assert!(dir
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.lock")
                .exists());
        }
    }
}
