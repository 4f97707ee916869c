//! Pulls the details an agent needs out of a customer's message (order numbers, email
//! addresses, phone numbers, money amounts), so the handoff summary shows them up front and the
//! agent does not have to scroll the transcript for them.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::analysis::text;

/// One detail found in a message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FoundEntity {
    /// `order_number`, `email`, `phone`, `amount`, or the name of a configured pattern.
    pub kind: String,
    /// The text as the customer wrote it (an order number's leading zeros are kept).
    pub value: String,
}

/// Words that introduce an order reference, in the supported languages (normalised).
#[rustfmt::skip]
const ORDER_KEYWORDS: &[&str] = &[
    "order", "purchase", "invoice", "bill", "booking", "reservation", "confirmation", "tracking",
    "reference", "ref", "pedido", "compra", "factura", "commande", "facture", "bestellung",
    "rechnung", "encomenda", "fatura", "ordine", "fattura",
];

/// Fewest digits an order reference has; shorter numbers are quantities or days.
const MIN_ORDER_DIGITS: usize = 4;
/// A phone number has between this many digits and E.164's maximum of 15.
const MIN_PHONE_DIGITS: usize = 8;
const MAX_PHONE_DIGITS: usize = 15;

/// A reference after a word ("order 123", "purchase no. 00042", "order732201") or after a
/// hash ("#A-12345"). The word is checked against [`ORDER_KEYWORDS`] afterwards, with typo
/// tolerance, which a regex cannot do.
static ORDER_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?ix)
        (?:
            \b(?P<kw>\p{L}{3,24})
            (?:\s*(?:number|num|no|nr|n°|nº|id|numero|nummer)\.?)?
            \s*[:\x23]?\s*
          |
            (?P<hash>\x23)\s?
        )
        (?P<id>(?:[a-z]{1,4}-?)?\d[\d-]*\d(?:-?[a-z0-9]+)?)\b",
    )
});

static EMAIL_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?ix)
        \b[a-z0-9][a-z0-9._%+-]*
        @
        [a-z0-9](?:[a-z0-9-]*[a-z0-9])?
        (?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*
        \.[a-z]{2,}\b",
    )
});

/// Digits with the separators people put in phone numbers; the digit count is checked after.
static PHONE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| compile(r"(?:\+|\(|\b)\d[\d .()/-]{5,}\d\b"));

/// Dates look like phone numbers to [`PHONE_RE`] ("2024-01-15", "15/01/2024").
static DATE_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")
});

/// Money with the currency before ("$45.99", "€12,50", "US$ 5") or after ("45 EUR", "12,50 €").
/// A space only separates thousands when exactly three digits follow ("$1 299").
static AMOUNT_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    compile(
        r"(?ix)
        (?:
            (?:(?:\b(?:us|au|ca|r))?\$|[€£¥₹]|\b(?:usd|eur|gbp|chf|cad|aud|mxn|brl)\b)\x20?
            \d+(?:[.,\x20]\d{3}\b)*(?:[.,]\d{1,2})?
          |
            \b\d+(?:[.,]\d{3})*(?:[.,]\d{1,2})?\x20?
            (?:[€£$¥₹]|(?:usd|eur|euros?|gbp|pounds?|dollars?|chf|cad|aud|mxn|brl|reais|pesos?)\b)
        )",
    )
});

/// Compiles a pattern written in this file. They are fixed and a test checks they compile,
/// so `None` never happens in practice; if it did, that kind of entity would simply not be
/// found instead of the daemon going down.
fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

/// Finds entities with the built-in patterns and the business's own, so one configured
/// extractor serves the whole daemon.
///
/// Custom patterns come from config as (name, regex). When a pattern has a capture group, the
/// first group is the value ("ref(?:erence)?\s*([A-Z]{2}\d{6})" yields "AB123456");
/// otherwise the whole match is. Custom patterns are matched first and claim their text, so a
/// business pattern for its account ids wins over the built-in order-number reading of the
/// same characters. Patterns are case-sensitive unless they say `(?i)`.
#[derive(Debug, Clone, Default)]
pub struct EntityExtractor {
    custom: Vec<(String, Regex)>,
}

impl EntityExtractor {
    /// Compiles the custom patterns; the first invalid one is the error, so config validation
    /// can name it.
    pub fn new(custom: &[(String, String)]) -> Result<Self, regex::Error> {
        let custom = custom
            .iter()
            .map(|(name, pattern)| Ok((name.trim().to_string(), Regex::new(pattern)?)))
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(EntityExtractor { custom })
    }

