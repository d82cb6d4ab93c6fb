//! What values each setting takes: the settings table declares a [`Kind`] per setting, and
//! one parser per kind turns the text into a [`Value`] or names the problem, so a range lives
//! in one place and the message a user reads states the range the documentation states.

use std::net::IpAddr;
use std::path::PathBuf;

use domain::{AcceleratedClock, LabelPrefix, Price, Timeframe, Volume};

/// The shape of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// One of these words, any letter case, `-` read as `_`.
    Choice(&'static [&'static str]),
    /// A whole number from `low` to `high`; `unit` names it in problems (e.g. "seconds").
    Whole {
        /// Least value.
        low: u64,
        /// Greatest value (`u64::MAX`: no upper bound).
        high: u64,
        /// What the number counts, or "" for a bare number.
        unit: &'static str,
    },
    /// A number above `low` and at most `high`.
    Fraction {
        /// Exclusive lower bound.
        low: f64,
        /// Inclusive upper bound.
        high: f64,
    },
    /// A number from `low` to `high`, both included.
    Within {
        /// Inclusive lower bound.
        low: f64,
        /// Inclusive upper bound.
        high: f64,
    },
    /// `true` or `false`.
    Flag,
    /// A positive price distance.
    Distance,
    /// A positive volume in units.
    Units,
    /// Comma-separated items, blanks dropped: at least `min`, each at most `max_chars` long.
    List {
        /// Fewest items.
        min: usize,
        /// Longest item, in characters.
        max_chars: usize,
    },
    /// Comma-separated items, each one of these words (any case, `-` read as `_`).
    ListOf(&'static [&'static str]),
    /// Comma-separated `https://` URLs.
    HttpsList,
    /// An `https://` URL with a host (trailing `/` dropped).
    HttpsUrl,
    /// An `https://` URL, or `http://` to this machine for a local mock (trailing `/` dropped).
    ServiceUrl,
    /// A URL `auth` reads and checks itself; the trading configuration does not use it.
    AuthUrl,
    /// A readable file.
    File,
    /// A bare host name: no scheme, port or path.
    Host,
    /// An IP address.
    Ip,
    /// A bar timeframe.
    Timeframe,
    /// An accelerated simulator's clock, `SIM_MS,WALL_MS,SPEED`.
    SimulatorClock,
    /// A SQLite URL or file path.
    Database,
    /// A log filter, read by the parser the logger uses.
    LogFilter,
    /// An order-label prefix.
    Label,
    /// Free text.
    Text,
}

/// A setting's value, parsed as its [`Kind`] says.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A choice, lower case with `_` (the word as the table spells it).
    Word(&'static str),
    /// A whole number.
    Whole(u64),
    /// A number.
    Number(f64),
    /// A flag.
    Flag(bool),
    /// A price distance.
    Price(Price),
    /// A volume.
    Volume(Volume),
    /// Items of a list (for `ListOf`, the table's spelling).
    List(Vec<String>),
    /// Text: a URL, a host, a database URL, a log filter.
    Text(String),
    /// A file path.
    Path(PathBuf),
    /// An IP address.
    Ip(IpAddr),
    /// A timeframe.
    Timeframe(Timeframe),
    /// A simulator's clock.
    Clock(AcceleratedClock),
    /// A label prefix.
    Label(LabelPrefix),
}

impl Kind {
    /// The range or choices as the settings table's description must state them (checked by a
    /// test), or `None` for kinds without one.
    pub fn stated_range(self) -> Option<String> {
        match self {
            Kind::Whole { low, high, .. } if high == u64::MAX => Some(format!("at least {low}")),
            Kind::Whole { low, high, .. } => Some(format!("{low} to {high}")),
            Kind::Fraction { low, high } => Some(format!("above {low}, at most {high}")),
            Kind::Within { low, high } => Some(format!("{low} to {high}")),
            Kind::List { max_chars, .. } if max_chars < usize::MAX => {
                Some(format!("{max_chars} characters at most"))
            }
            _ => None,
        }
    }

