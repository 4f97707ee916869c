//! HTML to readable text, for mail that has no text/plain part.
//!
//! Mail clients put each line in its own `<div>` or `<p>`, lists in `<li>`, and the quoted
//! earlier message in a `<blockquote>`. Block elements become line breaks and blockquoted
//! lines get a `> ` prefix, so the quote stripper treats them like plain-text quotes.
//! Scripts, styles and the head are dropped; common entities are decoded.

/// Readable text from an HTML body. Never fails: unknown markup is dropped.
pub fn to_text(html: &str) -> String {
    let mut out = Lines::default();
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_until.is_none() {
                out.text(rest);
            }
            break;
        };
        if skip_until.is_none() {
            out.text(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "style" | "script" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "style" => "style",
                    "script" => "script",
                    "head" => "head",
                    _ => "title",
                });
            }
            "br" => out.newline(true),
            "blockquote" => {
                out.newline(false);
                if closing {
                    out.depth = out.depth.saturating_sub(1);
                } else {
                    out.depth = (out.depth + 1).min(16);
                }
            }
            "li" if !closing => {
                out.newline(false);
                out.text("- ");
            }
            "p" | "div" | "tr" | "li" | "ul" | "ol" | "table" | "h1" | "h2" | "h3" | "h4"
            | "h5" | "h6" | "hr" | "pre" | "section" | "article" | "header" | "footer" => {
                out.newline(false)
            }
            "td" | "th" if closing => out.text(" "),
            _ => {}
        }
    }
    out.finish()
}

/// Builds lines, collapsing whitespace as a browser would and prefixing quoted lines.
#[derive(Default)]
struct Lines {
    done: Vec<String>,
    current: String,
    depth: usize,
    /// The current line's prefix was already written.
    started: bool,
}

impl Lines {
    fn text(&mut self, raw: &str) {
        let decoded = decode_entities(raw);
        for ch in decoded.chars() {
            if ch.is_whitespace() && ch != '\u{a0}' {
                if !self.current.is_empty() && !self.current.ends_with(' ') && self.started {
                    self.current.push(' ');
                }
                continue;
            }
            if !self.started {
                for _ in 0..self.depth {
                    self.current.push_str("> ");
                }
                self.started = true;
            }
            self.current.push(if ch == '\u{a0}' { ' ' } else { ch });
        }
    }

    /// Ends the current line; `force` keeps an empty line (a `<br>` on its own).
    fn newline(&mut self, force: bool) {
        if self.started || force {
            let line = std::mem::take(&mut self.current);
            self.done.push(line.trim_end().to_string());
        }
        self.current.clear();
        self.started = false;
    }

    fn finish(mut self) -> String {
        self.newline(false);
        let mut out = String::new();
        let mut blank = 0;
        for line in &self.done {
            if line.trim().is_empty() {
                blank += 1;
                if blank > 1 {
                    continue;
                }
            } else {
                blank = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim().to_string()
    }
}

/// Decodes the named entities mail clients use and every numeric one.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..].find(';').map(|i| i + 1).filter(|&i| i <= 10);
        let decoded = end.and_then(|i| entity(&rest[1..i]));
        match (end, decoded) {
            (Some(i), Some(c)) => {
                out.push(c);
                rest = &rest[i + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        "ntilde" => 'ñ',
        "ccedil" => 'ç',
        "euro" => '€',
        "copy" => '©',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "rsquo" => '\u{2019}',
        "lsquo" => '\u{2018}',
        "rdquo" => '\u{201d}',
        "ldquo" => '\u{201c}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn blocks_become_lines_and_entities_are_decoded() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
            <div>Hello&nbsp;there,</div><div><br></div><p>My order <b>12345</b> is late &amp; \
            I&#39;m   waiting.</p><ul><li>one</li><li>two</li></ul><script>alert(1)</script>\
            <!-- a comment --></body></html>";
        let text = to_text(html);
        assert_eq!(
            text,
            "Hello there,\n\nMy order 12345 is late & I'm waiting.\n- one\n- two"
        );
    }

    #[test]
    fn blockquotes_are_marked_as_quotes() {
        let html = "<div>Thanks!</div><div class=\"gmail_quote\">On Mon someone wrote:\
            <blockquote><div>old text</div><blockquote>older</blockquote></blockquote></div>";
        let text = to_text(html);
        assert_eq!(
            text,
            "Thanks!\nOn Mon someone wrote:\n> old text\n> > older"
        );
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for html in [
            "<",
            "<div",
            "&#xFFFFFFFF;",
            "&",
            "a<b>c</",
            "<!-- never closed",
            "&#;",
        ] {
            let _ = to_text(html);
        }
        assert_eq!(to_text("caf&eacute; &unknown; &#233;"), "café &unknown; é");
    }
}
