//! Retrieval for the built-in FAQ bot: which configured question is the customer asking?
//!
//! Each entry's question and each of its alternatives is indexed as its own short document.
//! A customer's text is scored against every document with BM25; an entry scores as its best
//! document. Words are normalised (accents, case), English stopwords are dropped, suffixes are
//! lightly stemmed, and a query word unknown to the index may match a known word one typo
//! away, at a discount.
//!
//! The confidence reported with a match is meant to be compared with a fixed threshold, so it
//! does not depend on raw BM25 magnitudes (which grow with query length and shrink with index
//! size). It is the share of the query's information (its idf mass) that the matched question
//! explains, scaled by how much of the question the query covers:
//! `confidence = query_coverage * (0.5 + 0.5 * question_coverage)`.
//! An exact question gives 1.0; a query sharing only a common word with a question gives a
//! small value; a query sharing nothing gives no match at all.

use crate::analysis::text::{FastMap, FastSet};
use std::path::{Path, PathBuf};

use crate::analysis::text;
use crate::config::FaqEntry;

/// BM25 term-frequency saturation.
const K1: f64 = 1.2;
/// BM25 document-length normalisation.
const B: f64 = 0.75;
/// Weight of a match through a one-typo correction, relative to an exact word match.
const TYPO_WEIGHT: f64 = 0.7;
/// Shortest query word (in chars, before stemming) allowed to match through a typo; shorter
/// words have too many accidental neighbours ("cat"/"car").
const TYPO_MIN_CHARS: usize = 5;

/// Words that carry no topic in a customer question ("how do I ...", "please ...").
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "did", "do", "does", "doing", "done", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "hi",
    "hello", "hey", "him", "himself", "his", "how", "i", "if", "im", "in", "into", "is", "it",
    "its", "itself", "ive", "just", "let", "me", "might", "more", "most", "must", "my", "myself",
    "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "ought", "our",
    "ours", "ourselves", "out", "over", "own", "please", "pls", "plz", "same", "shall", "she",
    "should", "so", "some", "such", "than", "thank", "thanks", "that", "the", "their", "theirs",
    "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "u", "under", "until", "up", "us", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
    "yourself", "yourselves",
    // Conversational filler that surrounds support questions without saying what they are about.
    "able", "also", "anyone", "ask", "asking", "get", "got", "help", "know", "like", "need",
    "needed", "ok", "okay", "possible", "question", "really", "someone", "something", "sure",
    "tell", "thing", "try", "trying", "want", "wanted", "way", "wonder", "wondering", "yeah",
    "yes", "assistance", "assist", "wanna", "gotta", "ya", "ur",
    // Swearing says how the customer feels, not what they ask about.
    "damn", "goddamn", "fucking", "fuckin", "bloody", "freaking",
];

/// One question or alternative, indexed for BM25.
#[derive(Debug)]
struct Document {
    /// Index of the FAQ entry this text belongs to.
    entry: usize,
    /// Number of terms after stopword removal; BM25 favours matches in shorter texts.
    len: f64,
    /// Distinct term ids of this document, for computing how much of it a query covers.
    terms: Vec<usize>,
}

/// Search index over the configured FAQ entries, built once at startup or reload so each
/// customer message is scored without re-analysing the whole FAQ.
#[derive(Debug)]
pub struct FaqIndex {
    docs: Vec<Document>,
    /// Stemmed term to term id.
    vocab: FastMap<String, usize>,
    /// Term id to stemmed term, for the typo scan.
    terms: Vec<String>,
    /// Term id to `(document, term frequency)` pairs.
    postings: Vec<Vec<(usize, u32)>>,
    /// Term id to inverse document frequency.
    idf: Vec<f64>,
    /// Idf of a term no document contains: the most informative a query word can be.
    unknown_idf: f64,
    avg_len: f64,
}

/// The FAQ entry that best answers a customer's text, and how sure the index is, so the bot
/// can decide between answering, asking to rephrase and handing off.
#[derive(Debug, Clone, PartialEq)]
pub struct FaqMatch {
    /// Position of the entry in the slice the index was built from.
    pub entry: usize,
    /// In `0.0..=1.0`; near 1 when the text is one of the entry's questions.
    pub confidence: f64,
}

