//! Named intents from rules: the built-in sensitive ones (refund, account_change, complaint,
//! cancel_order, in English, Spanish, French, German, Portuguese and Italian) and the
//! business's own (phrases matched in any order with small typos, or regular expressions).
//!
//! For the `sensitive_intent` trigger what matters is whether the customer asks us to *act*
//! ("I want my money back", "delete my account") or asks *about* the policy ("what is your
//! refund policy?", "how long does a refund take?", "where is my refund?"). Each match says
//! which, from the wording around it. "How do I cancel my order?" counts as a request to act:
//! the customer wants it done.

use regex::Regex;
use serde::Serialize;

use crate::analysis::text;

/// A configured intent.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentRule {
    pub name: String,
    pub phrases: Vec<String>,
    pub patterns: Vec<String>,
    pub sensitive: bool,
}

/// An intent found in a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentMatch {
    pub name: String,
    pub sensitive: bool,
    /// True when the customer asks us to do it, false when they ask about it.
    pub act: bool,
    /// What matched.
    pub evidence: String,
}

/// A rule that could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("intent `{name}`: pattern `{pattern}`: {source}")]
    Pattern {
        name: String,
        pattern: String,
        source: regex::Error,
    },
}

/// The built-in sensitive intents, as patterns over normalised text (lowercase, accents
/// folded: "rückerstattung" is "ruckerstattung", "contraseña" is "contrasena").
const BUILTIN: &[(&str, &[&str])] = &[
    (
        "refund",
        &[
            r"\b(refund\w*|money back|reimb\w*|chargeback|compensat\w*|restitution|rebat\w*)\b",
            r"\b(reembols\w*|devol\w* (el |mi )?dinero|devuelv\w* (el |mi )?dinero)\b",
            r"\b(rembours\w*)\b",
            r"\b(ruckerstatt\w*|geld zuruck|erstatt\w*)\b",
            r"\b(dinheiro de volta|estorno)\b",
            r"\b(rimbors\w*|soldi indietro)\b",
        ],
    ),
    (
        "account_change",
        &[
            r"\b(delet|clos|remov|deactivat|terminat|cancel)\w*\b.{0,40}\b(account|profile)\b",
            r"\b(account|profile)\w*\b.{0,30}\b(delet|clos|remov|deactivat|terminat|cancel)\w*",
            r"\b(chang|updat|edit|modif|correct)\w*\b.{0,30}\b(email|e-mail|address|password|phone number|account|details|profile|info\w*|data|user)\b",
            r"\b(eliminar|borrar|cerrar|cancelar|dar de baja) (mi |la )?cuenta\b",
            r"\b(cambiar|actualizar|modificar) (mi |el |la |mis )?(correo|direccion|nombre|contrasena|telefono|cuenta|datos)\b",
            r"\b(supprimer|fermer|desactiver|resilier) (mon |le )?compte\b",
            r"\b(changer|modifier|mettre a jour) (mon |ma |mes |l'|le |la )?(adresse|e-?mail|nom|mot de passe|telephone|compte|coordonnees)\b",
            r"\bkonto (loschen|schliessen|kundigen|deaktivieren)\b",
            r"\b(losch|schliess|kundig)\w* (mein|das) konto\b",
            r"\b(adresse|e-?mail|namen|passwort|telefonnummer|kontodaten) (andern|aktualisieren)\b",
            r"\b(excluir|apagar|encerrar|cancelar|desativar|fechar) (a |minha )?conta\b",
            r"\b(mudar|alterar|atualizar) (o |a |meu |minha )?(email|e-mail|endereco|nome|senha|telefone|conta|dados)\b",
            r"\b(eliminare|cancellare|chiudere|disattivare) (il |l')?(mio )?(account|profilo|conto)\b",
            r"\b(cambiare|modificare|aggiornare) (il |la |l'|mio |mia )?(indirizzo|email|e-mail|nome|password|telefono|account|dati)\b",
        ],
    ),
    (
        "complaint",
        &[
            r"\b(complain\w*|complaint|grievance|reclamation)\b",
            r"\b(lodg|fil|mak|submit|rais)\w* (a |an |the )?((customer|consumer) )?(claim|complaint)\b",
            r"\b(reclamacion\w*|queja\w*|quejarme)\b",
            r"\b(reclamation\w*|plainte)\b",
            r"\b(beschwer\w*)\b",
            r"\b(reclamac\w*|reclamar)\b",
            r"\b(reclamo|lamentela)\b",
        ],
    ),
    (
        "cancel_order",
        &[
            r"\w*cancel\w*\b.{0,20}\b(order|purchase)\b",
            r"\b(order|purchase) cancel\w*",
            r"\bcancelar (mi |el |un |meu |o |a |minha )?(pedido|compra|encomenda)\b",
            r"\bannuler (ma |la |une )?commande\b",
            r"\b(bestellung|auftrag) (stornieren|storno|zuruckziehen)\b",
            r"\bstornier\w* (meine |die )?bestellung\b",
            r"\bannullare (il |l'|mio |un )?(ordine|acquisto)\b",
        ],
    ),
];

