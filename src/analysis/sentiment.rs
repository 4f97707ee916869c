//! How positive or negative a customer's message reads, in -1..=1, so escalation can react to
//! an upset customer before they ask for a person.
//!
//! The scorer is lexicon based, in the manner of VADER (Hutto & Gilbert, 2014): each known word
//! carries a valence on a -4..=4 scale, and the message's sum is squashed into -1..=1. Around
//! each sentiment word:
//!
//! - a negation up to three words before it, in the same clause, flips and weakens it ("not
//!   good", "never helpful", "doesn't work", "no es bueno", "nicht gut");
//! - intensifiers strengthen it ("very", "so", "muy", "sehr") and dampeners soften it
//!   ("slightly", "a bit", "un peu"), less the further away they are;
//! - a word in ALL CAPS counts more, when the rest of the message is not shouted too;
//! - words before "but" count half and words after it half again as much, since the
//!   customer's real opinion usually follows ("nice site but useless support");
//! - "!" (up to four) and "??" push the whole message further in its direction;
//! - emoticons and emoji carry sentiment of their own.
//!
//! English has a broad lexicon, with words that matter in support chats ("refund", "waiting",
//! "broken", "scam", "never arrived"). Spanish, French, German, Portuguese and Italian have a
//! hundred or so words each and their own negations and intensifiers. [`score`] reads every
//! lexicon at once, which is right for any of the six languages with few collisions;
//! [`score_in`] prefers one language's lexicon when the language is known, which settles
//! false friends such as Italian "fine" (end) or German "toll" (great).
//!
//! The valences were written for this module; none is copied from VADER's lexicon.

use crate::analysis::text::{FastMap, FastSet};
use std::borrow::Cow;
use std::sync::LazyLock;

use crate::analysis::language::Language;
use crate::analysis::text;

/// English valences, after [`text::normalize`] (lower case, no accents, no apostrophes).
#[rustfmt::skip]
const EN_LEXICON: &[(&str, f32)] = &[
    // Positive.
    ("good", 1.9), ("great", 3.1), ("excellent", 3.2), ("awesome", 3.1), ("amazing", 2.8),
    ("fantastic", 2.6), ("wonderful", 2.7), ("brilliant", 2.8), ("perfect", 2.7), ("best", 3.0),
    ("better", 1.9), ("love", 3.2), ("loved", 2.9), ("loving", 2.5), ("lovely", 2.8),
    ("happy", 2.7), ("happier", 2.2), ("glad", 2.0), ("pleased", 1.9), ("pleasant", 2.1),
    ("satisfied", 1.8), ("satisfying", 2.0), ("helpful", 1.9), ("nice", 1.8), ("cool", 1.3),
    ("fine", 0.8), ("ok", 0.4), ("okay", 0.4), ("thanks", 1.9), ("thank", 1.5), ("thx", 1.5),
    ("thanx", 1.5), ("appreciate", 2.0), ("appreciated", 2.0), ("grateful", 2.3),
    ("resolved", 1.2), ("solved", 1.2), ("fixed", 1.2), ("sorted", 1.0), ("super", 2.0),
    ("superb", 2.9), ("outstanding", 3.0), ("impressive", 2.3), ("impressed", 2.2),
    ("incredible", 2.4), ("quick", 1.0), ("quickly", 0.9), ("fast", 1.0), ("easy", 1.6),
    ("easily", 1.2), ("smooth", 1.4), ("reliable", 1.8), ("friendly", 2.2), ("polite", 1.8),
    ("kind", 2.0), ("patient", 1.2), ("professional", 1.5), ("efficient", 1.7),
    ("effective", 1.6), ("recommend", 1.5), ("recommended", 1.5), ("liked", 1.8),
    ("enjoy", 2.0), ("enjoyed", 2.2), ("beautiful", 2.8), ("gorgeous", 2.9), ("fabulous", 2.9),
    ("terrific", 2.9), ("magnificent", 3.0), ("exceptional", 2.8), ("delighted", 2.9),
    ("thrilled", 2.8), ("excited", 2.2), ("exciting", 2.2), ("wow", 2.0), ("yay", 2.4),
    ("hooray", 2.4), ("fun", 2.3), ("hopefully", 1.0), ("lucky", 1.8), ("success", 2.5),
    ("successful", 2.5), ("successfully", 2.1), ("works", 0.8), ("working", 0.6),
    ("worked", 1.0), ("work", 0.5), ("helped", 1.5), ("fair", 1.3), ("generous", 2.2), ("accurate", 1.2),
    ("correct", 0.8), ("acceptable", 1.2), ("safe", 1.4), ("secure", 1.4), ("comfortable", 1.7),
    ("convenient", 1.6), ("flexible", 1.2), ("valuable", 1.8), ("worth", 1.2),
    ("worthwhile", 1.8), ("affordable", 1.4), ("bargain", 1.5), ("favorite", 2.0),
    ("favourite", 2.0), ("trust", 1.8), ("trusted", 1.7), ("honest", 2.0), ("welcome", 1.8),
    ("cheers", 1.5), ("congrats", 2.4), ("congratulations", 2.5), ("perfectly", 2.4),
    ("nicely", 1.6), ("relieved", 1.6), ("relief", 1.8), ("calm", 1.2), ("prompt", 1.4),
    ("promptly", 1.5), ("responsive", 1.5), ("smart", 1.7), ("clever", 1.7), ("genius", 2.5),
    ("legend", 2.2), ("stellar", 2.8), ("positive", 1.8), ("pleasure", 2.4), ("blessed", 2.0),
    ("cute", 2.0), ("sweet", 2.0), ("charming", 2.3), ("elegant", 2.1), ("neat", 1.4),
    ("solid", 1.3), ("glorious", 2.8), ("marvelous", 2.9), ("marvellous", 2.9),
    ("splendid", 2.8), ("phenomenal", 3.0), ("flawless", 2.7), ("spotless", 2.0),
    ("courteous", 2.0), ("considerate", 2.0), ("attentive", 1.8), ("knowledgeable", 1.8),
    ("useful", 1.8), ("handy", 1.3), ("improved", 1.5), ("improvement", 1.4),
    ("joy", 2.8), ("win", 2.0), ("winner", 2.3), ("hope", 0.6),
    ("excellently", 2.9), ("wonderfully", 2.6), ("awesomely", 2.7), ("gladly", 1.8),
    ("arrived", 0.6), ("received", 0.4), ("delivered", 0.5), ("answered", 0.5),
    ("responded", 0.5), ("refunded", 1.0), ("satisfaction", 1.9), ("happiness", 2.6),
    // Negative.
    ("bad", -2.5), ("worse", -2.2), ("worst", -3.1), ("terrible", -2.9), ("awful", -2.9),
    ("horrible", -3.0), ("horrendous", -3.1), ("atrocious", -3.1), ("dreadful", -2.8),
    ("hate", -2.7), ("hated", -2.7), ("hates", -2.5), ("hating", -2.4), ("angry", -2.3),
    ("anger", -2.4), ("mad", -2.0), ("annoyed", -1.8), ("annoying", -2.0), ("annoys", -1.8),
    ("annoyance", -1.8), ("irritated", -1.9), ("irritating", -2.0), ("frustrated", -2.0),
    ("frustrating", -2.2), ("frustration", -2.1), ("disappointed", -2.0),
    ("disappointing", -2.2), ("disappointment", -2.2), ("upset", -1.9), ("furious", -3.0),
    ("livid", -2.9), ("outraged", -2.8), ("sad", -2.1), ("unhappy", -2.2), ("miserable", -2.6),
    ("worried", -1.6), ("worry", -1.3), ("concerned", -1.2), ("confused", -1.0),
    ("confusing", -1.3), ("useless", -2.2), ("unhelpful", -2.0), ("pointless", -1.9),
    ("worthless", -2.6), ("ridiculous", -1.9), ("absurd", -1.8), ("unacceptable", -2.5),
    ("outrageous", -2.6), ("pathetic", -2.7), ("incompetent", -2.5), ("incompetence", -2.5),
    ("stupid", -2.4), ("idiot", -2.6), ("idiots", -2.6), ("dumb", -2.1), ("rude", -2.0),
    ("disrespectful", -2.2), ("scam", -2.8), ("scammed", -2.8), ("scammers", -2.9),
    ("fraud", -2.6), ("fraudulent", -2.7), ("cheated", -2.4), ("cheat", -2.2),
    ("ripped", -2.0), ("ripoff", -2.4), ("steal", -2.2), ("stole", -2.4), ("stolen", -2.2),
    ("thieves", -2.8), ("liar", -2.6), ("liars", -2.7), ("lied", -2.2), ("lies", -2.0),
    ("broken", -1.8), ("damaged", -1.8), ("defective", -2.0), ("faulty", -1.8),
    ("wrong", -1.6), ("problem", -1.5), ("problems", -1.5), ("issue", -1.0), ("issues", -1.0),
    ("error", -1.3), ("errors", -1.3), ("bug", -1.3), ("buggy", -1.8), ("glitch", -1.3),
    ("crash", -1.6), ("crashes", -1.6), ("crashed", -1.7), ("crashing", -1.7), ("poor", -2.0),
    ("poorly", -1.8), ("slow", -1.2), ("late", -1.0), ("delayed", -1.2), ("delay", -1.0),
    ("delays", -1.1), ("missing", -1.2), ("lost", -1.3), ("fail", -2.0), ("failed", -1.8),
    ("fails", -1.8), ("failing", -1.9), ("failure", -2.3), ("ignored", -1.8),
    ("ignoring", -1.8), ("waste", -1.8), ("wasted", -2.0), ("wasting", -1.9),
    ("disaster", -3.0), ("nightmare", -2.8), ("nonsense", -1.8), ("rubbish", -2.2),
    ("garbage", -2.4), ("trash", -2.2), ("junk", -2.0), ("disgusting", -3.0),
    ("disgusted", -2.8), ("lousy", -2.5), ("suck", -2.0), ("sucks", -2.5), ("sucked", -2.2),
    ("crap", -2.5), ("crappy", -2.5), ("shit", -2.6), ("shitty", -2.8), ("fuck", -3.0),
    ("fucked", -2.8), ("wtf", -2.5), ("damn", -1.5), ("goddamn", -2.0), ("fucking", -2.0),
    ("bloody", -1.2), ("complaint", -1.5), ("complain", -1.4), ("complaining", -1.5),
    ("refund", -0.3), ("waiting", -0.8), ("waited", -0.8), ("stuck", -1.3),
    ("unresolved", -1.5), ("unanswered", -1.5), ("overcharged", -2.0), ("ghosted", -2.0),
    ("mess", -1.9), ("messed", -1.8), ("screwed", -2.3), ("afraid", -1.6), ("scared", -1.8),
    ("fear", -1.8), ("nervous", -1.4), ("anxious", -1.5), ("stress", -1.6),
    ("stressed", -1.7), ("stressful", -1.8), ("tired", -1.3), ("fed", -1.0), ("unfair", -2.1),
    ("unreasonable", -1.9), ("expensive", -1.2), ("overpriced", -1.9), ("shame", -1.8),
    ("shameful", -2.4), ("embarrassing", -1.8), ("sorry", -0.3), ("unfortunately", -1.2),
    ("unfortunate", -1.5), ("sadly", -1.5), ("impossible", -1.6), ("difficult", -1.3),
    ("painful", -2.0), ("pain", -1.8), ("sick", -1.6), ("tragic", -2.6), ("weird", -0.9),
    ("strange", -0.8), ("inconvenient", -1.5), ("inconvenience", -1.5), ("hassle", -1.6),
    ("shocking", -2.0), ("shocked", -1.6), ("appalling", -2.9), ("appalled", -2.7),
    ("horrified", -2.6), ("hopeless", -2.2), ("helpless", -1.9), ("careless", -1.8),
    ("negligent", -2.0), ("unprofessional", -2.2), ("misleading", -2.0), ("misled", -2.0),
    ("deceived", -2.3), ("deceptive", -2.3), ("fake", -2.0), ("bogus", -2.0),
    ("illegal", -2.0), ("dissatisfied", -2.0), ("displeased", -2.0), ("unsatisfied", -1.9),
    ("unreliable", -2.0), ("unusable", -2.3), ("inaccurate", -1.4), ("incorrect", -1.3),
    ("denied", -1.5), ("declined", -1.0), ("rejected", -1.5), ("refused", -1.6),
    ("joke", -1.2), ("ugh", -1.8), ("argh", -1.8), ("meh", -0.8), ("sigh", -1.0),
    ("horribly", -2.6), ("terribly", -2.4), ("awfully", -2.2), ("worthlessly", -2.2),
    ("disgrace", -2.6), ("disgraceful", -2.7), ("insulting", -2.4), ("insult", -2.2),
    ("abysmal", -3.0), ("shoddy", -2.3), ("sloppy", -1.9), ("flimsy", -1.6),
    ("robbed", -2.5), ("robbery", -2.6),
    ("hostage", -2.0), ("threat", -2.0), ("harassment", -2.6), ("abuse", -2.8),
    ("hurt", -2.0), ("hurts", -2.0), ("cry", -1.8), ("crying", -2.0), ("tears", -1.6),
    ("endless", -1.0), ("forever", -0.6), ("unbearable", -2.6), ("intolerable", -2.6),
    ("inexcusable", -2.6), ("infuriating", -2.8), ("maddening", -2.4), ("sucky", -2.2),
];