/// How one query term found its way into the index.
#[derive(Debug)]
struct QueryTerm {
    /// Index terms it matches, with the weight of each match (1 exact, less for a typo).
    candidates: Vec<(usize, f64)>,
    /// Idf mass this term brings to the query's ideal score.
    ideal_idf: f64,
}

/// Per-document running totals while scoring one query.
#[derive(Debug, Default)]
struct DocScore {
    bm25: f64,
    /// Matched idf mass of the query, typo discounts applied.
    query_mass: f64,
    /// Document terms hit by the query, with their best match weight: a handful, so a
    /// list rather than a map per candidate document.
    hit_terms: Vec<(usize, f64)>,
}

impl FaqIndex {
    /// Indexes every entry's question and alternatives; blank texts are skipped.
    pub fn new(entries: &[FaqEntry]) -> Self {
        let mut index = FaqIndex {
            docs: Vec::new(),
            vocab: FastMap::default(),
            terms: Vec::new(),
            postings: Vec::new(),
            idf: Vec::new(),
            unknown_idf: 0.0,
            avg_len: 0.0,
        };
        for (entry_idx, entry) in entries.iter().enumerate() {
            let texts = std::iter::once(&entry.question).chain(entry.alternatives.iter());
            for text in texts {
                index.add_document(entry_idx, text);
            }
        }
        index.finish();
        index
    }

    fn add_document(&mut self, entry: usize, text: &str) {
        let words = content_terms(text);
        if words.is_empty() {
            return;
        }
        let doc_id = self.docs.len();
        let mut freqs: FastMap<usize, u32> = FastMap::default();
        for (stem, _) in &words {
            let next_id = self.terms.len();
            let id = *self.vocab.entry(stem.clone()).or_insert(next_id);
            if id == next_id {
                self.terms.push(stem.clone());
                self.postings.push(Vec::new());
            }
            *freqs.entry(id).or_insert(0) += 1;
        }
        let mut terms: Vec<usize> = freqs.keys().copied().collect();
        terms.sort_unstable();
        for &term in &terms {
            let tf = freqs.get(&term).copied().unwrap_or(0);
            self.postings[term].push((doc_id, tf));
        }
        self.docs.push(Document {
            entry,
            len: words.len() as f64,
            terms,
        });
    }

    fn finish(&mut self) {
        let n = self.docs.len() as f64;
        // Lucene's form of the BM25 idf, which never goes negative for very common terms.
        let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        self.idf = self.postings.iter().map(|p| idf(p.len() as f64)).collect();
        self.unknown_idf = idf(0.0);
        self.avg_len = if self.docs.is_empty() {
            0.0
        } else {
            self.docs.iter().map(|d| d.len).sum::<f64>() / n
        };
    }

    /// Best entry for the customer's text, None when nothing shares a term.
    pub fn best(&self, query: &str) -> Option<FaqMatch> {
        if self.docs.is_empty() {
            return None;
        }
        let query_terms = self.query_terms(query);
        if query_terms.is_empty() {
            return None;
        }
        let ideal_mass: f64 = query_terms.iter().map(|t| t.ideal_idf).sum();

        let mut scores: FastMap<usize, DocScore> =
            FastMap::with_capacity_and_hasher(32, Default::default());
        let mut best_here: FastMap<usize, (f64, f64, usize, f64)> =
            FastMap::with_capacity_and_hasher(32, Default::default());
        for term in &query_terms {
            // A query term contributes once per document, through its best candidate there.
            best_here.clear();
            for &(term_id, weight) in &term.candidates {
                let idf = self.idf[term_id];
                for &(doc_id, tf) in &self.postings[term_id] {
                    let contribution = weight * idf * self.saturation(doc_id, tf);
                    let slot = best_here.entry(doc_id).or_insert((0.0, 0.0, term_id, 0.0));
                    if contribution > slot.0 {
                        *slot = (contribution, weight * idf, term_id, weight);
                    }
                }
            }
            for (&doc_id, &(contribution, mass, term_id, weight)) in &best_here {
                let score = scores.entry(doc_id).or_default();
                score.bm25 += contribution;
                score.query_mass += mass;
                match score.hit_terms.iter_mut().find(|(t, _)| *t == term_id) {
                    Some((_, hit)) => *hit = hit.max(weight),
                    None => score.hit_terms.push((term_id, weight)),
                }
            }
        }

        let mut best: Option<(f64, FaqMatch)> = None;
        for (doc_id, score) in scores {
            let doc = &self.docs[doc_id];
            let confidence = self.confidence(doc, &score, ideal_mass);
            let candidate = FaqMatch {
                entry: doc.entry,
                confidence,
            };
            let better = match &best {
                None => true,
                Some((best_bm25, best_match)) => {
                    // Highest BM25 wins; ties go to the more confident match, then to the
                    // earlier entry so results do not depend on hash order.
                    score.bm25 > *best_bm25
                        || (score.bm25 == *best_bm25
                            && (confidence > best_match.confidence
                                || (confidence == best_match.confidence
                                    && doc.entry < best_match.entry)))
                }
            };
            if better {
                best = Some((score.bm25, candidate));
            }
        }
        best.filter(|(bm25, _)| *bm25 > 0.0).map(|(_, m)| m)
    }

