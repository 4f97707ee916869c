//! The load generator's own smoke run: `handoffd-load suite --quick` starts a baseline and
//! fresh daemons, runs every scenario for a second or two, and fails on any error, lost or
//! doubled message. Running it here keeps the harness of `docs/benchmarks.md` working as
//! the daemon changes; the figures it prints mean nothing at this size.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to its end, killing it (and failing) after `limit`: the generator bounds its
/// own runs; this is only the last line of defence.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start handoffd-load");
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait for handoffd-load") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("handoffd-load did not finish in {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    child.wait_with_output().expect("collect output")
}

#[test]
fn the_quick_benchmark_suite_runs_every_scenario_cleanly() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handoffd-load"));
    cmd.args(["suite", "--quick", "--json", "--handoffd"])
        .arg(env!("CARGO_BIN_EXE_handoffd"))
        .arg("--config")
        .arg(repo.join("config.toml"));
    let out = run_bounded(cmd, Duration::from_secs(240));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quick suite failed:\n{stderr}");
    let reports: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("the suite prints its reports as JSON");
    let scenarios: Vec<&str> = reports
        .iter()
        .filter_map(|r| r["scenario"].as_str())
        .collect();
    for wanted in [
        "echo",
        "steady",
        "escalation-storm",
        "mixed",
        "reconnect-storm",
    ] {
        assert!(
            scenarios.contains(&wanted),
            "no {wanted} report in {scenarios:?}"
        );
    }
    for r in &reports {
        let label = r["label"].as_str().unwrap_or("?");
        assert!(
            r["throughput"].as_f64().unwrap_or(0.0) > 0.0,
            "{label} moved nothing:\n{stderr}"
        );
        assert_eq!(r["problems"].as_u64(), Some(0), "{label}:\n{stderr}");
    }
}

#[test]
fn the_crash_measurement_finds_every_acknowledged_message_after_a_kill() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handoffd-load"));
    cmd.args(["crash", "--conversations", "150", "--concurrency", "8"])
        .arg("--handoffd")
        .arg(env!("CARGO_BIN_EXE_handoffd"))
        .arg("--config")
        .arg(repo.join("config.toml"));
    let out = run_bounded(cmd, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "crash run failed:\n{stdout}\n{stderr}"
    );
    let checked = stdout
        .lines()
        .find(|l| l.starts_with("acknowledged messages checked in the journal:"))
        .unwrap_or_else(|| panic!("no check line in:\n{stdout}"));
    assert!(checked.ends_with(" 0 lost"), "{checked}");
    let found: usize = checked
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        found >= 150,
        "only {found} acknowledged messages were checked"
    );
    assert!(
        stdout.contains("restart: listening after"),
        "no restart timing in:\n{stdout}"
    );
}
