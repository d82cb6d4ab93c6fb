//! The parameter space of an optimisation: each parameter's values from ranges and lists, the
//! grid of their combinations, and seeded random samples of it.

use domain::Price;

/// Most values one parameter may take (a typo such as `1..1000000:1` is refused, not run).
pub(crate) const MAX_VALUES: usize = 100_000;

/// A problem with `--param`, `--random` or `--seed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpaceError(pub String);

/// One parameter and the values it takes, as the text a setting accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Normalised name: lower case, `_` between words (`rsi_period`).
    pub name: String,
    /// The values, in the order given.
    pub values: Vec<String>,
}

/// A parameter name in its normal form: `RSI_PERIOD`, `rsi-period` and `--rsi-period` are all
/// `rsi_period`.
pub fn normalise_name(name: &str) -> String {
    name.trim()
        .trim_start_matches("--")
        .to_ascii_lowercase()
        .replace('-', "_")
}

/// Parses `NAME=VALUES`: VALUES is a comma-separated list of items, each a value (`30`, `0.5`,
/// `true`) or an inclusive range `FROM..TO:STEP` of decimals (`20..40:5` is 20, 25, 30, 35, 40).
/// Ranges are computed in exact decimals (5 places), so `0.1..0.3:0.1` has three values.
pub fn parse_param(text: &str) -> Result<ParamSpec, SpaceError> {
    let (name, spec) = text.split_once('=').ok_or_else(|| {
        SpaceError(format!(
            "--param {text:?}: expected NAME=VALUES, e.g. rsi_period=7..21:7 or oversold=20,25,30"
        ))
    })?;
    let name = normalise_name(name);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(SpaceError(format!("--param {text:?}: no parameter name")));
    }
    let mut values: Vec<String> = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(SpaceError(format!(
                "--param {name}: an empty value in {spec:?}"
            )));
        }
        if let Some((from, rest)) = item.split_once("..") {
            let (to, step) = rest.split_once(':').ok_or_else(|| {
                SpaceError(format!(
                    "--param {name}: range {item:?} needs a step, e.g. {from}..{rest}:1"
                ))
            })?;
            let number = |what: &str, t: &str| {
                Price::parse(t.trim()).map_err(|_| {
                    SpaceError(format!(
                        "--param {name}: range {item:?}: {what} {t:?} is not a decimal number"
                    ))
                })
            };
            let (from, to, step) = (
                number("start", from)?,
                number("end", to)?,
                number("step", step)?,
            );
            if step.raw() <= 0 {
                return Err(SpaceError(format!(
                    "--param {name}: range {item:?}: the step must be positive"
                )));
            }
            if to < from {
                return Err(SpaceError(format!(
                    "--param {name}: range {item:?}: the end is below the start"
                )));
            }
            let count = (to.raw() - from.raw()) / step.raw() + 1;
            if usize::try_from(count).map_or(true, |c| values.len() + c > MAX_VALUES) {
                return Err(SpaceError(format!(
                    "--param {name}: more than {MAX_VALUES} values"
                )));
            }
            let mut v = from.raw();
            while v <= to.raw() {
                values.push(Price(v).to_string());
                v += step.raw();
            }
        } else {
            values.push(item.to_owned());
        }
    }
    // The same value twice would run the same backtest twice.
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(SpaceError(format!(
            "--param {name}: value {dup} given twice"
        )));
    }
    if values.len() > MAX_VALUES {
        return Err(SpaceError(format!(
            "--param {name}: more than {MAX_VALUES} values"
        )));
    }
    Ok(ParamSpec { name, values })
}

/// The grid of every combination of the parameters' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    params: Vec<ParamSpec>,
}

impl Space {
    /// A space over `params`; each name at most once.
    pub fn new(params: Vec<ParamSpec>) -> Result<Space, SpaceError> {
        if params.is_empty() {
            return Err(SpaceError(
                "no --param given: name at least one parameter to vary".to_owned(),
            ));
        }
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(SpaceError(format!("--param {} given twice", p.name)));
            }
        }
        let space = Space { params };
        if space.size().is_none() {
            return Err(SpaceError(
                "the grid has more than 2^64 combinations: use fewer values or --random".to_owned(),
            ));
        }
        Ok(space)
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// Number of combinations (`None` beyond `u64`).
    pub fn size(&self) -> Option<u64> {
        self.params.iter().try_fold(1_u64, |acc, p| {
            acc.checked_mul(u64::try_from(p.values.len()).ok()?)
        })
    }

    /// The combination at `index` of the grid, the last parameter varying fastest: one value
    /// per parameter, in parameter order.
    pub fn combination(&self, index: u64) -> Vec<&str> {
        let mut rest = index;
        let mut out = vec![""; self.params.len()];
        for (slot, p) in out.iter_mut().zip(&self.params).rev() {
            let n = u64::try_from(p.values.len()).unwrap_or(u64::MAX).max(1);
            let i = usize::try_from(rest % n).unwrap_or(0);
            rest /= n;
            *slot = p.values.get(i).map_or("", String::as_str);
        }
        out
    }

    /// Every grid index, or `n` distinct ones drawn with `seed` (all of them when `n` is at
    /// least the grid size), ascending. The same seed gives the same sample on every machine.
    pub fn indices(&self, random: Option<(u64, u64)>) -> Vec<u64> {
        let size = self.size().unwrap_or(u64::MAX);
        match random {
            Some((n, seed)) if n < size => floyd_sample(size, n, seed),
            _ => (0..size).collect(),
        }
    }
}

