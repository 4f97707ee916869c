//! `handoffd-load run`: the options, the context every scenario task shares, and turning a
//! scenario's counters and histograms into a report.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::metrics::{CORRECTNESS, Metrics, PROBLEMS};
use crate::procstat::{self, CpuMark, Usage};
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Customers ask FAQ questions at a paced total rate; latency to the bot's reply.
    Steady,
    /// Customers all ask for a person at once; latency to the agent's offer.
    EscalationStorm,
    /// Steady chat where a share of conversations escalate; agents accept, reply, close.
    Mixed,
    /// Connected customers are dropped and all resume at once; latency to welcome.
    ReconnectStorm,
    /// Against the baseline server: latency from send to echo.
    Echo,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::EscalationStorm => "escalation-storm",
            Scenario::Mixed => "mixed",
            Scenario::ReconnectStorm => "reconnect-storm",
            Scenario::Echo => "echo",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The daemon (or baseline server): `http://127.0.0.1:8080`, `ws://...` or `host:port`.
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Widget connections (customers), or echo clients.
    #[arg(long, default_value_t = 100)]
    pub customers: usize,
    /// Agent sessions (default: one per --agent-token); tokens are reused round-robin.
    #[arg(long)]
    pub agents: Option<usize>,
    /// An agent token (`handoffd agent add` prints them); repeat for several agents.
    #[arg(long = "agent-token")]
    pub agent_tokens: Vec<String>,
    /// Total customer messages per second, open loop; 0 means closed loop (see --window).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Closed loop only (--rate 0): messages each client keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Seconds of sending (for storms: the longest a storm may take).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// The daemon's pid, to report its CPU and memory from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// mixed: the share of conversations that ask for a person.
    #[arg(long, default_value_t = 0.1)]
    pub escalate_share: f64,
    /// Customer messages per conversation before the client starts a new visitor
    /// (0 = one conversation for the whole run). Default 8 (mixed: 6): the default config
    /// hands a conversation to people after 12 customer turns.
    #[arg(long)]
    pub conversation_length: Option<u32>,
    /// reconnect-storm: how many drop-and-resume rounds.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Seconds to wait after sending stops for answers still on their way.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Connections opened at once while setting up (storms open all of theirs at once).
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Runtime threads of the generator; it shares the machine with the daemon.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The questions the default config.toml's FAQ bot knows (its questions and alternatives),
/// grouped by FAQ entry. The default escalation policy hands over a customer who asks the
/// same thing three times in six messages, or gets the same answer twice in a row, so
/// consecutive messages of a conversation go to different entries (see `faq_question`).
pub const FAQ: &[&[&str]] = &[
    &[
        "What are your opening hours?",
        "When are you open?",
        "What time do you close?",
        "Are you open on weekends?",
    ],
    &[
        "How do I track my order?",
        "Where is my order?",
        "Where is my package?",
        "Has my order shipped?",
    ],
    &["How do I reset my password?", "I forgot my password"],
    &[
        "What is your return policy?",
        "How do I return an item?",
        "Can I send something back?",
    ],
    &[
        "How much is shipping?",
        "What are the delivery costs?",
        "Do you offer free shipping?",
    ],
];

/// Message `k` (0-based) of a conversation of client `client`: entries in turn, so an
/// entry comes back only every fifth message, and its phrasings in turn too.
pub fn faq_question(client: usize, k: usize) -> &'static str {
    let entry = FAQ[(client + k) % FAQ.len()];
    entry[(client + k / FAQ.len()) % entry.len()]
}

/// An explicit request for a person, as the default escalation policy knows it.
pub const ESCALATION_TEXT: &str = "can I talk to a human please";

/// What a scenario hands back besides its metrics.
pub struct Outcome {
    /// The headline rate of the scenario, in `unit`.
    pub throughput: f64,
    /// What the generator offered (messages/s sent in the window), for paced scenarios.
    pub offered: Option<f64>,
    pub unit: &'static str,
    /// Seconds of the measured window.
    pub window_s: f64,
    /// Scenario-specific figures (per-connection memory, storm length...).
    pub extra: BTreeMap<String, f64>,
}

