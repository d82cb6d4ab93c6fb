//! What `palm-oil-bot reconcile`, `positions` and `trades` print: each report is a readable
//! table (`Display`) and a serde value (for `--json`). Amounts are decimal strings so JSON keeps
//! them exact.

use std::fmt;

use domain::{CloseReason, Fill, Position};
use serde::Serialize;

use crate::reconcile::ReconcilePlan;

/// One correction, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorrectionRow {
    /// Kind of correction.
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// State before.
    pub before: String,
    /// State after.
    pub after: String,
    /// Why.
    pub why: String,
    /// Wants a person's attention.
    pub flagged: bool,
}

/// A position at the broker that is not ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignPositionRow {
    /// Broker position id.
    pub position_id: i64,
    /// Symbol id.
    pub symbol_id: i64,
    /// buy or sell.
    pub side: String,
    /// Volume in units.
    pub volume: String,
    /// Entry price.
    pub entry_price: String,
    /// Its label, if any.
    pub label: Option<String>,
}

/// Someone else's open volume on one symbol and side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureRow {
    /// Symbol id.
    pub symbol_id: i64,
    /// buy or sell.
    pub side: String,
    /// Total volume in units.
    pub volume: String,
    /// Number of positions.
    pub positions: usize,
}

/// The outcome of one reconciliation, for people and for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// False for a dry run: nothing was written.
    pub applied: bool,
    /// When the broker's snapshot was taken (RFC 3339).
    pub snapshot_taken_at: String,
    /// Stored open positions that matched the broker.
    pub in_sync: usize,
    /// Corrections made (or that would be made).
    pub corrections: Vec<CorrectionRow>,
    /// How many corrections are flagged.
    pub flagged: usize,
    /// Positions that are not ours: never touched.
    pub foreign_positions: Vec<ForeignPositionRow>,
    /// Their exposure per symbol and side.
    pub foreign_exposure: Vec<ExposureRow>,
    /// Findings that changed nothing.
    pub warnings: Vec<String>,
    /// The deal watermark after this reconciliation.
    pub deals_until: Option<String>,
}