/// Spanish valences.
#[rustfmt::skip]
const ES_LEXICON: &[(&str, f32)] = &[
    ("bueno", 1.9), ("buena", 1.9), ("buenos", 1.8), ("buenas", 0.6), ("bien", 1.5),
    ("excelente", 3.0), ("genial", 2.8), ("perfecto", 2.7), ("perfecta", 2.7),
    ("gracias", 1.9), ("maravilloso", 2.8), ("maravillosa", 2.8), ("increible", 2.4),
    ("estupendo", 2.7), ("fantastico", 2.7), ("encanta", 2.8), ("encantado", 2.5),
    ("encantada", 2.5), ("feliz", 2.6), ("contento", 2.2), ("contenta", 2.2),
    ("satisfecho", 1.9), ("satisfecha", 1.9), ("amable", 2.0), ("rapido", 1.1),
    ("rapida", 1.1), ("facil", 1.5), ("util", 1.8), ("agradecido", 2.0), ("agradecida", 2.0),
    ("agradezco", 2.0), ("mejor", 1.9), ("resuelto", 1.2), ("solucionado", 1.3),
    ("funciona", 0.8), ("recomiendo", 1.6), ("chevere", 2.0), ("llego", 0.5),
    ("malo", -2.5), ("mala", -2.5), ("mal", -1.8), ("pesimo", -3.0), ("pesima", -3.0),
    ("horrible", -3.0), ("terrible", -2.9), ("fatal", -2.5), ("odio", -2.7),
    ("enojado", -2.3), ("enojada", -2.3), ("enfadado", -2.3), ("enfadada", -2.3),
    ("molesto", -1.8), ("molesta", -1.8), ("furioso", -3.0), ("furiosa", -3.0),
    ("decepcionado", -2.0), ("decepcionada", -2.0), ("decepcion", -2.1), ("estafa", -2.8),
    ("estafadores", -2.9), ("fraude", -2.6), ("robo", -2.4), ("ladrones", -2.8),
    ("inutil", -2.2), ("inutiles", -2.3), ("verguenza", -2.2), ("vergonzoso", -2.4),
    ("basura", -2.5), ("mierda", -2.8), ("porqueria", -2.6), ("asco", -2.6),
    ("asqueroso", -2.8), ("triste", -2.0), ("preocupado", -1.6), ("preocupada", -1.6),
    ("roto", -1.8), ("rota", -1.8), ("danado", -1.8), ("danada", -1.8), ("defectuoso", -2.0),
    ("problema", -1.5), ("problemas", -1.5), ("error", -1.3), ("lento", -1.2), ("lenta", -1.2),
    ("retraso", -1.2), ("perdido", -1.3), ("falla", -1.5), ("fallo", -1.5), ("queja", -1.5),
    ("reembolso", -0.3), ("esperando", -0.8), ("harto", -2.2), ("harta", -2.2),
    ("cansado", -1.3), ("ridiculo", -1.9), ("absurdo", -1.8), ("inaceptable", -2.5),
    ("indignante", -2.6), ("incompetentes", -2.5), ("grosero", -2.0), ("mentira", -2.0),
    ("mentirosos", -2.6), ("engano", -2.3), ("peor", -2.4), ("lamentable", -2.4),
    ("desastre", -3.0), ("tonto", -2.0), ("estupido", -2.4), ("idiota", -2.6),
    ("joder", -2.5), ("cabreado", -2.4), ("frustrado", -2.0), ("frustrante", -2.2),
    ("tarde", -0.6), ("tardes", 0.0),
];