    /// The names of the custom patterns, in config order.
    pub fn custom_kinds(&self) -> impl Iterator<Item = &str> {
        self.custom.iter().map(|(name, _)| name.as_str())
    }

    /// Every entity in `text`, custom and built-in, in the order they appear, each value once.
    pub fn extract(&self, text: &str) -> Vec<FoundEntity> {
        let mut found: Vec<(usize, String, String)> = Vec::new();
        let mut taken: Vec<Range<usize>> = Vec::new();
        for (name, re) in &self.custom {
            for caps in re.captures_iter(text) {
                let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                    continue;
                };
                let value = m.as_str().trim();
                if value.is_empty() || overlaps(&taken, &m.range()) {
                    continue;
                }
                found.push((m.start(), name.clone(), value.to_string()));
                taken.push(m.range());
            }
        }
        built_in(text, &mut found, &mut taken);
        found.sort_by_key(|(start, _, _)| *start);
        let mut out: Vec<FoundEntity> = Vec::new();
        for (_, kind, value) in found {
            if !out.iter().any(|e| e.kind == kind && e.value == value) {
                out.push(FoundEntity { kind, value });
            }
        }
        out
    }
}

/// Finds order numbers, emails, phone numbers and amounts in a customer's message, in the
/// order they appear, each value once: the built-in patterns without any configured ones.
pub fn extract(text: &str) -> Vec<FoundEntity> {
    EntityExtractor::default().extract(text)
}

/// Adds the built-in kinds to `found`, skipping text already `taken`.
fn built_in(text: &str, found: &mut Vec<(usize, String, String)>, taken: &mut Vec<Range<usize>>) {
    // Every built-in kind but email needs a digit, and email an "@": most chat messages have
    // neither, and the patterns are slow on text with accents (Unicode word boundaries).
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    if !has_digit && !text.contains('@') {
        return;
    }
    for m in EMAIL_RE.iter().flat_map(|re| re.find_iter(text)) {
        if overlaps(taken, &m.range()) {
            continue;
        }
        found.push((m.start(), "email".into(), m.as_str().to_string()));
        taken.push(m.range());
    }

    if !has_digit {
        return;
    }
    for caps in ORDER_RE.iter().flat_map(|re| re.captures_iter(text)) {
        let Some(id) = caps.name("id") else { continue };
        if overlaps(taken, &id.range()) || digit_count(id.as_str()) < MIN_ORDER_DIGITS {
            continue;
        }
        let by_hash = caps.name("hash").is_some()
            || caps
                .get(0)
                .is_some_and(|whole| whole.as_str().contains('#'));
        let by_keyword = caps
            .name("kw")
            .is_some_and(|kw| is_order_keyword(kw.as_str()));
        if by_hash || by_keyword {
            found.push((id.start(), "order_number".into(), id.as_str().to_string()));
            taken.push(id.range());
        }
    }

    for m in AMOUNT_RE.iter().flat_map(|re| re.find_iter(text)) {
        if overlaps(taken, &m.range()) {
            continue;
        }
        found.push((m.start(), "amount".into(), m.as_str().trim().to_string()));
        taken.push(m.range());
    }

    for m in PHONE_RE.iter().flat_map(|re| re.find_iter(text)) {
        let value = m.as_str().trim();
        let digits = digit_count(value);
        if overlaps(taken, &m.range())
            || !(MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits)
            || DATE_RE.as_ref().is_some_and(|re| re.is_match(value))
        {
            continue;
        }
        found.push((m.start(), "phone".into(), value.to_string()));
        taken.push(m.range());
    }
}

