//! One conversation: its transcript, its sentiment, and who owns it.
//!
//! Every handler that changes the conversation is atomic (`AtomicResponse`): the next
//! message waits in the mailbox until the current one is journaled and, for a customer
//! message, until the bot has answered it. That is what keeps a conversation in order. State
//! is changed in memory first and then committed; if the commit fails the actor reloads
//! itself from the store, which holds the truth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::fut::{self, LocalBoxActorFuture};
use actix::prelude::*;
use handoffd_channels::{
    ConversationStatus, DeliveryMode, DeliveryReceipt, InboundAck, InboundError, Outbound,
    OutboundPayload, WindowView, now_ms,
};
use uuid::Uuid;

use super::{
    AgentAction, AgentRequest, AssignAgent, ConversationError, CustomerGone, CustomerMessage,
    RecordDelivery, ReportTarget, Requeue, Services, TypingSignal,
};
use crate::agents::protocol::{ServerFrame, TransferTarget};
use crate::analysis::{MessageAnalysis, summary};
use crate::bot::{AfterHandoff, BotError, BotEvent, BotEventKind, BotReply, BotTurn};
use crate::config::HandoffMode;
use crate::delivery::{Deliver, Ephemeral};
use crate::escalation::{Decision, Tracker};
use crate::handoff::{Escalation, TranscriptEntry};
use crate::metrics::METRICS;
use crate::model::{
    BotTurnMeta, ConversationRecord, DeliveryReport, KnownEntity, MessageRecord, OutboxEntry,
    Owner, QueueEntry, Role, next_ticket,
};
use crate::router::{Enqueue, Released, SlaSignal};
use crate::store::Op;

mod follow_up;

/// The actor of one conversation.
pub struct ConversationActor {
    record: ConversationRecord,
    /// Every message, each shared with the journal ops and agent pushes that carry it.
    transcript: Vec<Arc<MessageRecord>>,
    /// Platform message id -> seq, so a message delivered twice is stored once.
    seen: HashMap<String, u64>,
    svc: Arc<Services>,
    /// What the escalation policy remembers between messages.
    tracker: Tracker,
    last_active: Instant,
    /// The record as a read of the store returns it once the commits already sent are
    /// applied, or `None` while it may never have been written. A commit leaves the record
    /// out when folding its messages into this gives `record` exactly, which is most
    /// customer and bot turns (see [`ConversationRecord::fold_message`]).
    persisted: Option<ConversationRecord>,
}

/// Work a handler did in memory and must now make durable, with what to do once it is.
#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    deliveries: Vec<OutboxEntry>,
    /// New messages an owning agent should see live.
    for_agent: Vec<Arc<MessageRecord>>,
    status: Option<ConversationStatus>,
    /// A customer message's ack, sent once this commit is durable and before anything is
    /// delivered: set when the customer's message waits for an in-process bot's answer so
    /// that both share one commit.
    ack: Option<(CustomerAck, InboundAck)>,
}

type CustomerAck = tokio::sync::oneshot::Sender<Result<InboundAck, InboundError>>;

impl ConversationActor {
    pub fn new(
        svc: Arc<Services>,
        record: ConversationRecord,
        transcript: Vec<MessageRecord>,
    ) -> Self {
        let seen = transcript
            .iter()
            .filter_map(|m| m.platform_message_id.clone().map(|p| (p, m.seq)))
            .collect();
        // A conversation with messages was written with its first commit; one without may
        // be new, so its first commit writes the record whatever it holds.
        let persisted = (!transcript.is_empty()).then(|| record.clone());
        ConversationActor {
            tracker: Tracker::rebuild(&transcript),
            persisted,
            record,
            transcript: transcript.into_iter().map(Arc::new).collect(),
            seen,
            svc,
            last_active: Instant::now(),
        }
    }

    fn id(&self) -> &str {
        &self.record.id
    }

    /// Puts back the state the store holds, after a failed commit.
    fn reload(&mut self) {
        let id = self.record.id.clone();
        match (
            self.svc.store.conversation(&id),
            self.svc.store.messages_after(&id, 0),
        ) {
            (Ok(Some(record)), Ok(transcript)) => {
                *self = ConversationActor::new(self.svc.clone(), record, transcript);
            }
            (Ok(None), Ok(_)) => {
                // Never written: start from nothing but keep identity.
                let fresh = ConversationRecord::new(
                    id,
                    self.record.channel,
                    self.record.key.clone(),
                    self.record.contact.clone(),
                    self.record.created_at_ms,
                );
                *self = ConversationActor::new(self.svc.clone(), fresh, Vec::new());
            }
            (r, m) => {
                tracing::error!(conversation = %id, record = ?r.err(), messages = ?m.err(), "cannot reload conversation");
            }
        }
    }

    /// Appends a message to the transcript and to the pending ops; customer-visible messages
    /// other than the customer's own also get an outbox entry.
    fn journal(&mut self, p: &mut Pending, mut msg: MessageRecord) -> u64 {
        let seq = self.record.last_seq + 1;
        msg.seq = seq;
        self.record.last_seq = seq;
        self.record.updated_at_ms = msg.at_ms;
        if matches!(self.record.owner, Owner::Agent { .. }) && msg.handoff.is_none() {
            msg.handoff = Some(self.record.handoffs);
        }
        // On a channel with a messaging window, a message the window does not allow is
        // kept in the transcript but not sent, and a note says why.
        let mut withheld = None;
        if msg.role.customer_visible()
            && msg.role != Role::Customer
            && msg.delivery_mode.is_standard()
            && let Some(rules) = self.svc.windows.get(&self.record.channel)
        {
            match rules.free_form_mode(
                msg.role == Role::Agent,
                self.record.last_customer_message_ms,
                now_ms(),
            ) {
                Ok(mode) => msg.delivery_mode = mode,
                Err(e) => withheld = Some(e.to_string()),
            }
        }
        if let Some(reason) = &withheld {
            // Marked failed so no later report (a Messenger read watermark) claims it arrived.
            msg.delivery = Some(Box::new(DeliveryReport {
                status: handoffd_channels::DeliveryStatus::Failed,
                at_ms: msg.at_ms,
                error: Some(format!("not sent: {reason}")),
            }));
        }
        // One copy of the message, shared by the transcript, the journal op and the agent.
        let msg = Arc::new(msg);
        p.ops.push(Op::AppendMessage {
            conversation_id: self.record.id.clone(),
            message: msg.clone(),
        });
        if msg.role.customer_visible() && msg.role != Role::Customer && withheld.is_none() {
            let entry = OutboxEntry {
                delivery_id: format!("{}:{seq}", self.record.id),
                conversation_id: self.record.id.clone(),
                channel: self.record.channel,
                conversation_key: self.record.key.clone(),
                payload: msg.payload(),
                attempts: 0,
                created_at_ms: msg.at_ms,
                stored: !self.record.channel.replays_from_journal(),
            };
            // A widget client replays from the journal on reconnect, so the message
            // itself (journaled above) is all that must be durable.
            if entry.stored {
                p.ops.push(Op::PutOutbox(Box::new(entry.clone())));
            }
            p.deliveries.push(entry);
            if let Some(copy) = self.follow_up_delivery(&msg) {
                p.ops.push(Op::PutOutbox(Box::new(copy.clone())));
                p.deliveries.push(copy);
            }
        }
        if let Some(pid) = &msg.platform_message_id {
            self.seen.insert(pid.clone(), seq);
        }
        p.for_agent.push(msg.clone());
        self.transcript.push(msg);
        if let Some(reason) = withheld {
            tracing::info!(conversation = %self.id(), seq, %reason, "message not sent: outside the messaging window");
            let mut note =
                Self::message(Role::Note, format!("Message {seq} was not sent: {reason}"));
            note.author = Some("handoffd".into());
            self.journal(p, note);
        }
        seq
    }

