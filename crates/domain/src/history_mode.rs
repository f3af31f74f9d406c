//! When a tenant's changes come from Smaregi's `StockHistory` instead of the
//! pushes themselves (design.md §3's preferred path).
//!
//! The mode remembers every period it was on, not only whether it is on now:
//! a push received during a period is only a signal (its change is counted from
//! history), also when it is built after the period ended. Judging a push by the
//! mode at build time would count such a change twice.

use crate::change::{ChangeSource, StockChange};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryMode {
    /// Oldest first; only the last one may still be open.
    pub periods: Vec<HistoryPeriod>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPeriod {
    pub on: DateTime<Utc>,
    pub off: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable stock-history mode: {0:?}")]
pub struct BadHistoryMode(pub String);

impl HistoryMode {
    /// Reads the stored text: the JSON written by [`HistoryMode::to_text`], or the
    /// older `off` / `on:<RFC 3339>` forms.
    pub fn parse(text: &str) -> Result<Self, BadHistoryMode> {
        let text = text.trim();
        if text == "off" {
            return Ok(HistoryMode::default());
        }
        if let Some(since) = text.strip_prefix("on:") {
            let on = DateTime::parse_from_rfc3339(since)
                .map_err(|_| BadHistoryMode(text.to_string()))?
                .with_timezone(&Utc);
            return Ok(HistoryMode {
                periods: vec![HistoryPeriod { on, off: None }],
            });
        }
        serde_json::from_str(text).map_err(|_| BadHistoryMode(text.to_string()))
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Since when history is read, if it is now.
    pub fn on_since(&self) -> Option<DateTime<Utc>> {
        self.periods
            .last()
            .filter(|p| p.off.is_none())
            .map(|p| p.on)
    }

    pub fn switched_on(mut self, at: DateTime<Utc>) -> Self {
        if self.on_since().is_none() {
            self.periods.push(HistoryPeriod { on: at, off: None });
        }
        self
    }

    pub fn switched_off(mut self, at: DateTime<Utc>) -> Self {
        if let Some(open) = self.periods.last_mut().filter(|p| p.off.is_none()) {
            open.off = Some(at.max(open.on));
        }
        self
    }

    /// Whether the change is a push that only signals a change history carries.
    /// A row with its own history id is the change itself: it shares the
    /// history row's dedupe key, so it is counted once either way.
    pub fn is_signal(&self, change: &StockChange) -> bool {
        change.source == ChangeSource::Push
            && change.row.history_id.is_none()
            && self.periods.iter().any(|p| {
                change.received_at > p.on && p.off.is_none_or(|off| change.received_at <= off)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{ChangeKind, ChangeRow};
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn push(received: i64, kind: ChangeKind, history_id: Option<u64>) -> StockChange {
        StockChange {
            dedupe_key: "k".into(),
            source: ChangeSource::Push,
            row: ChangeRow {
                store_id: "1".into(),
                product_id: "P".into(),
                kind,
                division: None,
                amount: Some(-1),
                after: Some(4),
                changed_at: None,
                history_id,
                from_store_id: None,
                to_store_id: None,
                layaway_stock_amount: None,
            },
            received_at: at(received),
        }
    }

    #[test]
    fn pushes_received_while_on_stay_signals_after_switching_off() {
        let mode = HistoryMode::default()
            .switched_on(at(10))
            .switched_off(at(20));
        assert_eq!(mode.on_since(), None);
        assert!(
            !mode.is_signal(&push(5, ChangeKind::Absolute, None)),
            "before"
        );
        assert!(
            mode.is_signal(&push(15, ChangeKind::Absolute, None)),
            "during"
        );
        assert!(
            !mode.is_signal(&push(25, ChangeKind::Absolute, None)),
            "after"
        );
        let again = mode.switched_on(at(30));
        assert_eq!(again.on_since(), Some(at(30)));
        assert!(again.is_signal(&push(15, ChangeKind::Absolute, None)));
        assert!(!again.is_signal(&push(25, ChangeKind::Absolute, None)));
        assert!(again.is_signal(&push(31, ChangeKind::Absolute, None)));
    }

    #[test]
    fn a_row_with_amount_but_no_id_is_a_signal_and_one_with_an_id_is_the_change() {
        let mode = HistoryMode::default().switched_on(at(10));
        assert!(mode.is_signal(&push(11, ChangeKind::History, None)));
        assert!(!mode.is_signal(&push(11, ChangeKind::History, Some(42))));
    }

    #[test]
    fn older_texts_and_round_trip() {
        assert_eq!(HistoryMode::parse("off").unwrap(), HistoryMode::default());
        let on = HistoryMode::parse("on:2027-01-15T08:00:00+00:00").unwrap();
        assert!(on.on_since().is_some());
        let text = on.clone().switched_off(at(0)).to_text();
        assert_eq!(HistoryMode::parse(&text).unwrap().periods.len(), 1);
        assert!(HistoryMode::parse("on:yesterday").is_err());
        assert!(HistoryMode::parse("{").is_err());
    }
}