/// French valences.
#[rustfmt::skip]
const FR_LEXICON: &[(&str, f32)] = &[
    ("bon", 1.5), ("bonne", 1.5), ("bien", 1.5), ("excellent", 3.0), ("excellente", 3.0),
    ("genial", 2.8), ("super", 2.0), ("parfait", 2.7), ("parfaite", 2.7), ("merci", 1.9),
    ("merveilleux", 2.8), ("formidable", 2.7), ("magnifique", 2.8), ("incroyable", 2.4),
    ("fantastique", 2.7), ("adore", 2.8), ("aime", 2.0), ("content", 2.2), ("contente", 2.2),
    ("heureux", 2.6), ("heureuse", 2.6), ("satisfait", 1.9), ("satisfaite", 1.9),
    ("ravi", 2.6), ("ravie", 2.6), ("gentil", 2.0), ("gentille", 2.0), ("aimable", 2.0),
    ("rapide", 1.1), ("facile", 1.5), ("utile", 1.8), ("top", 2.0), ("impeccable", 2.5),
    ("nickel", 2.0), ("meilleur", 2.2), ("meilleure", 2.2), ("resolu", 1.2),
    ("fonctionne", 0.8), ("marche", 0.8), ("recommande", 1.6), ("bravo", 2.4),
    ("chouette", 2.0),
    ("mauvais", -2.5), ("mauvaise", -2.5), ("mal", -1.8), ("nul", -2.5), ("nulle", -2.5),
    ("nuls", -2.5), ("affreux", -2.9), ("horrible", -3.0), ("terrible", -2.9),
    ("deteste", -2.7), ("decu", -2.0), ("decue", -2.0), ("decevant", -2.2),
    ("deception", -2.1), ("arnaque", -2.8), ("escroquerie", -2.8), ("escrocs", -2.9),
    ("voleurs", -2.8), ("fraude", -2.6), ("inadmissible", -2.5), ("inacceptable", -2.5),
    ("honteux", -2.5), ("honte", -2.2), ("lamentable", -2.5), ("enerve", -2.0),
    ("enervee", -2.0), ("enervant", -2.1), ("furieux", -3.0), ("furieuse", -3.0),
    ("fache", -2.0), ("fachee", -2.0), ("colere", -2.4), ("catastrophe", -3.0),
    ("catastrophique", -3.0), ("merde", -2.8), ("pourri", -2.5), ("triste", -2.0),
    ("inquiet", -1.6), ("inquiete", -1.6), ("casse", -1.8), ("cassee", -1.8), ("abime", -1.8),
    ("endommage", -1.8), ("defectueux", -2.0), ("probleme", -1.5), ("problemes", -1.5),
    ("erreur", -1.3), ("lent", -1.2), ("lente", -1.2), ("retard", -1.2), ("perdu", -1.3),
    ("panne", -1.6), ("plainte", -1.5), ("remboursement", -0.3), ("attends", -0.6),
    ("attente", -0.6), ("marre", -2.2), ("ridicule", -1.9), ("absurde", -1.8),
    ("incompetent", -2.5), ("incompetents", -2.5), ("impoli", -2.0), ("mensonge", -2.0),
    ("menteurs", -2.6), ("pire", -2.4), ("inutile", -2.2), ("scandaleux", -2.6),
    ("scandale", -2.4), ("penible", -2.0), ("galere", -1.8), ("bordel", -2.2),
    ("putain", -2.4), ("debile", -2.3), ("idiot", -2.6), ("frustre", -2.0),
    ("frustrant", -2.2), ("deplorable", -2.5), ("sale", -1.5),
    // False friends of English words.
    ("pain", 0.0), ("rare", 0.0),
];

/// German valences.
#[rustfmt::skip]
const DE_LEXICON: &[(&str, f32)] = &[
    ("gut", 1.9), ("gute", 1.9), ("guter", 1.9), ("gutes", 1.9), ("super", 2.0),
    ("toll", 2.6), ("prima", 2.2), ("perfekt", 2.7), ("wunderbar", 2.7),
    ("ausgezeichnet", 3.0), ("hervorragend", 3.0), ("klasse", 2.4), ("spitze", 2.6),
    ("genial", 2.8), ("fantastisch", 2.7), ("danke", 1.9), ("dankeschon", 2.0),
    ("liebe", 2.0), ("lieb", 1.8), ("freundlich", 2.0), ("hilfreich", 1.9),
    ("schnell", 1.1), ("zufrieden", 1.9), ("glucklich", 2.6), ("froh", 2.0),
    ("begeistert", 2.7), ("gelost", 1.2), ("funktioniert", 0.8), ("empfehlen", 1.5),
    ("beste", 2.5), ("besten", 2.5), ("besser", 1.9), ("nett", 1.8), ("angenehm", 1.9),
    ("zuverlassig", 1.8), ("dankbar", 2.2), ("klappt", 0.8), ("geil", 2.2), ("top", 2.0),
    ("schlecht", -2.5), ("schlechte", -2.5), ("schlechter", -2.4), ("schlechteste", -3.0),
    ("schrecklich", -2.9), ("furchtbar", -2.9), ("katastrophal", -3.0),
    ("katastrophe", -3.0), ("enttauscht", -2.0), ("enttauschend", -2.2),
    ("enttauschung", -2.1), ("wutend", -2.8), ("sauer", -2.0), ("verargert", -2.0),
    ("argerlich", -2.0), ("arger", -1.9), ("nervig", -2.0), ("genervt", -2.0),
    ("nutzlos", -2.2), ("betrug", -2.8), ("betruger", -2.9), ("abzocke", -2.8),
    ("unverschamt", -2.5), ("frech", -1.8), ("scheisse", -2.8), ("scheiss", -2.6),
    ("mist", -2.0), ("mies", -2.3), ("miserabel", -2.8), ("traurig", -2.0),
    ("besorgt", -1.6), ("kaputt", -1.9), ("beschadigt", -1.8), ("defekt", -2.0),
    ("problem", -1.5), ("probleme", -1.5), ("fehler", -1.3), ("langsam", -1.2),
    ("verspatet", -1.2), ("verspatung", -1.2), ("verloren", -1.3), ("beschwerde", -1.5),
    ("erstattung", -0.3), ("ruckerstattung", -0.3), ("warte", -0.6), ("warten", -0.6),
    ("lacherlich", -1.9), ("inakzeptabel", -2.5), ("unmoglich", -1.8),
    ("inkompetent", -2.5), ("unfreundlich", -2.0), ("lugen", -2.0), ("lugner", -2.6),
    ("schlimm", -2.3), ("schlimmer", -2.3), ("schlimmste", -3.0), ("zumutung", -2.5),
    ("frechheit", -2.5), ("sauerei", -2.4), ("dumm", -2.2), ("idioten", -2.6),
    ("verdammt", -1.8), ("frustriert", -2.0), ("frustrierend", -2.2),
    ("unzufrieden", -2.0), ("hasse", -2.7), ("schade", -1.3),
    // False friends of English words.
    ("hell", 0.0), ("bad", 0.0), ("arm", -1.0),
];

