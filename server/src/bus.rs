//! The internal live bus: typed messages published after the fact they
//! announce is durable, fanned out to WebSocket clients and used as a wake-up
//! by Server-Sent-Event streams.

use std::sync::Arc;

use actlog_engine::Record;
use serde_json::json;
use tokio::sync::broadcast;

use crate::json::record_value;
use crate::settings::Settings;

/// Every message type the bus may carry, exactly. The web UI keeps the same
/// list (`assets/bus.js`), and a test checks the two agree.
pub const MESSAGE_TYPES: &[&str] = &["activity_logged", "activity_cleared", "settings_changed"];

/// One bus message.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// A record became durable.
    ActivityLogged(Arc<Record>),
    /// The log was cleared.
    ActivityCleared,
    /// Settings changed.
    SettingsChanged(Settings),
}

impl BusMessage {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            BusMessage::ActivityLogged(_) => MESSAGE_TYPES[0],
            BusMessage::ActivityCleared => MESSAGE_TYPES[1],
            BusMessage::SettingsChanged(_) => MESSAGE_TYPES[2],
        }
    }

    /// `{"type": T, "data": ...}`.
    pub fn to_json(&self) -> String {
        let data = match self {
            BusMessage::ActivityLogged(r) => record_value(r),
            BusMessage::ActivityCleared => json!({}),
            BusMessage::SettingsChanged(s) => json!(s),
        };
        json!({"type": self.kind(), "data": data}).to_string()
    }
}

/// Capacity of the broadcast channel; a slower subscriber lags and is told so.
pub const BUS_CAPACITY: usize = 4096;

/// The bus handle.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<BusMessage>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

impl Bus {
    /// Publishes (no-op without subscribers).
    pub fn publish(&self, m: BusMessage) {
        let _ = self.tx.send(m);
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    /// Whether anyone listens.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::MESSAGE_TYPES;

    /// The web UI's list (`assets/bus.js`, `BUS_MESSAGE_TYPES`) is the
    /// server's allowlist, in the same order.
    #[test]
    fn ui_bus_types_match_the_allowlist() {
        let js = include_str!("../assets/bus.js");
        let start = js
            .find("export const BUS_MESSAGE_TYPES = [")
            .expect("bus.js declares BUS_MESSAGE_TYPES");
        let list = &js[start..];
        let list = &list[list.find('[').expect("[") + 1..list.find(']').expect("]")];
        let ui: Vec<&str> = list
            .split(',')
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(ui, MESSAGE_TYPES);
        assert_eq!(
            js.matches("BUS_MESSAGE_TYPES = ").count(),
            1,
            "one list in the UI"
        );
    }
}

/// The cap on live streams (SSE and WebSocket) open at once
/// (`actlog serve --max-subscribers`).
#[derive(Debug)]
pub struct Subscribers {
    max: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Default of `--max-subscribers`.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 1024;

impl Subscribers {
    /// At most `max` at once.
    pub fn new(max: usize, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Subscribers { max, metrics }
    }

    /// A place for one more stream, or 503 `unavailable` when all are taken.
    pub fn join(&self) -> Result<SubscriberSlot, crate::error::ApiError> {
        use std::sync::atomic::Ordering;
        let open = &self.metrics.subscribers_open;
        let taken = open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.max as u64).then_some(n + 1)
        });
        match taken {
            Ok(_) => Ok(SubscriberSlot {
                metrics: self.metrics.clone(),
            }),
            Err(_) => {
                self.metrics
                    .subscribers_refused
                    .fetch_add(1, Ordering::Relaxed);
                Err(crate::error::ApiError::unavailable(format!(
                    "{} live streams are open, as many as this server allows; retry later",
                    self.max
                )))
            }
        }
    }
}

/// One live stream's place; given back when dropped.
#[derive(Debug)]
pub struct SubscriberSlot {
    metrics: Arc<crate::metrics::Metrics>,
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.metrics
            .subscribers_open
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
