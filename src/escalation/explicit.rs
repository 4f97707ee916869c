//! Does the customer ask for a person? The clearest handoff trigger there is, and one that
//! must not fire on every message that merely mentions a person.
//!
//! The detector reads each clause of a message as a sequence of word classes: person nouns
//! ("agent", "human", "someone", "Mitarbeiter"...), request verbs ("talk", "speak", "contact",
//! "hablar", "parler"...), desire verbs ("want", "need", "quiero"...), and the small words that
//! may sit between them ("to", "with", "a", "real", "live", "con", "mit"...). A request is:
//!
//! - a request verb followed by a person noun with only small words between
//!   ("talk to a real person", "hablar con un agente");
//! - a person noun followed by a request verb ("mit einem Mitarbeiter sprechen",
//!   "an agent to talk to");
//! - a desire verb followed by a person noun ("I want a representative"), for weak nouns such
//!   as "someone" only when nothing follows ("I need someone" but not "I need someone to pick
//!   up my order");
//! - a clause that is nothing but a person noun and politeness ("agent please", "Human!").
//!
//! Guards then reject what only looks like a request: "human resources", "agent field",
//! "the person who...", "I don't want to talk to a human", "what are your opening hours to
//! contact customer service", "am I talking to a human?". Words are matched after
//! normalisation and, from five letters up, with one typo allowed ("somone", "asisstant").

use crate::analysis::text::FastMap;
use std::cell::RefCell;
use std::sync::LazyLock;

use crate::analysis::text;

/// The detector's verdict: which words made the request and how sure it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExplicitMatch {
    /// The words that formed the request, normalised ("talk to a human"), or the configured
    /// phrase that matched; shown to agents and in logs to explain the handoff.
    pub phrase: String,
    /// In `0.0..=1.0`; lower for weak nouns ("someone"), bare nouns and typo matches.
    pub score: f32,
}

/// Recognises a customer's request to be handed to a person, in English, Spanish, French,
/// German, Portuguese and Italian, plus operator-configured phrases.
#[derive(Debug, Clone)]
pub struct ExplicitRequestDetector {
    /// Configured phrases, as normalised words with the small words removed.
    extra: Vec<ExtraPhrase>,
}

#[derive(Debug, Clone)]
struct ExtraPhrase {
    /// As configured, for reporting.
    original: String,
    /// Content words to find in order.
    words: Vec<String>,
}

/// How much a person noun on its own says about wanting a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// Only means a support person: "agent", "human", "representative".
    Strong,
    /// Any person: "someone", "person"; needs more context.
    Weak,
    /// A department: "customer service"; often part of a question about opening hours.
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Person(Strength),
    /// Asks for contact: "talk", "speak", "contact", "hablar".
    Verb,
    /// Asks for something: "want", "need", "get", "quiero".
    Desire,
    /// May stand between the verb and the person: "to", "with", "a", "real", "mit".
    Small,
    /// Negates what follows: "don't want to talk".
    Negation,
    Other,
}

#[derive(Debug, Clone)]
struct Word<'a> {
    /// Borrowed from the message's [`ClauseWords`].
    text: &'a str,
    class: Class,
    /// Classified through a one-typo correction.
    fuzzy: bool,
}

#[rustfmt::skip]
const STRONG_PERSONS: &[&str] = &[
    // English.
    "human", "humans", "agent", "agents", "representative", "representatives", "rep", "reps",
    "operator", "operators", "advisor", "adviser", "supervisor", "manager", "staffer",
    // Spanish.
    "humano", "humana", "humanos", "agente", "agentes", "operador", "operadora", "asesor",
    "asesora", "representante", "ejecutivo", "ejecutiva",
    // French.
    "humain", "humaine", "conseiller", "conseillere", "operateur", "operatrice", "interlocuteur",
    // German.
    "mensch", "menschen", "mitarbeiter", "mitarbeiterin", "berater", "beraterin", "kundenberater",
    "sachbearbeiter", "ansprechpartner", "agenten",
    // Portuguese.
    "atendente", "consultor", "consultora",
    // Italian.
    "umano", "operatore", "consulente", "addetto",
];

#[rustfmt::skip]
const WEAK_PERSONS: &[&str] = &[
    "person", "people", "someone", "somebody", "anyone", "anybody", "assistant", "member",
    // Jobs that also come up outside support chats ("I need a technician to fix the washer").
    "specialist", "technician", "employee", "consultant",
    // Spanish, French, German, Portuguese, Italian.
    "persona", "personas", "alguien", "asistente", "personne", "quelquun", "jemand", "jemandem",
    "jemanden", "pessoa", "alguem", "qualcuno", "assistente",
];

/// Single-word departments; "customer service" and its translations are recognised as pairs.
const SERVICE_WORDS: &[&str] = &["kundendienst", "kundenservice", "kundensupport", "helpdesk"];

#[rustfmt::skip]
const VERBS: &[&str] = &[
    // English.
    "talk", "talking", "talkin", "speak", "speaking", "chat", "chatting", "contact", "contacting",
    "connect", "connecting", "transfer", "transferring", "reach", "reaching", "direct", "redirect",
    "escalate", "escalating", "touch", "pass", "hand", "forward",
    // Spanish.
    "hablar", "hable", "comunicarme", "comunicar", "comunicame", "comuniqueme", "contactar",
    "conversar", "charlar", "chatear", "pasame", "pasarme", "transferir", "transfiereme",
    "conectar", "conectame", "conecteme",
    // French.
    "parler", "contacter", "joindre", "discuter", "passer", "passez", "transferer", "transferez",
    "echanger",
    // German.
    "sprechen", "reden", "verbinden", "kontaktieren", "chatten", "erreichen", "weiterleiten",
    // Portuguese.
    "falar", "fale", "contatar", "passar",
    // Italian.
    "parlare", "contattare", "passare", "passami", "trasferire", "chattare", "contatto",
];

