//! The email channel end to end: a real Dovecot, the SMTP sink, the real daemon.

use std::time::Duration;

use serde_json::{Value, json};

use crate::mail_support::*;
use crate::support::*;

/// Email conversations, newest first.
async fn email_conversations(d: &Daemon) -> Vec<Value> {
    let (status, body) = d.api_get("/api/v1/conversations?channel=email").await;
    assert_eq!(status, 200, "{body}");
    body["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Customer messages of a conversation: (text, automated).
async fn customer_messages(d: &Daemon, id: &str) -> Vec<(String, bool)> {
    let c = d.conversation(id).await;
    c["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["role"] == "customer")
        .map(|m| {
            (
                m["text"].as_str().unwrap_or("").to_string(),
                m["automated"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Waits until the conversation has `n` customer messages.
async fn wait_customer_messages(d: &Daemon, id: &str, n: usize) -> Vec<(String, bool)> {
    for _ in 0..100 {
        let msgs = customer_messages(d, id).await;
        if msgs.len() >= n {
            return msgs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("conversation {id} never got {n} customer messages");
}

fn options(dovecot: &Dovecot, sink: &SmtpSink) -> Options {
    Options {
        extra: email_config(dovecot.port, sink.port, true),
        ..Options::default()
    }
}

#[tokio::test]
async fn mail_is_answered_threaded_handed_off_and_auto_replies_are_ignored() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let mut sink = SmtpSink::start().await;
    let (dir, tokens) = Daemon::prepare(&options(&dovecot, &sink), &[("alice", "support", 2)]);
    let d = Daemon::start(dir);
    let (mut agent, _) = d.agent(&tokens[0]).await;

    // A customer writes; the bot's answer comes back threaded on her mail.
    dovecot
        .deliver(
            "From: Jane Doe <jane@cust.test>\nTo: Shop Support <support@shop.test>\n\
             Subject: Opening hours\nMessage-ID: <a1@cust.test>\n\
             Date: Mon, 1 Jan 2024 10:00:00 +0000\n\n\
             What are your opening hours?\n\n-- \nJane Doe\nACME Corp\n",
        )
        .await;
    let bot = sink.next().await;
    assert_eq!(bot.rcpt, vec!["jane@cust.test".to_string()]);
    assert!(bot.body().contains("We are open 9 to 5."), "{}", bot.raw);
    assert_eq!(bot.header("In-Reply-To").as_deref(), Some("<a1@cust.test>"));
    assert!(
        bot.header("References")
            .unwrap_or_default()
            .contains("<a1@cust.test>"),
        "{}",
        bot.raw
    );
    assert_eq!(bot.header("Subject").as_deref(), Some("Re: Opening hours"));
    assert_eq!(
        bot.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(
        bot.header("Reply-To")
            .unwrap_or_default()
            .contains("support+m"),
        "{}",
        bot.raw
    );
    let bot_id = bot.message_id();
    assert!(bot_id.ends_with("@shop.test"), "{bot_id}");

    let convs = email_conversations(&d).await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    let conv = convs[0]["id"].as_str().expect("id").to_string();
    assert_eq!(convs[0]["contact"]["channel_user_id"], "jane@cust.test");
    assert_eq!(convs[0]["contact"]["name"], "Jane Doe");
    // The signature is not in the transcript.
    assert_eq!(
        customer_messages(&d, &conv).await,
        vec![("What are your opening hours?".to_string(), false)]
    );

    // Her out-of-office answers the bot: recorded in the same conversation, never answered.
    dovecot
        .deliver(&format!(
            "From: Jane Doe <jane@cust.test>\nTo: support@shop.test\n\
             Subject: Out of Office: Re: Opening hours\nMessage-ID: <ooo1@cust.test>\n\
             In-Reply-To: <{bot_id}>\nReferences: <a1@cust.test> <{bot_id}>\n\
             Auto-Submitted: auto-replied\n\nI am away until Monday.\n"
        ))
        .await;
    let msgs = wait_customer_messages(&d, &conv, 2).await;
    assert_eq!(msgs[1], ("I am away until Monday.".to_string(), true));
    assert!(
        sink.next_within(Duration::from_secs(3)).await.is_none(),
        "an auto-reply was answered"
    );

    // Her real reply quotes the bot and carries a signature, and its References are
    // truncated to the bot's mail: it joins the conversation, only the new text shows.
    dovecot
        .deliver(&format!(
            "From: Jane Doe <jane@cust.test>\nTo: Shop Support <support+x@shop.test>\n\
             Subject: Re: Opening hours\nMessage-ID: <a2@cust.test>\n\
             In-Reply-To: <{bot_id}>\nReferences: <{bot_id}>\n\n\
             Thanks. I want to talk to a human please.\n\n\
             On Mon, 1 Jan 2024 at 10:01, Shop Support <support@shop.test> wrote:\n\
             > We are open 9 to 5.\n\n-- \nJane\n"
        ))
        .await;
    let msgs = wait_customer_messages(&d, &conv, 3).await;
    assert_eq!(
        msgs[2],
        (
            "Thanks. I want to talk to a human please.".to_string(),
            false
        )
    );
    assert_eq!(email_conversations(&d).await.len(), 1);

    // The handoff: the agent gets the conversation with the email transcript, and replies.
    let offer = agent.expect("offer").await;
    assert_eq!(offer["conversation_id"], json!(conv));
    assert_eq!(offer["package"]["channel"], "email");
    agent
        .send(json!({"type": "accept", "conversation_id": conv}))
        .await;
    agent.expect_skipping("assigned", &["ack", "typing"]).await;
    agent
        .send(json!({"type": "reply", "conversation_id": conv, "text": "Hi Jane, Alice here. How can I help?", "client_id": "r1"}))
        .await;
    agent.expect_skipping("ack", &["message", "typing"]).await;
    let (reply, before) = sink.until_body("Alice here").await;
    // Before it: the warm handoff notice and the "agent joined" notice, threaded too.
    assert!(
        before.iter().all(|m| m.header("In-Reply-To").is_some()),
        "{before:?}"
    );
    assert_eq!(reply.rcpt, vec!["jane@cust.test".to_string()]);
    assert_eq!(reply.header("Auto-Submitted"), None);
    let refs = reply.header("References").unwrap_or_default();
    assert!(refs.contains("<a1@cust.test>"), "{refs}");
    assert!(refs.contains("<a2@cust.test>"), "{refs}");
    assert!(refs.contains(&format!("<{bot_id}>")), "{refs}");
    assert!(reply.header("In-Reply-To").is_some(), "{}", reply.raw);
    let reply_id = reply.message_id();

    // Her answer to the agent's mail goes to the agent live, in the same conversation.
    dovecot
        .deliver(&format!(
            "From: jane@cust.test\nTo: support@shop.test\nSubject: Re: Opening hours\n\
             Message-ID: <a3@cust.test>\nIn-Reply-To: <{reply_id}>\n\
             References: <a1@cust.test> <{reply_id}>\n\n\
             My order 55512345 never arrived.\n\n> Hi Jane, Alice here.\n"
        ))
        .await;
    let live = loop {
        let f = agent.expect_skipping("message", &["ack", "typing"]).await;
        if f["message"]["role"] == "customer" {
            break f;
        }
    };
    assert_eq!(live["conversation_id"], json!(conv));
    assert_eq!(live["message"]["text"], "My order 55512345 never arrived.");
}

#[tokio::test]
async fn html_only_latin1_mail_with_an_attachment_reads_correctly() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let mut sink = SmtpSink::start().await;
    let (dir, _) = Daemon::prepare(&options(&dovecot, &sink), &[]);
    let d = Daemon::start(dir);
    dovecot
        .deliver(
            "From: =?ISO-8859-1?Q?Ren=E9_M=FCller?= <rene@cust.test>\nTo: support@shop.test\n\
             Subject: =?ISO-8859-1?Q?Facture_d=E9j=E0_pay=E9e?=\nMessage-ID: <c1@cust.test>\n\
             MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n\
             --b1\nContent-Type: text/html; charset=ISO-8859-1\n\
             Content-Transfer-Encoding: quoted-printable\n\n\
             <html><body><div>Bonjour,</div><div>ma facture est d=E9j=E0 pay=E9e.</div>\
             <blockquote>ancien message</blockquote></body></html>\n\
             --b1\nContent-Type: application/pdf; name=\"facture.pdf\"\n\
             Content-Disposition: attachment; filename=\"facture.pdf\"\n\
             Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b1--\n",
        )
        .await;
    // The bot answers (it does not know this one: its fallback), threaded.
    let answer = sink.next().await;
    assert_eq!(
        answer.header("In-Reply-To").as_deref(),
        Some("<c1@cust.test>")
    );
    assert_eq!(answer.rcpt, vec!["rene@cust.test".to_string()]);
    let convs = email_conversations(&d).await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["contact"]["name"], "René Müller");
    let c = d.conversation(convs[0]["id"].as_str().expect("id")).await;
    let first = &c["transcript"][0];
    assert_eq!(first["text"], "Bonjour,\nma facture est déjà payée.");
    let attachments = first["attachments"].as_array().expect("attachments");
    // The raw message, referenced by its IMAP URL, then the PDF.
    assert_eq!(attachments[0]["kind"], "message/rfc822");
    assert!(
        attachments[0]["id"]
            .as_str()
            .unwrap_or("")
            .starts_with("imap:///INBOX;UIDVALIDITY="),
        "{attachments:?}"
    );
    assert_eq!(attachments[1]["name"], "facture.pdf");
    assert_eq!(attachments[1]["kind"], "application/pdf");
    assert_eq!(attachments[1]["size"], 9);
}

#[tokio::test]
async fn a_restart_neither_misses_nor_duplicates_mail() {
    let Some(dovecot) = Dovecot::start().await else {
        return;
    };
    let mut sink = SmtpSink::start().await;
    let (dir, _) = Daemon::prepare(&options(&dovecot, &sink), &[]);
    let d = Daemon::start(dir);
    dovecot
        .deliver(
            "From: jane@cust.test\nTo: support@shop.test\nSubject: Hours\n\
             Message-ID: <r1@cust.test>\n\nWhat are your opening hours?\n",
        )
        .await;
    let first = sink.next().await;
    assert!(first.body().contains("We are open 9 to 5."));
    let first_id = first.message_id();
    let convs = email_conversations(&d).await;
    assert_eq!(convs.len(), 1);
    let conv = convs[0]["id"].as_str().expect("id").to_string();

    // Down hard; two mails arrive meanwhile: a reply in the thread and a new customer.
    let dir = d.kill9();
    dovecot
        .deliver(&format!(
            "From: jane@cust.test\nTo: support@shop.test\nSubject: Re: Hours\n\
             Message-ID: <r2@cust.test>\nIn-Reply-To: <{first_id}>\n\n\
             How do I reset my password?\n"
        ))
        .await;
    dovecot
        .deliver(
            "From: bob@cust.test\nTo: support@shop.test\nSubject: Hours\n\
             Message-ID: <b1@cust.test>\n\nWhen are you open?\n",
        )
        .await;

    let d = Daemon::start(dir);
    // kill -9 may have come between sending the first answer and the outbox forgetting it:
    // then it goes out again with the same Message-ID (clients drop it as the same mail).
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let m = sink.next().await;
        if m.message_id() != first_id {
            answers.push(m);
        }
    }
    answers.sort_by_key(|m| m.rcpt.clone());
    assert_eq!(answers[0].rcpt, vec!["bob@cust.test".to_string()]);
    assert_eq!(
        answers[0].header("In-Reply-To").as_deref(),
        Some("<b1@cust.test>")
    );
    assert_eq!(answers[1].rcpt, vec!["jane@cust.test".to_string()]);
    assert_eq!(
        answers[1].header("In-Reply-To").as_deref(),
        Some("<r2@cust.test>")
    );
    assert!(
        answers[1].body().contains("Forgot password"),
        "{}",
        answers[1].raw
    );
    // Nothing was read twice: no third answer, and each mail is in the journal once.
    if let Some(extra) = sink.next_within(Duration::from_secs(3)).await {
        panic!("unexpected mail after the restart: {}", extra.raw);
    }
    assert_eq!(
        customer_messages(&d, &conv).await,
        vec![
            ("What are your opening hours?".to_string(), false),
            ("How do I reset my password?".to_string(), false)
        ]
    );
    assert_eq!(email_conversations(&d).await.len(), 2);

    // And once more, a clean restart with nothing new: still nothing re-read.
    let dir = d.kill9();
    let d = Daemon::start(dir);
    assert!(sink.next_within(Duration::from_secs(3)).await.is_none());
    assert_eq!(customer_messages(&d, &conv).await.len(), 2);
}

/// Polling (a server without IDLE, or IDLE turned off) and a server that goes away and
/// comes back: the daemon reconnects, and mail that arrived meanwhile is answered once.
#[tokio::test]
async fn polling_and_reconnecting_after_the_server_restarts() {
    server_restart_scenario(false).await;
}

/// The same with IDLE: the connection drops while idling.
#[tokio::test]
async fn idle_reconnects_after_the_server_restarts() {
    server_restart_scenario(true).await;
}

async fn server_restart_scenario(idle: bool) {
    let Some(mut dovecot) = Dovecot::start().await else {
        return;
    };
    let mut sink = SmtpSink::start().await;
    let o = Options {
        extra: email_config(dovecot.port, sink.port, idle),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    dovecot
        .deliver(
            "From: jane@cust.test\nTo: support@shop.test\nSubject: Hours\n\
             Message-ID: <p1@cust.test>\n\nWhat are your opening hours?\n",
        )
        .await;
    let first = sink.next().await;
    assert_eq!(
        first.header("In-Reply-To").as_deref(),
        Some("<p1@cust.test>")
    );

    dovecot.restart().await;
    dovecot
        .deliver(
            "From: jane@cust.test\nTo: support@shop.test\nSubject: Password\n\
             Message-ID: <p2@cust.test>\n\nHow do I reset my password?\n",
        )
        .await;
    let second = sink.next().await;
    assert_eq!(
        second.header("In-Reply-To").as_deref(),
        Some("<p2@cust.test>")
    );
    assert!(second.body().contains("Forgot password"), "{}", second.raw);
    if let Some(extra) = sink.next_within(Duration::from_secs(3)).await {
        panic!("a mail was answered twice: {}", extra.raw);
    }
    assert_eq!(email_conversations(&d).await.len(), 2);
}

/// IMAP over STARTTLS and over implicit TLS, the server's certificate checked against a
/// private CA given as `ca_file`.
#[tokio::test]
async fn imap_over_starttls_and_tls_with_a_private_ca() {
    let Some(dovecot) = Dovecot::start_tls().await else {
        return;
    };
    let ca = dovecot.ca_file.clone().expect("ca file");
    let tls_port = dovecot.tls_port.expect("imaps port");
    for (n, (security, port)) in [("starttls", dovecot.port), ("tls", tls_port)]
        .into_iter()
        .enumerate()
    {
        let mut sink = SmtpSink::start().await;
        let o = Options {
            extra: email_config_with(
                port,
                sink.port,
                true,
                &format!("security = \"{security}\"\nca_file = \"{}\"", ca.display()),
            ),
            ..Options::default()
        };
        let (dir, _) = Daemon::prepare(&o, &[]);
        let d = Daemon::start(dir);
        let id = format!("t{n}@cust.test");
        dovecot
            .deliver(&format!(
                "From: jane@cust.test\nTo: support@shop.test\nSubject: Hours\n\
                 Message-ID: <{id}>\n\nWhat are your opening hours?\n"
            ))
            .await;
        // With read_backlog each daemon reads the whole mailbox: find the answer to this mail.
        loop {
            let m = sink.next().await;
            if m.header("In-Reply-To").as_deref() == Some(&format!("<{id}>")) {
                assert!(m.body().contains("We are open 9 to 5."), "{}", m.raw);
                break;
            }
        }
        drop(d);
    }

    // Without the CA the certificate is refused: nothing is read, nothing answered.
    let mut sink = SmtpSink::start().await;
    let o = Options {
        extra: email_config_with(tls_port, sink.port, true, "security = \"tls\""),
        ..Options::default()
    };
    let (dir, _) = Daemon::prepare(&o, &[]);
    let d = Daemon::start(dir);
    assert!(
        sink.next_within(Duration::from_secs(3)).await.is_none(),
        "mail was read over TLS with an untrusted certificate"
    );
    assert!(email_conversations(&d).await.is_empty());
}
