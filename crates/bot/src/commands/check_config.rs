//! `check-config`: validate the configuration and print the effective non-secret settings.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigErrors};
use crate::settings::{RawSettings, SETTINGS, SettingProblem};

/// Reads the settings (file + environment); every problem is reported at once (exit status 2).
pub fn load_settings(path: Option<&Path>) -> Result<(RawSettings, Config), ConfigErrors> {
    load_settings_from(path, &|name: &str| std::env::var(name).ok())
}

/// Reads the settings from the file and `env` (a command may overlay its flags on the
/// environment); every problem is reported at once.
pub fn load_settings_from(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(RawSettings, Config), ConfigErrors> {
    let mut problems = Vec::new();
    let text = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(SettingProblem::new(
                    "--config",
                    format!("{}: {e}", p.display()),
                ));
                None
            }
        },
        None => None,
    };
    let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
    let raw = RawSettings::layer(
        text.as_deref().map(|t| (shown.as_str(), t)),
        env,
        &mut problems,
    );
    match Config::from_raw(&raw) {
        Ok(config) if problems.is_empty() => Ok((raw, config)),
        Ok(_) => Err(ConfigErrors(problems)),
        Err(ConfigErrors(more)) => {
            problems.extend(more);
            Err(ConfigErrors(problems))
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // this command's output is the point
/// Runs `check-config`: exit status 0 when valid, 2 with every problem listed otherwise.
pub fn run(path: Option<&Path>) -> ExitCode {
    super::run::warn_about_dotenv();
    match load_settings(path) {
        Ok((raw, config)) => {
            println!("{:<20} {:<40} FROM", "SETTING", "VALUE");
            for spec in SETTINGS {
                let (value, origin) = raw
                    .iter()
                    .find(|(name, _, _)| *name == spec.name)
                    .map_or(("(unset)", "default"), |(_, v, o)| (v, o.as_str()));
                // The host's default depends on CTRADER_ENV: show the one in effect.
                let value = if spec.name == "CTRADER_HOST" && value == "(unset)" {
                    config.broker.host.as_str()
                } else {
                    value
                };
                println!("{:<20} {:<40} {}", spec.name, value, origin);
            }
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}
