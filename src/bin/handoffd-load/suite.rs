//! `handoffd-load suite`: the whole measurement on this machine, in one command.
//!
//! 1. A baseline server is started as a child process (free loopback port, temporary data
//!    directory) and measured with `echo`: closed loop for its top throughput, then at the
//!    fixed rates handoffd is measured at, for latency.
//! 2. For each handoffd scenario a fresh daemon is prepared in its own temporary directory:
//!    the repo's `config.toml` with the listen address, data directory and rate-like limits
//!    adjusted; agents added with `handoffd agent add` (before it starts, as the journal is
//!    locked while it runs); then started, its address read from its first line. A fresh
//!    daemon per scenario keeps one scenario's leftovers (actors, journal size) out of the
//!    next one's figures.
//! 3. The table: every throughput with its ratio to the baseline's top throughput of the
//!    same run, latency percentiles per kind, the daemon's CPU and memory.
//!
//! `--quick` runs each scenario for a second or two with a handful of clients and fails when
//! any scenario saw errors, lost or doubled messages: CI keeps the harness working with it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::report::{Report, table};
use crate::scenario::{self, RunArgs, Scenario};

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// The daemon binary (default: `handoffd` next to this binary).
    #[arg(long)]
    pub handoffd: Option<PathBuf>,
    /// The configuration to start from (default: ./config.toml, else the repo's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A few seconds in all, small N: a smoke run that fails on any error, loss or double.
    #[arg(long)]
    pub quick: bool,
    /// Print the reports as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Seconds of the 10,000 messages/s steady soak (the issue asks for 10 minutes).
    #[arg(long, default_value_t = 60.0)]
    pub soak: f64,
    /// Run only the steps with these labels (the baseline's top throughput always runs).
    #[arg(long)]
    pub only: Vec<String>,
    /// Runtime threads of the generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Keep the temporary directories (journals, configs, daemon logs) for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// One row of the suite.
struct Step {
    label: String,
    run: RunArgs,
    /// Agents to add before the daemon starts, and their capacity.
    agents: usize,
    capacity: u32,
}

fn args(scenario: Scenario, customers: usize, rate: f64, duration: f64) -> RunArgs {
    RunArgs {
        target: String::new(),
        scenario,
        customers,
        agents: None,
        agent_tokens: Vec::new(),
        rate,
        window: 1,
        duration,
        pid: None,
        json: false,
        escalate_share: 0.1,
        conversation_length: None,
        rounds: 2,
        drain: 10.0,
        connect_concurrency: 256,
        threads: 1,
    }
}

fn step(label: &str, run: RunArgs) -> Step {
    Step {
        label: label.to_string(),
        run,
        agents: 0,
        capacity: 0,
    }
}

fn with_agents(mut s: Step, agents: usize, capacity: u32) -> Step {
    s.agents = agents;
    s.capacity = capacity;
    s
}

/// The baseline steps; the first is the top throughput every ratio refers to.
fn echo_steps(quick: bool) -> Vec<Step> {
    use Scenario::Echo;
    if quick {
        let mut top = args(Echo, 10, 0.0, 1.0);
        top.drain = 5.0;
        let mut paced = args(Echo, 10, 200.0, 1.0);
        paced.drain = 5.0;
        return vec![step("echo top", top), step("echo 200/s", paced)];
    }
    let mut top = args(Echo, 256, 0.0, 20.0);
    top.window = 4;
    vec![
        step("echo top", top),
        step("echo 1000/s", args(Echo, 100, 1000.0, 15.0)),
        step("echo 3000/s", args(Echo, 1000, 3000.0, 15.0)),
        step("echo 10000/s", args(Echo, 1000, 10_000.0, 15.0)),
    ]
}

fn daemon_steps(quick: bool, soak: f64) -> Vec<Step> {
    use Scenario::*;
    if quick {
        let short = |mut a: RunArgs| {
            a.drain = 5.0;
            a
        };
        let mut mixed = short(args(Mixed, 10, 50.0, 3.0));
        mixed.escalate_share = 0.5;
        let mut reconnect = short(args(ReconnectStorm, 20, 0.0, 5.0));
        reconnect.rounds = 1;
        return vec![
            step("steady top", short(args(Steady, 10, 0.0, 1.0))),
            step("steady 100/s", short(args(Steady, 10, 100.0, 2.0))),
            with_agents(
                step(
                    "escalation storm",
                    short(args(EscalationStorm, 20, 0.0, 10.0)),
                ),
                2,
                3,
            ),
            with_agents(step("mixed 50/s", mixed), 2, 3),
            step("reconnect storm", reconnect),
        ];
    }
    let mut top = args(Steady, 500, 0.0, 20.0);
    top.window = 1;
    // The same load shape as the baseline's `echo top`: 256 clients, 4 messages in flight.
    let mut top_shaped = args(Steady, 256, 0.0, 20.0);
    top_shaped.window = 4;
    let mut mixed = args(Mixed, 200, 1000.0, 30.0);
    mixed.escalate_share = 0.1;
    let mut reconnect = args(ReconnectStorm, 10_000, 0.0, 30.0);
    reconnect.rounds = 2;
    reconnect.connect_concurrency = 512;
    vec![
        step("steady top", top),
        step("steady top 256x4", top_shaped),
        step("steady 1000/s", args(Steady, 100, 1000.0, 20.0)),
        step("steady 3000/s", args(Steady, 1000, 3000.0, 20.0)),
        step("steady 10000/s soak", args(Steady, 1000, 10_000.0, soak)),
        with_agents(
            step("escalation storm", args(EscalationStorm, 1000, 0.0, 60.0)),
            20,
            5,
        ),
        with_agents(step("mixed 1000/s", mixed), 20, 5),
        step("reconnect storm", reconnect),
    ]
}

