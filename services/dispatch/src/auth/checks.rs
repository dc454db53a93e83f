//! # Password checks: a bounded pool for argon2
//!
//! Each argon2id verification takes tens of milliseconds of one core and 19 MiB of memory, by
//! design. Unbounded, a burst of logins (different accounts, different addresses: the throttle
//! lets each through) would run that many at once and could exhaust dispatch's memory. So every
//! login's password check takes a **slot** first:
//!
//! - at most `concurrent` checks run at once (`[dispatch.auth] password_checks`);
//! - at most `queue` more wait for a slot (`password_check_queue`); beyond that a login is
//!   refused at once with "busy, try again shortly" (HTTP 503), before anything is checked.
//!
//! The slot is held by the blocking task that runs argon2, not by the request: a client that
//! goes away mid-check does not free a slot while its check still runs.
//!
//! Counted on dispatch's `/metrics`: `lfr_dispatch_password_checks_total` (argon2 verifications
//! run for logins) and `lfr_dispatch_password_checks_running`.

use prometheus::{IntCounter, IntGauge, Registry};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// No slot and the queue is full: the login is refused without checking anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins at once, try again shortly")]
pub struct Busy;

#[derive(Clone)]
pub struct PasswordChecks {
    slots: Arc<Semaphore>,
    concurrent: usize,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    total: IntCounter,
    running: IntGauge,
    /// The most checks ever seen running at once (for tests and curiosity).
    peak: Arc<AtomicUsize>,
}

impl PasswordChecks {
    /// A pool of `concurrent` slots (at least one) and a queue of `queue` waiting checks, its
    /// counters registered on `registry`.
    pub fn new(
        concurrent: usize,
        queue: usize,
        registry: &Registry,
    ) -> anyhow::Result<PasswordChecks> {
        let checks = PasswordChecks::unregistered(concurrent, queue)?;
        registry.register(Box::new(checks.total.clone()))?;
        registry.register(Box::new(checks.running.clone()))?;
        Ok(checks)
    }

    /// The same pool with counters nobody scrapes (tools that check a password or two).
    pub fn unregistered(concurrent: usize, queue: usize) -> anyhow::Result<PasswordChecks> {
        anyhow::ensure!(
            concurrent >= 1,
            "dispatch.auth.password_checks must be at least 1"
        );
        Ok(PasswordChecks {
            slots: Arc::new(Semaphore::new(concurrent)),
            concurrent,
            waiting: Arc::default(),
            queue,
            total: IntCounter::new(
                "dispatch_password_checks_total",
                "Argon2 password verifications run for console logins",
            )?,
            running: IntGauge::new(
                "dispatch_password_checks_running",
                "Argon2 password verifications running now",
            )?,
            peak: Arc::default(),
        })
    }

    /// How many checks may run at once.
    pub fn concurrent(&self) -> usize {
        self.concurrent
    }

    /// Checks run so far.
    pub fn total(&self) -> u64 {
        self.total.get()
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Wait for a slot, or [`Busy`] at once when `queue` others are already waiting.
    pub async fn slot(&self) -> Result<Slot, Busy> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(self.slot_with(permit));
        }
        let admitted = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.queue).then_some(w + 1)
            })
            .is_ok();
        if !admitted {
            return Err(Busy);
        }
        /// Leaves the queue however the wait ends (a slot, or the request dropped).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.waiting);
        let permit = self.slots.clone().acquire_owned().await.map_err(|_| Busy)?;
        Ok(self.slot_with(permit))
    }

    fn slot_with(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            checks: self.clone(),
        }
    }
}

/// The right to run one password check; freed when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    checks: PasswordChecks,
}

impl Slot {
    /// Run `check` (argon2) in this slot, counting it. Call on a blocking thread.
    pub fn run<T>(self, check: impl FnOnce() -> T) -> T {
        let c = &self.checks;
        c.total.inc();
        c.running.inc();
        let now = c.running.get().max(0) as usize;
        c.peak.fetch_max(now, Ordering::Relaxed);
        let out = check();
        c.running.dec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_slots_bound_the_checks_running() {
        let checks = PasswordChecks::unregistered(2, 3).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let checks = checks.clone();
            tasks.push(tokio::spawn(async move {
                let slot = checks.slot().await?;
                tokio::task::spawn_blocking(move || {
                    slot.run(|| std::thread::sleep(Duration::from_millis(50)))
                })
                .await
                .unwrap();
                Ok::<(), Busy>(())
            }));
        }
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                busy += 1;
            }
        }
        assert!(busy > 0, "some refused");
        assert_eq!(checks.total() + busy, 20);
        assert!(checks.total() >= 2);
        assert!(checks.peak() <= 2, "peak {}", checks.peak());
        assert_eq!(checks.running.get(), 0);
        assert_eq!(checks.waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn at_least_one_slot() {
        assert!(PasswordChecks::unregistered(0, 1).is_err());
    }
}
