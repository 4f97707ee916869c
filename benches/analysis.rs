//! How long the analysis of one customer message takes: the issue asks for microseconds, not
//! milliseconds. Run with `cargo bench --bench analysis`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use handoffd::analysis::repetition::find_repeat;
use handoffd::analysis::{Analyzer, AnalyzerSettings};

/// Typical messages: a short one, a long one, and three in other languages.
const MESSAGES: &[(&str, &str)] = &[
    ("short", "where is my order?"),
    (
        "long",
        "Hi, I ordered a pair of running shoes two weeks ago (order 55501234) and they still \
         have not arrived. I paid $89.99 and your tracking page shows nothing. This is really \
         frustrating, I want a refund or at least an answer. You can reach me at \
         jo.doe@example.com or +44 20 7946 0958.",
    ),
    (
        "spanish",
        "quiero cancelar mi pedido, el servicio es pésimo",
    ),
    (
        "german",
        "Ich möchte mit einem Mitarbeiter sprechen, das Paket ist kaputt",
    ),
    ("french", "je veux être remboursé, c'est inadmissible"),
];

/// Ten earlier customer messages of one conversation, for the repetition check.
const EARLIER: &[&str] = &[
    "hi",
    "I ordered shoes two weeks ago",
    "the order number is 55501234",
    "they have not arrived yet",
    "can you check the tracking?",
    "ok",
    "it says label created since last week",
    "when will they be delivered?",
    "thanks",
    "so where is my order now",
];

fn analysis(c: &mut Criterion) {
    let analyzer = match Analyzer::new(&AnalyzerSettings::default()) {
        Ok(a) => a,
        Err(e) => panic!("default settings must build: {e}"),
    };
    let mut group = c.benchmark_group("analyze");
    for (name, text) in MESSAGES {
        group.bench_function(*name, |b| b.iter(|| analyzer.analyze(black_box(text))));
    }
    group.finish();
    c.bench_function("find_repeat/10 earlier", |b| {
        b.iter(|| find_repeat(black_box("where's my order??"), black_box(EARLIER)))
    });
}

criterion_group!(benches, analysis);
criterion_main!(benches);
