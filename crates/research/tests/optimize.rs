//! Parameter search over the shipped sample: the same results whatever the thread count, shared
//! RSI series giving exactly the live strategy's results, constraints, ranking, outputs and
//! walk-forward windows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::{Bar, Money, Price};
use research::{
    Candidate, Constraint, Direction, Market, Metric, Objective, OhlcOptions, Space, Span, Status,
    WindowKind, parse_param, read_ohlc_csv, render_heatmap_svg, render_ranking, results_json,
    search, walk_forward, windows, with_threads, write_results_csv,
};
use strategy::backtest::{BacktestConfig, Backtester};
use strategy::{RiskConfig, RsiSentimentConfig, RsiSentimentStrategy, SizingRule};

fn bars() -> Vec<Bar> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/backtest/fcpo-h1-sample.csv"
    );
    read_ohlc_csv(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        &OhlcOptions::default(),
    )
    .unwrap()
}

/// What `bot` does with its settings, in miniature: each parameter sets one field.
fn build(pairs: &[(&str, &str)]) -> Result<Candidate, String> {
    let mut strategy = RsiSentimentConfig {
        stop_loss: Some(Price(4_000_000)),
        take_profit: Some(Price(8_000_000)),
        ..RsiSentimentConfig::default()
    };
    let mut backtest = BacktestConfig {
        spread: Price(100_000),
        commission_per_fill: Money::new(250, 2),
        risk: RiskConfig {
            sizing: SizingRule::AllCash,
            daily_loss_limit_bps: None,
            max_drawdown_bps: Some(1_000),
        },
        ..BacktestConfig::default()
    };
    for (name, value) in pairs {
        let number = || value.parse::<f64>().map_err(|e| format!("{name}: {e}"));
        match *name {
            "rsi_period" => strategy.rsi_period = value.parse().map_err(|e| format!("{e}"))?,
            "oversold" => strategy.oversold = number()?,
            "overbought" => strategy.overbought = number()?,
            "stop_loss" => {
                strategy.stop_loss = Some(Price::parse(value).map_err(|e| e.to_string())?)
            }
            "max_drawdown" => {
                backtest.risk.max_drawdown_bps = Some(value.parse().map_err(|e| format!("{e}"))?)
            }
            other => return Err(format!("unknown {other}")),
        }
    }
    strategy.validate().map_err(|e| e.to_string())?;
    Ok(Candidate { backtest, strategy })
}

fn space() -> Space {
    Space::new(vec![
        parse_param("rsi_period=7..21:7").unwrap(),
        parse_param("oversold=20,25,30,75").unwrap(),
        parse_param("stop_loss=20..60:20").unwrap(),
    ])
    .unwrap()
}

const SHARPE: Objective = Objective {
    metric: Metric::Sharpe,
    direction: Direction::Maximise,
};

#[test]
fn results_do_not_depend_on_the_thread_count_and_match_the_live_strategy() {
    let bars = bars();
    let space = space();
    let indices = space.indices(None);
    let params: Vec<String> = space.params().iter().map(|p| p.name.clone()).collect();
    let constraints = vec![
        Constraint::parse("trades >= 10", &params).unwrap(),
        Constraint::parse("stop_loss != 40", &params).unwrap(),
    ];
    let market = Market {
        warm_up: &[],
        bars: &bars,
        sentiment: &[],
    };
    let run = |threads| {
        with_threads(Some(threads), || {
            search(
                &space,
                &indices,
                &build,
                market,
                SHARPE,
                &constraints,
                &|_, _| {},
            )
        })
        .unwrap()
    };
    let one = run(1);
    let three = run(3);
    assert_eq!(one, three);
    assert_eq!(one.outcomes.len(), 36);

    // stop_loss 40 is excluded before anything else (12 combinations); oversold 75 is above
    // overbought 70: invalid, not run (6 more).
    let count = |f: &dyn Fn(&Status) -> bool| one.outcomes.iter().filter(|o| f(&o.status)).count();
    assert_eq!(count(&|s| matches!(s, Status::Excluded(_))), 12);
    assert_eq!(count(&|s| matches!(s, Status::Invalid(_))), 6);
    assert_eq!(count(&|s| matches!(s, Status::Ran { .. })), 18);
    assert_eq!(one.bar_evaluations, 18 * bars.len() as u64);
    // 18 runs over three RSI periods: three series, each shared by six runs.
    assert_eq!(one.rsi_series, 3);
    assert!(!one.ranking.is_empty());

    // Ranked best first by Sharpe; only runs that met the constraints.
    let sharpes: Vec<f64> = one
        .ranking
        .iter()
        .map(|&i| one.outcomes[i].report().unwrap().sharpe.unwrap())
        .collect();
    assert!(sharpes.windows(2).all(|w| w[0] >= w[1]), "{sharpes:?}");
    for &i in &one.ranking {
        assert!(one.outcomes[i].report().unwrap().trade_count >= 10);
    }

    // A shared RSI series gives exactly what the strategy computing its own RSI gives.
    for o in one.outcomes.iter().filter(|o| o.report().is_some()).take(4) {
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(String::as_str)
            .zip(o.values.iter().map(String::as_str))
            .collect();
        let c = build(&pairs).unwrap();
        let mut live = RsiSentimentStrategy::new(c.strategy).unwrap();
        let mut direct = Backtester::new(c.backtest)
            .unwrap()
            .run(&mut live, &bars, &[], &mut |_, _| {})
            .unwrap()
            .report;
        direct.trades.clear();
        assert_eq!(o.report(), Some(&direct), "{:?}", o.values);
    }

    // Outputs: every combination in the CSV and the JSON, a ranked table, a heatmap.
    let mut csv = Vec::new();
    write_results_csv(&one, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 37);
    assert!(csv.starts_with("index,rank,rsi_period,oversold,stop_loss,status,bars,"));
    assert!(csv.contains(",invalid,"), "{csv}");
    let json = results_json(&one, SHARPE);
    assert_eq!(json["combinations"].as_array().unwrap().len(), 36);
    assert_eq!(json["combinations"][0]["params"]["rsi_period"], "7");
    let table = render_ranking(&one, SHARPE, 5);
    assert!(table.lines().next().unwrap().contains("sharpe"), "{table}");
    assert!(table.contains("36 combination(s)"), "{table}");
    let svg = render_heatmap_svg(&one, SHARPE, "rsi_period", "oversold").unwrap();
    assert!(svg.contains(">rsi_period</text>") && svg.contains(">oversold</text>"));
    assert!(render_heatmap_svg(&one, SHARPE, "rsi_period", "rsi_period").is_err());
    assert!(render_heatmap_svg(&one, SHARPE, "rsi_period", "nope").is_err());
}

