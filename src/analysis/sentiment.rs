//! A placeholder sentiment scorer, good enough to notice an angry customer until a real model
//! replaces it.
//!
//! It is lexicon based, in the spirit of VADER: each known word carries a valence on a -4..=4
//! scale; negation flips and dampens it, intensifiers and ALL CAPS strengthen it, exclamation
//! marks strengthen the whole message, and the sum is squashed into -1..=1. English has a
//! broad lexicon; Spanish, French, German, Portuguese and Italian have their strongest words so
//! an angry message in those languages does not read as neutral.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::analysis::text;

/// Valence of words, after [`text::normalize`] (lower case, no accents).
const LEXICON: &[(&str, f32)] = &[
    // English, positive.
    ("good", 1.9),
    ("great", 3.1),
    ("excellent", 2.7),
    ("awesome", 3.1),
    ("amazing", 2.8),
    ("fantastic", 2.6),
    ("wonderful", 2.7),
    ("brilliant", 2.8),
    ("perfect", 2.7),
    ("best", 2.5),
    ("love", 3.2),
    ("loved", 2.9),
    ("happy", 2.7),
    ("glad", 2.0),
    ("pleased", 1.9),
    ("satisfied", 1.8),
    ("helpful", 1.9),
    ("nice", 1.8),
    ("cool", 1.3),
    ("fine", 0.8),
    ("thanks", 1.9),
    ("thank", 1.5),
    ("thx", 1.5),
    ("appreciate", 2.0),
    ("appreciated", 2.0),
    ("resolved", 1.2),
    ("solved", 1.2),
    ("super", 2.0),
    // English, negative.
    ("bad", -2.5),
    ("terrible", -2.9),
    ("awful", -2.9),
    ("horrible", -3.0),
    ("worst", -3.1),
    ("hate", -2.7),
    ("angry", -2.3),
    ("annoyed", -1.8),
    ("annoying", -2.0),
    ("frustrated", -2.0),
    ("frustrating", -2.2),
    ("disappointed", -2.0),
    ("disappointing", -2.2),
    ("upset", -1.9),
    ("furious", -3.0),
    ("sad", -2.1),
    ("unhappy", -2.2),
    ("worried", -1.6),
    ("confused", -1.0),
    ("useless", -2.0),
    ("unhelpful", -2.0),
    ("ridiculous", -1.9),
    ("unacceptable", -2.5),
    ("outrageous", -2.6),
    ("pathetic", -2.7),
    ("incompetent", -2.5),
    ("stupid", -2.4),
    ("rude", -2.0),
    ("scam", -2.6),
    ("fraud", -2.6),
    ("cheated", -2.4),
    ("ripped", -2.0),
    ("broken", -1.8),
    ("damaged", -1.8),
    ("wrong", -1.6),
    ("problem", -1.5),
    ("issue", -1.0),
    ("error", -1.3),
    ("poor", -2.0),
    ("slow", -1.2),
    ("late", -1.0),
    ("missing", -1.2),
    ("lost", -1.3),
    ("fail", -2.0),
    ("failed", -1.8),
    ("failure", -2.3),
    ("ignored", -1.5),
    ("waste", -1.8),
    ("disaster", -3.0),
    ("nightmare", -2.8),
    ("nonsense", -1.8),
    ("disgusting", -3.0),
    ("lousy", -2.5),
    ("suck", -2.0),
    ("sucks", -2.5),
    ("crap", -2.5),
    ("shit", -2.6),
    ("fuck", -3.0),
    ("wtf", -2.5),
    // Swear words: negative alone, intensifiers before another sentiment word.
    ("damn", -1.5),
    ("goddamn", -2.0),
    ("fucking", -2.0),
    ("bloody", -1.2),
    ("complaint", -1.5),
    // Spanish.
    ("gracias", 1.9),
    ("excelente", 2.7),
    ("genial", 2.6),
    ("perfecto", 2.7),
    ("bueno", 1.9),
    ("malo", -2.5),
    ("mala", -2.5),
    ("pesimo", -3.0),
    ("pesima", -3.0),
    ("fatal", -2.5),
    ("odio", -2.7),
    ("enojado", -2.3),
    ("enfadado", -2.3),
    ("molesto", -1.8),
    ("decepcionado", -2.0),
    ("estafa", -2.6),
    ("inutil", -2.0),
    ("verguenza", -2.2),
    ("basura", -2.5),
    ("mierda", -2.8),
    // French.
    ("merci", 1.9),
    ("parfait", 2.7),
    ("bon", 1.5),
    ("mauvais", -2.5),
    ("mal", -1.8),
    ("nul", -2.5),
    ("nulle", -2.5),
    ("affreux", -2.9),
    ("deteste", -2.7),
    ("decu", -2.0),
    ("decue", -2.0),
    ("arnaque", -2.6),
    ("inadmissible", -2.5),
    ("inacceptable", -2.5),
    ("honteux", -2.5),
    ("lamentable", -2.5),
    ("enerve", -2.0),
    ("furieux", -3.0),
    ("catastrophe", -3.0),
    ("merde", -2.8),
    // German.
    ("danke", 1.9),
    ("gut", 1.9),
    ("prima", 2.2),
    ("perfekt", 2.7),
    ("wunderbar", 2.7),
    ("ausgezeichnet", 2.7),
    ("schlecht", -2.5),
    ("schrecklich", -2.9),
    ("furchtbar", -2.9),
    ("katastrophal", -3.0),
    ("enttauscht", -2.0),
    ("wutend", -2.8),
    ("argerlich", -2.0),
    ("nutzlos", -2.0),
    ("betrug", -2.6),
    ("unverschamt", -2.5),
    ("scheisse", -2.8),
    // Portuguese.
    ("obrigado", 1.9),
    ("obrigada", 1.9),
    ("otimo", 2.7),
    ("otima", 2.7),
    ("perfeito", 2.7),
    ("bom", 1.8),
    ("ruim", -2.5),
    ("pessimo", -3.0),
    ("pessima", -3.0),
    ("horrivel", -3.0),
    ("terrivel", -2.9),
    ("odeio", -2.7),
    ("absurdo", -2.0),
    ("lixo", -2.5),
    ("vergonha", -2.2),
    ("irritado", -2.0),
    ("merda", -2.8),
    // Italian.
    ("grazie", 1.9),
    ("ottimo", 2.7),
    ("perfetto", 2.7),
    ("buono", 1.8),
    ("orribile", -3.0),
    ("terribile", -2.9),
    ("schifo", -2.8),
    ("vergogna", -2.2),
    ("vergognoso", -2.5),
    ("deluso", -2.0),
    ("arrabbiato", -2.3),
    ("truffa", -2.6),
    ("inutile", -2.0),
    ("inaccettabile", -2.5),
];