/// CPU marks of the measured window.
#[derive(Default)]
struct Window {
    daemon: Option<CpuMark>,
    generator: Option<CpuMark>,
    daemon_usage: Option<Usage>,
    generator_usage: Option<Usage>,
}

/// Shared by every task of a scenario.
pub struct Ctx {
    pub args: RunArgs,
    base: String,
    pub metrics: Metrics,
    /// Zero of the timestamps written into agent replies (the customer side reads them back).
    pub epoch: Instant,
    notes: AtomicUsize,
    window: Mutex<Window>,
}

/// Notes printed per scenario at most; the rest are only counted.
const MAX_NOTES: usize = 20;

impl Ctx {
    pub fn new(args: RunArgs) -> Arc<Ctx> {
        Arc::new(Ctx {
            base: crate::client::ws_base(&args.target),
            args,
            metrics: Metrics::default(),
            epoch: Instant::now(),
            notes: AtomicUsize::new(0),
            window: Mutex::new(Window::default()),
        })
    }

    pub fn widget_url(&self) -> String {
        format!("{}/widget/ws", self.base)
    }

    pub fn agent_url(&self) -> String {
        format!("{}/agent/ws", self.base)
    }

    pub fn echo_url(&self) -> String {
        format!("{}/", self.base)
    }

    /// The agent sessions to open, each with its token.
    pub fn agent_sessions(&self) -> Vec<String> {
        let tokens = &self.args.agent_tokens;
        let n = self.args.agents.unwrap_or(tokens.len());
        if tokens.is_empty() {
            return Vec::new();
        }
        (0..n).map(|i| tokens[i % tokens.len()].clone()).collect()
    }

    /// Says something on stderr, a bounded number of times: the first failures explain the
    /// counters, a thousand more would only hide them.
    pub fn note(&self, what: impl Display) {
        if self.notes.fetch_add(1, Ordering::Relaxed) < MAX_NOTES {
            eprintln!("  note: {what}");
        }
    }

    fn lock_window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the window over which CPU is measured (after connections are set up).
    pub fn window_start(&self) {
        let mut w = self.lock_window();
        w.daemon = self.args.pid.and_then(procstat::cpu_mark);
        w.generator = procstat::cpu_mark(std::process::id());
    }

    /// Ends the CPU window and reads memory.
    pub fn window_end(&self) {
        let mut w = self.lock_window();
        if let (Some(pid), Some(mark)) = (self.args.pid, w.daemon) {
            w.daemon_usage = procstat::usage_since(pid, mark);
        }
        if let Some(mark) = w.generator {
            w.generator_usage = procstat::usage_since(std::process::id(), mark);
        }
    }

    /// Microseconds since `epoch`, for timestamps carried in message text.
    pub fn micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Time from a `micros()` stamp to now.
    pub fn since_micros(&self, stamp: u64) -> Duration {
        Duration::from_micros(self.micros().saturating_sub(stamp))
    }
}

/// Runs one scenario and builds its report. `label` names the row in the suite's table.
pub async fn run(args: RunArgs, label: &str) -> anyhow::Result<Report> {
    check(&args)?;
    let ctx = Ctx::new(args);
    let outcome = match ctx.args.scenario {
        Scenario::Steady => crate::chat::run(ctx.clone(), false).await?,
        Scenario::Mixed => crate::chat::run(ctx.clone(), true).await?,
        Scenario::EscalationStorm => crate::storm::run(ctx.clone()).await?,
        Scenario::ReconnectStorm => crate::reconnect::run(ctx.clone()).await?,
        Scenario::Echo => crate::echo::run(ctx.clone()).await?,
    };
    let counters = ctx.metrics.counters();
    let sum = |names: &[&str]| {
        names
            .iter()
            .map(|p| counters.get(*p).copied().unwrap_or(0))
            .sum()
    };
    let problems = sum(PROBLEMS);
    let correctness_problems = sum(CORRECTNESS);
    let w = ctx.lock_window();
    Ok(Report {
        label: label.to_string(),
        scenario: ctx.args.scenario.name().to_string(),
        target: ctx.args.target.clone(),
        customers: ctx.args.customers,
        agents: ctx.agent_sessions().len(),
        rate: ctx.args.rate,
        window_s: outcome.window_s,
        throughput: outcome.throughput,
        offered: outcome.offered,
        unit: outcome.unit.to_string(),
        ratio_to_baseline: None,
        latencies: ctx.metrics.latencies(),
        counters,
        problems,
        correctness_problems,
        extra: outcome.extra,
        daemon: w.daemon_usage.clone(),
        generator: w.generator_usage.clone(),
    })
}

