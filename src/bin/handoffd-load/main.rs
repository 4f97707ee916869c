//! `handoffd-load`: the load generator and benchmark suite of handoffd (issue 10).
//!
//! Three subcommands:
//! - `baseline` runs the floor every durable chat server has to beat on this machine: a
//!   websocket echo server that group-commits every frame to redb (fsync) before echoing it;
//! - `run` drives one scenario against a running daemon (or, for `echo`, a baseline server)
//!   and reports throughput, latency percentiles and the target's CPU and memory;
//! - `suite` does the whole measurement in one go: baseline, then a fresh daemon per
//!   scenario, and a table with every throughput as a ratio to the baseline of the same run.
//!
//! Every loop here is bounded in time (and count): a scenario ends by itself even when the
//! target stops answering, and network failures are counted, never panicked on.

mod baseline;
mod chat;
mod client;
mod crash;
mod echo;
mod metrics;
mod procstat;
mod reconnect;
mod report;
mod scenario;
mod storm;
mod suite;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::scenario::RunArgs;
use crate::suite::SuiteArgs;

#[derive(Parser)]
#[command(
    name = "handoffd-load",
    version,
    about = "Load generator and benchmark suite for handoffd."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A minimal durable websocket echo server: the floor any chat server is compared to.
    Baseline {
        /// Address to listen on; port 0 picks a free one (printed when ready).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Directory for the redb file (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// The server exits by itself after this long, so a forgotten one goes away.
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
    },
    /// Run one scenario against a running daemon (or a baseline server for `echo`).
    Run(RunArgs),
    /// Start a baseline and fresh daemons, run every scenario, print the results table.
    Suite(SuiteArgs),
    /// Fill a fresh daemon's journal, kill it with SIGKILL mid-traffic, restart it: time to
    /// accept connections, memory with every conversation stored, every ack checked.
    Crash(crash::CrashArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Baseline {
            listen,
            data,
            max_seconds,
        } => baseline::main(listen, &data, max_seconds),
        Command::Run(args) => scenario::main(args),
        Command::Suite(args) => suite::main(args),
        Command::Crash(args) => crash::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