    /// The conversation's messaging window now, on channels that have one.
    fn window_view(&self) -> Option<WindowView> {
        self.svc
            .windows
            .get(&self.record.channel)
            .map(|w| w.view(self.record.last_customer_message_ms, now_ms()))
    }

    /// Tells the owning agent where the window stands.
    fn push_window(&self) {
        if let (Owner::Agent { agent_id, .. }, Some(window)) =
            (&self.record.owner, self.window_view())
        {
            self.svc.agents.push(
                agent_id,
                &ServerFrame::Window {
                    conversation_id: self.record.id.clone(),
                    window,
                },
            );
        }
    }

    fn message(role: Role, text: String) -> MessageRecord {
        MessageRecord {
            seq: 0,
            role,
            author: None,
            author_name: None,
            text,
            at_ms: now_ms(),
            platform_message_id: None,
            attachments: Vec::new(),
            sentiment: None,
            language: None,
            intents: Vec::new(),
            handoff: None,
            bot: None,
            automated: false,
            delivery_mode: DeliveryMode::Standard,
            delivery: None,
            quick_replies: Vec::new(),
            platform_at_ms: None,
        }
    }

    /// Commits what a handler prepared; on success delivers and notifies, on failure reloads.
    fn commit(
        &mut self,
        mut p: Pending,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        self.checkpoint_record(&mut p);
        let ops = std::mem::take(&mut p.ops);
        let store = self.svc.store.clone();
        async move { store.commit(ops).await }
            .into_actor(self)
            .map(move |res, act, _ctx| match res {
                Ok(()) => {
                    // The customer hears of its message before the bot's reply to it.
                    if let Some((ack, frame)) = p.ack.take() {
                        let _ = ack.send(Ok(frame));
                    }
                    act.after_commit(p);
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(conversation = %act.id(), error = %e, "commit failed");
                    if let Some((ack, _)) = p.ack.take() {
                        let _ = ack.send(Err(InboundError::Storage(e.to_string())));
                    }
                    act.reload();
                    Err(ConversationError::from(e))
                }
            })
            .boxed_local()
    }

    /// Adds the conversation record to the commit unless a read of the store will rebuild it
    /// from the record already stored and the commit's messages; either way `persisted`
    /// then holds what the store will return once the commit is applied (commits are
    /// applied in the order they are sent; a failed one reloads the actor from the store).
    fn checkpoint_record(&mut self, p: &mut Pending) {
        if let Some(mut folded) = self.persisted.take() {
            for op in &p.ops {
                if let Op::AppendMessage { message, .. } = op {
                    folded.fold_message(message);
                }
            }
            if folded == self.record {
                self.persisted = Some(folded);
                return;
            }
        }
        p.ops
            .push(Op::PutConversation(Box::new(self.record.clone())));
        self.persisted = Some(self.record.clone());
    }

    /// Hands a journaled delivery to its channel: at once on this thread when the channel
    /// can (the widget), through the outbox otherwise or when the hand-off leaves something
    /// to retry, record or report.
    fn deliver(&self, entry: OutboxEntry) {
        if !entry.stored
            && let Some(channel) = self.svc.immediate.get(&entry.channel)
        {
            match channel.deliver_now(&entry.conversation_key, &entry.payload) {
                DeliveryReceipt::Delivered {
                    platform_message_id: None,
                }
                | DeliveryReceipt::HeldForResume => return,
                _ => {}
            }
        }
        self.svc.outbox.do_send(Deliver(entry));
    }

    /// Sends what needs no journal (typing, status), on this thread when the channel can.
    fn send_ephemeral(&self, out: Outbound) {
        match self.svc.immediate.get(&out.channel) {
            Some(channel) => {
                channel.deliver_now(&out.conversation_key, &out.payload);
            }
            None => self.svc.outbox.do_send(Ephemeral(out)),
        }
    }

    fn after_commit(&mut self, p: Pending) {
        // Counted here, once durable: customer messages in, deliveries out (every
        // customer-visible message from the bot, an agent or handoffd has one).
        let channel = self.record.channel.as_str();
        for _ in p.for_agent.iter().filter(|m| m.role == Role::Customer) {
            METRICS
                .messages
                .inc(&[("channel", channel), ("direction", "in")]);
        }
        for _ in &p.deliveries {
            METRICS
                .messages
                .inc(&[("channel", channel), ("direction", "out")]);
        }
        for entry in p.deliveries {
            self.deliver(entry);
        }
        if let Some(status) = p.status {
            self.send_ephemeral(Outbound {
                delivery_id: format!("{}:status:{}", self.record.id, self.record.last_seq),
                channel: self.record.channel,
                conversation_key: self.record.key.clone(),
                payload: OutboundPayload::Status(status),
            });
        }
        if let Owner::Agent { agent_id, .. } = &self.record.owner {
            for m in p.for_agent {
                self.svc.agents.push(
                    agent_id,
                    &ServerFrame::Message {
                        conversation_id: self.record.id.clone(),
                        message: TranscriptEntry::from(m.as_ref()),
                    },
                );
            }
        }
    }

    /// The transcript as a bot or agent sees it: internal notes left out for bots.
    fn transcript_for_bot(&self) -> Vec<TranscriptEntry> {
        self.transcript
            .iter()
            .filter(|m| m.role != Role::Note)
            .map(|m| TranscriptEntry::from(m.as_ref()))
            .collect()
    }