#[rustfmt::skip]
const DESIRES: &[&str] = &[
    // English.
    "want", "wanna", "need", "needs", "get", "give", "gimme", "prefer", "request", "requesting",
    "ask", "asking", "call", "demand", "require", "will", "put",
    // Spanish.
    "quiero", "necesito", "quisiera", "deseo", "dame",
    // French.
    "veux", "voudrais", "besoin", "souhaite", "demande", "mettez", "mettre", "mets",
    // German.
    "mochte", "brauche", "hatte", "verlange",
    // Portuguese.
    "quero", "preciso", "gostaria", "queria",
    // Italian.
    "voglio", "vorrei", "bisogno", "desidero",
];

#[rustfmt::skip]
const SMALL_WORDS: &[&str] = &[
    // English.
    "to", "with", "a", "an", "the", "one", "of", "your", "ur", "you", "me", "us", "my", "some",
    "any", "real", "actual", "live", "living", "customer", "service", "support", "care", "sales",
    "technical", "tech", "please", "pls", "plz", "directly", "now", "right", "away", "immediately",
    "asap", "just", "fucking", "fking", "fuckin", "bloody", "damn", "goddamn", "freaking",
    "another", "other", "different", "senior", "qualified", "through", "over", "back", "out",
    "being", "staff", "team", "english",
    // Spanish.
    "con", "un", "una", "uno", "al", "el", "la", "los", "las", "de", "del", "mi", "verdadero",
    "verdadera", "real", "otro", "otra", "por", "favor", "ahora",
    // French.
    "avec", "une", "le", "les", "l", "du", "des", "moi", "vrai", "vraie", "autre", "en", "svp",
    "relation", "s", "il", "vous", "plait", "maintenant",
    // German.
    "mit", "einem", "einer", "einen", "ein", "dem", "der", "den", "mich", "sie", "echten", "echte",
    "echter", "richtigen", "anderen", "bitte", "jetzt", "gerne", "gern",
    // Portuguese.
    "com", "um", "uma", "o", "os", "as", "da", "do", "verdadeiro", "outro", "agora",
    // Italian.
    "lo", "gli", "vero", "vera", "altro", "per", "favore", "mi", "subito",
];

/// Negations that cancel a request right after them ("I don't want to talk to a human").
/// "can't"/"cannot" are absent on purpose: "I can't reach an agent" still asks for one.
#[rustfmt::skip]
const NEGATIONS: &[&str] = &[
    "not", "dont", "doesnt", "didnt", "never", "no", "without", "wont", "wouldnt", "shouldnt",
    "ne", "n", "pas", "jamais", "nao", "non", "nunca", "mai", "nicht", "kein", "keine", "keinen",
    "nie",
];

/// Words that, between a negation and the request, show the negation is about something else:
/// "I don't know how to talk to an agent" still asks for one.
#[rustfmt::skip]
const NEGATION_BREAKERS: &[&str] = &[
    "know", "understand", "sure", "remember", "see", "find", "figure", "idea", "clue", "able",
    "manage", "how", "where", "what", "why", "entiendo", "comprendo", "se", "sabe", "puedo",
    "sais", "comprends", "peux", "verstehe", "weiss", "kann", "entendo", "sei", "consigo",
    "capisco", "so", "posso", "riesco",
];

/// Words that, right after a person noun, make it part of a compound that is not a person:
/// "human resources", "agent field", "operator error".
#[rustfmt::skip]
const COMPOUND_BREAKERS: &[&str] = &[
    "resources", "resource", "rights", "error", "errors", "field", "fields", "id", "number",
    "code", "name", "names", "page", "portal", "login", "column", "setting", "settings", "mode",
    "version", "details", "detail", "info", "information", "data", "profile", "trafficking",
    "nature", "license", "licence", "commission", "fee", "fees", "account", "app", "software",
    "tool", "string", "header", "dashboard", "role", "program", "interface", "level", "status",
    "tab", "discount", "discounts", "training", "manual", "guide", "card", "badge", "contract",
    "benefits", "review", "survey", "rating", "feedback",
];

/// Determiners that point at a particular, known person: "talk to the person who delivered".
/// Weak nouns after them are references, not requests.
#[rustfmt::skip]
const DEFINITE: &[&str] = &[
    "the", "this", "that", "my", "his", "her", "their", "its", "el", "le", "der", "die", "das",
    "o",
];

/// Adjectives that turn a weak noun into an unambiguous request: "a real person".
#[rustfmt::skip]
const GENUINE: &[&str] = &[
    "real", "live", "actual", "living", "vrai", "vraie", "echten", "echte", "echter", "verdadera",
    "verdadero", "verdadeira", "verdadeiro", "vero", "vera",
];

/// Words of a question about contact channels rather than a request for contact:
/// "what hours can I contact customer service".
#[rustfmt::skip]
const INFO_WORDS: &[&str] = &[
    "hours", "opening", "schedule", "timetable", "horario", "horarios", "horaires",
    "offnungszeiten", "orari", "orario",
];

