//! The few lines an agent reads before saying hello: what the customer wants, the key
//! entities, what the bot tried, and why the conversation was handed over.

use std::borrow::Borrow;

use crate::handoff::TriggerHit;
use crate::model::{KnownEntity, MessageRecord, Role};

/// Longest quote of the customer kept in a summary line.
const QUOTE_CHARS: usize = 140;

/// Builds the summary from the transcript, the entities and the triggers that fired. The
/// messages may be owned or shared (a live conversation's transcript holds `Arc`s).
pub fn summarize<M: Borrow<MessageRecord>>(
    messages: &[M],
    entities: &[KnownEntity],
    intent: Option<&str>,
    triggers: &[TriggerHit],
) -> String {
    let mut lines = Vec::new();
    let customer: Vec<&MessageRecord> = messages
        .iter()
        .map(Borrow::borrow)
        .filter(|m: &&MessageRecord| m.role == Role::Customer)
        .collect();
    // The customer's request: the first message that is not only a greeting or the request
    // for a person, else the latest.
    let asked = customer
        .iter()
        .find(|m| m.text.split_whitespace().count() > 3)
        .or(customer.last());
    if let Some(m) = asked {
        let mut line = format!("Customer: \"{}\"", quote(&m.text));
        if let Some(i) = intent {
            line.push_str(&format!(" (intent: {i})"));
        }
        lines.push(line);
    }
    if customer.len() > 1
        && let Some(last) = customer.last()
        && asked.map(|a| a.seq) != Some(last.seq)
    {
        lines.push(format!("Latest: \"{}\"", quote(&last.text)));
    }
    if !entities.is_empty() {
        let list = entities
            .iter()
            .map(|e| format!("{} {}", e.kind, e.value))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!("Known: {list}"));
    }
    let bot_replies: Vec<&MessageRecord> = messages
        .iter()
        .map(Borrow::borrow)
        .filter(|m: &&MessageRecord| m.role == Role::Bot)
        .collect();
    if !bot_replies.is_empty() {
        let low = bot_replies
            .iter()
            .filter_map(|m| m.bot.as_ref().and_then(|b| b.confidence))
            .filter(|c| *c < 0.35)
            .count();
        lines.push(format!(
            "Bot: {} repl{} ({} unsure)",
            bot_replies.len(),
            if bot_replies.len() == 1 { "y" } else { "ies" },
            low
        ));
    }
    if !triggers.is_empty() {
        let why = triggers
            .iter()
            .map(|t| format!("{} ({})", t.trigger, t.evidence))
            .collect::<Vec<_>>()
            .join("; ");
        lines.push(format!("Handed over: {why}"));
    }
    lines.join("\n")
}

fn quote(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= QUOTE_CHARS {
        one_line
    } else {
        let cut: String = one_line.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: u64, role: Role, text: &str) -> MessageRecord {
        MessageRecord {
            seq,
            role,
            author: None,
            author_name: None,
            text: text.into(),
            at_ms: 0,
            platform_message_id: None,
            attachments: vec![],
            sentiment: None,
            language: None,
            intents: vec![],
            handoff: None,
            bot: None,
            automated: false,
            delivery_mode: Default::default(),
            delivery: None,
            quick_replies: Vec::new(),
            platform_at_ms: None,
        }
    }

    #[test]
    fn summary_names_request_entities_bot_and_reason() {
        let msgs = vec![
            m(1, Role::Customer, "hi"),
            m(
                2,
                Role::Customer,
                "my order 12345678 never arrived and I want my money",
            ),
            m(3, Role::Bot, "Sorry, I don't know."),
            m(4, Role::Customer, "let me talk to a human"),
        ];
        let entities = vec![KnownEntity {
            kind: "order_number".into(),
            value: "12345678".into(),
            seq: 2,
        }];
        let triggers = vec![TriggerHit {
            trigger: "explicit_request".into(),
            evidence: "talk to a human".into(),
            message_seq: 4,
            score: Some(1.0),
        }];
        let s = summarize(&msgs, &entities, Some("delivery"), &triggers);
        assert!(s.contains("my order 12345678 never arrived"), "{s}");
        assert!(s.contains("intent: delivery"), "{s}");
        assert!(s.contains("Latest: \"let me talk to a human\""), "{s}");
        assert!(s.contains("order_number 12345678"), "{s}");
        assert!(s.contains("Bot: 1 reply"), "{s}");
        assert!(s.contains("explicit_request (talk to a human)"), "{s}");
        assert!(s.lines().count() <= 6);
    }
}
