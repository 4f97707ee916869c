//! What is new in a reply: quoted earlier messages and signatures are cut from the text the
//! transcript shows (the raw message stays in the mailbox).
//!
//! Rules, in order: the reply is cut at the attribution line of a quote ("On ... wrote:",
//! also wrapped over two lines and in the six supported languages), at an Outlook header
//! block ("-----Original Message-----", or "From:" followed by "Sent:"/"Date:"), or at a
//! signature separator ("-- ") or a "Sent from my ..." footer; lines starting with `>` are
//! dropped wherever they are, which keeps answers written between quoted lines. When nothing
//! would be left the whole text is kept: an empty message helps nobody.

/// Attribution endings of quote headers, lowercased, in the supported languages.
const WROTE: &[&str] = &[
    "wrote:",
    "a écrit :",
    "a écrit:",
    "schrieb:",
    "escribió:",
    "ha scritto:",
    "escreveu:",
];

/// Footers mobile clients add, lowercased prefixes.
const FOOTERS: &[&str] = &[
    "sent from my ",
    "get outlook for ",
    "envoyé de mon ",
    "von meinem ",
    "enviado desde mi ",
    "inviato da ",
    "enviado do meu ",
];

/// The new part of a message's text.
pub fn new_text(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.lines().collect();
    let cut = cut_index(&lines);
    let kept: Vec<&str> = lines[..cut]
        .iter()
        .copied()
        .filter(|l| !l.trim_start().starts_with('>'))
        .collect();
    let result = tidy(&kept);
    if result.is_empty() {
        tidy(&lines)
    } else {
        result
    }
}

/// Index of the first line that belongs to a quote header, a signature or a footer.
fn cut_index(lines: &[&str]) -> usize {
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let lower = t.to_lowercase();
        if t == "--" || line.trim_end_matches(['\r']) == "-- " {
            return i;
        }
        if lower.contains("original message") && t.starts_with("---") {
            return i;
        }
        if t.starts_with("________________") {
            return i;
        }
        if FOOTERS.iter().any(|f| lower.starts_with(f)) && lower.len() < 80 {
            return i;
        }
        if is_attribution(&lower) {
            return i;
        }
        // "On Mon, 1 Jan 2024 at 10:00, Support <support@" / "example.com> wrote:"
        if let Some(next) = lines.get(i + 1)
            && starts_attribution(&lower)
            && is_attribution(&format!("{lower} {}", next.trim().to_lowercase()))
        {
            return i;
        }
        if lower.starts_with("from:")
            && lines.get(i + 1).is_some_and(|n| {
                let n = n.trim().to_lowercase();
                n.starts_with("sent:") || n.starts_with("date:") || n.starts_with("to:")
            })
        {
            return i;
        }
    }
    lines.len()
}

fn starts_attribution(lower: &str) -> bool {
    ["on ", "le ", "am ", "el ", "il ", "em "]
        .iter()
        .any(|p| lower.starts_with(p))
}

fn is_attribution(lower: &str) -> bool {
    starts_attribution(lower)
        && (WROTE.iter().any(|w| lower.ends_with(w))
            // German puts the verb before the name: "Am ... schrieb Name <addr>:".
            || (lower.starts_with("am ") && lower.contains(" schrieb ") && lower.ends_with(':')))
}

/// Joins lines, trims the ends and keeps at most one blank line in a row.
fn tidy(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in lines {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::new_text;

    #[test]
    fn a_gmail_style_reply_keeps_only_the_new_text() {
        let text = "Yes, it is order 12345.\r\n\r\nJane\r\n\r\nOn Mon, 1 Jan 2024 at 10:00, \
            Support <support@\r\nexample.com> wrote:\r\n> Which order is it?\r\n>\r\n> -- \r\n> Support\r\n";
        assert_eq!(new_text(text), "Yes, it is order 12345.\n\nJane");
    }

    #[test]
    fn signatures_and_mobile_footers_are_cut() {
        assert_eq!(
            new_text("Thanks a lot\n\n-- \nJane Doe\nACME Corp\n+1 555 1234"),
            "Thanks a lot"
        );
        assert_eq!(
            new_text("It works now\n\nSent from my iPhone"),
            "It works now"
        );
    }

    #[test]
    fn outlook_blocks_and_other_languages_are_cut() {
        let outlook =
            "Still broken.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nold";
        assert_eq!(new_text(outlook), "Still broken.");
        let outlook2 = "Still broken.\n\nFrom: Support <s@x.test>\nSent: Monday\nTo: me\n\nold";
        assert_eq!(new_text(outlook2), "Still broken.");
        let fr = "Merci !\n\nLe lun. 1 janv. 2024 à 10:00, Support <s@x.test> a écrit :\n> vieux";
        assert_eq!(new_text(fr), "Merci !");
        let de = "Danke\nAm 01.01.2024 um 10:00 schrieb Support <s@x.test>:\n> alt";
        assert_eq!(new_text(de), "Danke");
    }

    #[test]
    fn inline_answers_between_quotes_are_kept() {
        let text = "> Which order?\n12345\n> And the date?\nLast Monday";
        assert_eq!(new_text(text), "12345\nLast Monday");
    }

    #[test]
    fn a_message_that_is_only_a_quote_is_kept_whole() {
        assert_eq!(new_text("> only quoted"), "> only quoted");
        assert_eq!(new_text(""), "");
    }
}