/// With a department ("customer service") rather than a person, these words also mark a
/// question about how to reach it ("do you have a number to contact customer support?").
/// With a person noun they do not: "talk to an agent about my order number" is a request.
#[rustfmt::skip]
const SERVICE_INFO_WORDS: &[&str] = &[
    "number", "phone", "email", "mail", "address", "available", "time", "toll", "free", "telefono",
    "numero", "nummer", "telefon", "numero",
];

/// Extra words allowed in a clause that is only a person noun: "agent please", "I want a
/// human now", "yes, operator".
#[rustfmt::skip]
const BARE_EXTRAS: &[&str] = &[
    "i", "hello", "hi", "hey", "ok", "okay", "yes", "can", "could", "may", "let", "have", "ya",
    "u", "si", "oui", "ja", "sim", "yo", "je", "ich", "eu", "io",
];

/// What a customer asks to escalate: "escalate this", "escalate my case".
#[rustfmt::skip]
const ESCALATION_OBJECTS: &[&str] = &[
    "this", "it", "case", "ticket", "issue", "problem", "complaint", "request", "caso", "please",
];

/// Real words one typo away from a vocabulary word that must not be read as that word.
#[rustfmt::skip]
const TYPO_BLOCKLIST: &[&str] = &[
    "walk", "walks", "walking", "assistance", "personal", "persons", "agency", "humane",
    "contract", "contracts", "contacts", "teach", "argent", "reached", "speaks", "operation",
    "chats", "passe", "parle", "wanted", "needed", "gets", "gives", "giver", "hands", "handy",
    "direction", "directs", "calls", "called", "asked", "asks", "manner",
];

/// Weights of the match kinds; the detector reports the best.
const SCORE_VERB_STRONG: f32 = 0.95;
const SCORE_VERB_WEAK: f32 = 0.85;
const SCORE_SERVICE: f32 = 0.75;
const SCORE_DESIRE_STRONG: f32 = 0.9;
const SCORE_DESIRE_WEAK: f32 = 0.8;
const SCORE_BARE_STRONG: f32 = 0.9;
const SCORE_BARE_WEAK: f32 = 0.7;
const SCORE_EXTRA: f32 = 0.95;
const SCORE_ESCALATION: f32 = 0.8;
/// Subtracted per word that only matched through a typo.
const FUZZY_PENALTY: f32 = 0.1;
/// Most small words allowed between the verb and the person noun.
const MAX_GAP: usize = 6;
/// How far back a negation reaches.
const NEGATION_WINDOW: usize = 3;
/// Longest clause that can still be a bare request ("I want a human now please").
const MAX_BARE_WORDS: usize = 7;
/// Shortest word that may be matched with a typo; shorter ones collide with common words
/// ("that"/"chat", "walk"/"talk").
const FUZZY_MIN_CHARS: usize = 5;

static LEXICON: LazyLock<FastMap<&'static str, Class>> = LazyLock::new(|| {
    let mut map = FastMap::default();
    // Later tables do not override earlier ones, so order states precedence.
    let tables: [(&[&str], Class); 7] = [
        (STRONG_PERSONS, Class::Person(Strength::Strong)),
        (WEAK_PERSONS, Class::Person(Strength::Weak)),
        (SERVICE_WORDS, Class::Person(Strength::Service)),
        (VERBS, Class::Verb),
        (DESIRES, Class::Desire),
        (NEGATIONS, Class::Negation),
        (SMALL_WORDS, Class::Small),
    ];
    for (words, class) in tables {
        for word in words {
            map.entry(*word).or_insert(class);
        }
    }
    map
});

/// Vocabulary that may be reached through a typo: the content words, not the small ones.
static FUZZY_TARGETS: LazyLock<Vec<(&'static str, Class)>> = LazyLock::new(|| {
    LEXICON
        .iter()
        .filter(|(word, class)| {
            word.len() >= FUZZY_MIN_CHARS - 1
                && matches!(class, Class::Person(_) | Class::Verb | Class::Desire)
        })
        .map(|(word, class)| (*word, *class))
        .collect()
});

/// [`FUZZY_TARGETS`] by each of their one-character deletions and by themselves: two words
/// within one edit (a substitution, a swap of neighbours, one character more or less) always
/// share one such key, so a lookup finds every target a typo could stand for without
/// comparing the word with all of them.
static FUZZY_INDEX: LazyLock<FastMap<String, Vec<usize>>> = LazyLock::new(|| {
    let mut index: FastMap<String, Vec<usize>> = FastMap::default();
    let mut key = String::new();
    for (n, (target, _)) in FUZZY_TARGETS.iter().enumerate() {
        for skip in 0..=target.chars().count() {
            deletion(target, skip, &mut key);
            let entry = index.entry(key.clone()).or_default();
            if entry.last() != Some(&n) {
                entry.push(n);
            }
        }
    }
    index
});

/// `word` without its `skip`-th character (all of it when `skip` is past the end), in `out`.
fn deletion(word: &str, skip: usize, out: &mut String) {
    out.clear();
    out.extend(
        word.chars()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| c),
    );
}