    /// The words a description must name, for choices.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Kind::Choice(words) | Kind::ListOf(words) => words,
            _ => &[],
        }
    }

    /// Parses `text` (already trimmed; may be empty for a list), or says what is wrong with it.
    pub fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Kind::Choice(words) => choose(words, text).map(Value::Word),
            Kind::Whole { low, high, unit } => whole(text, low, high, unit).map(Value::Whole),
            Kind::Fraction { low, high } => {
                let v = number(text)?;
                if v > low && v <= high {
                    Ok(Value::Number(v))
                } else {
                    Err(format!("{v} must be above {low} and at most {high}"))
                }
            }
            Kind::Within { low, high } => {
                let v = number(text)?;
                if (low..=high).contains(&v) {
                    Ok(Value::Number(v))
                } else {
                    Err(format!("{v} must be from {low} to {high}"))
                }
            }
            Kind::Flag => match text.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Flag(true)),
                "false" => Ok(Value::Flag(false)),
                _ => Err(format!("{text:?} is not true or false")),
            },
            Kind::Distance => match Price::parse(text) {
                Ok(p) if p.raw() > 0 => Ok(Value::Price(p)),
                Ok(_) => Err("must be a positive price distance".to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Kind::Units => match Volume::parse_units(text) {
                Ok(v) if v.is_positive() => Ok(Value::Volume(v)),
                Ok(_) => Err("must be positive".to_owned()),
                Err(e) => Err(e.to_string()),
            },
            Kind::List { min, max_chars } => {
                let items = items(text);
                if items.len() < min {
                    Err(format!("needs at least {min} item(s)"))
                } else if items.iter().any(|i| i.chars().count() > max_chars) {
                    Err(format!("each item must be at most {max_chars} characters"))
                } else {
                    Ok(Value::List(items))
                }
            }
            Kind::ListOf(words) => items(text)
                .iter()
                .map(|item| choose(words, item).map(str::to_owned))
                .collect::<Result<_, _>>()
                .map(Value::List),
            Kind::HttpsList => {
                let urls = items(text);
                match urls.iter().find(|u| !u.starts_with("https://")) {
                    Some(url) => Err(format!("{url:?} must be an https:// URL")),
                    None => Ok(Value::List(urls)),
                }
            }
            Kind::HttpsUrl => {
                let host = text
                    .strip_prefix("https://")
                    .and_then(crate::allowlist::host_of_url);
                if host.is_some() && !text.contains(char::is_whitespace) {
                    Ok(Value::Text(text.trim_end_matches('/').to_owned()))
                } else {
                    Err(format!("{text:?} must be an https:// URL with a host"))
                }
            }
            Kind::ServiceUrl => crate::config::check_service_url(text)
                .map(|()| Value::Text(text.trim_end_matches('/').to_owned())),
            Kind::AuthUrl | Kind::Text => Ok(Value::Text(text.to_owned())),
            Kind::File => {
                let path = PathBuf::from(text);
                if path.is_file() {
                    Ok(Value::Path(path))
                } else {
                    Err(format!("{} is not a readable file", path.display()))
                }
            }
            Kind::Host => {
                if text.contains(['/', ':', ' ']) {
                    Err(format!(
                        "{text:?} must be a bare host name (no scheme, port or path)"
                    ))
                } else {
                    Ok(Value::Text(text.to_owned()))
                }
            }
            Kind::Ip => text
                .parse()
                .map(Value::Ip)
                .map_err(|_| format!("{text:?} is not an IP address")),
            Kind::Timeframe => text
                .parse()
                .map(Value::Timeframe)
                .map_err(|_| format!("{text:?} is not one of M1, M5, M15, M30, H1, H4, D1")),
            Kind::SimulatorClock => text
                .parse::<AcceleratedClock>()
                .map(Value::Clock)
                .map_err(|e| e.to_string()),
            Kind::Database => {
                crate::config::check_database_url(text).map(|()| Value::Text(text.to_owned()))
            }
            Kind::LogFilter => observability::parse_filter(Some(text))
                .map(|_| Value::Text(text.to_owned()))
                .map_err(|e| e.to_string()),
            Kind::Label => LabelPrefix::new(text)
                .map(Value::Label)
                .map_err(|_| "must be 1 to 20 ASCII letters, digits, '-' or '_'".to_owned()),
        }
    }
}

/// The word of `words` that `text` names (any case, `-` read as `_`).
fn choose(words: &'static [&'static str], text: &str) -> Result<&'static str, String> {
    let wanted = text.trim().to_ascii_lowercase().replace('-', "_");
    words
        .iter()
        .copied()
        .find(|w| **w == wanted)
        .ok_or_else(|| format!("{text:?} is not {}", one_of(words)))
}

