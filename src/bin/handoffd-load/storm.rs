//! `escalation-storm`, and the agent sessions every escalating scenario uses.
//!
//! In a storm every customer asks for a person at the same instant. Latency is the
//! escalation message leaving the customer -> the `offer` of that conversation reaching an
//! agent, matched by conversation id (the customer learns it from its `ack`, the agent from
//! the offer; whichever comes second completes the pair). Agents accept and close at once,
//! so capacity frees and the queue drains; the storm is over when every customer has been
//! handed back to the bot, and its throughput is offers per second until the last one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{self, Read, Ws};
use crate::metrics::Metrics;
use crate::scenario::{Ctx, ESCALATION_TEXT, Outcome, open_many};

/// What agents do with a conversation once it is theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    /// Close at once (storms: only the path to the offer is measured).
    Close,
    /// Reply once (stamped, for the reply -> customer latency), then close.
    ReplyClose,
}

enum Half {
    Sent(Instant),
    Offered(Instant),
}

/// Pairs an escalation sent by a customer with the offer an agent received.
pub struct Rendezvous {
    halves: Mutex<HashMap<String, Half>>,
    last_offer: Mutex<Option<Instant>>,
    metrics: Metrics,
}

const ESCALATION_TO_OFFER: &str = "escalation -> offer";

impl Rendezvous {
    pub fn new(metrics: Metrics) -> Self {
        Rendezvous {
            halves: Mutex::new(HashMap::new()),
            last_offer: Mutex::new(None),
            metrics,
        }
    }

    fn halves(&self) -> std::sync::MutexGuard<'_, HashMap<String, Half>> {
        self.halves.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A customer's escalation of `conversation` left at `at`.
    pub fn sent(&self, conversation: &str, at: Instant) {
        let mut h = self.halves();
        match h.remove(conversation) {
            Some(Half::Offered(offered)) => {
                self.metrics
                    .latency(ESCALATION_TO_OFFER, offered.saturating_duration_since(at));
            }
            _ => {
                h.insert(conversation.to_string(), Half::Sent(at));
            }
        }
    }

    /// An agent was offered `conversation` (first offer of it to that session).
    pub fn offered(&self, conversation: &str, at: Instant) {
        {
            let mut last = self.last_offer.lock().unwrap_or_else(|p| p.into_inner());
            *last = Some(last.map_or(at, |l| l.max(at)));
        }
        let mut h = self.halves();
        match h.remove(conversation) {
            Some(Half::Sent(sent)) => {
                self.metrics
                    .latency(ESCALATION_TO_OFFER, at.saturating_duration_since(sent));
            }
            _ => {
                h.insert(conversation.to_string(), Half::Offered(at));
            }
        }
    }

