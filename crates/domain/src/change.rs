use crate::StockDivision;
use crate::ids::{ProductId, StoreId};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a received row tells us about a stock change (design.md §3 "What a push carries").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Amount and stock after are both known (history-shaped push row or a `StockHistory` row).
    History,
    /// Only the stock after the change is known; the amount comes from the stock mirror.
    Absolute,
    /// Only the signed amount is known; the stock after comes from the stock mirror.
    Relative,
    /// Only the history id, product and store are known (a Platform `pos:stock`
    /// webhook): the batcher reads the change itself before anything else.
    Unresolved,
}

/// One stock change as Smaregi sent it — a row of a push (`Stock` / `StockHistory`
/// tables) or of `StockHistory` read through the API — before anything is
/// derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRow {
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub kind: ChangeKind,
    pub division: Option<StockDivision>,
    pub amount: Option<i64>,
    pub after: Option<i64>,
    /// `updDateTime` in Japan time, when the row carries it.
    pub changed_at: Option<NaiveDateTime>,
    /// `StockHistory.id`, when the row carries it.
    pub history_id: Option<u64>,
    pub from_store_id: Option<StoreId>,
    pub to_store_id: Option<StoreId>,
    /// `layawayStockAmount` (取置在庫数), when the row carries it. Not used by the
    /// rules, but part of what Smaregi sent and so of the row's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layaway_stock_amount: Option<i64>,
}

impl ChangeRow {
    /// Whether anything in the row (a history id or a time) tells it apart from
    /// a resend of an identical row in another push. Rows that lack both are
    /// still counted but must be shown as 要確認 (design.md §3: never guess silently).
    pub fn is_distinguishable_from_resend(&self) -> bool {
        self.history_id.is_some() || self.changed_at.is_some()
    }
}

/// Where a ledger entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    Push,
    /// Read from Smaregi's `StockHistory` by the uploader.
    History,
    /// Through the スマレジ・プラットフォームAPI: a `pos:stock` webhook (to be
    /// resolved) or a stock-change row its backfill read.
    Platform,
}

/// A stock change as the ledger keeps it: the row plus the identity that makes
/// appending idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    /// Stable identity of the change: a resent push yields the same key.
    pub dedupe_key: String,
    pub source: ChangeSource,
    pub row: ChangeRow,
    pub received_at: DateTime<Utc>,
}

/// A change whose amount is known and which the rules can judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedChange {
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub division: Option<StockDivision>,
    pub amount: i64,
    /// Stock after the change; `None` when neither the row nor the mirror knew it.
    pub after: Option<i64>,
    pub changed_at: Option<NaiveDateTime>,
    pub history_id: Option<u64>,
}

/// The identities of the rows of one push, in order, so that a Smaregi 再送 or a
/// duplicate delivery lands on the same ledger keys.
///
/// * a history id is Smaregi's own identity of the change: `h:<id>`, the same
///   key space as the `StockHistory` rows the uploader reads;
/// * otherwise a row with a time is identified by every field it carries, so two
///   changes that differ in anything (stock after, stores, layaway, fraction of
///   a second…) stay two. Identical rows within one push are numbered: two
///   registers selling the same product in the same second are two changes, and
///   a resend of that push numbers them the same way;
/// * a row without id or time cannot be told apart from a resend of itself, so
///   its identity is the push body plus its position (counted, and reported as
///   要確認 by the completion).
pub fn dedupe_keys(rows: &[ChangeRow], push_fingerprint: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            if let Some(id) = row.history_id {
                return format!("h:{id}");
            }
            if row.changed_at.is_none() {
                return format!("p:{push_fingerprint}:{index}");
            }
            let content = canonical_content(row);
            let occurrence = seen.entry(content.clone()).or_default();
            *occurrence += 1;
            let digest = sha256_hex(format!("{content}#{occurrence}").as_bytes());
            format!("t:{digest}")
        })
        .collect()
}

/// Every field of the row in a fixed order as a JSON array, so no choice of
/// separator inside an id can make two rows encode alike. The leading version
/// tag keeps a future change of this encoding from meeting old keys by accident.
fn canonical_content(row: &ChangeRow) -> String {
    let kind = match row.kind {
        ChangeKind::History => "history",
        ChangeKind::Absolute => "absolute",
        ChangeKind::Relative => "relative",
        ChangeKind::Unresolved => "unresolved",
    };
    let time = row
        .changed_at
        .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.9f").to_string());
    serde_json::json!([
        "row-v1",
        row.store_id,
        row.product_id,
        kind,
        row.division.as_ref().map(|d| d.code()),
        row.amount,
        row.after,
        row.layaway_stock_amount,
        time,
        row.from_store_id,
        row.to_store_id,
    ])
    .to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..16])
}

