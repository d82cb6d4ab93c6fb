//! The palm-oil lexicon: words and phrases whose appearance in a post moves the score, read
//! from the price's point of view (bullish = the palm oil price likely rises).
//!
//! | term (phrase or word)                                                      | weight |
//! |----------------------------------------------------------------------------|-------:|
//! | exports rise / jump / surge, higher / strong exports                       |   +2.0 |
//! | stocks / inventories / stockpiles fall, lower stocks                       |   +2.0 |
//! | output / production falls, lower output                                    |   +2.0 |
//! | B50                                                                        |   +2.0 |
//! | biodiesel mandate, B40, drought, El Niño, strong demand, record high       |   +1.5 |
//! | rally / rallies / rallied                                                  |   +1.5 |
//! | dry weather, floods, labour shortage, weaker ringgit / ringgit weakens     |   +1.0 |
//! | crude / Brent / soyoil rises or gains                                      |   +1.0 |
//! | gains, rises, rose, higher, jumps, surges, up                              |   +1.0 |
//! | bullish                                                                    |   +2.0 |
//! | exports fall / drop / slump, lower / weak exports                          |   −2.0 |
//! | stocks / inventories / stockpiles rise, higher / record stocks             |   −2.0 |
//! | output / production rises, record / higher output                          |   −2.0 |
//! | bearish                                                                    |   −2.0 |
//! | weak demand, mandate delay, plunge, slump                                  |   −1.5 |
//! | stronger ringgit / ringgit strengthens, crude / Brent / soyoil falls       |   −1.0 |
//! | falls, fell, drops, declines, lower, losses, down                          |   −1.0 |
//!
//! Matching is case-insensitive on whole words; the longest phrase wins, so "exports fall"
//! counts once at −2 and not also as "falls". **Negation:** a term preceded within three
//! words by `not`, `no`, `never`, `without`, `hardly`, `nor` or a word ending in `n't` counts
//! at −0.5 × its weight ("stocks did not fall" is mildly bearish). A post's raw sum `s` is
//! squashed to `s / sqrt(s² + 4)`, in (−1, 1). Posts with no term carry no signal and are
//! not counted.

/// `(phrase, weight)`; phrases are lower-case words separated by single spaces.
const ENTRIES: &[(&str, f64)] = &[
    // Exports (surveyor estimates: ITS, AmSpec, SGS).
    ("exports rise", 2.0),
    ("exports rose", 2.0),
    ("exports jump", 2.0),
    ("exports jumped", 2.0),
    ("exports surge", 2.0),
    ("exports surged", 2.0),
    ("higher exports", 2.0),
    ("strong exports", 2.0),
    ("exports fall", -2.0),
    ("exports fell", -2.0),
    ("exports drop", -2.0),
    ("exports dropped", -2.0),
    ("exports slump", -2.0),
    ("lower exports", -2.0),
    ("weak exports", -2.0),
    // Stocks (MPOB data).
    ("stocks fall", 2.0),
    ("stocks fell", 2.0),
    ("stocks drop", 2.0),
    ("stocks decline", 2.0),
    ("inventories fall", 2.0),
    ("stockpiles fall", 2.0),
    ("stockpiles fell", 2.0),
    ("lower stocks", 2.0),
    ("stocks rise", -2.0),
    ("stocks rose", -2.0),
    ("stocks climb", -2.0),
    ("inventories rise", -2.0),
    ("stockpiles rise", -2.0),
    ("stockpiles rose", -2.0),
    ("higher stocks", -2.0),
    ("record stocks", -2.0),
    // Output.
    ("output falls", 2.0),
    ("output fell", 2.0),
    ("production falls", 2.0),
    ("production fell", 2.0),
    ("lower output", 2.0),
    ("output rises", -2.0),
    ("output rose", -2.0),
    ("production rises", -2.0),
    ("production rose", -2.0),
    ("record output", -2.0),
    ("higher output", -2.0),
    // Biodiesel and policy.
    ("b50", 2.0),
    ("biodiesel mandate", 1.5),
    ("b40", 1.5),
    ("mandate delay", -1.5),
    // Weather and labour.
    ("drought", 1.5),
    ("el nino", 1.5),
    ("el niño", 1.5),
    ("dry weather", 1.0),
    ("floods", 1.0),
    ("flooding", 1.0),
    ("labour shortage", 1.0),
    ("labor shortage", 1.0),
    // Demand.
    ("strong demand", 1.5),
    ("weak demand", -1.5),
    // Related markets.
    ("weaker ringgit", 1.0),
    ("ringgit weakens", 1.0),
    ("stronger ringgit", -1.0),
    ("ringgit strengthens", -1.0),
    ("crude rises", 1.0),
    ("crude gains", 1.0),
    ("brent rises", 1.0),
    ("brent gains", 1.0),
    ("soyoil rises", 1.0),
    ("soyoil gains", 1.0),
    ("crude falls", -1.0),
    ("brent falls", -1.0),
    ("soyoil falls", -1.0),
    // Price words.
    ("record high", 1.5),
    ("bullish", 2.0),
    ("rally", 1.5),
    ("rallies", 1.5),
    ("rallied", 1.5),
    ("gains", 1.0),
    ("rises", 1.0),
    ("rose", 1.0),
    ("higher", 1.0),
    ("jumps", 1.0),
    ("surges", 1.0),
    ("up", 1.0),
    ("bearish", -2.0),
    ("plunge", -1.5),
    ("plunges", -1.5),
    ("slump", -1.5),
    ("slumps", -1.5),
    ("falls", -1.0),
    ("fell", -1.0),
    ("drops", -1.0),
    ("declines", -1.0),
    ("lower", -1.0),
    ("losses", -1.0),
    ("down", -1.0),
];

