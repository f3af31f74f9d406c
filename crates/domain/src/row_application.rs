//! Which rows of a failed upload NextEngine applied.
//!
//! NextEngine documents that the good rows of a failing file are applied only for
//! the screen upload (release note 2025-02-13); for API uploads it is unknown
//! (reference: nextengine-api.md, Update "Partial application"). So it is found
//! out, not assumed: NextEngine's stock in/out history (入出庫履歴,
//! `api_v1_master_stockiohistory/search`) records every change of a goods'
//! stock with the stock before and after. A good row of our file is applied when
//! the history holds, while NextEngine processed the file's queue, a change of
//! exactly its delta that no order caused (an order's change names its slip,
//! 伝票番号).
//!
//! The judgement errs on the side that never counts twice: a coincidental
//! change of the same size (an operator's manual edit at that moment) makes a
//! row look applied, and the report then tells the operator to check it; a row
//! is offered for re-upload only when nothing in the history can be it.

use crate::GoodsCode;
use crate::que_message::{RowError, RowErrorKind};
use crate::upload_csv::UploadLine;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One entry of NextEngine's stock in/out history, as far as the judgement
/// needs it. Field names are those of the community SDKs (assumed; the
/// simulator names the same assumption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockIoEntry {
    pub goods_code: GoodsCode,
    /// `stock_io_history_before_stock_quantity`.
    pub before: i64,
    /// `stock_io_history_after_stock_quantity`.
    pub after: i64,
    /// `stock_io_history_creation_date`, Japan time.
    pub at: NaiveDateTime,
    /// `stock_io_history_cut_form_id` (伝票番号): set when an order caused the change.
    pub slip: Option<String>,
}

/// What became of one row of a failed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowFate {
    /// The history holds the change: never send it again.
    Applied,
    /// NextEngine named the row in its errors: not applied.
    Refused,
    /// A good row the history does not hold: the whole file was refused.
    NotApplied,
    /// The history could not be read: nobody knows, a person checks.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowVerdict {
    pub goods_code: GoodsCode,
    pub delta: i64,
    pub fate: RowFate,
    /// Refused for free stock (allocated units): re-sending it only helps once
    /// the allocation was changed, and may count an order twice otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_stock: bool,
}

impl RowVerdict {
    /// Whether NextEngine certainly does not hold this row.
    pub fn is_unapplied(&self) -> bool {
        matches!(self.fate, RowFate::Refused | RowFate::NotApplied)
    }
}

/// When NextEngine may have applied a file, by NextEngine's clock (Japan time):
/// from the queue's creation to its last change (the end of processing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyWindow {
    pub from: NaiveDateTime,
    pub until: Option<NaiveDateTime>,
}

impl ApplyWindow {
    fn contains(&self, at: NaiveDateTime) -> bool {
        at >= self.from && self.until.is_none_or(|until| at <= until)
    }
}

/// How many rows of a failed file met each fate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FateCounts {
    pub applied: usize,
    pub refused: usize,
    pub not_applied: usize,
    pub unknown: usize,
}

impl FateCounts {
    pub fn of(verdicts: &[RowVerdict]) -> Self {
        let mut counts = FateCounts::default();
        for v in verdicts {
            *match v.fate {
                RowFate::Applied => &mut counts.applied,
                RowFate::Refused => &mut counts.refused,
                RowFate::NotApplied => &mut counts.not_applied,
                RowFate::Unknown => &mut counts.unknown,
            } += 1;
        }
        counts
    }

    /// Rows NextEngine certainly does not hold.
    pub fn unapplied(&self) -> usize {
        self.refused + self.not_applied
    }
}

/// Judges every line of a failed file. `history` is `None` when it could not be
/// read.
pub fn judge_rows(
    lines: &[UploadLine],
    row_errors: &[RowError],
    history: Option<&[StockIoEntry]>,
    window: ApplyWindow,
) -> Vec<RowVerdict> {
    let refused: HashSet<&str> = row_errors
        .iter()
        .filter_map(|e| e.goods_code.as_deref())
        .collect();
    let free_stock: HashSet<&str> = row_errors
        .iter()
        .filter(|e| e.kind() == RowErrorKind::FreeStock)
        .filter_map(|e| e.goods_code.as_deref())
        .collect();
    // Each history entry can prove one row only.
    let mut used = vec![false; history.map_or(0, <[StockIoEntry]>::len)];
    lines
        .iter()
        .map(|line| {
            let code = line.goods_code.as_str();
            let fate = if refused.contains(code) {
                RowFate::Refused
            } else if let Some(entries) = history {
                let found = entries.iter().enumerate().position(|(i, e)| {
                    !used[i]
                        && e.goods_code == code
                        && window.contains(e.at)
                        && e.slip
                            .as_deref()
                            .is_none_or(|s| s.trim().is_empty() || s == "0")
                        && e.after - e.before == line.delta
                });
                match found {
                    Some(i) => {
                        used[i] = true;
                        RowFate::Applied
                    }
                    None => RowFate::NotApplied,
                }
            } else {
                RowFate::Unknown
            };
            RowVerdict {
                goods_code: line.goods_code.clone(),
                delta: line.delta,
                fate,
                free_stock: free_stock.contains(code),
            }
        })
        .collect()
}

