//! From raw RFC 5322 bytes to what the transcript needs: who wrote, to whom, which earlier
//! messages it answers, the new text, the attachments, and whether a machine wrote it.
//! Character sets and transfer encodings are decoded by mail-parser; nothing here panics on
//! malformed mail.

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders};

use super::{auto, html, quote};

/// Most ids taken from one References header; clients send far fewer.
const MAX_REFERENCES: usize = 100;
/// Longest message id accepted (RFC 5322 lines are at most 998 characters).
const MAX_ID_LEN: usize = 250;

/// A person's address and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Lowercased address.
    pub address: String,
    pub name: Option<String>,
}

/// A file that came with a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The file name the sender gave, if any.
    pub name: Option<String>,
    /// MIME type, e.g. `application/pdf`.
    pub kind: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// What handoffd keeps from one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Ids of the mail(s) this one answers.
    pub in_reply_to: Vec<String>,
    /// Ids of the thread so far, oldest first (often truncated by clients).
    pub references: Vec<String>,
    /// Who wrote it.
    pub from: Option<Person>,
    /// Where answers go: Reply-To when given, else From.
    pub reply_to: Option<Person>,
    /// Every address the mail was sent to (To, Cc, Delivered-To, X-Original-To), lowercased.
    pub recipients: Vec<String>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// The Date header, in ms since the Unix epoch.
    pub sent_at_ms: Option<u64>,
    /// The new text: quotes and signature stripped.
    pub text: String,
    /// Files that came with it.
    pub attachments: Vec<AttachmentInfo>,
    /// Why a machine wrote it (auto-reply, bounce), if one did.
    pub automatic: Option<String>,
}

/// Parses a mail; `None` only when the bytes hold no message at all.
pub fn parse(raw: &[u8], max_text_chars: usize) -> Option<ParsedMail> {
    let msg = MessageParser::default().parse(raw)?;
    let from = msg.from().and_then(person);
    let reply_to = msg.reply_to().and_then(person).or_else(|| from.clone());
    let mut recipients: Vec<String> = Vec::new();
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        for a in list.iter() {
            if let Some(addr) = a.address() {
                recipients.push(addr.trim().to_lowercase());
            }
        }
    }
    for name in ["Delivered-To", "X-Original-To"] {
        for h in msg.header_values(name) {
            if let Some(v) = h.as_text() {
                recipients.push(v.trim().trim_matches(['<', '>']).to_lowercase());
            }
        }
    }
    recipients.dedup();
    let text = truncate(&quote::new_text(&body_text(&msg)), max_text_chars);
    Some(ParsedMail {
        message_id: msg.message_id().and_then(clean_id),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        from,
        reply_to,
        recipients,
        subject: msg.subject().map(|s| s.trim().to_string()),
        sent_at_ms: msg
            .date()
            .map(|d| d.to_timestamp())
            .filter(|&t| t > 0)
            .map(|t| (t as u64).saturating_mul(1000)),
        text,
        attachments: attachments(&msg),
        automatic: auto::automatic_reason(&msg),
    })
}

fn person(a: &mail_parser::Address<'_>) -> Option<Person> {
    let first = a.first()?;
    let address = first.address()?.trim().to_lowercase();
    if !address.contains('@') {
        return None;
    }
    Some(Person {
        address,
        name: first
            .name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
    })
}

/// Every text body part, plain text preferred; HTML converted when it is all there is.
fn body_text(msg: &Message<'_>) -> String {
    let mut parts = Vec::new();
    for part in msg.text_bodies() {
        let Some(content) = part.text_contents() else {
            continue;
        };
        if part.is_text_html() {
            parts.push(html::to_text(content));
        } else {
            parts.push(content.to_string());
        }
    }
    if parts.is_empty() {
        // No text/plain part at all: fall back to the HTML bodies.
        for part in msg.html_bodies() {
            if let Some(content) = part.text_contents() {
                parts.push(html::to_text(content));
            }
        }
    }
    parts.join("\n")
}

fn attachments(msg: &Message<'_>) -> Vec<AttachmentInfo> {
    msg.attachments()
        .take(100)
        .map(|part| AttachmentInfo {
            name: part.attachment_name().map(|n| n.to_string()),
            kind: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_lowercase(),
            size: part.contents().len() as u64,
        })
        .collect()
}

/// The message ids in an In-Reply-To or References header, in order.
fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match v {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .flat_map(|s| s.split_whitespace())
        .filter_map(clean_id)
        .take(MAX_REFERENCES)
        .collect()
}

/// A message id without brackets or spaces; `None` when it is not usable.
pub fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(|c| c.is_control()) {
        return None;
    }
    Some(id.to_string())
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_8859_1_html_with_an_attachment_reads_correctly() {
        let raw = b"From: =?ISO-8859-1?Q?Ren=E9_M=FCller?= <Rene@Example.TEST>\r\n\
To: Support <support@shop.test>\r\n\
Subject: =?ISO-8859-1?Q?R=E9clamation?=\r\n\
Message-ID: <abc@client.test>\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<html><body><p>Ma commande n'est pas arriv=E9e, d=E9j=E0 10 jours.</p><p>Ren=E9</p></body></html>\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"facture.pdf\"\r\n\
Content-Disposition: attachment; filename=\"facture.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";
        let m = parse(raw, 1000).expect("parses");
        assert_eq!(
            m.text,
            "Ma commande n'est pas arrivée, déjà 10 jours.\nRené"
        );
        assert_eq!(m.subject.as_deref(), Some("Réclamation"));
        let from = m.from.expect("from");
        assert_eq!(from.address, "rene@example.test");
        assert_eq!(from.name.as_deref(), Some("René Müller"));
        assert_eq!(m.message_id.as_deref(), Some("abc@client.test"));
        assert_eq!(m.recipients, vec!["support@shop.test".to_string()]);
        assert_eq!(m.sent_at_ms, Some(1_704_103_200_000));
        assert_eq!(
            m.attachments,
            vec![AttachmentInfo {
                name: Some("facture.pdf".into()),
                kind: "application/pdf".into(),
                size: 9,
            }]
        );
        assert_eq!(m.automatic, None);
    }

    #[test]
    fn plain_text_is_preferred_over_html_and_quotes_are_stripped() {
        let raw = b"From: a@x.test\r\nTo: support+m1@shop.test\r\nIn-Reply-To: <p1@shop.test>\r\n\
References: <root@x.test>\r\n <p1@shop.test>\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNew text here\r\n\r\nOn Mon, Support wrote:\r\n> old\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>HTML version</p>\r\n--b--\r\n";
        let m = parse(raw, 1000).expect("parses");
        assert_eq!(m.text, "New text here");
        assert_eq!(m.in_reply_to, vec!["p1@shop.test".to_string()]);
        assert_eq!(
            m.references,
            vec!["root@x.test".to_string(), "p1@shop.test".to_string()]
        );
        assert_eq!(m.recipients, vec!["support+m1@shop.test".to_string()]);
        assert_eq!(m.message_id, None);
    }

    #[test]
    fn garbage_never_panics_and_text_is_bounded() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"not a mail",
            b"From: <>\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
            b"\xff\xfe\x00garbage",
        ] {
            let _ = parse(raw, 10);
        }
        let m = parse(b"From: a@x.test\r\n\r\n0123456789abcdef", 10).expect("parses");
        assert_eq!(m.text, "0123456789…");
    }
}