/// The words the built-in patterns hinge on. A longer word one typo away from one of these
/// (two for long words) is read as it ("cancdling" as "canceling", "purhase" as "purchase").
const KEY_WORDS: &[&str] = &[
    "cancel",
    "canceling",
    "cancelling",
    "cancellation",
    "order",
    "purchase",
    "refund",
    "refunding",
    "reimburse",
    "reimbursement",
    "reimbursing",
    "compensation",
    "restitution",
    "account",
    "delete",
    "remove",
    "complaint",
    "complain",
    "reclamation",
    "profile",
    "information",
    "details",
    "money",
    "deleting",
    "closing",
    "removing",
    "change",
    "changing",
    "update",
    "updating",
];

/// Corrects small typos in the words the built-in patterns look for.
fn correct_typos(norm: &str) -> String {
    let mut out = String::with_capacity(norm.len());
    for (i, word) in norm.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let core: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
        let n = core.chars().count();
        let fixed = (n >= 5 && !KEY_WORDS.contains(&core.as_str()))
            .then(|| {
                KEY_WORDS.iter().find(|k| {
                    k.chars().next() == core.chars().next()
                        && strsim::osa_distance(k, &core) <= if n >= 9 { 2 } else { 1 }
                })
            })
            .flatten();
        match fixed {
            Some(k) => out.push_str(&word.replace(&core, k)),
            None => out.push_str(word),
        }
    }
    out
}

/// Wording that asks us to do something.
const ACT: &[&str] = &[
    r"\b(i|we) (really )?(want|need|demand|would like|d like|wanna|am requesting|request|have to|must)\b",
    r"\b(i'?d|i would) (like|love)\b",
    r"\b(please|pls|plz|asap)\b",
    r"\b(give|send|get) me\b",
    r"\b(can|could|would|will) (you|u) (please )?\w+",
    r"\bhelp me\b",
    r"\bhow (do|can|could|should) (i|we)\b",
    r"\bwhere (to|can i|do i|should i|can we)\b",
    r"\bhow to\b",
    r"\b(i'?m|i am|we are) (trying|going|about) to\b",
    r"\b(let me|i'?ll|i will)\b",
    r"\b(quiero|queremos|necesito|me gustaria|por favor|exijo|como (puedo|hago)|ayudame|podria|puede)\b",
    r"\b(je veux|je voudrais|j'aimerais|je souhaite|je demande|s'il vous plait|svp|pouvez-vous|pouvez vous|merci de|comment (puis-je|je peux|faire))\b",
    r"\b(ich (will|mochte|muss|brauche|hatte gern|verlange)|bitte|konnen sie|wie kann ich)\b",
    r"\b(quero|queria|preciso|gostaria|exijo|por favor|como (posso|faco)|pode|podem)\b",
    r"\b(voglio|vorrei|ho bisogno|esigo|per favore|come (posso|faccio)|puoi|potete|potreste)\b",
];