    fn on_customer_message(&mut self, msg: CustomerMessage) -> LocalBoxActorFuture<Self, ()> {
        let CustomerMessage { inbound, ack } = msg;
        if let Some(seq) = self.seen.get(&inbound.platform_message_id) {
            let _ = ack.send(Ok(InboundAck {
                conversation_id: self.record.id.clone(),
                seq: *seq,
                duplicate: true,
            }));
            return fut::ready(()).boxed_local();
        }
        // The contact may have gained a name since the conversation started.
        if inbound.contact.name.is_some() && inbound.contact.name != self.record.contact.name {
            self.record.contact.name = inbound.contact.name.clone();
        }
        if inbound.contact.language.is_some() {
            self.record.contact.language = inbound.contact.language.clone();
        }
        // Windows run from the platform's time of the message (never from the future); a
        // late redelivery of an older message does not move it back.
        let now = now_ms();
        let sent = if inbound.sent_at_ms == 0 || inbound.sent_at_ms > now {
            now
        } else {
            inbound.sent_at_ms
        };
        self.record.last_customer_message_ms = Some(
            self.record
                .last_customer_message_ms
                .map_or(sent, |l| l.max(sent)),
        );
        let analysis = self.svc.analyzer.analyze(&inbound.text);
        let score = analysis.sentiment;
        // An auto-reply's wording says nothing about how the customer feels.
        if !inbound.automated {
            self.record.sentiment.update(score);
        }
        let mut p = Pending::default();
        let mut m = Self::message(Role::Customer, inbound.text.clone());
        m.platform_message_id = Some(inbound.platform_message_id.clone());
        m.attachments = inbound.attachments.clone();
        m.sentiment = Some(score);
        m.language = analysis.language.map(|l| l.as_str().to_string());
        m.intents = analysis.intents.iter().map(|i| i.name.clone()).collect();
        // The journal time is the `now` the window's time was judged against, and the
        // platform's time is kept only when it differs: the store then rebuilds
        // `last_customer_message_ms` from the message alone.
        m.at_ms = now;
        m.platform_at_ms = (sent != now).then_some(sent);
        m.automated = inbound.automated;
        let automated = inbound.automated;
        let seq = self.journal(&mut p, m);
        if let Some(lang) = analysis.language {
            self.record.language = Some(lang.as_str().to_string());
        }
        if !matches!(self.record.owner, Owner::Agent { .. }) && !automated {
            self.tracker.observe_customer(seq, &inbound.text);
        }
        self.take_follow_up_address(&mut p, &analysis.entities);
        for found in analysis.entities.iter().cloned() {
            if !self
                .record
                .entities
                .iter()
                .any(|e| e.kind == found.kind && e.value == found.value)
            {
                self.record
                    .entities
                    .push(KnownEntity::from_found(found, seq));
            }
        }
        let conversation_id = self.record.id.clone();
        // An in-process bot answers at once: its reply goes into the same commit as the
        // customer's message (one journal request per turn instead of two), and the ack
        // waits for that commit.
        if self.record.owner == Owner::Bot
            && !automated
            && self
                .svc
                .bots
                .for_channel(self.record.channel)
                .answers_in_process()
        {
            let frame = InboundAck {
                conversation_id,
                seq,
                duplicate: false,
            };
            p.ack = Some((ack, frame));
            return self.bot_step(seq, &analysis, Some(p));
        }
        self.commit(p)
            .then(move |res, act, _ctx| {
                match res {
                    Ok(()) => {
                        let _ = ack.send(Ok(InboundAck {
                            conversation_id,
                            seq,
                            duplicate: false,
                        }));
                    }
                    Err(e) => {
                        let _ = ack.send(Err(InboundError::Storage(e.to_string())));
                        return fut::ready(()).boxed_local();
                    }
                }
                act.push_window();
                match act.record.owner {
                    // An auto-reply or bounce is on record; answering it could start a loop.
                    Owner::Bot if automated => fut::ready(()).boxed_local(),
                    Owner::Bot => act.bot_step(seq, &analysis, None),
                    // The agent saw it live (after_commit); the router starts the
                    // next-response timer of the SLA.
                    Owner::Agent { .. } if !automated => {
                        act.svc
                            .router
                            .do_send(SlaSignal::CustomerWrote(act.record.id.clone()));
                        fut::ready(()).boxed_local()
                    }
                    // While queued the bot stays silent.
                    Owner::Queued { .. } | Owner::Agent { .. } => fut::ready(()).boxed_local(),
                }
            })
            .boxed_local()
    }

    /// The bot owns the conversation: check the customer-side triggers, else ask the bot.
    /// `carried` is the customer's turn not yet committed (in-process bots): it joins the
    /// commit of the escalation or of the bot's reply.
    fn bot_step(
        &mut self,
        seq: u64,
        analysis: &MessageAnalysis,
        carried: Option<Pending>,
    ) -> LocalBoxActorFuture<Self, ()> {
        let text = self
            .transcript
            .last()
            .map(|m| m.text.clone())
            .unwrap_or_default();
        if let Some(decision) = self.svc.policy.on_customer_message(
            seq,
            &text,
            analysis,
            &self.record.sentiment,
            &self.tracker,
        ) {
            return self
                .escalate(decision, carried)
                .map(|_, _, _| ())
                .boxed_local();
        }
        let Some(message) = self
            .transcript
            .last()
            .map(|m| TranscriptEntry::from(m.as_ref()))
        else {
            return match carried {
                Some(p) => self.commit(p).map(|_, _, _| ()).boxed_local(),
                None => fut::ready(()).boxed_local(),
            };
        };
        let bot = self.svc.bots.for_channel(self.record.channel);
        // What the bot's transcript would hold, counted without building it.
        let (mut transcript_len, mut agent_messages_seen, mut customer_messages) = (0, 0, 0);
        for m in self.transcript.iter().filter(|m| m.role != Role::Note) {
            transcript_len += 1;
            agent_messages_seen += usize::from(m.role == Role::Agent);
            customer_messages += usize::from(m.role == Role::Customer);
        }
        let transcript = if bot.wants_transcript() {
            self.transcript_for_bot()
        } else {
            Vec::new()
        };
        let turn = BotTurn {
            conversation_id: self.record.id.clone(),
            channel: self.record.channel,
            contact: self.record.contact.clone(),
            message,
            transcript,
            resumed_after_handoff: self.record.bot_resuming,
            language: self.record.language.clone(),
            customer_messages,
        };
        let meta = BotTurnMeta {
            confidence: None,
            intent: None,
            transcript_len,
            agent_messages_seen,
            resumed_after_handoff: turn.resumed_after_handoff,
            failure: None,
        };
        let timeout = self.svc.settings.bot_timeout;
        async move {
            match tokio::time::timeout(timeout, bot.answer(turn)).await {
                Ok(r) => r,
                Err(_) => Err(BotError::Timeout(timeout.as_millis() as u64)),
            }
        }
        .into_actor(self)
        .then(move |res, act, _ctx| act.on_bot_reply(seq, res, meta, carried).map(|_, _, _| ()))
        .boxed_local()
    }

