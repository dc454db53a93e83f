//! # Login throttling: making password guessing slow
//!
//! Argon2 makes each guess cost the server tens of milliseconds; the throttle makes guessing
//! hopeless. Failed logins are counted per **key**, and a login has two keys:
//!
//! - the **account from the address**: the typed account id together with the client's
//!   address. After `max_failures` failures within `window` that pair is locked for `lockout`.
//!   Someone hammering an operator's account from one place locks only themselves out: the
//!   operator, logging in from their own workstation, is not affected.
//! - the **address**: the client's address, whatever the account. A higher limit,
//!   `max_failures_per_address`, stops one address guessing across many accounts. IPv6 clients
//!   are keyed by their /64, which one client usually holds entirely.
//!
//! While a key is locked every attempt on it is refused before any password is checked (the
//! right password included), with "too many attempts, try later" (HTTP 429).
//!
//! ## Checked and counted in one step
//!
//! [`Throttle::begin`] checks the keys and, in the same critical section, reserves the attempt
//! against them: an attempt whose password is being checked counts as a failure until it
//! resolves. So however many wrong logins arrive at once, no more than the limit are let through
//! to argon2: the rest are refused at once. The [`Attempt`] it returns is then resolved exactly
//! once: [`Attempt::failed`] (the reservation becomes a failure, and may lock the key),
//! [`Attempt::succeeded`] (the account's count from that address is cleared), or
//! [`Attempt::abandoned`] (no password was checked: the reservation is given back). An attempt
//! dropped unresolved (the client went away mid-check) counts as failed.
//!
//! A successful login clears the count of its account from its address, not the address's count:
//! otherwise a guesser with one valid account of their own could reset their address between
//! guesses.
//!
//! The counts live in this process's memory, so each dispatch replica counts on its own and a
//! restart forgets them: acceptable, because locking out is a brake, not the only defence. Stale
//! keys are swept so a flood of junk ids cannot grow the map without bound.
//!
//! Time comes from an injectable clock so tests can step through windows without sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Beyond this many tracked keys, each new attempt first sweeps the stale ones.
const SWEEP_ABOVE: usize = 10_000;
/// What a refusal suggests when a key is not locked, only full of attempts still being checked.
const BUSY_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failures for one account from one address that lock that account from that address.
    pub max_failures: u32,
    /// Failures from one address, whatever the accounts, that lock the address.
    pub max_failures_per_address: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// A refused attempt: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts, try later")]
pub struct Throttled {
    pub retry_after: Duration,
}

/// Which key a failure locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockedOut {
    /// The typed account, from the client's address.
    AccountFromAddress,
    /// The client's address, for every account.
    Address,
}

/// A lockout that a failure has just started: reported once, by the failure that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub locked: LockedOut,
    /// Failures within the window that led to it.
    pub failures: u32,
    /// How long it lasts.
    pub lockout: Duration,
}

#[derive(Default)]
struct Entry {
    /// Times of recent failures, oldest first (at most the key's limit).
    failures: VecDeque<Instant>,
    /// Attempts let through whose outcome is not known yet.
    in_flight: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn is_locked_at(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }

    /// Drop failures older than `window`, and a lockout that is over (counting starts afresh).
    fn expire(&mut self, now: Instant, window: Duration) {
        if self.locked_until.is_some_and(|t| t <= now) {
            self.locked_until = None;
            self.failures.clear();
        }
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0
            && !self.is_locked_at(now)
            && self
                .failures
                .back()
                .is_none_or(|&t| now.saturating_duration_since(t) >= window)
    }
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Clone)]
pub struct Throttle {
    limits: ThrottleLimits,
    clock: Clock,
    keys: Arc<Mutex<HashMap<String, Entry>>>,
}

/// One throttle key of an attempt and the failures that lock it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    limit: u32,
    kind: LockedOut,
}