/// Words that negate the sentiment word shortly after them.
#[rustfmt::skip]
const NEGATIONS: &[&str] = &[
    // English, with contractions as `text::tokens` spells them.
    "not", "no", "never", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "cant",
    "cannot", "couldnt", "wont", "wouldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint",
    "nothing", "nobody", "neither", "nor", "without", "hardly",
    // Other languages.
    "nunca", "jamas", "ni", "ne", "n", "pas", "jamais", "nicht", "kein", "keine", "keinen", "nie",
    "niemals", "nao", "nem", "non", "mai",
];

/// Words that strengthen the sentiment word right after them.
#[rustfmt::skip]
const INTENSIFIERS: &[&str] = &[
    "very", "really", "so", "extremely", "totally", "absolutely", "completely", "incredibly",
    "utterly", "highly", "too", "truly", "fucking", "bloody", "damn", "goddamn", "muy",
    "realmente", "tres", "vraiment", "sehr", "wirklich", "total", "muito", "molto", "davvero",
];

/// Words that soften the sentiment word right after them.
#[rustfmt::skip]
const DAMPENERS: &[&str] = &[
    "slightly", "somewhat", "kinda", "kindof", "little", "bit", "barely", "fairly", "rather",
];

/// Words after which the customer's real opinion follows ("nice site but useless support").
const CONTRASTS: &[&str] = &["but", "however", "pero", "aber", "cependant"];

