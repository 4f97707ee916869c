//! Is the customer asking the same thing again? Rephrased, reordered, with typos.
//!
//! Two lexical measures, combined: the overlap of content words (stemmed, stopwords out, a
//! one-letter typo in a long word still matching) and the overlap of character trigrams
//! (robust to spelling and word boundaries). Lexical methods catch repeats and reorderings;
//! they cannot catch a true paraphrase that shares no words ("where's my parcel" vs "has it
//! shipped yet"), and they are not meant to.

use std::collections::HashSet;

use crate::analysis::text;
use crate::bot::faq::content_terms;

/// Words of at least this many letters may differ by one edit and still match.
const TYPO_MIN_CHARS: usize = 5;
/// Below this the pair is not reported at all; the policy applies its own threshold above.
const REPORT_FLOOR: f32 = 0.5;

/// The earlier message the current one repeats, and how alike they are (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeat {
    pub index: usize,
    pub similarity: f32,
}

/// The most similar earlier message, if it is similar enough to count as the same question.
/// Messages with fewer than two content words ("hi", "ok thanks") never count.
pub fn find_repeat(current: &str, earlier: &[&str]) -> Option<Repeat> {
    let cur = Features::of(current)?;
    earlier
        .iter()
        .enumerate()
        .filter_map(|(index, e)| {
            let other = Features::of(e)?;
            let similarity = cur.similarity(&other);
            (similarity >= REPORT_FLOOR).then_some(Repeat { index, similarity })
        })
        .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
}

/// Similarity of two messages in 0..1 (0 when either has too little content).
pub fn similarity(a: &str, b: &str) -> f32 {
    match (Features::of(a), Features::of(b)) {
        (Some(a), Some(b)) => a.similarity(&b),
        _ => 0.0,
    }
}

struct Features {
    terms: Vec<String>,
    trigrams: HashSet<[char; 3]>,
}

impl Features {
    fn of(text: &str) -> Option<Features> {
        let mut terms: Vec<String> = content_terms(text).into_iter().map(|(t, _)| t).collect();
        terms.sort();
        terms.dedup();
        if terms.len() < 2 {
            return None;
        }
        let norm: Vec<char> = text::normalize(text)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        let trigrams = norm.windows(3).map(|w| [w[0], w[1], w[2]]).collect();
        Some(Features { terms, trigrams })
    }

    fn similarity(&self, other: &Features) -> f32 {
        let dice = term_dice(&self.terms, &other.terms);
        let tri = jaccard(&self.trigrams, &other.trigrams);
        // Word overlap carries the meaning; trigrams forgive spelling. A pair needs both to
        // score high, so "where is my order" and "where is my refund" (three of four words
        // shared, but a different question) stay apart.
        0.65 * dice + 0.35 * tri
    }
}

/// Sorensen-Dice over content words, counting a word matched through one typo as 0.8.
fn term_dice(a: &[String], b: &[String]) -> f32 {
    let mut used = vec![false; b.len()];
    let mut matched = 0.0f32;
    for t in a {
        if let Some(i) = b.iter().position(|u| u == t) {
            if !used[i] {
                used[i] = true;
                matched += 1.0;
                continue;
            }
        }
        if t.chars().count() >= TYPO_MIN_CHARS
            && let Some(i) = (0..b.len()).find(|&i| {
                !used[i]
                    && b[i].chars().count() >= TYPO_MIN_CHARS
                    && strsim::osa_distance(t, &b[i]) == 1
            })
        {
            used[i] = true;
            matched += 0.8;
        }
    }
    2.0 * matched / (a.len() + b.len()) as f32
}

fn jaccard(a: &HashSet<[char; 3]>, b: &HashSet<[char; 3]>) -> f32 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f32 / union as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rephrasings_reorderings_and_typos_repeat() {
        let same = [
            ("how do I reset my password", "how can I reset my pasword?"),
            (
                "how do I reset my password",
                "reset password, how do I do it",
            ),
            (
                "where is my parcel with the blue lamp",
                "my parcel with the blue lamp, where is it??",
            ),
            (
                "¿dónde está mi pedido de zapatos?",
                "dónde esta mi pedido de zapatos",
            ),
        ];
        for (a, b) in same {
            let s = similarity(a, b);
            assert!(s >= 0.6, "{a} / {b}: {s}");
        }
    }

    #[test]
    fn different_questions_and_small_talk_do_not_repeat() {
        let different = [
            ("where is my parcel", "where is my refund"),
            (
                "how do I reset my password",
                "how do I change my delivery address",
            ),
            ("do you ship to Canada", "what are your opening hours"),
        ];
        for (a, b) in different {
            let s = similarity(a, b);
            assert!(s < 0.6, "{a} / {b}: {s}");
        }
        assert_eq!(find_repeat("ok thanks", &["ok thanks"]), None);
        assert_eq!(find_repeat("hi", &["hi"]), None);
    }

    #[test]
    fn find_repeat_picks_the_most_similar_earlier_message() {
        let earlier = [
            "what are your opening hours",
            "how do I reset my password",
            "do you ship abroad",
        ];
        let r = find_repeat("password reset: how do I do that?", &earlier).expect("repeat");
        assert_eq!(r.index, 1);
        assert!(r.similarity >= 0.6);
        assert_eq!(
            find_repeat("is the blender dishwasher safe", &earlier),
            None
        );
    }

    #[test]
    fn same_intent_pairs_score_above_different_intent_pairs_on_the_sample() {
        // Lexical similarity is not a paraphrase detector; what matters is that utterances
        // of one intent sit clearly closer together than utterances of different intents.
        let rows = crate::analysis::dataset::bitext_rows();
        let mut by_intent: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for r in &rows {
            by_intent.entry(&r.intent).or_default().push(&r.instruction);
        }
        let groups: Vec<&Vec<&str>> = by_intent.values().collect();
        let (mut same_sum, mut same_n, mut diff_sum, mut diff_n) = (0.0f32, 0, 0.0f32, 0);
        let (mut same_hits, mut diff_hits) = (0, 0);
        for (g, utterances) in groups.iter().enumerate() {
            for pair in utterances.windows(2).take(20) {
                let s = similarity(pair[0], pair[1]);
                same_sum += s;
                same_n += 1;
                same_hits += usize::from(s >= 0.6);
                let other = groups[(g + 1) % groups.len()];
                let d = similarity(pair[0], other[0]);
                diff_sum += d;
                diff_n += 1;
                diff_hits += usize::from(d >= 0.6);
            }
        }
        let (same_mean, diff_mean) = (same_sum / same_n as f32, diff_sum / diff_n as f32);
        println!(
            "repetition: same-intent mean {same_mean:.3} ({same_hits}/{same_n} >= 0.6), \
             different-intent mean {diff_mean:.3} ({diff_hits}/{diff_n} >= 0.6)"
        );
        assert!(same_mean > diff_mean + 0.15, "{same_mean} vs {diff_mean}");
        assert!(
            diff_hits * 100 <= diff_n * 2,
            "{diff_hits}/{diff_n} false repeats"
        );
    }
}
