//! What time it is. Commands are stamped and timers fire by this clock, so tests can run a
//! working week in milliseconds with tokio's paused time, and the demo can replay a year.

use std::sync::Arc;

use time::OffsetDateTime;

tokio::task_local! {
    /// A simulated "now" for the commands of one task (the demo's year of history).
    static SIMULATED: OffsetDateTime;
}

/// Runs `work` with the clock reading `at` in this task only: what it commands is stamped
/// then. Nothing else in the process sees it (the demo seeder replays a year of history
/// through the real command path while the server answers in the present).
pub async fn at<F: std::future::Future>(at: OffsetDateTime, work: F) -> F::Output {
    SIMULATED.scope(at, work).await
}

/// A source of the current time. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(Arc::new(OffsetDateTime::now_utc))
    }

    /// `start`, advanced by tokio's clock: under `tokio::time::pause` it moves only when the
    /// test (or auto-advance) moves it.
    pub fn tokio_from(start: OffsetDateTime) -> Clock {
        let origin = tokio::time::Instant::now();
        Clock(Arc::new(move || {
            let elapsed = tokio::time::Instant::now() - origin;
            start + elapsed
        }))
    }

    /// A clock that reads whatever its handle was last set to (tests that jump days: a code
    /// that lapses, a year that ends).
    pub fn settable(start: OffsetDateTime) -> (Clock, Arc<std::sync::Mutex<OffsetDateTime>>) {
        let handle = Arc::new(std::sync::Mutex::new(start));
        let reads = handle.clone();
        let clock = Clock(Arc::new(move || *reads.lock().expect("clock poisoned")));
        (clock, handle)
    }

    pub fn now(&self) -> OffsetDateTime {
        SIMULATED.try_with(|t| *t).unwrap_or_else(|_| (self.0)())
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