/// The fuzzy targets within one edit of `word` (in no particular order).
fn fuzzy_matches(word: &str) -> impl Iterator<Item = (&'static str, Class)> + '_ {
    let mut key = String::with_capacity(word.len());
    (0..=word.chars().count())
        .flat_map(move |skip| {
            deletion(word, skip, &mut key);
            FUZZY_INDEX
                .get(key.as_str())
                .map_or(&[][..], Vec::as_slice)
                .iter()
        })
        .filter_map(|&n| FUZZY_TARGETS.get(n).copied())
        .filter(move |(target, _)| text::within_one_edit(word, target))
}

fn contains(list: &[&str], word: &str) -> bool {
    list.contains(&word)
}

thread_local! {
    /// Classes of words seen on this thread: a word outside the lexicon is compared with
    /// every lexicon word one typo away, which costs far more than remembering the answer.
    static CLASSES: RefCell<text::WordMemo<(Class, bool)>> =
        RefCell::new(text::WordMemo::default());
}

/// [`classify`], remembered per thread (the lexicon is fixed, so the answer never changes).
fn classify_remembered(word: &str) -> (Class, bool) {
    CLASSES.with(|memo| memo.borrow_mut().get(1, word, classify))
}

/// Classifies one normalised word, tolerating one typo in longer words.
fn classify(word: &str) -> (Class, bool) {
    if let Some(class) = LEXICON.get(word) {
        return (*class, false);
    }
    if word.chars().count() >= FUZZY_MIN_CHARS && !contains(TYPO_BLOCKLIST, word) {
        // Several candidates can be one edit away; prefer persons, then verbs, then desires,
        // and among those the alphabetically first, so the result does not depend on hash
        // order.
        let mut best: Option<(u8, &str, Class)> = None;
        for (target, class) in fuzzy_matches(word) {
            let rank = match class {
                Class::Person(_) => 0,
                Class::Verb => 1,
                _ => 2,
            };
            if best.is_none_or(|(r, t, _)| (rank, target) < (r, t)) {
                best = Some((rank, target, class));
            }
        }
        if let Some((_, _, class)) = best {
            return (class, true);
        }
    }
    // The prepositions that chain a request get mistyped too ("wiht", "wth", "tto").
    if (3..=4).contains(&word.len())
        && (text::within_one_edit(word, "with") || text::within_one_edit(word, "to"))
    {
        return (Class::Small, false);
    }
    (Class::Other, false)
}

/// A message's normalised words, back to back in one string, with each clause's words as
/// byte ranges in it: one buffer per message instead of a string per word.
struct ClauseWords {
    text: String,
    clauses: Vec<Vec<(usize, usize)>>,
}

impl ClauseWords {
    /// Splits a message into clauses; a request never spans a sentence or comma boundary.
    fn of(message: &str) -> ClauseWords {
        let mut text = String::with_capacity(message.len());
        let mut clauses = Vec::new();
        for clause in message.split(text::is_clause_end) {
            let mut spans = Vec::new();
            text::for_each_word(clause, |word| {
                spans.push((text.len(), text.len() + word.len()));
                text.push_str(word);
            });
            if !spans.is_empty() {
                clauses.push(spans);
            }
        }
        ClauseWords { text, clauses }
    }

    /// Each clause's classified words.
    fn clauses(&self) -> impl Iterator<Item = Vec<Word<'_>>> {
        self.clauses.iter().map(|spans| {
            let mut words: Vec<Word> = spans
                .iter()
                .map(|&(start, end)| {
                    let text = &self.text[start..end];
                    let (class, fuzzy) = classify_remembered(text);
                    Word { text, class, fuzzy }
                })
                .collect();
            mark_departments(&mut words);
            words
        })
    }
}

/// Marks "customer service" and its translations as a department noun.
fn mark_departments(words: &mut [Word]) {
    for i in 0..words.len() {
        let this = words[i].text;
        let prev = i.checked_sub(1).map(|p| words[p].text);
        let prev2 = i.checked_sub(2).map(|p| words[p].text);
        let english = matches!(
            this,
            "service" | "services" | "support" | "care" | "team" | "assistance"
        ) && matches!(prev, Some("customer" | "support" | "client"));
        // "servicio al cliente", "service client", "servizio clienti", "atendimento ao cliente".
        let romance = matches!(
            this,
            "cliente" | "clientes" | "client" | "clients" | "clienti"
        ) && [prev, prev2].iter().any(|w| {
            matches!(
                w,
                Some("servicio" | "atencion" | "service" | "servizio" | "assistenza")
                    | Some("atendimento" | "servico" | "soporte")
            )
        });
        // "connect me to support": the department on its own, closing the clause.
        let bare_support = matches!(this, "support" | "soporte" | "suporte" | "supporto")
            && matches!(prev, Some("to" | "with" | "con" | "com" | "a" | "al"))
            && words[i + 1..].iter().all(|w| w.class == Class::Small);
        if english || romance || bare_support {
            words[i].class = Class::Person(Strength::Service);
        }
    }
}

/// One way a clause was read as a request.
#[derive(Debug)]
struct Candidate {
    start: usize,
    end: usize,
    base: f32,
    /// Made with a department noun, which needs the stricter info-question guard.
    service: bool,
}

