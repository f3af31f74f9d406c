//! The drift radar (design.md §9): what NextEngine's stock should be, given
//! Smaregi's and everything still on its way, and every goods where it is not.
//!
//! The comparison is on free stock (フリー在庫数, the figure NextEngine's own Q&A
//! says a sync mirrors) once everything in flight has landed:
//!
//! * expected = max(0, Smaregi's stock over the counted stores) − the web
//!   orders NextEngine holds that Smaregi has not been told of yet;
//! * actual = NextEngine's free stock + the deltas still pending in the ledger
//!   + the deltas of files whose queue has not finished.
//!
//! With the order import off, Smaregi never hears of a web order, so every
//! allocation counts as such an order and the comparison is on 在庫数. With
//! the import on, only the orders it has not shipped into Smaregi yet count.
//! A correction is a `zaiko_su` delta: it moves 在庫数, and so free stock, by
//! the difference.

use crate::mapping::ProductMap;
use crate::tenant::StockMaster;
use crate::upload_csv::UploadLine;
use crate::{GoodsCode, ProductId, StoreId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Lines the mail lists; all of them are in the attached CSV.
pub const LINES_IN_MAIL: usize = 10;

/// NextEngine's figures for one goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeFigures {
    pub stock: i64,
    pub allocated: i64,
    pub free: i64,
}

/// How web orders NextEngine holds relate to Smaregi's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebOrders {
    /// The order import is off: Smaregi hears of no web order, so every
    /// allocation is one.
    NotImported,
    /// The import is on: per goods, the quantity of orders NextEngine counted
    /// that the import has not yet shipped into Smaregi.
    Unshipped(BTreeMap<GoodsCode, i64>),
}

/// Everything on its way to NextEngine, per goods code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// Reported deltas of the ledger's changes not yet in a file.
    pub pending: BTreeMap<GoodsCode, i64>,
    /// Deltas of frozen or uploaded files whose queue has not finished.
    pub files: BTreeMap<GoodsCode, i64>,
    /// Files of each goods that are not finished, by batch id.
    pub file_ids: BTreeMap<GoodsCode, BTreeSet<String>>,
    /// Files whose outcome a person must decide (要確認): whether they were
    /// applied is unknown, so no correction of their goods is safe.
    pub held: BTreeMap<GoodsCode, BTreeSet<String>>,
}

/// What else the service knows about a goods, to explain a difference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Goods with rows of a failed queue NextEngine did not apply and that no
    /// re-upload carried, with the failed batch ids.
    pub failed_rows: HashMap<GoodsCode, BTreeSet<String>>,
    /// Goods whose changes were parked because NextEngine did not know the
    /// code (未登録商品): those deltas never reached NextEngine.
    pub parked_unregistered: HashSet<GoodsCode>,
    /// Per store and product: the last stock the service knows (its mirror).
    pub mirror: HashMap<(StoreId, ProductId), i64>,
    /// Goods some upload of ours ever carried.
    pub ever_uploaded: HashSet<GoodsCode>,
}

/// One row of Smaregi's current stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmaregiStock {
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub amount: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftCause {
    /// A file of the goods waits for a person's decision (要確認).
    HeldFile,
    /// A failed queue left rows of the goods unapplied.
    QueueFailed,
    /// Changes were parked while NextEngine did not know the code.
    ParkedWhileUnregistered,
    /// NextEngine's goods master does not know the code.
    UnknownToNextEngine,
    /// Smaregi's stock differs from the last stock the service was told: a
    /// change that never reached us (a push Smaregi did not send).
    MissedSmaregiChange,
    /// No change of the goods ever reached the service: the difference is
    /// older than the connection (the initial alignment's case).
    BeforeConnection,
    /// Everything Smaregi did reached NextEngine: the difference arose on
    /// NextEngine's side (a manual edit, a file applied in part).
    ChangedInNextEngine,
}