/// Wording that asks about a policy or a status rather than for an action.
const ABOUT: &[&str] = &[
    r"\b(polic(y|ies)|terms|conditions|rules|fee|fees|charge for|cost of|guarantee|penalt\w*)\b",
    r"\bin (what|which) (cases|situations|circumstances)\b",
    r"\b(expect|expecting|waiting for|wait for|awaiting|anything new)\b",
    r"\b(was it|has it been|is it|been) (processed|approved|sent|done|issued)\b",
    r"\bhow (long|much|many|soon|does|do refunds|do returns|are)\b",
    r"\b(what|which) (is|are|'s)\b",
    r"\bwhat's\b",
    r"\b(where|when) (is|are|will|does|do|did|'s)\b",
    r"\b(status|track|tracking|progress) (of|my|the)\b",
    r"\b(do|does) (you|your|u) (offer|allow|accept|do|give|have)\b",
    r"\bis (it|there) (possible|a)\b",
    r"\b(can|could) i (get|have) (a |my )?(refund|reimbursement)s? (if|when|for)\b",
    r"\b(politica|condiciones|cuanto (tarda|tiempo|cuesta)|cual es|donde esta|cuando)\b",
    r"\b(politique|conditions|combien de temps|quelle est|ou en est|quand)\b",
    r"\b(richtlinie|bedingungen|wie lange|was ist|wo ist|wann)\b",
    r"\b(politica|condicoes|quanto tempo|qual e|onde esta|quando)\b",
    r"\b(politica|condizioni|quanto tempo|qual e|dov'e|quando)\b",
];

/// Wording strong enough to count as a request even inside a question, when it governs the
/// intent itself ("what now? I want a refund"), not a look at the rules ("I want to see in
/// which cases I can get a refund").
const STRONG_ACT: &[&str] = &[
    r"\b(i|we) (really )?(want|need|demand)( (a|my|the|to get|to have|to request|to ask for))?$",
    r"\b(quiero|necesito|exijo|je veux|je demande|ich will|ich verlange|quero|preciso|voglio|esigo)( (un|una|el|mi|que|me|le|la|mon|ma|une|eine|meine|o|a|meu|minha|il|la|mio|mia|un))*$",
];

struct Compiled {
    name: String,
    sensitive: bool,
    phrases: Vec<(String, Vec<String>)>,
    patterns: Vec<Regex>,
}

/// The intents, compiled once.
pub struct IntentMatcher {
    rules: Vec<Compiled>,
    act: Vec<Regex>,
    about: Vec<Regex>,
    strong_act: Vec<Regex>,
}

impl std::fmt::Debug for IntentMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntentMatcher")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn compile_all(list: &[&str]) -> Vec<Regex> {
    // The built-in lists are constants checked by a unit test; a pattern that would not
    // compile is left out rather than failing the daemon.
    list.iter().filter_map(|p| Regex::new(p).ok()).collect()
}

impl IntentMatcher {
    /// Compiles the configured rules, after the built-in ones when `include_builtin`.
    pub fn new(rules: &[IntentRule], include_builtin: bool) -> Result<IntentMatcher, IntentError> {
        let mut compiled = Vec::new();
        if include_builtin {
            for (name, patterns) in BUILTIN {
                compiled.push(Compiled {
                    name: name.to_string(),
                    sensitive: true,
                    phrases: Vec::new(),
                    patterns: compile_all(patterns),
                });
            }
        }
        for r in rules {
            let mut patterns = Vec::new();
            for p in &r.patterns {
                patterns.push(
                    regex::RegexBuilder::new(p)
                        .case_insensitive(true)
                        .build()
                        .map_err(|source| IntentError::Pattern {
                            name: r.name.clone(),
                            pattern: p.clone(),
                            source,
                        })?,
                );
            }
            compiled.push(Compiled {
                name: r.name.clone(),
                sensitive: r.sensitive,
                phrases: r
                    .phrases
                    .iter()
                    .map(|p| (p.clone(), text::tokens(p)))
                    .filter(|(_, t)| !t.is_empty())
                    .collect(),
                patterns,
            });
        }
        Ok(IntentMatcher {
            rules: compiled,
            act: compile_all(ACT),
            about: compile_all(ABOUT),
            strong_act: compile_all(STRONG_ACT),
        })
    }

