//! Reports: one per scenario run, as text or JSON, and the suite's table.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::metrics::LatencySummary;
use crate::procstat::Usage;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The row's name in the suite (the scenario's name for `run`).
    pub label: String,
    pub scenario: String,
    pub target: String,
    pub customers: usize,
    pub agents: usize,
    /// Target total rate (messages/s); 0 for closed loop.
    pub rate: f64,
    /// Seconds of the measured window.
    pub window_s: f64,
    pub throughput: f64,
    /// Messages/s the generator sent in the window (paced and closed-loop scenarios).
    pub offered: Option<f64>,
    pub unit: String,
    /// throughput / the baseline's echo throughput measured in the same suite run.
    pub ratio_to_baseline: Option<f64>,
    pub latencies: BTreeMap<String, LatencySummary>,
    pub counters: BTreeMap<String, u64>,
    /// Sum of the counters that mean something went wrong (errors, lost, doubled, and
    /// answers missing at the end).
    pub problems: u64,
    /// The part of `problems` that is wrong at any load (lost, doubled, errors...).
    pub correctness_problems: u64,
    pub extra: BTreeMap<String, f64>,
    /// The target process over the window, when its pid was known.
    pub daemon: Option<Usage>,
    /// The generator itself over the window: it shares the two cores with the daemon.
    pub generator: Option<Usage>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    /// A human-readable report of one run.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let rate = if self.rate > 0.0 {
            format!("{:.0}/s open loop", self.rate)
        } else {
            "closed loop".to_string()
        };
        let _ = writeln!(
            s,
            "{} ({}): {} customers, {} agents, {rate}, {:.1} s window",
            self.label, self.scenario, self.customers, self.agents, self.window_s
        );
        let _ = write!(s, "  throughput: {:.1} {}", self.throughput, self.unit);
        if let Some(o) = self.offered {
            let _ = write!(s, ", offered {o:.1} messages/s");
        }
        if let Some(r) = self.ratio_to_baseline {
            let _ = write!(s, " ({r:.3} x baseline)");
        }
        s.push('\n');
        for (kind, l) in &self.latencies {
            let _ = writeln!(
                s,
                "  {kind}: n={} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
                l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
        if let Some(d) = &self.daemon {
            let _ = writeln!(
                s,
                "  target pid {}: cpu {:.2} s ({:.2} cores), rss {:.1} MiB, peak {:.1} MiB",
                d.pid,
                d.cpu_seconds,
                d.cpu_cores,
                mib(d.rss_kib),
                mib(d.hwm_kib)
            );
        }
        if let Some(g) = &self.generator {
            let _ = writeln!(
                s,
                "  generator: {:.2} cores, rss {:.1} MiB",
                g.cpu_cores,
                mib(g.rss_kib)
            );
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "  {k}: {v:.2}");
        }
        let counters: Vec<String> = self
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "  counters: {}", counters.join(" "));
        let _ = writeln!(
            s,
            "  problems: {} (correctness: {})",
            self.problems, self.correctness_problems
        );
        s
    }
}

/// The suite's results table (Markdown, so it can go into docs/benchmarks.md as printed).
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    s.push_str("| run | offered/s | throughput | x baseline | latency | p50 ms | p99 ms | p99.9 ms | n | target CPU (cores) | RSS / peak MiB | generator CPU, send lag p99 ms | problems |\n");
    s.push_str("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in reports {
        let throughput = format!("{:.0} {}", r.throughput, r.unit);
        let offered = r.offered.map_or("-".to_string(), |o| format!("{o:.0}"));
        let ratio = r
            .ratio_to_baseline
            .map_or("-".to_string(), |x| format!("{x:.3}"));
        let (cpu, mem) = match &r.daemon {
            Some(d) => (
                format!("{:.2}", d.cpu_cores),
                format!("{:.0} / {:.0}", mib(d.rss_kib), mib(d.hwm_kib)),
            ),
            None => ("-".into(), "-".into()),
        };
        let lag = r
            .latencies
            .get("generator send lag")
            .map_or("-".to_string(), |l| format!("{:.1}", l.p99_ms));
        let generator = match &r.generator {
            Some(g) => format!("{:.2}, {lag}", g.cpu_cores),
            None => format!("-, {lag}"),
        };
        let mut first = true;
        let kinds: Vec<(&String, &LatencySummary)> = r
            .latencies
            .iter()
            .filter(|(k, _)| !k.starts_with("generator"))
            .collect();
        if kinds.is_empty() {
            let _ = writeln!(
                s,
                "| {} | {offered} | {throughput} | {ratio} | - | - | - | - | - | {cpu} | {mem} | {generator} | {} |",
                r.label, r.problems
            );
            continue;
        }
        for (kind, l) in kinds {
            if first {
                let _ = writeln!(
                    s,
                    "| {} | {offered} | {throughput} | {ratio} | {kind} | {:.2} | {:.2} | {:.2} | {} | {cpu} | {mem} | {generator} | {} |",
                    r.label, l.p50_ms, l.p99_ms, l.p999_ms, l.count, r.problems
                );
                first = false;
            } else {
                let _ = writeln!(
                    s,
                    "| | | | | {kind} | {:.2} | {:.2} | {:.2} | {} | | | | |",
                    l.p50_ms, l.p99_ms, l.p999_ms, l.count
                );
            }
        }
    }
    s
}