/// The rows to send again: those NextEngine certainly does not hold, without
/// the free-stock refusals unless asked for.
pub fn unapplied_lines(verdicts: &[RowVerdict], include_free_stock: bool) -> Vec<UploadLine> {
    verdicts
        .iter()
        .filter(|v| v.is_unapplied() && (include_free_stock || !v.free_stock))
        .map(|v| UploadLine {
            goods_code: v.goods_code.clone(),
            delta: v.delta,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(h, m, 0)
            .unwrap()
    }

    fn line(code: &str, delta: i64) -> UploadLine {
        UploadLine {
            goods_code: code.into(),
            delta,
        }
    }

    fn from(at: NaiveDateTime) -> ApplyWindow {
        ApplyWindow {
            from: at,
            until: Some(t(10, 5)),
        }
    }

    fn entry(code: &str, before: i64, after: i64, at: NaiveDateTime) -> StockIoEntry {
        StockIoEntry {
            goods_code: code.into(),
            before,
            after,
            at,
            slip: None,
        }
    }

    fn unknown_goods(code: &str) -> RowError {
        RowError {
            line: Some(2),
            goods_code: Some(code.into()),
            message: "仕入先コードは必須です。".into(),
        }
    }

    fn fates(v: &[RowVerdict]) -> Vec<RowFate> {
        v.iter().map(|v| v.fate).collect()
    }

    #[test]
    fn good_rows_found_in_the_history_are_applied() {
        let lines = [line("A", -1), line("B", 3), line("C", -2)];
        let history = [entry("B", 5, 8, t(10, 1)), entry("C", 9, 7, t(10, 1))];
        let v = judge_rows(
            &lines,
            &[unknown_goods("A")],
            Some(&history),
            from(t(10, 0)),
        );
        assert_eq!(
            fates(&v),
            [RowFate::Refused, RowFate::Applied, RowFate::Applied]
        );
        assert_eq!(unapplied_lines(&v, false), [line("A", -1)]);
    }

    #[test]
    fn a_file_refused_whole_leaves_its_good_rows_unapplied() {
        let lines = [line("A", -1), line("B", 3)];
        let v = judge_rows(&lines, &[unknown_goods("A")], Some(&[]), from(t(10, 0)));
        assert_eq!(fates(&v), [RowFate::Refused, RowFate::NotApplied]);
        assert_eq!(unapplied_lines(&v, false), lines);
    }

    #[test]
    fn changes_before_the_upload_of_another_size_or_by_an_order_prove_nothing() {
        let lines = [line("B", -1)];
        let mut by_order = entry("B", 5, 4, t(10, 2));
        by_order.slip = Some("1001".into());
        let history = [
            entry("B", 6, 5, t(9, 59)), // before the upload
            entry("B", 5, 3, t(10, 1)), // another size
            entry("B", 4, 3, t(10, 6)), // after the queue finished
            by_order,
        ];
        let v = judge_rows(&lines, &[], Some(&history), from(t(10, 0)));
        assert_eq!(fates(&v), [RowFate::NotApplied]);
    }

    #[test]
    fn one_entry_proves_one_row_only() {
        // Two failed files (or two rows, were codes repeated) cannot both claim one change.
        let lines = [line("B", -1), line("B", -1)];
        let history = [entry("B", 5, 4, t(10, 1))];
        let v = judge_rows(&lines, &[], Some(&history), from(t(10, 0)));
        assert_eq!(fates(&v), [RowFate::Applied, RowFate::NotApplied]);
    }

    #[test]
    fn an_unreadable_history_leaves_good_rows_unknown_and_offers_none() {
        let lines = [line("A", -1), line("B", 3)];
        let v = judge_rows(&lines, &[unknown_goods("A")], None, from(t(10, 0)));
        assert_eq!(fates(&v), [RowFate::Refused, RowFate::Unknown]);
        assert_eq!(unapplied_lines(&v, true), [line("A", -1)]);
    }

    #[test]
    fn free_stock_refusals_are_sent_again_only_when_asked() {
        let lines = [line("A", -5)];
        let errors = [RowError {
            line: Some(2),
            goods_code: Some("A".into()),
            message: format!("{}。", crate::que_message::FREE_STOCK_TEXT),
        }];
        let v = judge_rows(&lines, &errors, Some(&[]), from(t(10, 0)));
        assert!(v[0].free_stock);
        assert!(unapplied_lines(&v, false).is_empty());
        assert_eq!(unapplied_lines(&v, true), [line("A", -5)]);
    }
}
