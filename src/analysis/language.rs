//! Which language a customer writes in, so routing can pick an agent who reads it and the
//! analysis can pick the right lexicons.
//!
//! Detection is lingua's n-gram model restricted to the languages the business serves: fewer
//! candidates means fewer confusions and less memory. Short chat messages are often
//! ambiguous ("ok", "no", "taxi"); for those the detector answers `None` rather than guess,
//! and callers fall back to the conversation's language or to language-agnostic analysis.

use crate::analysis::text::FastMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use crate::analysis::text;

/// A language handoffd has lexicons and phrase lists for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    En,
    /// Spanish.
    Es,
    /// French.
    Fr,
    /// German.
    De,
    /// Portuguese.
    Pt,
    /// Italian.
    It,
}

impl Language {
    /// Every supported language, for defaults and for iterating lexicons.
    pub const ALL: [Language; 6] = [
        Language::En,
        Language::Es,
        Language::Fr,
        Language::De,
        Language::Pt,
        Language::It,
    ];

    /// The ISO 639-1 code, as used in config files, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
            Language::Fr => "fr",
            Language::De => "de",
            Language::Pt => "pt",
            Language::It => "it",
        }
    }

    fn to_lingua(self) -> lingua::Language {
        match self {
            Language::En => lingua::Language::English,
            Language::Es => lingua::Language::Spanish,
            Language::Fr => lingua::Language::French,
            Language::De => lingua::Language::German,
            Language::Pt => lingua::Language::Portuguese,
            Language::It => lingua::Language::Italian,
        }
    }

    fn from_lingua(language: lingua::Language) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|l| l.to_lingua() == language)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A language code that handoffd does not support, reported when config names one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported language `{0}` (expected one of: en, es, fr, de, pt, it)")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    /// Accepts the ISO 639-1 code in any case, so config can say "EN" or "en".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_lowercase();
        Language::ALL
            .into_iter()
            .find(|l| l.as_str() == code)
            .ok_or_else(|| UnknownLanguage(s.to_string()))
    }
}

/// Function words that belong to one language only (among the six), after
/// [`text::tokens`]. Most chat messages contain a few, and counting them costs far less than
/// lingua's n-gram models, so a clear vote settles the language without them. Words shared by
/// two of the languages ("de", "la", "que", "no", "con", "il"...) are left out on purpose.
#[rustfmt::skip]
const FUNCTION_WORDS: [(Language, &[&str]); 6] = [
    (Language::En, &[
        "the", "is", "are", "was", "were", "i", "you", "my", "your", "it", "this", "that", "to",
        "and", "of", "have", "has", "not", "with", "for", "what", "where", "how", "why", "when",
        "can", "does", "did", "will", "would", "please", "we", "they", "be", "been", "im",
        "dont", "cant", "its", "thanks", "thank", "want", "need", "an", "at", "from", "there",
        "which", "still", "just", "could", "should", "get", "got",
    ]),
    (Language::Es, &[
        "el", "los", "las", "del", "es", "y", "mis", "muy", "gracias", "hola", "quiero",
        "tengo", "puedo", "hay", "donde", "cuando", "nada", "esto", "eso", "sin", "usted",
        "ustedes", "fue", "pero", "estoy", "han", "ha", "necesito", "mas", "ningun", "ninguna",
        "todavia", "aun", "tambien", "pueden", "puede", "hacer", "llego", "recibi", "mismo",
    ]),
    (Language::Fr, &[
        "le", "les", "du", "est", "et", "je", "j", "vous", "nous", "mon", "ma", "mes", "pas",
        "ne", "n", "qu", "c", "ce", "cette", "avec", "pour", "dans", "sur", "mais", "merci",
        "bonjour", "suis", "ai", "avez", "sont", "pourquoi", "comment", "toujours", "rien",
        "jamais", "votre", "vos", "aux", "au", "ca", "veux", "peux", "fait", "tres", "deja",
    ]),
    (Language::De, &[
        "der", "die", "das", "den", "dem", "ein", "eine", "einen", "einem", "einer", "ist",
        "und", "ich", "nicht", "mit", "mein", "meine", "meinen", "meiner", "sie", "wir", "zu",
        "auf", "fur", "von", "bitte", "danke", "habe", "hat", "wurde", "kann", "wie", "wo",
        "warum", "wann", "noch", "schon", "auch", "aber", "kein", "keine", "immer", "ihr",
        "ihre", "sind", "mir", "mich", "nach", "bei", "wieder", "gibt",
    ]),
    (Language::Pt, &[
        "os", "um", "uma", "nao", "meu", "minha", "meus", "minhas", "voce", "voces", "eu",
        "com", "para", "isso", "isto", "muito", "obrigado", "obrigada", "ola", "quero",
        "tenho", "onde", "ainda", "tambem", "sao", "estou", "fiz", "ate", "ao", "aos", "na",
        "pelo", "pela", "ja", "nada", "preciso", "recebi", "seu", "sua", "vcs", "vc", "nem",
        "mas", "esta",
    ]),
    (Language::It, &[
        "gli", "della", "dello", "degli", "delle", "sono", "mio", "mia", "miei", "ho", "hai",
        "che", "anche", "ancora", "grazie", "ciao", "voglio", "perche", "dove", "questo",
        "questa", "siete", "ci", "gia", "piu", "molto", "niente", "nessuno", "sempre", "vostro",
        "vostra", "posso", "potete", "avete", "essere", "ricevuto", "alla", "al", "nel",
        "nella", "mai", "ma", "sto",
    ]),
];

