//! The purge service's notion of now. Retention is counted in days, so tests cannot wait: they
//! give the service a [`Clock::manual`] and move it forward ("time travel"); production uses the
//! system clock.

use lfr_schemas::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that shows `start` until moved.
    pub fn manual(start: Timestamp) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start.0))),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &self.manual {
            Some(t) => Timestamp(t.load(Ordering::SeqCst)),
            None => Timestamp::now(),
        }
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.manual {
            t.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
        }
    }
}