    /// BM25's term-frequency part for one posting.
    fn saturation(&self, doc_id: usize, tf: u32) -> f64 {
        let tf = f64::from(tf);
        let len_ratio = if self.avg_len > 0.0 {
            self.docs[doc_id].len / self.avg_len
        } else {
            1.0
        };
        tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len_ratio))
    }

    fn confidence(&self, doc: &Document, score: &DocScore, ideal_mass: f64) -> f64 {
        if ideal_mass <= 0.0 {
            return 0.0;
        }
        let query_coverage = (score.query_mass / ideal_mass).clamp(0.0, 1.0);
        let doc_mass: f64 = doc.terms.iter().map(|&t| self.idf[t]).sum();
        let doc_hit: f64 = score
            .hit_terms
            .iter()
            .map(|&(t, weight)| self.idf[t] * weight)
            .sum();
        let doc_coverage = if doc_mass > 0.0 {
            (doc_hit / doc_mass).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (query_coverage * (0.5 + 0.5 * doc_coverage)).clamp(0.0, 1.0)
    }

    /// Analyses the query into distinct terms, each resolved against the vocabulary.
    fn query_terms(&self, query: &str) -> Vec<QueryTerm> {
        // Distinct stems, keeping the longest surface form seen for the typo length rule.
        // A query has a few terms: a list searched in order beats a map.
        let mut distinct: Vec<(String, usize)> = Vec::new();
        for (stem, surface_len) in content_terms(query) {
            match distinct.iter_mut().find(|(s, _)| *s == stem) {
                Some((_, len)) => *len = (*len).max(surface_len),
                None => distinct.push((stem, surface_len)),
            }
        }
        distinct
            .into_iter()
            .map(|(stem, surface_len)| {
                if let Some(&id) = self.vocab.get(&stem) {
                    return QueryTerm {
                        candidates: vec![(id, 1.0)],
                        ideal_idf: self.idf[id],
                    };
                }
                // British and American spellings differ in a doubled final consonant
                // ("cancelling"/"canceling"); treat that as the same word, not a typo.
                if let Some(id) = spelling_variants(&stem)
                    .iter()
                    .find_map(|v| self.vocab.get(v).copied())
                {
                    return QueryTerm {
                        candidates: vec![(id, 1.0)],
                        ideal_idf: self.idf[id],
                    };
                }
                let candidates = if surface_len >= TYPO_MIN_CHARS {
                    self.typo_neighbours(&stem)
                } else {
                    Vec::new()
                };
                // A corrected word is as informative as the word it was corrected to; a word
                // the index has never seen counts as maximally informative, so unexplained
                // words pull the confidence down.
                let ideal_idf = candidates
                    .iter()
                    .map(|&(id, _)| self.idf[id])
                    .fold(None, |acc: Option<f64>, x| {
                        Some(acc.map_or(x, |a| a.max(x)))
                    })
                    .unwrap_or(self.unknown_idf);
                QueryTerm {
                    candidates,
                    ideal_idf,
                }
            })
            .collect()
    }

    /// Vocabulary terms one edit (insert, delete, substitute, swap adjacent) away from `stem`.
    fn typo_neighbours(&self, stem: &str) -> Vec<(usize, f64)> {
        let len = stem.chars().count();
        let mut found = Vec::new();
        for (id, term) in self.terms.iter().enumerate() {
            let term_len = term.chars().count();
            // Short index terms are too easy to hit by accident.
            if term_len < TYPO_MIN_CHARS - 1 || term_len.abs_diff(len) > 1 {
                continue;
            }
            // For a single edit, optimal string alignment equals Damerau-Levenshtein.
            if strsim::osa_distance(stem, term) == 1 {
                found.push((id, TYPO_WEIGHT));
            }
        }
        found
    }
}