/// Support-chat words of one language only, voting like [`FUNCTION_WORDS`]: customers often
/// type bare commands ("cancel order 1234", "Bestellung stornieren") that hold no function
/// word, and lingua's trigrams misread such fragments ("order", "status" look German).
#[rustfmt::skip]
const DOMAIN_WORDS: [(Language, &[&str]); 6] = [
    (Language::En, &[
        "order", "orders", "cancel", "cancelling", "canceling", "refund", "refunds", "help",
        "account", "check", "checking", "payment", "delivery", "shipping", "invoice", "bill",
        "password", "track", "tracking", "purchase", "reimburse", "reimbursement", "money",
        "back", "fee", "charge", "charges", "complaint", "review", "address", "edit", "change",
        "delete", "wanna", "assistance", "information", "about", "item", "items", "options",
        "newsletter", "hello", "hi",
    ]),
    (Language::Es, &[
        "cuenta", "ayuda", "envio", "factura", "devolucion", "dinero", "cancelar", "contrasena",
        "entrega", "queja", "compra", "cambiar", "necesito", "cobro", "pago",
    ]),
    (Language::Fr, &[
        "commande", "compte", "aide", "remboursement", "livraison", "facture", "annuler",
        "argent", "colis", "paiement", "plainte", "achat", "changer", "rembourser",
    ]),
    (Language::De, &[
        "bestellung", "konto", "hilfe", "ruckerstattung", "lieferung", "rechnung", "stornieren",
        "geld", "zuruck", "paket", "zahlung", "beschwerde", "kauf", "andern", "passwort",
        "kundigen", "erstattung", "versand",
    ]),
    (Language::Pt, &[
        "conta", "ajuda", "entrega", "fatura", "devolucao", "dinheiro", "encomenda", "senha",
        "pagamento", "reclamacao", "compra", "mudar", "cancelamento",
    ]),
    (Language::It, &[
        "ordine", "conto", "aiuto", "rimborso", "consegna", "fattura", "annullare", "soldi",
        "pacco", "pagamento", "reclamo", "acquisto", "cambiare", "spedizione",
    ]),
];

/// Every voting word, with a bit per language ([`FUNCTION_WORDS`] order) it votes for.
static VOTERS: LazyLock<FastMap<&'static str, u8>> = LazyLock::new(|| {
    let mut voters: FastMap<&'static str, u8> = FastMap::default();
    for (slot, ((_, function), (_, domain))) in FUNCTION_WORDS.iter().zip(&DOMAIN_WORDS).enumerate()
    {
        for word in function.iter().chain(domain.iter()) {
            *voters.entry(word).or_default() |= 1 << slot;
        }
    }
    voters
});

/// Fewest function words of the winning language for the vote to settle the language.
const VOTE_MIN_HITS: usize = 2;
/// Messages of at most this many words are settled by one voting word when no other
/// language has any.
const SHORT_FRAGMENT_WORDS: usize = 4;
/// How many times the runner-up's count the winner needs for the vote to settle it.
const VOTE_MIN_RATIO: usize = 3;
/// Lingua reads at most this many bytes (cut at a char boundary): its accuracy no longer
/// improves much past 120 characters, and its cost grows with the length.
const LINGUA_MAX_BYTES: usize = 200;

/// Least probability lingua must give the winner before the detector names it.
const MIN_CONFIDENCE: f64 = 0.5;
/// Least lead of the winner over the runner-up; below it the text is ambiguous.
const MIN_MARGIN: f64 = 0.15;
/// Fewest letters a text needs before detection is attempted: "ok" or "no" say nothing.
const MIN_LETTERS: usize = 3;