/// Emoji carry sentiment in chat as much as words do.
const EMOJI: &[(char, f32)] = &[
    ('\u{1F600}', 2.0),  // grinning face
    ('\u{1F603}', 2.0),  // smiling face with open mouth
    ('\u{1F642}', 1.5),  // slightly smiling face
    ('\u{1F60A}', 2.0),  // smiling face with smiling eyes
    ('\u{1F60D}', 2.8),  // heart eyes
    ('\u{1F44D}', 1.8),  // thumbs up
    ('\u{2764}', 2.5),   // red heart
    ('\u{1F64F}', 1.5),  // folded hands
    ('\u{1F620}', -2.5), // angry face
    ('\u{1F621}', -3.0), // pouting face
    ('\u{1F624}', -2.2), // face with steam
    ('\u{1F92C}', -3.2), // face with symbols on mouth
    ('\u{1F44E}', -2.0), // thumbs down
    ('\u{1F61E}', -2.0), // disappointed face
    ('\u{1F622}', -2.0), // crying face
    ('\u{1F62D}', -2.4), // loudly crying face
    ('\u{1F612}', -1.6), // unamused face
    ('\u{1F641}', -1.5), // slightly frowning face
    ('\u{2639}', -1.8),  // frowning face
];

/// How far back (in words) a negation still applies.
const NEGATION_WINDOW: usize = 3;
/// Negated sentiment is flipped and weakened: "not good" is bad, but less than "bad".
const NEGATION_FACTOR: f32 = -0.74;
/// Added to a word's magnitude by an intensifier before it.
const INTENSIFIER_BOOST: f32 = 0.293;
/// Added to a word's magnitude when the word is shouted in ALL CAPS.
const CAPS_BOOST: f32 = 0.733;
/// Added to the message's magnitude per exclamation mark, up to [`MAX_EXCLAMATIONS`].
const EXCLAMATION_BOOST: f32 = 0.292;
const MAX_EXCLAMATIONS: usize = 4;
/// Controls how fast the summed valence approaches +-1 (VADER's normalisation constant).
const NORMALIZATION_ALPHA: f32 = 15.0;

static LEXICON_MAP: LazyLock<HashMap<&'static str, f32>> =
    LazyLock::new(|| LEXICON.iter().copied().collect());

/// One word of the message, with whether the customer typed it in capitals.
struct Word {
    text: String,
    shouted: bool,
}

/// Splits the raw message into words, remembering capitalisation, which `text::tokens` loses.
fn words(message: &str) -> Vec<Word> {
    let mut out = Vec::new();
    // Chunks are split the same way `text::tokens` splits words, except that apostrophes stay
    // inside the chunk so `text::tokens` can apply its contraction rules to it.
    for chunk in message.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c))) {
        let letters: Vec<char> = chunk.chars().filter(|c| c.is_alphabetic()).collect();
        let shouted = letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase());
        for token in text::tokens(chunk) {
            out.push(Word {
                text: token,
                shouted,
            });
        }
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '`')
}

/// How positive (up to 1) or negative (down to -1) a customer's message reads, so escalation
/// rules can react to an upset customer before they ask for a person.
pub fn score(text: &str) -> f32 {
    let words = words(text);
    let lexicon = &*LEXICON_MAP;

    // Position of the last contrast word: sentiment before it counts less, after it more.
    let contrast_at = words
        .iter()
        .rposition(|w| CONTRASTS.contains(&w.text.as_str()));

    let mut total = 0.0_f32;
    for (i, word) in words.iter().enumerate() {
        let Some(&base) = lexicon.get(word.text.as_str()) else {
            continue;
        };
        // An intensifier word that is itself in the lexicon ("damn") only counts as an
        // intensifier when a sentiment word follows it.
        if INTENSIFIERS.contains(&word.text.as_str())
            && words
                .get(i + 1)
                .is_some_and(|next| lexicon.contains_key(next.text.as_str()))
        {
            continue;
        }
        let mut magnitude = base.abs();
        let sign = base.signum();
        if word.shouted {
            magnitude += CAPS_BOOST;
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| words.get(p)) {
            if INTENSIFIERS.contains(&prev.text.as_str()) {
                magnitude += INTENSIFIER_BOOST;
                if prev.shouted {
                    magnitude += INTENSIFIER_BOOST;
                }
            } else if DAMPENERS.contains(&prev.text.as_str()) {
                magnitude = (magnitude - INTENSIFIER_BOOST).max(0.0);
            }
        }
        let mut valence = sign * magnitude;
        let window_start = i.saturating_sub(NEGATION_WINDOW);
        if words[window_start..i]
            .iter()
            .any(|w| NEGATIONS.contains(&w.text.as_str()))
        {
            valence *= NEGATION_FACTOR;
        }
        match contrast_at {
            Some(c) if i < c => valence *= 0.5,
            Some(c) if i > c => valence *= 1.5,
            _ => {}
        }
        total += valence;
    }

    for c in text.chars() {
        if let Some(&(_, v)) = EMOJI.iter().find(|(e, _)| *e == c) {
            total += v;
        }
    }

    if total != 0.0 {
        let exclamations = text.chars().filter(|&c| c == '!').count();
        total += total.signum() * EXCLAMATION_BOOST * exclamations.min(MAX_EXCLAMATIONS) as f32;
    }

    let squashed = total / (total * total + NORMALIZATION_ALPHA).sqrt();
    squashed.clamp(-1.0, 1.0)
}

