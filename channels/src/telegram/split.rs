//! Telegram's text limit: 4096 characters per message, counted in UTF-16 code units (an
//! emoji outside the Basic Multilingual Plane counts twice). Longer texts go out in parts.

/// The most UTF-16 code units one `sendMessage` text may hold.
pub const MAX_UNITS: usize = 4096;

/// Splits `text` into parts of at most `max_units` UTF-16 code units (see [`crate::split`]).
pub use crate::split::split_utf16;

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn short_texts_are_one_part() {
        assert_eq!(split_utf16("", MAX_UNITS), vec![String::new()]);
        assert_eq!(split_utf16("hello", MAX_UNITS), vec!["hello"]);
        let exact = "a".repeat(MAX_UNITS);
        assert_eq!(split_utf16(&exact, MAX_UNITS), vec![exact.clone()]);
    }

    #[test]
    fn long_texts_break_at_spaces_within_the_limit() {
        let text = "word ".repeat(2000); // 10,000 units
        let parts = split_utf16(&text, MAX_UNITS);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| units(p) <= MAX_UNITS));
        assert!(parts[..2].iter().all(|p| p.ends_with(' ')));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn emoji_count_twice_and_are_never_cut() {
        let text = "😀".repeat(3000); // 6000 units
        let parts = split_utf16(&text, MAX_UNITS);
        assert_eq!(parts.len(), 2);
        assert_eq!(units(&parts[0]), MAX_UNITS);
        assert_eq!(parts.concat(), text);
        let mixed = format!("a{}", "😀".repeat(2048));
        let parts = split_utf16(&mixed, MAX_UNITS);
        assert!(parts.iter().all(|p| units(p) <= MAX_UNITS));
        assert_eq!(parts.concat(), mixed);
    }
}
