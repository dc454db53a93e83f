//! Graceful shutdown: SIGTERM (Kubernetes) or Ctrl-C becomes a cancellation that every task
//! watches. A stage stops taking new messages, finishes the one in hand, and exits; ingest stops
//! its cameras and flushes what it already published.
//!
//! Every stop is bounded. Each wait on the way out has its own short limit (a flush, the last
//! acknowledgements, a purge pass, the console's open streams), because NATS may be gone by then;
//! and a service that is still running [`STOP_DEADLINE`] after the signal exits anyway, with
//! status 1 and a log line saying so. Kubernetes kills a pod 30 s after SIGTERM and `lfr up`
//! 10 s after; a service should never need either.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a service takes to stop once told to, whatever it waits for.
pub const STOP_DEADLINE: Duration = Duration::from_secs(8);

#[derive(Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown(CancellationToken::new())
    }

    /// A shutdown that fires on SIGTERM or SIGINT; the process exits [`STOP_DEADLINE`] later if
    /// it has not stopped by then. For a service's `main`.
    pub fn on_signals() -> Shutdown {
        Shutdown::on_signals_within(Some(STOP_DEADLINE))
    }

    /// A shutdown that fires on SIGTERM or SIGINT; with `deadline`, the process exits that long
    /// after the signal if it is still running. Without one, the caller bounds its own stop
    /// (`lfr up`, which must stop its children and its NATS server itself, not leave them).
    pub fn on_signals_within(deadline: Option<Duration>) -> Shutdown {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            // Trigger before anything else: nothing may stand between the signal and the stop.
            trigger.trigger();
            tracing::info!("shutdown requested");
            if let Some(deadline) = deadline {
                // A thread, not a task: it must fire even if the runtime is stuck or shutting down.
                std::thread::spawn(move || {
                    std::thread::sleep(deadline);
                    tracing::error!(
                        seconds = deadline.as_secs(),
                        "not stopped in time after the signal: exiting anyway"
                    );
                    std::process::exit(1);
                });
            }
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(&self) {
        self.0.cancelled().await
    }

    /// Run `work` to its end, unless shutdown is requested first: then it has `grace` more, and
    /// is dropped (cancelled at the await it stands at) if still unfinished. `None` when cut short.
    pub async fn finish_within<F: Future>(&self, grace: Duration, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => return Some(done),
            _ = self.requested() => {}
        }
        tokio::time::timeout(grace, work).await.ok()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_gets_its_grace_after_shutdown_then_is_dropped() {
        let shutdown = Shutdown::new();
        let quick = shutdown.finish_within(Duration::from_secs(5), async { 7 });
        assert_eq!(quick.await, Some(7), "unfinished work runs to its end");

        shutdown.trigger();
        let started = std::time::Instant::now();
        let short = shutdown.finish_within(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            "finished in its grace"
        });
        assert_eq!(short.await, Some("finished in its grace"));
        let stuck =
            shutdown.finish_within(Duration::from_millis(200), std::future::pending::<()>());
        assert_eq!(stuck.await, None, "work past its grace is cut short");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
