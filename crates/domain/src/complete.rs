//! Turning received rows into complete changes (amount and stock after), with the
//! tenant's stock mirror for rows that carry only one of the two (design.md §3).

use crate::change::{ChangeKind, ChangeRow, CompletedChange};
use crate::ids::{ProductId, StoreId};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Last known stock of one store/product, and how recent that knowledge is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    pub stock: i64,
    pub as_of: Option<NaiveDateTime>,
}

/// One store's stock of one product: what the mirror is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StockKey {
    pub store_id: StoreId,
    pub product_id: ProductId,
}

impl StockKey {
    pub fn new(store_id: impl Into<StoreId>, product_id: impl Into<ProductId>) -> Self {
        StockKey {
            store_id: store_id.into(),
            product_id: product_id.into(),
        }
    }

    /// The store and product a received row is about.
    pub fn of(row: &ChangeRow) -> Self {
        StockKey::new(row.store_id.clone(), row.product_id.clone())
    }
}

pub type Mirror = HashMap<StockKey, MirrorEntry>;

/// Every fallback is named so the report can say it (design.md §3: never guess silently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompletionNote {
    /// First absolute value seen for the product: it only sets the mirror.
    FirstSeen {
        store_id: StoreId,
        product_id: ProductId,
    },
    /// An absolute row older than what the mirror knows (a late 再送): ignored.
    Stale {
        store_id: StoreId,
        product_id: ProductId,
    },
    /// A relative increase whose stock after is unknown: reported in full.
    AfterUnknown {
        store_id: StoreId,
        product_id: ProductId,
    },
    /// Rows with neither a history id nor a time: processed, but nothing tells
    /// them from a Smaregi 再送 of the same rows in another push body, so the
    /// operator must check them (要確認).
    Indistinguishable { count: usize },
}

/// How a note that needs the operator's check begins, in the report and in the
/// notes a batch keeps, so the admin screen can find it there.
pub const NEEDS_CHECK: &str = "【要確認】";
const INDISTINGUISHABLE_LEAD: &str = "再送と区別できない在庫変動 ";

impl CompletionNote {
    pub fn describe(&self) -> String {
        match self {
            CompletionNote::FirstSeen {
                store_id,
                product_id,
            } => format!(
                "店舗{store_id} 商品{product_id}: 初めて受信した在庫数のため基準値として記録しました(今回は通知していません)"
            ),
            CompletionNote::Stale {
                store_id,
                product_id,
            } => format!(
                "店舗{store_id} 商品{product_id}: 既に受信した変更より古い在庫数を受信したため無視しました(再送の可能性)"
            ),
            CompletionNote::AfterUnknown {
                store_id,
                product_id,
            } => format!(
                "店舗{store_id} 商品{product_id}: 変更後の在庫数が不明なため増加数をそのまま通知しました"
            ),
            CompletionNote::Indistinguishable { count } => format!(
                "{NEEDS_CHECK}{INDISTINGUISHABLE_LEAD}{count}件: 変動日時も履歴IDもない在庫情報を、スマレジの再送と区別できないまま処理しました。\
                 二重に計上されていないか、ネクストエンジンの在庫数を確認してください。\
                 確実に一度ずつ通知するため、設定画面から在庫変動履歴の読み取りを開始することをおすすめします。"
            ),
        }
    }