/// Detects the language of a message among the configured ones. Built once at startup; the
/// models are loaded then, not on the first customer message.
pub struct LanguageDetector {
    languages: Vec<Language>,
    inner: Option<lingua::LanguageDetector>,
}

impl fmt::Debug for LanguageDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LanguageDetector")
            .field("languages", &self.languages)
            .finish_non_exhaustive()
    }
}

impl LanguageDetector {
    /// A detector choosing among `languages` (duplicates ignored). With no language it
    /// detects nothing; with one it names that one for any text with letters.
    ///
    /// Uses lingua's low-accuracy mode (trigram models only): on short chat messages of the
    /// six languages it was as right as the high-accuracy mode in our measurements and
    /// several times faster (see the tests).
    pub fn new(languages: &[Language]) -> Self {
        Self::build(languages, true)
    }

    /// Like [`LanguageDetector::new`] with lingua's high-accuracy mode (1- to 5-gram models):
    /// more memory and time, kept so the two modes can be compared.
    pub fn high_accuracy(languages: &[Language]) -> Self {
        Self::build(languages, false)
    }

    fn build(languages: &[Language], low_accuracy: bool) -> Self {
        let mut unique: Vec<Language> = Vec::new();
        for l in languages {
            if !unique.contains(l) {
                unique.push(*l);
            }
        }
        let inner = (unique.len() > 1).then(|| {
            let lingua_languages: Vec<lingua::Language> =
                unique.iter().map(|l| l.to_lingua()).collect();
            let mut builder = lingua::LanguageDetectorBuilder::from_languages(&lingua_languages);
            builder.with_preloaded_language_models();
            if low_accuracy {
                builder.with_low_accuracy_mode();
            }
            builder.build()
        });
        LanguageDetector {
            languages: unique,
            inner,
        }
    }

    /// The languages this detector chooses among.
    pub fn languages(&self) -> &[Language] {
        &self.languages
    }

