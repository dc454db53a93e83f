//! The console's people in the fault harness: an operator who watches the review queue and
//! confirms every alert on it, and an officer who records each confirmed alert's outcome, both
//! over HTTP against the real dispatch service, each pressing again, as a person at a browser
//! would, when dispatch does not answer (killed, restarting, its book still catching up).
//!
//! The desk keeps a tally of what dispatch acknowledged (answered with its redirect back to the
//! queue or the feed). The harness compares it with what ALERTS holds ([`super::records`]): an
//! acknowledged decision or outcome that is not stored is lost; a second one stored for an alert
//! is a duplicate; an alert nobody could decide is counted too.
//!
//! [`Desk::arm`] lets the `dispatch` fault strike while a decision is in flight: the desk sends
//! its next decision, and a few milliseconds later (inside dispatch's handler: it records the
//! audit event, stores the decision and waits to see it folded) tells the striker to kill.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The harness's console accounts and their password (a throwaway bus: no real account).
pub const OPERATOR: &str = "harness-operator";
pub const OFFICER: &str = "harness-officer";
pub const PASSWORD: &str = "fault harness passphrase";

/// How long the desk keeps pressing for one alert before it gives up on it.
const PERSIST: Duration = Duration::from_secs(60);
/// Between presses.
const RETRY: Duration = Duration::from_millis(250);
/// After sending the armed decision, how long before the striker is told: long enough for the
/// request to reach dispatch, short of its handler's bus round trips.
const IN_FLIGHT: Duration = Duration::from_millis(3);
/// How often the operator looks at the queue (the console's page refreshes on live events).
const LOOK: Duration = Duration::from_millis(500);

/// A person logged in at the console: their session cookie and CSRF token.
struct Person {
    http: reqwest::Client,
    base: String,
    account: &'static str,
    cookie: String,
    csrf: String,
}

impl Person {
    async fn log_in(console: SocketAddr, account: &'static str) -> anyhow::Result<Person> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        let base = format!("http://{console}");
        let login = http
            .post(format!("{base}/login"))
            .form(&[("account", account), ("password", PASSWORD)])
            .send()
            .await?;
        anyhow::ensure!(
            login.status() == 303,
            "{account} not logged in: {}",
            login.status()
        );
        let cookie = login
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("lfr_session="))
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| anyhow::anyhow!("no session cookie for {account}"))?
            .to_string();
        let home = login
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("/")
            .to_string();
        let page = http
            .get(format!("{base}{home}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .text()
            .await?;
        let at = page
            .find(r#"name="csrf" value=""#)
            .ok_or_else(|| anyhow::anyhow!("no CSRF token on {account}'s page"))?
            + 19;
        let csrf = page
            .get(at..at + 64)
            .ok_or_else(|| anyhow::anyhow!("short CSRF token"))?
            .to_string();
        Ok(Person {
            http,
            base,
            account,
            cookie,
            csrf,
        })
    }

    /// Log in, pressing again until dispatch answers.
    async fn log_in_patiently(
        console: SocketAddr,
        account: &'static str,
    ) -> anyhow::Result<Person> {
        let deadline = Instant::now() + PERSIST;
        loop {
            match Person::log_in(console, account).await {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, account, "console login not answered yet");
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GET a page or fragment; its text when dispatch answered 200.
    async fn get(&self, path: &str) -> Option<String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.text().await.ok()
    }

    /// POST a form; the answer, or `None` when none came (connection refused or cut).
    fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> impl std::future::Future<Output = Option<Answer>> + 'static {
        let mut form: Vec<(String, String)> = vec![("csrf".into(), self.csrf.clone())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(&form);
        async move {
            let r = request.send().await.ok()?;
            Some(Answer {
                status: r.status().as_u16(),
                location: r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_string),
            })
        }
    }
}

struct Answer {
    status: u16,
    location: Option<String>,
}

/// What happened to one press.
enum Press {
    /// Dispatch took it (its redirect back to where the person works).
    Taken,
    /// Dispatch refused it for good (a conflict, a bad request): not pressed again.
    Refused(u16),
    /// No answer, or one that asks to come back (503, the alert not in its book yet, logged out).
    Again,
}

fn judge(answer: Option<Answer>, home: &str) -> Press {
    match answer {
        None => Press::Again,
        Some(a) if a.status == 303 && a.location.as_deref() == Some(home) => Press::Taken,
        // Sent to log in again: the session is gone (it should survive a restart; counted).
        Some(a) if a.status == 303 => Press::Again,
        Some(a) if a.status == 404 || a.status >= 500 => Press::Again,
        Some(a) => Press::Refused(a.status),
    }
}

/// What dispatch acknowledged for one alert.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Acknowledged {
    pub decision: bool,
    pub outcome: bool,
}

/// The desk's tally, shared with the harness.
#[derive(Default)]
pub struct Tally {
    by_alert: Mutex<HashMap<String, Acknowledged>>,
    /// Alerts seen on the queue and not yet through both steps (or given up).
    open: std::sync::atomic::AtomicU64,
    /// Presses that got no answer at all.
    unanswered: std::sync::atomic::AtomicU64,
    /// Presses refused for good.
    refused: std::sync::atomic::AtomicU64,
    /// Whether the decision sent when armed got no answer (dispatch died under it).
    armed_unanswered: Mutex<Option<bool>>,
}

