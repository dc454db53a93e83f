//! # Login throttling: making password guessing slow
//!
//! Argon2 makes each guess cost the server tens of milliseconds; the throttle makes guessing
//! hopeless. Failed logins are counted per **key**, and a login has two keys: the account id that
//! was typed, and the client's address. After `max_failures` failures for one key within
//! `window`, that key is locked for `lockout`: every attempt on it is refused before any password
//! is checked (the right password included), with "too many attempts, try later" (HTTP 429).
//!
//! - The account key stops one account being guessed from many addresses.
//! - The address key stops one address guessing across many accounts. IPv6 clients are keyed
//!   by their /64, which one client usually holds entirely.
//!
//! A successful login clears its account's count (not its address's: otherwise a guesser with
//! one valid account of their own could reset their address between guesses).
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

/// Beyond this many tracked keys, each failure first sweeps the stale ones.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// A refused attempt: the key is locked for `retry_after` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts, try later")]
pub struct Throttled {
    pub retry_after: Duration,
}

#[derive(Default)]
struct Entry {
    /// Times of recent failures, oldest first (at most `max_failures`).
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Entry {
    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.locked_until.is_none_or(|t| t <= now)
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

/// The keys of one attempt: the typed account id and, when known, the client's address.
fn keys(account: &str, ip: Option<IpAddr>) -> Vec<String> {
    let mut keys = vec![format!("account:{}", super::accounts::sanitize_id(account))];
    match ip {
        Some(IpAddr::V4(v4)) => keys.push(format!("ip:{v4}")),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => keys.push(format!("ip:{v4}")),
            None => {
                let s = v6.segments();
                keys.push(format!(
                    "ip:{:x}:{:x}:{:x}:{:x}::/64",
                    s[0], s[1], s[2], s[3]
                ));
            }
        },
        None => {}
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

    /// Whether an attempt for `account` from `ip` may go ahead. Call before checking the password.
    pub fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let now = (self.clock)();
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest: Option<Duration> = None;
        for key in keys(account, ip) {
            if let Some(until) = map.get(&key).and_then(|e| e.locked_until) {
                if until > now {
                    let left = until - now;
                    longest = Some(longest.map_or(left, |l| l.max(left)));
                } else {
                    // The lockout is over: start counting afresh.
                    map.remove(&key);
                }
            }
        }
        match longest {
            Some(retry_after) => Err(Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Count a failed attempt (wrong account or password) against both keys.
    pub fn failure(&self, account: &str, ip: Option<IpAddr>) {
        let now = (self.clock)();
        let limits = self.limits;
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, e| !e.is_stale(now, limits.window));
        }
        for key in keys(account, ip) {
            let entry = map.entry(key).or_default();
            while entry
                .failures
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= limits.window)
            {
                entry.failures.pop_front();
            }
            entry.failures.push_back(now);
            if entry.failures.len() >= limits.max_failures as usize {
                entry.failures.clear();
                entry.locked_until = Some(now + limits.lockout);
            }
        }
    }

    /// A good login: forget the account's failures (the address's stay).
    pub fn success(&self, account: &str) {
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let key = &keys(account, None)[0];
        if map.get(key).is_some_and(|e| e.locked_until.is_none()) {
            map.remove(key);
        }
    }

    /// How many keys are tracked (for tests and curiosity).
    pub fn tracked(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
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
            window: 15 * MIN,
            lockout: 15 * MIN,
        };
        (clock, Throttle::with_clock(limits, read))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn five_failures_within_the_window_lock_the_account_for_the_lockout() {
        let (clock, t) = throttle();
        for _ in 0..4 {
            assert!(t.check("alice", ip("10.0.0.1")).is_ok());
            t.failure("alice", ip("10.0.0.1"));
            clock.advance(MIN);
        }
        assert!(t.check("alice", ip("10.0.0.1")).is_ok(), "four is fine");
        t.failure("alice", ip("10.0.0.1"));
        let refused = t.check("alice", ip("10.0.0.1")).unwrap_err();
        assert_eq!(refused.retry_after, 15 * MIN);
        assert_eq!(refused.to_string(), "too many attempts, try later");
        // From another address too: the account key is locked.
        assert!(t.check("alice", ip("10.0.0.2")).is_err());
        // And from the same address for another account: the address key is locked.
        assert!(t.check("bob", ip("10.0.0.1")).is_err());
        assert!(t.check("bob", ip("10.0.0.2")).is_ok());

        clock.advance(15 * MIN - Duration::from_secs(1));
        assert_eq!(
            t.check("alice", None).unwrap_err().retry_after,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert!(t.check("alice", ip("10.0.0.1")).is_ok(), "lockout over");
        // The count starts afresh: one more failure does not lock again.
        t.failure("alice", ip("10.0.0.1"));
        assert!(t.check("alice", ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn failures_older_than_the_window_no_longer_count() {
        let (clock, t) = throttle();
        for _ in 0..4 {
            t.failure("alice", None);
        }
        clock.advance(15 * MIN);
        t.failure("alice", None);
        assert!(t.check("alice", None).is_ok(), "the first four slid out");
        for _ in 0..3 {
            clock.advance(MIN);
            t.failure("alice", None);
        }
        assert!(t.check("alice", None).is_ok(), "four in the window");
        clock.advance(MIN);
        t.failure("alice", None);
        assert!(t.check("alice", None).is_err(), "five in the window");
    }

    #[test]
    fn success_clears_the_account_count_but_not_the_address_count() {
        let (_clock, t) = throttle();
        for _ in 0..4 {
            t.failure("alice", ip("10.0.0.1"));
        }
        t.success("alice");
        t.failure("alice", ip("10.0.0.9"));
        assert!(t.check("alice", None).is_ok(), "account count restarted");
        t.failure("mallory", ip("10.0.0.1"));
        assert!(
            t.check("anyone", ip("10.0.0.1")).is_err(),
            "the address kept its four"
        );
    }

    #[test]
    fn success_does_not_lift_a_lockout() {
        let (_clock, t) = throttle();
        for _ in 0..5 {
            t.failure("alice", None);
        }
        t.success("alice");
        assert!(t.check("alice", None).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let (_clock, t) = throttle();
        for i in 0..5 {
            t.failure(&format!("u{i}"), ip(&format!("2001:db8:1:2::{i}")));
        }
        assert!(t.check("other", ip("2001:db8:1:2:ffff::1")).is_err());
        assert!(t.check("other", ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            keys("a", ip("::ffff:10.0.0.1"))[1],
            "ip:10.0.0.1",
            "v4-mapped addresses are v4"
        );
    }

    #[test]
    fn typed_ids_are_sanitised_into_keys() {
        assert_eq!(keys("al ice!", None), ["account:alice"]);
    }

    #[test]
    fn stale_keys_are_swept() {
        let (clock, t) = throttle();
        for i in 0..=SWEEP_ABOVE {
            t.failure(&format!("junk{i}"), None);
        }
        assert_eq!(t.tracked(), SWEEP_ABOVE + 1);
        clock.advance(15 * MIN);
        t.failure("fresh", None);
        assert_eq!(t.tracked(), 1);
    }
}
