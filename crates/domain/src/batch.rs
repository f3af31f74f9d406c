//! From completed changes to the lines of one upload: rules, store filter,
//! product mapping, per-goods sums, goods-code validation.

use crate::change::CompletedChange;
use crate::goods_code::is_valid_goods_code;
use crate::mapping::ProductMap;
use crate::report::{ParkReason, ParkedLine};
use crate::rules::reported_delta;
use crate::tenant::StockMaster;
use crate::upload_csv::UploadLine;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchPlan {
    /// Lines to upload, sorted by goods code, zero sums dropped.
    pub lines: Vec<UploadLine>,
    /// Lines that must not be uploaded, with why.
    pub parked: Vec<ParkedLine>,
    /// Changes of stores that do not count for the tenant.
    pub changes_of_other_stores: usize,
}

pub fn plan_batch(
    master: StockMaster,
    counted_stores: Option<&[String]>,
    map: &ProductMap,
    changes: &[CompletedChange],
) -> BatchPlan {
    let mut sums: BTreeMap<String, (i64, ParkReason)> = BTreeMap::new();
    let mut plan = BatchPlan::default();
    for change in changes {
        if let Some(stores) = counted_stores
            && !stores.iter().any(|s| s == &change.store_id)
        {
            plan.changes_of_other_stores += 1;
            continue;
        }
        // Without a known stock after, the increase is taken in full (noted by completion).
        let after = change.after.unwrap_or(change.amount.max(0));
        let delta = reported_delta(master, change.division.as_ref(), change.amount, after);
        let (code, reason) = match map.goods_code(&change.product_id) {
            Some(code) if is_valid_goods_code(code) => (code.to_string(), None),
            Some(code) => (code.to_string(), Some(ParkReason::InvalidCode)),
            // Unmapped: the line shows the product id where the code would be.
            None => (change.product_id.to_string(), Some(ParkReason::Unmapped)),
        };
        let entry = sums.entry(code).or_insert((0, ParkReason::NotRegistered));
        entry.0 = entry.0.saturating_add(delta);
        if let Some(reason) = reason {
            entry.1 = reason;
        }
    }
    for (goods_code, (delta, reason)) in sums {
        if delta == 0 {
            continue;
        }
        if reason == ParkReason::NotRegistered {
            plan.lines.push(UploadLine {
                goods_code: goods_code.into(),
                delta,
            });
        } else {
            plan.parked.push(ParkedLine {
                goods_code,
                delta,
                reason,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProductPair;
    use crate::StockDivision;
    use crate::tenant::MappingMode;

    fn change(
        store: &str,
        product: &str,
        division: &str,
        amount: i64,
        after: i64,
    ) -> CompletedChange {
        CompletedChange {
            store_id: store.into(),
            product_id: product.into(),
            division: Some(StockDivision::from_code(division)),
            amount,
            after: Some(after),
            changed_at: None,
            history_id: None,
        }
    }

    #[test]
    fn sums_per_product_and_drops_zero_sums() {
        let plan = plan_batch(
            StockMaster::Smaregi,
            None,
            &ProductMap::Identity,
            &[
                change("1", "A", "02", -1, 4),
                change("2", "A", "02", -2, 7),
                change("1", "B", "02", -1, 1),
                change("1", "B", "12", 1, 2),
                change("1", "C", "10", -5, 0),
            ],
        );
        assert_eq!(
            plan.lines,
            vec![UploadLine {
                goods_code: "A".into(),
                delta: -3
            }]
        );
    }

    #[test]
    fn only_counted_stores_count_and_transfers_between_them_net_to_zero() {
        let counted = vec!["1".to_string(), "2".to_string()];
        let plan = plan_batch(
            StockMaster::Smaregi,
            Some(&counted),
            &ProductMap::Identity,
            &[
                change("1", "A", "04", -3, 2),
                change("2", "A", "05", 3, 3),
                change("9", "A", "02", -1, 0),
            ],
        );
        assert!(plan.lines.is_empty());
        assert_eq!(plan.changes_of_other_stores, 1);
    }

    #[test]
    fn invalid_and_unmapped_codes_are_parked_not_uploaded() {
        let map = ProductMap::for_mode(
            MappingMode::Table,
            [
                ProductPair::new("1", "OK-1"),
                ProductPair::new("2", "商品2"),
            ],
        );
        let plan = plan_batch(
            StockMaster::Smaregi,
            None,
            &map,
            &[
                change("1", "1", "02", -1, 0),
                change("1", "2", "02", -1, 0),
                change("1", "3", "02", -1, 0),
            ],
        );
        assert_eq!(plan.lines.len(), 1);
        assert_eq!(plan.lines[0].goods_code, "OK-1");
        let reasons: Vec<_> = plan
            .parked
            .iter()
            .map(|p| (p.goods_code.as_str(), p.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("3", ParkReason::Unmapped),
                ("商品2", ParkReason::InvalidCode)
            ]
        );
    }
}
