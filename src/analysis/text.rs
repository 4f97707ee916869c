//! Text normalisation shared by the analysis, escalation and FAQ modules.
//!
//! Customers type in many languages, with or without accents and with curly or straight
//! apostrophes. Every matcher in the crate compares words after passing them through this
//! module, so "Café", "cafe" and "CAFÉ" are the same word everywhere.

/// Lower-cases `text`, folds common Latin accents to plain ASCII letters and unifies
/// apostrophes, so that lexicons and phrase lists only need to list one spelling per word.
///
/// Characters that are not letters (digits, punctuation, emoji) are kept as they are.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for upper in text.chars() {
        // `to_lowercase` can yield several chars (e.g. 'İ' becomes 'i' plus a combining dot),
        // so each one goes through the folding table.
        for c in upper.to_lowercase() {
            push_folded(&mut out, c);
        }
    }
    out
}

/// Pushes the folded form of one lower-case char.
fn push_folded(out: &mut String, c: char) {
    // Plain ASCII is by far the common case.
    if c.is_ascii() {
        out.push(c);
        return;
    }
    let folded: &str = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ß' => "ss",
        'ś' | 'š' | 'ş' => "s",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        // Typographic apostrophes and primes all become the ASCII apostrophe.
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '`' | '\u{00B4}' => "'",
        // Combining accents (left over from decomposed input or from `to_lowercase`) vanish.
        '\u{0300}'..='\u{036F}' => "",
        _ => {
            out.push(c);
            return;
        }
    };
    out.push_str(folded);
}

/// Splits `text` into normalised words, the unit every matcher in the crate works on.
///
/// Words are runs of letters and digits. An apostrophe inside a word is handled the way
/// people read it: after a one-letter prefix (French elision "l'agent", "d'un", or "j'ai")
/// it separates two words, otherwise it is dropped so English contractions stay one word
/// ("don't" becomes "dont", "can't" becomes "cant").
pub fn tokens(text: &str) -> Vec<String> {
    let normalized = normalize(text);
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = normalized.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            current.push(c);
            continue;
        }
        let next_is_word = chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c == '\'' && !current.is_empty() && next_is_word {
            // "qu'" is the only two-letter elided French word worth treating like "l'".
            let elided = current.chars().count() == 1 || current == "qu";
            if elided {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_and_folds_accents() {
        assert_eq!(normalize("Café CRÈME"), "cafe creme");
        assert_eq!(normalize("Mañana"), "manana");
        assert_eq!(normalize("Über Straße"), "uber strasse");
        assert_eq!(normalize("Français, œuvre"), "francais, oeuvre");
        assert_eq!(normalize("ATENÇÃO"), "atencao");
    }

    #[test]
    fn normalize_unifies_apostrophes() {
        assert_eq!(normalize("don\u{2019}t"), "don't");
        assert_eq!(normalize("l\u{2018}agent"), "l'agent");
    }

    #[test]
    fn normalize_strips_combining_marks() {
        // "e" followed by a combining acute accent, as some keyboards send it.
        assert_eq!(normalize("e\u{0301}te\u{0301}"), "ete");
        assert_eq!(normalize("İstanbul"), "istanbul");
    }

    #[test]
    fn normalize_keeps_non_letters() {
        assert_eq!(normalize("Order #A-123!"), "order #a-123!");
    }

    #[test]
    fn tokens_split_on_punctuation_and_space() {
        assert_eq!(
            tokens("Hello, World! Order #12345."),
            vec!["hello", "world", "order", "12345"]
        );
        assert!(tokens("  ...  ").is_empty());
        assert!(tokens("").is_empty());
    }

    #[test]
    fn tokens_handle_contractions_and_elision() {
        assert_eq!(tokens("I don’t want"), vec!["i", "dont", "want"]);
        assert_eq!(
            tokens("parler à l'agent"),
            vec!["parler", "a", "l", "agent"]
        );
        assert_eq!(tokens("qu'il"), vec!["qu", "il"]);
        // A trailing or leading apostrophe is just punctuation.
        assert_eq!(tokens("'quoted' words'"), vec!["quoted", "words"]);
    }

    #[test]
    fn tokens_fold_accents() {
        assert_eq!(
            tokens("Hablar con AGENTE, señor"),
            vec!["hablar", "con", "agente", "senor"]
        );
    }
}