#[test]
fn a_seeded_random_search_is_reproducible() {
    let bars = bars();
    let space = space();
    let indices = space.indices(Some((10, 42)));
    assert_eq!(indices.len(), 10);
    let market = Market {
        warm_up: &[],
        bars: &bars[..800],
        sentiment: &[],
    };
    let a = search(&space, &indices, &build, market, SHARPE, &[], &|_, _| {});
    let b = with_threads(Some(2), || {
        search(&space, &indices, &build, market, SHARPE, &[], &|_, _| {})
    })
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.outcomes.iter().map(|o| o.index).collect::<Vec<_>>(),
        indices
    );
}

#[test]
fn walk_forward_trades_each_winner_out_of_sample() {
    let bars = bars();
    let space = Space::new(vec![
        parse_param("rsi_period=7,14").unwrap(),
        parse_param("oversold=25,30").unwrap(),
    ])
    .unwrap();
    let indices = space.indices(None);
    let objective = Objective {
        metric: Metric::Return,
        direction: Direction::Maximise,
    };
    let w = windows(
        &bars,
        Span::Bars(1000),
        Span::Bars(500),
        WindowKind::Rolling,
    );
    assert_eq!(w.len(), 5, "1000..3150 in steps of 500");
    let mut calls = 0;
    let result = walk_forward(
        &space,
        &indices,
        &build,
        Market {
            warm_up: &[],
            bars: &bars,
            sentiment: &[],
        },
        objective,
        &[],
        &w,
        &mut |_, _| calls += 1,
    )
    .unwrap();
    assert_eq!(calls, 5);
    assert_eq!(result.windows.len(), 5);
    // The stitched out-of-sample equity covers every test bar once, in order.
    assert_eq!(result.equity.len(), bars.len() - 1000);
    assert!(result.equity.windows(2).all(|p| p[0].time < p[1].time));
    for win in &result.windows {
        let best = win.best.as_ref().unwrap();
        let is = win.in_sample.as_ref().unwrap();
        let oos = win.out_of_sample.as_ref().unwrap();
        assert_eq!(is.first_bar, bars[win.window.train.start].start);
        assert_eq!(oos.first_bar, bars[win.window.test.start].start);
        assert_eq!(best.len(), 2);
    }
    // Each test window starts from the equity the previous one ended with.
    for pair in result.windows.windows(2) {
        let (a, b) = (
            pair[0].out_of_sample.as_ref().unwrap(),
            pair[1].out_of_sample.as_ref().unwrap(),
        );
        assert_eq!(b.initial_equity, a.final_equity);
    }
    let table = result.render_table();
    assert!(table.contains("Walk-forward efficiency"), "{table}");
    let json = result.to_json();
    assert_eq!(json["windows"].as_array().unwrap().len(), 5);
}

#[test]
fn warm_up_bars_warm_the_shared_rsi_as_they_warm_the_live_one() {
    let all = bars();
    let (warm, traded) = all.split_at(1500);
    let space = Space::new(vec![parse_param("rsi_period=7,14").unwrap()]).unwrap();
    let indices = space.indices(None);
    let market = Market {
        warm_up: warm,
        bars: traded,
        sentiment: &[],
    };
    let result = search(&space, &indices, &build, market, SHARPE, &[], &|_, _| {});
    for o in &result.outcomes {
        let c = build(&[("rsi_period", o.values[0].as_str())]).unwrap();
        let mut live = RsiSentimentStrategy::new(c.strategy.clone()).unwrap();
        strategy::Strategy::warm_up(&mut live, warm);
        let mut direct = Backtester::new(c.backtest.clone())
            .unwrap()
            .run(&mut live, traded, &[], &mut |_, _| {})
            .unwrap()
            .report;
        direct.trades.clear();
        assert_eq!(o.report(), Some(&direct));
    }
}
