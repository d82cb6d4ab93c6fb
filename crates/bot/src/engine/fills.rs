//! Execution events the broker sends on its own: stop-loss and take-profit hits, stop-outs,
//! positions closed by a person, and the later deals of our own orders when they fill in parts
//! (the first deal answers the order in `orders.rs`; the client never hands an answer over twice,
//! and a deal the broker repeats is recorded once, by deal id).

use std::collections::HashSet;

use ctrader_client::{Broker, ExecutionKind, ExecutionReport};
use domain::PositionStatus;
use persistence::FillRecorded;

use super::{Engine, EngineError};

impl<B: Broker + 'static> Engine<B> {
    pub(super) async fn on_execution(
        &mut self,
        report: ExecutionReport,
    ) -> Result<(), EngineError> {
        let Some(fill) = report.fill.clone() else {
            // An order's acceptance says nothing yet about what the position holds.
            if report.kind == ExecutionKind::Accepted {
                return Ok(());
            }
            if let (Some(ours), Some(bp)) = (self.position.as_mut(), report.position.as_ref())
                && ours.id == bp.id
            {
                // An amendment (SL/TP), a swap charge or a partial change: the broker's view wins.
                ours.stop_loss = bp.stop_loss;
                ours.take_profit = bp.take_profit;
                ours.volume = bp.volume;
                self.money.set_charges(bp);
            }
            return Ok(());
        };
        let Some(mut position) = self.position.clone().filter(|p| p.id == fill.position_id) else {
            let ours = report
                .position
                .as_ref()
                .and_then(|p| p.label.as_deref())
                .is_some_and(|l| self.settings.label_prefix.is_ours(l));
            match self.store.position(fill.position_id).await {
                Ok(None) if ours => {
                    // A fill of ours we have no record of (e.g. the answer to an order was lost).
                    self.pause(super::Pause::NeedsReconcile(format!(
                        "fill {} on unknown position {} of ours; reconciling",
                        fill.deal_id, fill.position_id
                    )));
                    // A failure keeps trading paused; the tick retries it.
                    let _ = self.reconcile_now("unknown fill").await;
                }
                Ok(Some(stored))
                    if stored.status == PositionStatus::Closed && stored.exit_price.is_some() =>
                {
                    // A late deal of a position already closed here: the later parts of an
                    // order that filled in parts, queued behind a stop-loss's close or a
                    // reconciliation. Every deal is stored once, whenever it comes.
                    let recorded = match self.store.record_fill(&fill, &stored).await {
                        Ok(r) => r,
                        Err(e) => return Err(self.store_failed(e)),
                    };
                    if recorded == FillRecorded::New {
                        tracing::info!(
                            deal_id = fill.deal_id,
                            position_id = fill.position_id.0,
                            "late deal of a closed position recorded"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(self.store_failed(e)),
            }
            return Ok(());
        };
        if report.position_closed {
            // The rest of our own closing order, filled in parts, closed it: the strategy did.
            let ours = fill
                .client_order_id
                .as_ref()
                .filter(|c| self.settings.label_prefix.is_ours(c.as_str()));
            let own: HashSet<&domain::ClientOrderId> = ours.into_iter().collect();
            let (reason, _) = persistence::infer_close_reason(
                position.side,
                position.stop_loss,
                position.take_profit,
                &fill,
                &own,
            );
            position.status = PositionStatus::Closed;
            position.exit_price = Some(fill.price);
            position.exit_time = Some(fill.time);
            position.pnl = fill.close.as_ref().and_then(domain::realized_pnl);
            position.close_reason = Some(reason);
        } else if let Some(bp) = &report.position {
            position.volume = bp.volume;
            position.stop_loss = bp.stop_loss;
            position.take_profit = bp.take_profit;
            self.money.set_charges(bp);
        }
        let recorded = match self.store.record_fill(&fill, &position).await {
            Ok(r) => r,
            Err(e) => return Err(self.store_failed(e)),
        };
        if recorded == FillRecorded::AlreadyRecorded {
            return Ok(());
        }
        if let Some(balance) = fill.close.as_ref().map(|c| c.balance) {
            self.money.balance = balance;
            self.mark_closing_balance(balance, fill.time);
        }
        if position.status == PositionStatus::Closed {
            self.settle(&mut position).await?;
        }
        self.publish_fill(&fill, &position, None);
        if position.status == PositionStatus::Closed {
            self.position = None;
            self.money.clear_charges();
            // A realized loss counts against the kill switch's limits at once, not at the next
            // bar. Broker time, like the bars': the kill switch's UTC day must follow one clock.
            return self.observe_equity(fill.time).await;
        }
        self.position = Some(position);
        Ok(())
    }
}
