//! `steady` and `mixed`: widget customers asking the FAQ bot at a paced total rate.
//!
//! Latency is customer message -> the bot's reply to it. A conversation's actor handles one
//! customer message at a time and the bot answers in order, so replies are matched to
//! messages by order per connection, anchored on sequence numbers: the reply to the message
//! acknowledged with `seq` s is the first bot message with a seq above s (the greeting, on a
//! conversation's first message, comes in the same commit as the answer). Every seq a
//! connection sees is recorded, so a message delivered twice or a hole in a conversation
//! shows up as `doubled` or `lost`.
//!
//! In `mixed`, a share of conversations asks for a person at their second or third message;
//! agent sessions accept, reply (with a timestamp in the text, which the customer reads
//! back for the agent reply -> customer latency) and close, and the customer carries on
//! with the bot. Customers start a new visitor every `--conversation-length` messages, so
//! escalations keep coming for the whole run. The new visitor starts as soon as the old one
//! has sent its last message, on the old one's schedule; the old one reads the answers it is
//! still owed on the side, so a slow answer never costs the customer a slot of the rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{self, Frame, Read, Ws};
use crate::scenario::{Ctx, ESCALATION_TEXT, Outcome, Pacer, faq_question, open_many};
use crate::storm::{self, AgentMode, Rendezvous};

/// How long a `welcome` may take after `hello`.
const WELCOME_WAIT: Duration = Duration::from_secs(10);

pub async fn run(ctx: Arc<Ctx>, mixed: bool) -> anyhow::Result<Outcome> {
    let n = ctx.args.customers;
    let plan = Plan {
        share: if mixed { ctx.args.escalate_share } else { 0.0 },
        length: ctx
            .args
            .conversation_length
            .unwrap_or(if mixed { 6 } else { 8 }),
    };
    let rv = Arc::new(Rendezvous::new(ctx.metrics.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup_end = Instant::now() + Duration::from_secs(60);
    let run_end = setup_end
        + Duration::from_secs_f64(ctx.args.duration)
        + Duration::from_secs_f64(ctx.args.drain);
    let agents = if plan.share > 0.0 {
        let a = storm::start_agents(&ctx, &rv, AgentMode::ReplyClose, stop_rx, run_end).await;
        anyhow::ensure!(!a.is_empty(), "no agent session could be opened");
        a
    } else {
        Vec::new()
    };

    let url = ctx.widget_url();
    let firsts = open_many(&ctx, n, |i| Conv::open(&url, i)).await;
    let t0 = Instant::now() + Duration::from_millis(50);
    let phase_end = t0 + Duration::from_secs_f64(ctx.args.duration);
    let drain_end = phase_end + Duration::from_secs_f64(ctx.args.drain);
    ctx.window_start();
    let mut tasks = Vec::new();
    for (i, first) in firsts.into_iter().enumerate() {
        let ctx = ctx.clone();
        let rv = rv.clone();
        let times = Times {
            t0,
            phase_end,
            drain_end,
        };
        tasks.push(tokio::spawn(async move {
            customer(ctx, rv, i, n, first, plan, times).await;
        }));
    }
    for t in tasks {
        if t.await.is_err() {
            ctx.metrics.count("unexpected");
        }
    }
    ctx.window_end();
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = a.await;
    }
    rv.finish();

    let window = ctx.args.duration;
    let m = &ctx.metrics;
    let mut extra = BTreeMap::new();
    extra.insert(
        "customer messages sent/s".to_string(),
        m.get("sent_in_window") as f64 / window,
    );
    if mixed {
        extra.insert(
            "escalations offered/s".to_string(),
            m.get("offers") as f64 / window,
        );
        extra.insert(
            "agent replies/s".to_string(),
            m.get("agent_replies_acked") as f64 / window,
        );
        // Every reply an agent got acknowledged must reach its customer.
        let acked = m.get("agent_replies_acked");
        let seen = m.get("agent_messages");
        if acked > seen {
            m.add("lost", acked - seen);
        }
    }
    Ok(Outcome {
        throughput: m.get("answered_in_window") as f64 / window,
        offered: Some(m.get("sent_in_window") as f64 / window),
        unit: "bot replies/s",
        window_s: window,
        extra,
    })
}

#[derive(Clone, Copy)]
struct Plan {
    /// Share of conversations that ask for a person.
    share: f64,
    /// Customer messages per conversation; 0 = one conversation for the whole run.
    length: u32,
}

#[derive(Clone, Copy)]
struct Times {
    t0: Instant,
    /// Sending stops.
    phase_end: Instant,
    /// Waiting for answers stops.
    drain_end: Instant,
}

/// Who answers the customer right now, as the status frames say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Bot,
    /// Asked for a person; the `queued` status has not come yet.
    Escalating,
    Queued,
    Agent,
}

