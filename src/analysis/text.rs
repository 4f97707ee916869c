//! Text normalisation shared by the analysis, escalation and FAQ modules.
//!
//! Customers type in many languages, with or without accents and with curly or straight
//! apostrophes. Every matcher in the crate compares words after passing them through this
//! module, so "Café", "cafe" and "CAFÉ" are the same word everywhere.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

/// FNV-1a, for the tables of words every message is looked up in: their keys are short and
/// fixed at startup (nothing a customer writes is inserted), and SipHash would double the
/// cost of analysing a message.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A map with [`Fnv`] keys hashing: for word tables, not for keys a client chooses.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
/// A set with [`Fnv`] hashing: for word tables, not for keys a client chooses.
pub type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// A bounded memory of a per-word function that never changes its answer, kept in a
/// `thread_local!` by the analysers whose per-word work (stems, one-typo matches against a
/// lexicon) costs far more than a hash lookup. Customer messages draw on a small
/// vocabulary, so most words are found; the memory is emptied when full.
///
/// Keyed by words a client chooses, so hashed with std's randomly seeded SipHash rather than
/// [`Fnv`]: nobody can make its entries collide.
#[derive(Debug)]
pub struct WordMemo<V> {
    words: HashMap<String, V>,
    /// Tells apart the word tables whose answers it holds: a caller whose table can change
    /// (a matcher built from config) names it, and a new name empties the memory.
    owner: u64,
}

impl<V: Clone> Default for WordMemo<V> {
    fn default() -> Self {
        WordMemo {
            words: HashMap::new(),
            owner: 0,
        }
    }
}

/// Words each [`WordMemo`] holds at most.
pub const MEMO_WORDS: usize = 4096;

/// Longer words are not remembered: they are rare, and would fill the memory.
pub const MEMO_MAX_BYTES: usize = 24;

impl<V: Clone> WordMemo<V> {
    /// The answer for `word` from `owner`'s table, computed by `f` the first time.
    pub fn get(&mut self, owner: u64, word: &str, f: impl FnOnce(&str) -> V) -> V {
        if word.len() > MEMO_MAX_BYTES {
            return f(word);
        }
        if self.owner != owner {
            self.words.clear();
            self.owner = owner;
        }
        if let Some(v) = self.words.get(word) {
            return v.clone();
        }
        let v = f(word);
        if self.words.len() >= MEMO_WORDS {
            self.words.clear();
        }
        self.words.insert(word.to_string(), v.clone());
        v
    }

    /// How many words it holds.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// Lower-cases `text`, folds common Latin accents to plain ASCII letters and unifies
/// apostrophes, so that lexicons and phrase lists only need to list one spelling per word.
///
/// Characters that are not letters (digits, punctuation, emoji) are kept as they are.
pub fn normalize(text: &str) -> String {
    // Most messages are plain ASCII, where folding is lower-casing byte by byte (ASCII
    // chars are kept as they are by `push_folded`).
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    fold_chars(text)
}

/// [`normalize`] a char at a time, for text with non-ASCII chars.
fn fold_chars(text: &str) -> String {
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

/// Ends a clause for the matchers that read clause by clause (intents, explicit requests):
/// a phrase never spans a sentence, a comma or a bracket.
pub fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | ';' | ':' | '!' | '?' | '\n' | '(' | ')' | '"'
    )
}

/// Splits `text` into normalised words, the unit every matcher in the crate works on.
///
/// Words are runs of letters and digits. An apostrophe inside a word is handled the way
/// people read it: after a one-letter prefix (French elision "l'agent", "d'un", or "j'ai")
/// it separates two words, otherwise it is dropped so English contractions stay one word
/// ("don't" becomes "dont", "can't" becomes "cant").
pub fn tokens(text: &str) -> Vec<String> {
    // About one word per five bytes of text, so the list rarely grows.
    let mut words = Vec::with_capacity(text.len() / 5 + 1);
    for_each_word(text, |word| words.push(word.to_string()));
    words
}

/// Calls `f` with each word [`tokens`] would return, in order, without a string per word:
/// for the matchers that only look words up (and copy the few they keep), since every
/// customer message goes through several of them.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    // The word being read; one buffer serves every word of the text.
    let mut word = String::with_capacity(32);
    // ASCII text (most messages) is lower-cased a byte at a time as it is read, which is
    // all `normalize` would do to it.
    if text.is_ascii() {
        let chars = text.bytes().map(|b| char::from(b.to_ascii_lowercase()));
        read_words(chars, &mut word, &mut f);
    } else {
        read_words(normalize(text).chars(), &mut word, &mut f);
    }
}

