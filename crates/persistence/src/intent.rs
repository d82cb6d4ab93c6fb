//! An order intent as the store holds it. Its own module because both the store (which applies
//! reconciliation plans) and reconciliation (which reads intents) need it: the arrow then runs
//! one way only, `store` → `reconcile` → `intent`.

use domain::{ClientOrderId, IntentStatus, OrderIntent, PositionId, Timestamp};

/// An order intent as stored, with what the broker said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIntent {
    /// The intent (its `status` is the stored one).
    pub intent: OrderIntent,
    /// When the status last changed.
    pub updated_at: Timestamp,
    /// The broker's order id, once known.
    pub broker_order_id: Option<i64>,
    /// The position it opened or closed, once known.
    pub position_id: Option<PositionId>,
    /// Why it ended as it did (rejection text, reconciliation finding).
    pub note: Option<String>,
}

impl StoredIntent {
    /// The client order id.
    pub fn id(&self) -> &ClientOrderId {
        &self.intent.request.client_order_id
    }

    /// The stored status.
    pub fn status(&self) -> IntentStatus {
        self.intent.status
    }
}