/// "a, b or c"; a longer list as "one of a, b, c, d".
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [_, _] | [_, _, _] => {
            let (last, rest) = words.split_last().unwrap_or((&"", &[]));
            format!("{} or {last}", rest.join(", "))
        }
        _ => format!("one of {}", words.join(", ")),
    }
}

fn whole(text: &str, low: u64, high: u64, unit: &str) -> Result<u64, String> {
    let unit_text = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    let v: u64 = text.parse().map_err(|_| {
        if unit.is_empty() {
            format!("{text:?} is not a whole number")
        } else {
            format!("{text:?} is not a whole number of{unit_text}")
        }
    })?;
    if (low..=high).contains(&v) {
        Ok(v)
    } else if high == u64::MAX {
        Err(format!("{v} must be at least {low}{unit_text}"))
    } else {
        Err(format!("{v} must be from {low} to {high}{unit_text}"))
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text:?} is not a number"))
}

fn items(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_name_their_range_and_unit() {
        let port = Kind::Whole {
            low: 1,
            high: 65_535,
            unit: "",
        };
        assert_eq!(port.parse("5035"), Ok(Value::Whole(5035)));
        assert_eq!(port.parse("0"), Err("0 must be from 1 to 65535".to_owned()));
        assert_eq!(
            port.parse("-3"),
            Err("\"-3\" is not a whole number".to_owned())
        );
        let age = Kind::Whole {
            low: 60,
            high: u64::MAX,
            unit: "seconds",
        };
        assert_eq!(
            age.parse("30"),
            Err("30 must be at least 60 seconds".to_owned())
        );
        assert_eq!(
            age.parse("1m"),
            Err("\"1m\" is not a whole number of seconds".to_owned())
        );
        assert_eq!(age.stated_range().as_deref(), Some("at least 60"));
        assert_eq!(port.stated_range().as_deref(), Some("1 to 65535"));
    }

    #[test]
    fn fractions_exclude_their_floor_and_reject_non_finite_numbers() {
        let risk = Kind::Fraction {
            low: 0.0,
            high: 0.1,
        };
        assert_eq!(risk.parse("0.1"), Ok(Value::Number(0.1)));
        assert!(risk.parse("0").unwrap_err().contains("above 0"));
        assert!(risk.parse("NaN").unwrap_err().contains("not a number"));
        assert!(risk.parse("inf").unwrap_err().contains("not a number"));
        let veto = Kind::Within {
            low: 0.0,
            high: 1.0,
        };
        assert_eq!(veto.parse("0"), Ok(Value::Number(0.0)));
        assert!(veto.parse("1.01").unwrap_err().contains("from 0 to 1"));
    }

    #[test]
    fn choices_take_any_case_and_either_separator() {
        let policy = Kind::Choice(&["ignore", "stand_aside"]);
        assert_eq!(policy.parse("Stand-Aside"), Ok(Value::Word("stand_aside")));
        assert_eq!(
            policy.parse("panic"),
            Err("\"panic\" is not ignore or stand_aside".to_owned())
        );
        let sources = Kind::ListOf(&["perplexity", "nitter", "x"]);
        assert_eq!(
            sources.parse("X, nitter"),
            Ok(Value::List(vec!["x".to_owned(), "nitter".to_owned()]))
        );
        assert_eq!(
            sources.parse("reddit"),
            Err("\"reddit\" is not perplexity, nitter or x".to_owned())
        );
        assert_eq!(sources.parse(""), Ok(Value::List(Vec::new())));
    }

    #[test]
    fn lists_count_and_measure_their_items() {
        let names = Kind::List {
            min: 1,
            max_chars: 3,
        };
        assert_eq!(
            names.parse(" a , ,bc"),
            Ok(Value::List(vec!["a".to_owned(), "bc".to_owned()]))
        );
        assert!(names.parse(" , ").unwrap_err().contains("at least 1"));
        assert!(names.parse("abcd").unwrap_err().contains("at most 3"));
        assert!(
            Kind::HttpsList
                .parse("https://a.example,http://b.example")
                .unwrap_err()
                .contains("http://b.example")
        );
    }
}
