//! Pure functions that read customer messages: sentiment, language, entities, intents,
//! repetition, summaries. No I/O, no state beyond what is passed in, so they are easy to
//! test and to benchmark. [`Analyzer`] bundles them with the business's configuration.

pub mod entities;
pub mod intents;
pub mod language;
pub mod repetition;
pub mod sentiment;
pub mod summary;
pub mod text;

#[cfg(test)]
pub mod dataset;

use regex::Regex;
use serde::Serialize;

use crate::escalation::explicit::{ExplicitMatch, ExplicitRequestDetector};
use entities::FoundEntity;
use intents::{IntentError, IntentMatch, IntentMatcher, IntentRule};
use language::{Language, LanguageDetector};

/// What the analyzer is configured with (`[analysis]` and the explicit-request phrases).
#[derive(Debug, Clone)]
pub struct AnalyzerSettings {
    pub languages: Vec<Language>,
    /// The business's own entities: (name, regex); group 1, if any, is the value.
    pub entity_patterns: Vec<(String, String)>,
    pub intents: Vec<IntentRule>,
    pub builtin_intents: bool,
    pub explicit_phrases: Vec<String>,
}

impl Default for AnalyzerSettings {
    fn default() -> Self {
        AnalyzerSettings {
            languages: vec![
                Language::En,
                Language::Es,
                Language::Fr,
                Language::De,
                Language::Pt,
                Language::It,
            ],
            entity_patterns: Vec::new(),
            intents: Vec::new(),
            builtin_intents: true,
            explicit_phrases: Vec::new(),
        }
    }
}

/// Why an analyzer could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("entity `{name}`: {source}")]
    Entity { name: String, source: regex::Error },
    #[error("{0}")]
    Intent(#[from] IntentError),
}

/// Everything the analysis says about one message.
#[derive(Debug, Clone, Serialize)]
pub struct MessageAnalysis {
    pub sentiment: f32,
    pub language: Option<Language>,
    pub entities: Vec<FoundEntity>,
    pub intents: Vec<IntentMatch>,
    pub explicit_request: Option<ExplicitMatch>,
}

/// The configured analysis, built once and shared by every conversation.
pub struct Analyzer {
    languages: LanguageDetector,
    custom_entities: Vec<(String, Regex)>,
    intents: IntentMatcher,
    explicit: ExplicitRequestDetector,
}

impl Analyzer {
    pub fn new(settings: &AnalyzerSettings) -> Result<Analyzer, AnalysisError> {
        let mut custom_entities = Vec::new();
        for (name, pattern) in &settings.entity_patterns {
            let re = Regex::new(pattern).map_err(|source| AnalysisError::Entity {
                name: name.clone(),
                source,
            })?;
            custom_entities.push((name.clone(), re));
        }
        Ok(Analyzer {
            languages: LanguageDetector::new(&settings.languages),
            custom_entities,
            intents: IntentMatcher::new(&settings.intents, settings.builtin_intents)?,
            explicit: ExplicitRequestDetector::new(&settings.explicit_phrases),
        })
    }

    /// Analyses one customer message.
    pub fn analyze(&self, text: &str) -> MessageAnalysis {
        let mut found = entities::extract(text);
        for (name, re) in &self.custom_entities {
            for caps in re.captures_iter(text) {
                let value = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str());
                if let Some(v) = value.filter(|v| !v.is_empty())
                    && !found.iter().any(|f| f.kind == *name && f.value == v)
                {
                    found.push(FoundEntity {
                        kind: name.clone(),
                        value: v.to_string(),
                    });
                }
            }
        }
        MessageAnalysis {
            sentiment: sentiment::score(text),
            language: self.languages.detect(text).map(|(l, _)| l),
            entities: found,
            intents: self.intents.matches(text),
            explicit_request: self.explicit.detect(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_analysed_whole() {
        let a = Analyzer::new(&AnalyzerSettings {
            entity_patterns: vec![("sku".into(), r"\bSKU-(\d{4})\b".into())],
            ..AnalyzerSettings::default()
        })
        .expect("analyzer");
        let m = a.analyze(
            "This is terrible! I want my money back for SKU-1234, order 55512345. Let me talk to a human.",
        );
        assert!(m.sentiment < 0.0, "{}", m.sentiment);
        assert_eq!(m.language, Some(Language::En));
        assert!(
            m.entities
                .iter()
                .any(|e| e.kind == "sku" && e.value == "1234")
        );
        assert!(m.entities.iter().any(|e| e.kind == "order_number"));
        assert!(m.intents.iter().any(|i| i.name == "refund" && i.act));
        assert!(m.explicit_request.is_some());
        let es = a.analyze("quiero hablar con una persona, esto es horrible");
        assert_eq!(es.language, Some(Language::Es));
        assert!(es.explicit_request.is_some());
        assert!(es.sentiment < 0.0);
        assert!(
            Analyzer::new(&AnalyzerSettings {
                entity_patterns: vec![("bad".into(), "(".into())],
                ..AnalyzerSettings::default()
            })
            .is_err()
        );
    }
}