    fn on_bot_reply(
        &mut self,
        seq: u64,
        res: Result<BotReply, BotError>,
        mut meta: BotTurnMeta,
        carried: Option<Pending>,
    ) -> LocalBoxActorFuture<Self, Result<Vec<u64>, ConversationError>> {
        // The bot may have been slow: if someone took the conversation meanwhile, it is
        // no longer the bot's to answer.
        if self.record.owner != Owner::Bot {
            return match carried {
                Some(p) => self
                    .commit(p)
                    .map(|_, _, _| Err(ConversationError::NotOwner))
                    .boxed_local(),
                None => fut::ready(Err(ConversationError::NotOwner)).boxed_local(),
            };
        }
        let (mut reply, failure) = match res {
            Ok(r) => (r, None),
            Err(e) => {
                tracing::warn!(conversation = %self.id(), error = %e, "bot gave no answer");
                (BotReply::default(), Some(e.to_string()))
            }
        };
        meta.confidence = reply.confidence;
        meta.intent = reply.intent.clone();
        meta.failure = failure.clone();
        let decision = match &failure {
            // The bot will answer later through the API: nothing to judge yet.
            None if reply.deferred && reply.messages.is_empty() => None,
            None => {
                self.tracker.observe_bot(&reply.messages, reply.confidence);
                self.svc.policy.on_bot_reply(seq, &reply, &self.tracker)
            }
            Some(error) => {
                self.tracker.observe_bot_failure();
                self.svc
                    .policy
                    .on_bot_failure(seq, error, &self.tracker, now_ms())
            }
        };
        self.record.bot_resuming = false;
        let mut p = carried.unwrap_or_default();
        let bot_name = self
            .svc
            .bots
            .for_channel(self.record.channel)
            .name()
            .to_string();
        // Low confidence: the fallback would only add noise before the handoff message.
        let send_messages = match &decision {
            None => true,
            Some(d) => d.triggers.iter().any(|t| t.trigger == "bot_handoff"),
        };
        let mut journaled = false;
        let mut seqs = Vec::new();
        if send_messages {
            let last = reply.messages.len().saturating_sub(1);
            // Judged above; the texts move into the journal.
            let messages = std::mem::take(&mut reply.messages);
            for (i, text) in messages.into_iter().enumerate() {
                let mut m = Self::message(Role::Bot, text);
                m.author = Some(bot_name.clone());
                m.bot = Some(Box::new(meta.clone()));
                // Quick replies go with the last message: as buttons where the channel
                // shows them, else listed under the text so the customer still sees them.
                if i == last && !reply.quick_replies.is_empty() {
                    if self.record.channel.shows_quick_replies() {
                        m.quick_replies = reply.quick_replies.clone();
                    } else {
                        m.text = format!("{}\n{}", m.text, reply.quick_replies.join(" | "));
                    }
                }
                seqs.push(self.journal(&mut p, m));
                journaled = true;
            }
        }
        if failure.is_some() && decision.is_none() {
            // The customer is not left without an answer.
            let text = self.svc.settings.bot_failure_reply.clone();
            self.journal(&mut p, Self::message(Role::System, text));
        }
        if !journaled {
            // Keep the bot's turn on record (confidence history) even when nothing is sent:
            // attach the meta to the customer's message it answered.
            if let Some(last) = self.transcript.iter_mut().rev().find(|m| m.seq == seq) {
                Arc::make_mut(last).bot = Some(Box::new(meta.clone()));
                p.ops.push(Op::AppendMessage {
                    conversation_id: self.record.id.clone(),
                    message: last.clone(),
                });
            }
        }
        match decision {
            None => self.commit(p).map(|r, _, _| r.map(|_| seqs)).boxed_local(),
            Some(d) => self
                .escalate(d, Some(p))
                .map(|r, _, _| r.map(|_| seqs))
                .boxed_local(),
        }
    }

    /// A bot posts messages on its own (an asynchronous reply through the API): taken only
    /// while the bot owns the conversation, judged like a synchronous reply.
    fn on_bot_post(
        &mut self,
        msg: super::BotPost,
    ) -> LocalBoxActorFuture<Self, Result<Vec<u64>, ConversationError>> {
        if self.record.owner != Owner::Bot
            || self.svc.bots.for_channel(self.record.channel).name() != msg.bot
        {
            return fut::ready(Err(ConversationError::NotOwner)).boxed_local();
        }
        // It answers the customer's latest message.
        let seq = self
            .transcript
            .iter()
            .rev()
            .find(|m| m.role == Role::Customer)
            .map_or(0, |m| m.seq);
        let meta = BotTurnMeta {
            confidence: None,
            intent: None,
            transcript_len: self.transcript.len(),
            agent_messages_seen: self
                .transcript
                .iter()
                .filter(|m| m.role == Role::Agent)
                .count(),
            resumed_after_handoff: self.record.bot_resuming,
            failure: None,
        };
        self.on_bot_reply(seq, Ok(msg.reply), meta, None)
    }

    /// Tells the conversation's bot what became of a handoff. With `after_handoff =
    /// "resume"` the bot's answer to `handoff.completed` is sent to the customer, if the bot
    /// still owns the conversation by then.
    fn tell_bot(
        &mut self,
        kind: BotEventKind,
        agent_name: Option<String>,
        reason: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let bot = self.svc.bots.for_channel(self.record.channel);
        let resume = bot.after_handoff() == AfterHandoff::Resume;
        let mut event = BotEvent {
            kind,
            conversation_id: self.record.id.clone(),
            channel: self.record.channel,
            at_ms: now_ms(),
            agent_name,
            reason,
            agent_transcript: Vec::new(),
            human_stretch_ended_at_seq: None,
            resume: None,
        };
        if kind == BotEventKind::Completed {
            let stretch = self.record.handoffs;
            event.agent_transcript = self
                .transcript
                .iter()
                .filter(|m| m.handoff == Some(stretch) && m.role != Role::Note)
                .map(|m| TranscriptEntry::from(m.as_ref()))
                .collect();
            event.human_stretch_ended_at_seq = Some(self.record.last_seq);
            event.resume = Some(resume);
        }
        let timeout = self.svc.settings.bot_timeout;
        async move {
            match tokio::time::timeout(timeout, bot.event(event)).await {
                Ok(r) => r,
                Err(_) => Err(BotError::Timeout(timeout.as_millis() as u64)),
            }
        }
        .into_actor(self)
        .then(move |res, act, _| {
            match res {
                Ok(reply)
                    if kind == BotEventKind::Completed
                        && resume
                        && !reply.messages.is_empty()
                        && act.record.owner == Owner::Bot =>
                {
                    let seq = act.record.last_seq;
                    let meta = BotTurnMeta {
                        confidence: reply.confidence,
                        intent: reply.intent.clone(),
                        transcript_len: act.transcript.len(),
                        agent_messages_seen: 0,
                        resumed_after_handoff: true,
                        failure: None,
                    };
                    return act
                        .on_bot_reply(seq, Ok(reply), meta, None)
                        .map(|_, _, _| ())
                        .boxed_local();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(conversation = %act.id(), event = kind.as_str(), error = %e, "the bot was not told")
                }
            }
            fut::ready(()).boxed_local()
        })
        .spawn(ctx);
    }

