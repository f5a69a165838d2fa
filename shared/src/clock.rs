//! Time for the domain. Every expiry, link lifetime and grant window is computed from an
//! injected [`Clock`], so tests run the lifecycle in virtual time.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::Mutex;

/// A source of the current time, truncated to whole seconds (the precision of IAM's
/// `aws:CurrentTime` conditions and of scheduler `at()` expressions).
pub trait Clock: Send + Sync {
    /// The current UTC time, in whole seconds.
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(0)
    }
}

/// A clock that only moves when told to; for tests and for replaying time.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start` (sub-seconds are dropped).
    pub fn at(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start.trunc_subsecs(0)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += by;
    }

    /// Sets the clock to `to` (sub-seconds are dropped).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().expect("clock lock") = to.trunc_subsecs(0);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.750Z").unwrap();
        let clock = ManualClock::at(start.with_timezone(&Utc));
        assert_eq!(clock.now().to_rfc3339(), "2026-01-01T10:00:00+00:00");
        clock.advance(chrono::Duration::minutes(90));
        assert_eq!(clock.now().to_rfc3339(), "2026-01-01T11:30:00+00:00");
    }
}
