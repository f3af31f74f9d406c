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
    /// Which API the history was read through in this period.
    #[serde(default, skip_serializing_if = "HistorySource::is_old_api")]
    pub via: HistorySource,
}

/// Where a tenant's stock history comes from: the old API's `StockHistory`
/// table, or the Platform API (`pos:stock` webhooks and stock changes). Both
/// see the same history ids (an assumption, README "Platform API"), so a
/// change read through both is one ledger key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    #[default]
    OldApi,
    Platform,
}

impl HistorySource {
    fn is_old_api(&self) -> bool {
        *self == HistorySource::OldApi
    }
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
                periods: vec![HistoryPeriod {
                    on,
                    off: None,
                    via: HistorySource::OldApi,
                }],
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

    /// Which API history is read through now, if it is.
    pub fn reader(&self) -> Option<HistorySource> {
        self.periods
            .last()
            .filter(|p| p.off.is_none())
            .map(|p| p.via)
    }

    pub fn switched_on(self, at: DateTime<Utc>) -> Self {
        self.switched_on_via(HistorySource::OldApi, at)
    }

    /// History on through `via` from `at`: a period through the other API ends
    /// at the same instant, so no push falls between the two.
    pub fn switched_on_via(mut self, via: HistorySource, at: DateTime<Utc>) -> Self {
        match self.reader() {
            Some(current) if current == via => {}
            Some(_) => {
                let at = at.max(self.periods.last().map(|p| p.on).unwrap_or(at));
                self = self.switched_off(at);
                self.periods.push(HistoryPeriod {
                    on: at,
                    off: None,
                    via,
                });
            }
            None => self.periods.push(HistoryPeriod {
                on: at,
                off: None,
                via,
            }),
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

    #[test]
    fn switching_api_keeps_pushes_signals_without_a_gap_and_old_texts_read_as_old_api() {
        let mode = HistoryMode::default()
            .switched_on(at(10))
            .switched_on_via(HistorySource::Platform, at(20));
        assert_eq!(mode.reader(), Some(HistorySource::Platform));
        assert_eq!(mode.periods.len(), 2);
        assert_eq!(mode.periods[0].off, Some(at(20)));
        assert_eq!(mode.periods[1].on, at(20));
        for t in [11, 20, 21, 99] {
            assert!(mode.is_signal(&push(t, ChangeKind::Absolute, None)), "{t}");
        }
        let same = mode
            .clone()
            .switched_on_via(HistorySource::Platform, at(30));
        assert_eq!(same, mode, "already through the Platform API");
        let back = mode.switched_on_via(HistorySource::OldApi, at(40));
        assert_eq!(back.reader(), Some(HistorySource::OldApi));
        assert_eq!(back.periods.len(), 3);
        let text = HistoryMode::default().switched_on(at(1)).to_text();
        assert!(
            !text.contains("via"),
            "an old-API period is written as before: {text}"
        );
        let read = HistoryMode::parse(r#"{"periods":[{"on":"2027-01-15T08:00:00Z","off":null}]}"#)
            .unwrap();
        assert_eq!(read.reader(), Some(HistorySource::OldApi));
        let off_then_platform =
            HistoryMode::default().switched_on_via(HistorySource::Platform, at(5));
        assert_eq!(off_then_platform.periods.len(), 1);
        assert!(off_then_platform.is_signal(&push(6, ChangeKind::Absolute, None)));
    }

    #[test]
    fn a_platform_change_is_never_a_signal() {
        let mode = HistoryMode::default().switched_on_via(HistorySource::Platform, at(1));
        let mut p = push(5, ChangeKind::Unresolved, Some(7));
        p.source = ChangeSource::Platform;
        assert!(!mode.is_signal(&p));
    }
}
