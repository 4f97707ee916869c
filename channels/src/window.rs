//! Messaging windows: some platforms (Meta's) let a business write freely only for a while
//! after the customer's last message. A channel describes its rules with [`WindowRules`];
//! the daemon, which knows when the customer last wrote, asks them before anything is sent.

use serde::{Deserialize, Serialize};

/// How a message must be sent on a platform with a messaging window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum DeliveryMode {
    /// An ordinary message, inside the window (or on a channel without one).
    #[default]
    Standard,
    /// Written by a person after the standard window: sent with Meta's HUMAN_AGENT tag.
    HumanAgent,
    /// A pre-approved template, the only thing WhatsApp accepts outside the window.
    Template {
        name: String,
        language: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        params: Vec<String>,
    },
}

impl DeliveryMode {
    /// True for [`DeliveryMode::Standard`]; keeps it out of serialized messages.
    pub fn is_standard(&self) -> bool {
        matches!(self, DeliveryMode::Standard)
    }
}

/// A template the business had approved on the platform, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template's name on the platform.
    pub name: String,
    /// Its language code on the platform (`en_US`, `de`...).
    pub language: String,
    /// The approved body with `{{1}}`, `{{2}}`... placeholders: what the transcript shows
    /// and how many parameters an agent must give.
    pub text: String,
}

impl TemplateSpec {
    /// The number of parameters: the highest `{{n}}` placeholder in the text.
    pub fn param_count(&self) -> usize {
        let mut max = 0;
        let mut rest = self.text.as_str();
        while let Some(start) = rest.find("{{") {
            rest = &rest[start + 2..];
            if let Some(end) = rest.find("}}") {
                if let Ok(n) = rest[..end].trim().parse::<usize>() {
                    max = max.max(n);
                }
                rest = &rest[end + 2..];
            }
        }
        max
    }

    /// The text with its parameters filled in, or why the parameters do not fit.
    pub fn render(&self, params: &[String]) -> Result<String, String> {
        let want = self.param_count();
        if params.len() != want {
            return Err(format!(
                "template `{}` takes {want} parameter(s), {} given",
                self.name,
                params.len()
            ));
        }
        if params.iter().any(|p| p.trim().is_empty()) {
            return Err(format!(
                "template `{}`: parameters may not be empty",
                self.name
            ));
        }
        let mut text = self.text.clone();
        for (i, p) in params.iter().enumerate() {
            text = text.replace(&format!("{{{{{}}}}}", i + 1), p);
        }
        Ok(text)
    }
}

/// A platform's window rules.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRules {
    /// Free-form messages are allowed this long after the customer's last message.
    pub free_form_ms: u64,
    /// After that, a person (never a bot) may still write this long with a tag.
    pub human_agent_ms: Option<u64>,
    /// Templates that may be sent at any time.
    pub templates: Vec<TemplateSpec>,
}

/// Where a conversation stands in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Anyone may write.
    Open,
    /// Only a person may write, and the message is tagged.
    HumanAgentOnly,
    /// Only a configured template may be sent.
    TemplateOnly,
    /// Nothing may be sent until the customer writes again.
    Closed,
}

/// What an agent is told about a conversation's window before typing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    pub state: WindowState,
    /// When the current state ends (ms since the epoch), if it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// When the customer last wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_customer_message_ms: Option<u64>,
    /// Names of the templates an agent may send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
}

/// Why a message may not be sent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "the 24-hour window closed (the customer last wrote more than 24 hours ago): only a person may reply now"
    )]
    PersonOnly,
    #[error(
        "the 24-hour window closed (the customer last wrote more than 24 hours ago): only an approved template may be sent"
    )]
    TemplateOnly,
    #[error("the messaging window closed: nothing can be sent until the customer writes again")]
    Closed,
}

impl WindowRules {
    /// The state at `now_ms` for a customer who last wrote at `last_customer_ms`.
    pub fn view(&self, last_customer_ms: Option<u64>, now_ms: u64) -> WindowView {
        let templates = self.templates.iter().map(|t| t.name.clone()).collect();
        let (state, until_ms) = match last_customer_ms {
            Some(last) if now_ms < last.saturating_add(self.free_form_ms) => (
                WindowState::Open,
                Some(last.saturating_add(self.free_form_ms)),
            ),
            Some(last)
                if self
                    .human_agent_ms
                    .is_some_and(|h| now_ms < last.saturating_add(h)) =>
            {
                let until = self.human_agent_ms.map(|h| last.saturating_add(h));
                (WindowState::HumanAgentOnly, until)
            }
            _ if !self.templates.is_empty() => (WindowState::TemplateOnly, None),
            _ => (WindowState::Closed, None),
        };
        WindowView {
            state,
            until_ms,
            last_customer_message_ms: last_customer_ms,
            templates,
        }
    }