/// The words of normalised `chars`, through `word`, to `f`.
fn read_words(chars: impl Iterator<Item = char>, word: &mut String, f: &mut impl FnMut(&str)) {
    let mut chars = chars.peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        let next_is_word = chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c == '\'' && !word.is_empty() && next_is_word {
            // "qu'" is the only two-letter elided French word worth treating like "l'".
            let elided = word.chars().nth(1).is_none() || word == "qu";
            if elided {
                f(word);
                word.clear();
            }
            continue;
        }
        if !word.is_empty() {
            f(word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(word);
    }
}

/// Endings stripped by [`stem`], longest first within each length so the longest match wins.
/// English, Spanish, French, German, Portuguese and Italian endings in one list: one stemmer
/// serves every language, so "cancel", "cancelled", "cancellation", "cancelar" and
/// "cancellare" meet at "cancel".
#[rustfmt::skip]
const SUFFIXES: &[&str] = &[
    "izations", "ization", "aciones", "amentos", "imentos", "iciones", "azioni", "azione",
    "amento", "imento", "amenti", "ements", "ations", "itions", "acion", "icion", "ation",
    "ition", "ement", "ments", "uciones", "ciones", "acoes", "ungen", "ating", "ation",
    "ments", "aron", "ieron", "ment", "ings", "ness", "able", "ible", "edly", "ando", "endo",
    "iendo", "ados", "adas", "idos", "idas", "acao", "coes", "cion", "ated", "iamo", "eront",
    "erons", "aient", "ing", "ies", "ied", "ers", "ion", "ure", "ate", "ado", "ada", "ido",
    "ida", "ung", "ern", "ten", "ato", "ata", "ati", "ito", "ita", "iti", "ite", "are",
    "ere", "ire", "ano", "ono", "ees", "ent", "ons", "ait", "era", "erez", "erai", "cao",
    "ed", "es", "er", "ly", "al", "ar", "ir", "an", "en", "as", "os", "am", "em", "ez",
    "ee", "et", "ao", "s", "e", "a", "o", "i", "y",
];

/// [`SUFFIXES`] for lookup by the word's tail.
static SUFFIX_SET: LazyLock<FastSet<&'static str>> =
    LazyLock::new(|| SUFFIXES.iter().copied().collect());
/// Longest entry of [`SUFFIXES`].
const MAX_SUFFIX_BYTES: usize = 8;

/// Shortest stem [`stem`] leaves; shorter words are kept whole ("order" stays "order").
const MIN_STEM_CHARS: usize = 4;

/// A light stem of a normalised word (see [`tokens`]) so that inflected forms compare equal:
/// "refunds"/"refunded" become "refund", "deletion"/"deleted" become "delet". It strips the
/// longest ending that leaves at least four letters, then a doubled final consonant
/// ("cancell" becomes "cancel"); twice after a plural, so "tickets" and "ticket" meet. Crude
/// next to a per-language stemmer, but the same for all six languages and fast; matchers that
/// need exact words still have them.
pub fn stem(word: &str) -> String {
    let mut out = word.to_string();
    // A second round after a plural ending, so a plural meets its singular even when the
    // singular has an ending of its own ("tickets", "ticket").
    for _ in 0..2 {
        let chars = out.chars().count();
        // Suffixes are ASCII, so the longest one that fits is found by byte length.
        let longest = chars.saturating_sub(MIN_STEM_CHARS).min(MAX_SUFFIX_BYTES);
        let best = (1..=longest).rev().find_map(|len| {
            let at = out.len().checked_sub(len)?;
            let tail = out.get(at..)?;
            SUFFIX_SET.contains(tail).then_some(len)
        });
        let Some(len) = best else { break };
        let suffix_ends_in_s = out.ends_with('s');
        out.truncate(out.len() - len);
        if !suffix_ends_in_s {
            break;
        }
    }
    let bytes = out.as_bytes();
    if let [.., a, b] = bytes
        && a == b
        && a.is_ascii_alphabetic()
        && !matches!(a, b'a' | b'e' | b'i' | b'o' | b'u')
        && out.len() > MIN_STEM_CHARS
    {
        out.pop();
    }
    out
}

/// Whether `a` becomes `b` with at most one insertion, deletion, substitution or swap of two
/// neighbouring characters (optimal string alignment distance <= 1). The typo test of every
/// matcher in the crate; it does not allocate for ASCII text, which normalised words mostly
/// are, and is several times faster than computing the distance.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        one_edit(a.as_bytes(), b.as_bytes())
    } else {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        one_edit(&a, &b)
    }
}

