//! Platforms cap a message's text (Telegram at 4096, Discord at 2000), counted in UTF-16
//! code units or characters. Longer texts go out in parts, broken after a line if one ends
//! late enough in the part, else after a word, else wherever the limit falls, and never
//! inside a character. Parts are measured in UTF-16 code units, which is never less than the
//! character count, so a part fits however the platform counts.

/// Splits `text` into parts of at most `max` UTF-16 code units. Joined in order the parts
/// give `text` back exactly. Never returns no part.
pub fn split_utf16(text: &str, max: usize) -> Vec<String> {
    let max = max.max(2);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (mut end, mut units) = (0, 0);
        let (mut last_line, mut last_space) = (None, None);
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > max {
                break;
            }
            units += c.len_utf16();
            end = i + c.len_utf8();
            // A break is only worth it in the second half: otherwise parts get tiny.
            if units > max / 2 {
                if c == '\n' {
                    last_line = Some(end);
                } else if c.is_whitespace() {
                    last_space = Some(end);
                }
            }
        }
        if end < rest.len()
            && let Some(b) = last_line.or(last_space)
        {
            end = b;
        }
        parts.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}
