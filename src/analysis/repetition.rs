//! Is the customer asking the same thing again? A customer who repeats themselves is not
//! being helped, and the repetition trigger hands them over.
//!
//! Two lexical measures are combined:
//!
//! - **word overlap**: the messages' content words, stemmed ([`text::stem`]), compared as
//!   sets (so word order does not matter), a word of four letters or more matching with one
//!   typo; question words ("where", "when", "dónde") count half, small words ("is", "my",
//!   "please", "hi", "thanks") not at all;
//! - **character trigrams** of the content words, which forgive spelling and glued words.
//!
//! "where is my order", "where's my order??" and "my order, where is it" score 1.0 against
//! each other; "where is my order" against "where is my refund" scores about 0.3; greetings
//! and thanks have no content words and never repeat anything.
//!
//! Lexical measures catch repeats, reorderings and misspellings. They cannot catch a true
//! paraphrase that shares no words ("where's my parcel" / "has it shipped yet?"), and they do
//! not try to: on the Bitext sample, pairs of utterances of the same intent score higher than
//! pairs of different intents on average, but many same-intent pairs are paraphrases with
//! little vocabulary in common (see `bitext_separation` for the figures).

use std::sync::LazyLock;

use crate::analysis::text;

/// The earlier message the current one repeats, and how alike they are (0..=1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Repeat {
    /// Index into the `earlier` slice.
    pub index: usize,
    /// Combined similarity, 0..=1.
    pub similarity: f32,
}

/// Similarity at and above which [`find_repeat`] reports a repeat.
pub const DEFAULT_THRESHOLD: f32 = 0.6;

/// Weight of word overlap in the combined similarity; trigrams have the rest.
const WORD_WEIGHT: f32 = 0.7;
/// Weight of a question word.
const QUESTION_WEIGHT: f32 = 0.5;
/// Credit for a word matched through a typo rather than exactly.
const TYPO_CREDIT: f32 = 0.9;
/// Shortest words compared with a typo.
const TYPO_MIN_CHARS: usize = 4;
/// Least content weight a message needs to take part: one real word.
const MIN_CONTENT: f32 = 1.0;

/// Words that carry no content, in the six languages: articles, pronouns, auxiliaries,
/// politeness, greetings.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    // English.
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "am", "i", "im", "me", "my",
    "mine", "you", "your", "u", "ur", "we", "our", "us", "it", "its", "this", "that", "these",
    "those", "to", "of", "in", "on", "at", "for", "with", "from", "by", "and", "or", "so",
    "do", "does", "did", "have", "has", "had", "can", "could", "would", "will", "should",
    "please", "pls", "plz", "thanks", "thank", "thx", "hi", "hello", "hey", "ok", "okay",
    "yes", "no", "yeah", "yep", "there", "still", "just", "again", "any", "some", "about",
    "now", "then", "help", "need", "want", "know", "tell", "get", "got", "let", "he", "she",
    "they", "them", "their", "up", "out", "if", "but", "not", "dont", "cant", "very", "really",
    "already", "yet", "oh", "well", "sorry", "bye", "good", "morning", "afternoon", "evening",
    // Spanish.
    "el", "la", "los", "las", "un", "una", "de", "del", "al", "y", "o", "en", "es", "esta",
    "mi", "mis", "tu", "su", "que", "por", "para", "con", "me", "se", "lo", "le", "hola",
    "gracias", "favor", "si", "ya", "quiero", "necesito", "puedo", "pueden",
    // French.
    "le", "les", "une", "du", "des", "et", "est", "mon", "ma", "mes", "je", "j", "vous",
    "tu", "il", "elle", "ce", "c", "qu", "l", "d", "n", "ne", "pas", "pour", "avec", "sur",
    "bonjour", "merci", "oui", "non", "svp", "plait", "veux", "peux",
    // German.
    "der", "die", "das", "den", "dem", "ein", "eine", "einen", "und", "ist", "ich", "mein",
    "meine", "meinen", "sie", "wir", "zu", "mit", "fur", "auf", "von", "bitte", "danke",
    "hallo", "ja", "nein", "nicht", "noch", "schon", "habe", "hat",
    // Portuguese.
    "o", "os", "as", "um", "uma", "do", "da", "meu", "minha", "voce", "eu", "com", "ola",
    "obrigado", "obrigada", "sim", "nao",
    // Italian.
    "gli", "di", "della", "mio", "mia", "che", "ciao", "grazie", "per", "sono", "ho",
];

