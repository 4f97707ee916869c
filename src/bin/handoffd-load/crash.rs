//! `handoffd-load crash`: the recovery targets of issue 10, measured in one command.
//!
//! 1. A fresh daemon (as the suite prepares them) gets `--conversations` widget
//!    conversations of `--messages` customer messages each, every one answered by the
//!    built-in bot; every acknowledged message (conversation, seq, text) is remembered.
//! 2. More conversations keep coming while the daemon is killed with SIGKILL: messages in
//!    flight at that moment are the interesting ones.
//! 3. The daemon is started again on the same journal: the time until it prints its
//!    address (accepting connections) and until `/healthz` answers, and its memory then and
//!    a few seconds later, with every conversation stored and none live.
//! 4. The daemon is stopped and the journal opened directly: every acknowledged message must
//!    be there, with its text, at its seq.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use parking_lot::Mutex;

use crate::client;
use crate::procstat;
use crate::scenario::{self, faq_question};
use crate::suite::{Proc, TempDir, find_config, start_daemon};

#[derive(Debug, Clone, Args)]
pub struct CrashArgs {
    /// The daemon binary (default: `handoffd` next to this binary).
    #[arg(long)]
    pub handoffd: Option<PathBuf>,
    /// The configuration to start from (default: ./config.toml, else the repo's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Conversations stored before the crash.
    #[arg(long, default_value_t = 1_000_000)]
    pub conversations: usize,
    /// Customer messages per conversation (each answered by the bot).
    #[arg(long, default_value_t = 1)]
    pub messages: usize,
    /// Conversations written at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Runtime threads of the generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Keep the temporary directory (journal, config, log).
    #[arg(long)]
    pub keep: bool,
}

/// A message the daemon acknowledged: it must survive the crash.
struct Acked {
    conversation_id: String,
    seq: u64,
    text: &'static str,
}

/// What a filling task shares with the others.
struct Fill {
    base: String,
    next: AtomicUsize,
    /// Conversations to write; past it, tasks stop (unless `endless`).
    target: usize,
    endless: AtomicBool,
    messages: usize,
    acked: Mutex<Vec<Acked>>,
    failures: AtomicUsize,
}

/// One conversation: hello, then each message with its ack and the bot's answer.
async fn conversation(fill: &Fill, i: usize) -> anyhow::Result<()> {
    let url = format!("{}/widget/ws", fill.base);
    let mut ws = client::connect(&url).await?;
    client::send(
        &mut ws,
        client::widget_hello(None, 0, &format!("Crash {i}")),
    )
    .await?;
    client::expect(&mut ws, "welcome", Duration::from_secs(10), |_| {}).await?;
    for k in 0..fill.messages {
        let text = faq_question(i, k);
        let client_id = format!("k{i}-{k}");
        client::send(&mut ws, client::widget_message(text, &client_id)).await?;
        let ack = client::expect(&mut ws, "ack", Duration::from_secs(10), |_| {}).await?;
        let (Some(cid), Some(seq)) = (ack.conversation_id, ack.seq) else {
            anyhow::bail!("an ack without conversation or seq");
        };
        fill.acked.lock().push(Acked {
            conversation_id: cid,
            seq,
            text,
        });
        // The bot's answer, so each turn writes what a real one does.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let f = tokio::time::timeout_at(deadline, client::read(&mut ws))
                .await
                .context("no answer from the bot")?;
            match f {
                client::Read::Frame(f)
                    if f.kind == "message" && f.role.as_deref() == Some("bot") =>
                {
                    break;
                }
                client::Read::Frame(_) => continue,
                _ => anyhow::bail!("closed before the bot answered"),
            }
        }
    }
    client::close(ws).await;
    Ok(())
}