impl ExplicitRequestDetector {
    /// `extra_phrases` come from config and add to the built-in ones.
    pub fn new(extra_phrases: &[String]) -> Self {
        let extra = extra_phrases
            .iter()
            .filter_map(|phrase| {
                let all = text::tokens(phrase);
                let content: Vec<String> = all
                    .iter()
                    .filter(|w| LEXICON.get(w.as_str()) != Some(&Class::Small))
                    .cloned()
                    .collect();
                // A phrase made only of small words ("a human" minus "a" is fine, "to the"
                // is not) is matched word for word.
                let words = if content.is_empty() { all } else { content };
                (!words.is_empty()).then(|| ExtraPhrase {
                    original: phrase.trim().to_string(),
                    words,
                })
            })
            .collect();
        ExplicitRequestDetector { extra }
    }

    /// Whether `text` asks for a person, and the words that did.
    pub fn detect(&self, text: &str) -> Option<ExplicitMatch> {
        let mut best: Option<ExplicitMatch> = None;
        let mut consider = |found: ExplicitMatch| {
            if best.as_ref().is_none_or(|b| found.score > b.score) {
                best = Some(found);
            }
        };
        let clause_words = ClauseWords::of(text);
        for words in clause_words.clauses() {
            if is_contact_info_question(&words) || is_identity_question(&words) {
                continue;
            }
            let asks_service_info = words.iter().any(|w| contains(SERVICE_INFO_WORDS, w.text))
                || words
                    .windows(2)
                    .any(|pair| pair[0].text == "what" && pair[1].text == "time");
            for candidate in built_in_candidates(&words) {
                if negated(&words, candidate.start) || (candidate.service && asks_service_info) {
                    continue;
                }
                let span = &words[candidate.start..=candidate.end];
                let typos = span.iter().filter(|w| w.fuzzy).count() as f32;
                let phrase: Vec<&str> = span.iter().map(|w| w.text).collect();
                consider(ExplicitMatch {
                    phrase: phrase.join(" "),
                    score: (candidate.base - FUZZY_PENALTY * typos).clamp(0.0, 1.0),
                });
            }
            for phrase in &self.extra {
                if let Some((start, typos)) = find_phrase(&words, &phrase.words) {
                    if negated(&words, start) {
                        continue;
                    }
                    consider(ExplicitMatch {
                        phrase: phrase.original.clone(),
                        score: (SCORE_EXTRA - FUZZY_PENALTY * typos as f32).clamp(0.0, 1.0),
                    });
                }
            }
        }
        best
    }
}

/// All readings of a clause as a built-in request pattern.
fn built_in_candidates(words: &[Word]) -> Vec<Candidate> {
    let mut found = Vec::new();
    let strengths = effective_strengths(words);

    for (i, word) in words.iter().enumerate() {
        match word.class {
            Class::Verb | Class::Desire => {
                let Some((person, end)) = person_after(words, i) else {
                    continue;
                };
                let Some(strength) = strengths[person] else {
                    continue;
                };
                // "the contact person on my account" is a compound noun, not a request.
                if person == i + 1
                    && word.text.starts_with("contact")
                    && matches!(
                        words[person].text,
                        "person" | "people" | "persona" | "personne" | "pessoa"
                    )
                {
                    continue;
                }
                let tail_empty = rest_is_small(words, end + 1);
                let base = match (word.class, strength) {
                    (Class::Verb, Strength::Strong) => SCORE_VERB_STRONG,
                    (Class::Verb, Strength::Weak) => SCORE_VERB_WEAK,
                    (Class::Desire, Strength::Strong) => SCORE_DESIRE_STRONG,
                    // "I need someone" asks for a person; "I need someone to pick up my
                    // order" does not.
                    (Class::Desire, Strength::Weak) if tail_empty => SCORE_DESIRE_WEAK,
                    (Class::Verb, Strength::Service) => SCORE_SERVICE,
                    (Class::Desire, Strength::Service) if tail_empty => SCORE_SERVICE,
                    _ => continue,
                };
                found.push(Candidate {
                    start: i,
                    end,
                    base,
                    service: strength == Strength::Service,
                });
            }
            Class::Person(_) => {
                // Person noun first, verb last: "mit einem Mitarbeiter sprechen", "an agent
                // to talk to". The verb must close the clause, or "the person talking on the
                // phone was rude" would count.
                let Some(strength) = strengths[i] else {
                    continue;
                };
                let mut j = i + 1;
                while j < words.len() && matches!(words[j].class, Class::Person(_)) {
                    j += 1;
                }
                if words
                    .get(j)
                    .is_some_and(|w| contains(COMPOUND_BREAKERS, w.text))
                {
                    continue;
                }
                let mut gap = 0;
                while j < words.len() && is_reverse_gap(&words[j]) && gap < 3 {
                    j += 1;
                    gap += 1;
                }
                if words.get(j).is_some_and(|w| w.class == Class::Verb)
                    && rest_is_small(words, j + 1)
                {
                    let base = match strength {
                        Strength::Strong => SCORE_VERB_STRONG,
                        Strength::Weak => SCORE_VERB_WEAK,
                        Strength::Service => SCORE_SERVICE,
                    };
                    // Include the determiners before the noun in the reported phrase.
                    let mut start = i;
                    while start > 0 && words[start - 1].class == Class::Small {
                        start -= 1;
                    }
                    found.push(Candidate {
                        start,
                        end: j,
                        base,
                        service: strength == Strength::Service,
                    });
                }
            }
            _ => {}
        }
    }

    if let Some(candidate) = bare_request(words, &strengths) {
        found.push(candidate);
    }
    if let Some(candidate) = bare_escalation(words) {
        found.push(candidate);
    }
    found
}