    /// The row count of an [`CompletionNote::Indistinguishable`] note, read back
    /// from its text (batches keep their notes as text).
    pub fn indistinguishable_count(text: &str) -> Option<usize> {
        let rest = text
            .strip_prefix(NEEDS_CHECK)?
            .strip_prefix(INDISTINGUISHABLE_LEAD)?;
        let digits = rest.split_once('件')?.0;
        digits.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    pub changes: Vec<CompletedChange>,
    /// New mirror values for every store/product the rows touched.
    pub mirror_updates: Mirror,
    pub notes: Vec<CompletionNote>,
}

/// Completes `rows` (in the order they were received) against `mirror`.
pub fn complete(rows: &[ChangeRow], mirror: &Mirror) -> Completion {
    let mut out = Completion::default();
    let indistinguishable = rows
        .iter()
        .filter(|row| !row.is_distinguishable_from_resend())
        .count();
    for row in rows {
        let key = StockKey::of(row);
        let known = out
            .mirror_updates
            .get(&key)
            .or_else(|| mirror.get(&key))
            .cloned();
        let (amount, after) = match (row.kind, row.amount, row.after) {
            (ChangeKind::History, Some(amount), Some(after)) => (amount, Some(after)),
            (ChangeKind::Absolute, _, Some(after)) => match &known {
                None => {
                    out.mirror_updates.insert(
                        key,
                        MirrorEntry {
                            stock: after,
                            as_of: row.changed_at,
                        },
                    );
                    out.notes.push(CompletionNote::FirstSeen {
                        store_id: row.store_id.clone(),
                        product_id: row.product_id.clone(),
                    });
                    continue;
                }
                Some(entry) if is_older(row.changed_at, entry.as_of) => {
                    out.notes.push(CompletionNote::Stale {
                        store_id: row.store_id.clone(),
                        product_id: row.product_id.clone(),
                    });
                    continue;
                }
                Some(entry) => (after - entry.stock, Some(after)),
            },
            (ChangeKind::Relative, Some(amount), _) => match &known {
                Some(entry) => (amount, Some(entry.stock + amount)),
                None => {
                    if amount > 0 {
                        out.notes.push(CompletionNote::AfterUnknown {
                            store_id: row.store_id.clone(),
                            product_id: row.product_id.clone(),
                        });
                    }
                    (amount, None)
                }
            },
            // The parser never produces these; skipping is the only safe reading.
            _ => continue,
        };
        if let Some(after) = after {
            let newer_time = match (&known, row.changed_at) {
                (Some(entry), Some(at)) => Some(entry.as_of.map_or(at, |old| old.max(at))),
                (Some(entry), None) => entry.as_of,
                (None, at) => at,
            };
            if !matches!(&known, Some(entry) if is_older(row.changed_at, entry.as_of)) {
                out.mirror_updates.insert(
                    key,
                    MirrorEntry {
                        stock: after,
                        as_of: newer_time,
                    },
                );
            }
        }
        if amount == 0 {
            continue;
        }
        out.changes.push(CompletedChange {
            store_id: row.store_id.clone(),
            product_id: row.product_id.clone(),
            division: row.division.clone(),
            amount,
            after,
            changed_at: row.changed_at,
            history_id: row.history_id,
        });
    }
    if indistinguishable > 0 {
        out.notes.push(CompletionNote::Indistinguishable {
            count: indistinguishable,
        });
    }
    out
}

fn is_older(row_time: Option<NaiveDateTime>, mirror_time: Option<NaiveDateTime>) -> bool {
    matches!((row_time, mirror_time), (Some(row), Some(mirror)) if row < mirror)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StockDivision;
    use crate::time::parse_api_time;

    fn absolute(after: i64, at: &str) -> ChangeRow {
        ChangeRow {
            store_id: "1".into(),
            product_id: "P".into(),
            kind: ChangeKind::Absolute,
            division: Some(StockDivision::Sale),
            amount: None,
            after: Some(after),
            changed_at: parse_api_time(at),
            history_id: None,
            from_store_id: None,
            to_store_id: None,
            layaway_stock_amount: None,
        }
    }

    fn key() -> StockKey {
        StockKey::new("1", "P")
    }

    #[test]
    fn first_absolute_value_only_sets_the_mirror() {
        let c = complete(&[absolute(5, "2026-11-27 10:00:00")], &Mirror::new());
        assert!(c.changes.is_empty());
        assert_eq!(c.mirror_updates[&key()].stock, 5);
        assert!(matches!(c.notes[0], CompletionNote::FirstSeen { .. }));
    }

    #[test]
    fn absolute_values_become_amounts_against_the_mirror() {
        let c = complete(
            &[
                absolute(5, "2026-11-27 10:00:00"),
                absolute(3, "2026-11-27 10:01:00"),
                absolute(4, "2026-11-27 10:02:00"),
            ],
            &Mirror::new(),
        );
        let amounts: Vec<_> = c.changes.iter().map(|c| (c.amount, c.after)).collect();
        assert_eq!(amounts, vec![(-2, Some(3)), (1, Some(4))]);
        assert_eq!(c.mirror_updates[&key()].stock, 4);
    }

    #[test]
    fn a_late_resend_never_moves_the_mirror_backwards() {
        let mut mirror = Mirror::new();
        mirror.insert(
            key(),
            MirrorEntry {
                stock: 3,
                as_of: parse_api_time("2026-11-27 10:05:00"),
            },
        );
        let c = complete(&[absolute(9, "2026-11-27 10:00:00")], &mirror);
        assert!(c.changes.is_empty());
        assert!(c.mirror_updates.is_empty());
        assert!(matches!(c.notes[0], CompletionNote::Stale { .. }));
    }

    #[test]
    fn relative_rows_take_their_stock_after_from_the_mirror() {
        let mut mirror = Mirror::new();
        mirror.insert(
            key(),
            MirrorEntry {
                stock: -3,
                as_of: None,
            },
        );
        let mut row = absolute(0, "2026-11-27 10:00:00");
        row.kind = ChangeKind::Relative;
        row.after = None;
        row.amount = Some(5);
        let c = complete(std::slice::from_ref(&row), &mirror);
        assert_eq!(c.changes[0].after, Some(2));
        assert_eq!(c.mirror_updates[&key()].stock, 2);

        let c = complete(&[row], &Mirror::new());
        assert_eq!(c.changes[0].after, None);
        assert!(matches!(c.notes[0], CompletionNote::AfterUnknown { .. }));
    }

    #[test]
    fn rows_without_id_or_time_are_counted_and_need_checking() {
        let mut sale = absolute(0, "2026-11-27 10:00:00");
        sale.kind = ChangeKind::Relative;
        sale.after = None;
        sale.amount = Some(-1);
        sale.changed_at = None;
        let mut timed = sale.clone();
        timed.changed_at = parse_api_time("2026-11-27 10:00:00");
        let mut mirror = Mirror::new();
        mirror.insert(
            key(),
            MirrorEntry {
                stock: 5,
                as_of: None,
            },
        );
        let c = complete(&[sale.clone(), sale, timed], &mirror);
        let amounts: Vec<_> = c.changes.iter().map(|c| (c.amount, c.after)).collect();
        assert_eq!(
            amounts,
            vec![(-1, Some(4)), (-1, Some(3)), (-1, Some(2))],
            "counted, never dropped"
        );
        assert_eq!(
            c.notes,
            vec![CompletionNote::Indistinguishable { count: 2 }]
        );
        let text = c.notes[0].describe();
        assert!(text.starts_with(NEEDS_CHECK), "{text}");
        assert!(
            text.contains("2件") && text.contains("在庫変動履歴の読み取り"),
            "{text}"
        );
        assert_eq!(CompletionNote::indistinguishable_count(&text), Some(2));
    }

    #[test]
    fn rows_with_id_or_time_need_no_check() {
        let mut history = absolute(7, "2026-11-27 10:00:00");
        history.kind = ChangeKind::History;
        history.amount = Some(2);
        history.history_id = Some(11);
        history.changed_at = None;
        let c = complete(
            &[history, absolute(5, "2026-11-27 10:00:00")],
            &Mirror::new(),
        );
        assert!(
            !c.notes
                .iter()
                .any(|n| matches!(n, CompletionNote::Indistinguishable { .. })),
            "{:?}",
            c.notes
        );
        for note in &c.notes {
            assert_eq!(
                CompletionNote::indistinguishable_count(&note.describe()),
                None
            );
        }
    }

    #[test]
    fn history_rows_are_used_as_they_are() {
        let mut row = absolute(7, "2026-11-27 10:00:00");
        row.kind = ChangeKind::History;
        row.amount = Some(2);
        row.history_id = Some(11);
        let c = complete(&[row], &Mirror::new());
        assert_eq!(c.changes[0].amount, 2);
        assert_eq!(c.changes[0].after, Some(7));
        assert_eq!(c.changes[0].history_id, Some(11));
        assert_eq!(c.mirror_updates[&key()].stock, 7);
    }
}