    /// The language of `text` and lingua's probability for it (0..1), or `None` when the text
    /// is too short or too ambiguous to tell.
    pub fn detect(&self, text: &str) -> Option<(Language, f64)> {
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        if letters < MIN_LETTERS {
            return None;
        }
        let Some(inner) = &self.inner else {
            // Zero or one language: nothing to choose.
            return self.languages.first().map(|l| (*l, 1.0));
        };
        if let Some(found) = self.vote(text) {
            return Some(found);
        }
        let mut end = text.len().min(LINGUA_MAX_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let values = inner.compute_language_confidence_values(&text[..end]);
        let (best, best_p) = *values.first()?;
        let second_p = values.get(1).map_or(0.0, |(_, p)| *p);
        if best_p < MIN_CONFIDENCE || best_p - second_p < MIN_MARGIN {
            return None;
        }
        Language::from_lingua(best).map(|l| (l, best_p))
    }

    /// Only lingua, without the function-word vote: for comparing the two in tests.
    #[cfg(test)]
    fn detect_lingua_only(&self, text: &str) -> Option<(Language, f64)> {
        let inner = self.inner.as_ref()?;
        let values = inner.compute_language_confidence_values(text);
        let (best, best_p) = *values.first()?;
        let second_p = values.get(1).map_or(0.0, |(_, p)| *p);
        if best_p < MIN_CONFIDENCE || best_p - second_p < MIN_MARGIN {
            return None;
        }
        Language::from_lingua(best).map(|l| (l, best_p))
    }

    /// The function-word vote: a language when its words clearly outnumber every other
    /// configured language's, with the winner's share of the counted words as confidence.
    fn vote(&self, text: &str) -> Option<(Language, f64)> {
        let mut counts = [0usize; 6];
        let mut words = 0;
        text::for_each_word(text, |token| {
            words += 1;
            let Some(&slots) = VOTERS.get(token) else {
                return;
            };
            for (slot, (language, _)) in FUNCTION_WORDS.iter().enumerate() {
                if slots & (1 << slot) != 0 && self.languages.contains(language) {
                    counts[slot] += 1;
                }
            }
        });
        let (winner, &hits) = counts.iter().enumerate().max_by_key(|(_, c)| **c)?;
        let total: usize = counts.iter().sum();
        let runner_up = counts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != winner)
            .map(|(_, c)| *c)
            .max()
            .unwrap_or(0);
        // A short fragment ("modify order 00123842") may hold one voting word and nothing
        // that votes against it; lingua reads such fragments no better ("order status"
        // looks German to it) at fifty times the cost.
        let alone_in_short = hits == 1 && runner_up == 0 && words <= SHORT_FRAGMENT_WORDS;
        if (hits < VOTE_MIN_HITS && !alone_in_short) || hits < VOTE_MIN_RATIO * runner_up {
            return None;
        }
        let share = hits as f64 / total as f64;
        Some((FUNCTION_WORDS[winner].0, share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dozen short chat messages per language, written for this test.
    fn samples() -> Vec<(Language, &'static str)> {
        let mut v = Vec::new();
        for text in [
            "where is my package",
            "I want my money back",
            "the app keeps crashing",
            "can you help me with my order",
            "this is taking forever",
            "my card was charged twice",
            "I never got the confirmation email",
            "how do I change my password",
            "the shoes are too small",
            "please cancel my subscription",
            "nobody answers the phone",
            "thanks, that worked",
        ] {
            v.push((Language::En, text));
        }
        for text in [
            "dónde está mi paquete",
            "quiero que me devuelvan el dinero",
            "la aplicación no funciona",
            "me pueden ayudar con mi pedido",
            "esto está tardando muchísimo",
            "me cobraron dos veces",
            "nunca recibí el correo de confirmación",
            "cómo cambio mi contraseña",
            "los zapatos me quedan pequeños",
            "por favor cancelen mi suscripción",
            "nadie contesta el teléfono",
            "gracias, ya funciona",
        ] {
            v.push((Language::Es, text));
        }
        for text in [
            "où est mon colis",
            "je veux être remboursé",
            "l'application ne marche pas",
            "pouvez-vous m'aider avec ma commande",
            "ça prend une éternité",
            "on m'a débité deux fois",
            "je n'ai jamais reçu l'e-mail de confirmation",
            "comment changer mon mot de passe",
            "les chaussures sont trop petites",
            "merci d'annuler mon abonnement",
            "personne ne répond au téléphone",
            "merci, ça marche",
        ] {
            v.push((Language::Fr, text));
        }
        for text in [
            "wo ist mein Paket",
            "ich will mein Geld zurück",
            "die App stürzt ständig ab",
            "können Sie mir bei meiner Bestellung helfen",
            "das dauert ewig",
            "meine Karte wurde doppelt belastet",
            "ich habe die Bestätigung nie bekommen",
            "wie ändere ich mein Passwort",
            "die Schuhe sind zu klein",
            "bitte kündigen Sie mein Abo",
            "niemand geht ans Telefon",
            "danke, jetzt geht es",
        ] {
            v.push((Language::De, text));
        }
        for text in [
            "onde está minha encomenda",
            "quero meu dinheiro de volta",
            "o aplicativo não funciona",
            "vocês podem me ajudar com meu pedido",
            "isso está demorando demais",
            "fui cobrado duas vezes",
            "nunca recebi o email de confirmação",
            "como eu mudo minha senha",
            "os sapatos ficaram pequenos",
            "por favor cancelem minha assinatura",
            "ninguém atende o telefone",
            "obrigado, deu certo",
        ] {
            v.push((Language::Pt, text));
        }
        for text in [
            "dov'è il mio pacco",
            "rivoglio i miei soldi",
            "l'app non funziona",
            "potete aiutarmi con il mio ordine",
            "ci sta mettendo un'eternità",
            "mi avete addebitato due volte",
            "non ho mai ricevuto l'email di conferma",
            "come cambio la mia password",
            "le scarpe sono troppo piccole",
            "per favore annullate il mio abbonamento",
            "nessuno risponde al telefono",
            "grazie, adesso funziona",
        ] {
            v.push((Language::It, text));
        }
        v
    }

    /// Right, wrong and undecided answers on [`samples`], and the mean time per message.
    fn measure(
        name: &str,
        detect: impl Fn(&str) -> Option<(Language, f64)>,
    ) -> (usize, usize, usize) {
        let samples = samples();
        let (mut right, mut wrong, mut none) = (0, 0, 0);
        let start = std::time::Instant::now();
        for (want, text) in &samples {
            match detect(text) {
                Some((got, _)) if got == *want => right += 1,
                Some((got, p)) => {
                    wrong += 1;
                    println!("  {name}: {text:?}: {got} ({p:.2}), want {want}");
                }
                None => {
                    none += 1;
                    println!("  {name}: {text:?}: undecided, want {want}");
                }
            }
        }
        let per = start.elapsed() / samples.len() as u32;
        println!("language {name}: right {right}, wrong {wrong}, undecided {none}, {per:?}/msg");
        (right, wrong, none)
    }

    #[test]
    fn short_messages_in_six_languages() {
        let low = LanguageDetector::new(&Language::ALL);
        let high = LanguageDetector::high_accuracy(&Language::ALL);
        // Warm both up so the timing below is per message, not model loading.
        let _ = low.detect_lingua_only("warm up the models");
        let _ = high.detect_lingua_only("warm up the models");
        let voted = samples()
            .iter()
            .filter(|(_, text)| low.vote(text).is_some())
            .count();
        println!("language: the function-word vote settled {voted}/72");
        measure("vote only", |t| low.vote(t));
        measure("lingua low-accuracy", |t| low.detect_lingua_only(t));
        measure("lingua high-accuracy", |t| high.detect_lingua_only(t));
        let (right, wrong, _) = measure("detector (vote, then low-accuracy lingua)", |t| {
            low.detect(t)
        });
        // Wrong answers hurt routing more than no answer.
        assert!(wrong <= 2, "{wrong} wrong");
        assert!(right >= 64, "{right}/72 right");
        assert!(voted >= 48, "the vote settled only {voted}");
    }

    #[test]
    fn bitext_reads_as_english() {
        // The Bitext sample is English throughout, with typos and chat spelling.
        let d = LanguageDetector::new(&Language::ALL);
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        let (mut en, mut other, mut none) = (0, 0, 0);
        for row in &rows {
            match d.detect(&row.instruction) {
                Some((Language::En, _)) => en += 1,
                Some(_) => other += 1,
                None => none += 1,
            }
        }
        println!(
            "language on Bitext: English {en}, another language {other}, undecided {none} \
             (of {})",
            rows.len()
        );
        assert!(en * 100 >= rows.len() * 95, "{en}/{}", rows.len());
        assert!(other * 100 <= rows.len(), "{other}/{}", rows.len());
    }

    #[test]
    fn one_voting_word_settles_a_short_fragment_alone() {
        let d = LanguageDetector::new(&Language::ALL);
        for text in [
            "modify order 00123842",
            "order 00004587345 status",
            "see bill #12588",
        ] {
            assert_eq!(d.vote(text).map(|(l, _)| l), Some(Language::En), "{text}");
        }
        assert_eq!(
            d.vote("Bestellung 4711").map(|(l, _)| l),
            Some(Language::De)
        );
        // Longer messages need two votes; a fragment with votes for two languages, more.
        assert_eq!(d.vote("kindly modify shipping data quickly"), None);
        assert_eq!(d.vote("order commande 12"), None);
    }

    #[test]
    fn ambiguous_or_empty_text_is_undecided() {
        let d = LanguageDetector::new(&Language::ALL);
        assert_eq!(d.detect(""), None);
        assert_eq!(d.detect("ok"), None);
        assert_eq!(d.detect("12345 !!!"), None);
        assert_eq!(d.detect("👍"), None);
    }

    #[test]
    fn restricted_to_configured_languages() {
        let d = LanguageDetector::new(&[Language::En, Language::De]);
        assert_eq!(d.languages(), &[Language::En, Language::De]);
        let (l, p) = d
            .detect("Ich möchte meine Bestellung stornieren")
            .expect("clear German");
        assert_eq!(l, Language::De);
        assert!((0.5..=1.0).contains(&p));
        // Spanish is not configured, so it can never be the answer.
        let spanish = d.detect("quiero cancelar mi pedido, por favor");
        assert!(spanish.is_none_or(|(l, _)| l != Language::Es));
    }

    #[test]
    fn single_or_no_language() {
        let one = LanguageDetector::new(&[Language::Fr, Language::Fr]);
        assert_eq!(one.detect("anything at all"), Some((Language::Fr, 1.0)));
        assert_eq!(one.detect("?"), None);
        let none = LanguageDetector::new(&[]);
        assert_eq!(none.detect("hello there"), None);
    }

    #[test]
    fn codes_round_trip() {
        for l in Language::ALL {
            assert_eq!(l.as_str().parse::<Language>(), Ok(l));
            assert_eq!(l.to_string(), l.as_str());
            let json = serde_json::to_string(&l).expect("serialize");
            assert_eq!(json, format!("\"{}\"", l.as_str()));
            let back: Language = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, l);
        }
        assert_eq!(" DE ".parse::<Language>(), Ok(Language::De));
        assert!("nl".parse::<Language>().is_err());
        assert!(serde_json::from_str::<Language>("\"english\"").is_err());
    }
}