/// The address as the throttle keys it: IPv4 (v4-mapped IPv6 included) as is, IPv6 by its /64.
fn address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The keys of one attempt: the typed account id from the client's address and, when the
/// address is known, the address.
fn keys(account: &str, ip: Option<IpAddr>, limits: &ThrottleLimits) -> Vec<Key> {
    let account = super::accounts::sanitize_id(account);
    let from = ip.map_or_else(|| "unknown".to_string(), address);
    let mut keys = vec![Key {
        name: format!("account:{account}@{from}"),
        limit: limits.max_failures,
        kind: LockedOut::AccountFromAddress,
    }];
    if ip.is_some() {
        keys.push(Key {
            name: format!("ip:{from}"),
            limit: limits.max_failures_per_address,
            kind: LockedOut::Address,
        });
    }
    keys
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Throttle {
        Throttle::with_clock(limits, Arc::new(Instant::now))
    }

    /// A throttle reading the time from `clock` (tests pass a clock they move by hand).
    pub fn with_clock(limits: ThrottleLimits, clock: Clock) -> Throttle {
        Throttle {
            limits,
            clock,
            keys: Arc::default(),
        }
    }

    pub fn limits(&self) -> ThrottleLimits {
        self.limits
    }

    /// Let an attempt for `account` from `ip` go ahead, reserving it against both keys, or refuse
    /// it: a key is locked, or its recent failures and the attempts still being checked already
    /// reach its limit. Call before checking the password; resolve the [`Attempt`] after.
    pub fn begin(&self, account: &str, ip: Option<IpAddr>) -> Result<Attempt, Throttled> {
        let now = (self.clock)();
        let limits = self.limits;
        let keys = keys(account, ip, &limits);
        let mut map = self.lock();
        let mut locked: Option<Duration> = None;
        let mut full = false;
        for key in &keys {
            let Some(entry) = map.get_mut(&key.name) else {
                continue;
            };
            entry.expire(now, limits.window);
            if let Some(until) = entry.locked_until {
                let left = until - now;
                locked = Some(locked.map_or(left, |l| l.max(left)));
            } else if entry.failures.len() as u64 + u64::from(entry.in_flight)
                >= u64::from(key.limit)
            {
                full = true;
            }
        }
        if let Some(retry_after) = locked {
            return Err(Throttled { retry_after });
        }
        if full {
            return Err(Throttled {
                retry_after: BUSY_RETRY,
            });
        }
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, e| !e.is_stale(now, limits.window));
        }
        for key in &keys {
            map.entry(key.name.clone()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            throttle: self.clone(),
            keys,
            resolved: false,
        })
    }

    /// How many keys are tracked (for tests and curiosity).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The reservation of `keys` becomes a failure; returns the lockouts it started.
    fn fail(&self, keys: &[Key]) -> Vec<Lockout> {
        let now = (self.clock)();
        let limits = self.limits;
        let mut map = self.lock();
        let mut started = Vec::new();
        for key in keys {
            let entry = map.entry(key.name.clone()).or_default();
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.expire(now, limits.window);
            if entry.is_locked_at(now) {
                continue;
            }
            entry.failures.push_back(now);
            if entry.failures.len() >= key.limit as usize {
                started.push(Lockout {
                    locked: key.kind,
                    failures: entry.failures.len() as u32,
                    lockout: limits.lockout,
                });
                entry.failures.clear();
                entry.locked_until = Some(now + limits.lockout);
            }
        }
        started
    }

    /// Give back the reservation of `keys`; with `clear_account`, also forget the failures of the
    /// account from the address (a good login), unless it is locked.
    fn release(&self, keys: &[Key], clear_account: bool) {
        let now = (self.clock)();
        let mut map = self.lock();
        for key in keys {
            let Some(entry) = map.get_mut(&key.name) else {
                continue;
            };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if clear_account
                && key.kind == LockedOut::AccountFromAddress
                && !entry.is_locked_at(now)
            {
                entry.failures.clear();
            }
            if entry.in_flight == 0 && entry.failures.is_empty() && entry.locked_until.is_none() {
                map.remove(&key.name);
            }
        }
    }
}

/// An attempt the throttle let through; resolve it once with what the password check said.
/// Dropped unresolved, it counts as failed.
#[must_use = "resolve the attempt: failed, succeeded or abandoned"]
pub struct Attempt {
    throttle: Throttle,
    keys: Vec<Key>,
    resolved: bool,
}

impl Attempt {
    /// Wrong account or password (or a disabled account): count the failure. Returns the
    /// lockouts this failure started, so the caller can record each once.
    pub fn failed(mut self) -> Vec<Lockout> {
        self.resolved = true;
        self.throttle.fail(&self.keys)
    }