impl DriftCause {
    pub fn label(self) -> &'static str {
        match self {
            DriftCause::HeldFile => "確認待ちのファイルあり",
            DriftCause::QueueFailed => "キューの失敗で未反映の行あり",
            DriftCause::ParkedWhileUnregistered => "未登録の間の増減が未反映",
            DriftCause::UnknownToNextEngine => "ネクストエンジンに未登録",
            DriftCause::MissedSmaregiChange => "スマレジの変更が届いていない",
            DriftCause::BeforeConnection => "連携開始前からの差異",
            DriftCause::ChangedInNextEngine => "ネクストエンジン側での変更 (手動変更など)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftLine {
    pub goods_code: GoodsCode,
    /// Smaregi's stock summed over the counted stores (may be negative).
    pub smaregi: i64,
    /// `None`: NextEngine does not know the goods.
    pub nextengine: Option<NeFigures>,
    pub pending: i64,
    pub in_files: i64,
    /// Web orders held in NextEngine that Smaregi has not been told of.
    pub web_orders: i64,
    /// Free stock NextEngine should have once everything in flight landed.
    pub expected_free: i64,
    /// Free stock NextEngine will have once everything in flight landed.
    pub actual_free: i64,
    /// actual − expected: positive when NextEngine holds too much.
    pub difference: i64,
    /// The `zaiko_su` delta 「揃える」 would upload; `None` when no correction
    /// is safe or allowed (see [`DriftLine::why_not_corrected`]).
    pub correction: Option<i64>,
    pub causes: Vec<DriftCause>,
}

impl DriftLine {
    pub fn cause_text(&self) -> String {
        if self.causes.is_empty() {
            return "不明".into();
        }
        self.causes
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(" / ")
    }