    /// Every intent the message expresses, in rule order.
    pub fn matches(&self, message: &str) -> Vec<IntentMatch> {
        let norm = correct_typos(&text::normalize(message));
        let words = text::tokens(message);
        let mut out = Vec::new();
        for rule in &self.rules {
            let evidence = rule
                .patterns
                .iter()
                .find_map(|p| p.find(&norm).map(|m| m.as_str().to_string()))
                .or_else(|| {
                    rule.phrases
                        .iter()
                        .find(|(_, tokens)| tokens.iter().all(|t| contains_word(&words, t)))
                        .map(|(p, _)| p.clone())
                });
            if let Some(evidence) = evidence {
                out.push(IntentMatch {
                    name: rule.name.clone(),
                    sensitive: rule.sensitive,
                    act: self.asks_to_act(&norm, &evidence),
                    evidence,
                });
            }
        }
        out
    }

    /// Request or question? A question about a policy or a status is not a request, unless
    /// it also says plainly that the customer wants it done. A bare statement of the intent
    /// ("refund my order", "cancel order 1234") is a request.
    fn asks_to_act(&self, norm: &str, evidence: &str) -> bool {
        let about = self.about.iter().any(|r| r.is_match(norm));
        if about {
            // Only a plain "I want ..." right before the intent's words overrides.
            let before = norm
                .find(evidence)
                .map(|at| norm[..at].trim_end())
                .unwrap_or("");
            return self.strong_act.iter().any(|r| r.is_match(before));
        }
        if self.act.iter().any(|r| r.is_match(norm)) {
            return true;
        }
        // Imperative or bare: the message opens with the action, or has no question mark.
        norm.trim_start().starts_with(evidence) || !norm.contains('?')
    }
}

