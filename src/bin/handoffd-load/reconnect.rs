//! `reconnect-storm`: N visitors connected, all dropped at once, all resuming at once.
//!
//! 1. N visitors connect and say `hello` (no conversation yet): the daemon's RSS before and
//!    after gives its memory per idle widget connection.
//! 2. Each asks the bot one question and waits for the answer: N live conversations.
//! 3. Each round: every visitor sends one more question and, as soon as it is acknowledged
//!    (the bot's answer may still be on its way), every connection is dropped without a
//!    close frame, like a network failure. Then all reconnect at the same moment with their
//!    token and `last_seq` (the highest seq of a `message` frame received, as the protocol
//!    says). Latency: start of the reconnect -> `welcome`.
//! 4. After the welcome the visitor must receive exactly the seqs above its `last_seq`, up to
//!    and including the bot's answer to the last question, each once, in order, with its own
//!    last message replayed under its `client_id`. Any hole is `lost`, any repeat `doubled`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{self, Read, Ws};
use crate::procstat;
use crate::scenario::{Ctx, Outcome, faq_question, open_many};

/// How long a visitor waits for an expected frame.
const FRAME_WAIT: Duration = Duration::from_secs(15);

struct Visitor {
    i: usize,
    ws: Option<Ws>,
    token: String,
    /// Highest seq of a `message` frame received.
    last_seq: u64,
    /// Seq of the newest customer message (from its ack), and its client_id.
    last_customer: Option<(u64, String)>,
    serial: u64,
}

impl Visitor {
    /// Sends a question; returns once it is acknowledged (and, with `answered`, once a bot
    /// message above its seq came too).
    async fn ask(&mut self, ctx: &Ctx, answered: bool) -> anyhow::Result<()> {
        let ws = self
            .ws
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("not connected"))?;
        let client_id = format!("q{}-{}", self.i, self.serial);
        let text = faq_question(self.i, self.serial as usize);
        self.serial += 1;
        client::send(ws, client::widget_message(text, &client_id)).await?;
        ctx.metrics.count("sent");
        let deadline = Instant::now() + FRAME_WAIT;
        let mut acked: Option<u64> = None;
        loop {
            let f = match tokio::time::timeout_at(deadline, client::read(ws)).await {
                Err(_) => anyhow::bail!("no answer within {FRAME_WAIT:?}"),
                Ok(Read::Closed) => anyhow::bail!("closed"),
                Ok(Read::Garbage) => anyhow::bail!("a frame that is not JSON"),
                Ok(Read::Frame(f)) => f,
            };
            match f.kind.as_str() {
                "ack" => {
                    anyhow::ensure!(
                        f.client_id.as_deref() == Some(client_id.as_str()),
                        "ack for {:?}, expected {client_id}",
                        f.client_id
                    );
                    let seq = f.seq.ok_or_else(|| anyhow::anyhow!("ack without seq"))?;
                    ctx.metrics.count("acked");
                    self.last_customer = Some((seq, client_id.clone()));
                    acked = Some(seq);
                }
                "message" => {
                    let seq = f.seq.unwrap_or(0);
                    self.last_seq = self.last_seq.max(seq);
                }
                "error" => anyhow::bail!("error `{}`", f.code.as_deref().unwrap_or("?")),
                _ => {}
            }
            match acked {
                Some(_) if !answered => return Ok(()),
                Some(s) if self.last_seq > s => return Ok(()),
                _ => {}
            }
        }
    }

    /// Reconnects with token and last_seq; checks the replay. Returns the time to welcome.
    async fn resume(&mut self, ctx: &Ctx) -> anyhow::Result<Duration> {
        let m = &ctx.metrics;
        let started = Instant::now();
        let mut ws = client::connect(&ctx.widget_url()).await?;
        client::send(
            &mut ws,
            client::widget_hello(Some(&self.token), self.last_seq, "Resumer"),
        )
        .await?;
        let welcome = client::expect(&mut ws, "welcome", FRAME_WAIT, |_| {}).await?;
        let took = started.elapsed();
        if welcome.token.as_deref() != Some(self.token.as_str()) {
            m.count("mismatched");
            ctx.note("welcome on resume carried another token");
        }
        let Some((customer_seq, client_id)) = self.last_customer.clone() else {
            self.ws = Some(ws);
            return Ok(took);
        };
        // Expect every seq above last_seq, up to a bot message above the last question.
        let from = self.last_seq + 1;
        let mut next_expected = from;
        let deadline = Instant::now() + FRAME_WAIT;
        let mut replayed_own = false;
        loop {
            let f = match tokio::time::timeout_at(deadline, client::read(&mut ws)).await {
                Err(_) => {
                    m.count("lost");
                    ctx.note(format!(
                        "visitor {}: replay stopped before seq {next_expected}",
                        self.i
                    ));
                    break;
                }
                Ok(Read::Closed) => anyhow::bail!("closed during the replay"),
                Ok(Read::Garbage) => anyhow::bail!("a frame that is not JSON"),
                Ok(Read::Frame(f)) => f,
            };
            match f.kind.as_str() {
                "message" => {
                    let seq = f.seq.unwrap_or(0);
                    m.count("replayed");
                    if seq < next_expected {
                        m.count("doubled");
                        ctx.note(format!("visitor {}: seq {seq} came again", self.i));
                        continue;
                    }
                    if seq > next_expected {
                        m.add("lost", seq - next_expected);
                        ctx.note(format!(
                            "visitor {}: seqs {next_expected}..{seq} missing",
                            self.i
                        ));
                    }
                    next_expected = seq + 1;
                    self.last_seq = seq;
                    if seq == customer_seq {
                        replayed_own = f.role.as_deref() == Some("customer")
                            && f.client_id.as_deref() == Some(client_id.as_str());
                    }
                    if seq > customer_seq && f.role.as_deref() == Some("bot") {
                        break;
                    }
                }
                "error" => anyhow::bail!("error `{}`", f.code.as_deref().unwrap_or("?")),
                _ => {}
            }
        }
        if customer_seq >= from && !replayed_own {
            m.count("lost");
            ctx.note(format!(
                "visitor {}: own message {customer_seq} not replayed",
                self.i
            ));
        }
        self.ws = Some(ws);
        Ok(took)
    }
}

pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<Outcome> {
    let n = ctx.args.customers;
    let m = ctx.metrics.clone();
    let mut extra = BTreeMap::new();
    let url = ctx.widget_url();
    let rss_before = ctx.args.pid.and_then(procstat::memory_kib);
    let opened = open_many(&ctx, n, |i| {
        let url = url.clone();
        async move {
            let mut ws = client::connect(&url).await?;
            client::send(
                &mut ws,
                client::widget_hello(None, 0, &format!("Visitor {i}")),
            )
            .await?;
            let w = client::expect(&mut ws, "welcome", FRAME_WAIT, |_| {}).await?;
            let token = w
                .token
                .ok_or_else(|| anyhow::anyhow!("welcome without token"))?;
            Ok(Visitor {
                i,
                ws: Some(ws),
                token,
                last_seq: 0,
                last_customer: None,
                serial: 0,
            })
        }
    })
    .await;
    let mut visitors: Vec<Visitor> = opened.into_iter().flatten().collect();
    anyhow::ensure!(!visitors.is_empty(), "no visitor could connect");
    // Let the daemon's allocator settle before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = ctx.args.pid.and_then(procstat::memory_kib);
    if let (Some((before, _)), Some((after, _))) = (rss_before, rss_connected) {
        extra.insert(
            "daemon KiB per idle connection".to_string(),
            after.saturating_sub(before) as f64 / visitors.len() as f64,
        );
    }

    // Every visitor gets a conversation with a first answer.
    visitors = for_all(&ctx, visitors, |mut v, ctx| async move {
        let r = v.ask(&ctx, true).await;
        (v, r)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let (Some((before, _)), Some((after, _))) =
        (rss_connected, ctx.args.pid.and_then(procstat::memory_kib))
    {
        extra.insert(
            "daemon KiB per live conversation".to_string(),
            after.saturating_sub(before) as f64 / visitors.len() as f64,
        );
    }

    ctx.window_start();
    let mut storm_seconds: f64 = 0.0;
    let mut resumed = 0u64;
    for _round in 0..ctx.args.rounds {
        // One more question each, acknowledged but maybe not answered yet...
        visitors = for_all(&ctx, visitors, |mut v, ctx| async move {
            let r = v.ask(&ctx, false).await;
            (v, r)
        })
        .await;
        // ...then every connection drops at once, without a close frame.
        for v in visitors.iter_mut() {
            v.ws = None;
        }
        let started = Instant::now();
        visitors = for_all(&ctx, visitors, |mut v, ctx| async move {
            let r = v.resume(&ctx).await.map(|took| {
                ctx.metrics.latency("reconnect -> welcome", took);
                ctx.metrics.count("resumed");
            });
            (v, r)
        })
        .await;
        storm_seconds = storm_seconds.max(started.elapsed().as_secs_f64());
        resumed = m.get("resumed");
    }
    ctx.window_end();
    for v in visitors {
        if let Some(ws) = v.ws {
            client::close(ws).await;
        }
    }
    extra.insert("longest storm seconds".to_string(), storm_seconds);
    let total_storm = storm_seconds * f64::from(ctx.args.rounds.max(1));
    Ok(Outcome {
        offered: None,
        throughput: if total_storm > 0.0 {
            resumed as f64 / total_storm
        } else {
            0.0
        },
        unit: "resumes/s",
        window_s: total_storm,
        extra,
    })
}

/// Runs `f` on every visitor at once (each in its own task, all bounded by their own frame
/// waits) and gives the visitors back; a visitor whose step failed is counted and dropped.
async fn for_all<F, Fut>(ctx: &Arc<Ctx>, visitors: Vec<Visitor>, f: F) -> Vec<Visitor>
where
    F: Fn(Visitor, Arc<Ctx>) -> Fut,
    Fut: std::future::Future<Output = (Visitor, anyhow::Result<()>)> + Send + 'static,
{
    let tasks: Vec<_> = visitors
        .into_iter()
        .map(|v| tokio::spawn(f(v, ctx.clone())))
        .collect();
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok((v, Ok(()))) => back.push(v),
            Ok((v, Err(e))) => {
                ctx.metrics.count("disconnected");
                ctx.note(format!("visitor {}: {e:#}", v.i));
            }
            Err(_) => ctx.metrics.count("unexpected"),
        }
    }
    back
}