/// A message sent and not answered yet.
struct Pending {
    client_id: String,
    /// When it left.
    at: Instant,
    ack_seq: Option<u64>,
    /// Asks for a person: no bot reply comes; its latency ends at the agent's offer.
    escalation: bool,
}

/// The sequence numbers a connection has seen.
#[derive(Default)]
struct Seqs {
    bits: Vec<u64>,
    max: u64,
}

impl Seqs {
    /// False when the seq was already seen.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        let was = self.bits[word] & (1 << bit) != 0;
        self.bits[word] |= 1 << bit;
        self.max = self.max.max(seq);
        !was
    }

    fn contains(&self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// Seqs in `from..=max` never seen.
    fn missing_from(&self, from: u64) -> u64 {
        (from..=self.max).filter(|s| !self.contains(*s)).count() as u64
    }
}

/// One visitor's conversation over one connection.
struct Conv {
    ws: Ws,
    conversation_id: Option<String>,
    pending: VecDeque<Pending>,
    /// Bot messages not matched to a customer message yet: (seq, when received).
    bot_buf: VecDeque<(u64, Instant)>,
    seqs: Seqs,
    state: State,
    sent: u32,
    /// The message number (1-based) that asks for a person, if this conversation does.
    escalate_at: Option<u32>,
    /// Times the conversation came back to the bot from an agent (each leaves one
    /// internal note, a legitimate hole in the customer's seqs).
    handbacks: u64,
    /// When the connection was started.
    opened: Instant,
}

impl Conv {
    /// A new visitor: connect, `hello`, `welcome`.
    async fn open(url: &str, i: usize) -> anyhow::Result<Conv> {
        let opened = Instant::now();
        let mut ws = client::connect(url).await?;
        client::send(&mut ws, client::widget_hello(None, 0, &format!("Load {i}"))).await?;
        client::expect(&mut ws, "welcome", WELCOME_WAIT, |_| {}).await?;
        Ok(Conv {
            ws,
            conversation_id: None,
            pending: VecDeque::new(),
            bot_buf: VecDeque::new(),
            seqs: Seqs::default(),
            state: State::Bot,
            sent: 0,
            escalate_at: None,
            handbacks: 0,
            opened,
        })
    }

    fn on_frame(&mut self, ctx: &Ctx, rv: &Rendezvous, f: Frame, phase_end: Instant) {
        let m = &ctx.metrics;
        let now = Instant::now();
        match f.kind.as_str() {
            "ack" => self.on_ack(ctx, rv, f, phase_end),
            "message" => {
                let Some(seq) = f.seq else {
                    m.count("unexpected");
                    return;
                };
                if !self.seqs.insert(seq) {
                    m.count("doubled");
                    ctx.note(format!("seq {seq} delivered twice"));
                    return;
                }
                match f.role.as_deref() {
                    Some("bot") => {
                        self.bot_buf.push_back((seq, now));
                        self.settle(ctx, phase_end);
                    }
                    Some("agent") => {
                        m.count("agent_messages");
                        match f.text.as_deref().and_then(storm::read_stamp) {
                            Some(stamp) => {
                                m.latency("agent reply -> customer", ctx.since_micros(stamp))
                            }
                            None => m.count("unexpected"),
                        }
                    }
                    Some("system") => m.count("system_messages"),
                    _ => m.count("unexpected"),
                }
            }
            "status" => match f.state.as_deref() {
                Some("queued") => {
                    if self.state == State::Bot {
                        // The bot handed over on its own: not what this scenario asked for.
                        m.count("unexpected");
                        ctx.note("a conversation was escalated without asking for a person");
                    }
                    self.state = State::Queued;
                }
                Some("agent") => self.state = State::Agent,
                Some("bot") => {
                    if self.state != State::Bot {
                        self.state = State::Bot;
                        self.handbacks += 1;
                        m.count("handed_back");
                    }
                }
                _ => m.count("unexpected"),
            },
            "typing" | "pong" => {}
            "error" => {
                m.count("error_frames");
                ctx.note(format!(
                    "error frame `{}`: {}",
                    f.code.as_deref().unwrap_or("?"),
                    client::nested_text(&f.message).unwrap_or("")
                ));
            }
            _ => m.count("unexpected"),
        }
    }