/// Portuguese valences.
#[rustfmt::skip]
const PT_LEXICON: &[(&str, f32)] = &[
    ("bom", 1.8), ("boa", 1.8), ("bons", 1.8), ("otimo", 2.7), ("otima", 2.7),
    ("excelente", 3.0), ("perfeito", 2.7), ("perfeita", 2.7), ("obrigado", 1.9),
    ("obrigada", 1.9), ("valeu", 1.8), ("maravilhoso", 2.8), ("maravilhosa", 2.8),
    ("incrivel", 2.4), ("fantastico", 2.7), ("legal", 1.8), ("adoro", 2.8), ("amei", 2.8),
    ("gostei", 2.0), ("feliz", 2.6), ("contente", 2.2), ("satisfeito", 1.9),
    ("satisfeita", 1.9), ("rapido", 1.1), ("rapida", 1.1), ("facil", 1.5), ("util", 1.8),
    ("melhor", 1.9), ("resolvido", 1.2), ("funciona", 0.8), ("funcionou", 1.0),
    ("recomendo", 1.6), ("gentil", 2.0), ("atencioso", 2.0), ("beleza", 1.2), ("bem", 1.2),
    ("ruim", -2.5), ("pessimo", -3.0), ("pessima", -3.0), ("horrivel", -3.0),
    ("terrivel", -2.9), ("odeio", -2.7), ("absurdo", -2.0), ("lixo", -2.5),
    ("vergonha", -2.2), ("vergonhoso", -2.4), ("irritado", -2.0), ("irritada", -2.0),
    ("merda", -2.8), ("porcaria", -2.6), ("raiva", -2.4), ("chateado", -2.0),
    ("chateada", -2.0), ("decepcionado", -2.0), ("decepcionada", -2.0), ("decepcao", -2.1),
    ("golpe", -2.6), ("fraude", -2.6), ("roubo", -2.4), ("ladroes", -2.8), ("inutil", -2.2),
    ("triste", -2.0), ("preocupado", -1.6), ("quebrado", -1.8), ("quebrada", -1.8),
    ("danificado", -1.8), ("defeito", -1.9), ("defeituoso", -2.0), ("problema", -1.5),
    ("problemas", -1.5), ("erro", -1.3), ("lento", -1.2), ("lenta", -1.2), ("atraso", -1.2),
    ("atrasado", -1.2), ("perdido", -1.3), ("falha", -1.5), ("reclamacao", -1.5),
    ("reembolso", -0.3), ("esperando", -0.8), ("aguardando", -0.6), ("cansado", -1.3),
    ("ridiculo", -1.9), ("inaceitavel", -2.5), ("incompetentes", -2.5), ("grosso", -1.8),
    ("mentira", -2.0), ("pior", -2.4), ("desastre", -3.0), ("lamentavel", -2.4),
    ("nojo", -2.6), ("furioso", -3.0), ("revoltado", -2.4), ("enganado", -2.3),
    ("sacanagem", -2.4), ("droga", -2.0), ("frustrado", -2.0), ("insatisfeito", -2.0),
    ("mal", -1.8), ("pena", -1.2),
];

/// Italian valences.
#[rustfmt::skip]
const IT_LEXICON: &[(&str, f32)] = &[
    ("buono", 1.8), ("buona", 1.8), ("bene", 1.5), ("benissimo", 2.6), ("ottimo", 2.7),
    ("ottima", 2.7), ("eccellente", 3.0), ("perfetto", 2.7), ("perfetta", 2.7),
    ("grazie", 1.9), ("fantastico", 2.7), ("meraviglioso", 2.8), ("incredibile", 2.4),
    ("bellissimo", 2.8), ("bello", 2.0), ("bella", 2.0), ("contento", 2.2),
    ("contenta", 2.2), ("felice", 2.6), ("soddisfatto", 1.9), ("soddisfatta", 1.9),
    ("gentile", 2.0), ("gentilissimi", 2.4), ("veloce", 1.1), ("rapido", 1.1),
    ("facile", 1.5), ("utile", 1.8), ("migliore", 2.0), ("risolto", 1.2), ("funziona", 0.8),
    ("adoro", 2.8), ("amo", 2.8), ("bravo", 2.2), ("bravi", 2.2), ("super", 2.0),
    ("male", -1.8), ("cattivo", -2.3), ("pessimo", -3.0), ("pessima", -3.0),
    ("orribile", -3.0), ("terribile", -2.9), ("schifo", -2.8), ("schifoso", -2.8),
    ("vergogna", -2.2), ("vergognoso", -2.5), ("deluso", -2.0), ("delusa", -2.0),
    ("delusione", -2.1), ("arrabbiato", -2.3), ("arrabbiata", -2.3), ("furioso", -3.0),
    ("incazzato", -2.8), ("truffa", -2.8), ("truffatori", -2.9), ("ladri", -2.8),
    ("frode", -2.6), ("inutile", -2.2), ("inaccettabile", -2.5), ("assurdo", -2.0),
    ("ridicolo", -1.9), ("triste", -2.0), ("preoccupato", -1.6), ("rotto", -1.8),
    ("rotta", -1.8), ("danneggiato", -1.8), ("difettoso", -2.0), ("problema", -1.5),
    ("problemi", -1.5), ("errore", -1.3), ("lento", -1.2), ("lenta", -1.2),
    ("ritardo", -1.2), ("perso", -1.3), ("guasto", -1.6), ("reclamo", -1.5),
    ("rimborso", -0.3), ("attesa", -0.6), ("stufo", -2.2), ("stufa", -2.2),
    ("stanco", -1.3), ("incompetenti", -2.5), ("maleducato", -2.0), ("bugia", -2.0),
    ("bugiardi", -2.6), ("peggio", -2.4), ("peggiore", -2.6), ("disastro", -3.0),
    ("merda", -2.8), ("cazzo", -2.4), ("fastidio", -1.8), ("fastidioso", -2.0),
    ("frustrato", -2.0), ("insoddisfatto", -2.0), ("scandaloso", -2.6), ("penoso", -2.4),
    ("odio", -2.7),
    // False friends of English words: "alla fine" is "in the end".
    ("fine", 0.0), ("come", 0.0),
];

/// Words of one language that would mislead in another and so stay out of the lexicon that
/// [`score`] uses when the language is unknown ("toll free", "legal action", "on sale").
const NOT_IN_MERGED: &[&str] = &[
    "toll", "mist", "male", "top", "legal", "grosso", "sale", "bravo", "bravi", "arm", "pena",
    "bem", "tarde",
];

/// Negations, in every language: a word shortly after one of them counts the other way.
#[rustfmt::skip]
const NEGATIONS: &[&str] = &[
    // English, with contractions as `text::tokens` spells them.
    "not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "nowhere", "without",
    "cannot", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "cant", "couldnt",
    "wont", "wouldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint", "mustnt", "neednt",
    "nope", "nah", "hardly", "barely", "scarcely",
    // Spanish.
    "nunca", "jamas", "ni", "nada", "nadie", "ningun", "ninguna", "ninguno", "tampoco", "sin",
    // French ("n" is the elided "ne").
    "ne", "n", "pas", "jamais", "rien", "aucun", "aucune", "sans",
    // German.
    "nicht", "kein", "keine", "keinen", "keinem", "keiner", "nie", "niemals", "nichts",
    "niemand", "ohne", "weder",
    // Portuguese.
    "nao", "nem", "ninguem", "nenhum", "nenhuma", "sem",
    // Italian.
    "non", "mai", "niente", "nulla", "nessuno", "nessuna", "senza", "neanche", "nemmeno",
    "neppure",
];

/// Words that strengthen the sentiment word after them.
#[rustfmt::skip]
const BOOSTERS: &[&str] = &[
    "very", "really", "so", "extremely", "totally", "absolutely", "completely", "incredibly",
    "utterly", "highly", "too", "truly", "fucking", "fkn", "bloody", "damn", "goddamn",
    "freaking", "fricking", "effing", "super", "seriously", "ridiculously", "insanely",
    "terribly", "awfully", "deeply", "entirely", "especially", "exceptionally", "hugely",
    "immensely", "particularly", "remarkably", "thoroughly", "tremendously", "unbelievably",
    "most", "such", "quite", "hella", "majorly", "still",
    "muy", "mucho", "muchisimo", "realmente", "totalmente", "completamente", "extremadamente",
    "bastante", "demasiado", "tan", "increiblemente", "sumamente",
    "tres", "vraiment", "trop", "tellement", "vachement", "hyper", "franchement", "carrement",
    "extremement", "completement", "particulierement", "si",
    "sehr", "wirklich", "total", "absolut", "extrem", "echt", "voll", "ziemlich", "mega",
    "unglaublich", "besonders", "vollig", "komplett", "richtig", "ausserst", "verdammt",
    "muito", "muita", "extremamente", "tao",
    "molto", "davvero", "veramente", "troppo", "proprio", "tanto", "cosi", "assolutamente",
    "decisamente", "particolarmente", "incredibilmente", "parecchio",
];

/// Words that are boosters before a sentiment word but sentiment words of their own
/// elsewhere: French "bien content" (very happy) against "c'est bien" (it's good).
const BOOSTING_SENTIMENT_WORDS: &[&str] = &["bien", "bem"];

/// Words that soften the sentiment word after them.
#[rustfmt::skip]
const DAMPENERS: &[&str] = &[
    "slightly", "somewhat", "kinda", "kindof", "sorta", "little", "bit", "fairly", "rather",
    "almost", "marginally", "partly", "mildly",
    "poco", "algo", "apenas", "ligeramente", "peu", "plutot", "legerement", "moyennement",
    "etwas", "bisschen", "wenig", "kaum", "einigermassen", "pouco", "meio", "ligeiramente",
    "leggermente", "quasi", "po",
];