/// Question words: they tell "where is my order" from "cancel my order", but are not the
/// topic, so they count half.
#[rustfmt::skip]
/// [`STOPWORDS`] for lookup: every word of every customer message is checked against it.
static STOPWORD_SET: LazyLock<text::FastSet<&'static str>> =
    LazyLock::new(|| STOPWORDS.iter().copied().collect());

const QUESTION_WORDS: &[&str] = &[
    "where", "when", "why", "how", "what", "which", "who", "donde", "cuando", "por", "como", "que",
    "ou", "quand", "pourquoi", "comment", "wo", "wann", "warum", "wie", "was", "onde", "quando",
    "porque", "dove", "perche", "come", "cosa",
];

/// English contractions of question words that `text::tokens` glues: "where's", "what's".
const GLUED: &[(&str, &str)] = &[
    ("wheres", "where"),
    ("whats", "what"),
    ("hows", "how"),
    ("whens", "when"),
    ("whys", "why"),
    ("whos", "who"),
];

/// A message reduced to what the comparison needs. Worth keeping beside a message that will
/// be compared again: building it is most of the cost of a comparison.
#[derive(Debug, Clone)]
pub struct Features {
    /// One per distinct stem.
    words: Vec<Word>,
    /// Character trigrams of the content words, encoded and sorted, distinct.
    trigrams: Vec<u64>,
}

/// A content word of a message.
#[derive(Debug, Clone)]
struct Word {
    raw: String,
    stem: String,
    weight: f32,
    /// Lengths in characters: two words further apart than one character cannot be one
    /// typo apart, which spares most comparisons.
    raw_chars: usize,
    stem_chars: usize,
}

impl Word {
    fn new(raw: String, stem: String, weight: f32) -> Word {
        Word {
            raw_chars: raw.chars().count(),
            stem_chars: stem.chars().count(),
            raw,
            stem,
            weight,
        }
    }

    /// One typo apart, as written or as stems; both words of four letters or more.
    fn typo_of(&self, other: &Word) -> bool {
        if self.raw_chars < TYPO_MIN_CHARS || other.raw_chars < TYPO_MIN_CHARS {
            return false;
        }
        (self.raw_chars.abs_diff(other.raw_chars) <= 1
            && text::within_one_edit(&self.raw, &other.raw))
            || (self.stem_chars.abs_diff(other.stem_chars) <= 1
                && text::within_one_edit(&self.stem, &other.stem))
    }
}

impl Features {
    /// `None` for messages without content ("hi", "ok thanks", "?").
    pub fn of(message: &str) -> Option<Features> {
        let mut words: Vec<Word> = Vec::new();
        text::for_each_word(message, |token| {
            let token = GLUED
                .iter()
                .find(|(glued, _)| *glued == token)
                .map_or(token, |(_, word)| *word);
            if STOPWORD_SET.contains(token) || token.chars().all(|c| c.is_ascii_digit()) {
                return;
            }
            let weight = if QUESTION_WORDS.contains(&token) {
                QUESTION_WEIGHT
            } else {
                1.0
            };
            let stem = text::stem(token);
            if !words.iter().any(|w| w.stem == stem) {
                words.push(Word::new(token.to_string(), stem, weight));
            }
        });
        let content: f32 = words.iter().map(|w| w.weight).sum();
        if content < MIN_CONTENT {
            return None;
        }
        let mut trigrams = Vec::with_capacity(words.iter().map(|w| w.raw_chars + 2).sum());
        for word in words.iter().filter(|w| w.weight >= 1.0) {
            // The word padded with a space on each side, three characters at a time.
            let mut window = [' ', ' ', ' '];
            for c in word.raw.chars().chain(std::iter::once(' ')) {
                window = [window[1], window[2], c];
                if window[1] == ' ' {
                    // Only the leading pad so far: no whole trigram yet.
                    continue;
                }
                let code = (u64::from(u32::from(window[0])) << 42)
                    | (u64::from(u32::from(window[1])) << 21)
                    | u64::from(u32::from(window[2]));
                trigrams.push(code);
            }
        }
        trigrams.sort_unstable();
        trigrams.dedup();
        Some(Features { words, trigrams })
    }

    /// Combined similarity in 0..=1.
    pub fn similarity(&self, other: &Features) -> f32 {
        let words = weighted_overlap(&self.words, &other.words);
        let trigrams = dice(&self.trigrams, &other.trigrams);
        (WORD_WEIGHT * words + (1.0 - WORD_WEIGHT) * trigrams).clamp(0.0, 1.0)
    }
}

