//! Discord's text limit: a message's `content` holds at most 2000 characters. Longer texts go
//! out in parts, broken after a line if one ends late enough in the part, else after a word,
//! else wherever the limit falls, and never inside a character. Parts are measured in UTF-16
//! code units, which is never less than the character count, so every part fits however
//! Discord counts.

/// The most characters one message's `content` may hold.
pub const MAX_CHARS: usize = 2000;

/// Splits `text` into parts of at most `max` UTF-16 code units (see [`crate::split`]).
pub use crate::split::split_utf16 as split;

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_texts_are_one_part() {
        assert_eq!(split("", MAX_CHARS), vec![String::new()]);
        assert_eq!(split("hello", MAX_CHARS), vec!["hello".to_string()]);
        let exact = "a".repeat(MAX_CHARS);
        assert_eq!(split(&exact, MAX_CHARS), vec![exact.clone()]);
    }

    #[test]
    fn long_texts_break_after_lines_then_words() {
        let line = format!("{}\n", "x".repeat(1500));
        let text = format!("{line}{}", "y ".repeat(400));
        let parts = split(&text, MAX_CHARS);
        assert_eq!(parts[0], line, "the break falls after the line");
        assert_eq!(parts.concat(), text);
        let words = "word ".repeat(1000);
        let parts = split(&words, MAX_CHARS);
        assert!(parts.len() >= 3);
        for p in &parts[..parts.len() - 1] {
            assert!(units(p) <= MAX_CHARS);
            assert!(
                p.ends_with(' '),
                "a part ends after a word: {:?}",
                &p[p.len() - 8..]
            );
        }
        assert_eq!(parts.concat(), words);
    }

    #[test]
    fn multi_byte_characters_are_never_cut() {
        // No whitespace at all: the limit decides, on a character boundary.
        let text = "é😀中".repeat(700);
        let parts = split(&text, MAX_CHARS);
        assert!(parts.len() >= 2);
        for p in &parts {
            assert!(units(p) <= MAX_CHARS);
        }
        assert_eq!(parts.concat(), text);
        // An emoji that would straddle the limit goes whole to the next part.
        let text = format!("{}😀", "a".repeat(MAX_CHARS - 1));
        let parts = split(&text, MAX_CHARS);
        assert_eq!(parts, vec!["a".repeat(MAX_CHARS - 1), "😀".to_string()]);
    }
}
