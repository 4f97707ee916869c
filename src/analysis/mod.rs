//! Pure functions that read customer messages: sentiment, language, entities, intents,
//! repetition, summaries. No I/O, no state beyond what is passed in, so they are easy to
//! test and to benchmark. [`Analyzer`] bundles them with the business's configuration, built
//! once at startup and shared by every conversation.

pub mod entities;
pub mod intents;
pub mod language;
pub mod repetition;
pub mod sentiment;
pub mod summary;
pub mod text;

#[cfg(test)]
pub mod dataset;

use serde::Serialize;

use crate::escalation::explicit::{ExplicitMatch, ExplicitRequestDetector};
use entities::{EntityExtractor, FoundEntity};
use intents::{IntentError, IntentMatch, IntentMatcher, IntentRule};
use language::{Language, LanguageDetector};

/// What the analyzer is configured with (`[analysis]`, plus the explicit-request phrases
/// from `[escalation]`).
#[derive(Debug, Clone)]
pub struct AnalyzerSettings {
    /// Languages the business serves; detection chooses among these only.
    pub languages: Vec<Language>,
    /// The business's own entities: (name, regex); group 1, if any, is the value.
    pub entity_patterns: Vec<(String, String)>,
    /// The business's own intents; one named like a built-in extends it.
    pub intents: Vec<IntentRule>,
    /// Whether the built-in sensitive intents (refund, account_change, complaint,
    /// cancel_order) are matched.
    pub builtin_intents: bool,
    /// Extra ways of asking for a person.
    pub explicit_phrases: Vec<String>,
}

impl Default for AnalyzerSettings {
    /// All six languages, built-in intents on, nothing custom: right for a typical shop.
    fn default() -> Self {
        AnalyzerSettings {
            languages: Language::ALL.to_vec(),
            entity_patterns: Vec::new(),
            intents: Vec::new(),
            builtin_intents: true,
            explicit_phrases: Vec::new(),
        }
    }
}

/// Why an analyzer could not be built from its settings; shown when config is loaded.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A custom entity pattern that is not a valid regex.
    #[error("entity `{name}`: {source}")]
    Entity {
        /// The entity's configured name.
        name: String,
        /// What the regex compiler said.
        #[source]
        source: regex::Error,
    },
    /// An intent rule that cannot be used.
    #[error(transparent)]
    Intent(#[from] IntentError),
}

/// Everything the analysis says about one message: what the escalation policy, the router
/// and the handoff package read.
#[derive(Debug, Clone, Serialize)]
pub struct MessageAnalysis {
    /// -1 (angry) to 1 (delighted).
    pub sentiment: f32,
    /// The message's language, when it can be told.
    pub language: Option<Language>,
    /// Order numbers, emails, phones, amounts and the business's own kinds.
    pub entities: Vec<FoundEntity>,
    /// Intents found, with whether the customer asks to act.
    pub intents: Vec<IntentMatch>,
    /// The customer's request for a person, if they made one.
    pub explicit_request: Option<ExplicitMatch>,
}

/// The configured analysis, built once and shared by every conversation.
#[derive(Debug)]
pub struct Analyzer {
    languages: LanguageDetector,
    entities: EntityExtractor,
    intents: IntentMatcher,
    explicit: ExplicitRequestDetector,
}

impl Analyzer {
    /// Compiles the settings: loads the language models, compiles patterns and phrases.
    /// Takes some milliseconds; do it once.
    pub fn new(settings: &AnalyzerSettings) -> Result<Analyzer, AnalysisError> {
        // Each pattern alone first, so the error can name the entity.
        for (name, pattern) in &settings.entity_patterns {
            regex::Regex::new(pattern).map_err(|source| AnalysisError::Entity {
                name: name.clone(),
                source,
            })?;
        }
        let entities = EntityExtractor::new(&settings.entity_patterns).map_err(|source| {
            AnalysisError::Entity {
                name: String::new(),
                source,
            }
        })?;
        Ok(Analyzer {
            languages: LanguageDetector::new(&settings.languages),
            entities,
            intents: IntentMatcher::new(&settings.intents, settings.builtin_intents)?,
            explicit: ExplicitRequestDetector::new(&settings.explicit_phrases),
        })
    }

    /// The languages detection chooses among.
    pub fn languages(&self) -> &[Language] {
        self.languages.languages()
    }