    /// How a free-form message may go out now: `by_person` is true for an agent's reply,
    /// false for the bot and automatic notices.
    pub fn free_form_mode(
        &self,
        by_person: bool,
        last_customer_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<DeliveryMode, WindowError> {
        match self.view(last_customer_ms, now_ms).state {
            WindowState::Open => Ok(DeliveryMode::Standard),
            WindowState::HumanAgentOnly if by_person => Ok(DeliveryMode::HumanAgent),
            WindowState::HumanAgentOnly => Err(WindowError::PersonOnly),
            WindowState::TemplateOnly => Err(WindowError::TemplateOnly),
            WindowState::Closed => Err(WindowError::Closed),
        }
    }

    /// The configured template of that name.
    pub fn template(&self, name: &str) -> Option<&TemplateSpec> {
        self.templates.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn template() -> TemplateSpec {
        TemplateSpec {
            name: "order_update".into(),
            language: "en_US".into(),
            text: "Hi {{1}}, order {{2}} has news.".into(),
        }
    }

    fn whatsapp() -> WindowRules {
        WindowRules {
            free_form_ms: 24 * H,
            human_agent_ms: None,
            templates: vec![template()],
        }
    }

    fn messenger() -> WindowRules {
        WindowRules {
            free_form_ms: 24 * H,
            human_agent_ms: Some(7 * 24 * H),
            templates: vec![],
        }
    }

    #[test]
    fn whatsapp_is_open_for_24_hours_then_templates_only() {
        let w = whatsapp();
        let last = 1_000 * H;
        let open = w.view(Some(last), last + 23 * H);
        assert_eq!(open.state, WindowState::Open);
        assert_eq!(open.until_ms, Some(last + 24 * H));
        assert_eq!(
            w.free_form_mode(true, Some(last), last + 23 * H),
            Ok(DeliveryMode::Standard)
        );
        assert_eq!(
            w.view(Some(last), last + 24 * H).state,
            WindowState::TemplateOnly
        );
        assert_eq!(
            w.free_form_mode(true, Some(last), last + 25 * H),
            Err(WindowError::TemplateOnly)
        );
        assert_eq!(
            w.view(Some(last), last + 25 * H).templates,
            vec!["order_update"]
        );
    }

    #[test]
    fn messenger_lets_only_people_write_between_one_and_seven_days() {
        let m = messenger();
        let last = 1_000 * H;
        assert_eq!(
            m.free_form_mode(false, Some(last), last + H),
            Ok(DeliveryMode::Standard)
        );
        assert_eq!(
            m.free_form_mode(true, Some(last), last + 30 * H),
            Ok(DeliveryMode::HumanAgent)
        );
        assert_eq!(
            m.free_form_mode(false, Some(last), last + 30 * H),
            Err(WindowError::PersonOnly)
        );
        let v = m.view(Some(last), last + 30 * H);
        assert_eq!(v.state, WindowState::HumanAgentOnly);
        assert_eq!(v.until_ms, Some(last + 7 * 24 * H));
        assert_eq!(
            m.free_form_mode(true, Some(last), last + 8 * 24 * H),
            Err(WindowError::Closed)
        );
        assert_eq!(m.view(None, last).state, WindowState::Closed);
    }

    #[test]
    fn templates_count_and_fill_their_parameters() {
        let t = template();
        assert_eq!(t.param_count(), 2);
        assert_eq!(
            t.render(&["Kerry".into(), "A-1".into()]).as_deref(),
            Ok("Hi Kerry, order A-1 has news.")
        );
        assert!(t.render(&["Kerry".into()]).is_err());
        assert!(t.render(&["Kerry".into(), " ".into()]).is_err());
        let plain = TemplateSpec {
            text: "No parameters {{ here".into(),
            ..t
        };
        assert_eq!(plain.param_count(), 0);
    }
}