/// SplitMix64: a tiny, well-mixed generator whose output depends only on the seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=bound` (rejection sampling removes the modulo bias).
    fn up_to(&mut self, bound: u64) -> u64 {
        if bound == u64::MAX {
            return self.next();
        }
        let span = bound + 1;
        let zone = u64::MAX - (u64::MAX % span);
        loop {
            let x = self.next();
            if x < zone {
                return x % span;
            }
        }
    }
}

/// `n` distinct numbers below `size` (n < size) by Robert Floyd's algorithm: exactly `n` draws.
fn floyd_sample(size: u64, n: u64, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let mut chosen = std::collections::BTreeSet::new();
    for j in size - n..size {
        let t = rng.up_to(j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists_are_exact_decimals() {
        let p = parse_param("RSI-Period=7..21:7").unwrap();
        assert_eq!(p.name, "rsi_period");
        assert_eq!(p.values, ["7", "14", "21"]);
        let p = parse_param("sentiment_veto=0.1..0.3:0.1, 0.55").unwrap();
        assert_eq!(p.values, ["0.1", "0.2", "0.3", "0.55"]);
        let p = parse_param("long_only=true,false").unwrap();
        assert_eq!(p.values, ["true", "false"]);
        let p = parse_param("stop_loss=20..30:7").unwrap();
        assert_eq!(p.values, ["20", "27"]);
    }

    #[test]
    fn bad_specs_are_named() {
        for (text, part) in [
            ("rsi_period", "expected NAME=VALUES"),
            ("rsi_period=7..21", "needs a step"),
            ("rsi_period=7..21:0", "step must be positive"),
            ("rsi_period=21..7:1", "end is below the start"),
            ("rsi_period=a..b:1", "is not a decimal number"),
            ("rsi_period=7,,9", "an empty value"),
            ("rsi_period=7,7", "given twice"),
            ("rsi_period=0..1000000:1", "more than 100000 values"),
            ("=7", "no parameter name"),
        ] {
            let err = parse_param(text).unwrap_err().0;
            assert!(err.contains(part), "{text}: {err}");
        }
        let a = parse_param("a=1,2").unwrap();
        assert!(
            Space::new(vec![a.clone(), a])
                .unwrap_err()
                .0
                .contains("twice")
        );
        assert!(Space::new(vec![]).is_err());
    }

    #[test]
    fn the_grid_varies_the_last_parameter_fastest() {
        let space = Space::new(vec![
            parse_param("a=1,2").unwrap(),
            parse_param("b=x,y,z").unwrap(),
        ])
        .unwrap();
        assert_eq!(space.size(), Some(6));
        let all: Vec<Vec<&str>> = (0..6).map(|i| space.combination(i)).collect();
        assert_eq!(
            all,
            [
                ["1", "x"],
                ["1", "y"],
                ["1", "z"],
                ["2", "x"],
                ["2", "y"],
                ["2", "z"]
            ]
        );
    }

    #[test]
    fn random_samples_are_distinct_seeded_and_bounded() {
        let space = Space::new(vec![
            parse_param("a=1..100:1").unwrap(),
            parse_param("b=1..100:1").unwrap(),
        ])
        .unwrap();
        let a = space.indices(Some((50, 7)));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "distinct and sorted");
        assert!(a.iter().all(|&i| i < 10_000));
        assert_eq!(a, space.indices(Some((50, 7))), "same seed, same sample");
        assert_ne!(a, space.indices(Some((50, 8))));
        // Asking for the whole grid or more gives the grid.
        assert_eq!(space.indices(Some((10_000, 1))).len(), 10_000);
        assert_eq!(space.indices(None).len(), 10_000);
        let small = floyd_sample(5, 4, 3);
        assert_eq!(small.len(), 4);
        assert!(small.iter().all(|&i| i < 5));
    }
}