fn digit_count(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

fn overlaps(taken: &[Range<usize>], range: &Range<usize>) -> bool {
    taken
        .iter()
        .any(|t| t.start < range.end && range.start < t.end)
}

/// Whether a word introduces an order reference, tolerating one typo in longer keywords
/// ("purhase", "oredr"), which customers make as often as in any other word.
fn is_order_keyword(word: &str) -> bool {
    let word = text::normalize(word);
    ORDER_KEYWORDS.iter().any(|kw| {
        *kw == word
            // Plurals ("orders 1234 and 5678") count too.
            || word.strip_suffix('s') == Some(kw)
            // Typos rarely hit the first letter, and requiring it keeps real words such as
            // "border" out.
            || (kw.len() >= 5
                && word.len() >= 4
                && kw.as_bytes().first() == word.as_bytes().first()
                && text::within_one_edit(kw, &word))
            // A keyword glued to the word before it ("theorder", "cancelingpurchase"); a
            // short prefix is more likely a different word ("border").
            || (kw.len() >= 5
                && word.len() >= kw.len() + 3
                && word.ends_with(kw))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: &str, value: &str) -> FoundEntity {
        FoundEntity {
            kind: kind.to_string(),
            value: value.to_string(),
        }
    }

    fn of_kind(text: &str, kind: &str) -> Vec<String> {
        extract(text)
            .into_iter()
            .filter(|x| x.kind == kind)
            .map(|x| x.value)
            .collect()
    }

    #[test]
    fn built_in_patterns_compile() {
        assert!(ORDER_RE.is_some());
        assert!(EMAIL_RE.is_some());
        assert!(PHONE_RE.is_some());
        assert!(DATE_RE.is_some());
        assert!(AMOUNT_RE.is_some());
    }

    #[test]
    fn brief_samples() {
        assert_eq!(
            extract("please stop the shipment of purchase 204518873360147, I changed my mind"),
            vec![e("order_number", "204518873360147")]
        );
        assert_eq!(
            extract("email me at jo.doe@example.com"),
            vec![e("email", "jo.doe@example.com")]
        );
        assert_eq!(
            extract("call +1 415 555 0100"),
            vec![e("phone", "+1 415 555 0100")]
        );
        assert_eq!(
            extract("I was charged $45.99 twice"),
            vec![e("amount", "$45.99")]
        );
    }

    #[test]
    fn order_numbers_in_their_usual_forms() {
        assert_eq!(
            of_kind("where is order 12345678", "order_number"),
            vec!["12345678"]
        );
        assert_eq!(of_kind("it's #A-12345", "order_number"), vec!["A-12345"]);
        assert_eq!(
            of_kind(
                "could you stop purchase 00007712094 for me?",
                "order_number"
            ),
            vec!["00007712094"]
        );
        assert_eq!(of_kind("order no. 98765", "order_number"), vec!["98765"]);
        assert_eq!(
            of_kind("Order number: 55501234", "order_number"),
            vec!["55501234"]
        );
        assert_eq!(
            of_kind("cancelling order732201349959", "order_number"),
            vec!["732201349959"]
        );
        assert_eq!(
            of_kind("find my bill #37777", "order_number"),
            vec!["37777"]
        );
        assert_eq!(
            of_kind("mi pedido 45678 no llegó", "order_number"),
            vec!["45678"]
        );
        assert_eq!(
            of_kind("ma commande n° 45678", "order_number"),
            vec!["45678"]
        );
    }

    #[test]
    fn order_keywords_tolerate_typos() {
        assert_eq!(
            of_kind("cancel purhase 370795561790", "order_number"),
            vec!["370795561790"]
        );
        assert_eq!(
            of_kind("cancel oredr 204518873360147", "order_number"),
            vec!["204518873360147"]
        );
        assert_eq!(
            of_kind("item of purchaes 370795561790", "order_number"),
            vec!["370795561790"]
        );
        assert_eq!(
            of_kind("ETA of theorder 204518873360147", "order_number"),
            vec!["204518873360147"]
        );
        assert!(of_kind("the border 12345 crossing", "order_number").is_empty());
    }

    #[test]
    fn numbers_without_order_context_are_not_orders() {
        assert!(of_kind("I waited 2024 seconds", "order_number").is_empty());
        assert!(of_kind("I bought 3 items", "order_number").is_empty());
        // Too few digits for a reference.
        assert!(of_kind("order 12", "order_number").is_empty());
    }

    #[test]
    fn a_long_order_number_is_not_also_a_phone() {
        let found =
            extract("please stop the shipment of purchase 204518873360147, I changed my mind");
        assert!(found.iter().all(|x| x.kind != "phone"));
    }

    #[test]
    fn emails() {
        assert_eq!(
            of_kind("write to Ana.Lopez+shop@mail.example.co.uk.", "email"),
            vec!["Ana.Lopez+shop@mail.example.co.uk"]
        );
        assert!(of_kind("meet me @ the store", "email").is_empty());
    }

    #[test]
    fn phones_in_local_and_international_formats() {
        assert_eq!(
            of_kind("my number is (415) 555-0100", "phone"),
            vec!["(415) 555-0100"]
        );
        assert_eq!(
            of_kind("ring 06 12 34 56 78 please", "phone"),
            vec!["06 12 34 56 78"]
        );
        assert_eq!(
            of_kind("tel 0044 20 7946 0958", "phone"),
            vec!["0044 20 7946 0958"]
        );
        assert_eq!(of_kind("+4915112345678", "phone"), vec!["+4915112345678"]);
    }

    #[test]
    fn short_numbers_and_dates_are_not_phones() {
        assert!(of_kind("room 555 0100", "phone").is_empty());
        assert!(of_kind("ordered on 2024-01-15", "phone").is_empty());
        assert!(of_kind("since 15/01/2024", "phone").is_empty());
    }

    #[test]
    fn amounts_in_several_formats() {
        assert_eq!(of_kind("it cost 45 EUR", "amount"), vec!["45 EUR"]);
        assert_eq!(
            of_kind("they took €12,50 from me", "amount"),
            vec!["€12,50"]
        );
        assert_eq!(
            of_kind("refund 1,299.00 dollars", "amount"),
            vec!["1,299.00 dollars"]
        );
        assert_eq!(of_kind("paid £7", "amount"), vec!["£7"]);
        assert_eq!(of_kind("costs 30€ now", "amount"), vec!["30€"]);
        assert!(of_kind("I have 3 questions", "amount").is_empty());
    }

    #[test]
    fn several_entities_in_reading_order() {
        let found = extract(
            "Order #B-77881 was charged $45.99 twice, reach me at a@b.io or +44 20 7946 0958",
        );
        assert_eq!(
            found,
            vec![
                e("order_number", "B-77881"),
                e("amount", "$45.99"),
                e("email", "a@b.io"),
                e("phone", "+44 20 7946 0958"),
            ]
        );
    }

    #[test]
    fn repeated_values_are_reported_once() {
        let found = extract("order 123456 ... I said order 123456!");
        assert_eq!(found, vec![e("order_number", "123456")]);
    }

    #[test]
    fn nothing_in_plain_text() {
        assert!(extract("hello, I need help with my account").is_empty());
        assert!(extract("").is_empty());
    }

    fn custom() -> EntityExtractor {
        EntityExtractor::new(&[
            ("account_id".to_string(), r"\bACC-\d{6}\b".to_string()),
            (
                "ticket".to_string(),
                r"(?i)\bticket\s*(?:no\.?\s*)?(T\d{5})\b".to_string(),
            ),
        ])
        .expect("valid patterns")
    }

    #[test]
    fn custom_patterns_add_kinds() {
        let x = custom();
        assert_eq!(
            x.custom_kinds().collect::<Vec<_>>(),
            ["account_id", "ticket"]
        );
        assert_eq!(
            x.extract("my account ACC-204411 was charged $12.50, see Ticket no. T77120"),
            vec![
                e("account_id", "ACC-204411"),
                e("amount", "$12.50"),
                e("ticket", "T77120"),
            ]
        );
        // The free function knows only the built-in kinds.
        assert!(
            extract("account ACC-204411")
                .iter()
                .all(|f| f.kind != "account_id")
        );
    }

    #[test]
    fn custom_patterns_win_over_built_ins() {
        // Without the custom pattern, "#ACC-204411" reads as an order reference.
        assert_eq!(
            of_kind("it's #ACC-204411", "order_number"),
            vec!["ACC-204411"]
        );
        let found = custom().extract("it's #ACC-204411");
        assert_eq!(found, vec![e("account_id", "ACC-204411")]);
    }

    #[test]
    fn custom_values_are_reported_once_and_never_empty() {
        let x = EntityExtractor::new(&[
            ("code".to_string(), r"\b[A-Z]{3}\d{3}\b".to_string()),
            ("maybe".to_string(), r"x(\d*)".to_string()),
        ])
        .expect("valid");
        let found = x.extract("codes ABC123 and ABC123 again");
        assert_eq!(found, vec![e("code", "ABC123")]);
        // An empty capture is no value.
        assert!(x.extract("x marks").iter().all(|f| f.kind != "maybe"));
        assert_eq!(of(&x, "x42", "maybe"), vec!["42"]);
    }

    fn of(x: &EntityExtractor, text: &str, kind: &str) -> Vec<String> {
        x.extract(text)
            .into_iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.value)
            .collect()
    }

    #[test]
    fn invalid_custom_pattern_is_an_error() {
        let err = EntityExtractor::new(&[("bad".to_string(), "(unclosed".to_string())]);
        assert!(err.is_err());
        assert!(EntityExtractor::new(&[]).is_ok());
    }

    #[test]
    fn dataset_order_ids_are_found() {
        // Order ids annotated in the Bitext sample, when it is present.
        let (mut total, mut hit) = (0, 0);
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        for row in rows {
            if row.entity_type != "order_id" {
                continue;
            }
            total += 1;
            let want = row.entity_value.trim_start_matches('0');
            if of_kind(&row.instruction, "order_number")
                .iter()
                .any(|v| v.trim_start_matches('0') == want)
            {
                hit += 1;
            }
        }
        println!("order ids found: {hit}/{total}");
        assert!(total > 300 && hit * 100 >= total * 98, "{hit}/{total}");
    }
}