/// A temporary directory removed on drop (unless kept).
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub(crate) fn new(keep: bool) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("handoffd-load-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped, so an error in the
/// suite never leaves a daemon behind.
pub(crate) struct Proc {
    child: Child,
    pub(crate) addr: String,
}

impl Proc {
    /// Starts `cmd` and waits for the stdout line starting with `prefix`; the rest of the
    /// line is the address. stdout keeps being drained afterwards so the child never blocks.
    pub(crate) fn start(
        mut cmd: Command,
        prefix: &'static str,
        what: &str,
    ) -> anyhow::Result<Proc> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{what}: no stdout");
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix(prefix) {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let mut proc = Proc {
            child,
            addr: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                proc.addr = addr;
                Ok(proc)
            }
            Err(_) => anyhow::bail!("{what} did not say where it listens within 30 s"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and up to 10 s for a clean exit, then SIGKILL.
    pub(crate) fn stop(mut self) {
        self.stop_inner();
    }

    /// Waits for a process that was killed from outside.
    pub(crate) fn reap(mut self) {
        let _ = self.child.wait();
    }

    fn stop_inner(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// The configuration the daemons start from.
pub(crate) fn find_config(given: Option<&Path>, exe: &Path) -> anyhow::Result<PathBuf> {
    if let Some(c) = given {
        return Ok(c.to_path_buf());
    }
    let here = PathBuf::from("config.toml");
    if here.is_file() {
        return Ok(here);
    }
    // target/<profile>/handoffd-load -> the repo root.
    let repo = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|p| p.join("config.toml"));
    match repo {
        Some(p) if p.is_file() => Ok(p),
        _ => anyhow::bail!("no config.toml here or in the repo; give --config"),
    }
}

/// Key names of limits that would throttle a load test (per-visitor or per-IP rates and
/// the like); any such integer in the config is raised so the test measures the daemon,
/// not its abuse protection.
fn is_rate_limit(key: &str) -> bool {
    [
        "rate",
        "per_second",
        "per_minute",
        "burst",
        "max_connections",
    ]
    .iter()
    .any(|k| key.contains(k))
}

fn raise_rate_limits(t: &mut toml::Table, path: &str, changed: &mut Vec<String>) {
    for (k, v) in t.iter_mut() {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match v {
            toml::Value::Table(inner) => raise_rate_limits(inner, &here, changed),
            toml::Value::Integer(i) if is_rate_limit(k) && *i < 1_000_000 => {
                *i = 1_000_000;
                changed.push(here);
            }
            _ => {}
        }
    }
}

/// The repo's config with the listen address and data directory of this daemon.
fn daemon_config(base: &toml::Table, data: &Path) -> anyhow::Result<(String, Vec<String>)> {
    let mut t = base.clone();
    let server = t
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(s) = server {
        s.insert("listen".into(), toml::Value::from("127.0.0.1:0"));
    }
    let storage = t
        .entry("storage")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(s) = storage {
        s.insert(
            "data_dir".into(),
            toml::Value::from(data.display().to_string()),
        );
    }
    let mut changed = Vec::new();
    raise_rate_limits(&mut t, "", &mut changed);
    Ok((toml::to_string(&t)?, changed))
}

/// Prepares a daemon's directory, adds the agents, starts it. Returns it and the tokens.
pub(crate) fn start_daemon(
    handoffd: &Path,
    base: &toml::Table,
    dir: &Path,
    agents: usize,
    capacity: u32,
) -> anyhow::Result<(Proc, Vec<String>)> {
    std::fs::create_dir_all(dir)?;
    let (text, changed) = daemon_config(base, &dir.join("data"))?;
    if !changed.is_empty() {
        eprintln!("  raised in the config: {}", changed.join(", "));
    }
    let config = dir.join("config.toml");
    std::fs::write(&config, text)?;
    let mut tokens = Vec::new();
    for k in 0..agents {
        let out = Command::new(handoffd)
            .arg("--config")
            .arg(&config)
            .args([
                "agent",
                "add",
                &format!("load-agent-{k}"),
                "--team",
                "support",
            ])
            .args(["--capacity", &capacity.to_string()])
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("cannot run {}", handoffd.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "agent add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokens.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let mut cmd = Command::new(handoffd);
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stderr(log);
    let proc = Proc::start(cmd, "handoffd listening on http://", "handoffd")?;
    Ok((proc, tokens))
}

/// The last lines of a daemon's log, shown when its scenario had problems.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn selected(args: &SuiteArgs, label: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o == label)
}

pub fn main(args: SuiteArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let handoffd = args
        .handoffd
        .clone()
        .unwrap_or_else(|| exe.with_file_name("handoffd"));
    anyhow::ensure!(
        handoffd.is_file(),
        "no daemon at {} (build it: cargo build --release --bin handoffd, or give --handoffd)",
        handoffd.display()
    );
    let config_path = find_config(args.config.as_deref(), &exe)?;
    let base: toml::Table = toml::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )
    .with_context(|| format!("{} is not valid TOML", config_path.display()))?;
    let rt = scenario::runtime(args.threads)?;
    let tmp = TempDir::new(args.keep)?;
    eprintln!(
        "handoffd-load suite: daemon {}, config {}, work dir {}",
        handoffd.display(),
        config_path.display(),
        tmp.path.display()
    );
    let mut reports: Vec<Report> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    // The baseline.
    {
        let mut cmd = Command::new(&exe);
        cmd.args(["baseline", "--listen", "127.0.0.1:0", "--data"])
            .arg(tmp.path.join("baseline"))
            .args(["--max-seconds", "3600"]);
        let baseline = Proc::start(cmd, "baseline listening on ", "the baseline server")?;
        for (i, mut s) in echo_steps(args.quick).into_iter().enumerate() {
            if i > 0 && !selected(&args, &s.label) {
                continue;
            }
            s.run.target = format!("ws://{}", baseline.addr);
            s.run.pid = Some(baseline.pid());
            s.run.threads = args.threads;
            run_step(&rt, s, args.quick, &mut reports, &mut failures, None);
        }
        baseline.stop();
    }
    let baseline_top = reports
        .first()
        .filter(|r| r.scenario == "echo")
        .map(|r| r.throughput)
        .filter(|t| *t > 0.0);

    for (i, mut s) in daemon_steps(args.quick, args.soak).into_iter().enumerate() {
        if !selected(&args, &s.label) {
            continue;
        }
        let dir = tmp.path.join(format!("daemon-{i}"));
        let (daemon, tokens) = match start_daemon(&handoffd, &base, &dir, s.agents, s.capacity) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: cannot start the daemon: {e:#}", s.label));
                continue;
            }
        };
        s.run.target = format!("http://{}", daemon.addr);
        s.run.pid = Some(daemon.pid());
        s.run.agent_tokens = tokens;
        s.run.threads = args.threads;
        run_step(&rt, s, args.quick, &mut reports, &mut failures, Some(&dir));
        daemon.stop();
    }

    for r in reports.iter_mut() {
        r.ratio_to_baseline = baseline_top.map(|b| r.throughput / b);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!();
        print!("{}", table(&reports));
    }
    for f in &failures {
        eprintln!("FAILED {f}");
    }
    let problems: u64 = reports.iter().map(|r| r.problems).sum();
    if args.quick && (problems > 0 || !failures.is_empty()) {
        eprintln!(
            "quick suite failed: {problems} problems, {} failed steps",
            failures.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs a step and files its report. A quick run fails on any problem; a full one only on
/// wrong answers (lost, doubled, errors), since its top-rate steps are meant to overload.
fn run_step(
    rt: &tokio::runtime::Runtime,
    s: Step,
    quick: bool,
    reports: &mut Vec<Report>,
    failures: &mut Vec<String>,
    daemon_dir: Option<&Path>,
) {
    eprintln!("== {}", s.label);
    match rt.block_on(scenario::run(s.run, &s.label)) {
        Ok(r) => {
            eprint!("{}", r.text());
            let failed = if quick {
                r.problems
            } else {
                r.correctness_problems
            };
            if failed > 0 {
                failures.push(format!("{}: {failed} problems", s.label));
                if let Some(dir) = daemon_dir {
                    eprintln!("  daemon log tail:\n{}", log_tail(dir));
                }
            }
            reports.push(r);
        }
        Err(e) => failures.push(format!("{}: {e:#}", s.label)),
    }
}
