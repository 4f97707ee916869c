//! The `handoffd` command: run the daemon, check a config, manage agent tokens.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use handoffd::config::{Config, ConfigError};
use handoffd::handoff::HandoffPackage;
use handoffd::http::api::new_agent_record;
use handoffd::store::{Op, Store};

/// The allocator: see the `mimalloc` line in Cargo.toml for why not glibc's. The
/// `system-allocator` feature keeps glibc's, for heap profilers (heaptrack, massif) that only
/// see malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps the kernel from backing the allocator's memory with 2 MiB transparent huge pages:
/// mimalloc commits its arenas eagerly, and with huge pages each idle widget connection
/// cost about 26 KiB of resident memory instead of 19 (docs/benchmarks.md). A daemon that
/// holds tens of thousands of small connections wants the small pages. Failure is harmless
/// (an older kernel): the daemon only uses more memory.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[derive(Parser)]
#[command(
    name = "handoffd",
    version,
    about = "Live chat handoff gateway: bot first, people when needed, bot again after."
)]
struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve,
    /// Check the configuration and print every problem with its key and line.
    CheckConfig,
    /// Manage agent accounts.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Print a JSON Schema (`handoff-package`).
    Schema { name: String },
    /// Replay recorded conversations (JSON Lines) through the analysis and the escalation
    /// policy, and report when and why each would have escalated.
    Eval {
        /// JSON Lines file, one conversation per line (`-` for stdin).
        file: PathBuf,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Analyse lines of text from stdin: one JSON object per line on stdout.
    Analyze,
    /// Export stored conversations as JSON Lines in the format `eval` reads.
    Export {
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an agent and print its token (shown once; only its hash is stored).
    Add {
        /// The agent's id (letters, digits, `.`, `-`, `_`).
        id: String,
        /// Team(s) the agent works in; repeat for several.
        #[arg(long = "team", required = true)]
        teams: Vec<String>,
        /// Conversations the agent holds at once (default: agents.default_capacity).
        #[arg(long)]
        capacity: Option<u32>,
        /// The name customers see (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// A skill routing rules may require; repeat for several.
        #[arg(long = "skill")]
        skills: Vec<String>,
        /// A language the agent writes (ISO 639-1); repeat for several. None: any.
        #[arg(long = "language")]
        languages: Vec<String>,
        /// Make the agent a supervisor of their teams (live queues, load and SLA state;
        /// assign and transfer any conversation).
        #[arg(long)]
        supervisor: bool,
    },
    /// List agent accounts.
    List,
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => return check_config(&cli.config),
        Command::Agent { command } => agent(&cli.config, command),
        Command::Schema { name } => schema(&name),
        Command::Eval { file, json } => return eval(&cli.config, &file, json),
        Command::Analyze => analyze(&cli.config),
        Command::Export { out } => export(&cli.config, out.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("in {}", path.display()))
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let system = actix::System::new();
    system.block_on(async move {
        let gateway = handoffd::Gateway::start(config).await?;
        // Tests and scripts read this line to learn the port.
        println!("handoffd listening on http://{}", gateway.addr);
        std::io::stdout().flush().ok();
        tracing::info!(addr = %gateway.addr, "handoffd started");
        gateway.run().await?;
        tracing::info!("handoffd stopped");
        Ok::<_, anyhow::Error>(())
    })
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                println!("{}:{p}", path.display());
            }
            println!(
                "{}: {} problem{}",
                path.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn agent(path: &std::path::Path, command: AgentCommand) -> anyhow::Result<()> {
    let config = load(path)?;
    let store = Store::open(&config.journal_path()).context(
        "cannot open the journal; while the daemon runs, add agents with POST /api/v1/agents",
    )?;
    match command {
        AgentCommand::Add {
            id,
            teams,
            capacity,
            name,
            skills,
            languages,
            supervisor,
        } => {
            let known: HashSet<String> =
                config.router.teams.iter().map(|t| t.name.clone()).collect();
            let (mut record, token) = new_agent_record(
                &id,
                name.as_deref(),
                &teams,
                capacity.unwrap_or(config.agents.default_capacity),
                &known,
            )
            .map_err(anyhow::Error::msg)?;
            record.skills = skills;
            record.languages = languages.iter().map(|l| l.to_lowercase()).collect();
            record.supervisor = supervisor;
            if store.agent(&id)?.is_some() {
                anyhow::bail!("agent `{id}` exists already");
            }
            store.commit_blocking(vec![Op::PutAgent(Box::new(record))])?;
            eprintln!("agent `{id}` added; its token is shown only this once:");
            println!("{token}");
        }
        AgentCommand::List => {
            for a in store.agents()? {
                println!(
                    "{}\t{}\tteams={}\tcapacity={}{}",
                    a.id,
                    a.display_name,
                    a.teams.join(","),
                    a.capacity,
                    if a.supervisor { "\tsupervisor" } else { "" }
                );
            }
        }
    }
    Ok(())
}

fn schema(name: &str) -> anyhow::Result<()> {
    match name {
        "handoff-package" => {
            println!(
                "{}",
                serde_json::to_string_pretty(&HandoffPackage::json_schema())?
            );
            Ok(())
        }
        other => match handoffd::bot::webhook::json_schema(other) {
            Some(s) => {
                println!("{}", serde_json::to_string_pretty(&s)?);
                Ok(())
            }
            None => anyhow::bail!(
                "unknown schema `{other}`; known: handoff-package, bot-message, bot-event, bot-reply"
            ),
        },
    }
}

/// Exit codes of `eval`: 0 all lines replayed, 2 some lines could not be read (reported on
/// stderr, the rest replayed), 1 nothing could be done.
fn eval(path: &std::path::Path, file: &std::path::Path, json: bool) -> ExitCode {
    let run = || -> anyhow::Result<bool> {
        let config = load(path)?;
        let analyzer = handoffd::analyzer_from(&config)?;
        let policy = handoffd::escalation::Policy::new(&config.escalation);
        let input = if file == std::path::Path::new("-") {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
        };
        let (outcomes, errors) = handoffd::escalation::eval::run(&input, &analyzer, &policy);
        for e in &errors {
            eprintln!("{}:{}: {}", file.display(), e.line, e.message);
        }
        let summary = handoffd::escalation::eval::summarize(&outcomes, errors.len());
        let mut stdout = std::io::stdout().lock();
        if json {
            let doc = serde_json::json!({
                "conversations": outcomes,
                "errors": errors,
                "summary": summary,
            });
            writeln!(stdout, "{}", serde_json::to_string_pretty(&doc)?)?;
        } else {
            write!(
                stdout,
                "{}",
                handoffd::escalation::eval::table(&outcomes, &errors, &summary)
            )?;
        }
        Ok(errors.is_empty())
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn analyze(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::BufRead;
    let config = load(path)?;
    let analyzer = handoffd::analyzer_from(&config)?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line?;
        let Ok(text) = std::str::from_utf8(&line) else {
            eprintln!("line {}: not valid UTF-8; skipped", n + 1);
            continue;
        };
        let text = text.trim_end_matches('\r');
        let a = analyzer.analyze(text);
        let v = serde_json::json!({
            "text": text,
            "sentiment": a.sentiment,
            "language": a.language,
            "entities": a.entities,
            "intents": a.intents,
            "explicit_request": a.explicit_request.is_some(),
        });
        writeln!(stdout, "{v}")?;
    }
    Ok(())
}

fn export(path: &std::path::Path, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = load(path)?;
    let store = Store::open(&config.journal_path())
        .context("cannot open the journal (stop the daemon to export)")?;
    let mut sink: Box<dyn Write> = match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let all = store.conversations(&Default::default())?;
    for c in &all {
        let messages = store.messages_after(&c.id, 0)?;
        let line = handoffd::escalation::eval::export_conversation(c, &messages);
        writeln!(sink, "{}", serde_json::to_string(&line)?)?;
    }
    sink.flush()?;
    eprintln!("{} conversations exported", all.len());
    Ok(())
}