/// Weighted Jaccard overlap of two word sets: matched weight over the weight of the union.
/// A word matches by stem, or with one typo for words of four letters or more.
fn weighted_overlap(a: &[Word], b: &[Word]) -> f32 {
    let mut used = vec![false; b.len()];
    let mut matched = 0.0f32;
    let mut matched_weight_b = 0.0f32;
    for word in a {
        let exact = b
            .iter()
            .enumerate()
            .position(|(i, other)| !used[i] && other.stem == word.stem);
        let found = exact.map(|i| (i, 1.0)).or_else(|| {
            b.iter()
                .enumerate()
                .position(|(i, other)| !used[i] && word.typo_of(other))
                .map(|i| (i, TYPO_CREDIT))
        });
        if let Some((i, credit)) = found {
            used[i] = true;
            let w = word.weight.min(b[i].weight);
            matched += w * credit;
            matched_weight_b += b[i].weight;
        }
    }
    let total_a: f32 = a.iter().map(|w| w.weight).sum();
    let total_b: f32 = b.iter().map(|w| w.weight).sum();
    // Union = everything in a plus what of b was not matched.
    let union = total_a + (total_b - matched_weight_b);
    if union <= 0.0 {
        0.0
    } else {
        (matched / union).clamp(0.0, 1.0)
    }
}

/// Sorensen-Dice coefficient of two sorted, distinct lists.
fn dice(a: &[u64], b: &[u64]) -> f32 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * common as f32 / (a.len() + b.len()) as f32
}

/// How alike two messages are, 0..=1; 0 when either has no content words. For comparing a
/// pair directly, such as two bot answers.
pub fn similarity(a: &str, b: &str) -> f32 {
    match (Features::of(a), Features::of(b)) {
        (Some(a), Some(b)) => a.similarity(&b),
        _ => 0.0,
    }
}

/// The earlier message that `current` repeats most closely, if any reaches
/// [`DEFAULT_THRESHOLD`]. Messages without content words ("hi", "ok", "thanks") never repeat
/// anything.
pub fn find_repeat(current: &str, earlier: &[&str]) -> Option<Repeat> {
    find_repeat_above(current, earlier, DEFAULT_THRESHOLD)
}