    fn on_ack(&mut self, ctx: &Ctx, rv: &Rendezvous, f: Frame, phase_end: Instant) {
        let m = &ctx.metrics;
        // Frames are handled in order, so the ack is for the oldest message not acked yet.
        let Some(idx) = self.pending.iter().position(|p| p.ack_seq.is_none()) else {
            m.count("unexpected");
            return;
        };
        if f.client_id.as_deref() != Some(self.pending[idx].client_id.as_str()) {
            m.count("mismatched");
            ctx.note(format!(
                "ack for {:?}, expected {}",
                f.client_id, self.pending[idx].client_id
            ));
            return;
        }
        let Some(seq) = f.seq else {
            m.count("unexpected");
            return;
        };
        m.count("acked");
        if f.duplicate == Some(true) || !self.seqs.insert(seq) {
            m.count("doubled");
        }
        match (&self.conversation_id, f.conversation_id) {
            (None, Some(c)) => self.conversation_id = Some(c),
            (Some(a), Some(b)) if *a != b => m.count("mismatched"),
            _ => {}
        }
        if self.pending[idx].escalation {
            let p = self.pending.remove(idx);
            if let (Some(p), Some(c)) = (p, &self.conversation_id) {
                rv.sent(c, p.at);
            }
        } else {
            self.pending[idx].ack_seq = Some(seq);
        }
        self.settle(ctx, phase_end);
    }

    /// Matches buffered bot messages to acknowledged customer messages, oldest first.
    fn settle(&mut self, ctx: &Ctx, phase_end: Instant) {
        let m = &ctx.metrics;
        while let Some(front) = self.pending.front() {
            let Some(s) = front.ack_seq else { break };
            // Bot messages below this message's seq answered an earlier one (a greeting's
            // companion): they are extras, not answers.
            while self.bot_buf.front().is_some_and(|(q, _)| *q < s) {
                self.bot_buf.pop_front();
            }
            let Some(&(_, received)) = self.bot_buf.front() else {
                break;
            };
            m.latency("customer -> bot reply", received - front.at);
            m.count("answered");
            if received <= phase_end {
                m.count("answered_in_window");
            }
            self.pending.pop_front();
            self.bot_buf.pop_front();
        }
    }

    /// The connection broke: what it still owed is unanswered.
    fn broken(self, ctx: &Ctx) {
        ctx.metrics.add("unanswered", self.pending.len() as u64);
        ctx.metrics.count("disconnected");
    }

    /// The conversation is over for this client: check its seqs and close.
    async fn finish(self, ctx: &Ctx) {
        let m = &ctx.metrics;
        m.add("unanswered", self.pending.len() as u64);
        // Each handback leaves one internal note ("Closed by ..."): one seq never shown.
        let missing = self.seqs.missing_from(1);
        let lost = missing.saturating_sub(self.handbacks);
        if lost > 0 {
            m.add("lost", lost);
            ctx.note(format!(
                "conversation {:?}: {lost} seqs never seen",
                self.conversation_id
            ));
        }
        client::close(self.ws).await;
    }
}

/// How one conversation ended.
enum Ended {
    /// Its messages are all sent (answers may still be owed): start a new visitor.
    Finished,
    /// The run is over.
    Stop,
    /// The connection broke.
    Broken,
}

async fn customer(
    ctx: Arc<Ctx>,
    rv: Arc<Rendezvous>,
    i: usize,
    n: usize,
    first: Option<Conv>,
    plan: Plan,
    times: Times,
) {
    let mut pacer = Pacer::new(&ctx.args, i, n, times.t0);
    let mut next = first;
    let mut serial: u64 = 0;
    // Visitors that sent their last message and wait for its answers while this customer
    // goes on as a new visitor.
    let mut draining = tokio::task::JoinSet::new();
    loop {
        // Finished drains are reaped as the customer goes, so a long run does not keep
        // one finished task per visitor.
        while let Some(r) = draining.try_join_next() {
            count_panicked(&ctx, r);
        }
        if Instant::now() >= times.phase_end {
            if let Some(c) = next.take() {
                c.finish(&ctx).await;
            }
            break;
        }
        let mut conv = match next.take() {
            Some(c) => c,
            None => match Conv::open(&ctx.widget_url(), i).await {
                Ok(c) => {
                    ctx.metrics
                        .latency("new visitor -> welcome", c.opened.elapsed());
                    ctx.metrics.add("skipped_slots", pacer.skip_missed());
                    c
                }
                Err(e) => {
                    ctx.metrics.count("connect_failed");
                    ctx.note(format!("new visitor: {e:#}"));
                    tokio::time::sleep_until(
                        (Instant::now() + Duration::from_millis(200)).min(times.phase_end),
                    )
                    .await;
                    continue;
                }
            },
        };
        ctx.metrics.count("conversations");
        if plan.share > 0.0 && rand::rng().random::<f64>() < plan.share {
            let last = if plan.length == 0 {
                3
            } else {
                plan.length.min(3)
            };
            conv.escalate_at = Some(rand::rng().random_range(last.min(2)..=last));
        }
        match talk(
            &ctx,
            &rv,
            i,
            &mut conv,
            &mut pacer,
            &mut serial,
            plan,
            times,
        )
        .await
        {
            Ended::Finished => {
                // The customer's schedule does not wait for a slow answer or a closing
                // handshake: the next visitor starts now, and this one reads its answers
                // and closes on the side.
                let (ctx, rv) = (ctx.clone(), rv.clone());
                draining.spawn(async move { drain(&ctx, &rv, conv, times).await });
            }
            Ended::Stop => {
                conv.finish(&ctx).await;
                break;
            }
            Ended::Broken => conv.broken(&ctx),
        }
    }
    while let Some(r) = draining.join_next().await {
        count_panicked(&ctx, r);
    }
}