/// How sentiment has moved over a conversation, so escalation can react to a customer who is
/// getting angrier, not just to one bad message.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SentimentState {
    /// Score of the latest message.
    pub current: f32,
    /// Worst score seen so far in the conversation.
    pub lowest: f32,
    /// Recent direction of change: negative when messages are getting angrier. An
    /// exponential moving average of message-to-message differences, so it needs no history.
    pub trend: f32,
    /// Number of messages scored.
    pub samples: u32,
}

/// Weight of the newest difference in [`SentimentState::trend`]; about the last three turns
/// matter.
const TREND_SMOOTHING: f32 = 0.5;

impl SentimentState {
    /// Folds the score of a new customer message into the state.
    pub fn update(&mut self, score: f32) {
        let score = if score.is_finite() {
            score.clamp(-1.0, 1.0)
        } else {
            // A broken scorer must not poison the stored state.
            0.0
        };
        if self.samples == 0 {
            self.current = score;
            self.lowest = score;
            self.trend = 0.0;
        } else {
            let delta = score - self.current;
            self.trend = TREND_SMOOTHING * delta + (1.0 - TREND_SMOOTHING) * self.trend;
            self.current = score;
            self.lowest = self.lowest.min(score);
        }
        self.samples = self.samples.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_text_is_zero() {
        assert_eq!(score("Where is my order 12345?"), 0.0);
        assert_eq!(score(""), 0.0);
    }

    #[test]
    fn positive_and_negative_words() {
        assert!(score("This is great, thanks") > 0.5);
        assert!(score("This is terrible") < -0.5);
        assert!(score("the worst service, I hate it") < -0.7);
    }

    #[test]
    fn stays_in_range() {
        let s = score("TERRIBLE AWFUL HORRIBLE WORST SCAM FRAUD!!!!!!!! 😡😡😡");
        assert!((-1.0..=1.0).contains(&s));
        assert!(s < -0.9);
        let s = score("great great great amazing perfect love it!!!!");
        assert!((-1.0..=1.0).contains(&s));
        assert!(s > 0.9);
    }

    #[test]
    fn negation_flips_sentiment() {
        assert!(score("good") > 0.0);
        assert!(score("not good") < 0.0);
        assert!(score("this is not very good") < 0.0);
        assert!(score("I don't like waiting and it's not helpful") < 0.0);
        assert!(score("not bad") > 0.0);
        // Negation is weaker than the opposite word.
        assert!(score("not good").abs() < score("bad").abs());
    }

    #[test]
    fn negation_only_reaches_nearby_words() {
        // "not" is too far from "great" to flip it.
        assert!(score("I could not find the button at first, great site") > 0.0);
    }

    #[test]
    fn intensifiers_and_dampeners() {
        assert!(score("very bad") < score("bad"));
        assert!(score("extremely good") > score("good"));
        assert!(score("slightly bad") > score("bad"));
    }

    #[test]
    fn caps_and_exclamations_amplify() {
        assert!(score("this is BAD") < score("this is bad"));
        assert!(score("this is bad!!!") < score("this is bad"));
        assert!(score("thanks!!!") > score("thanks"));
        // Exclamation marks alone carry no direction.
        assert_eq!(score("hello!!!"), 0.0);
    }

    #[test]
    fn contrast_weights_the_second_clause() {
        assert!(score("the site is nice but the support is useless") < 0.0);
        assert!(score("delivery was slow but the support was excellent") > 0.0);
    }

    #[test]
    fn other_languages_are_not_neutral() {
        assert!(score("Esto es una estafa, servicio pésimo") < -0.5);
        assert!(score("Muchas gracias, excelente") > 0.5);
        assert!(score("C'est nul, je suis très déçu") < -0.5);
        assert!(score("Das ist schrecklich, ich bin enttäuscht") < -0.5);
        assert!(score("Danke, perfekt!") > 0.5);
        assert!(score("Atendimento péssimo, que vergonha") < -0.5);
        assert!(score("Servizio orribile, che schifo") < -0.5);
        assert!(score("Grazie mille, ottimo") > 0.5);
        // Negation in other languages.
        assert!(score("no es bueno") < 0.0);
        assert!(score("das ist nicht gut") < 0.0);
    }

    #[test]
    fn emoji_count() {
        assert!(score("😡") < -0.3);
        assert!(score("👍") > 0.3);
    }

    #[test]
    fn intensifying_swear_word_is_not_counted_twice() {
        // "damn" strengthens "good" rather than making the message negative.
        assert!(score("damn good") > score("good"));
        assert!(score("damn") < 0.0);
        assert!(score("I am talking to a fucking bot") < 0.0);
    }

    #[test]
    fn state_tracks_current_lowest_and_samples() {
        let mut state = SentimentState::default();
        state.update(0.2);
        assert_eq!(state.samples, 1);
        assert_eq!(state.current, 0.2);
        assert_eq!(state.lowest, 0.2);
        assert_eq!(state.trend, 0.0);
        state.update(-0.6);
        state.update(0.1);
        assert_eq!(state.samples, 3);
        assert_eq!(state.current, 0.1);
        assert_eq!(state.lowest, -0.6);
    }

    #[test]
    fn trend_follows_recent_direction() {
        let mut state = SentimentState::default();
        for s in [0.5, 0.2, -0.1, -0.4, -0.7] {
            state.update(s);
        }
        assert!(state.trend < -0.2, "trend {}", state.trend);
        for s in [-0.4, 0.0, 0.4] {
            state.update(s);
        }
        assert!(state.trend > 0.2, "trend {}", state.trend);
        // A flat conversation settles towards no trend.
        for _ in 0..10 {
            state.update(0.4);
        }
        assert!(state.trend.abs() < 0.01, "trend {}", state.trend);
    }

    #[test]
    fn state_ignores_invalid_scores_and_clamps() {
        let mut state = SentimentState::default();
        state.update(f32::NAN);
        assert_eq!(state.current, 0.0);
        state.update(-5.0);
        assert_eq!(state.current, -1.0);
        assert_eq!(state.lowest, -1.0);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut state = SentimentState::default();
        state.update(-0.3);
        state.update(0.1);
        let encoded = toml::to_string(&state).expect("serialize");
        let decoded: SentimentState = toml::from_str(&encoded).expect("deserialize");
        assert_eq!(decoded, state);
    }

    #[test]
    fn bitext_offensive_messages_read_negative() {
        // The Bitext sample tags offensive wording with W; those messages should read clearly
        // negative, while plain information requests should read neutral.
        let (mut offensive, mut offensive_sum, mut offensive_negative) = (0u32, 0.0f32, 0u32);
        let (mut info, mut info_sum) = (0u32, 0.0f32);
        for row in crate::analysis::dataset::bitext_rows() {
            let s = score(&row.instruction);
            if row.tags.contains('W') {
                offensive += 1;
                offensive_sum += s;
                offensive_negative += u32::from(s < -0.3);
            } else if row.intent.starts_with("check_") || row.intent.starts_with("track_") {
                info += 1;
                info_sum += s;
            }
        }
        let offensive_mean = offensive_sum / offensive.max(1) as f32;
        let info_mean = info_sum / info.max(1) as f32;
        println!(
            "sentiment: offensive mean {offensive_mean:.3} ({offensive_negative}/{offensive} \
             below -0.3), information requests mean {info_mean:.3} (n={info})"
        );
        assert!(offensive > 50 && info > 200, "too few rows read");
        assert!(offensive_mean < -0.25, "offensive mean {offensive_mean}");
        assert!(offensive_negative * 10 >= offensive * 6);
        assert!(info_mean.abs() < 0.05, "information mean {info_mean}");
    }
}