    /// Hands the conversation to people: queued for the decision's team, the customer told
    /// (warm) or not (cold), the router given the queue entry once it is durable.
    fn escalate(
        &mut self,
        decision: Decision,
        pending: Option<Pending>,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let mut p = pending.unwrap_or_default();
        // The enqueue time comes from the ticket, so queue order (by ticket) and enqueue
        // times agree even when two conversations escalate in the same millisecond on
        // different threads.
        let ticket = next_ticket();
        let now = ticket / 1000;
        let route = self.route(&decision);
        let decision = Decision {
            team: route.team.clone(),
            priority: route.priority,
            ..decision
        };
        self.record.handoffs += 1;
        let intent = self
            .transcript
            .iter()
            .rev()
            .find_map(|m| m.bot.as_ref().and_then(|b| b.intent.clone()))
            .or_else(|| {
                self.transcript
                    .iter()
                    .rev()
                    .find_map(|m| m.intents.first().cloned())
            });
        let summary = summary::summarize(
            &self.transcript,
            &self.record.entities,
            intent.as_deref(),
            &decision.triggers,
        );
        self.record.escalation = Some(Escalation {
            triggers: decision.triggers.clone(),
            priority: decision.priority,
            team: decision.team.clone(),
            escalated_at_ms: now,
            intent,
            confidence_history: self.tracker.confidence_history().to_vec(),
            summary,
        });
        self.record.owner = Owner::Queued {
            team: decision.team.clone(),
            since_ms: now,
        };
        let entry = QueueEntry {
            conversation_id: self.record.id.clone(),
            team: decision.team.clone(),
            priority: decision.priority,
            enqueued_at_ms: now,
            ticket,
            only_agent: None,
            // A returning customer goes first to the agent who helped them last.
            preferred_agent: self.record.last_agent.clone(),
            skills: route.skills,
            language: self.record.language.clone(),
            channel: Some(self.record.channel),
        };
        p.ops.push(Op::PutQueueEntry(entry.clone()));
        if self.svc.settings.mode == HandoffMode::Warm {
            let text = self.svc.settings.warm_message.clone();
            self.journal(&mut p, Self::message(Role::System, text));
        }
        p.status = Some(ConversationStatus::Queued {
            position: None,
            eta_secs: None,
        });
        tracing::info!(conversation = %self.id(), team = %decision.team, triggers = ?decision.triggers.iter().map(|t| &t.trigger).collect::<Vec<_>>(), "escalated");
        let triggers: Vec<String> = decision
            .triggers
            .iter()
            .map(|t| t.trigger.clone())
            .collect();
        self.commit(p)
            .map(move |res, act, _ctx| {
                if res.is_ok() {
                    for t in &triggers {
                        METRICS.handoffs.inc(&[("trigger", t)]);
                    }
                    act.svc.router.do_send(Enqueue(entry));
                }
                res
            })
            .boxed_local()
    }

    /// Nobody can take the conversation: back to the bot, the customer told so, the bot told
    /// `handoff.failed`. Only a waiting conversation goes back (an agent may have just
    /// taken it).
    fn on_return_to_bot(
        &mut self,
        msg: super::ReturnToBot,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let Owner::Queued { .. } = &self.record.owner else {
            return fut::ready(Err(ConversationError::NotQueued)).boxed_local();
        };
        let mut p = Pending::default();
        p.ops.push(Op::DeleteQueueEntry(self.record.id.clone()));
        self.record.owner = Owner::Bot;
        self.record.bot_resuming = true;
        // The same loop guard as a handback: a failing bot does not bounce the customer
        // straight back into a queue nobody serves.
        self.tracker.handback(now_ms());
        let mut note = Self::message(Role::Note, format!("Returned to the bot: {}", msg.reason));
        note.author = Some("handoffd".into());
        self.journal(&mut p, note);
        if !msg.message.trim().is_empty() {
            self.journal(&mut p, Self::message(Role::System, msg.message));
        }
        p.for_agent.clear();
        p.status = Some(ConversationStatus::Bot);
        let reason = msg.reason;
        self.commit(p)
            .map(move |res, act, ctx| {
                if res.is_ok() {
                    tracing::info!(conversation = %act.id(), %reason, "handed back to the bot: no agent");
                    act.tell_bot(BotEventKind::Failed, None, Some(reason), ctx);
                }
                res
            })
            .boxed_local()
    }

    /// The router changed a waiting conversation's queue entry (an SLA breach raised its
    /// priority or moved it to another team): recorded with a note for the agents. Refused
    /// unless the conversation is still waiting.
    fn on_update_queued(
        &mut self,
        msg: super::UpdateQueued,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let Owner::Queued { since_ms, .. } = &self.record.owner else {
            return fut::ready(Err(ConversationError::NotQueued)).boxed_local();
        };
        let since_ms = *since_ms;
        let entry = msg.entry;
        if let Some(e) = self.record.escalation.as_mut() {
            e.team = entry.team.clone();
            e.priority = entry.priority;
        }
        self.record.owner = Owner::Queued {
            team: entry.team.clone(),
            since_ms,
        };
        let mut p = Pending::default();
        p.ops.push(Op::PutQueueEntry(entry));
        let mut note = Self::message(Role::Note, msg.note);
        note.author = Some("handoffd".into());
        self.journal(&mut p, note);
        self.commit(p).boxed_local()
    }

    /// Tells the customer something on the router's behalf (the team is closed, say).
    fn on_post_notice(
        &mut self,
        msg: super::PostNotice,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let mut p = Pending::default();
        self.journal(&mut p, Self::message(Role::System, msg.text));
        self.commit(p).boxed_local()
    }

    /// Journals and commits an agent's answer to the customer; once it is durable the router
    /// hears of it for the SLA timers. Answers with its seq.
    fn commit_agent_answer(
        &mut self,
        mut p: Pending,
        m: MessageRecord,
    ) -> LocalBoxActorFuture<Self, Result<Option<u64>, ConversationError>> {
        let seq = self.journal(&mut p, m);
        self.commit(p)
            .map(move |r, act, _| {
                if r.is_ok() {
                    act.svc
                        .router
                        .do_send(SlaSignal::AgentReplied(act.record.id.clone()));
                }
                r.map(|_| Some(seq))
            })
            .boxed_local()
    }

    /// Applies the routing rules to the policy's decision.
    fn route(&self, decision: &Decision) -> crate::router::rules::Route {
        let mut intents: Vec<String> = self
            .transcript
            .iter()
            .flat_map(|m| {
                m.intents
                    .iter()
                    .cloned()
                    .chain(m.bot.as_ref().and_then(|b| b.intent.clone()))
            })
            .collect();
        intents.sort();
        intents.dedup();
        let triggers: Vec<String> = decision
            .triggers
            .iter()
            .map(|t| t.trigger.clone())
            .collect();
        let entity_kinds: Vec<String> = self
            .record
            .entities
            .iter()
            .map(|e| e.kind.clone())
            .collect();
        let ctx = crate::router::rules::RouteContext {
            intents: &intents,
            triggers: &triggers,
            language: self.record.language.as_deref(),
            channel: self.record.channel.as_str(),
            entity_kinds: &entity_kinds,
            attributes: Some(&self.record.contact.attributes),
        };
        crate::router::rules::route(
            &self.svc.settings.routing_rules,
            &ctx,
            crate::router::rules::Route {
                team: decision.team.clone(),
                skills: Vec::new(),
                priority: decision.priority,
            },
            decision.team == self.svc.settings.default_team,
        )
    }