/// The stem with its final consonant undoubled or doubled.
fn spelling_variants(stem: &str) -> Vec<String> {
    let bytes = stem.as_bytes();
    let n = bytes.len();
    if n < 4 || !stem.is_ascii() {
        return Vec::new();
    }
    let last = bytes[n - 1];
    if b"aeiouy".contains(&last) || last.is_ascii_digit() {
        return Vec::new();
    }
    if bytes[n - 2] == last {
        vec![stem[..n - 1].to_string()]
    } else {
        vec![format!("{stem}{}", char::from(last))]
    }
}

/// [`STOPWORDS`] for lookup: every word of every question is checked against it.
static STOPWORD_SET: std::sync::LazyLock<FastSet<&'static str>> =
    std::sync::LazyLock::new(|| STOPWORDS.iter().copied().collect());

/// Splits text into `(stem, surface length)` pairs with stopwords removed. Also used by the
/// repetition check, so both read text the same way.
pub(crate) fn content_terms(text: &str) -> Vec<(String, usize)> {
    let mut terms = Vec::new();
    text::for_each_word(text, |word| {
        if !STOPWORD_SET.contains(word) {
            terms.push((stem(word), word.chars().count()));
        }
    });
    terms
}

/// Light English suffix stripping, so "charges", "charged" and "charging" meet at one term.
///
/// Deliberately simpler than Porter: it only needs to merge the inflections customers use,
/// and over-stemming would merge unrelated FAQ questions.
fn stem(word: &str) -> String {
    // Digits (order numbers, years) and non-ASCII words are left alone.
    if !word.chars().all(|c| c.is_ascii_lowercase()) || word.len() <= 3 {
        return word.to_string();
    }
    let mut w = word.to_string();
    if let Some(base) = w.strip_suffix("ies").filter(|b| b.len() >= 2) {
        w = format!("{base}y");
    } else if let Some(base) = w.strip_suffix("es").filter(|b| {
        b.len() >= 3
            && (b.ends_with('s')
                || b.ends_with('x')
                || b.ends_with('z')
                || b.ends_with("ch")
                || b.ends_with("sh"))
    }) {
        w = base.to_string();
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    let mut stripped_verb = false;
    for suffix in ["ing", "ed"] {
        if let Some(base) = w.strip_suffix(suffix).filter(|b| b.len() >= 3) {
            // "ing"/"ed" only end a verb when the stem keeps a vowel ("bring" is no verb form).
            if base.chars().any(|c| "aeiouy".contains(c)) {
                w = base.to_string();
                stripped_verb = true;
            }
            break;
        }
    }
    if stripped_verb {
        // "shipping" -> "shipp" -> "ship"; but "billing" -> "bill" keeps its double l.
        let bytes = w.as_bytes();
        let n = bytes.len();
        if n >= 2 && bytes[n - 1] == bytes[n - 2] && !b"lsz".contains(&bytes[n - 1]) {
            w.pop();
        }
    }
    // A final silent e is dropped so "charge" and "charg(ed)" agree.
    if w.len() >= 5 && w.ends_with('e') {
        w.pop();
    }
    w
}

/// Why an FAQ file could not be loaded, phrased so an operator can fix the file.
///
/// Each message is complete on its own (the I/O error is part of it rather than a separate
/// `source()`), so logging the error once says everything.
#[derive(Debug, thiserror::Error)]
pub enum FaqFileError {
    /// The file could not be read at all.
    #[error("cannot read FAQ file {}: {error}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected `[[faq]]` shape.
    #[error("FAQ file {}, line {line}: {message}", path.display())]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line of the problem (1 when the parser gave no position).
        line: usize,
        /// The TOML parser's description of the problem.
        message: String,
    },
    /// An entry parsed but cannot work as an FAQ entry (e.g. an empty question).
    #[error("FAQ file {}, entry {entry}: {reason}", path.display())]
    Invalid {
        /// The file holding the entry.
        path: PathBuf,
        /// 1-based position of the `[[faq]]` table in the file.
        entry: usize,
        /// What is wrong with the entry.
        reason: String,
    },
}

