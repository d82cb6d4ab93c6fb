//! One destination's bounded queue: messages about the same thing merge while they wait, and a
//! full queue drops its oldest message (counted) rather than blocking the sender.

use std::collections::VecDeque;

use domain::Timestamp;

use crate::message::Notification;

/// A message waiting to be sent, with how many were merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The newest message of its key.
    pub notification: Notification,
    /// How many messages this one stands for (1 when none merged).
    pub count: u32,
    /// When the first merged message happened.
    pub first_at: Timestamp,
}

/// A bounded, merging FIFO.
#[derive(Debug, Clone)]
pub struct PendingQueue {
    items: VecDeque<Pending>,
    capacity: usize,
}

/// What [`PendingQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued as a new message.
    Queued,
    /// Merged into a waiting message with the same key.
    Merged,
    /// Queued, and the oldest message was dropped to make room.
    DroppedOldest,
}

impl PendingQueue {
    /// An empty queue holding at most `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> PendingQueue {
        PendingQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `notification`: merged into a waiting one with the same key (which keeps its place
    /// in line and takes the newest text), else appended, dropping the oldest when full.
    pub fn push(&mut self, notification: Notification) -> Pushed {
        if let Some(key) = notification.key.as_deref()
            && let Some(waiting) = self
                .items
                .iter_mut()
                .find(|p| p.notification.key.as_deref() == Some(key))
        {
            waiting.count = waiting.count.saturating_add(1);
            waiting.notification = notification;
            return Pushed::Merged;
        }
        let dropped = if self.items.len() >= self.capacity {
            self.items.pop_front();
            true
        } else {
            false
        };
        let first_at = notification.at;
        self.items.push_back(Pending {
            notification,
            count: 1,
            first_at,
        });
        if dropped {
            Pushed::DroppedOldest
        } else {
            Pushed::Queued
        }
    }

    /// The oldest waiting message, removed.
    pub fn pop(&mut self) -> Option<Pending> {
        self.items.pop_front()
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{NotificationKind, Severity};

    fn msg(kind: NotificationKind, at: i64, title: &str) -> Notification {
        Notification::new(kind, Severity::Info, Timestamp(at), title)
    }

    #[test]
    fn same_key_merges_keeping_its_place_and_the_newest_text() {
        let mut q = PendingQueue::new(8);
        assert_eq!(
            q.push(msg(NotificationKind::Disconnected, 1, "down 1")),
            Pushed::Queued
        );
        q.push(msg(NotificationKind::OrderRejected, 2, "rejected"));
        for i in 3..=52 {
            assert_eq!(
                q.push(msg(NotificationKind::Disconnected, i, &format!("down {i}"))),
                Pushed::Merged
            );
        }
        assert_eq!(q.len(), 2);
        let first = q.pop().unwrap();
        assert_eq!(first.notification.title, "down 52");
        assert_eq!(first.count, 51);
        assert_eq!(first.first_at, Timestamp(1));
        assert_eq!(q.pop().unwrap().notification.title, "rejected");
    }

    #[test]
    fn unkeyed_messages_never_merge_and_a_full_queue_drops_the_oldest() {
        let mut q = PendingQueue::new(3);
        for i in 0..3 {
            let n = msg(NotificationKind::OrderFilled, i, &format!("fill {i}")).key(None);
            assert_eq!(q.push(n), Pushed::Queued);
        }
        let n = msg(NotificationKind::OrderFilled, 3, "fill 3").key(None);
        assert_eq!(q.push(n), Pushed::DroppedOldest);
        let titles: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.notification.title)
            .collect();
        assert_eq!(titles, ["fill 1", "fill 2", "fill 3"]);
        assert!(q.is_empty());
    }
}