/// "Escalate this", "please escalate my case": asking for escalation names no person but
/// asks for one all the same.
fn bare_escalation(words: &[Word]) -> Option<Candidate> {
    let at = words
        .iter()
        .position(|w| matches!(w.text, "escalate" | "escalation" | "escalar"))?;
    let rest_allowed = words.iter().enumerate().all(|(i, w)| {
        i == at
            || w.class == Class::Small
            || contains(BARE_EXTRAS, w.text)
            || contains(ESCALATION_OBJECTS, w.text)
    });
    (words.len() <= MAX_BARE_WORDS && rest_allowed).then(|| Candidate {
        start: 0,
        end: words.len() - 1,
        base: SCORE_ESCALATION,
        service: false,
    })
}

/// Strength of each person noun in context, or None where the context rules it out
/// (a compound such as "human resources", a definite reference such as "the person").
fn effective_strengths(words: &[Word]) -> Vec<Option<Strength>> {
    words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let Class::Person(mut strength) = word.class else {
                return None;
            };
            // Look past the rest of a noun run ("human agent") for a compound breaker.
            let mut j = i + 1;
            while j < words.len() && matches!(words[j].class, Class::Person(_)) {
                j += 1;
            }
            if words
                .get(j)
                .is_some_and(|w| contains(COMPOUND_BREAKERS, w.text))
            {
                return None;
            }
            let prev = i.checked_sub(1).map(|p| words[p].text);
            if strength == Strength::Weak {
                if prev.is_some_and(|p| contains(GENUINE, p)) {
                    strength = Strength::Strong;
                } else if prev.is_some_and(|p| contains(DEFINITE, p)) {
                    return None;
                }
            }
            Some(strength)
        })
        .collect()
}

/// The first person noun after `from`, across small words only; returns its index and the
/// end of its noun run ("human agent").
fn person_after(words: &[Word], from: usize) -> Option<(usize, usize)> {
    let mut j = from + 1;
    // Up to MAX_GAP small words, then the noun.
    let limit = (from + MAX_GAP + 2).min(words.len());
    while j < limit {
        match words[j].class {
            Class::Person(_) => {
                let mut end = j;
                while end + 1 < words.len() && matches!(words[end + 1].class, Class::Person(_)) {
                    end += 1;
                }
                return Some((j, end));
            }
            Class::Small => j += 1,
            _ => return None,
        }
    }
    None
}

/// Whether `word` may separate a person noun from a verb that follows it.
fn is_reverse_gap(word: &Word) -> bool {
    word.class == Class::Small
        || matches!(
            word.text,
            "i" | "can" | "could" | "may" | "we" | "ich" | "kann" | "je" | "peux" | "yo"
        )
}

/// Whether everything from `from` on is small words (or nothing).
fn rest_is_small(words: &[Word], from: usize) -> bool {
    words
        .get(from..)
        .is_none_or(|rest| rest.iter().all(|w| w.class == Class::Small))
}

/// A clause that is only a person noun plus politeness: "agent please", "Human!",
/// "I want a representative", "customer service agent".
fn bare_request(words: &[Word], strengths: &[Option<Strength>]) -> Option<Candidate> {
    if words.len() > MAX_BARE_WORDS {
        return None;
    }
    let mut strongest: Option<Strength> = None;
    for (word, strength) in words.iter().zip(strengths) {
        match (word.class, strength) {
            (Class::Person(_), Some(s)) => {
                strongest = Some(match (strongest, *s) {
                    (Some(Strength::Strong), _) | (_, Strength::Strong) => Strength::Strong,
                    (Some(Strength::Weak), _) | (_, Strength::Weak) => Strength::Weak,
                    _ => Strength::Service,
                });
            }
            // A person noun ruled out by its context ends the bare reading.
            (Class::Person(_), None) => return None,
            (Class::Small | Class::Desire, _) => {}
            _ if contains(BARE_EXTRAS, word.text) => {}
            _ => return None,
        }
    }
    let strongest = strongest?;
    let base = match strongest {
        Strength::Strong => SCORE_BARE_STRONG,
        Strength::Weak => SCORE_BARE_WEAK,
        Strength::Service => SCORE_SERVICE,
    };
    Some(Candidate {
        start: 0,
        end: words.len() - 1,
        base,
        service: strongest == Strength::Service,
    })
}

/// Whether a negation shortly before `start` cancels the request ("I don't want to talk to an
/// agent"), unless a word in between shows it negates something else ("I don't know how to").
fn negated(words: &[Word], start: usize) -> bool {
    let from = start.saturating_sub(NEGATION_WINDOW);
    (from..start).any(|k| {
        words[k].class == Class::Negation
            && !words[k + 1..start]
                .iter()
                .any(|w| contains(NEGATION_BREAKERS, w.text))
    })
}

/// "What are your opening hours to contact customer service?" asks about contact, it does
/// not ask to be connected.
fn is_contact_info_question(words: &[Word]) -> bool {
    words.iter().any(|w| contains(INFO_WORDS, w.text))
}

/// "Am I talking to a human?" / "Are you a real person?" ask what the bot is.
fn is_identity_question(words: &[Word]) -> bool {
    matches!(
        (words.first().map(|w| w.text), words.get(1).map(|w| w.text)),
        (Some("am"), Some("i")) | (Some("are"), Some("you")) | (Some("is"), Some("this" | "that"))
    )
}