    fn on_assign(
        &mut self,
        msg: AssignAgent,
    ) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        let Owner::Queued { .. } = &self.record.owner else {
            return fut::ready(Err(ConversationError::NotQueued)).boxed_local();
        };
        let a = msg.assignment;
        self.record.owner = Owner::Agent {
            agent_id: a.agent_id.clone(),
            team: a.team.clone(),
            since_ms: a.assigned_at_ms,
        };
        let mut p = Pending::default();
        p.ops.push(Op::DeleteQueueEntry(self.record.id.clone()));
        p.ops.push(Op::PutAssignment(Box::new(a.clone())));
        if self.svc.settings.mode == HandoffMode::Warm {
            let text = self
                .svc
                .settings
                .agent_joined_message
                .replace("{agent}", &msg.agent_name);
            self.journal(&mut p, Self::message(Role::System, text));
        }
        // The agent gets the whole package in the `assigned` frame; no need to repeat the
        // join notice as a live message.
        p.for_agent.clear();
        let agent_name = msg.agent_name.clone();
        p.status = Some(ConversationStatus::Agent {
            agent_name: msg.agent_name,
        });
        let waited = a.assigned_at_ms.saturating_sub(a.queued.enqueued_at_ms);
        self.commit(p)
            .map(move |res, act, ctx| {
                if res.is_ok() {
                    METRICS.time_to_assignment.observe(waited as f64 / 1000.0);
                    act.push_window();
                    act.tell_bot(BotEventKind::Accepted, Some(agent_name), None, ctx);
                }
                res
            })
            .boxed_local()
    }

    fn on_requeue(
        &mut self,
        msg: Requeue,
    ) -> LocalBoxActorFuture<Self, Result<QueueEntry, ConversationError>> {
        match &self.record.owner {
            Owner::Agent { agent_id, .. } if *agent_id == msg.agent_id => {}
            _ => return fut::ready(Err(ConversationError::NotOwner)).boxed_local(),
        }
        let assignment = match self.svc.store.assignments() {
            Ok(all) => all
                .into_iter()
                .find(|a| a.conversation_id == self.record.id),
            Err(e) => return fut::ready(Err(e.into())).boxed_local(),
        };
        let now = now_ms();
        // Back to its original place: same enqueue time and ticket.
        let mut entry = match assignment {
            // A transfer to a named agent does not bind the re-queued conversation to them.
            Some(a) => QueueEntry {
                only_agent: None,
                ..a.queued
            },
            None => QueueEntry {
                conversation_id: self.record.id.clone(),
                team: self.record.owner.team().unwrap_or_default().to_string(),
                priority: self.record.escalation.as_ref().map_or(1, |e| e.priority),
                enqueued_at_ms: now,
                ticket: next_ticket(),
                only_agent: None,
                preferred_agent: None,
                skills: Vec::new(),
                language: self.record.language.clone(),
                channel: Some(self.record.channel),
            },
        };
        if let Some(priority) = msg.priority {
            entry.priority = priority;
            if let Some(e) = self.record.escalation.as_mut() {
                e.priority = priority;
            }
        }
        self.record.owner = Owner::Queued {
            team: entry.team.clone(),
            since_ms: entry.enqueued_at_ms,
        };
        let mut p = Pending::default();
        p.ops.push(Op::DeleteAssignment(self.record.id.clone()));
        p.ops.push(Op::PutQueueEntry(entry.clone()));
        let mut note = Self::message(Role::Note, format!("Returned to the queue: {}", msg.reason));
        note.author = Some("handoffd".into());
        self.journal(&mut p, note);
        p.status = Some(ConversationStatus::Queued {
            position: None,
            eta_secs: None,
        });
        self.commit(p)
            .map(move |res, _, _| res.map(|_| entry))
            .boxed_local()
    }

    fn on_agent_request(
        &mut self,
        req: AgentRequest,
    ) -> LocalBoxActorFuture<Self, Result<Option<u64>, ConversationError>> {
        let (team, handoff) = match &self.record.owner {
            Owner::Agent { agent_id, team, .. } if *agent_id == req.agent_id => {
                (team.clone(), self.record.handoffs)
            }
            _ => return fut::ready(Err(ConversationError::NotOwner)).boxed_local(),
        };
        let mut p = Pending::default();
        match req.action {
            AgentAction::Reply { text, client_id } => {
                let mut m = Self::message(Role::Agent, text);
                m.author = Some(req.agent_id.clone());
                m.author_name = Some(req.agent_name.clone());
                m.platform_message_id = client_id.map(|c| format!("a:{}:{c}", req.agent_id));
                if let Some(pid) = &m.platform_message_id
                    && let Some(seq) = self.seen.get(pid)
                {
                    return fut::ready(Ok(Some(*seq))).boxed_local();
                }
                // Refused here, with the reason, rather than failing later at the platform.
                if let Some(rules) = self.svc.windows.get(&self.record.channel)
                    && let Err(e) =
                        rules.free_form_mode(true, self.record.last_customer_message_ms, now_ms())
                {
                    return fut::ready(Err(ConversationError::WindowClosed(e.to_string())))
                        .boxed_local();
                }
                m.handoff = Some(handoff);
                let first_reply = !self
                    .transcript
                    .iter()
                    .any(|t| t.role == Role::Agent && t.handoff == Some(handoff));
                if first_reply && let Owner::Agent { since_ms, .. } = &self.record.owner {
                    METRICS
                        .time_to_first_response
                        .observe(now_ms().saturating_sub(*since_ms) as f64 / 1000.0);
                }
                self.commit_agent_answer(p, m)
            }
            AgentAction::Template {
                name,
                params,
                client_id,
            } => {
                let Some(spec) = self
                    .svc
                    .windows
                    .get(&self.record.channel)
                    .and_then(|w| w.template(&name))
                else {
                    return fut::ready(Err(ConversationError::Invalid(format!(
                        "no template `{name}` is configured for {}",
                        self.record.channel
                    ))))
                    .boxed_local();
                };
                let text = match spec.render(&params) {
                    Ok(t) => t,
                    Err(e) => return fut::ready(Err(ConversationError::Invalid(e))).boxed_local(),
                };
                let mut m = Self::message(Role::Agent, text);
                m.author = Some(req.agent_id.clone());
                m.author_name = Some(req.agent_name.clone());
                m.platform_message_id = client_id.map(|c| format!("a:{}:{c}", req.agent_id));
                if let Some(pid) = &m.platform_message_id
                    && let Some(seq) = self.seen.get(pid)
                {
                    return fut::ready(Ok(Some(*seq))).boxed_local();
                }
                m.delivery_mode = DeliveryMode::Template {
                    name: spec.name.clone(),
                    language: spec.language.clone(),
                    params,
                };
                m.handoff = Some(handoff);
                self.commit_agent_answer(p, m)
            }
            AgentAction::Note { text } => {
                let mut m = Self::message(Role::Note, text);
                m.author = Some(req.agent_id.clone());
                m.author_name = Some(req.agent_name.clone());
                let seq = self.journal(&mut p, m);
                self.commit(p)
                    .map(move |r, _, _| r.map(|_| Some(seq)))
                    .boxed_local()
            }
            AgentAction::Close => {
                let mut m = Self::message(Role::Note, format!("Closed by {}", req.agent_name));
                m.author = Some(req.agent_id.clone());
                self.journal(&mut p, m);
                self.record.owner = Owner::Bot;
                self.record.bot_resuming = true;
                self.end_follow_up();
                // Remembered for returning customers (sticky routing).
                self.record.last_agent = Some(req.agent_id.clone());
                self.tracker.handback(now_ms());
                p.ops.push(Op::DeleteAssignment(self.record.id.clone()));
                if self.svc.settings.mode == HandoffMode::Warm {
                    let text = self.svc.settings.handback_message.clone();
                    self.journal(&mut p, Self::message(Role::System, text));
                }
                p.for_agent.clear();
                p.status = Some(ConversationStatus::Bot);
                let release = Released {
                    agent_id: req.agent_id,
                    conversation_id: self.record.id.clone(),
                    closed: true,
                };
                let agent_name = req.agent_name.clone();
                self.commit(p)
                    .map(move |r, act, ctx| {
                        if r.is_ok() {
                            act.svc.router.do_send(release);
                            act.tell_bot(BotEventKind::Completed, Some(agent_name), None, ctx);
                        }
                        r.map(|_| None)
                    })
                    .boxed_local()
            }
            AgentAction::Transfer { to, note } => {
                let (to_team, only_agent, label) = match &to {
                    TransferTarget::Team(t) => (t.clone(), None, format!("team {t}")),
                    TransferTarget::Agent(a) => {
                        (team.clone(), Some(a.clone()), format!("agent {a}"))
                    }
                };
                let mut text = format!("Transferred by {} to {label}", req.agent_name);
                if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
                    text.push_str(&format!(": {n}"));
                }
                let mut m = Self::message(Role::Note, text);
                m.author = Some(req.agent_id.clone());
                self.journal(&mut p, m);
                let ticket = next_ticket();
                let now = ticket / 1000;
                let entry = QueueEntry {
                    conversation_id: self.record.id.clone(),
                    team: to_team.clone(),
                    priority: self.record.escalation.as_ref().map_or(1, |e| e.priority),
                    enqueued_at_ms: now,
                    ticket,
                    only_agent,
                    preferred_agent: None,
                    // A new team: its own agents' skills apply, not the old route's.
                    skills: Vec::new(),
                    language: self.record.language.clone(),
                    channel: Some(self.record.channel),
                };
                if let Some(e) = self.record.escalation.as_mut() {
                    e.team = to_team.clone();
                }
                self.record.owner = Owner::Queued {
                    team: to_team,
                    since_ms: now,
                };
                p.ops.push(Op::DeleteAssignment(self.record.id.clone()));
                p.ops.push(Op::PutQueueEntry(entry.clone()));
                p.for_agent.clear();
                p.status = Some(ConversationStatus::Queued {
                    position: None,
                    eta_secs: None,
                });
                let release = Released {
                    agent_id: req.agent_id,
                    conversation_id: self.record.id.clone(),
                    closed: false,
                };
                self.commit(p)
                    .map(move |r, act, _| {
                        if r.is_ok() {
                            act.svc.router.do_send(release);
                            act.svc.router.do_send(Enqueue(entry));
                        }
                        r.map(|_| None)
                    })
                    .boxed_local()
            }
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A customer message journaled (and acknowledged) whose bot turn was cut short by a
        // crash or shutdown still gets its answer.
        if self.record.owner == Owner::Bot
            && let Some(last) = self.transcript.last()
            && last.role == Role::Customer
            && last.bot.is_none()
            && !last.automated
        {
            ctx.notify(ResumeBotTurn { seq: last.seq });
        }
        self.watch_idle(ctx, self.svc.settings.idle_timeout);
    }
}