    pub fn last_offer(&self) -> Option<Instant> {
        *self.last_offer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Escalations never offered are a problem; offers never matched to a customer's ack
    /// are only counted (the customer may have broken off before reading its ack).
    pub fn finish(&self) {
        let h = self.halves();
        for half in h.values() {
            match half {
                Half::Sent(_) => self.metrics.count("not_offered"),
                Half::Offered(_) => self.metrics.count("offer_unmatched"),
            }
        }
        let not_offered = self.metrics.get("not_offered");
        if not_offered > 0 {
            self.metrics.add("timed_out", not_offered);
        }
    }
}

/// The text of an agent reply: carries when it was sent, in microseconds since the
/// scenario's epoch, so the customer side can compute the latency without shared state.
pub fn stamped_reply(micros: u64) -> String {
    format!("Hi, I'm a person and I can help with that. [ref {micros}]")
}

/// The stamp in a reply written by `stamped_reply`.
pub fn read_stamp(text: &str) -> Option<u64> {
    let start = text.rfind("[ref ")? + 5;
    let end = start + text[start..].find(']')?;
    text[start..end].parse().ok()
}

/// Opens one session per `ctx.agent_sessions()` and waits for their `welcome`; each then
/// runs until `stop` turns true or `hard_end`.
pub async fn start_agents(
    ctx: &Arc<Ctx>,
    rv: &Arc<Rendezvous>,
    mode: AgentMode,
    stop: watch::Receiver<bool>,
    hard_end: Instant,
) -> Vec<JoinHandle<()>> {
    let tokens = ctx.agent_sessions();
    let url = ctx.agent_url();
    let sessions = open_many(ctx, tokens.len(), |i| {
        let token = tokens[i].clone();
        let url = url.clone();
        async move {
            let mut ws = client::connect(&url).await?;
            client::send(&mut ws, json!({"type": "auth", "token": token}).to_string()).await?;
            client::expect(&mut ws, "welcome", Duration::from_secs(10), |_| {}).await?;
            Ok(ws)
        }
    })
    .await;
    sessions
        .into_iter()
        .flatten()
        .map(|ws| {
            let ctx = ctx.clone();
            let rv = rv.clone();
            let stop = stop.clone();
            tokio::spawn(async move { agent(&ctx, &rv, ws, mode, stop, hard_end).await })
        })
        .collect()
}

async fn agent(
    ctx: &Ctx,
    rv: &Rendezvous,
    mut ws: Ws,
    mode: AgentMode,
    mut stop: watch::Receiver<bool>,
    hard_end: Instant,
) {
    let m = &ctx.metrics;
    // Conversations offered to this session and not closed yet.
    let mut open: HashSet<String> = HashSet::new();
    let mut reply_serial: u64 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let frame = tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(hard_end) => break,
            r = client::read(&mut ws) => r,
        };
        let f = match frame {
            Read::Frame(f) => f,
            Read::Garbage => {
                m.count("unexpected");
                continue;
            }
            Read::Closed => {
                m.count("disconnected");
                ctx.note("an agent session was closed by the daemon");
                return;
            }
        };
        let conv = f.conversation_id.clone().unwrap_or_default();
        let answer = match (f.kind.as_str(), f.request.as_deref()) {
            ("offer", _) => {
                if open.insert(conv.clone()) {
                    m.count("offers");
                    rv.offered(&conv, Instant::now());
                } else {
                    // Offers are sent again when one times out or a session reconnects.
                    m.count("offer_repeated");
                }
                Some(json!({"type": "accept", "conversation_id": conv}))
            }
            ("assigned", _) => {
                m.count("assigned");
                match mode {
                    AgentMode::Close => Some(json!({"type": "close", "conversation_id": conv})),
                    AgentMode::ReplyClose => {
                        reply_serial += 1;
                        Some(json!({
                            "type": "reply",
                            "conversation_id": conv,
                            "text": stamped_reply(ctx.micros()),
                            "client_id": format!("r{reply_serial}"),
                        }))
                    }
                }
            }
            ("ack", Some("reply")) => {
                m.count("agent_replies_acked");
                Some(json!({"type": "close", "conversation_id": conv}))
            }
            ("ack", Some("close")) => {
                m.count("closes");
                open.remove(&conv);
                None
            }
            ("error", _) => {
                m.count("error_frames");
                ctx.note(format!(
                    "agent error `{}`: {}",
                    f.code.as_deref().unwrap_or("?"),
                    client::nested_text(&f.message).unwrap_or("")
                ));
                None
            }
            ("offer_withdrawn", _) => {
                m.count("offers_withdrawn");
                open.remove(&conv);
                None
            }
            _ => None,
        };
        if let Some(a) = answer
            && client::send(&mut ws, a.to_string()).await.is_err()
        {
            m.count("disconnected");
            return;
        }
    }
    client::close(ws).await;
}

pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<Outcome> {
    let n = ctx.args.customers;
    let rv = Arc::new(Rendezvous::new(ctx.metrics.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let storm_limit = Duration::from_secs_f64(ctx.args.duration);
    let hard_end = Instant::now() + Duration::from_secs(60) + storm_limit;
    let agents = start_agents(&ctx, &rv, AgentMode::Close, stop_rx, hard_end).await;
    anyhow::ensure!(!agents.is_empty(), "no agent session could be opened");

    let url = ctx.widget_url();
    let visitors = open_many(&ctx, n, |i| {
        let url = url.clone();
        async move {
            let mut ws = client::connect(&url).await?;
            client::send(
                &mut ws,
                client::widget_hello(None, 0, &format!("Storm {i}")),
            )
            .await?;
            client::expect(&mut ws, "welcome", Duration::from_secs(10), |_| {}).await?;
            Ok(ws)
        }
    })
    .await;
    let t0 = Instant::now() + Duration::from_millis(100);
    let deadline = t0 + storm_limit;
    ctx.window_start();
    let mut tasks = Vec::new();
    for ws in visitors.into_iter().flatten() {
        let ctx = ctx.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            storm_customer(&ctx, &rv, ws, t0, deadline).await
        }));
    }
    let mut last_back: Option<Instant> = None;
    for t in tasks {
        match t.await {
            Ok(Some(at)) => last_back = Some(last_back.map_or(at, |l| l.max(at))),
            Ok(None) => {}
            Err(_) => ctx.metrics.count("unexpected"),
        }
    }
    ctx.window_end();
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = a.await;
    }
    rv.finish();

    let offered = ctx
        .metrics
        .latencies()
        .get(ESCALATION_TO_OFFER)
        .map_or(0, |l| l.count);
    let offers_span = rv
        .last_offer()
        .map_or(0.0, |l| l.saturating_duration_since(t0).as_secs_f64());
    let storm_s = last_back.map_or(storm_limit.as_secs_f64(), |l| {
        l.saturating_duration_since(t0).as_secs_f64()
    });
    let mut extra = BTreeMap::new();
    extra.insert("seconds until the last offer".to_string(), offers_span);
    extra.insert("seconds until all handed back".to_string(), storm_s);
    Ok(Outcome {
        offered: None,
        throughput: if offers_span > 0.0 {
            offered as f64 / offers_span
        } else {
            0.0
        },
        unit: "offers/s",
        window_s: storm_s,
        extra,
    })
}

/// One customer of the storm: asks for a person at `t0`, then waits to be handed back.
/// Returns when it was handed back, or None if it was not by `deadline`.
async fn storm_customer(
    ctx: &Ctx,
    rv: &Rendezvous,
    mut ws: Ws,
    t0: Instant,
    deadline: Instant,
) -> Option<Instant> {
    let m = &ctx.metrics;
    tokio::time::sleep_until(t0).await;
    let at = Instant::now();
    if client::send(&mut ws, client::widget_message(ESCALATION_TEXT, "s1"))
        .await
        .is_err()
    {
        m.count("disconnected");
        return None;
    }
    m.count("sent");
    let mut with_people = false;
    let result = loop {
        let r = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                m.count("timed_out");
                ctx.note("a storm customer was not handed back in time");
                break None;
            }
            r = client::read(&mut ws) => r,
        };
        let f = match r {
            Read::Frame(f) => f,
            Read::Garbage => {
                m.count("unexpected");
                continue;
            }
            Read::Closed => {
                m.count("disconnected");
                break None;
            }
        };
        match (f.kind.as_str(), f.state.as_deref()) {
            ("ack", _) => match &f.conversation_id {
                Some(c) if f.client_id.as_deref() == Some("s1") => {
                    m.count("acked");
                    rv.sent(c, at);
                }
                _ => m.count("mismatched"),
            },
            ("status", Some("queued")) | ("status", Some("agent")) => with_people = true,
            ("status", Some("bot")) if with_people => {
                m.count("handed_back");
                break Some(Instant::now());
            }
            ("error", _) => {
                m.count("error_frames");
                ctx.note(format!(
                    "storm customer error `{}`",
                    f.code.as_deref().unwrap_or("?")
                ));
            }
            _ => {}
        }
    };
    client::close(ws).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        assert_eq!(read_stamp(&stamped_reply(123456)), Some(123456));
        assert_eq!(read_stamp("no stamp"), None);
    }
}
