use crate::StockDivision;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a received row tells us about a stock change (SPEC §3 "What a push carries").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Amount and stock after are both known (history-shaped push row or a `StockHistory` row).
    History,
    /// Only the stock after the change is known; the amount comes from the stock mirror.
    Absolute,
    /// Only the signed amount is known; the stock after comes from the stock mirror.
    Relative,
}

/// One row of a Smaregi push as parsed, before anything is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRow {
    pub store_id: String,
    pub product_id: String,
    pub kind: ChangeKind,
    pub division: Option<StockDivision>,
    pub amount: Option<i64>,
    pub after: Option<i64>,
    /// `updDateTime` in Japan time, when the row carries it.
    pub changed_at: Option<NaiveDateTime>,
    /// `StockHistory.id`, when the row carries it.
    pub history_id: Option<u64>,
    pub from_store_id: Option<String>,
    pub to_store_id: Option<String>,
}

/// Where a ledger entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    Push,
    /// Read from Smaregi's `StockHistory` by the uploader.
    History,
}

/// A stock change as the ledger keeps it: the row plus the identity that makes
/// appending idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    /// Stable identity of the change: a resent push yields the same key.
    pub dedupe_key: String,
    pub source: ChangeSource,
    pub row: PushRow,
    pub received_at: DateTime<Utc>,
}

/// A change whose amount is known and which the rules can judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedChange {
    pub store_id: String,
    pub product_id: String,
    pub division: Option<StockDivision>,
    pub amount: i64,
    /// Stock after the change; `None` when neither the row nor the mirror knew it.
    pub after: Option<i64>,
    pub changed_at: Option<NaiveDateTime>,
    pub history_id: Option<u64>,
}

/// The identity of one change, so that a Smaregi 再送 or a duplicate delivery
/// lands on the same ledger key.
///
/// * a history id is Smaregi's own identity of the change;
/// * otherwise the row's content and time identify it;
/// * a row without time cannot be told apart from a resend of itself, so its
///   identity is the push body plus its position (documented in README).
pub fn dedupe_key(row: &PushRow, push_fingerprint: &str, index: usize) -> String {
    if let Some(id) = row.history_id {
        return format!("h:{id}");
    }
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let division = row.division.as_ref().map(|d| d.code()).unwrap_or("");
    match row.changed_at {
        Some(at) => format!(
            "t:{}:{}:{}:{}:{}:{}",
            row.store_id,
            row.product_id,
            at.format("%Y%m%d%H%M%S"),
            division,
            opt(row.amount),
            opt(row.after)
        ),
        None => format!("p:{push_fingerprint}:{index}"),
    }
}

/// Fingerprint of a whole push body, used by [`dedupe_key`] for rows without time.
pub fn push_fingerprint(params: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(params.as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> PushRow {
        PushRow {
            store_id: "1".into(),
            product_id: "8000001".into(),
            kind: ChangeKind::Absolute,
            division: Some(StockDivision::Sale),
            amount: None,
            after: Some(4),
            changed_at: crate::time::parse_api_time("2026-11-27 10:00:00"),
            history_id: None,
            from_store_id: None,
            to_store_id: None,
        }
    }

    #[test]
    fn history_id_wins() {
        let mut r = row();
        r.history_id = Some(42);
        assert_eq!(dedupe_key(&r, "fp", 0), "h:42");
    }

    #[test]
    fn timed_rows_are_keyed_by_content_not_by_push() {
        let r = row();
        assert_eq!(dedupe_key(&r, "a", 0), dedupe_key(&r, "b", 5));
        let mut later = r.clone();
        later.changed_at = crate::time::parse_api_time("2026-11-27 10:00:01");
        assert_ne!(dedupe_key(&r, "a", 0), dedupe_key(&later, "a", 0));
    }

    #[test]
    fn timeless_rows_are_keyed_by_push_and_position() {
        let mut r = row();
        r.changed_at = None;
        assert_eq!(dedupe_key(&r, "fp", 1), "p:fp:1");
        assert_ne!(dedupe_key(&r, "fp", 1), dedupe_key(&r, "fp", 2));
        assert_ne!(push_fingerprint("a"), push_fingerprint("b"));
    }
}