async fn worker(fill: Arc<Fill>) {
    loop {
        let i = fill.next.fetch_add(1, Ordering::Relaxed);
        if i >= fill.target && !fill.endless.load(Ordering::Relaxed) {
            return;
        }
        if conversation(&fill, i).await.is_err() {
            fill.failures.fetch_add(1, Ordering::Relaxed);
            if fill.endless.load(Ordering::Relaxed) {
                // The daemon is gone: this worker is done.
                return;
            }
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn main(args: CrashArgs) -> anyhow::Result<ExitCode> {
    // reqwest is built without a default TLS provider (the daemon installs one too).
    handoffd_channels::meta::install_crypto_provider();
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let handoffd = args
        .handoffd
        .clone()
        .unwrap_or_else(|| exe.with_file_name("handoffd"));
    anyhow::ensure!(handoffd.is_file(), "no daemon at {}", handoffd.display());
    let config_path = find_config(args.config.as_deref(), &exe)?;
    let base: toml::Table = toml::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?,
    )?;
    let rt = scenario::runtime(args.threads)?;
    let tmp = TempDir::new(args.keep)?;
    let dir = tmp.path.join("daemon");
    let (daemon, _) = start_daemon(&handoffd, &base, &dir, 0, 1)?;
    let config = dir.join("config.toml");
    let fill = Arc::new(Fill {
        base: client::ws_base(&daemon.addr),
        next: AtomicUsize::new(0),
        target: args.conversations,
        endless: AtomicBool::new(false),
        messages: args.messages.max(1),
        acked: Mutex::new(Vec::new()),
        failures: AtomicUsize::new(0),
    });

    // 1. Fill.
    let started = Instant::now();
    eprintln!(
        "filling {} conversations of {} message(s), {} at once",
        args.conversations, fill.messages, args.concurrency
    );
    rt.block_on(async {
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| tokio::spawn(worker(fill.clone())))
            .collect();
        let mut last = Instant::now();
        while !workers.iter().all(|w| w.is_finished()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if last.elapsed() >= Duration::from_secs(10) {
                last = Instant::now();
                eprintln!(
                    "  {} acked after {:.0} s",
                    fill.acked.lock().len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    });
    let fill_secs = started.elapsed().as_secs_f64();
    let filled = fill.acked.lock().len();
    let fill_failures = fill.failures.load(Ordering::Relaxed);
    let (rss_filled, _) = procstat::memory_kib(daemon.pid()).unwrap_or((0, 0));

    // 2. Crash with messages in flight.
    fill.endless.store(true, Ordering::Relaxed);
    let pid = daemon.pid();
    rt.block_on(async {
        let workers: Vec<_> = (0..args.concurrency.max(1))
            .map(|_| tokio::spawn(worker(fill.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
        }
    });
    daemon.reap();
    let acked_total = fill.acked.lock().len();

    // 3. Restart.
    let restart = Instant::now();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("daemon.log"))?;
    let mut cmd = Command::new(&handoffd);
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stderr(log);
    let daemon = Proc::start(cmd, "handoffd listening on http://", "handoffd again")?;
    let to_listening = restart.elapsed();
    let health_url = format!("http://{}/healthz", daemon.addr);
    let to_health = rt.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..3000 {
            if let Ok(r) = http.get(&health_url).send().await
                && r.status().is_success()
            {
                return Some(restart.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    });
    let (rss_restarted, _) = procstat::memory_kib(daemon.pid()).unwrap_or((0, 0));
    std::thread::sleep(Duration::from_secs(5));
    let (rss_idle, _) = procstat::memory_kib(daemon.pid()).unwrap_or((0, 0));
    daemon.stop();

    // 4. Everything acknowledged is in the journal.
    let journal = dir.join("data").join("handoffd.redb");
    let journal_mib = std::fs::metadata(&journal).map_or(0, |m| m.len()) / (1024 * 1024);
    let store = handoffd::store::Store::open(&journal).context("cannot open the journal")?;
    let mut lost = 0usize;
    let mut stored_messages = 0usize;
    for a in fill.acked.lock().iter() {
        let found = store
            .messages_after(&a.conversation_id, a.seq.saturating_sub(1))?
            .into_iter()
            .next()
            .filter(|m| m.seq == a.seq && m.text == a.text);
        match found {
            Some(_) => stored_messages += 1,
            None => {
                if lost < 5 {
                    eprintln!("LOST: {} seq {}", a.conversation_id, a.seq);
                }
                lost += 1;
            }
        }
    }
    let conversations = {
        let acked = fill.acked.lock();
        let ids: std::collections::HashSet<&str> =
            acked.iter().map(|a| a.conversation_id.as_str()).collect();
        ids.len()
    };

    println!("conversations with acknowledged messages: {conversations}");
    println!(
        "fill: {filled} messages acknowledged in {fill_secs:.0} s ({:.0}/s); {} more in the last second before the kill",
        filled as f64 / fill_secs.max(0.001),
        acked_total - filled
    );
    println!("journal: {journal_mib} MiB");
    println!("daemon RSS before the kill: {:.0} MiB", mib(rss_filled));
    println!(
        "restart: listening after {:.3} s, /healthz after {}",
        to_listening.as_secs_f64(),
        to_health.map_or("never".to_string(), |d| format!("{:.3} s", d.as_secs_f64()))
    );
    println!(
        "daemon RSS after the restart: {:.0} MiB, 5 s later {:.0} MiB",
        mib(rss_restarted),
        mib(rss_idle)
    );
    println!("acknowledged messages checked in the journal: {stored_messages} found, {lost} lost");
    println!("conversations that failed while filling: {fill_failures}");
    Ok(if lost == 0 && to_health.is_some() && fill_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