/// Shape of an FAQ file; unknown top-level keys are rejected so typos are not silently lost.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaqFile {
    #[serde(default)]
    faq: Vec<FaqEntry>,
}

/// A TOML file holding `[[faq]]` tables with the FaqEntry fields.
///
/// Lets operators keep a long FAQ out of the main config file.
pub fn load_faq_file(path: &Path) -> Result<Vec<FaqEntry>, FaqFileError> {
    let content = std::fs::read_to_string(path).map_err(|error| FaqFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let file: FaqFile = toml::from_str(&content).map_err(|err| FaqFileError::Parse {
        path: path.to_path_buf(),
        line: err
            .span()
            .map(|span| line_of(&content, span.start))
            .unwrap_or(1),
        message: err.message().to_string(),
    })?;
    for (i, entry) in file.faq.iter().enumerate() {
        let reason = if entry.question.trim().is_empty() {
            Some("question is empty")
        } else if entry.answer.trim().is_empty() {
            // Even a handoff entry says something to the customer while they wait; this is
            // the same rule the config validation applies to inline `[[bot.faq]]` entries.
            Some("answer is empty")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(FaqFileError::Invalid {
                path: path.to_path_buf(),
                entry: i + 1,
                reason: reason.to_string(),
            });
        }
    }
    Ok(file.faq)
}

/// 1-based line number of a byte offset.
fn line_of(content: &str, offset: usize) -> usize {
    let end = offset.min(content.len());
    content.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(question: &str, alternatives: &[&str], answer: &str) -> FaqEntry {
        FaqEntry {
            question: question.to_string(),
            alternatives: alternatives.iter().map(|s| s.to_string()).collect(),
            answer: answer.to_string(),
            intent: None,
            handoff: false,
            quick_replies: Vec::new(),
        }
    }

    fn sample() -> Vec<FaqEntry> {
        vec![
            entry(
                "How do I reset my password?",
                &["I forgot my password", "cannot log in to my account"],
                "Use the reset link.",
            ),
            entry(
                "What are your shipping costs?",
                &["how much is delivery"],
                "Shipping is free over $50.",
            ),
            entry(
                "How can I cancel my order?",
                &["I want to cancel a purchase"],
                "Open the order and press cancel.",
            ),
            entry(
                "Where is my refund?",
                &["track the status of my refund"],
                "Refunds take 5 days.",
            ),
            entry(
                "Do you ship internationally?",
                &["can you deliver to other countries"],
                "We ship to 40 countries.",
            ),
            entry(
                "How do I change my delivery address?",
                &["update the shipping address of an order"],
                "Edit it in your account.",
            ),
            entry(
                "What payment methods do you accept?",
                &["can I pay with paypal"],
                "Cards and PayPal.",
            ),
        ]
    }

    #[test]
    fn exact_question_is_near_certain() {
        let index = FaqIndex::new(&sample());
        for (i, e) in sample().iter().enumerate() {
            let m = index.best(&e.question).expect("exact question must match");
            assert_eq!(m.entry, i, "question {:?}", e.question);
            assert!(m.confidence >= 0.9, "{:?} -> {}", e.question, m.confidence);
        }
    }

    #[test]
    fn rephrased_question_with_typo_picks_right_entry() {
        let index = FaqIndex::new(&sample());
        let m = index
            .best("my pasword, how can I reset it?")
            .expect("must match");
        assert_eq!(m.entry, 0);
        assert!(m.confidence > 0.5, "confidence {}", m.confidence);

        let m = index.best("cancel order how?").expect("must match");
        assert_eq!(m.entry, 2);
        assert!(m.confidence > 0.5, "confidence {}", m.confidence);

        let m = index
            .best("Which payment methods are accepted")
            .expect("must match");
        assert_eq!(m.entry, 6);
        assert!(m.confidence > 0.5, "confidence {}", m.confidence);
    }

    #[test]
    fn unrelated_question_is_rejected() {
        let index = FaqIndex::new(&sample());
        match index.best("what is the capital of France") {
            None => {}
            Some(m) => assert!(m.confidence < 0.2, "confidence {}", m.confidence),
        }
        assert_eq!(index.best("tell me a joke about penguins"), None);
    }

    #[test]
    fn one_shared_minor_word_scores_low() {
        let index = FaqIndex::new(&sample());
        // Only "order" is shared with the cancel and address questions.
        let m = index
            .best("my order smells strange and the box is purple")
            .expect("shares a word");
        assert!(m.confidence < 0.3, "confidence {}", m.confidence);
    }

    #[test]
    fn alternative_phrasing_selects_its_entry() {
        let index = FaqIndex::new(&sample());
        let m = index.best("can I pay with PayPal?").expect("must match");
        assert_eq!(m.entry, 6);
        assert!(m.confidence >= 0.9, "confidence {}", m.confidence);
        let m = index
            .best("can you deliver to other countries")
            .expect("must match");
        assert_eq!(m.entry, 4);
    }

    #[test]
    fn empty_index_and_empty_query_give_none() {
        let empty = FaqIndex::new(&[]);
        assert_eq!(empty.best("how do I reset my password"), None);
        let index = FaqIndex::new(&sample());
        assert_eq!(index.best(""), None);
        assert_eq!(index.best("   ?!  "), None);
        // Only stopwords: nothing to search for.
        assert_eq!(index.best("how do I do it"), None);
    }

    #[test]
    fn confidence_stays_in_range() {
        let index = FaqIndex::new(&sample());
        let queries = [
            "password password password reset reset",
            "refund",
            "shipping address order cancel refund password paypal",
        ];
        for q in queries {
            let m = index.best(q).expect("must match");
            assert!(
                (0.0..=1.0).contains(&m.confidence),
                "{q} -> {}",
                m.confidence
            );
        }
        // The repeated words still point at the password entry.
        let m = index.best(queries[0]).expect("must match");
        assert_eq!(m.entry, 0);
    }

    #[test]
    fn typo_tolerance_is_limited_to_long_words() {
        let index = FaqIndex::new(&[entry("Is there a cat policy", &[], "No cats.")]);
        // "car" is one edit from "cat" but too short to be treated as a typo.
        assert_eq!(index.best("car"), None);
        // "polcy" is one edit from "policy".
        let m = index.best("polcy").expect("typo must match");
        assert_eq!(m.entry, 0);
        assert!(m.confidence < 1.0);
    }

    #[test]
    fn doubled_consonant_spellings_match_fully() {
        let index = FaqIndex::new(&sample());
        let m = index.best("cancelling my purchase").expect("must match");
        assert_eq!(m.entry, 2);
        assert!(m.confidence >= 0.9, "confidence {}", m.confidence);
    }

    #[test]
    fn chat_filler_does_not_dilute_confidence() {
        let index = FaqIndex::new(&sample());
        let m = index
            .best("hey, I need help, I wanted to ask how I can reset my password")
            .expect("must match");
        assert_eq!(m.entry, 0);
        assert!(m.confidence >= 0.9, "confidence {}", m.confidence);
    }

    #[test]
    fn stemming_merges_inflections() {
        assert_eq!(stem("charges"), stem("charged"));
        assert_eq!(stem("charging"), stem("charge"));
        assert_eq!(stem("shipping"), "ship");
        assert_eq!(stem("billing"), "bill");
        assert_eq!(stem("policies"), "policy");
        assert_eq!(stem("addresses"), "address");
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("bring"), "bring");
    }

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faq-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }

    #[test]
    fn load_faq_file_reads_entries() {
        let path = temp_file(
            "ok.toml",
            r#"
[[faq]]
question = "How do I reset my password?"
alternatives = ["forgot password"]
answer = "Use the link."
intent = "recover_password"

[[faq]]
question = "I want a refund"
answer = "A colleague will take over."
handoff = true
"#,
        );
        let entries = load_faq_file(&path).expect("valid file");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].alternatives, vec!["forgot password"]);
        assert_eq!(entries[0].intent.as_deref(), Some("recover_password"));
        assert!(entries[1].handoff);
        assert!(!entries[0].handoff);
    }

    #[test]
    fn load_faq_file_reports_parse_line() {
        let path = temp_file(
            "bad.toml",
            "[[faq]]\nquestion = \"a\"\nanswer = \"b\"\n\n[[faq]]\nquestion = \"c\"\nanwser = \"typo\"\n",
        );
        match load_faq_file(&path) {
            Err(FaqFileError::Parse { line, message, .. }) => {
                assert_eq!(line, 7, "message: {message}");
                assert!(message.contains("anwser"), "message: {message}");
            }
            other => panic!("expected parse error, got {other:?}"),
        }
    }

    #[test]
    fn load_faq_file_rejects_empty_question() {
        let path = temp_file("empty.toml", "[[faq]]\nquestion = \" \"\nanswer = \"b\"\n");
        match load_faq_file(&path) {
            Err(FaqFileError::Invalid { entry, .. }) => assert_eq!(entry, 1),
            other => panic!("expected invalid entry, got {other:?}"),
        }
        let path = temp_file(
            "empty-answer.toml",
            "[[faq]]\nquestion = \"a\"\nanswer = \"b\"\n\n[[faq]]\nquestion = \"c\"\nanswer = \"\"\n",
        );
        match load_faq_file(&path) {
            Err(FaqFileError::Invalid { entry, reason, .. }) => {
                assert_eq!(entry, 2);
                assert!(reason.contains("answer"));
            }
            other => panic!("expected invalid entry, got {other:?}"),
        }
    }

    #[test]
    fn load_faq_file_reports_missing_file() {
        let path = std::env::temp_dir().join("surely-missing-faq-file-handoffd.toml");
        let err = load_faq_file(&path).expect_err("missing file");
        assert!(matches!(err, FaqFileError::Read { .. }));
        assert!(err.to_string().contains("surely-missing"));
    }

    #[test]
    fn bitext_retrieval_evaluation() {
        // One entry per intent of the Bitext sample (first utterance as the question, the next
        // four as alternatives); every other utterance is a query that should find its intent.
        let mut by_intent: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        for row in rows {
            by_intent
                .entry(row.intent)
                .or_default()
                .push(row.instruction);
        }
        let groups: Vec<&Vec<String>> = by_intent.values().filter(|v| v.len() > 5).collect();
        let entries: Vec<FaqEntry> = groups
            .iter()
            .map(|v| {
                let alternatives: Vec<&str> = v[1..5].iter().map(String::as_str).collect();
                entry(&v[0], &alternatives, "answer")
            })
            .collect();
        let index = FaqIndex::new(&entries);
        let (mut right, mut total, mut confident, mut confident_right) = (0, 0, 0, 0);
        let (mut conf_right, mut conf_wrong) = (0.0, 0.0);
        for (k, utterances) in groups.iter().enumerate() {
            for query in &utterances[5..] {
                total += 1;
                let Some(m) = index.best(query) else { continue };
                let correct = m.entry == k;
                if correct {
                    right += 1;
                    conf_right += m.confidence;
                } else {
                    conf_wrong += m.confidence;
                }
                if m.confidence >= 0.6 {
                    confident += 1;
                    confident_right += usize::from(correct);
                }
            }
        }
        let accuracy = right as f64 / total as f64;
        let mean_right = conf_right / f64::from(right.max(1));
        let mean_wrong = conf_wrong / f64::from((total - right).max(1));
        let precision = confident_right as f64 / confident.max(1) as f64;
        println!(
            "faq retrieval: top-1 {accuracy:.3} ({right}/{total}); mean confidence right \
             {mean_right:.3}, wrong {mean_wrong:.3}; precision at confidence >= 0.6 \
             {precision:.3} ({confident_right}/{confident})"
        );
        assert!(total > 1000, "too few queries read: {total}");
        assert!(accuracy >= 0.65, "top-1 accuracy {accuracy}");
        assert!(mean_right > mean_wrong + 0.1);
        assert!(precision >= 0.85, "precision {precision}");
    }
}
