//! Maps the bot's validated settings to the strategy crate's configuration, in one place, so a
//! strategy or risk parameter means the same in `run`, `demo` and `backtest`.
//!
//! Settings the bot does not expose keep the strategy crate's defaults on purpose: sentiment
//! never scales a position up (`max_size_pct` 100) and any confidence counts (`min_confidence` 0).

use strategy::{RiskConfig, RsiSentimentConfig, SentimentPolicy, SentimentRules, SizingRule};

use crate::config::{Config, RiskSettings, SentimentPolicySetting, StrategySettings};

/// A setting that passed the bot's validation but cannot be expressed in the strategy's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct StrategySetupError {
    /// The setting's name (as in the environment and the README).
    pub setting: &'static str,
    /// Why it cannot be used.
    pub reason: String,
}

impl StrategySetupError {
    fn new(setting: &'static str, reason: impl Into<String>) -> StrategySetupError {
        StrategySetupError {
            setting,
            reason: reason.into(),
        }
    }

    /// A configuration problem: retrying never helps.
    pub const fn is_transient(&self) -> bool {
        false
    }
}

/// Strategy and risk configuration derived from one [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct StrategySetup {
    /// The RSI-sentiment strategy's settings (validated).
    pub strategy: RsiSentimentConfig,
    /// Sizing and kill-switch limits.
    pub risk: RiskConfig,
}

/// Both halves at once: what `run`, `demo` and `backtest` all start from.
pub fn strategy_setup(config: &Config) -> Result<StrategySetup, StrategySetupError> {
    Ok(StrategySetup {
        strategy: strategy_config(&config.strategy)?,
        risk: risk_config(&config.risk)?,
    })
}

/// The strategy's settings; the result has passed [`RsiSentimentConfig::validate`].
pub fn strategy_config(s: &StrategySettings) -> Result<RsiSentimentConfig, StrategySetupError> {
    let rsi_period = u32::try_from(s.rsi_period)
        .map_err(|_| StrategySetupError::new("RSI_PERIOD", "too large"))?;
    let config = RsiSentimentConfig {
        rsi_period,
        oversold: s.oversold,
        overbought: s.overbought,
        long_only: s.long_only,
        stop_loss: Some(s.stop_loss),
        take_profit: Some(s.take_profit),
        sentiment: sentiment_rules(s)?,
    };
    config.validate().map_err(|e| {
        // Name the bot's setting rather than the strategy's internal field.
        let setting = match e.setting {
            "rsi period" => "RSI_PERIOD",
            "rsi levels" => "RSI_OVERSOLD",
            "stop loss" => "STOP_LOSS",
            "take profit" => "TAKE_PROFIT",
            "sentiment veto threshold" => "SENTIMENT_VETO",
            "sentiment max age" => "SENTIMENT_MAX_AGE",
            _ => "strategy",
        };
        StrategySetupError::new(setting, e.to_string())
    })?;
    Ok(config)
}

/// How sentiment tempers entries.
pub fn sentiment_rules(s: &StrategySettings) -> Result<SentimentRules, StrategySetupError> {
    let max_age_ms = s
        .sentiment_max_age_secs
        .checked_mul(1000)
        .and_then(|ms| i64::try_from(ms).ok())
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            StrategySetupError::new(
                "SENTIMENT_MAX_AGE",
                format!(
                    "{} s must be positive and at most {} s",
                    s.sentiment_max_age_secs,
                    i64::MAX / 1000
                ),
            )
        })?;
    if !s.sentiment_veto.is_finite() || s.sentiment_veto < 0.0 {
        return Err(StrategySetupError::new(
            "SENTIMENT_VETO",
            format!("{} must be a number from 0", s.sentiment_veto),
        ));
    }
    Ok(SentimentRules {
        // Agreement (score x confidence) never goes below -1, so 1 means "never veto"; the
        // settings allow 0 to 1 (as documented), the cap only guards hand-built settings.
        veto_threshold: s.sentiment_veto.min(1.0),
        max_size_pct: 100,
        max_age_ms,
        min_confidence: 0.0,
        policy: match s.sentiment_policy {
            SentimentPolicySetting::Ignore => SentimentPolicy::Ignore,
            SentimentPolicySetting::StandAside => SentimentPolicy::StandAside,
        },
    })
}

/// Sizing and the kill-switch limits: risk sizing when `RISK_PER_TRADE` is set, else the fixed
/// `ORDER_VOLUME`.
pub fn risk_config(r: &RiskSettings) -> Result<RiskConfig, StrategySetupError> {
    let sizing = match r.risk_per_trade {
        Some(fraction) => SizingRule::RiskFraction {
            bps: fraction_to_bps("RISK_PER_TRADE", fraction)?,
        },
        None if r.order_volume.is_positive() => SizingRule::Fixed(r.order_volume),
        None => {
            return Err(StrategySetupError::new(
                "ORDER_VOLUME",
                format!("{} must be positive", r.order_volume),
            ));
        }
    };
    Ok(RiskConfig {
        sizing,
        daily_loss_limit_bps: Some(fraction_to_bps("DAILY_LOSS_LIMIT", r.daily_loss_limit)?),
        max_drawdown_bps: Some(fraction_to_bps("MAX_DRAWDOWN", r.max_drawdown)?),
    })
}

