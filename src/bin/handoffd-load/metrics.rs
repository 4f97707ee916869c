//! What a scenario measures: latency histograms by kind and named counters.
//!
//! One shared, locked set per scenario rather than one per client: a histogram covering
//! 1 µs to an hour at 3 significant digits is a few hundred KiB, and ten thousand clients
//! each holding one would cost the generator gigabytes. A few tens of thousands of uncontended
//! lock acquisitions per second cost nothing next to the network work around them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded, in microseconds (one hour); anything above is clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Counters that mean the run went wrong: a `--quick` suite fails when any is above zero.
/// Overload (answers still missing when the run ends, refused connections) is in here: a
/// smoke run is far below capacity, so it means something is broken.
pub const PROBLEMS: &[&str] = &[
    "connect_failed",
    "disconnected",
    "error_frames",
    "lost",
    "doubled",
    "unanswered",
    "unexpected",
    "timed_out",
    "mismatched",
];

/// The subset that is wrong at any load: a full suite fails on these only, since a run
/// above the daemon's capacity leaves answers missing by design.
pub const CORRECTNESS: &[&str] = &[
    "lost",
    "doubled",
    "mismatched",
    "error_frames",
    "unexpected",
];

#[derive(Default)]
struct Inner {
    latencies: BTreeMap<&'static str, Histogram<u64>>,
    counters: BTreeMap<&'static str, u64>,
}

/// Shared by every task of one scenario; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

/// Percentiles of one latency kind, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A task that panicked while holding the lock left counters, not broken invariants.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one latency of `kind`.
    pub fn latency(&self, kind: &'static str, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS).max(1);
        let mut inner = self.lock();
        if !inner.latencies.contains_key(kind) {
            // Constant, valid bounds (1 µs to an hour, 3 significant digits): cannot fail.
            let Ok(h) = Histogram::new_with_bounds(1, MAX_MICROS, 3) else {
                return;
            };
            inner.latencies.insert(kind, h);
        }
        if let Some(h) = inner.latencies.get_mut(kind) {
            h.saturating_record(micros.min(MAX_MICROS));
        }
    }

    /// Adds `n` to the counter `name`.
    pub fn add(&self, name: &'static str, n: u64) {
        *self.lock().counters.entry(name).or_insert(0) += n;
    }

    /// Adds one to the counter `name`.
    pub fn count(&self, name: &'static str) {
        self.add(name, 1);
    }

    /// The current value of a counter (0 when never touched).
    pub fn get(&self, name: &str) -> u64 {
        self.lock().counters.get(name).copied().unwrap_or(0)
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.lock()
            .counters
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    pub fn latencies(&self) -> BTreeMap<String, LatencySummary> {
        self.lock()
            .latencies
            .iter()
            .map(|(k, h)| (k.to_string(), summarize(h)))
            .collect()
    }
}

fn summarize(h: &Histogram<u64>) -> LatencySummary {
    let ms = |us: u64| us as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counters_add_up() {
        let m = Metrics::default();
        for i in 1..=1000u64 {
            m.latency("x", Duration::from_micros(i * 10));
        }
        m.count("sent");
        m.add("sent", 2);
        let l = &m.latencies()["x"];
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 5.0).abs() < 0.05, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.05, "{l:?}");
        assert_eq!(m.get("sent"), 3);
        assert_eq!(m.get("nothing"), 0);
    }
}