/// Words after which the customer's real opinion follows. Per language, since some are
/// other words elsewhere (Portuguese "mas" is Spanish "más", Italian "ma" is French "ma").
fn contrasts(language: Option<Language>) -> &'static [&'static str] {
    match language {
        None => &[
            "but",
            "however",
            "pero",
            "aber",
            "jedoch",
            "allerdings",
            "cependant",
            "pourtant",
            "toutefois",
            "porem",
            "contudo",
            "tuttavia",
        ],
        Some(Language::En) => &["but", "however", "though", "although"],
        Some(Language::Es) => &["pero", "embargo"],
        Some(Language::Fr) => &["mais", "cependant", "pourtant", "toutefois"],
        Some(Language::De) => &["aber", "jedoch", "allerdings", "trotzdem"],
        Some(Language::Pt) => &["mas", "porem", "contudo", "entretanto"],
        Some(Language::It) => &["ma", "pero", "tuttavia", "eppure"],
    }
}

/// Emoji carry sentiment in chat as much as words do.
#[rustfmt::skip]
const EMOJI: &[(char, f32)] = &[
    ('\u{1F600}', 2.0), ('\u{1F601}', 2.2), ('\u{1F602}', 1.6), ('\u{1F603}', 2.0),
    ('\u{1F604}', 2.2), ('\u{1F606}', 1.8), ('\u{1F609}', 1.4), ('\u{1F60A}', 2.0),
    ('\u{1F60D}', 2.8), ('\u{1F618}', 2.4), ('\u{1F642}', 1.5), ('\u{1F643}', 0.4),
    ('\u{1F917}', 2.0), ('\u{1F929}', 2.8), ('\u{1F970}', 2.8), ('\u{1F973}', 2.6),
    ('\u{1F44D}', 1.8), ('\u{1F44F}', 2.0), ('\u{1F64C}', 2.2), ('\u{1F64F}', 1.5),
    ('\u{2764}', 2.5), ('\u{1F496}', 2.5), ('\u{1F499}', 2.2), ('\u{1F49A}', 2.2),
    ('\u{1F389}', 2.4), ('\u{2728}', 1.2), ('\u{2705}', 1.0), ('\u{1F4AF}', 2.0),
    ('\u{263A}', 1.8), ('\u{1F60E}', 1.6),
    ('\u{1F620}', -2.5), ('\u{1F621}', -3.0), ('\u{1F624}', -2.2), ('\u{1F92C}', -3.2),
    ('\u{1F44E}', -2.0), ('\u{1F61E}', -2.0), ('\u{1F61F}', -1.8), ('\u{1F622}', -2.0),
    ('\u{1F625}', -1.8), ('\u{1F62D}', -2.4), ('\u{1F612}', -1.6), ('\u{1F641}', -1.5),
    ('\u{2639}', -1.8), ('\u{1F614}', -1.6), ('\u{1F615}', -1.0), ('\u{1F616}', -2.0),
    ('\u{1F623}', -2.0), ('\u{1F629}', -2.2), ('\u{1F62B}', -2.2), ('\u{1F62C}', -0.8),
    ('\u{1F630}', -1.8), ('\u{1F631}', -2.0), ('\u{1F644}', -1.6), ('\u{1F611}', -0.8),
    ('\u{1F610}', -0.3), ('\u{1F494}', -2.4), ('\u{1F4A9}', -2.4), ('\u{1F926}', -1.8),
    ('\u{1F92E}', -2.6), ('\u{1F922}', -2.2), ('\u{1F595}', -3.0), ('\u{274C}', -0.8),
];

/// Text emoticons, read from the raw message before it is split into words.
#[rustfmt::skip]
const EMOTICONS: &[(&str, f32)] = &[
    (":-)", 1.6), (":)", 1.6), ("(:", 1.4), (":-D", 2.2), (":D", 2.2), (";-)", 1.3),
    (";)", 1.3), (":P", 1.0), (":p", 1.0), ("xD", 1.8), ("XD", 1.8), ("<3", 2.4), ("^^", 1.4),
    (":-(", -1.9), (":(", -1.9), (":'(", -2.3), (":-/", -1.1), (":/", -1.1), (":-|", -0.5),
    (":|", -0.5), (":@", -2.4), (">:(", -2.6), ("</3", -2.2),
];

/// The first bytes of [`EMOTICONS`]: elsewhere no emoticon can begin.
const EMOTICON_STARTS: &[u8] = b":(;xX<^>";

/// How far back (in words) negations and boosters still apply.
const WINDOW: usize = 3;
/// Negated sentiment is flipped and weakened: "not good" is bad, but less than "bad".
const NEGATION_FACTOR: f32 = -0.74;
/// Added to a word's magnitude by a booster right before it (less from further away).
const BOOSTER_STEP: f32 = 0.293;
/// How much of [`BOOSTER_STEP`] a booster two and three words away still adds.
const BOOSTER_DECAY: [f32; 3] = [1.0, 0.95, 0.9];
/// Added to a word's magnitude when the word is shouted in a message that is not.
const CAPS_BOOST: f32 = 0.733;
/// Weight of sentiment before and after the last contrast word.
const BEFORE_CONTRAST: f32 = 0.5;
const AFTER_CONTRAST: f32 = 1.5;
/// Added to the message's magnitude per "!", up to [`MAX_EXCLAMATIONS`].
const EXCLAMATION_BOOST: f32 = 0.292;
const MAX_EXCLAMATIONS: usize = 4;
/// Added per "?" when there are several ("why??"), up to [`MAX_QUESTION_BOOST`].
const QUESTION_BOOST: f32 = 0.18;
const MAX_QUESTION_BOOST: f32 = 0.96;
/// Controls how fast the summed valence approaches +-1 (the usual VADER constant).
const NORMALIZATION_ALPHA: f32 = 15.0;

/// One language's valences.
type Lexicon = FastMap<&'static str, f32>;

fn table(language: Language) -> &'static [(&'static str, f32)] {
    match language {
        Language::En => EN_LEXICON,
        Language::Es => ES_LEXICON,
        Language::Fr => FR_LEXICON,
        Language::De => DE_LEXICON,
        Language::Pt => PT_LEXICON,
        Language::It => IT_LEXICON,
    }
}

/// Each language's lexicon on its own, in [`Language::ALL`] order.
static LEXICONS: LazyLock<Vec<Lexicon>> = LazyLock::new(|| {
    Language::ALL
        .iter()
        .map(|l| table(*l).iter().copied().collect())
        .collect()
});

/// Every lexicon at once: English first, then the others in [`Language::ALL`] order, an
/// earlier language winning a word both list, and false friends left out.
static MERGED: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut merged = Lexicon::default();
    for (i, language) in Language::ALL.iter().enumerate() {
        for &(word, valence) in table(*language) {
            if i > 0 && NOT_IN_MERGED.contains(&word) {
                continue;
            }
            merged.entry(word).or_insert(valence);
        }
    }
    merged
});

/// [`NEGATIONS`], [`BOOSTERS`] and [`DAMPENERS`] for lookup: every word of a message is
/// checked against them.
static NEGATION_SET: LazyLock<FastSet<&'static str>> =
    LazyLock::new(|| NEGATIONS.iter().copied().collect());
static BOOSTER_SET: LazyLock<FastSet<&'static str>> =
    LazyLock::new(|| BOOSTERS.iter().copied().collect());
static DAMPENER_SET: LazyLock<FastSet<&'static str>> =
    LazyLock::new(|| DAMPENERS.iter().copied().collect());

fn lexicon_of(language: Language) -> &'static Lexicon {
    let index = Language::ALL
        .iter()
        .position(|l| *l == language)
        .unwrap_or(0);
    &LEXICONS[index]
}

/// Where valences come from for one call.
enum Source {
    /// All languages.
    Merged,
    /// One language first, then English for the words it lacks (English words are common
    /// in every language's chats, and a misdetected English message still scores).
    Language(Language),
}

impl Source {
    fn valence(&self, word: &str) -> Option<f32> {
        let found = match self {
            Source::Merged => MERGED.get(word).copied(),
            Source::Language(language) => lexicon_of(*language)
                .get(word)
                .or_else(|| lexicon_of(Language::En).get(word))
                .copied(),
        };
        // A zero entry marks a known neutral word (a false friend) and stops the lookup.
        found.filter(|v| *v != 0.0)
    }
}

