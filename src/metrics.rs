//! Counters and histograms for `GET /metrics`, in the Prometheus text format. Hot paths only
//! touch atomics or a short-held lock; gauges that the router and the store already know
//! (queue depth, agents online, commits) are read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Upper bounds (seconds) of the wait histograms: from a second to a day.
const WAIT_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0,
];

/// A histogram with fixed buckets.
pub struct Histogram {
    buckets: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Histogram {
            buckets,
            counts: buckets.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation, in seconds.
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (i, b) in self.buckets.iter().enumerate() {
            if seconds <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in self.buckets.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// A counter with labels.
#[derive(Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<Vec<(&'static str, String)>, u64>>,
}

impl LabeledCounter {
    pub fn inc(&self, labels: &[(&'static str, &str)]) {
        let Ok(mut m) = self.values.lock() else {
            return;
        };
        // A counter has a handful of label sets, and it is bumped for every message: the
        // existing set is found without building a key.
        let same = |key: &[(&'static str, String)]| {
            key.len() == labels.len()
                && key
                    .iter()
                    .zip(labels)
                    .all(|((a, b), (c, d))| a == c && b == d)
        };
        if let Some(v) = m.iter_mut().find_map(|(k, v)| same(k).then_some(v)) {
            *v += 1;
            return;
        }
        let key: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        m.insert(key, 1);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        if let Ok(m) = self.values.lock() {
            for (labels, v) in m.iter() {
                let _ = writeln!(out, "{name}{} {v}", label_text(labels));
            }
        }
    }
}

fn label_text(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Every metric the daemon keeps.
pub struct Metrics {
    /// Handoffs, by each trigger that fired.
    pub handoffs: LabeledCounter,
    /// Messages by channel and direction (`in` from customers, `out` to them).
    pub messages: LabeledCounter,
    /// From queued to assigned.
    pub time_to_assignment: Histogram,
    /// From assigned to the agent's first reply.
    pub time_to_first_response: Histogram,
    /// SLA deadlines that passed, by team and target.
    pub sla_breaches: LabeledCounter,
}

/// The daemon's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    handoffs: LabeledCounter::default(),
    messages: LabeledCounter::default(),
    time_to_assignment: Histogram::new(&WAIT_BUCKETS),
    time_to_first_response: Histogram::new(&WAIT_BUCKETS),
    sla_breaches: LabeledCounter::default(),
});

/// Gauges read at scrape time.
pub struct Snapshot {
    pub queue: Vec<(String, usize, f64)>,
    pub agents_online: usize,
    pub agents: Vec<(String, usize, u32)>,
    pub conversations_live: usize,
    pub journal_batches: u64,
    pub journal_requests: u64,
    pub journal_durable: u64,
    pub outbox_pending: usize,
}

/// The Prometheus text exposition of everything.
pub fn render(s: &Snapshot) -> String {
    let m = &*METRICS;
    let mut out = String::with_capacity(4096);
    m.handoffs.render(
        "handoffd_handoffs_total",
        "Conversations handed to people, by trigger.",
        &mut out,
    );
    m.messages.render(
        "handoffd_messages_total",
        "Messages by channel and direction.",
        &mut out,
    );
    m.time_to_assignment.render(
        "handoffd_time_to_assignment_seconds",
        "From queued to assigned to an agent.",
        &mut out,
    );
    m.time_to_first_response.render(
        "handoffd_time_to_first_response_seconds",
        "From assigned to the agent's first reply.",
        &mut out,
    );
    m.sla_breaches.render(
        "handoffd_sla_breaches_total",
        "SLA deadlines that passed, by team and target.",
        &mut out,
    );
    let _ = writeln!(
        out,
        "# HELP handoffd_queue_depth Conversations waiting, by team."
    );
    let _ = writeln!(out, "# TYPE handoffd_queue_depth gauge");
    for (team, depth, _) in &s.queue {
        let _ = writeln!(out, "handoffd_queue_depth{{team=\"{team}\"}} {depth}");
    }
    let _ = writeln!(
        out,
        "# HELP handoffd_queue_oldest_wait_seconds How long the oldest waiting conversation has waited, by team."
    );
    let _ = writeln!(out, "# TYPE handoffd_queue_oldest_wait_seconds gauge");
    for (team, _, oldest) in &s.queue {
        let _ = writeln!(
            out,
            "handoffd_queue_oldest_wait_seconds{{team=\"{team}\"}} {oldest}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP handoffd_agents_online Agents with at least one session."
    );
    let _ = writeln!(out, "# TYPE handoffd_agents_online gauge");
    let _ = writeln!(out, "handoffd_agents_online {}", s.agents_online);
    let _ = writeln!(
        out,
        "# HELP handoffd_agent_utilisation Conversations held over capacity, by agent."
    );
    let _ = writeln!(out, "# TYPE handoffd_agent_utilisation gauge");
    for (agent, held, capacity) in &s.agents {
        let u = *held as f64 / f64::from((*capacity).max(1));
        let _ = writeln!(out, "handoffd_agent_utilisation{{agent=\"{agent}\"}} {u}");
    }
    let _ = writeln!(
        out,
        "# HELP handoffd_conversations_live Conversation actors in memory."
    );
    let _ = writeln!(out, "# TYPE handoffd_conversations_live gauge");
    let _ = writeln!(out, "handoffd_conversations_live {}", s.conversations_live);
    let _ = writeln!(
        out,
        "# HELP handoffd_journal_commits_total Write transactions committed (group commits)."
    );
    let _ = writeln!(out, "# TYPE handoffd_journal_commits_total counter");
    let _ = writeln!(out, "handoffd_journal_commits_total {}", s.journal_batches);
    let _ = writeln!(
        out,
        "# HELP handoffd_journal_durable_commits_total Durable journal commits, each covering the write-ahead log before it."
    );
    let _ = writeln!(out, "# TYPE handoffd_journal_durable_commits_total counter");
    let _ = writeln!(
        out,
        "handoffd_journal_durable_commits_total {}",
        s.journal_durable
    );
    let _ = writeln!(
        out,
        "# HELP handoffd_journal_requests_total Appends acknowledged by the journal."
    );
    let _ = writeln!(out, "# TYPE handoffd_journal_requests_total counter");
    let _ = writeln!(
        out,
        "handoffd_journal_requests_total {}",
        s.journal_requests
    );
    let _ = writeln!(
        out,
        "# HELP handoffd_outbox_pending Deliveries not yet confirmed by a channel."
    );
    let _ = writeln!(out, "# TYPE handoffd_outbox_pending gauge");
    let _ = writeln!(out, "handoffd_outbox_pending {}", s.outbox_pending);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&WAIT_BUCKETS);
        h.observe(0.5);
        h.observe(7.0);
        h.observe(100_000.0);
        let mut out = String::new();
        h.render("t", "test", &mut out);
        assert!(out.contains("t_bucket{le=\"1\"} 1"), "{out}");
        assert!(out.contains("t_bucket{le=\"10\"} 2"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("t_count 3"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        let c = LabeledCounter::default();
        c.inc(&[("trigger", "a\"b")]);
        c.inc(&[("trigger", "a\"b")]);
        let mut out = String::new();
        c.render("x_total", "x", &mut out);
        assert!(out.contains("x_total{trigger=\"a\\\"b\"} 2"), "{out}");
    }

    #[test]
    fn each_label_set_counts_on_its_own() {
        let c = LabeledCounter::default();
        for _ in 0..3 {
            c.inc(&[("channel", "widget"), ("direction", "in")]);
        }
        c.inc(&[("channel", "widget"), ("direction", "out")]);
        c.inc(&[("channel", "email"), ("direction", "in")]);
        c.inc(&[("channel", "widget")]);
        let mut out = String::new();
        c.render("m_total", "m", &mut out);
        assert!(
            out.contains("m_total{channel=\"widget\",direction=\"in\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("m_total{channel=\"widget\",direction=\"out\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("m_total{channel=\"email\",direction=\"in\"} 1"),
            "{out}"
        );
        assert!(out.contains("m_total{channel=\"widget\"} 1"), "{out}");
    }
}