impl ReconcileReport {
    /// The report of `plan`; `applied` says whether it was written.
    pub fn new(plan: &ReconcilePlan, applied: bool) -> ReconcileReport {
        ReconcileReport {
            applied,
            snapshot_taken_at: plan.taken_at.to_string(),
            in_sync: plan.in_sync,
            corrections: plan
                .corrections
                .iter()
                .map(|c| CorrectionRow {
                    kind: c.kind().to_owned(),
                    subject: c.subject(),
                    before: c.before(),
                    after: c.after(),
                    why: c.why(),
                    flagged: c.flagged(),
                })
                .collect(),
            flagged: plan.flagged(),
            foreign_positions: plan
                .foreign
                .iter()
                .map(|p| ForeignPositionRow {
                    position_id: p.id.0,
                    symbol_id: p.symbol.0,
                    side: p.side.as_str().to_owned(),
                    volume: p.volume.to_string(),
                    entry_price: p.entry_price.to_string(),
                    label: p.label.clone(),
                })
                .collect(),
            foreign_exposure: plan
                .foreign_exposure()
                .into_iter()
                .map(|e| ExposureRow {
                    symbol_id: e.symbol.0,
                    side: e.side.as_str().to_owned(),
                    volume: e.volume.to_string(),
                    positions: e.positions,
                })
                .collect(),
            warnings: plan.warnings.clone(),
            deals_until: plan.deals_until.map(|t| t.to_string()),
        }
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.applied {
            "applied"
        } else {
            "dry run, nothing written"
        };
        writeln!(
            f,
            "Reconciliation against the broker snapshot of {} ({mode})",
            self.snapshot_taken_at
        )?;
        writeln!(
            f,
            "{} position(s) in sync, {} correction(s), {} flagged, {} foreign position(s)",
            self.in_sync,
            self.corrections.len(),
            self.flagged,
            self.foreign_positions.len()
        )?;
        if !self.corrections.is_empty() {
            writeln!(f)?;
            let rows: Vec<Vec<String>> = self
                .corrections
                .iter()
                .map(|c| {
                    vec![
                        if c.flagged {
                            "!".to_owned()
                        } else {
                            String::new()
                        },
                        c.kind.clone(),
                        c.subject.clone(),
                        c.before.clone(),
                        c.after.clone(),
                        c.why.clone(),
                    ]
                })
                .collect();
            write_table(
                f,
                &["", "CORRECTION", "SUBJECT", "BEFORE", "AFTER", "WHY"],
                &rows,
            )?;
        }
        if !self.foreign_positions.is_empty() {
            writeln!(f, "\nNot ours (never touched, counted as exposure):")?;
            let rows: Vec<Vec<String>> = self
                .foreign_positions
                .iter()
                .map(|p| {
                    vec![
                        p.position_id.to_string(),
                        p.symbol_id.to_string(),
                        p.side.clone(),
                        p.volume.clone(),
                        p.entry_price.clone(),
                        p.label.clone().unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            write_table(
                f,
                &["POSITION", "SYMBOL", "SIDE", "VOLUME", "ENTRY", "LABEL"],
                &rows,
            )?;
            let rows: Vec<Vec<String>> = self
                .foreign_exposure
                .iter()
                .map(|e| {
                    vec![
                        e.symbol_id.to_string(),
                        e.side.clone(),
                        e.volume.clone(),
                        e.positions.to_string(),
                    ]
                })
                .collect();
            writeln!(f, "\nForeign exposure:")?;
            write_table(f, &["SYMBOL", "SIDE", "VOLUME", "POSITIONS"], &rows)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// One stored position, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionRow {
    /// Broker position id.
    pub position_id: i64,
    /// Symbol id.
    pub symbol_id: i64,
    /// buy or sell.
    pub side: String,
    /// Volume in units.
    pub volume: String,
    /// Entry price.
    pub entry_price: String,
    /// Entry time (RFC 3339).
    pub entry_time: String,
    /// Stop-loss.
    pub stop_loss: Option<String>,
    /// Take-profit.
    pub take_profit: Option<String>,
    /// open or closed.
    pub status: String,
    /// Exit price.
    pub exit_price: Option<String>,
    /// Exit time (RFC 3339).
    pub exit_time: Option<String>,
    /// Realised net PnL.
    pub pnl: Option<String>,
    /// Why it closed (`unknown` when closed without a known reason).
    pub close_reason: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Client order id of the opening order.
    pub client_order_id: Option<String>,
}

/// Stored positions, for `palm-oil-bot positions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionsReport {
    /// The account currency every PnL is in (`None` when the store does not record it yet).
    pub currency: Option<String>,
    /// The positions, newest first.
    pub positions: Vec<PositionRow>,
}

impl PositionsReport {
    /// The report of `positions`.
    pub fn new(positions: &[Position], currency: Option<String>) -> PositionsReport {
        PositionsReport {
            currency,
            positions: positions
                .iter()
                .map(|p| {
                    let closed = p.status == domain::PositionStatus::Closed;
                    PositionRow {
                        position_id: p.id.0,
                        symbol_id: p.symbol.0,
                        side: p.side.as_str().to_owned(),
                        volume: p.volume.to_string(),
                        entry_price: p.entry_price.to_string(),
                        entry_time: p.entry_time.to_string(),
                        stop_loss: p.stop_loss.map(|v| v.to_string()),
                        take_profit: p.take_profit.map(|v| v.to_string()),
                        status: p.status.as_str().to_owned(),
                        exit_price: p.exit_price.map(|v| v.to_string()),
                        exit_time: p.exit_time.map(|v| v.to_string()),
                        pnl: p.pnl.map(|v| v.to_string()),
                        close_reason: match p.close_reason {
                            Some(r) => Some(r.as_str().to_owned()),
                            None if closed => Some("unknown".to_owned()),
                            None => None,
                        },
                        label: p.label.clone(),
                        client_order_id: p.client_order_id.as_ref().map(ToString::to_string),
                    }
                })
                .collect(),
        }
    }
}

impl fmt::Display for PositionsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.positions.is_empty() {
            return writeln!(f, "No positions stored.");
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let rows: Vec<Vec<String>> = self
            .positions
            .iter()
            .map(|p| {
                vec![
                    p.position_id.to_string(),
                    p.status.clone(),
                    p.side.clone(),
                    p.volume.clone(),
                    p.entry_time.clone(),
                    p.entry_price.clone(),
                    dash(&p.stop_loss),
                    dash(&p.take_profit),
                    dash(&p.exit_price),
                    dash(&p.pnl),
                    dash(&p.close_reason),
                    dash(&p.client_order_id),
                ]
            })
            .collect();
        let pnl = in_currency("PNL", self.currency.as_deref());
        write_table(
            f,
            &[
                "POSITION",
                "STATUS",
                "SIDE",
                "VOLUME",
                "ENTRY TIME",
                "ENTRY",
                "SL",
                "TP",
                "EXIT",
                &pnl,
                "REASON",
                "CLIENT ORDER",
            ],
            &rows,
        )
    }
}

/// One stored fill (deal), as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeRow {
    /// Broker deal id.
    pub deal_id: i64,
    /// Broker order id.
    pub order_id: i64,
    /// Position it opened or closed.
    pub position_id: i64,
    /// Time (RFC 3339).
    pub time: String,
    /// buy or sell.
    pub side: String,
    /// Volume in units.
    pub volume: String,
    /// Execution price.
    pub price: String,
    /// Commission.
    pub commission: String,
    /// `open` or `close`.
    pub effect: String,
    /// For a closing deal: net PnL of the closed volume (gross + swap + commission).
    pub net_pnl: Option<String>,
    /// For a closing deal: why, when the broker said.
    pub close_reason: Option<String>,
    /// Our client order id, when the order was ours.
    pub client_order_id: Option<String>,
}

/// Stored fills, for `palm-oil-bot trades`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradesReport {
    /// The account currency every commission and PnL is in (`None` when not recorded yet).
    pub currency: Option<String>,
    /// The fills, newest first.
    pub trades: Vec<TradeRow>,
}

impl TradesReport {
    /// The report of `fills`.
    pub fn new(fills: &[Fill], currency: Option<String>) -> TradesReport {
        TradesReport {
            currency,
            trades: fills
                .iter()
                .map(|d| TradeRow {
                    deal_id: d.deal_id,
                    order_id: d.order_id,
                    position_id: d.position_id.0,
                    time: d.time.to_string(),
                    side: d.side.as_str().to_owned(),
                    volume: d.volume.to_string(),
                    price: d.price.to_string(),
                    commission: d.commission.to_string(),
                    effect: if d.close.is_some() { "close" } else { "open" }.to_owned(),
                    net_pnl: d
                        .close
                        .as_ref()
                        .and_then(domain::realized_pnl)
                        .map(|m| m.to_string()),
                    close_reason: d
                        .close
                        .as_ref()
                        .and_then(|c| c.close_reason.map(CloseReason::as_str))
                        .map(str::to_owned),
                    client_order_id: d.client_order_id.as_ref().map(ToString::to_string),
                })
                .collect(),
        }
    }
}

impl fmt::Display for TradesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.trades.is_empty() {
            return writeln!(f, "No trades stored.");
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        let rows: Vec<Vec<String>> = self
            .trades
            .iter()
            .map(|t| {
                vec![
                    t.deal_id.to_string(),
                    t.time.clone(),
                    t.position_id.to_string(),
                    t.effect.clone(),
                    t.side.clone(),
                    t.volume.clone(),
                    t.price.clone(),
                    t.commission.clone(),
                    dash(&t.net_pnl),
                    dash(&t.close_reason),
                    dash(&t.client_order_id),
                ]
            })
            .collect();
        let (commission, pnl) = (
            in_currency("COMMISSION", self.currency.as_deref()),
            in_currency("NET PNL", self.currency.as_deref()),
        );
        write_table(
            f,
            &[
                "DEAL",
                "TIME",
                "POSITION",
                "EFFECT",
                "SIDE",
                "VOLUME",
                "PRICE",
                &commission,
                &pnl,
                "REASON",
                "CLIENT ORDER",
            ],
            &rows,
        )
    }
}

/// Writes left-aligned columns separated by two spaces, each as wide as its widest cell.
/// A money column's header with its currency, e.g. `PNL (USD)`.
fn in_currency(header: &str, currency: Option<&str>) -> String {
    match currency {
        Some(code) => format!("{header} ({code})"),
        None => header.to_owned(),
    }
}

fn write_table(f: &mut fmt::Formatter<'_>, headers: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(cell.chars().count()),
            ));
        }
        writeln!(f, "{}", text.trim_end())
    };
    line(f, &mut headers.iter().copied())?;
    for row in rows {
        line(f, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}