/// One word of the message, with what the raw text said about it.
struct Word<'a> {
    /// Borrowed from the message when it is already a normalised word (most are).
    text: Cow<'a, str>,
    /// Typed in capitals ("BAD").
    shouted: bool,
    /// Written as a contraction with "n't" ("doesn't"): a negation whatever the word.
    negative_contraction: bool,
    /// Index of the clause (split at . , ; ! ? and line breaks): negation stops there.
    clause: usize,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '`')
}

/// Splits the raw message into words, remembering capitals and clauses, which
/// `text::tokens` loses.
fn words(message: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    for (clause, part) in message.split(['.', ',', ';', '!', '?', '\n']).enumerate() {
        // Apostrophes stay inside the chunk so `text::tokens` can apply its contraction rules.
        for chunk in part.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c))) {
            let letters = chunk.chars().filter(|c| c.is_alphabetic());
            let (mut count, mut upper) = (0, 0);
            for c in letters {
                count += 1;
                upper += usize::from(c.is_uppercase());
            }
            let shouted = count >= 2 && upper == count;
            // A plain ASCII word (most of them) is its own only token, lower-cased: no
            // apostrophe to read, nothing to fold.
            if !chunk.is_empty() && chunk.bytes().all(|b| b.is_ascii_alphanumeric()) {
                let text = if chunk.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(chunk.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(chunk)
                };
                out.push(Word {
                    text: unelongate(text),
                    shouted,
                    negative_contraction: false,
                    clause,
                });
                continue;
            }
            let lower = chunk.to_lowercase();
            let negative_contraction = ["n't", "n\u{2019}t", "n`t", "n\u{2018}t"]
                .iter()
                .any(|suffix| lower.ends_with(suffix));
            for token in text::tokens(chunk) {
                out.push(Word {
                    text: unelongate(Cow::Owned(token)),
                    shouted,
                    negative_contraction,
                    clause,
                });
            }
        }
    }
    out
}

/// "sooo baaad" is "so bad": collapses runs of three or more letters, first to two ("good",
/// "sorry" keep their double letter), then to one.
fn elongation_variants(word: &str) -> Option<(String, String)> {
    // An ASCII word (most of them) is checked on its bytes, without collecting chars.
    if word.is_ascii() && !has_run_of_three(word.as_bytes()) {
        return None;
    }
    let chars: Vec<char> = word.chars().collect();
    if !has_run_of_three(&chars) {
        return None;
    }
    let collapse = |max: usize| {
        let mut out = String::with_capacity(word.len());
        let mut run = 0;
        let mut prev = None;
        for &c in &chars {
            run = if prev == Some(c) { run + 1 } else { 1 };
            prev = Some(c);
            if run <= max {
                out.push(c);
            }
        }
        out
    };
    Some((collapse(2), collapse(1)))
}