impl ConversationActor {
    /// Wakes once `after` has passed to see whether the conversation has been idle for the
    /// whole timeout, and stops it if so; otherwise sleeps again until the timeout would
    /// end. One timer per actor that fires about once per timeout, not a periodic check:
    /// hundreds of thousands of live conversations would otherwise wake many times each.
    fn watch_idle(&mut self, ctx: &mut Context<Self>, after: std::time::Duration) {
        ctx.run_later(after, |act, ctx| {
            let idle = act.svc.settings.idle_timeout;
            // A queued conversation stays awake: it gets queue positions and is offered soon.
            if matches!(act.record.owner, Owner::Queued { .. }) {
                act.watch_idle(ctx, idle);
                return;
            }
            let quiet = act.last_active.elapsed();
            if quiet < idle {
                act.watch_idle(ctx, idle - quiet);
                return;
            }
            act.retire(ctx, "idle", true);
        });
    }

    /// Stops the actor; its state stays in the store and comes back with the next message.
    /// When the directory refuses (something was routed here meanwhile) and `keep_watching`,
    /// the idle timer starts again.
    fn retire(&mut self, ctx: &mut Context<Self>, why: &'static str, keep_watching: bool) {
        // Ask the directory to forget us first, so nothing new is routed here; messages
        // already in the mailbox are dropped on stop and their senders retry, reviving the
        // conversation from the store.
        let retire = self.svc.directory.send(super::directory::Retire {
            conversation_id: self.record.id.clone(),
            channel: self.record.channel,
            key: self.record.key.clone(),
            addr: ctx.address(),
        });
        ctx.wait(retire.into_actor(self).map(move |res, act, ctx| {
            if matches!(res, Ok(true)) {
                tracing::debug!(conversation = %act.id(), why, "stopping");
                ctx.stop();
            } else if keep_watching {
                act.watch_idle(ctx, act.svc.settings.idle_timeout);
            }
        }));
    }
}

impl Handler<CustomerGone> for ConversationActor {
    type Result = ();

    /// The customer closed their last connection: unless anything happens meanwhile, a
    /// conversation the bot owns stops after `conversations.stop_after_leaving_secs`
    /// rather than the idle timeout. One with a person (queued, offered, assigned) keeps
    /// the idle timeout: the agent may still write, and the router counts on it.
    fn handle(&mut self, _msg: CustomerGone, ctx: &mut Self::Context) {
        let Some(after) = self.svc.settings.stop_after_leaving else {
            return;
        };
        if after >= self.svc.settings.idle_timeout {
            return;
        }
        let left = Instant::now();
        ctx.run_later(after, move |act, ctx| {
            if act.last_active > left || !matches!(act.record.owner, Owner::Bot) {
                return;
            }
            // The idle timer keeps running; a refusal leaves it to that.
            act.retire(ctx, "customer left", false);
        });
    }
}

impl Handler<CustomerMessage> for ConversationActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: CustomerMessage, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_customer_message(msg))
    }
}

impl Handler<super::BotPost> for ConversationActor {
    type Result = AtomicResponse<Self, Result<Vec<u64>, ConversationError>>;

    fn handle(&mut self, msg: super::BotPost, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_bot_post(msg))
    }
}

impl Handler<AgentRequest> for ConversationActor {
    type Result = AtomicResponse<Self, Result<Option<u64>, ConversationError>>;

    fn handle(&mut self, msg: AgentRequest, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_agent_request(msg))
    }
}

impl Handler<AssignAgent> for ConversationActor {
    type Result = AtomicResponse<Self, Result<(), ConversationError>>;

    fn handle(&mut self, msg: AssignAgent, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_assign(msg))
    }
}