fn check(args: &RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.customers > 0, "--customers must be at least 1");
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or more"
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 86_400.0,
        "--duration must be between 0 and 86400 seconds"
    );
    anyhow::ensure!(
        args.drain >= 0.0 && args.drain <= 3600.0,
        "--drain must be between 0 and 3600 seconds"
    );
    anyhow::ensure!(args.window > 0, "--window must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.escalate_share),
        "--escalate-share must be between 0 and 1"
    );
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    anyhow::ensure!(
        args.connect_concurrency > 0,
        "--connect-concurrency must be at least 1"
    );
    let needs_agents = matches!(args.scenario, Scenario::EscalationStorm)
        || (args.scenario == Scenario::Mixed && args.escalate_share > 0.0);
    anyhow::ensure!(
        !needs_agents || !args.agent_tokens.is_empty(),
        "{} needs agents: give --agent-token (from `handoffd agent add`)",
        args.scenario.name()
    );
    Ok(())
}

/// A runtime for the generator: few threads, since it shares the machine with the daemon.
pub fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// `handoffd-load run`.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime(args.threads)?;
    let json = args.json;
    let label = args.scenario.name().to_string();
    let report = rt.block_on(run(args, &label))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.problems > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// When a client sends: open loop at its share of the total rate, with clients spread
/// evenly over one interval, or closed loop with a fixed number of messages in flight.
pub struct Pacer {
    interval: Option<Duration>,
    next: tokio::time::Instant,
    window: usize,
}

impl Pacer {
    /// The pacer of client `i` of `n`, starting at `t0`.
    pub fn new(args: &RunArgs, i: usize, n: usize, t0: tokio::time::Instant) -> Pacer {
        if args.rate > 0.0 {
            let interval = Duration::from_secs_f64(n as f64 / args.rate);
            let offset = Duration::from_secs_f64(i as f64 / args.rate);
            Pacer {
                interval: Some(interval),
                next: t0 + offset,
                window: usize::MAX,
            }
        } else {
            Pacer {
                interval: None,
                next: t0,
                window: args.window,
            }
        }
    }

    /// When the next message is due, given how many are in flight; None while the closed
    /// loop's window is full.
    pub fn due(&self, in_flight: usize) -> Option<tokio::time::Instant> {
        match self.interval {
            Some(_) => Some(self.next),
            None if in_flight < self.window => Some(self.next.max(tokio::time::Instant::now())),
            None => None,
        }
    }

    /// A message is being sent now: returns the time it was meant to leave, and moves on.
    pub fn sent(&mut self) -> tokio::time::Instant {
        match self.interval {
            Some(i) => {
                let at = self.next;
                self.next += i;
                at
            }
            None => tokio::time::Instant::now(),
        }
    }

    /// The client could not send for a while (waiting for an agent, starting a new
    /// conversation): slots that passed meanwhile are dropped, not sent in a burst.
    /// Returns how many were dropped.
    pub fn skip_missed(&mut self) -> u64 {
        let Some(i) = self.interval else {
            return 0;
        };
        let now = tokio::time::Instant::now();
        let mut skipped = 0;
        while self.next < now {
            self.next += i;
            skipped += 1;
        }
        skipped
    }
}

/// Opens `n` things at most `connect_concurrency` at a time; failures are counted as
/// `connect_failed` and leave a `None`.
pub async fn open_many<T, F, Fut>(ctx: &Ctx, n: usize, open: F) -> Vec<Option<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use futures_util::StreamExt;
    let opened: Vec<anyhow::Result<T>> = futures_util::stream::iter(0..n)
        .map(open)
        .buffered(ctx.args.connect_concurrency)
        .collect()
        .await;
    opened
        .into_iter()
        .map(|r| match r {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.metrics.count("connect_failed");
                ctx.note(format!("connect: {e:#}"));
                None
            }
        })
        .collect()
}
