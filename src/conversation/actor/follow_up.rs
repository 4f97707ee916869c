//! The email follow-up: when a team cannot answer in time and follows up by email, the
//! conversation asks the customer for an address (or uses the one it knows), opens a mail
//! thread to it through the email channel, and from then on mails agents' replies there
//! too. The thread's key leads back to this conversation, so the customer's mail replies
//! land here, whatever channel the conversation started on.

use actix::fut::{self, LocalBoxActorFuture};
use actix::prelude::*;
use handoffd_channels::ChannelKind;
use handoffd_channels::email::{follow_up_key, follow_up_thread};

use super::{ConversationActor, Pending};
use crate::analysis::entities::FoundEntity;
use crate::conversation::{ConversationError, OfferFollowUp};
use crate::model::{MessageRecord, OutboxEntry, Owner, Role};
use crate::store::Op;

impl ConversationActor {
    /// Nobody can answer in time: ask for an address, or say where the reply will go.
    fn on_offer_follow_up(&mut self) -> LocalBoxActorFuture<Self, Result<(), ConversationError>> {
        if !matches!(self.record.owner, Owner::Queued { .. }) {
            return fut::ready(Err(ConversationError::NotQueued)).boxed_local();
        }
        // An email conversation is answered by email anyway.
        if self.record.channel == ChannelKind::Email {
            return fut::ready(Ok(())).boxed_local();
        }
        let words = self.svc.settings.follow_up.clone();
        let mut p = Pending::default();
        let known = self.record.follow_up_email.clone().or_else(|| {
            self.record
                .entities
                .iter()
                .rev()
                .find(|e| e.kind == "email")
                .map(|e| e.value.clone())
        });
        let text = match known {
            Some(address) => {
                if self.record.follow_up_email.as_deref() != Some(address.as_str()) {
                    self.open_follow_up(&mut p, &address);
                }
                words.known.replace("{email}", &address)
            }
            None => {
                self.record.follow_up_pending = true;
                words.ask
            }
        };
        self.journal(&mut p, Self::message(Role::System, text));
        self.commit(p).boxed_local()
    }

    /// Opens the mail thread to `address` in the same commit as the conversation's change:
    /// the thread (kept by the email channel) and the key that leads its replies here.
    fn open_follow_up(&mut self, p: &mut Pending, address: &str) {
        let key = follow_up_key(&self.record.id);
        let subject = self.svc.settings.follow_up.subject.clone();
        for (k, value) in
            follow_up_thread(&key, address, self.record.contact.name.clone(), &subject)
        {
            p.ops.push(Op::PutChannelState { key: k, value });
        }
        p.ops.push(Op::PutConversationKey {
            channel: ChannelKind::Email,
            key,
            conversation_id: self.record.id.clone(),
        });
        self.record.follow_up_email = Some(address.to_string());
        self.record.follow_up_pending = false;
        tracing::info!(conversation = %self.id(), "email follow-up opened");
    }

    /// The customer was asked for an address and this message has one: take it and thank
    /// them.
    pub(super) fn take_follow_up_address(&mut self, p: &mut Pending, found: &[FoundEntity]) {
        if !self.record.follow_up_pending {
            return;
        }
        let Some(address) = found
            .iter()
            .find(|e| e.kind == "email")
            .map(|e| e.value.clone())
        else {
            return;
        };
        self.open_follow_up(p, &address);
        let text = self
            .svc
            .settings
            .follow_up
            .thanks
            .replace("{email}", &address);
        self.journal(p, Self::message(Role::System, text));
    }

    /// An agent's message also goes to the follow-up thread, while there is one.
    pub(super) fn follow_up_delivery(&self, msg: &MessageRecord) -> Option<OutboxEntry> {
        self.record.follow_up_email.as_ref()?;
        if msg.role != Role::Agent || self.record.channel == ChannelKind::Email {
            return None;
        }
        Some(OutboxEntry {
            delivery_id: format!("{}:{}:email", self.record.id, msg.seq),
            conversation_id: self.record.id.clone(),
            channel: ChannelKind::Email,
            conversation_key: follow_up_key(&self.record.id),
            payload: msg.payload(),
            attempts: 0,
            created_at_ms: msg.at_ms,
            stored: true,
        })
    }

    /// The conversation closed: the follow-up ends with it.
    pub(super) fn end_follow_up(&mut self) {
        self.record.follow_up_email = None;
        self.record.follow_up_pending = false;
    }
}

impl Handler<OfferFollowUp> for ConversationActor {
    type Result = AtomicResponse<Self, Result<(), ConversationError>>;

    fn handle(&mut self, _msg: OfferFollowUp, _ctx: &mut Self::Context) -> Self::Result {
        self.last_active = std::time::Instant::now();
        AtomicResponse::new(self.on_offer_follow_up())
    }
}