impl Tally {
    pub fn acknowledged(&self, alert_id: &str) -> Acknowledged {
        self.by_alert
            .lock()
            .unwrap()
            .get(alert_id)
            .copied()
            .unwrap_or_default()
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// After an armed strike: whether the decision in flight was cut off (`None`: not sent yet).
    pub fn armed_unanswered(&self) -> Option<bool> {
        *self.armed_unanswered.lock().unwrap()
    }

    fn note(&self, alert_id: &str, f: impl FnOnce(&mut Acknowledged)) {
        f(self
            .by_alert
            .lock()
            .unwrap()
            .entry(alert_id.to_string())
            .or_default());
    }
}

pub struct Desk {
    pub tally: Arc<Tally>,
    armed: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Desk {
    /// Log both people in and start working the review queue.
    pub async fn start(console: SocketAddr) -> anyhow::Result<Desk> {
        let operator = Person::log_in_patiently(console, OPERATOR).await?;
        let officer = Person::log_in_patiently(console, OFFICER).await?;
        let tally = Arc::new(Tally::default());
        let armed = Arc::new(Mutex::new(None));
        let (t, a) = (tally.clone(), armed.clone());
        let task = tokio::spawn(async move {
            let work = Work {
                operator,
                officer,
                tally: t,
                armed: a,
            };
            // Each alert once: taken, refused or given up, it is not pressed again.
            let mut done = HashSet::new();
            loop {
                match work.operator.get("/operator/queue").await {
                    Some(queue) => {
                        let new: Vec<String> = queued(&queue)
                            .into_iter()
                            .filter(|id| done.insert(id.clone()))
                            .collect();
                        let open = &work.tally.open;
                        open.fetch_add(new.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        for id in new {
                            work.alert(&id).await;
                            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    None => {
                        work.tally
                            .unanswered
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(LOOK).await;
            }
        });
        Ok(Desk { tally, armed, task })
    }

    /// The next decision sent fires the returned signal while it is in flight.
    pub fn arm(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.armed.lock().unwrap() = Some(tx);
        *self.tally.armed_unanswered.lock().unwrap() = None;
        rx
    }

    /// Wait until every alert seen is through (or `limit` passes).
    pub async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        // Time for the operator to look at the queue again.
        tokio::time::sleep(LOOK * 3).await;
        while self.tally.open.load(std::sync::atomic::Ordering::Relaxed) > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// The alert ids on a review queue fragment, oldest first.
fn queued(fragment: &str) -> Vec<String> {
    const MARK: &str = r#"data-alert=""#;
    fragment
        .match_indices(MARK)
        .filter_map(|(at, _)| {
            let rest = &fragment[at + MARK.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// The desk at work: one alert at a time, decided, then its outcome recorded.
struct Work {
    operator: Person,
    officer: Person,
    tally: Arc<Tally>,
    armed: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Work {
    async fn alert(&self, id: &str) {
        let decided = self
            .press(
                &self.operator,
                &format!("/alerts/{id}/decision"),
                &[("decision", "confirm")],
                "/operator",
                true,
            )
            .await;
        if decided {
            self.tally.note(id, |a| a.decision = true);
            let recorded = self
                .press(
                    &self.officer,
                    &format!("/alerts/{id}/outcome"),
                    &[("outcome", "not-located")],
                    "/handheld",
                    false,
                )
                .await;
            if recorded {
                self.tally.note(id, |a| a.outcome = true);
            }
        }
    }

    /// Press until dispatch takes it, refuses it, or [`PERSIST`] passes. Whether it was taken.
    async fn press(
        &self,
        person: &Person,
        path: &str,
        fields: &[(&str, &str)],
        home: &str,
        armable: bool,
    ) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let deadline = Instant::now() + PERSIST;
        loop {
            let armed = armable.then(|| self.armed.lock().unwrap().take()).flatten();
            let answer = match armed {
                Some(signal) => {
                    let request = tokio::spawn(person.post(path, fields));
                    tokio::time::sleep(IN_FLIGHT).await;
                    let _ = signal.send(());
                    let answer = request.await.ok().flatten();
                    *self.tally.armed_unanswered.lock().unwrap() = Some(answer.is_none());
                    answer
                }
                None => person.post(path, fields).await,
            };
            if answer.is_none() {
                self.tally.unanswered.fetch_add(1, Relaxed);
            }
            match judge(answer, home) {
                Press::Taken => return true,
                Press::Refused(status) => {
                    tracing::warn!(account = person.account, path, status, "console refused");
                    self.tally.refused.fetch_add(1, Relaxed);
                    return false;
                }
                Press::Again if Instant::now() < deadline => tokio::time::sleep(RETRY).await,
                Press::Again => {
                    tracing::warn!(account = person.account, path, "console never took it");
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_queue_fragment_names_its_alerts_in_order() {
        let fragment = r#"<article class="alert" id="alert-a1" data-alert="a1">x</article>
<article class="alert escalated" id="alert-b-2" data-alert="b-2">y</article>"#;
        assert_eq!(super::queued(fragment), ["a1", "b-2"]);
        assert!(super::queued(r#"<p class="empty">No alerts waiting for review.</p>"#).is_empty());
    }
}
