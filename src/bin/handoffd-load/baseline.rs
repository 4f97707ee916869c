//! The baseline server: the floor of what any durable chat server can do on this machine.
//!
//! It does the least a chat server must do with a message and nothing else: read a
//! websocket text frame, make it durable, answer. Durable means the same thing it means in
//! handoffd: appended to a redb table by one writer thread that drains every waiting append
//! into one write transaction and commits it with redb's default durability (fsync) before
//! anyone in the batch is answered. handoffd's throughput is reported as a ratio to this
//! server's, measured in the same run, so the figures say how much the daemon's own work
//! (actors, analysis, bot, routing, JSON) costs on top of the unavoidable part.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use redb::{Database, ReadableTable, TableDefinition};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Every frame ever received, by arrival number.
const FRAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("frames");
/// The most appends one transaction takes, as in handoffd's writer: bounds the wait of the
/// first request of a batch.
const MAX_BATCH: usize = 4096;
/// Frames a connection may have waiting for the journal before it stops reading; the same
/// order of magnitude as the daemon's per-connection queue.
const IN_FLIGHT_PER_CONNECTION: usize = 1024;
/// A connection that sends nothing for this long is closed, so no task lives forever.
const IDLE: Duration = Duration::from_secs(120);

/// One frame to make durable, and who to tell once it is.
struct Append {
    frame: Vec<u8>,
    done: oneshot::Sender<bool>,
}

/// `handoffd-load baseline`: serves until Ctrl-C, SIGTERM/SIGKILL from the suite, or
/// `max_seconds`, so a forgotten server still goes away by itself.
pub fn main(listen: SocketAddr, data: &Path, max_seconds: u64) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let path = data.join("baseline.redb");
    let db = Database::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let next_key = prepare(&db).context("cannot prepare the frames table")?;
    let (tx, rx) = mpsc::channel::<Append>();
    let writer = std::thread::Builder::new()
        .name("baseline-writer".into())
        .spawn(move || write_loop(db, rx, next_key))
        .context("cannot start the writer thread")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let served = runtime.block_on(serve(listen, tx, Duration::from_secs(max_seconds)));
    // Dropping the runtime drops every connection and with them the last senders, which
    // ends the writer's loop after it has answered what was queued.
    drop(runtime);
    if writer.join().is_err() {
        anyhow::bail!("the writer thread panicked");
    }
    served.map(|()| ExitCode::SUCCESS)
}

/// Creates the table and finds the next free key, so a reused data directory keeps its
/// frames instead of overwriting them.
fn prepare(db: &Database) -> anyhow::Result<u64> {
    let txn = db.begin_write()?;
    let next = {
        let table = txn.open_table(FRAMES)?;
        table
            .last()?
            .map_or(0, |(k, _)| k.value().saturating_add(1))
    };
    txn.commit()?;
    Ok(next)
}

/// The group-commit writer: block for one append, take every other one already waiting,
/// write them in one transaction, fsync, then answer them all.
fn write_loop(db: Database, rx: mpsc::Receiver<Append>, mut next_key: u64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let stored = match commit(&db, &mut next_key, &batch) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "baseline: write failed, {} frames not stored: {e:#}",
                    batch.len()
                );
                false
            }
        };
        for a in batch {
            let _ = a.done.send(stored);
        }
    }
}

fn commit(db: &Database, next_key: &mut u64, batch: &[Append]) -> anyhow::Result<()> {
    let txn = db.begin_write()?;
    let mut key = *next_key;
    {
        let mut table = txn.open_table(FRAMES)?;
        for a in batch {
            table.insert(key, a.frame.as_slice())?;
            key += 1;
        }
    }
    txn.commit()?;
    *next_key = key;
    Ok(())
}

async fn serve(
    listen: SocketAddr,
    journal: mpsc::Sender<Append>,
    max_run: Duration,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // The suite reads this line to learn the port.
    println!("baseline listening on {addr}");
    let deadline = tokio::time::Instant::now() + max_run;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let journal = journal.clone();
                    tokio::spawn(async move {
                        // A client that goes away is not the server's error.
                        let _ = connection(stream, journal).await;
                    });
                }
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
        }
    }
}

/// One client: frames are read as fast as they come and handed to the writer; a second task
/// answers them in order as their commits finish. Reading ahead is what lets one
/// connection's frames share a commit, which is the best a server can do.
async fn connection(stream: TcpStream, journal: mpsc::Sender<Append>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut source) = ws.split();
    let (waiting_tx, mut waiting_rx) =
        tokio::sync::mpsc::channel::<(oneshot::Receiver<bool>, Message)>(IN_FLIGHT_PER_CONNECTION);
    let echo = tokio::spawn(async move {
        while let Some((done, frame)) = waiting_rx.recv().await {
            // Not stored (or the writer gone): the client must not believe it was.
            if !matches!(done.await, Ok(true)) {
                break;
            }
            if sink.feed(frame).await.is_err() {
                return;
            }
            // Flush when nothing else is ready, so a burst leaves in few writes.
            if waiting_rx.is_empty() && sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let next = match tokio::time::timeout(IDLE, source.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => break,
        };
        match next {
            Message::Text(text) => {
                let (done, stored) = oneshot::channel();
                let append = Append {
                    frame: text.as_bytes().to_vec(),
                    done,
                };
                if journal.send(append).is_err() {
                    break;
                }
                if waiting_tx
                    .send((stored, Message::Text(text)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    drop(waiting_tx);
    let _ = echo.await;
    Ok(())
}