/// Three equal items in a row.
fn has_run_of_three<T: PartialEq>(items: &[T]) -> bool {
    items.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

/// Whether any list of this module knows `word`.
fn is_known(word: &str) -> bool {
    MERGED.contains_key(word)
        || LEXICONS.iter().any(|l| l.contains_key(word))
        || BOOSTER_SET.contains(word)
        || DAMPENER_SET.contains(word)
        || NEGATION_SET.contains(word)
}

/// The word an elongated spelling stands for ("sooo" is "so", "goood" is "good"), or the
/// word itself.
fn unelongate(word: Cow<'_, str>) -> Cow<'_, str> {
    match elongation_variants(&word) {
        Some((two, _)) if is_known(&two) => Cow::Owned(two),
        Some((_, one)) if is_known(&one) => Cow::Owned(one),
        _ => word,
    }
}

fn is_negation(word: &Word) -> bool {
    word.negative_contraction || NEGATION_SET.contains(&*word.text)
}

/// How positive (up to 1) or negative (down to -1) a customer's message reads, using every
/// language's lexicon; for when the language is not known.
pub fn score(text: &str) -> f32 {
    score_with(text, &Source::Merged, None)
}

/// Like [`score`], preferring `language`'s lexicon when the language is known (detected for
/// the message or set for the conversation). `None` is the same as [`score`].
pub fn score_in(text: &str, language: Option<Language>) -> f32 {
    match language {
        Some(l) => score_with(text, &Source::Language(l), Some(l)),
        None => score(text),
    }
}

fn score_with(text: &str, source: &Source, language: Option<Language>) -> f32 {
    let words = words(text);
    let valences: Vec<Option<f32>> = words.iter().map(|w| source.valence(&w.text)).collect();

    // Capitals emphasise only against a background of normal case.
    let with_letters = words
        .iter()
        .filter(|w| w.text.chars().filter(|c| c.is_alphabetic()).count() >= 2);
    let (mut shouted, mut calm) = (0, 0);
    for w in with_letters {
        if w.shouted {
            shouted += 1;
        } else {
            calm += 1;
        }
    }
    let caps_matter = shouted > 0 && calm > 0;

    let contrast_words = contrasts(language);
    let contrast_at = words
        .iter()
        .rposition(|w| contrast_words.contains(&&*w.text));

    let mut total = 0.0_f32;
    for (i, word) in words.iter().enumerate() {
        let Some(base) = valences[i] else { continue };
        let next_is_sentiment = valences.get(i + 1).is_some_and(Option::is_some);
        let this = &*word.text;
        // A booster that is also a sentiment word ("damn", "super", French "bien") only
        // boosts when a sentiment word follows it.
        if next_is_sentiment
            && (BOOSTER_SET.contains(this) || BOOSTING_SENTIMENT_WORDS.contains(&this))
        {
            continue;
        }
        // "kind of" is a dampener, not kindness.
        if this == "kind" && words.get(i + 1).is_some_and(|w| w.text == "of") {
            continue;
        }
        let mut magnitude = base.abs();
        if caps_matter && word.shouted {
            magnitude += CAPS_BOOST;
        }
        let mut negated = false;
        for (distance, decay) in BOOSTER_DECAY.iter().enumerate().take(WINDOW) {
            let Some(prev) = i.checked_sub(distance + 1).map(|p| &words[p]) else {
                break;
            };
            if prev.clause != word.clause {
                break;
            }
            let p = &*prev.text;
            let before = i.checked_sub(distance + 2).map(|q| &*words[q].text);
            if is_negation(prev) {
                negated = true;
            } else if BOOSTER_SET.contains(p) || BOOSTING_SENTIMENT_WORDS.contains(&p) {
                let mut step = BOOSTER_STEP * decay;
                if caps_matter && prev.shouted {
                    step += BOOSTER_STEP * decay;
                }
                magnitude += step;
            } else if DAMPENER_SET.contains(p)
                || (p == "of" && matches!(before, Some("kind" | "sort")))
            {
                magnitude = (magnitude - BOOSTER_STEP * decay).max(0.0);
            }
        }
        let mut valence = base.signum() * magnitude;
        if negated {
            valence *= NEGATION_FACTOR;
        }
        match contrast_at {
            Some(c) if i < c => valence *= BEFORE_CONTRAST,
            Some(c) if i > c => valence *= AFTER_CONTRAST,
            _ => {}
        }
        total += valence;
    }

    // Every emoji is outside ASCII: most messages have no character to look up.
    for c in text.chars().filter(|c| !c.is_ascii()) {
        if let Some(&(_, v)) = EMOJI.iter().find(|(e, _)| *e == c) {
            total += v;
        }
    }
    total += emoticons(text);

    if total != 0.0 {
        let exclamations = text.chars().filter(|&c| c == '!').count();
        let mut emphasis = EXCLAMATION_BOOST * exclamations.min(MAX_EXCLAMATIONS) as f32;
        let questions = text.chars().filter(|&c| c == '?').count();
        if questions > 1 {
            emphasis += (QUESTION_BOOST * questions as f32).min(MAX_QUESTION_BOOST);
        }
        total += total.signum() * emphasis;
    }

    let squashed = total / (total * total + NORMALIZATION_ALPHA).sqrt();
    squashed.clamp(-1.0, 1.0)
}

/// Sum of the text emoticons in `text`. An emoticon counts when it stands apart from the
/// letters around it ("thanks :)", "thanks:)"), not inside a word ("xDelivery"), a URL or a
/// time such as "10:30".
fn emoticons(text: &str) -> f32 {
    let mut sum = 0.0;
    for piece in text.split_whitespace() {
        if piece.contains("://") {
            continue;
        }
        let mut at = 0;
        while at < piece.len() {
            let rest = &piece[at..];
            if !rest
                .as_bytes()
                .first()
                .is_some_and(|b| EMOTICON_STARTS.contains(b))
            {
                at += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            }
            let found = EMOTICONS
                .iter()
                .filter(|(e, _)| rest.starts_with(e))
                .max_by_key(|(e, _)| e.len());
            if let Some((e, v)) = found {
                let glued = |edge: Option<char>, inner: Option<char>| {
                    inner.is_some_and(char::is_alphanumeric)
                        && edge.is_some_and(char::is_alphanumeric)
                };
                let before = piece[..at].chars().next_back();
                let after = rest[e.len()..].chars().next();
                if !glued(before, e.chars().next()) && !glued(after, e.chars().next_back()) {
                    sum += v;
                    at += e.len();
                    continue;
                }
            }
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    sum
}

/// How sentiment has moved over a conversation, so escalation can react to a customer who is
/// getting angrier, not just to one bad message.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SentimentState {
    /// Score of the latest message.
    pub current: f32,
    /// Worst score seen so far in the conversation.
    pub lowest: f32,
    /// Recent direction of change: negative when messages are getting angrier. An
    /// exponential moving average of message-to-message differences, so it needs no history.
    pub trend: f32,
    /// Number of messages scored.
    pub samples: u32,
}

/// Weight of the newest difference in [`SentimentState::trend`]; about the last three turns
/// matter.
const TREND_SMOOTHING: f32 = 0.5;

impl SentimentState {
    /// Folds the score of a new customer message into the state.
    pub fn update(&mut self, score: f32) {
        let score = if score.is_finite() {
            score.clamp(-1.0, 1.0)
        } else {
            // A broken scorer must not poison the stored state.
            0.0
        };
        if self.samples == 0 {
            self.current = score;
            self.lowest = score;
            self.trend = 0.0;
        } else {
            let delta = score - self.current;
            self.trend = TREND_SMOOTHING * delta + (1.0 - TREND_SMOOTHING) * self.trend;
            self.current = score;
            self.lowest = self.lowest.min(score);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// About how far sentiment fell over the last two messages (0 when it rose): twice the
    /// falling trend, which is exact for a single drop and tracks a steady slide.
    pub fn recent_fall(&self) -> f32 {
        (-self.trend / TREND_SMOOTHING).max(0.0)
    }

    /// Whether the customer's mood fell by at least `drop` over the last messages and is now
    /// negative, for the negative_sentiment trigger: a fall from delighted to neutral is no
    /// reason to hand over, a fall from neutral to angry is.
    pub fn fell_steeply(&self, drop: f32) -> bool {
        self.samples >= 2 && self.current < 0.0 && self.recent_fall() >= drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_read_as_their_tokens() {
        // The fast path for plain ASCII words gives what `text::tokens` would.
        for message in [
            "Where is my ORDER?? It's sooo late, I don't like this",
            "Das ist TOLL, aber zu spät! l'agent n'est pas là",
            "goood service 123 abc42 BAAAD",
        ] {
            let fast: Vec<String> = words(message)
                .into_iter()
                .map(|w| w.text.into_owned())
                .collect();
            let mut slow = Vec::new();
            for part in message.split(['.', ',', ';', '!', '?', '\n']) {
                for chunk in part.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c))) {
                    slow.extend(
                        text::tokens(chunk)
                            .into_iter()
                            .map(|t| unelongate(Cow::Owned(t)).into_owned()),
                    );
                }
            }
            assert_eq!(fast, slow, "{message}");
        }
        assert_eq!(
            elongation_variants("baaad"),
            Some(("baad".into(), "bad".into()))
        );
        assert_eq!(elongation_variants("bad"), None);
        assert_eq!(elongation_variants("ééé"), Some(("éé".into(), "é".into())));
    }

    #[test]
    fn neutral_text_is_zero() {
        assert_eq!(score("Where is my order 12345?"), 0.0);
        assert_eq!(score(""), 0.0);
        assert_eq!(score("I would like to change my delivery address"), 0.0);
        assert_eq!(score("at 10:30 see https://example.com/a:b"), 0.0);
    }

    #[test]
    fn positive_and_negative_words() {
        assert!(score("This is great, thanks") > 0.5);
        assert!(score("This is terrible") < -0.5);
        assert!(score("the worst service, I hate it") < -0.7);
        assert!(score("the agent was friendly and very helpful") > 0.5);
        assert!(score("the package arrived damaged and support was useless") < -0.5);
    }

    #[test]
    fn stays_in_range() {
        let s = score("TERRIBLE AWFUL HORRIBLE WORST SCAM FRAUD!!!!!!!! 😡😡😡");
        assert!((-1.0..=1.0).contains(&s));
        assert!(s < -0.9);
        let s = score("great great great amazing perfect love it!!!!");
        assert!((-1.0..=1.0).contains(&s));
        assert!(s > 0.9);
    }

    #[test]
    fn negation_flips_sentiment() {
        assert!(score("good") > 0.0);
        assert!(score("not good") < 0.0);
        assert!(score("this is not very good") < 0.0);
        assert!(score("I don't like waiting and it's not helpful") < 0.0);
        assert!(score("not bad") > 0.0);
        assert!(score("never helpful") < 0.0);
        assert!(score("your app doesn\u{2019}t work") < 0.0);
        assert!(score("the parcel never arrived") < 0.0);
        assert!(score("the parcel arrived") > 0.0);
        // Negation is weaker than the opposite word.
        assert!(score("not good").abs() < score("bad").abs());
        // "no problem" is fine.
        assert!(score("no problem at all") > 0.0);
    }

    #[test]
    fn negation_stays_within_its_clause_and_window() {
        // "not" is too far from "great" to flip it.
        assert!(score("I could not find the button at first, great site") > 0.0);
        // A comma ends the negation's reach.
        assert!(score("No, it is great") > 0.0);
    }

    #[test]
    fn boosters_and_dampeners() {
        assert!(score("very bad") < score("bad"));
        assert!(score("extremely good") > score("good"));
        assert!(score("slightly bad") > score("bad"));
        assert!(score("kind of bad") > score("bad"));
        // A booster further away helps less.
        let near = score("it is so bad");
        let far = score("it is so very much bad");
        assert!(near < score("it is bad") && far < score("it is bad"));
    }

    #[test]
    fn caps_count_only_against_normal_case() {
        assert!(score("this is BAD") < score("this is bad"));
        // A message typed entirely in capitals is not shouting any word in particular.
        assert_eq!(score("THIS IS BAD"), score("this is bad"));
    }

    #[test]
    fn punctuation_amplifies() {
        assert!(score("this is bad!!!") < score("this is bad"));
        assert!(score("thanks!!!") > score("thanks"));
        // Four marks are the most that count.
        assert_eq!(score("bad!!!!"), score("bad!!!!!!!!"));
        assert!(score("why is it still broken??") < score("why is it still broken?"));
        // Punctuation alone carries no direction.
        assert_eq!(score("hello!!!"), 0.0);
        assert_eq!(score("where??"), 0.0);
    }

    #[test]
    fn contrast_weights_the_second_clause() {
        assert!(score("the site is nice but the support is useless") < 0.0);
        assert!(score("delivery was slow but the support was excellent") > 0.0);
        assert!(
            score_in(
                "la web es bonita pero el servicio es pésimo",
                Some(Language::Es)
            ) < 0.0
        );
    }

    #[test]
    fn elongated_words() {
        assert!(score("sooo baaad") < score("bad"));
        assert!(score("goooood") > 0.0);
    }

    #[test]
    fn emoticons_and_emoji() {
        assert!(score("😡") < -0.3);
        assert!(score("👍") > 0.3);
        assert!(score("thanks :)") > score("thanks"));
        assert!(score("still nothing :(") < 0.0);
        assert!(score(":-/") < 0.0);
        assert!(score("<3") > 0.0);
        assert!(score("ok xD") > score("ok"));
        // Letters around an emoticon's letter make it a word.
        assert_eq!(score("order ID:12345, re:Delivery"), 0.0);
        // Every emoticon begins where the scan looks, and every emoji is outside ASCII.
        for (e, _) in EMOTICONS {
            assert!(EMOTICON_STARTS.contains(&e.as_bytes()[0]), "{e}");
            assert!(emoticons(&format!("ok {e}")) != 0.0, "{e}");
        }
        assert!(EMOJI.iter().all(|(c, _)| !c.is_ascii()));
    }

    #[test]
    fn support_domain_words() {
        for text in [
            "I want a refund",
            "still waiting for my parcel",
            "the charger is broken",
            "this shop is a scam",
            "you overcharged me",
            "the app is useless",
        ] {
            assert!(score(text) < 0.0, "{text}: {}", score(text));
        }
        // A refund request is only mildly negative; anger words weigh far more.
        assert!(score("I want a refund") > -0.2);
    }

    #[test]
    fn other_languages_are_not_neutral() {
        assert!(score("Esto es una estafa, servicio pésimo") < -0.5);
        assert!(score("Muchas gracias, excelente") > 0.5);
        assert!(score("C'est nul, je suis très déçu") < -0.5);
        assert!(score("Das ist schrecklich, ich bin enttäuscht") < -0.5);
        assert!(score("Danke, perfekt!") > 0.5);
        assert!(score("Atendimento péssimo, que vergonha") < -0.5);
        assert!(score("Servizio orribile, che schifo") < -0.5);
        assert!(score("Grazie mille, ottimo") > 0.5);
        // Negation in other languages.
        assert!(score("no es bueno") < 0.0);
        assert!(score("das ist nicht gut") < 0.0);
        assert!(score("ce n'est pas bon") < 0.0);
        assert!(score("não é bom") < 0.0);
        assert!(score("non è buono") < 0.0);
        // Boosters in other languages.
        assert!(score("muy malo") < score("malo"));
        assert!(score("sehr schlecht") < score("schlecht"));
        assert!(score("vraiment nul") < score("nul"));
        assert!(score("muito ruim") < score("ruim"));
        let it = Some(Language::It);
        assert!(score_in("molto male", it) < score_in("male", it));
    }

    #[test]
    fn known_language_settles_false_friends() {
        // Italian "fine" is "end", German "toll" is "great", English "toll free" is neutral.
        assert_eq!(
            score_in("alla fine è arrivato il pacco", Some(Language::It)),
            0.0
        );
        assert!(score_in("Das ist toll", Some(Language::De)) > 0.3);
        assert_eq!(score("call our toll free number"), 0.0);
        assert_eq!(score("is this item on sale"), 0.0);
        // French "pain" is bread.
        assert_eq!(score_in("le pain est arrivé", Some(Language::Fr)), 0.0);
        assert!(score_in("so much pain", Some(Language::En)) < 0.0);
        // English words still count in another language's chat.
        assert!(score_in("el servicio es useless", Some(Language::Es)) < 0.0);
        // None is the same as the merged scorer.
        let text = "Das Paket ist kaputt";
        assert_eq!(score_in(text, None), score(text));
    }

    #[test]
    fn bien_boosts_or_counts() {
        assert!(score_in("c'est bien", Some(Language::Fr)) > 0.0);
        let boosted = score_in("je suis bien content", Some(Language::Fr));
        assert!(boosted > score_in("je suis content", Some(Language::Fr)));
    }

    #[test]
    fn intensifying_swear_word_is_not_counted_twice() {
        // "damn" strengthens "good" rather than making the message negative.
        assert!(score("damn good") > score("good"));
        assert!(score("damn") < 0.0);
        assert!(score("I am talking to a fucking bot") < 0.0);
    }

    #[test]
    fn state_tracks_current_lowest_and_samples() {
        let mut state = SentimentState::default();
        state.update(0.2);
        assert_eq!(state.samples, 1);
        assert_eq!(state.current, 0.2);
        assert_eq!(state.lowest, 0.2);
        assert_eq!(state.trend, 0.0);
        state.update(-0.6);
        state.update(0.1);
        assert_eq!(state.samples, 3);
        assert_eq!(state.current, 0.1);
        assert_eq!(state.lowest, -0.6);
    }

    #[test]
    fn trend_follows_recent_direction() {
        let mut state = SentimentState::default();
        for s in [0.5, 0.2, -0.1, -0.4, -0.7] {
            state.update(s);
        }
        assert!(state.trend < -0.2, "trend {}", state.trend);
        for s in [-0.4, 0.0, 0.4] {
            state.update(s);
        }
        assert!(state.trend > 0.2, "trend {}", state.trend);
        // A flat conversation settles towards no trend.
        for _ in 0..10 {
            state.update(0.4);
        }
        assert!(state.trend.abs() < 0.01, "trend {}", state.trend);
    }

    #[test]
    fn steep_fall_needs_a_drop_into_negative() {
        let mut state = SentimentState::default();
        state.update(0.3);
        assert!(!state.fell_steeply(0.5), "one message is no fall");
        state.update(-0.5);
        assert!((state.recent_fall() - 0.8).abs() < 1e-6);
        assert!(state.fell_steeply(0.5));
        assert!(!state.fell_steeply(0.9));

        // Falling from delighted to merely fine is no reason to hand over.
        let mut happy = SentimentState::default();
        happy.update(0.9);
        happy.update(0.1);
        assert!(!happy.fell_steeply(0.5));

        // A steady slide counts too.
        let mut slide = SentimentState::default();
        for s in [0.2, 0.0, -0.2, -0.4, -0.6] {
            slide.update(s);
        }
        assert!(slide.fell_steeply(0.3), "fall {}", slide.recent_fall());
        // A recovery ends it.
        slide.update(0.0);
        assert!(!slide.fell_steeply(0.3));
    }

    #[test]
    fn state_ignores_invalid_scores_and_clamps() {
        let mut state = SentimentState::default();
        state.update(f32::NAN);
        assert_eq!(state.current, 0.0);
        state.update(-5.0);
        assert_eq!(state.current, -1.0);
        assert_eq!(state.lowest, -1.0);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut state = SentimentState::default();
        state.update(-0.3);
        state.update(0.1);
        let encoded = toml::to_string(&state).expect("serialize");
        let decoded: SentimentState = toml::from_str(&encoded).expect("deserialize");
        assert_eq!(decoded, state);
        let json = serde_json::to_value(&state).expect("json");
        let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 4);
        for key in ["current", "lowest", "trend", "samples"] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn lexicons_are_well_formed() {
        for language in Language::ALL {
            let words = table(language);
            let min = if language == Language::En { 300 } else { 90 };
            assert!(words.len() >= min, "{language}: {} words", words.len());
            let mut seen = std::collections::HashSet::new();
            for (word, valence) in words {
                assert!(seen.insert(*word), "{language}: {word} listed twice");
                assert_eq!(
                    *word,
                    text::normalize(word),
                    "{language}: {word} not normalised"
                );
                assert!((-4.0..=4.0).contains(valence), "{language}: {word}");
            }
        }
    }

    #[test]
    fn bitext_offensive_messages_read_negative() {
        // The Bitext sample tags offensive wording with W; those messages should read clearly
        // negative, while plain information requests should read neutral.
        let (mut offensive, mut offensive_sum, mut offensive_negative) = (0u32, 0.0f32, 0u32);
        let (mut info, mut info_sum, mut info_strong) = (0u32, 0.0f32, 0u32);
        let Some(rows) = crate::analysis::dataset::bitext_rows() else {
            return;
        };
        for row in rows {
            let s = score(&row.instruction);
            if row.tags.contains('W') {
                offensive += 1;
                offensive_sum += s;
                offensive_negative += u32::from(s < -0.3);
            } else if row.intent.starts_with("check_") || row.intent.starts_with("track_") {
                info += 1;
                info_sum += s;
                info_strong += u32::from(s.abs() > 0.5);
            }
        }
        let offensive_mean = offensive_sum / offensive.max(1) as f32;
        let info_mean = info_sum / info.max(1) as f32;
        println!(
            "sentiment: offensive mean {offensive_mean:.3} ({offensive_negative}/{offensive} \
             below -0.3), information requests mean {info_mean:.3} ({info_strong}/{info} \
             beyond +-0.5)"
        );
        assert!(offensive > 50 && info > 200, "too few rows read");
        assert!(offensive_mean < -0.25, "offensive mean {offensive_mean}");
        assert!(offensive_negative * 10 >= offensive * 6);
        assert!(info_mean.abs() < 0.05, "information mean {info_mean}");
        assert!(info_strong * 100 <= info * 2, "{info_strong}/{info} strong");
    }
}