fn contains_word(words: &[String], wanted: &str) -> bool {
    words.iter().any(|w| {
        w == wanted
            || (wanted.chars().count() >= 5
                && w.chars().count() >= 5
                && strsim::osa_distance(w, wanted) == 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> IntentMatcher {
        IntentMatcher::new(&[], true).expect("built-ins compile")
    }

    fn acts(text: &str, intent: &str) -> Option<bool> {
        matcher()
            .matches(text)
            .into_iter()
            .find(|m| m.name == intent)
            .map(|m| m.act)
    }

    #[test]
    fn built_in_patterns_all_compile() {
        for (name, patterns) in BUILTIN {
            for p in *patterns {
                assert!(Regex::new(p).is_ok(), "{name}: {p}");
            }
        }
        for p in ACT.iter().chain(ABOUT).chain(STRONG_ACT) {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn requests_to_act_in_six_languages() {
        let cases = [
            ("I want my money back for the broken kettle", "refund"),
            ("refund me, the parcel arrived empty", "refund"),
            ("quiero que me devuelvan el dinero", "refund"),
            ("je veux être remboursé", "refund"),
            ("ich möchte eine Rückerstattung für die Jacke", "refund"),
            ("quero o dinheiro de volta", "refund"),
            ("voglio un rimborso", "refund"),
            ("please delete my account", "account_change"),
            ("I need to change my email address", "account_change"),
            ("quiero eliminar mi cuenta", "account_change"),
            ("je voudrais supprimer mon compte", "account_change"),
            ("bitte Konto löschen", "account_change"),
            ("quero excluir minha conta", "account_change"),
            ("vorrei chiudere il mio account", "account_change"),
            ("I want to file a complaint about the courier", "complaint"),
            ("quiero poner una queja", "complaint"),
            ("ich möchte mich beschweren", "complaint"),
            ("cancel my order 4471", "cancel_order"),
            ("how do I cancel my order?", "cancel_order"),
            ("necesito cancelar mi pedido", "cancel_order"),
            ("je veux annuler ma commande", "cancel_order"),
            ("bitte Bestellung stornieren", "cancel_order"),
            ("voglio annullare l'ordine", "cancel_order"),
        ];
        for (text, intent) in cases {
            assert_eq!(acts(text, intent), Some(true), "{text}");
        }
    }

    #[test]
    fn questions_about_policy_or_status_are_not_requests() {
        let cases = [
            ("what is your refund policy?", "refund"),
            ("how long does a refund take?", "refund"),
            ("where is my refund?", "refund"),
            ("¿cuál es la política de reembolso?", "refund"),
            ("quelle est votre politique de remboursement ?", "refund"),
            ("wie lange dauert die Rückerstattung?", "refund"),
            ("is there a fee to cancel an order?", "cancel_order"),
            ("do you accept complaints by phone?", "complaint"),
        ];
        for (text, intent) in cases {
            assert_eq!(acts(text, intent), Some(false), "{text}");
        }
        // Unrelated text matches nothing.
        assert!(matcher().matches("what are your opening hours").is_empty());
        // A plain statement of wanting it, even with a question, is a request.
        assert_eq!(
            acts("what do I do now? I want a refund", "refund"),
            Some(true)
        );
    }

    #[test]
    fn configured_intents_by_phrase_and_pattern() {
        let rules = vec![
            IntentRule {
                name: "warranty".into(),
                phrases: vec!["warranty claim".into()],
                patterns: vec![],
                sensitive: true,
            },
            IntentRule {
                name: "invoice".into(),
                phrases: vec![],
                patterns: vec![r"\binvoice\s+#?\d+".into()],
                sensitive: false,
            },
        ];
        let m = IntentMatcher::new(&rules, false).expect("compile");
        // Any order, a typo in a long word.
        let found = m.matches("I want to make a claim under the warrenty");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "warranty");
        assert!(found[0].act && found[0].sensitive);
        let found = m.matches("question about Invoice #5531");
        assert_eq!(found[0].name, "invoice");
        assert!(!found[0].sensitive);
        assert!(
            IntentMatcher::new(
                &[IntentRule {
                    name: "bad".into(),
                    phrases: vec![],
                    patterns: vec!["(".into()],
                    sensitive: false,
                }],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn act_detection_on_the_sample() {
        // Requests to act (positives) against questions about refunds, cancellation fees
        // and the like (negatives), measured on the Bitext sample.
        let m = matcher();
        let positives = [
            ("get_refund", "refund"),
            ("cancel_order", "cancel_order"),
            ("delete_account", "account_change"),
            ("edit_account", "account_change"),
            ("complaint", "complaint"),
        ];
        let negatives = [
            "check_refund_policy",
            "track_refund",
            "check_cancellation_fee",
        ];
        let rows = crate::analysis::dataset::bitext_rows();
        for (intent, ours) in positives {
            let texts: Vec<&str> = rows
                .iter()
                .filter(|r| r.intent == intent)
                .map(|r| r.instruction.as_str())
                .collect();
            let hit = texts
                .iter()
                .filter(|t| m.matches(t).iter().any(|x| x.name == ours && x.act))
                .count();
            let recall = hit as f64 / texts.len().max(1) as f64;
            println!(
                "{intent} -> {ours}: request recall {recall:.3} ({hit}/{})",
                texts.len()
            );
            assert!(texts.len() > 50 && recall >= 0.85, "{intent}: {recall}");
        }
        for intent in negatives {
            let texts: Vec<&str> = rows
                .iter()
                .filter(|r| r.intent == intent)
                .map(|r| r.instruction.as_str())
                .collect();
            let wrong = texts
                .iter()
                .filter(|t| m.matches(t).iter().any(|x| x.act))
                .count();
            let rate = wrong as f64 / texts.len().max(1) as f64;
            println!(
                "{intent}: taken as a request {rate:.3} ({wrong}/{})",
                texts.len()
            );
            assert!(texts.len() > 50 && rate <= 0.15, "{intent}: {rate}");
        }
    }
}
