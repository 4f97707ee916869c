//! CPU and memory of a process, from /proc (Linux).
//!
//! CPU is utime + stime from `/proc/PID/stat` taken before and after the measured window, so
//! it is what the process used during the run only; memory is `VmRSS` (now) and `VmHWM`
//! (the peak since the process started) from `/proc/PID/status`.

use std::time::Instant;

use serde::Serialize;

/// A CPU reading: clock ticks used so far and when they were read.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    ticks: u64,
    at: Instant,
}

/// What a process used over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub pid: u32,
    /// CPU seconds (user + system) used in the window.
    pub cpu_seconds: f64,
    /// Average cores busy over the window: cpu_seconds / wall seconds.
    pub cpu_cores: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Clock ticks per second of /proc's counters. USER_HZ is 100 on every Linux architecture
/// handoffd runs on; `getconf` confirms it where available.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (VmRSS, VmHWM) in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub fn cpu_mark(pid: u32) -> Option<CpuMark> {
    Some(CpuMark {
        ticks: cpu_ticks(pid)?,
        at: Instant::now(),
    })
}

/// Usage of `pid` since `start`; None when the process is gone or /proc is not readable.
pub fn usage_since(pid: u32, start: CpuMark) -> Option<Usage> {
    let end = cpu_mark(pid)?;
    let (rss_kib, hwm_kib) = memory_kib(pid)?;
    let cpu_seconds = end.ticks.saturating_sub(start.ticks) as f64 / ticks_per_second();
    let wall = end.at.duration_since(start.at).as_secs_f64();
    Some(Usage {
        pid,
        cpu_seconds,
        cpu_cores: if wall > 0.0 { cpu_seconds / wall } else { 0.0 },
        rss_kib,
        hwm_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let start = cpu_mark(me).expect("own /proc/self/stat");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let u = usage_since(me, start).expect("own usage");
        assert!(u.rss_kib > 0 && u.hwm_kib >= u.rss_kib);
        assert!(u.cpu_seconds >= 0.0);
    }
}