    pub fn why_not_corrected(&self) -> Option<&'static str> {
        if self.correction.is_some() {
            None
        } else if self.nextengine.is_none() {
            Some("ネクストエンジンに未登録のため補正できません")
        } else if self.causes.contains(&DriftCause::HeldFile) {
            Some("確認待ちのファイルが決まるまで補正しません")
        } else if self.causes.contains(&DriftCause::QueueFailed) {
            Some("失敗したファイルの「未反映の行を再アップロード」で送ってください")
        } else if self.in_files != 0 {
            Some("処理中のファイルがあるため補正しません")
        } else {
            Some("在庫マスタがネクストエンジンのため報告のみです")
        }
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCheck {
    pub id: String,
    pub tenant_id: crate::TenantId,
    pub checked_at: DateTime<Utc>,
    pub master: StockMaster,
    /// Goods codes compared (mapped, valid, not set goods).
    pub goods_compared: usize,
    pub set_goods_skipped: usize,
    /// Smaregi products with stock but no valid goods code.
    pub unmapped_products: usize,
    /// Goods whose figures moved between the two readings: left for the next
    /// check rather than reported on a moving target.
    pub unsettled: Vec<GoodsCode>,
    /// Largest difference first.
    pub lines: Vec<DriftLine>,
}

impl DriftCheck {
    /// The correction deltas 「揃える」 would upload, by goods code.
    pub fn corrections(&self) -> Vec<UploadLine> {
        let mut lines: Vec<UploadLine> = self
            .lines
            .iter()
            .filter_map(|l| {
                l.correction.filter(|d| *d != 0).map(|delta| UploadLine {
                    goods_code: l.goods_code.clone(),
                    delta,
                })
            })
            .collect();
        lines.sort_by(|a, b| a.goods_code.cmp(&b.goods_code));
        lines
    }
}

/// Smaregi's stock per goods code over the counted stores, and the products
/// without a valid code. Pure: mapping and store filter as the batcher has them.
pub fn smaregi_by_goods(
    counted_stores: Option<&[String]>,
    map: &ProductMap,
    rows: &[SmaregiStock],
) -> (BTreeMap<GoodsCode, i64>, usize) {
    let mut sums: BTreeMap<GoodsCode, i64> = BTreeMap::new();
    let mut unmapped: BTreeSet<&str> = BTreeSet::new();
    for row in rows {
        if let Some(stores) = counted_stores
            && !stores.iter().any(|s| s == row.store_id.as_str())
        {
            continue;
        }
        match map.goods_code(row.product_id.as_str()) {
            Some(code) if crate::goods_code::is_valid_goods_code(code) => {
                let sum = sums.entry(GoodsCode::from(code)).or_default();
                *sum = sum.saturating_add(row.amount);
            }
            _ => {
                unmapped.insert(row.product_id.as_str());
            }
        }
    }
    (sums, unmapped.len())
}

/// Compares each goods of `smaregi` (set goods removed by the caller) and
/// returns the lines whose difference is not zero, largest first.
pub fn compare(
    master: StockMaster,
    smaregi: &BTreeMap<GoodsCode, i64>,
    nextengine: &HashMap<GoodsCode, NeFigures>,
    in_flight: &InFlight,
    web_orders: &WebOrders,
) -> Vec<DriftLine> {
    let mut lines = Vec::new();
    for (code, &sum) in smaregi {
        let pending = in_flight.pending.get(code).copied().unwrap_or(0);
        let in_files = in_flight.files.get(code).copied().unwrap_or(0);
        let Some(ne) = nextengine.get(code).copied() else {
            lines.push(DriftLine {
                goods_code: code.clone(),
                smaregi: sum,
                nextengine: None,
                pending,
                in_files,
                web_orders: 0,
                expected_free: sum.max(0),
                actual_free: 0,
                difference: -sum.max(0),
                correction: None,
                causes: vec![DriftCause::UnknownToNextEngine],
            });
            continue;
        };
        let orders = match web_orders {
            WebOrders::NotImported => ne.allocated,
            WebOrders::Unshipped(by_goods) => by_goods.get(code).copied().unwrap_or(0),
        };
        let expected_free = sum.max(0).saturating_sub(orders);
        let actual_free = ne.free.saturating_add(pending).saturating_add(in_files);
        let difference = actual_free.saturating_sub(expected_free);
        if difference == 0 {
            continue;
        }
        let held = in_flight.held.contains_key(code);
        let correctable = master == StockMaster::Smaregi && !held && in_files == 0;
        lines.push(DriftLine {
            goods_code: code.clone(),
            smaregi: sum,
            nextengine: Some(ne),
            pending,
            in_files,
            web_orders: orders,
            expected_free,
            actual_free,
            difference,
            correction: correctable.then_some(-difference),
            causes: if held {
                vec![DriftCause::HeldFile]
            } else {
                vec![]
            },
        });
    }
    sort_lines(&mut lines);
    lines
}

fn sort_lines(lines: &mut [DriftLine]) {
    lines.sort_by(|a, b| {
        b.difference
            .unsigned_abs()
            .cmp(&a.difference.unsigned_abs())
            .then_with(|| a.goods_code.cmp(&b.goods_code))
    });
}

/// Keeps the lines of the second reading that the first reading had with the
/// same difference; the codes that moved between the readings are returned
/// apart, so a change racing the check never shows as drift.
pub fn confirm(first: &[DriftLine], second: Vec<DriftLine>) -> (Vec<DriftLine>, Vec<GoodsCode>) {
    let before: HashMap<&GoodsCode, i64> = first
        .iter()
        .map(|l| (&l.goods_code, l.difference))
        .collect();
    let mut moved: BTreeSet<GoodsCode> = first
        .iter()
        .filter(|l| !second.iter().any(|s| s.goods_code == l.goods_code))
        .map(|l| l.goods_code.clone())
        .collect();
    let mut kept = Vec::new();
    for line in second {
        match before.get(&line.goods_code) {
            Some(&d) if d == line.difference => kept.push(line),
            _ => {
                moved.insert(line.goods_code);
            }
        }
    }
    (kept, moved.into_iter().collect())
}

/// Adds what is known of each line's cause, given the rows behind it.
pub fn explain(
    lines: &mut [DriftLine],
    evidence: &Evidence,
    smaregi_rows: &[SmaregiStock],
    map: &ProductMap,
) {
    let mut rows_of: HashMap<&str, Vec<&SmaregiStock>> = HashMap::new();
    for row in smaregi_rows {
        if let Some(code) = map.goods_code(row.product_id.as_str()) {
            rows_of.entry(code).or_default().push(row);
        }
    }
    for line in lines.iter_mut() {
        if line.nextengine.is_none() || line.causes.contains(&DriftCause::HeldFile) {
            continue;
        }
        let code = &line.goods_code;
        if evidence.failed_rows.contains_key(code) {
            line.causes.push(DriftCause::QueueFailed);
            // 「未反映の行を再アップロード」 of that file would send the same
            // rows: a correction beside it would count them twice.
            line.correction = None;
        }
        if evidence.parked_unregistered.contains(code) {
            line.causes.push(DriftCause::ParkedWhileUnregistered);
        }
        if !line.causes.is_empty() || line.pending != 0 || line.in_files != 0 {
            continue;
        }
        let rows = rows_of
            .get(code.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let known: Vec<Option<i64>> = rows
            .iter()
            .map(|r| {
                evidence
                    .mirror
                    .get(&(r.store_id.clone(), r.product_id.clone()))
                    .copied()
            })
            .collect();
        let missed = rows
            .iter()
            .zip(&known)
            .any(|(r, k)| k.is_some_and(|k| k != r.amount));
        line.causes.push(if missed {
            DriftCause::MissedSmaregiChange
        } else if known.iter().all(Option::is_none) && !evidence.ever_uploaded.contains(code) {
            DriftCause::BeforeConnection
        } else {
            DriftCause::ChangedInNextEngine
        });
    }
}

/// The CSV of every line (UTF-8 with BOM so a spreadsheet opens the Japanese
/// headers; CRLF like every file the service writes).
pub fn render_drift_csv(check: &DriftCheck) -> Vec<u8> {
    let mut out = Vec::from("\u{feff}".as_bytes());
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(&mut out);
    let header = [
        "商品コード",
        "スマレジ在庫",
        "ネクストエンジン在庫数",
        "引当数",
        "フリー在庫数",
        "未送信の増減",
        "処理中ファイルの増減",
        "スマレジ未反映の受注",
        "期待フリー在庫",
        "反映後フリー在庫",
        "差異",
        "補正",
        "原因",
    ];
    writer.write_record(header).expect("write to Vec");
    for l in &check.lines {
        let ne = |f: fn(&NeFigures) -> i64| l.nextengine.as_ref().map(f).map(|v| v.to_string());
        writer
            .write_record([
                l.goods_code.to_string(),
                l.smaregi.to_string(),
                ne(|n| n.stock).unwrap_or_default(),
                ne(|n| n.allocated).unwrap_or_default(),
                ne(|n| n.free).unwrap_or_default(),
                l.pending.to_string(),
                l.in_files.to_string(),
                l.web_orders.to_string(),
                l.expected_free.to_string(),
                l.actual_free.to_string(),
                l.difference.to_string(),
                l.correction.map(|c| c.to_string()).unwrap_or_default(),
                l.cause_text(),
            ])
            .expect("write to Vec");
    }
    writer.flush().expect("flush to Vec");
    drop(writer);
    out
}

/// The next daily check after `now`: `hour` o'clock Japan time, today's if it
/// is still ahead, else tomorrow's.
pub fn next_daily_at(now: DateTime<Utc>, hour: u32) -> DateTime<Utc> {
    let local = crate::time::to_jst(now);
    let today = local
        .date()
        .and_hms_opt(hour.min(23), 0, 0)
        .expect("an hour below 24 is a time");
    let at = if today > local {
        today
    } else {
        today + chrono::Duration::days(1)
    };
    crate::time::from_jst(at)
}

/// The file name of a check's CSV, as the mail attaches it.
pub fn drift_csv_file_name(check: &DriftCheck) -> String {
    format!(
        "drift_{}.csv",
        crate::time::to_jst(check.checked_at).format("%Y%m%d_%H%M%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> GoodsCode {
        GoodsCode::from(c)
    }

    fn ne(stock: i64, allocated: i64) -> NeFigures {
        NeFigures {
            stock,
            allocated,
            free: stock - allocated,
        }
    }

    fn row(store: &str, product: &str, amount: i64) -> SmaregiStock {
        SmaregiStock {
            store_id: store.into(),
            product_id: product.into(),
            amount,
        }
    }

    #[test]
    fn the_daily_check_is_at_its_hour_in_japan() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 17:00 UTC = 02:00 JST: today's 03:00 JST is ahead.
        assert_eq!(
            next_daily_at(at("2026-12-01T17:00:00Z"), 3),
            at("2026-12-01T18:00:00Z")
        );
        // Exactly at the hour: the next is a day later, never the same instant twice.
        assert_eq!(
            next_daily_at(at("2026-12-01T18:00:00Z"), 3),
            at("2026-12-02T18:00:00Z")
        );
        assert_eq!(
            next_daily_at(at("2026-12-01T19:30:00Z"), 3),
            at("2026-12-02T18:00:00Z")
        );
    }

    #[test]
    fn counted_stores_are_summed_and_others_left_out() {
        let rows = [row("1", "A", 3), row("2", "A", 4), row("3", "A", 100)];
        let stores = vec!["1".to_string(), "2".to_string()];
        let (sums, unmapped) = smaregi_by_goods(Some(&stores), &ProductMap::Identity, &rows);
        assert_eq!(sums[&code("A")], 7);
        assert_eq!(unmapped, 0);
        let (all, _) = smaregi_by_goods(None, &ProductMap::Identity, &rows);
        assert_eq!(all[&code("A")], 107);
    }

    #[test]
    fn products_without_a_valid_code_are_counted_not_compared() {
        let map = ProductMap::for_mode(
            crate::tenant::MappingMode::Table,
            [
                crate::ProductPair::new("1", "GOOD-1"),
                crate::ProductPair::new("2", "bad code"),
            ],
        );
        let rows = [row("1", "1", 1), row("1", "2", 1), row("1", "3", 1)];
        let (sums, unmapped) = smaregi_by_goods(None, &map, &rows);
        assert_eq!(sums.keys().collect::<Vec<_>>(), vec![&code("GOOD-1")]);
        assert_eq!(unmapped, 2);
    }

    #[test]
    fn negative_smaregi_stock_is_expected_as_zero() {
        let smaregi = BTreeMap::from([(code("A"), -3), (code("B"), -3)]);
        let nextengine = HashMap::from([(code("A"), ne(0, 0)), (code("B"), ne(2, 0))]);
        let lines = compare(
            StockMaster::Smaregi,
            &smaregi,
            &nextengine,
            &InFlight::default(),
            &WebOrders::NotImported,
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].goods_code, code("B"));
        assert_eq!(lines[0].expected_free, 0);
        assert_eq!(lines[0].difference, 2);
        assert_eq!(lines[0].correction, Some(-2));
    }

    #[test]
    fn what_is_in_flight_is_no_drift() {
        // Smaregi sold 2 (10 → 8); one is pending, one is in a queued file.
        let smaregi = BTreeMap::from([(code("A"), 8)]);
        let nextengine = HashMap::from([(code("A"), ne(10, 0))]);
        let mut in_flight = InFlight::default();
        in_flight.pending.insert(code("A"), -1);
        in_flight.files.insert(code("A"), -1);
        let lines = compare(
            StockMaster::Smaregi,
            &smaregi,
            &nextengine,
            &in_flight,
            &WebOrders::NotImported,
        );
        assert!(lines.is_empty(), "{lines:?}");
    }

    #[test]
    fn orders_not_yet_shipped_into_smaregi_are_no_drift() {
        // NextEngine allocated 3 for a web order the import has not shipped yet.
        let smaregi = BTreeMap::from([(code("A"), 10)]);
        let nextengine = HashMap::from([(code("A"), ne(10, 3))]);
        let unshipped = WebOrders::Unshipped(BTreeMap::from([(code("A"), 3)]));
        let none = compare(
            StockMaster::Smaregi,
            &smaregi,
            &nextengine,
            &InFlight::default(),
            &unshipped,
        );
        assert!(none.is_empty(), "{none:?}");
        // Once shipped into Smaregi (10 → 7) the allocation is no longer Smaregi's news.
        let shipped = BTreeMap::from([(code("A"), 7)]);
        let lines = compare(
            StockMaster::Smaregi,
            &shipped,
            &nextengine,
            &InFlight::default(),
            &WebOrders::Unshipped(BTreeMap::new()),
        );
        assert!(lines.is_empty(), "{lines:?}");
        // Without the import, an allocation is a web order Smaregi never hears of.
        let off = compare(
            StockMaster::Smaregi,
            &smaregi,
            &nextengine,
            &InFlight::default(),
            &WebOrders::NotImported,
        );
        assert!(off.is_empty(), "{off:?}");
    }

    #[test]
    fn a_file_in_flight_or_held_blocks_the_correction_and_nextengine_master_only_reports() {
        let smaregi = BTreeMap::from([(code("A"), 5), (code("B"), 5), (code("C"), 5)]);
        let nextengine = HashMap::from([
            (code("A"), ne(9, 0)),
            (code("B"), ne(9, 0)),
            (code("C"), ne(9, 0)),
        ]);
        let mut in_flight = InFlight::default();
        in_flight.files.insert(code("A"), 1);
        in_flight
            .held
            .insert(code("B"), BTreeSet::from(["b1".to_string()]));
        let lines = compare(
            StockMaster::Smaregi,
            &smaregi,
            &nextengine,
            &in_flight,
            &WebOrders::NotImported,
        );
        let by: HashMap<_, _> = lines.iter().map(|l| (l.goods_code.as_str(), l)).collect();
        assert_eq!(by["A"].correction, None);
        assert_eq!(by["A"].difference, 5);
        assert_eq!(by["B"].correction, None);
        assert_eq!(by["B"].causes, vec![DriftCause::HeldFile]);
        assert_eq!(by["C"].correction, Some(-4));
        let report_only = compare(
            StockMaster::NextEngine,
            &smaregi,
            &nextengine,
            &InFlight::default(),
            &WebOrders::NotImported,
        );
        assert_eq!(report_only.len(), 3);
        assert!(report_only.iter().all(|l| l.correction.is_none()));
    }

    #[test]
    fn goods_unknown_to_nextengine_are_lines_without_correction() {
        let smaregi = BTreeMap::from([(code("NEW"), 4)]);
        let lines = compare(
            StockMaster::Smaregi,
            &smaregi,
            &HashMap::new(),
            &InFlight::default(),
            &WebOrders::NotImported,
        );
        assert_eq!(lines[0].causes, vec![DriftCause::UnknownToNextEngine]);
        assert_eq!(lines[0].correction, None);
        assert!(lines[0].why_not_corrected().is_some());
    }

    #[test]
    fn only_differences_seen_twice_alike_are_kept() {
        let line = |c: &str, d: i64| DriftLine {
            goods_code: code(c),
            smaregi: 0,
            nextengine: Some(ne(d, 0)),
            pending: 0,
            in_files: 0,
            web_orders: 0,
            expected_free: 0,
            actual_free: d,
            difference: d,
            correction: Some(-d),
            causes: vec![],
        };
        let first = vec![line("A", 2), line("B", 3), line("C", 1)];
        let second = vec![line("A", 2), line("B", 4), line("D", 1)];
        let (kept, moved) = confirm(&first, second);
        assert_eq!(kept, vec![line("A", 2)]);
        assert_eq!(moved, vec![code("B"), code("C"), code("D")]);
    }

    #[test]
    fn causes_follow_the_evidence() {
        let mut lines: Vec<DriftLine> = ["F", "P", "M", "N", "E"]
            .iter()
            .map(|c| DriftLine {
                goods_code: code(c),
                smaregi: 5,
                nextengine: Some(ne(6, 0)),
                pending: 0,
                in_files: 0,
                web_orders: 0,
                expected_free: 5,
                actual_free: 6,
                difference: 1,
                correction: Some(-1),
                causes: vec![],
            })
            .collect();
        let rows: Vec<SmaregiStock> = ["F", "P", "M", "N", "E"]
            .iter()
            .map(|c| row("1", c, 5))
            .collect();
        let mut evidence = Evidence::default();
        evidence
            .failed_rows
            .insert(code("F"), BTreeSet::from(["b1".into()]));
        evidence.parked_unregistered.insert(code("P"));
        evidence.mirror.insert(("1".into(), "M".into()), 7);
        evidence.mirror.insert(("1".into(), "E".into()), 5);
        explain(&mut lines, &evidence, &rows, &ProductMap::Identity);
        let corrected: Vec<_> = lines.iter().map(|l| l.correction).collect();
        assert_eq!(
            corrected,
            [None, Some(-1), Some(-1), Some(-1), Some(-1)],
            "a failed file's rows go with its re-upload, never twice"
        );
        let causes: Vec<_> = lines.iter().map(|l| l.causes.clone()).collect();
        assert_eq!(
            causes,
            vec![
                vec![DriftCause::QueueFailed],
                vec![DriftCause::ParkedWhileUnregistered],
                vec![DriftCause::MissedSmaregiChange],
                vec![DriftCause::BeforeConnection],
                vec![DriftCause::ChangedInNextEngine],
            ]
        );
    }

    #[test]
    fn corrections_skip_lines_without_one_and_the_csv_has_every_line() {
        let check = DriftCheck {
            id: "d1".into(),
            tenant_id: crate::TenantId("t".into()),
            checked_at: DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            master: StockMaster::Smaregi,
            goods_compared: 3,
            set_goods_skipped: 0,
            unmapped_products: 0,
            unsettled: vec![],
            lines: compare(
                StockMaster::Smaregi,
                &BTreeMap::from([(code("A"), 1), (code("B"), 9), (code("Z"), 1)]),
                &HashMap::from([(code("A"), ne(4, 0)), (code("B"), ne(2, 0))]),
                &InFlight::default(),
                &WebOrders::NotImported,
            ),
        };
        assert_eq!(
            check.corrections(),
            vec![
                UploadLine {
                    goods_code: code("A"),
                    delta: -3
                },
                UploadLine {
                    goods_code: code("B"),
                    delta: 7
                },
            ]
        );
        let csv = String::from_utf8(render_drift_csv(&check)).unwrap();
        assert!(csv.starts_with("\u{feff}商品コード,"));
        assert_eq!(csv.matches("\r\n").count(), 4, "{csv}");
        assert!(csv.contains("Z,1,,,,0,0,0,1,0,-1,,ネクストエンジンに未登録"));
        assert_eq!(drift_csv_file_name(&check), "drift_20261201_090000.csv");
    }
}
