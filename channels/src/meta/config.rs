//! The configuration of one Meta channel (`[whatsapp]`, `[messenger]`, `[instagram]` in the
//! daemon's config): the app's secrets, where the Graph API is, and WhatsApp's templates.
//! The three platforms share this shape; each platform module supplies its defaults.

use serde::Deserialize;

use super::Platform;
use crate::window::TemplateSpec;

/// One Meta channel's settings, as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// The App Secret: the key of the `X-Hub-Signature-256` HMAC on every webhook POST.
    pub app_secret: String,
    /// The Verify Token typed into the App Dashboard, checked on the GET handshake.
    pub verify_token: String,
    /// The access token the Graph API is called with (system user, Page or Instagram token).
    pub access_token: String,
    /// The Graph API's base URL; the platform's public host when left out.
    #[serde(default)]
    pub graph_url: Option<String>,
    /// The Graph API version in request paths, like `v23.0`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Seconds a Graph API request may take before it is retried.
    #[serde(default = "default_timeout_secs")]
    pub request_timeout_secs: u64,
    /// WhatsApp only: the approved templates agents may send outside the 24-hour window.
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
}

fn default_api_version() -> String {
    "v23.0".into()
}

fn default_timeout_secs() -> u64 {
    15
}

impl MetaConfig {
    /// Problems as (key below the section, message); empty when the section is usable.
    pub fn problems(&self, platform: Platform) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: &str| out.push((k.to_string(), m.to_string()));
        if self.app_secret.trim().len() < 8 {
            bad(
                "app_secret",
                "must be the app's App Secret (it checks webhook signatures)",
            );
        }
        if self.verify_token.trim().is_empty() {
            bad("verify_token", "must not be empty");
        }
        if self.access_token.trim().is_empty() {
            bad("access_token", "must not be empty");
        }
        if let Some(url) = &self.graph_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bad(
                "graph_url",
                "must start with https:// (or http:// for a local test)",
            );
        }
        let v = self.api_version.strip_prefix('v').unwrap_or("");
        if v.is_empty()
            || !v
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            bad("api_version", "must look like v23.0");
        }
        if self.request_timeout_secs == 0 {
            bad("request_timeout_secs", "must be above 0");
        }
        if platform != Platform::Whatsapp && !self.templates.is_empty() {
            bad("templates", "only WhatsApp has message templates");
        }
        for (i, t) in self.templates.iter().enumerate() {
            if t.name.is_empty()
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                out.push((
                    format!("templates[{i}].name"),
                    "a template name is lowercase letters, digits and _".into(),
                ));
            }
            if t.language.trim().is_empty() {
                out.push((
                    format!("templates[{i}].language"),
                    "must not be empty".into(),
                ));
            }
            if t.text.trim().is_empty() {
                out.push((
                    format!("templates[{i}].text"),
                    "must be the approved body (with {{1}}... placeholders)".into(),
                ));
            }
            if self.templates[..i].iter().any(|o| o.name == t.name) {
                out.push((format!("templates[{i}].name"), "is configured twice".into()));
            }
        }
        out
    }

    /// The Graph API base URL without a trailing slash.
    pub fn base_url(&self, platform: Platform) -> String {
        self.graph_url
            .clone()
            .unwrap_or_else(|| platform.default_graph_url().to_string())
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MetaConfig {
        MetaConfig {
            app_secret: "0123456789abcdef".into(),
            verify_token: "meatyhamhock".into(),
            access_token: "token".into(),
            graph_url: None,
            api_version: default_api_version(),
            request_timeout_secs: 15,
            templates: vec![],
        }
    }

    #[test]
    fn a_complete_section_has_no_problems_and_defaults_its_host() {
        let c = config();
        assert!(c.problems(Platform::Whatsapp).is_empty());
        assert_eq!(c.base_url(Platform::Whatsapp), "https://graph.facebook.com");
        assert_eq!(
            c.base_url(Platform::Instagram),
            "https://graph.instagram.com"
        );
        let local = MetaConfig {
            graph_url: Some("http://127.0.0.1:9/".into()),
            ..config()
        };
        assert_eq!(local.base_url(Platform::Messenger), "http://127.0.0.1:9");
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let c = MetaConfig {
            app_secret: "short".into(),
            verify_token: " ".into(),
            access_token: String::new(),
            graph_url: Some("graph.example".into()),
            api_version: "23".into(),
            request_timeout_secs: 0,
            templates: vec![
                TemplateSpec {
                    name: "Bad Name".into(),
                    language: String::new(),
                    text: "x".into(),
                },
                TemplateSpec {
                    name: "Bad Name".into(),
                    language: "en".into(),
                    text: "x".into(),
                },
            ],
        };
        let keys: Vec<String> = c
            .problems(Platform::Messenger)
            .into_iter()
            .map(|p| p.0)
            .collect();
        for k in [
            "app_secret",
            "verify_token",
            "access_token",
            "graph_url",
            "api_version",
            "request_timeout_secs",
            "templates",
            "templates[0].name",
            "templates[0].language",
            "templates[1].name",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
