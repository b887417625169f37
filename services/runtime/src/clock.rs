//! What time it is. Commands are stamped and timers fire by this clock, so tests can run a
//! working week in milliseconds with tokio's paused time.

use std::sync::Arc;

use time::OffsetDateTime;

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

    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
