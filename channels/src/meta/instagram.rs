//! Instagram Messaging: `instagram` webhooks (echoes arrive in the same `messages` field with
//! `is_echo`, reads name the message) and sends to `{ig_id}/messages`. Text up to 1000 bytes
//! per message; longer replies are split.

use serde_json::Value;

use super::{Event, ParseError, SendError, messaging};
use crate::{ChannelKind, DeliveryMode};

/// Longest text Instagram accepts in one message, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 1000;

/// The events of one `instagram` webhook POST.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    messaging::parse(body, ChannelKind::Instagram, "instagram")
}

/// Send API bodies for one message to an IGSID.
pub fn send_bodies(igsid: &str, text: &str, mode: &DeliveryMode) -> Result<Vec<Value>, SendError> {
    messaging::send_bodies(igsid, text, mode, usize::MAX, MAX_TEXT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeliveryStatus, DeliveryTarget};

    /// Meta's sample Instagram message, an echo of ours, and a read naming a message.
    const SAMPLE: &str = r#"{"object":"instagram","entry":[{"id":"IGID","time":1569262486134,"messaging":[
        {"sender":{"id":"IGSID"},"recipient":{"id":"IGID"},"timestamp":1569262485349,"message":{"mid":"MESSAGE-ID","text":"MESSAGE-TEXT"}},
        {"sender":{"id":"IGID"},"recipient":{"id":"IGSID"},"timestamp":1569262485350,"message":{"mid":"ECHO-ID","text":"ours","is_echo":true}},
        {"sender":{"id":"IGSID"},"recipient":{"id":"IGID"},"timestamp":1569262485351,"read":{"mid":"OUT-ID"}}
    ]}]}"#;

    #[test]
    fn the_sample_message_is_parsed_and_the_echo_ignored() {
        let events = parse(SAMPLE.as_bytes()).expect("parse");
        let [Event::Message(m), Event::Status(read)] = events.as_slice() else {
            panic!("a message and a read expected: {events:?}")
        };
        assert_eq!(m.channel, ChannelKind::Instagram);
        assert_eq!(m.conversation_key, "IGID:IGSID");
        assert_eq!(m.platform_message_id, "MESSAGE-ID");
        assert_eq!(m.text, "MESSAGE-TEXT");
        assert_eq!(read.status, DeliveryStatus::Read);
        assert_eq!(
            read.target,
            DeliveryTarget::Message {
                platform_message_id: "OUT-ID".into()
            }
        );
    }

    #[test]
    fn long_texts_are_split_at_1000_bytes_on_character_boundaries() {
        let text = "é".repeat(700); // 1400 bytes
        let bodies = send_bodies("IGSID", &text, &DeliveryMode::Standard).expect("split");
        assert_eq!(bodies.len(), 2);
        for b in &bodies {
            let chunk = b["message"]["text"].as_str().expect("text");
            assert!(chunk.len() <= MAX_TEXT_BYTES);
        }
        let late = send_bodies("IGSID", "late", &DeliveryMode::HumanAgent).expect("tag");
        assert_eq!(late[0]["tag"], "HUMAN_AGENT");
    }
}