/// Like [`find_repeat`] with the threshold from config.
pub fn find_repeat_above(current: &str, earlier: &[&str], threshold: f32) -> Option<Repeat> {
    let current = Features::of(current)?;
    earlier
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            let other = Features::of(text)?;
            let similarity = current.similarity(&other);
            (similarity >= threshold).then_some(Repeat { index, similarity })
        })
        // The most similar; the latest among equals.
        .max_by(|a, b| {
            a.similarity
                .total_cmp(&b.similarity)
                .then(a.index.cmp(&b.index))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trigrams as first written: each content word padded with a space on each side,
    /// every window of three characters.
    fn trigrams_by_padding(f: &Features) -> Vec<u64> {
        let mut out = Vec::new();
        for w in f.words.iter().filter(|w| w.weight >= 1.0) {
            let padded: Vec<char> = std::iter::once(' ')
                .chain(w.raw.chars())
                .chain(std::iter::once(' '))
                .collect();
            for t in padded.windows(3) {
                out.push(
                    (u64::from(u32::from(t[0])) << 42)
                        | (u64::from(u32::from(t[1])) << 21)
                        | u64::from(u32::from(t[2])),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn trigrams_are_those_of_the_padded_words() {
        for text in [
            "where is my order",
            "x y refund",
            "dónde está mi reembolso, señor",
            "Bestellung zurückgeben bitte",
            "a b c d e order 12 z",
        ] {
            let f = Features::of(text).expect("content");
            assert_eq!(f.trigrams, trigrams_by_padding(&f), "{text}");
        }
    }

    #[test]
    fn rephrased_reordered_and_misspelt_repeats() {
        let base = "where is my order";
        for again in [
            "where's my order??",
            "my order, where is it",
            "WHERE IS MY ORDER",
            "where is my ordr",
            "where is my order please",
            "hello, where is my order?",
        ] {
            let s = similarity(base, again);
            assert!(s >= DEFAULT_THRESHOLD, "{again:?}: {s}");
        }
        assert!(
            similarity(
                "I want to cancel my subscription",
                "cancel subscription now pls"
            ) >= DEFAULT_THRESHOLD
        );
        assert!(
            similarity("mi pedido no ha llegado", "no ha llegado mi pedido todavía")
                >= DEFAULT_THRESHOLD
        );
        assert!(
            similarity("wo ist meine Bestellung", "meine bestellung, wo ist sie?")
                >= DEFAULT_THRESHOLD
        );
    }

    #[test]
    fn different_questions_do_not_repeat() {
        for (a, b) in [
            ("where is my order", "where is my refund"),
            ("where is my order", "cancel my order"),
            ("how do I reset my password", "how do I change my address"),
            ("my parcel arrived damaged", "my parcel arrived late"),
        ] {
            let s = similarity(a, b);
            assert!(s < DEFAULT_THRESHOLD, "{a:?} / {b:?}: {s}");
        }
    }

    #[test]
    fn small_talk_never_repeats() {
        for text in [
            "hi",
            "ok",
            "thanks",
            "ok thanks",
            "hello!!",
            "yes",
            "no",
            "?",
            "",
            "123",
        ] {
            assert_eq!(
                find_repeat(text, &[text, "hi", "ok", "thanks"]),
                None,
                "{text:?}"
            );
            assert_eq!(similarity(text, text), 0.0);
        }
    }

    #[test]
    fn identical_messages_score_one() {
        let s = similarity("refund my order 12345", "refund my order 12345");
        assert!((s - 1.0).abs() < 1e-6, "{s}");
    }

    #[test]
    fn find_repeat_picks_the_closest_earlier_message() {
        let earlier = [
            "hello",
            "where is my refund",
            "where is my order",
            "ok",
            "my order, where is it?",
        ];
        let r = find_repeat("where's my order", &earlier).expect("a repeat");
        // Two earlier messages score 1.0; the latest wins.
        assert_eq!(r.index, 4);
        assert!(r.similarity > 0.99);
        assert_eq!(find_repeat("can I pay by card", &earlier), None);
        assert_eq!(find_repeat("where is my order", &[]), None);
        // A lower threshold from config finds weaker repeats.
        let weak = find_repeat_above("where is my order", &["cancel my order"], 0.3);
        assert_eq!(weak.map(|r| r.index), Some(0));
    }

    /// A deterministic pseudo-random sequence, so the sampled pairs are the same every run.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % bound.max(1)
        }
    }

    #[test]
    fn bitext_separation() {
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        let mut by_intent: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for row in &rows {
            by_intent
                .entry(row.intent.as_str())
                .or_default()
                .push(row.instruction.as_str());
        }
        let intents: Vec<&str> = by_intent.keys().copied().collect();
        let mut rng = Lcg(7);
        let pairs = 3000;
        let (mut same, mut different) = (Vec::new(), Vec::new());
        for _ in 0..pairs {
            let i = intents[rng.next(intents.len())];
            let list = &by_intent[i];
            let (a, b) = (list[rng.next(list.len())], list[rng.next(list.len())]);
            if a != b {
                same.push(similarity(a, b));
            }
            let j = intents[rng.next(intents.len())];
            if i != j {
                let other = &by_intent[j];
                different.push(similarity(a, other[rng.next(other.len())]));
            }
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
        let above = |v: &[f32]| {
            v.iter().filter(|s| **s >= DEFAULT_THRESHOLD).count() as f32 / v.len().max(1) as f32
        };
        // Area under the ROC curve: the chance a same-intent pair outscores a different one.
        let mut wins = 0.0f64;
        let mut sorted_diff = different.clone();
        sorted_diff.sort_by(f32::total_cmp);
        for s in &same {
            let below = sorted_diff.partition_point(|d| d < s);
            let ties = sorted_diff[below..].partition_point(|d| d <= s);
            wins += below as f64 + ties as f64 / 2.0;
        }
        let auc = wins / (same.len() as f64 * sorted_diff.len() as f64).max(1.0);
        println!(
            "repetition on Bitext: same-intent pairs mean {:.3} ({:.1}% >= {DEFAULT_THRESHOLD}), \
             different-intent pairs mean {:.3} ({:.1}% >= {DEFAULT_THRESHOLD}), AUC {auc:.3} \
             (n = {} / {})",
            mean(&same),
            100.0 * above(&same),
            mean(&different),
            100.0 * above(&different),
            same.len(),
            different.len()
        );
        assert!(same.len() > 2500 && different.len() > 2500);
        assert!(mean(&same) > mean(&different) + 0.1);
        assert!(auc > 0.75, "AUC {auc}");
        // Different questions must rarely look like repeats.
        assert!(above(&different) < 0.03);
    }
}
