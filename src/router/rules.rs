//! Routing rules: which team an escalation goes to, which skills it needs, how urgent it
//! is, from what the conversation is about. Pure; the conversation applies them when it
//! escalates, so the queue entry already carries the answer.

use crate::config::RoutingRule;

/// What the rules look at.
#[derive(Debug, Clone, Default)]
pub struct RouteContext<'a> {
    pub intents: &'a [String],
    pub triggers: &'a [String],
    pub language: Option<&'a str>,
    pub channel: &'a str,
    pub entity_kinds: &'a [String],
    pub attributes: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// Where an escalation goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub team: String,
    pub skills: Vec<String>,
    pub priority: u8,
}

/// Applies the first matching rule. The team the policy chose stands when it was named by a
/// trigger (a keyword rule's team): `team_is_default` says it was only the default.
pub fn route(
    rules: &[RoutingRule],
    ctx: &RouteContext<'_>,
    decided: Route,
    team_is_default: bool,
) -> Route {
    let Some(rule) = rules.iter().find(|r| matches(r, ctx)) else {
        return decided;
    };
    Route {
        team: match (&rule.team, team_is_default) {
            (Some(t), true) => t.clone(),
            _ => decided.team,
        },
        skills: rule.skills.clone(),
        priority: decided.priority.max(rule.min_priority.unwrap_or(0)).min(3),
    }
}

fn matches(r: &RoutingRule, ctx: &RouteContext<'_>) -> bool {
    r.intent.as_ref().is_none_or(|i| ctx.intents.contains(i))
        && r.trigger.as_ref().is_none_or(|t| ctx.triggers.contains(t))
        && r.language
            .as_deref()
            .is_none_or(|l| ctx.language.is_some_and(|c| c.eq_ignore_ascii_case(l)))
        && r.channel.as_deref().is_none_or(|c| c == ctx.channel)
        && r.entity
            .as_ref()
            .is_none_or(|e| ctx.entity_kinds.contains(e))
        && r.attributes
            .iter()
            .all(|(k, v)| ctx.attributes.and_then(|a| a.get(k)) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        intent: Option<&str>,
        language: Option<&str>,
        team: &str,
        skills: &[&str],
    ) -> RoutingRule {
        RoutingRule {
            intent: intent.map(String::from),
            trigger: None,
            language: language.map(String::from),
            channel: None,
            entity: None,
            attributes: Default::default(),
            team: Some(team.into()),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            min_priority: None,
        }
    }

    #[test]
    fn first_matching_rule_applies() {
        let rules = vec![
            rule(Some("refund"), None, "billing", &["refunds"]),
            rule(None, Some("es"), "support", &["spanish"]),
        ];
        let decided = Route {
            team: "support".into(),
            skills: vec![],
            priority: 1,
        };
        let intents = vec!["refund".to_string()];
        let ctx = RouteContext {
            intents: &intents,
            language: Some("es"),
            channel: "widget",
            ..Default::default()
        };
        let r = route(&rules, &ctx, decided.clone(), true);
        assert_eq!(r.team, "billing");
        assert_eq!(r.skills, vec!["refunds".to_string()]);
        let ctx = RouteContext {
            language: Some("es"),
            channel: "widget",
            ..Default::default()
        };
        assert_eq!(
            route(&rules, &ctx, decided.clone(), true).skills,
            vec!["spanish".to_string()]
        );
        // A team named by the trigger itself stands.
        let ctx = RouteContext {
            intents: &intents,
            channel: "widget",
            ..Default::default()
        };
        let named = Route {
            team: "legal".into(),
            ..decided.clone()
        };
        assert_eq!(route(&rules, &ctx, named, false).team, "legal");
        // Nothing matches: unchanged.
        let ctx = RouteContext {
            channel: "widget",
            ..Default::default()
        };
        assert_eq!(route(&rules, &ctx, decided.clone(), true), decided);
    }

    #[test]
    fn attribute_conditions_need_every_attribute() {
        let mut r = rule(None, None, "vip-desk", &[]);
        r.attributes = [("tier".to_string(), "vip".to_string())].into();
        r.min_priority = Some(3);
        let decided = Route {
            team: "support".into(),
            skills: vec![],
            priority: 1,
        };
        let vip: std::collections::BTreeMap<String, String> = [
            ("tier".to_string(), "vip".to_string()),
            ("plan".to_string(), "pro".to_string()),
        ]
        .into();
        let ctx = RouteContext {
            channel: "widget",
            attributes: Some(&vip),
            ..Default::default()
        };
        let routed = route(std::slice::from_ref(&r), &ctx, decided.clone(), true);
        assert_eq!((routed.team.as_str(), routed.priority), ("vip-desk", 3));
        let basic: std::collections::BTreeMap<String, String> =
            [("tier".to_string(), "basic".to_string())].into();
        for attributes in [None, Some(&basic)] {
            let ctx = RouteContext {
                channel: "widget",
                attributes,
                ..Default::default()
            };
            assert_eq!(
                route(std::slice::from_ref(&r), &ctx, decided.clone(), true),
                decided
            );
        }
    }

    #[test]
    fn priority_is_raised_not_lowered() {
        let mut r = rule(None, None, "support", &[]);
        r.min_priority = Some(2);
        let ctx = RouteContext {
            channel: "widget",
            ..Default::default()
        };
        let low = Route {
            team: "support".into(),
            skills: vec![],
            priority: 0,
        };
        assert_eq!(route(&[r.clone()], &ctx, low, true).priority, 2);
        let high = Route {
            team: "support".into(),
            skills: vec![],
            priority: 3,
        };
        assert_eq!(route(&[r], &ctx, high, true).priority, 3);
    }
}