/// A drain task that panicked is counted as a problem of the run.
fn count_panicked(ctx: &Ctx, joined: Result<(), tokio::task::JoinError>) {
    if joined.is_err() {
        ctx.metrics.count("unexpected");
    }
}

/// Reads a finished visitor's last answers, then closes it.
async fn drain(ctx: &Ctx, rv: &Rendezvous, mut conv: Conv, times: Times) {
    while !conv.pending.is_empty() {
        tokio::select! {
            r = client::read(&mut conv.ws) => match r {
                Read::Frame(f) => conv.on_frame(ctx, rv, *f, times.phase_end),
                Read::Garbage => ctx.metrics.count("unexpected"),
                Read::Closed => return conv.broken(ctx),
            },
            _ = tokio::time::sleep_until(times.drain_end) => break,
        }
    }
    conv.finish(ctx).await;
}

/// Sends and reads on one conversation until it is done, the run is over or it breaks.
#[allow(clippy::too_many_arguments)]
async fn talk(
    ctx: &Ctx,
    rv: &Rendezvous,
    i: usize,
    conv: &mut Conv,
    pacer: &mut Pacer,
    serial: &mut u64,
    plan: Plan,
    times: Times,
) -> Ended {
    let m = &ctx.metrics;
    let mut blocked = false;
    loop {
        let now = Instant::now();
        if now >= times.drain_end {
            if conv.state != State::Bot {
                m.count("timed_out");
                ctx.note("a conversation was still with people when the run ended");
            }
            return Ended::Stop;
        }
        let length_done = plan.length > 0 && conv.sent >= plan.length;
        let sending_over = now >= times.phase_end || length_done;
        if now >= times.phase_end {
            if conv.pending.is_empty() && conv.state == State::Bot {
                return Ended::Stop;
            }
        } else if length_done && conv.state == State::Bot {
            // Answers still owed are read by `drain` while the next visitor starts.
            return Ended::Finished;
        }
        if conv.state != State::Bot {
            blocked = true;
        } else if blocked {
            blocked = false;
            m.add("skipped_slots", pacer.skip_missed());
        }
        let due = if !sending_over && conv.state == State::Bot {
            pacer.due(conv.pending.len())
        } else {
            None
        };
        let wake = if now < times.phase_end {
            times.phase_end
        } else {
            times.drain_end
        };
        tokio::select! {
            r = client::read(&mut conv.ws) => match r {
                Read::Frame(f) => conv.on_frame(ctx, rv, *f, times.phase_end),
                Read::Garbage => m.count("unexpected"),
                Read::Closed => return Ended::Broken,
            },
            _ = tokio::time::sleep_until(due.unwrap_or(wake)), if due.is_some() => {
                // Latency counts from the moment the frame leaves; how late that was against
                // the schedule (a starved generator) is reported on its own.
                let scheduled = pacer.sent();
                let at = Instant::now();
                m.latency("generator send lag", at.saturating_duration_since(scheduled));
                conv.sent += 1;
                let escalate = conv.escalate_at == Some(conv.sent);
                let text = if escalate {
                    ESCALATION_TEXT
                } else {
                    faq_question(i, conv.sent as usize - 1)
                };
                let client_id = format!("c{i}-{serial}");
                *serial += 1;
                if client::send(&mut conv.ws, client::widget_message(text, &client_id)).await.is_err() {
                    return Ended::Broken;
                }
                m.count("sent");
                if scheduled < times.phase_end {
                    m.count("sent_in_window");
                }
                conv.pending.push_back(Pending { client_id, at, ack_seq: None, escalation: escalate });
                if escalate {
                    conv.state = State::Escalating;
                    m.count("escalations_sent");
                }
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_find_doubles_and_holes() {
        let mut s = Seqs::default();
        assert!(s.insert(1));
        assert!(s.insert(2));
        assert!(!s.insert(2));
        assert!(s.insert(5));
        assert!(s.insert(130));
        assert_eq!(s.missing_from(1), 130 - 4);
        assert_eq!(s.max, 130);
    }
}
