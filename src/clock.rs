//! The daemon's wall clock for SLA deadlines and business hours.
//!
//! In production it is the system clock. With `[debug] clock_control = true` a test can move
//! it (`POST /api/v1/debug/clock`) to a Friday evening or past a deadline, instead of
//! sleeping for minutes; the router checks its deadlines again at once when it moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use handoffd_channels::now_ms;

/// A shared clock: the system time plus an offset only tests ever set.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// Milliseconds since the Unix epoch, as the daemon sees them.
    pub fn now_ms(&self) -> u64 {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        (now_ms() as i64).saturating_add(offset).max(0) as u64
    }

    /// Moves the clock forward (or back, for a negative `ms`).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets the clock to `at_ms`; it runs on from there.
    pub fn set(&self, at_ms: u64) {
        self.offset_ms.store(
            (at_ms as i64).saturating_sub(now_ms() as i64),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_or_advanced_clock_runs_on_from_there() {
        let c = Clock::system();
        let shared = c.clone();
        c.set(1_000_000_000_000);
        assert!(shared.now_ms() >= 1_000_000_000_000 && shared.now_ms() < 1_000_000_100_000);
        c.advance(3_600_000);
        assert!(shared.now_ms() >= 1_000_003_600_000);
        assert!(
            Clock::system().now_ms() > 1_700_000_000_000,
            "others are untouched"
        );
    }
}