    /// The right password: the account's count from this address is cleared.
    pub fn succeeded(mut self) {
        self.resolved = true;
        self.throttle.release(&self.keys, true);
    }

    /// No password was checked (the service was busy or unavailable): as if it never came.
    pub fn abandoned(mut self) {
        self.resolved = true;
        self.throttle.release(&self.keys, false);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.resolved {
            self.throttle.fail(&self.keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// A clock that moves only when the test says.
    struct Manual(Arc<Mutex<Instant>>);

    impl Manual {
        fn new() -> (Manual, Clock) {
            let now = Arc::new(Mutex::new(Instant::now()));
            let read = now.clone();
            (Manual(now), Arc::new(move || *read.lock().unwrap()))
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    fn throttle() -> (Manual, Throttle) {
        let (clock, read) = Manual::new();
        let limits = ThrottleLimits {
            max_failures: 5,
            max_failures_per_address: 20,
            window: 15 * MIN,
            lockout: 15 * MIN,
        };
        (clock, Throttle::with_clock(limits, read))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// One wrong password; panics if the throttle refused the attempt.
    fn fail(t: &Throttle, account: &str, from: Option<IpAddr>) -> Vec<Lockout> {
        t.begin(account, from).expect("let through").failed()
    }

    fn allowed(t: &Throttle, account: &str, from: Option<IpAddr>) -> bool {
        t.begin(account, from).map(Attempt::abandoned).is_ok()
    }

    #[test]
    fn five_failures_within_the_window_lock_the_account_from_that_address() {
        let (clock, t) = throttle();
        for _ in 0..4 {
            assert!(fail(&t, "alice", ip("10.0.0.1")).is_empty());
            clock.advance(MIN);
        }
        assert!(allowed(&t, "alice", ip("10.0.0.1")), "four is fine");
        assert_eq!(
            fail(&t, "alice", ip("10.0.0.1")),
            [Lockout {
                locked: LockedOut::AccountFromAddress,
                failures: 5,
                lockout: 15 * MIN
            }]
        );
        let refused = t.begin("alice", ip("10.0.0.1")).err().unwrap();
        assert_eq!(refused.retry_after, 15 * MIN);
        assert_eq!(refused.to_string(), "too many attempts, try later");
        // Alice herself, from her own workstation, is not locked out.
        assert!(allowed(&t, "alice", ip("10.0.0.2")));
        // Nor is another account from the guesser's address (its limit is higher).
        assert!(allowed(&t, "bob", ip("10.0.0.1")));

        clock.advance(15 * MIN - Duration::from_secs(1));
        assert_eq!(
            t.begin("alice", ip("10.0.0.1")).err().unwrap().retry_after,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert!(allowed(&t, "alice", ip("10.0.0.1")), "lockout over");
        // The count starts afresh: one more failure does not lock again.
        assert!(fail(&t, "alice", ip("10.0.0.1")).is_empty());
        assert!(allowed(&t, "alice", ip("10.0.0.1")));
    }

    #[test]
    fn one_address_trying_many_accounts_is_locked_at_the_higher_limit() {
        let (_clock, t) = throttle();
        for i in 0..19 {
            assert!(fail(&t, &format!("u{i}"), ip("10.0.0.1")).is_empty());
        }
        let locked = fail(&t, "u19", ip("10.0.0.1"));
        assert_eq!(locked.len(), 1);
        assert_eq!(locked[0].locked, LockedOut::Address);
        assert_eq!(locked[0].failures, 20);
        assert!(!allowed(&t, "someone-else", ip("10.0.0.1")));
        assert!(allowed(&t, "someone-else", ip("10.0.0.2")));
    }

    #[test]
    fn attempts_being_checked_count_so_a_burst_gets_no_more_than_the_limit_through() {
        let (_clock, t) = throttle();
        let through: Vec<Attempt> = (0..200)
            .filter_map(|_| t.begin("alice", ip("10.0.0.1")).ok())
            .collect();
        assert_eq!(
            through.len(),
            5,
            "the rest refused before any password check"
        );
        let refused = t.begin("alice", ip("10.0.0.1")).err().unwrap();
        assert_eq!(refused.retry_after, BUSY_RETRY, "not locked yet: only full");
        let lockouts: Vec<Lockout> = through.into_iter().flat_map(Attempt::failed).collect();
        assert_eq!(lockouts.len(), 1, "the fifth failure locks, once");
        assert_eq!(
            t.begin("alice", ip("10.0.0.1")).err().unwrap().retry_after,
            15 * MIN
        );
    }

    #[test]
    fn abandoned_attempts_give_their_reservation_back_and_dropped_ones_count_as_failed() {
        let (_clock, t) = throttle();
        for _ in 0..10 {
            t.begin("alice", ip("10.0.0.1")).unwrap().abandoned();
        }
        assert_eq!(t.tracked(), 0, "nothing left behind");
        for _ in 0..5 {
            drop(t.begin("alice", ip("10.0.0.1")).unwrap());
        }
        assert!(!allowed(&t, "alice", ip("10.0.0.1")));
    }

    #[test]
    fn failures_older_than_the_window_no_longer_count() {
        let (clock, t) = throttle();
        for _ in 0..4 {
            fail(&t, "alice", None);
        }
        clock.advance(15 * MIN);
        fail(&t, "alice", None);
        assert!(allowed(&t, "alice", None), "the first four slid out");
        for _ in 0..3 {
            clock.advance(MIN);
            fail(&t, "alice", None);
        }
        assert!(allowed(&t, "alice", None), "four in the window");
        clock.advance(MIN);
        fail(&t, "alice", None);
        assert!(!allowed(&t, "alice", None), "five in the window");
    }

    #[test]
    fn success_clears_the_account_count_but_not_the_address_count() {
        let (_clock, t) = throttle();
        for _ in 0..4 {
            fail(&t, "alice", ip("10.0.0.1"));
        }
        t.begin("alice", ip("10.0.0.1")).unwrap().succeeded();
        fail(&t, "alice", ip("10.0.0.1"));
        assert!(
            allowed(&t, "alice", ip("10.0.0.1")),
            "account count restarted"
        );
        // The address kept its five failures (a success is none): fifteen more lock it.
        for i in 0..14 {
            fail(&t, &format!("m{i}"), ip("10.0.0.1"));
        }
        assert!(allowed(&t, "anyone", ip("10.0.0.1")), "nineteen");
        for i in 14..15 {
            fail(&t, &format!("m{i}"), ip("10.0.0.1"));
        }
        assert!(
            !allowed(&t, "anyone", ip("10.0.0.1")),
            "the address kept its count"
        );
    }

    #[test]
    fn a_good_login_elsewhere_does_not_lift_the_guessers_lockout() {
        let (_clock, t) = throttle();
        for _ in 0..5 {
            fail(&t, "alice", ip("10.0.0.1"));
        }
        t.begin("alice", ip("10.0.0.2")).unwrap().succeeded();
        assert!(!allowed(&t, "alice", ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let (_clock, t) = throttle();
        for i in 0..20 {
            fail(&t, &format!("u{i}"), ip(&format!("2001:db8:1:2::{i}")));
        }
        assert!(!allowed(&t, "other", ip("2001:db8:1:2:ffff::1")));
        assert!(allowed(&t, "other", ip("2001:db8:1:3::1")));
        let limits = t.limits();
        assert_eq!(
            keys("a", ip("::ffff:10.0.0.1"), &limits)[1].name,
            "ip:10.0.0.1",
            "v4-mapped addresses are v4"
        );
    }

    #[test]
    fn typed_ids_are_sanitised_into_keys() {
        let (_clock, t) = throttle();
        let limits = t.limits();
        let k = keys("al ice!", None, &limits);
        assert_eq!(k.len(), 1, "no address, no address key");
        assert_eq!(k[0].name, "account:alice@unknown");
        assert_eq!(
            keys("al ice!", ip("10.0.0.1"), &limits)[0].name,
            "account:alice@10.0.0.1"
        );
    }

    #[test]
    fn stale_keys_are_swept() {
        let (clock, t) = throttle();
        for i in 0..=SWEEP_ABOVE {
            fail(&t, &format!("junk{i}"), None);
        }
        assert_eq!(t.tracked(), SWEEP_ABOVE + 1);
        clock.advance(15 * MIN);
        fail(&t, "fresh", None);
        assert_eq!(t.tracked(), 1);
    }
}
