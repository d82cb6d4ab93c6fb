//! `sentiment`: fetch one reading through the configured source chain and print it with its
//! source, so an operator can check keys and reachability (or, with `--replay`, try it offline).
//!
//! Exit status: 0 a reading was printed; 1 every source failed (each source's reason is printed)
//! or the fetch could not run; 2 a configuration problem (including "no usable source").

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use domain::{Clock, SentimentReading, SystemClock};
use scraper::{SentimentService, SourceError};

use crate::allowlist::NetworkAllowList;
use crate::commands::check_config::load_settings;
use crate::sentiment_setup::{SentimentSecrets, build_service, replay_service};

/// Longest a fetch through the whole chain may take; each source has its own shorter timeouts,
/// this only guarantees the command ends.
const FETCH_DEADLINE: Duration = Duration::from_secs(300);

/// Options of `palm-oil-bot sentiment`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SentimentArgs {
    /// Replay the bundled offline palm-oil series instead of the configured sources (no keys, no network).
    #[arg(long)]
    pub replay: bool,
}

/// Runs `sentiment`; see the module documentation for the exit statuses.
#[allow(clippy::print_stderr)] // notes and errors are for the operator running the command
pub fn run(config_path: Option<&Path>, args: &SentimentArgs) -> ExitCode {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let service = if args.replay {
        match replay_service(Arc::clone(&clock), None) {
            Ok(service) => service,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        if Path::new(".env").exists() {
            eprintln!(
                "note: a .env file is present but is never read; export variables in the environment instead"
            );
        }
        let config = match load_settings(config_path) {
            Ok((_, config)) => config,
            Err(errors) => {
                eprint!("error: {errors}");
                return ExitCode::from(2);
            }
        };
        let secrets = SentimentSecrets::from_env(&|name| std::env::var(name).ok());
        let allow = NetworkAllowList::from_config(
            &config,
            secrets.perplexity_api_key.is_some(),
            secrets.x_bearer_token.is_some(),
        );
        match build_service(&config, &secrets, &allow, Arc::clone(&clock)) {
            Ok((service, skipped)) => {
                for note in skipped {
                    eprintln!("note: {note}");
                }
                service
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let runtime = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = runtime
        .block_on(async { tokio::time::timeout(FETCH_DEADLINE, service.reading_detailed()).await });
    report(&service, outcome, clock.as_ref())
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the reading is this command's output
fn report(
    service: &SentimentService,
    outcome: Result<Result<SentimentReading, SourceError>, tokio::time::error::Elapsed>,
    clock: &dyn Clock,
) -> ExitCode {
    match outcome {
        Ok(Ok(reading)) => {
            print!("{}", render_reading(&reading, clock));
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            println!("sentiment unavailable");
            match error {
                SourceError::AllFailed(failures) if !failures.is_empty() => {
                    for (source, why) in failures {
                        println!("  {source}: {why}");
                    }
                }
                other => println!("  {}: {other}", service.source_names().join(", ")),
            }
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("sentiment unavailable");
            eprintln!(
                "error: no answer from {} within {} s",
                service.source_names().join(", "),
                FETCH_DEADLINE.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}

/// The reading as aligned lines for a person.
fn render_reading(reading: &SentimentReading, clock: &dyn Clock) -> String {
    let mood = if reading.score > 0.1 {
        "bullish"
    } else if reading.score < -0.1 {
        "bearish"
    } else {
        "neutral"
    };
    let age_min = reading.age_millis(clock.now()) / 60_000;
    let age = if age_min >= 0 {
        format!("{age_min} min ago")
    } else {
        "in the future: check the source's clock".to_owned()
    };
    format!(
        "source      {}\nscore       {:+.2} ({mood})\nconfidence  {:.2}\nitems       {}\nknown at    {} ({age})\nsummary     {}\n",
        reading.source,
        reading.score,
        reading.confidence,
        reading.item_count,
        reading.known_at,
        reading.summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{FixedClock, Timestamp};

    #[test]
    fn a_reading_shows_every_field() {
        let reading = SentimentReading {
            score: -0.42,
            confidence: 0.7,
            source: "nitter".to_owned(),
            known_at: Timestamp(1_767_225_600_000),
            item_count: 9,
            summary: "export duties raised".to_owned(),
        };
        let clock = FixedClock::new(Timestamp(1_767_225_600_000 + 5 * 60_000));
        let text = render_reading(&reading, &clock);
        for expected in [
            "source      nitter",
            "score       -0.42 (bearish)",
            "confidence  0.70",
            "items       9",
            "known at    2026-01-01T00:00:00.000Z (5 min ago)",
            "summary     export duties raised",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
    }
}