/// A fraction (0.03 = 3%) in whole basis points, rounded to the nearest; 1 to 10,000 only.
pub fn fraction_to_bps(setting: &'static str, fraction: f64) -> Result<u32, StrategySetupError> {
    let bps = (fraction * 10_000.0).round();
    if !(1.0..=10_000.0).contains(&bps) {
        return Err(StrategySetupError::new(
            setting,
            format!("{fraction} must be between 0.0001 (1 basis point) and 1"),
        ));
    }
    // 1 <= bps <= 10000 and whole after round(): the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bps as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Price, Volume};

    fn config(pairs: &[(&str, &str)]) -> Config {
        crate::config::test_support::config_from(pairs).unwrap()
    }

    #[test]
    fn defaults_map_to_the_documented_strategy_and_risk() {
        let setup = strategy_setup(&config(&[])).unwrap();
        let s = &setup.strategy;
        assert_eq!(s.rsi_period, 14);
        assert_eq!((s.oversold, s.overbought), (30.0, 70.0));
        assert!(!s.long_only);
        assert_eq!(s.stop_loss, Some(Price(4_000_000)));
        assert_eq!(s.take_profit, Some(Price(8_000_000)));
        assert_eq!(s.sentiment.veto_threshold, 0.3);
        assert_eq!(s.sentiment.max_age_ms, 7_200_000);
        assert_eq!(s.sentiment.policy, SentimentPolicy::Ignore);
        assert_eq!(s.sentiment.max_size_pct, 100);
        assert_eq!(setup.risk.sizing, SizingRule::Fixed(Volume(100)));
        assert_eq!(setup.risk.daily_loss_limit_bps, Some(300));
        assert_eq!(setup.risk.max_drawdown_bps, Some(1_000));
    }

    #[test]
    fn every_setting_reaches_the_strategy() {
        let setup = strategy_setup(&config(&[
            ("RSI_PERIOD", "21"),
            ("RSI_OVERSOLD", "25.5"),
            ("RSI_OVERBOUGHT", "80"),
            ("LONG_ONLY", "true"),
            ("STOP_LOSS", "12.5"),
            ("TAKE_PROFIT", "30"),
            ("SENTIMENT_VETO", "0.45"),
            ("SENTIMENT_POLICY", "stand_aside"),
            ("SENTIMENT_MAX_AGE", "600"),
            ("RISK_PER_TRADE", "0.0125"),
            ("DAILY_LOSS_LIMIT", "0.05"),
            ("MAX_DRAWDOWN", "0.2"),
        ]))
        .unwrap();
        let s = &setup.strategy;
        assert_eq!(s.rsi_period, 21);
        assert_eq!((s.oversold, s.overbought), (25.5, 80.0));
        assert!(s.long_only);
        assert_eq!(s.stop_loss, Some(Price(1_250_000)));
        assert_eq!(s.take_profit, Some(Price(3_000_000)));
        assert_eq!(s.sentiment.veto_threshold, 0.45);
        assert_eq!(s.sentiment.policy, SentimentPolicy::StandAside);
        assert_eq!(s.sentiment.max_age_ms, 600_000);
        // Risk sizing wins over ORDER_VOLUME when set.
        assert_eq!(setup.risk.sizing, SizingRule::RiskFraction { bps: 125 });
        assert_eq!(setup.risk.daily_loss_limit_bps, Some(500));
        assert_eq!(setup.risk.max_drawdown_bps, Some(2_000));
    }

    #[test]
    fn a_veto_of_one_means_never_veto() {
        let setup = strategy_setup(&config(&[("SENTIMENT_VETO", "1")])).unwrap();
        assert_eq!(setup.strategy.sentiment.veto_threshold, 1.0);
        // Above the documented range it is a setting problem (issue 14), not a silent cap.
        assert!(crate::config::test_support::config_from(&[("SENTIMENT_VETO", "2")]).is_err());
    }

    #[test]
    fn settings_the_strategy_cannot_use_are_named() {
        // The settings refuse 0 already; the mapping names it too for hand-built settings.
        let mut zero_age = config(&[]);
        zero_age.strategy.sentiment_max_age_secs = 0;
        let err = strategy_setup(&zero_age).unwrap_err();
        assert_eq!(err.setting, "SENTIMENT_MAX_AGE");
        // Accepted by the bot (above 0) but below one basis point.
        let err = strategy_setup(&config(&[("DAILY_LOSS_LIMIT", "0.00001")])).unwrap_err();
        assert_eq!(err.setting, "DAILY_LOSS_LIMIT");
        assert!(err.to_string().contains("basis point"), "{err}");
    }

    #[test]
    fn fractions_round_to_the_nearest_basis_point() {
        assert_eq!(fraction_to_bps("X", 0.03).unwrap(), 300);
        assert_eq!(fraction_to_bps("X", 0.10).unwrap(), 1_000);
        assert_eq!(fraction_to_bps("X", 0.000_06).unwrap(), 1);
        assert_eq!(fraction_to_bps("X", 1.0).unwrap(), 10_000);
        assert!(fraction_to_bps("X", 1.5).is_err());
        assert!(fraction_to_bps("X", f64::NAN).is_err());
        assert!(fraction_to_bps("X", -0.1).is_err());
    }
}
