//! `optimize`: backtest every combination of strategy and risk parameters (or a seeded random
//! sample of them) on all cores, rank them by a metric under constraints, and optionally walk
//! forward: optimise on a training window, trade the winner on the next test window.
//!
//! Each combination is the `backtest` set-up with its parameters overriding the settings, checked
//! by the same rules as `run`'s and `backtest`'s; an invalid combination (e.g. oversold above
//! overbought) is reported and skipped. Exit status: 0 done; 2 bad option, parameter, constraint,
//! configuration, input data or output path (nothing is run); 1 an I/O failure while writing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use research::{
    Candidate, Constraint, Direction, Market, Metric, Objective, Space, WindowKind, normalise_name,
    parse_param, parse_walk_forward, render_heatmap_svg, render_ranking, results_json, search,
    walk_forward, windows, with_threads, write_results_csv,
};

use super::backtest::{Failure, Kind, Outputs, PARAMETERS, SetupArgs, exit_status};

/// Options of `palm-oil-bot optimize`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OptimizeArgs {
    /// Data, base strategy and risk parameters, and costs, as for `backtest`.
    #[command(flatten)]
    pub setup: SetupArgs,
    /// A parameter to vary: NAME=VALUES, VALUES a comma-separated list of values and inclusive
    /// ranges FROM..TO:STEP (e.g. rsi_period=7..21:7, oversold=20,25,30, long_only=true,false).
    /// Names: rsi_period, oversold, overbought, long_only, stop_loss, take_profit, sentiment_veto,
    /// sentiment_policy, sentiment_max_age, daily_loss_limit, max_drawdown, risk_per_trade, size.
    #[arg(long = "param", value_name = "NAME=VALUES", required = true)]
    pub params: Vec<String>,
    /// The metric to maximise: return, annual_return, cagr, sharpe, sortino, calmar,
    /// profit_factor, expectancy, win_rate, trades, exposure, sqn, final_equity, ...
    #[arg(long, value_name = "METRIC", conflicts_with = "minimize")]
    pub maximize: Option<String>,
    /// A metric to minimise instead (e.g. max_drawdown, volatility, losing_streak).
    #[arg(long, value_name = "METRIC")]
    pub minimize: Option<String>,
    /// A condition to be ranked, LEFT OP RIGHT with OP one of < <= > >= == != and each side a
    /// metric, a parameter or a number (e.g. "trades>=30", "max_drawdown<15",
    /// "oversold<overbought"); repeatable. One on parameters only skips the run altogether.
    #[arg(long = "constraint", value_name = "EXPR")]
    pub constraints: Vec<String>,
    /// Test this many combinations drawn at random from the grid (without repeats) instead of all.
    #[arg(long, value_name = "N")]
    pub random: Option<u64>,
    /// Seed of --random: the same seed draws the same combinations.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Worker threads [default: one per core]; results do not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Rows of the ranked table.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Write every combination with every statistic: CSV, or JSON when the name ends in .json
    /// (`-`: standard output). With --walk-forward: the windows as JSON.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Draw the best metric over two parameters (--heatmap-params) as an SVG heatmap.
    #[arg(long, value_name = "FILE.svg")]
    pub heatmap: Option<PathBuf>,
    /// The heatmap's two parameters, X,Y [default: the first two --param].
    #[arg(long, value_name = "X,Y")]
    pub heatmap_params: Option<String>,
    /// Walk forward: TRAIN:TEST window lengths in bars (2000:500) or time (180d:30d, 12w:4w, 720h:168h).
    #[arg(long, value_name = "TRAIN:TEST")]
    pub walk_forward: Option<String>,
    /// With --walk-forward: every training window starts at the first bar (default: rolling).
    #[arg(long, requires = "walk_forward")]
    pub anchored: bool,
    /// Replace output files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// Most combinations one search runs (each keeps its statistics in memory).
const MAX_COMBINATIONS: u64 = 1_000_000;

/// Runs `optimize`; see the module documentation for the exit statuses.
pub fn run(config_path: Option<&Path>, args: &OptimizeArgs) -> ExitCode {
    exit_status(optimize(config_path, args))
}

