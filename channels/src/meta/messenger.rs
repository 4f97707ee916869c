//! Messenger: `page` webhooks and the Send API at `{page_id}/messages` with a Page access
//! token. Text up to 2000 characters per message; longer replies are split.

use serde_json::Value;

use super::{Event, ParseError, SendError, messaging};
use crate::{ChannelKind, DeliveryMode};

/// Longest text Messenger accepts in one message, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// The events of one `page` webhook POST.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, ParseError> {
    messaging::parse(body, ChannelKind::Messenger, "page")
}

/// Send API bodies for one message to a PSID.
pub fn send_bodies(psid: &str, text: &str, mode: &DeliveryMode) -> Result<Vec<Value>, SendError> {
    messaging::send_bodies(psid, text, mode, MAX_TEXT_CHARS, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeliveryStatus, DeliveryTarget};
    use serde_json::json;

    /// Meta's sample message event, with a delivery, a read and an echo in the same POST.
    const SAMPLE: &str = r#"{"object":"page","entry":[{"id":"PAGE-ID","time":1458692752478,"messaging":[
        {"sender":{"id":"PSID"},"recipient":{"id":"PAGE-ID"},"timestamp":1458692752478,"message":{"mid":"m_1457764197618:41d102a3e1ae206a38","text":"hello, world!","attachments":[{"type":"image","payload":{"url":"https://cdn.example/img.jpg"}}]}},
        {"sender":{"id":"PAGE-ID"},"recipient":{"id":"PSID"},"timestamp":1458692752479,"message":{"mid":"m_echo","is_echo":true,"app_id":1517776481860111,"text":"our own"}},
        {"sender":{"id":"PSID"},"recipient":{"id":"PAGE-ID"},"delivery":{"mids":["m_out"],"watermark":1458668856253}},
        {"sender":{"id":"PSID"},"recipient":{"id":"PAGE-ID"},"timestamp":1458668856463,"read":{"watermark":1458668856253}}
    ]}]}"#;

    #[test]
    fn messages_deliveries_and_reads_are_parsed_and_echoes_ignored() {
        let events = parse(SAMPLE.as_bytes()).expect("parse");
        let [
            Event::Message(m),
            Event::Status(delivered),
            Event::Status(read),
        ] = events.as_slice()
        else {
            panic!("message, delivery and read expected: {events:?}")
        };
        assert_eq!(m.conversation_key, "PAGE-ID:PSID");
        assert_eq!(m.platform_message_id, "m_1457764197618:41d102a3e1ae206a38");
        assert_eq!(m.text, "hello, world!");
        assert_eq!(m.sent_at_ms, 1_458_692_752_478);
        assert_eq!(m.attachments[0].kind, "image");
        assert_eq!(m.attachments[0].id, "https://cdn.example/img.jpg");
        assert_eq!(delivered.status, DeliveryStatus::Delivered);
        assert_eq!(
            delivered.target,
            DeliveryTarget::Message {
                platform_message_id: "m_out".into()
            }
        );
        assert_eq!(read.status, DeliveryStatus::Read);
        assert_eq!(
            read.target,
            DeliveryTarget::UpTo {
                conversation_key: "PAGE-ID:PSID".into(),
                watermark_ms: 1_458_668_856_253
            }
        );
    }

    #[test]
    fn a_late_human_reply_is_tagged_and_templates_are_refused() {
        let plain = send_bodies("PSID", "hi", &DeliveryMode::Standard).expect("plain");
        assert_eq!(
            plain,
            vec![
                json!({"recipient": {"id": "PSID"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
            ]
        );
        let late =
            send_bodies("PSID", "sorry for the wait", &DeliveryMode::HumanAgent).expect("tagged");
        assert_eq!(
            late,
            vec![
                json!({"recipient": {"id": "PSID"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": {"text": "sorry for the wait"}})
            ]
        );
        let template = DeliveryMode::Template {
            name: "t".into(),
            language: "en".into(),
            params: vec![],
        };
        assert!(send_bodies("PSID", "x", &template).is_err());
        assert_eq!(
            send_bodies("PSID", &"y".repeat(4001), &DeliveryMode::Standard)
                .expect("split")
                .len(),
            3
        );
    }

    #[test]
    fn an_instagram_payload_is_not_a_messenger_one() {
        assert!(matches!(
            parse(br#"{"object":"instagram","entry":[]}"#),
            Err(ParseError::WrongObject(_))
        ));
    }
}