/// Words that negate a term up to [`NEGATION_WINDOW`] words after them.
const NEGATORS: &[&str] = &["not", "no", "never", "without", "hardly", "nor"];
/// How many words back a negator reaches.
const NEGATION_WINDOW: usize = 3;
/// A negated term counts at this multiple of its weight.
const NEGATION_FACTOR: f64 = -0.5;
/// Squashing constant: a raw sum of 2 maps to about 0.71.
const SQUASH_ALPHA: f64 = 4.0;

/// Scores text with the table above.
#[derive(Debug, Clone)]
pub struct PalmOilLexicon {
    /// Longest phrases first, so a phrase wins over its own words.
    entries: Vec<(Vec<String>, f64)>,
}

impl Default for PalmOilLexicon {
    fn default() -> PalmOilLexicon {
        let mut entries: Vec<(Vec<String>, f64)> = ENTRIES
            .iter()
            .map(|(phrase, weight)| (phrase.split(' ').map(str::to_owned).collect(), *weight))
            .collect();
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.0.len()));
        PalmOilLexicon { entries }
    }
}

impl PalmOilLexicon {
    /// The text's score in (−1, 1), or `None` when no term of the lexicon appears.
    pub fn score(&self, text: &str) -> Option<f64> {
        let words = tokenize(text);
        let mut sum = 0.0;
        let mut matched = false;
        let mut i = 0;
        while i < words.len() {
            let hit = self.entries.iter().find(|(phrase, _)| {
                words
                    .get(i..i + phrase.len())
                    .is_some_and(|window| window == phrase.as_slice())
            });
            match hit {
                Some((phrase, weight)) => {
                    let negated = words[i.saturating_sub(NEGATION_WINDOW)..i]
                        .iter()
                        .any(|w| is_negator(w));
                    sum += if negated {
                        weight * NEGATION_FACTOR
                    } else {
                        *weight
                    };
                    matched = true;
                    i += phrase.len();
                }
                None => i += 1,
            }
        }
        matched.then(|| sum / (sum * sum + SQUASH_ALPHA).sqrt())
    }
}

fn is_negator(word: &str) -> bool {
    NEGATORS.contains(&word) || word.ends_with("n't") || word == "cannot"
}

/// Lower-case words: letters, digits and apostrophes (so "didn't" stays one word).
fn tokenize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('’', "'")
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Aggregates item scores into one reading's score and confidence.
///
/// The score is the mean. Confidence grows with the number of items (`n / (n + 5)`: five items
/// give 0.5) and shrinks when they disagree (times `1 − mean absolute deviation / 2`).
pub fn aggregate(scores: &[f64]) -> Option<(f64, f64)> {
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let deviation = scores.iter().map(|s| (s - mean).abs()).sum::<f64>() / n;
    let confidence = (n / (n + 5.0)) * (1.0 - deviation / 2.0);
    Some((mean.clamp(-1.0, 1.0), confidence.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_outweigh_their_words() {
        let lex = PalmOilLexicon::default();
        let s = lex
            .score("Malaysia palm oil exports fall 12% in November - ITS")
            .unwrap();
        // Only the phrase (−2) counts, not also "fall".
        assert!((s - (-2.0 / 8f64.sqrt())).abs() < 1e-9, "{s}");
    }

    #[test]
    fn negation_flips_and_dampens() {
        let lex = PalmOilLexicon::default();
        let bullish = lex.score("Palm oil looks bullish").unwrap();
        let negated = lex.score("Palm oil is not bullish").unwrap();
        assert!(bullish > 0.0 && negated < 0.0, "{bullish} {negated}");
        assert!(negated.abs() < bullish.abs());
        assert!(lex.score("Analysts don't expect a rally").unwrap() < 0.0);
        // A negator more than three words back does not reach the term.
        assert!(lex.score("no change seen by traders, bullish").unwrap() > 0.0);
    }

    #[test]
    fn text_without_terms_has_no_signal() {
        assert_eq!(
            PalmOilLexicon::default().score("Kuala Lumpur weekend traffic"),
            None
        );
    }

    #[test]
    fn case_and_unicode_are_normalised() {
        let lex = PalmOilLexicon::default();
        assert!(lex.score("EL NIÑO threatens Sabah yields").unwrap() > 0.0);
        assert!(lex.score("CPO futures BEARISH on record output").unwrap() < -0.8);
    }

    #[test]
    fn aggregate_weighs_count_and_agreement() {
        assert_eq!(aggregate(&[]), None);
        let (score, conf) = aggregate(&[0.5, 0.5, 0.5, 0.5, 0.5]).unwrap();
        assert!((score - 0.5).abs() < 1e-12);
        assert!((conf - 0.5).abs() < 1e-12);
        let (_, split) = aggregate(&[0.8, -0.8, 0.8, -0.8, 0.8]).unwrap();
        assert!(split < conf);
    }
}