/// The setting a parameter name stands for, or `size`.
fn setting_of(name: &str) -> Result<Option<(&'static str, &'static str)>, Failure> {
    if name == "size" {
        return Ok(None);
    }
    PARAMETERS
        .iter()
        .find(|(alias, _, setting)| *alias == name || setting.eq_ignore_ascii_case(name))
        .map(|(_, flag, setting)| Some((*flag, *setting)))
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--param {name}: not a parameter; one of: {}, size",
                PARAMETERS.map(|(a, _, _)| a).join(", ")
            ))
        })
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::Usage(e.to_string())
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the ranked table is this command's output
fn optimize(config_path: Option<&Path>, args: &OptimizeArgs) -> Result<(), Failure> {
    let setup = &args.setup;
    let specs = args
        .params
        .iter()
        .map(|p| parse_param(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    // Every name maps to a setting (or size) before anything runs.
    let settings_of: Vec<Option<(&'static str, &'static str)>> = specs
        .iter()
        .map(|p| setting_of(&p.name))
        .collect::<Result<_, _>>()?;
    let space = Space::new(specs).map_err(usage)?;
    let names: Vec<String> = space.params().iter().map(|p| p.name.clone()).collect();
    let objective = match (&args.maximize, &args.minimize) {
        (_, Some(m)) => Objective {
            metric: Metric::parse(m).map_err(usage)?,
            direction: Direction::Minimise,
        },
        (m, None) => Objective {
            metric: Metric::parse(m.as_deref().unwrap_or("sharpe")).map_err(usage)?,
            direction: Direction::Maximise,
        },
    };
    let constraints = args
        .constraints
        .iter()
        .map(|c| Constraint::parse(c, &names))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    if args.random == Some(0) {
        return Err(usage("--random must be at least 1"));
    }
    let size = space.size().unwrap_or(u64::MAX);
    let searched = args.random.map_or(size, |n| n.min(size));
    if searched > MAX_COMBINATIONS {
        return Err(usage(format!(
            "{} combinations is more than {MAX_COMBINATIONS}: sample them with --random N (and --seed)",
            searched
        )));
    }
    let heatmap_params = match (&args.heatmap, &args.heatmap_params) {
        (None, Some(_)) => return Err(usage("--heatmap-params needs --heatmap FILE.svg")),
        (None, None) => None,
        (Some(_), Some(text)) => {
            let (x, y) = text
                .split_once(',')
                .ok_or_else(|| usage(format!("--heatmap-params {text:?}: expected X,Y")))?;
            Some((normalise_name(x), normalise_name(y)))
        }
        (Some(_), None) => match names.as_slice() {
            [x, y, ..] => Some((x.clone(), y.clone())),
            _ => {
                return Err(usage(
                    "--heatmap needs two parameters: give two --param (or --heatmap-params X,Y)",
                ));
            }
        },
    };
    if args.walk_forward.is_some() && args.heatmap.is_some() {
        return Err(usage(
            "--heatmap draws one search: leave it out with --walk-forward",
        ));
    }
    let walk = args
        .walk_forward
        .as_deref()
        .map(parse_walk_forward)
        .transpose()
        .map_err(usage)?;
    if walk.is_some()
        && let Some(path) = &args.results
        && path.as_os_str() != "-"
        && path.extension().is_none_or(|e| e != "json")
    {
        return Err(usage(format!(
            "--results {}: with --walk-forward the results are JSON: name a .json file",
            path.display()
        )));
    }

    // The base set-up: validated once, so a bad flag is reported once, not per combination.
    let base = setup.settings(config_path, &[], None)?;
    let outputs = Outputs::prepare(
        &[
            (Kind::Results, "--results", args.results.as_deref()),
            (Kind::Heatmap, "--heatmap", args.heatmap.as_deref()),
        ],
        args.force,
        &setup.inputs(config_path),
    )?;
    let (warm_up, bars, sentiment) = setup.market(&base)?;
    let build = |pairs: &[(&str, &str)]| -> Result<Candidate, String> {
        let mut extra = Vec::new();
        let mut size = None;
        for ((_, value), setting) in pairs.iter().zip(&settings_of) {
            match setting {
                Some((flag, name)) => extra.push((*flag, *name, (*value).to_owned())),
                None => size = Some(*value),
            }
        }
        let settings = setup
            .settings(config_path, &extra, size)
            .map_err(|f| match f {
                Failure::Usage(m) | Failure::Io(m) => m.replace('\n', " "),
            })?;
        Ok(Candidate {
            backtest: settings.backtest,
            strategy: settings.strategy,
        })
    };
    let indices = space.indices(args.random.map(|n| (n, args.seed)));
    let market = Market {
        warm_up: &warm_up,
        bars: &bars,
        sentiment: &sentiment,
    };
    let terminal = std::io::stderr().is_terminal();

    if let Some((train, test)) = walk {
        let kind = if args.anchored {
            WindowKind::Anchored
        } else {
            WindowKind::Rolling
        };
        let windows = windows(&bars, train, test, kind);
        if windows.is_empty() {
            return Err(usage(format!(
                "--walk-forward {}: the {} bars hold no training window followed by a test window",
                args.walk_forward.as_deref().unwrap_or_default(),
                bars.len()
            )));
        }
        let bar = progress_bar(terminal, windows.len(), "windows");
        let result = with_threads(args.threads, || {
            walk_forward(
                &space,
                &indices,
                &build,
                market,
                objective,
                &constraints,
                &windows,
                &mut |done, _| {
                    if let Some(bar) = &bar {
                        bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
                    }
                },
            )
        })
        .map_err(usage)?
        .map_err(usage)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let table = format!(
            "Walk-forward over {} bars, {} window(s) ({}), {} combination(s) each, by {}\n{}",
            bars.len(),
            windows.len(),
            if args.anchored { "anchored" } else { "rolling" },
            indices.len(),
            objective.metric.name(),
            result.render_table()
        );
        if outputs.uses_stdout() {
            eprint!("{table}");
        } else {
            print!("{table}");
        }
        let json = result.to_json();
        return outputs.write(|_| {
            let mut bytes = serde_json::to_vec_pretty(&json)
                .map_err(|e| Failure::Io(format!("cannot render the results: {e}")))?;
            bytes.push(b'\n');
            Ok(bytes)
        });
    }

    let bar = progress_bar(terminal, indices.len(), "combinations");
    let result = with_threads(args.threads, || {
        search(
            &space,
            &indices,
            &build,
            market,
            objective,
            &constraints,
            &|done, _| {
                if let Some(bar) = &bar {
                    bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
                }
            },
        )
    })
    .map_err(usage)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let heatmap = match (&heatmap_params, &args.heatmap) {
        (Some((x, y)), Some(_)) => {
            Some(render_heatmap_svg(&result, objective, x, y).map_err(usage)?)
        }
        _ => None,
    };
    let table = format!(
        "Optimised {} of {} combination(s) over {} bars ({} .. {}), {} {}\n{}",
        indices.len(),
        space.size().unwrap_or(u64::MAX),
        bars.len(),
        bars.first()
            .map(|b| b.start.to_string())
            .unwrap_or_default(),
        bars.last().map(|b| b.start.to_string()).unwrap_or_default(),
        match objective.direction {
            Direction::Maximise => "maximising",
            Direction::Minimise => "minimising",
        },
        objective.metric.name(),
        render_ranking(&result, objective, args.top)
    );
    if outputs.uses_stdout() {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    let json_results = args
        .results
        .as_ref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "json"));
    outputs.write(|kind| match kind {
        Kind::Results if json_results => {
            let mut bytes = serde_json::to_vec_pretty(&results_json(&result, objective))
                .map_err(|e| Failure::Io(format!("cannot render the results: {e}")))?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        Kind::Results => {
            let mut bytes = Vec::new();
            write_results_csv(&result, &mut bytes)
                .map_err(|e| Failure::Io(format!("cannot render the results: {e}")))?;
            Ok(bytes)
        }
        Kind::Heatmap => Ok(heatmap.clone().unwrap_or_default().into_bytes()),
        other => Err(Failure::Io(format!("{other:?} is not an optimize output"))),
    })
}

/// A progress bar with an ETA, on a terminal only (logs and pipes get no control characters).
fn progress_bar(terminal: bool, total: usize, what: &str) -> Option<indicatif::ProgressBar> {
    terminal.then(|| {
        let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what}, {{elapsed}} elapsed, ETA {{eta}}"
        )) {
            bar.set_style(style);
        }
        bar
    })
}