fn one_edit<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let common = short
        .iter()
        .zip(long.iter())
        .take_while(|(x, y)| x == y)
        .count();
    if common == short.len() {
        // Equal, or `long` has one more character at the end.
        return true;
    }
    if short.len() == long.len() {
        let rest = common + 1;
        // One substitution, or one swap of neighbours.
        short.get(rest..) == long.get(rest..)
            || (short.get(common) == long.get(rest)
                && short.get(rest) == long.get(common)
                && short.get(rest + 1..) == long.get(rest + 1..))
    } else {
        // One character more in `long`.
        short.get(common..) == long.get(common + 1..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_memo_remembers_per_owner_and_stays_bounded() {
        let mut memo: WordMemo<usize> = WordMemo::default();
        let mut calls = 0;
        let mut len = |w: &str| {
            calls += 1;
            w.len()
        };
        assert_eq!(memo.get(1, "refund", &mut len), 6);
        assert_eq!(memo.get(1, "refund", &mut len), 6);
        assert_eq!(calls, 1, "the second answer came from memory");
        // Another owner's table: the memory is emptied, the word computed again.
        assert_eq!(memo.get(2, "refund", |_| 99), 99);
        assert_eq!(memo.len(), 1);
        let long = "x".repeat(MEMO_MAX_BYTES + 1);
        assert_eq!(memo.get(2, &long, |w| w.len()), MEMO_MAX_BYTES + 1);
        assert_eq!(memo.len(), 1, "long words are not kept");
        for n in 0..MEMO_WORDS + 10 {
            memo.get(2, &format!("w{n}"), |w| w.len());
            assert!(memo.len() <= MEMO_WORDS);
        }
        assert!(!memo.is_empty());
    }

    /// The character-by-character reading `tokens` replaced, kept as its reference.
    fn tokens_by_char(text: &str) -> Vec<String> {
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
                if current.chars().count() == 1 || current == "qu" {
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

    #[test]
    fn ascii_text_normalizes_as_the_char_by_char_folding() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        for text in [
            every_ascii.as_str(),
            "Where Is My ORDER #A-12? `quoted` don't",
            "",
        ] {
            assert_eq!(normalize(text), fold_chars(text), "{text:?}");
        }
    }

    #[test]
    fn tokens_read_as_the_character_by_character_reference() {
        let samples = [
            "",
            "'",
            "''a''",
            "Don't you dare, l'agent d'un qu'il j'ai!",
            "a'b'c'd qu'qu'x rock'n'roll o'clock",
            "Ça coûte 12,50€ — naïve café's ÆSIR İstanbul Straße",
            "trailing apostrophe' and 'leading and mid'dle'",
            "emoji 🙂 between 日本語 words, tabs\tand\nlines",
            "x",
            "123 abc456 7'8",
        ];
        for text in samples {
            assert_eq!(tokens(text), tokens_by_char(text), "{text:?}");
        }
        assert_eq!(tokens("Don't l'agent"), ["dont", "l", "agent"]);
    }

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
    fn stems_meet_across_inflections_and_languages() {
        let same = |words: &[&str]| {
            let stems: Vec<String> = words.iter().map(|w| stem(w)).collect();
            assert!(
                stems.windows(2).all(|p| p[0] == p[1]),
                "{words:?} -> {stems:?}"
            );
        };
        same(&[
            "cancel",
            "cancels",
            "cancelled",
            "canceling",
            "cancellation",
            "cancelar",
        ]);
        same(&["cancel", "cancellare", "cancelamento", "cancelation"]);
        same(&["refund", "refunds", "refunded", "refunding"]);
        same(&["delete", "deleted", "deleting", "deletion", "deletar"]);
        same(&["order", "orders", "ordered", "ordering"]);
        same(&["account", "accounts"]);
        same(&["update", "updated", "updating"]);
        same(&["modify", "modified", "modifies"]);
        same(&["reimburse", "reimbursement", "reimbursed", "reimbursing"]);
        same(&["annuler", "annulation", "annulez"]);
        same(&["stornieren", "stornierung"]);
        same(&["pedido", "pedidos"]);
        same(&["policy", "policies"]);
        same(&["ticket", "tickets"]);
        same(&["detail", "details"]);
    }

    #[test]
    fn one_edit_agrees_with_osa_distance() {
        let words = [
            "cancel", "cacnel", "cancle", "canel", "cancell", "xancel", "cancer", "refund",
            "refnud", "rfund", "refundd", "", "a", "ab", "ba", "abc", "acb", "bca", "été", "ete",
            "éte", "agent", "agnet", "aegnt", "with", "wiht", "to", "tto",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    within_one_edit(a, b),
                    strsim::osa_distance(a, b) <= 1,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn suffixes_are_ascii_and_short() {
        for suffix in SUFFIXES {
            assert!(
                suffix.is_ascii() && suffix.len() <= MAX_SUFFIX_BYTES,
                "{suffix}"
            );
        }
    }

    #[test]
    fn stems_keep_short_words_whole() {
        assert_eq!(stem("order"), "order");
        assert_eq!(stem("edit"), "edit");
        assert_eq!(stem("is"), "is");
        assert_eq!(stem(""), "");
        assert_eq!(stem("cancellations"), "cancel");
        assert_eq!(stem("été"), "été");
    }

    #[test]
    fn tokens_fold_accents() {
        assert_eq!(
            tokens("Hablar con AGENTE, señor"),
            vec!["hablar", "con", "agente", "senor"]
        );
    }
}