/// Finds a configured phrase's words in order. Between two of them the text may hold a few
/// small words and at most one other word ("escalate *this* to tier 2"). Returns the start
/// index and the number of words matched through a typo.
fn find_phrase(words: &[Word], phrase: &[String]) -> Option<(usize, usize)> {
    let first = phrase.first()?;
    'start: for start in 0..words.len() {
        let Some(mut typos) = word_matches(words[start].text, first) else {
            continue;
        };
        let mut pos = start + 1;
        for wanted in &phrase[1..] {
            let (mut small_skipped, mut other_skipped) = (0, 0);
            loop {
                let Some(word) = words.get(pos) else {
                    continue 'start;
                };
                pos += 1;
                if let Some(t) = word_matches(word.text, wanted) {
                    typos += t;
                    break;
                }
                if word.class == Class::Small {
                    small_skipped += 1;
                } else {
                    other_skipped += 1;
                }
                if small_skipped > 3 || other_skipped > 1 {
                    continue 'start;
                }
            }
        }
        return Some((start, typos));
    }
    None
}

/// Some(0) for an exact match, Some(1) for a one-typo match of a longer word.
fn word_matches(word: &str, wanted: &str) -> Option<usize> {
    if word == wanted {
        Some(0)
    } else if wanted.len() >= FUZZY_MIN_CHARS && text::within_one_edit(word, wanted) {
        Some(1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembered classes are the classes: for lexicon words, typos of them, and others.
    #[test]
    fn remembered_classes_are_the_classes() {
        let words: Vec<String> = FUZZY_TARGETS
            .iter()
            .take(40)
            .flat_map(|(t, _)| [t.to_string(), format!("{t}x"), t[1..].to_string()])
            .chain(["wiht", "tto", "zebra", "a", ""].map(String::from))
            .collect();
        for _ in 0..2 {
            for w in &words {
                assert_eq!(classify_remembered(w), classify(w), "{w}");
            }
        }
    }

    /// The deletion index finds exactly what comparing the word with every target finds,
    /// for every kind of one-character typo of every target, and for words far from all.
    #[test]
    fn the_fuzzy_index_finds_what_a_full_scan_finds() {
        let scan = |word: &str| -> Vec<&'static str> {
            let mut v: Vec<&str> = FUZZY_TARGETS
                .iter()
                .filter(|(t, _)| text::within_one_edit(word, t))
                .map(|(t, _)| *t)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let indexed = |word: &str| -> Vec<&'static str> {
            let mut v: Vec<&str> = fuzzy_matches(word).map(|(t, _)| t).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut words = vec!["zzzzzzzz".to_string(), "q".to_string(), String::new()];
        for (target, _) in FUZZY_TARGETS.iter() {
            let chars: Vec<char> = target.chars().collect();
            for i in 0..chars.len() {
                let mut deleted = chars.clone();
                deleted.remove(i);
                words.push(deleted.iter().collect());
                let mut replaced = chars.clone();
                replaced[i] = if chars[i] == 'x' { 'é' } else { 'x' };
                words.push(replaced.iter().collect());
                if i + 1 < chars.len() {
                    let mut swapped = chars.clone();
                    swapped.swap(i, i + 1);
                    words.push(swapped.iter().collect());
                }
            }
            for i in 0..=chars.len() {
                let mut inserted = chars.clone();
                inserted.insert(i, 'ö');
                words.push(inserted.iter().collect());
            }
        }
        assert!(words.len() > 1000, "{} words", words.len());
        let mut found = 0;
        for w in &words {
            let expected = scan(w);
            assert_eq!(indexed(w), expected, "{w:?}");
            found += usize::from(!expected.is_empty());
        }
        assert!(
            found > words.len() / 2,
            "{found} of {} words near a target",
            words.len()
        );
    }

    fn detector() -> ExplicitRequestDetector {
        ExplicitRequestDetector::new(&[])
    }

    fn fires(text: &str) -> bool {
        detector().detect(text).is_some()
    }

    #[test]
    fn english_requests() {
        for text in [
            "talk to a human",
            "I want to speak with an agent",
            "real person please",
            "I want a representative",
            "customer service agent",
            "operator",
            "agent please",
            "Human!",
            "representative",
            "can I talk to someone?",
            "connect me with a live agent",
            "transfer me to a person",
            "get me a human now",
            "I need a real person",
            "let me chat with somebody",
            "is there an agent I can talk to?",
            "put me through to one of your agents",
            "I'd like to reach out to someone",
            "please escalate to a supervisor",
            "Connect me to support",
            "escalate this please",
            "I need to talk to someone about my refund",
            "this bot is useless, I want to talk to a human being",
            "I want to speak to customer service",
            "I need to talk to an agent about my order number 4456",
        ] {
            assert!(fires(text), "should fire: {text:?}");
        }
    }

    #[test]
    fn other_languages() {
        for text in [
            "hablar con un agente",
            "Quiero hablar con una persona",
            "parler à un conseiller",
            "Je voudrais parler à une personne",
            "mit einem Mitarbeiter sprechen",
            "Ich möchte mit einem Menschen sprechen",
            "falar com um atendente",
            "quero falar com uma pessoa",
            "parlare con un operatore",
            "vorrei parlare con un operatore, per favore",
            "un agente por favor",
            "mettez-moi en relation avec un conseiller",
            "conectame con soporte",
        ] {
            assert!(fires(text), "should fire: {text:?}");
        }
    }

    #[test]
    fn typos_and_word_order() {
        for text in [
            "can u direct me to an asisstant",
            "I'm trying to talk to somone",
            "speak wiht an ooerator",
            "I have got to speak with a eprson",
            "want help talkint to a human agent",
            "a human to talk to, please",
        ] {
            assert!(fires(text), "should fire: {text:?}");
        }
    }

    #[test]
    fn not_fooled_by_mentions_of_people() {
        for text in [
            "can another person pick up my order",
            "the human resources page",
            "is the agent field required",
            "a person at the door",
            "my personal details",
            "I need someone to pick up my order",
            "I don't want to talk to a human",
            "no need to speak to an agent",
            "am I talking to a human?",
            "what are your opening hours to contact customer service",
            "do you have a number to contact customer support?",
            "at what time can I call customer support",
            "the person talking on the phone was rude",
            "I need assistance with my refund",
            "talk to me like a human",
            "thanks agent",
            "I talked to an agent yesterday and nothing happened",
            "can you tell me the agent id for my case",
            "I need to contact the person who sent me this",
            "je ne veux pas parler à un conseiller",
            "my walking shoes arrived broken",
            "that person stole my package",
            "can someone explain the return policy",
            "I spoke with an agent, she said to wait",
            "where do I change the contact details of the seller",
            "it was a human error on your side",
            "my agent number is 4456",
            "please don't transfer me to an agent",
            "put another person on the order",
            "I want to associate my email with another account",
            "I need a technician to fix the washer",
            "do you offer an employee discount?",
            "in relation to someone else's order",
            "I need to update the contact person on my account",
            "the escalation process is unclear to me",
            "I spoke to your agent yesterday and she promised a refund",
            "I'm an insurance agent and need an invoice",
        ] {
            assert_eq!(detector().detect(text), None, "should not fire: {text:?}");
        }
    }

    #[test]
    fn negation_of_something_else_keeps_the_request() {
        assert!(fires("I don't know how to talk to a person"));
        assert!(fires("i dont understand u wanna contact a live agent"));
        assert!(fires("I cannot chat with a person"));
        assert!(fires("no entiendo nada quiero hablar con un agente"));
    }

    #[test]
    fn reports_phrase_and_score() {
        let m = detector()
            .detect("Please, I want to talk to a human.")
            .expect("fires");
        assert_eq!(m.phrase, "talk to a human");
        assert!(m.score >= 0.9, "score {}", m.score);

        // A weak noun is less certain than a strong one, and a typo costs a little more.
        let weak = detector().detect("talk to someone").expect("fires").score;
        let strong = detector().detect("talk to an agent").expect("fires").score;
        let typo = detector().detect("talk to an agnet").expect("fires").score;
        assert!(weak < strong);
        assert!(typo < strong);
        assert!((0.0..=1.0).contains(&typo));
    }

    #[test]
    fn extra_phrases_from_config() {
        let d = ExplicitRequestDetector::new(&[
            "escalate to tier 2".to_string(),
            "  ".to_string(),
            "Fachabteilung".to_string(),
        ]);
        let m = d.detect("please escalate this to tier 2").expect("fires");
        assert_eq!(m.phrase, "escalate to tier 2");
        assert!(d.detect("Ich will die Fachabteilung").is_some());
        assert!(d.detect("die Fachabtielung bitte").is_some(), "one typo");
        // Built-in phrasings still work alongside.
        assert!(d.detect("talk to a human").is_some());
        // And negation applies to them too.
        assert!(d.detect("do not escalate to tier 2").is_none());
    }

    #[test]
    fn empty_and_neutral_text() {
        assert!(!fires(""));
        assert!(!fires("   "));
        assert!(!fires("where is my order 123456?"));
        assert!(!fires("how do I reset my password"));
    }

    #[test]
    fn bitext_evaluation() {
        let d = detector();
        let (mut tp, mut pos, mut fp, mut neg, mut svc_hit, mut svc) = (0, 0, 0, 0, 0, 0);
        let mut misses = Vec::new();
        let mut false_alarms = Vec::new();
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        for row in rows {
            let text = &row.instruction;
            let fired = d.detect(text).is_some();
            match row.intent.as_str() {
                "contact_human_agent" => {
                    pos += 1;
                    if fired {
                        tp += 1;
                    } else {
                        misses.push(text.clone());
                    }
                }
                "contact_customer_service" => {
                    svc += 1;
                    if fired {
                        svc_hit += 1;
                    }
                }
                _ => {
                    neg += 1;
                    if fired {
                        fp += 1;
                        false_alarms.push(text.clone());
                    }
                }
            }
        }
        let recall = f64::from(tp) / f64::from(pos.max(1));
        let fpr = f64::from(fp) / f64::from(neg.max(1));
        println!(
            "explicit request: recall {recall:.4} ({tp}/{pos}), false-positive rate {fpr:.4} \
             ({fp}/{neg}), contact_customer_service fired {svc_hit}/{svc}"
        );
        for text in &misses {
            println!("  missed: {text}");
        }
        for text in &false_alarms {
            println!("  false alarm: {text}");
        }
        assert!(pos > 100 && neg > 1000, "too few labelled rows read");
        assert!(recall >= 0.90, "recall {recall}");
        assert!(fpr <= 0.02, "false-positive rate {fpr}");
    }
}