impl Handler<super::ReturnToBot> for ConversationActor {
    type Result = AtomicResponse<Self, Result<(), ConversationError>>;

    fn handle(&mut self, msg: super::ReturnToBot, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_return_to_bot(msg))
    }
}

impl Handler<super::UpdateQueued> for ConversationActor {
    type Result = AtomicResponse<Self, Result<(), ConversationError>>;

    fn handle(&mut self, msg: super::UpdateQueued, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_update_queued(msg))
    }
}

impl Handler<super::SetAttributes> for ConversationActor {
    type Result =
        AtomicResponse<Self, Result<std::collections::BTreeMap<String, String>, ConversationError>>;

    fn handle(&mut self, msg: super::SetAttributes, _ctx: &mut Self::Context) -> Self::Result {
        /// Most attributes a contact keeps.
        const MAX_ATTRIBUTES: usize = 50;
        self.last_active = Instant::now();
        let mut attributes = self.record.contact.attributes.clone();
        for (k, v) in msg.changes {
            match v {
                Some(v) => attributes.insert(k, v),
                None => attributes.remove(&k),
            };
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return AtomicResponse::new(
                fut::ready(Err(ConversationError::Invalid(format!(
                    "a contact keeps at most {MAX_ATTRIBUTES} attributes"
                ))))
                .boxed_local(),
            );
        }
        self.record.contact.attributes = attributes.clone();
        let now = attributes;
        AtomicResponse::new(
            self.commit(Pending::default())
                .map(move |r, _, _| r.map(|_| now))
                .boxed_local(),
        )
    }
}

impl Handler<super::PostNotice> for ConversationActor {
    type Result = AtomicResponse<Self, Result<(), ConversationError>>;

    fn handle(&mut self, msg: super::PostNotice, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_post_notice(msg))
    }
}

impl Handler<Requeue> for ConversationActor {
    type Result = AtomicResponse<Self, Result<QueueEntry, ConversationError>>;

    fn handle(&mut self, msg: Requeue, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        AtomicResponse::new(self.on_requeue(msg))
    }
}

impl Handler<TypingSignal> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: TypingSignal, _ctx: &mut Self::Context) {
        let Owner::Agent { agent_id, .. } = &self.record.owner else {
            return;
        };
        match msg.agent_id {
            None => {
                self.svc.agents.push(
                    agent_id,
                    &ServerFrame::Typing {
                        conversation_id: self.record.id.clone(),
                        active: msg.active,
                    },
                );
            }
            Some(from) if from == *agent_id => {
                self.send_ephemeral(Outbound {
                    delivery_id: Uuid::now_v7().to_string(),
                    channel: self.record.channel,
                    conversation_key: self.record.key.clone(),
                    payload: OutboundPayload::Typing { active: msg.active },
                });
            }
            Some(_) => {}
        }
    }
}

impl Handler<super::DeliveryFailed> for ConversationActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: super::DeliveryFailed, _ctx: &mut Self::Context) -> Self::Result {
        let mut p = Pending::default();
        let what = msg
            .seq
            .map_or_else(|| "A delivery".to_string(), |s| format!("Message {s}"));
        let mut note = Self::message(
            Role::Note,
            format!(
                "{what} could not be delivered to the customer: {}",
                msg.reason
            ),
        );
        note.author = Some("handoffd".into());
        self.journal(&mut p, note);
        AtomicResponse::new(self.commit(p).map(|_, _, _| ()).boxed_local())
    }
}

impl Handler<super::QueuePosition> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: super::QueuePosition, _ctx: &mut Self::Context) {
        if !matches!(self.record.owner, Owner::Queued { .. }) {
            return;
        }
        self.send_ephemeral(Outbound {
            delivery_id: Uuid::now_v7().to_string(),
            channel: self.record.channel,
            conversation_key: self.record.key.clone(),
            payload: OutboundPayload::Status(ConversationStatus::Queued {
                position: Some(msg.position),
                eta_secs: msg.eta_secs,
            }),
        });
    }
}

/// Re-runs the bot's turn for a customer message the bot never answered.
#[derive(Message)]
#[rtype(result = "()")]
struct ResumeBotTurn {
    seq: u64,
}

impl Handler<ResumeBotTurn> for ConversationActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ResumeBotTurn, _ctx: &mut Self::Context) -> Self::Result {
        // Only if nothing happened since: the message is still the last one, still unanswered.
        let still_pending = self.record.owner == Owner::Bot
            && self.transcript.last().is_some_and(|m| {
                m.seq == msg.seq && m.role == Role::Customer && m.bot.is_none() && !m.automated
            });
        if !still_pending {
            return AtomicResponse::new(fut::ready(()).boxed_local());
        }
        tracing::info!(conversation = %self.id(), seq = msg.seq, "answering a customer message left unanswered");
        let text = self
            .transcript
            .last()
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let analysis = self.svc.analyzer.analyze(&text);
        AtomicResponse::new(self.bot_step(msg.seq, &analysis, None))
    }
}

impl Handler<RecordDelivery> for ConversationActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: RecordDelivery, _ctx: &mut Self::Context) -> Self::Result {
        let report = DeliveryReport {
            status: msg.status,
            at_ms: msg.at_ms,
            error: msg.error.clone(),
        };
        let mut p = Pending::default();
        let mut changed = Vec::new();
        for m in self.transcript.iter_mut() {
            let sent_by_us = m.role.customer_visible() && m.role != Role::Customer;
            let hit = match msg.target {
                ReportTarget::Seq(seq) => m.seq == seq,
                ReportTarget::UpTo(watermark) => m.at_ms <= watermark,
            };
            // Reports only move forward: sent, delivered, read (or failed).
            let advances = m.delivery.as_ref().is_none_or(|d| d.status < msg.status);
            if sent_by_us && hit && advances {
                Arc::make_mut(m).delivery = Some(Box::new(report.clone()));
                p.ops.push(Op::ReplaceMessage {
                    conversation_id: self.record.id.clone(),
                    message: m.clone(),
                });
                changed.push(m.seq);
            }
        }
        if changed.is_empty() {
            return AtomicResponse::new(fut::ready(()).boxed_local());
        }
        if msg.status == handoffd_channels::DeliveryStatus::Failed {
            for seq in &changed {
                let reason = msg
                    .error
                    .clone()
                    .unwrap_or_else(|| "the platform reported a failure".into());
                let mut note = Self::message(
                    Role::Note,
                    format!("Message {seq} could not be delivered to the customer: {reason}"),
                );
                note.author = Some("handoffd".into());
                self.journal(&mut p, note);
            }
        }
        AtomicResponse::new(
            self.commit(p)
                .map(move |res, act, _| {
                    if res.is_err() {
                        return;
                    }
                    if let Owner::Agent { agent_id, .. } = &act.record.owner {
                        for seq in changed {
                            act.svc.agents.push(
                                agent_id,
                                &ServerFrame::Delivery {
                                    conversation_id: act.record.id.clone(),
                                    seq,
                                    delivery: report.clone(),
                                },
                            );
                        }
                    }
                })
                .boxed_local(),
        )
    }
}