/// Fingerprint of a whole push body, used by [`dedupe_key`] for rows without time.
pub fn push_fingerprint(params: &str) -> String {
    sha256_hex(params.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ChangeRow {
        ChangeRow {
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
            layaway_stock_amount: None,
        }
    }

    fn key(row: &ChangeRow) -> String {
        dedupe_keys(std::slice::from_ref(row), "fp").remove(0)
    }

    #[test]
    fn history_id_wins() {
        let mut r = row();
        r.history_id = Some(42);
        assert_eq!(key(&r), "h:42");
        r.changed_at = None;
        assert_eq!(key(&r), "h:42", "the StockHistory key space");
    }

    #[test]
    fn timed_rows_are_keyed_by_content_not_by_push() {
        let r = row();
        assert_eq!(
            dedupe_keys(std::slice::from_ref(&r), "a"),
            dedupe_keys(std::slice::from_ref(&r), "b")
        );
        let mut later = r.clone();
        later.changed_at = crate::time::parse_api_time("2026-11-27 10:00:01");
        assert_ne!(key(&r), key(&later));
    }

    /// A −1 sale without id: the shape of a full push row from two registers.
    fn sale(after: Option<i64>) -> ChangeRow {
        ChangeRow {
            kind: if after.is_some() {
                ChangeKind::History
            } else {
                ChangeKind::Relative
            },
            amount: Some(-1),
            after,
            ..row()
        }
    }

    #[test]
    fn same_second_sales_with_different_stock_after_are_two_changes() {
        let keys = dedupe_keys(&[sale(Some(4)), sale(Some(3))], "fp");
        assert_ne!(keys[0], keys[1]);
    }

    #[test]
    fn identical_same_second_sales_in_one_push_are_two_changes_and_a_resend_is_not() {
        let push = [sale(None), sale(None)];
        let keys = dedupe_keys(&push, "fp");
        assert_ne!(keys[0], keys[1], "two registers, one second");
        assert_eq!(
            dedupe_keys(&push, "other body"),
            keys,
            "a resend numbers them alike"
        );
        // The first of them is the same change when it arrives alone again.
        assert_eq!(dedupe_keys(&push[..1], "fp")[0], keys[0]);
    }

    #[test]
    fn every_field_takes_part_in_the_key() {
        let base = ChangeRow {
            from_store_id: Some("1".into()),
            to_store_id: Some("2".into()),
            layaway_stock_amount: Some(0),
            amount: Some(-1),
            kind: ChangeKind::History,
            ..row()
        };
        type Change = Box<dyn Fn(&mut ChangeRow)>;
        let variants: Vec<(&str, Change)> = vec![
            ("store", Box::new(|r| r.store_id = "2".into())),
            ("product", Box::new(|r| r.product_id = "8000002".into())),
            ("kind", Box::new(|r| r.kind = ChangeKind::Relative)),
            ("division", Box::new(|r| r.division = None)),
            (
                "division code",
                Box::new(|r| r.division = Some(StockDivision::Other("99".into()))),
            ),
            ("amount", Box::new(|r| r.amount = Some(-2))),
            ("amount absent", Box::new(|r| r.amount = None)),
            ("after", Box::new(|r| r.after = Some(5))),
            ("after absent", Box::new(|r| r.after = None)),
            ("layaway", Box::new(|r| r.layaway_stock_amount = Some(1))),
            (
                "layaway absent",
                Box::new(|r| r.layaway_stock_amount = None),
            ),
            (
                "fraction of a second",
                Box::new(|r| {
                    r.changed_at = r
                        .changed_at
                        .map(|at| at + chrono::Duration::milliseconds(500))
                }),
            ),
            (
                "from store",
                Box::new(|r| r.from_store_id = Some("3".into())),
            ),
            ("from store absent", Box::new(|r| r.from_store_id = None)),
            ("to store", Box::new(|r| r.to_store_id = Some("3".into()))),
            ("to store absent", Box::new(|r| r.to_store_id = None)),
        ];
        let base_key = key(&base);
        let mut keys = std::collections::HashSet::from([base_key.clone()]);
        for (name, change) in variants {
            let mut other = base.clone();
            change(&mut other);
            let other_key = key(&other);
            assert_ne!(other_key, base_key, "{name}");
            assert!(
                keys.insert(other_key),
                "{name} collides with another variant"
            );
        }
        assert_eq!(key(&base.clone()), base_key, "an identical row keys alike");
    }

    #[test]
    fn separators_inside_ids_cannot_make_rows_alike() {
        let a = ChangeRow {
            store_id: "1:2".into(),
            product_id: "3".into(),
            ..row()
        };
        let b = ChangeRow {
            store_id: "1".into(),
            product_id: "2:3".into(),
            ..row()
        };
        assert_ne!(key(&a), key(&b));
    }

    #[test]
    fn timeless_rows_are_keyed_by_push_and_position() {
        let mut r = row();
        r.changed_at = None;
        assert!(!r.is_distinguishable_from_resend());
        let keys = dedupe_keys(&[r.clone(), r.clone()], "fp");
        assert_eq!(keys, ["p:fp:0", "p:fp:1"]);
        assert_ne!(push_fingerprint("a"), push_fingerprint("b"));
    }
}