    /// Analyses one customer message.
    pub fn analyze(&self, text: &str) -> MessageAnalysis {
        self.analyze_in(text, None)
    }

    /// Analyses one customer message of a conversation whose language is known: when the
    /// message alone is too short to tell ("no!!", "ok"), sentiment reads it in
    /// `conversation_language`. The reported `language` is still the message's own.
    pub fn analyze_in(
        &self,
        text: &str,
        conversation_language: Option<Language>,
    ) -> MessageAnalysis {
        let language = self.languages.detect(text).map(|(l, _)| l);
        MessageAnalysis {
            sentiment: sentiment::score_in(text, language.or(conversation_language)),
            language,
            entities: self.entities.extract(text),
            intents: self.intents.matches(text),
            explicit_request: self.explicit.detect(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new(&AnalyzerSettings {
            entity_patterns: vec![("sku".into(), r"\bSKU-(\d{4})\b".into())],
            ..AnalyzerSettings::default()
        })
        .expect("analyzer")
    }

    #[test]
    fn one_message_analysed_whole() {
        let a = analyzer();
        let m = a.analyze(
            "This is terrible! I want my money back for SKU-1234, order 55512345. Let me talk \
             to a human.",
        );
        assert!(m.sentiment < -0.3, "{}", m.sentiment);
        assert_eq!(m.language, Some(Language::En));
        assert!(
            m.entities
                .iter()
                .any(|e| e.kind == "sku" && e.value == "1234")
        );
        assert!(
            m.entities
                .iter()
                .any(|e| e.kind == "order_number" && e.value == "55512345")
        );
        assert!(
            m.intents
                .iter()
                .any(|i| i.name == "refund" && i.act && i.sensitive)
        );
        assert!(m.explicit_request.is_some());
    }

    #[test]
    fn other_languages_and_quiet_messages() {
        let a = analyzer();
        let es = a.analyze("quiero hablar con una persona, esto es horrible");
        assert_eq!(es.language, Some(Language::Es));
        assert!(es.explicit_request.is_some());
        assert!(es.sentiment < 0.0);
        let it = a.analyze("alla fine è arrivato il pacco, grazie");
        assert_eq!(it.language, Some(Language::It));
        assert!(it.sentiment > 0.0, "{}", it.sentiment);
        let ok = a.analyze("ok");
        assert_eq!(ok.language, None);
        assert!(ok.intents.is_empty() && ok.entities.is_empty() && ok.explicit_request.is_none());
    }

    #[test]
    fn conversation_language_reads_short_messages() {
        let a = analyzer();
        // "male" is "badly" in Italian, but alone it could be any language.
        assert_eq!(a.analyze("male!!").language, None);
        assert!(a.analyze_in("male!!", Some(Language::It)).sentiment < 0.0);
    }

    #[test]
    fn settings_are_validated() {
        let bad_entity = Analyzer::new(&AnalyzerSettings {
            entity_patterns: vec![("bad".into(), "(".into())],
            ..AnalyzerSettings::default()
        });
        let text = bad_entity.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("entity `bad`"), "{text}");
        let bad_intent = Analyzer::new(&AnalyzerSettings {
            intents: vec![IntentRule {
                name: "x".into(),
                phrases: vec![],
                patterns: vec!["[".into()],
                sensitive: true,
            }],
            ..AnalyzerSettings::default()
        });
        assert!(matches!(bad_intent, Err(AnalysisError::Intent(_))));
        let only_en = Analyzer::new(&AnalyzerSettings {
            languages: vec![Language::En],
            builtin_intents: false,
            ..AnalyzerSettings::default()
        })
        .expect("valid");
        assert_eq!(only_en.languages(), &[Language::En]);
        assert!(only_en.analyze("I want my money back").intents.is_empty());
    }

    #[test]
    fn analysis_serializes_for_the_analyze_command() {
        let m = analyzer().analyze("cancel my order 12345678 please");
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(json["language"], "en");
        assert_eq!(json["intents"][0]["name"], "cancel_order");
        assert_eq!(json["intents"][0]["act"], true);
        assert_eq!(json["entities"][0]["kind"], "order_number");
        assert!(json["explicit_request"].is_null());
        assert!(json["sentiment"].is_number());
    }
}
