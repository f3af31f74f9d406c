//! design.md §3 (manual §5 and §6): what one Smaregi stock change means for NextEngine.

use crate::StockDivision;
use crate::tenant::StockMaster;

/// The delta reported to NextEngine for one change.
///
/// `after` is the stock after the change. NextEngine cannot hold negative stock
/// while Smaregi can, so an increase only reports the part that lands above zero;
/// 棚卸 and ロス may rewrite past stock and are reported as they are; 出荷 is the
/// web sale NextEngine already counted.
pub fn reported_delta(
    master: StockMaster,
    division: Option<&StockDivision>,
    amount: i64,
    after: i64,
) -> i64 {
    match (master, division) {
        (_, Some(StockDivision::Shipment)) => return 0,
        (StockMaster::NextEngine, Some(StockDivision::Sale | StockDivision::Return)) => {}
        (StockMaster::NextEngine, _) => return 0,
        (StockMaster::Smaregi, Some(StockDivision::Stocktaking | StockDivision::Loss)) => {
            return amount;
        }
        (StockMaster::Smaregi, _) => {}
    }
    if amount <= 0 || after >= amount {
        amount
    } else if after <= 0 {
        0
    } else {
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StockDivision as D;
    use proptest::prelude::*;

    const SM: StockMaster = StockMaster::Smaregi;

    #[test]
    fn stocktaking_is_reported_whatever_the_stock() {
        assert_eq!(reported_delta(SM, Some(&D::Stocktaking), 3, -2), 3);
        assert_eq!(reported_delta(SM, Some(&D::Stocktaking), -4, -10), -4);
    }

    #[test]
    fn loss_is_reported_whatever_the_stock() {
        assert_eq!(reported_delta(SM, Some(&D::Loss), -2, -7), -2);
        assert_eq!(reported_delta(SM, Some(&D::Loss), 5, 1), 5);
    }

    #[test]
    fn shipment_is_never_reported() {
        assert_eq!(reported_delta(SM, Some(&D::Shipment), -3, 4), 0);
        assert_eq!(reported_delta(SM, Some(&D::Shipment), 3, 4), 0);
        assert_eq!(
            reported_delta(StockMaster::NextEngine, Some(&D::Shipment), -3, 4),
            0
        );
    }

    #[test]
    fn decreases_are_reported_whatever_the_stock() {
        assert_eq!(reported_delta(SM, Some(&D::Sale), -2, 5), -2);
        assert_eq!(reported_delta(SM, Some(&D::Sale), -2, -3), -2);
    }

    #[test]
    fn manual_example_normal_increase() {
        // before 2, +3, after 5 → +3
        assert_eq!(reported_delta(SM, Some(&D::PurchaseReceipt), 3, 5), 3);
    }

    #[test]
    fn manual_example_increase_staying_negative() {
        // before −5, +3, after −2 → 0
        assert_eq!(reported_delta(SM, Some(&D::PurchaseReceipt), 3, -2), 0);
    }

    #[test]
    fn manual_example_increase_crossing_zero() {
        // before −3, +5, after 2 → +2
        assert_eq!(reported_delta(SM, Some(&D::PurchaseReceipt), 5, 2), 2);
    }

    #[test]
    fn increase_landing_exactly_on_zero_reports_nothing() {
        assert_eq!(reported_delta(SM, Some(&D::Return), 3, 0), 0);
    }

    #[test]
    fn increase_equal_to_after_is_reported_in_full() {
        // before 0, +3, after 3: the boundary row `after ≥ amount`.
        assert_eq!(reported_delta(SM, Some(&D::PurchaseReceipt), 3, 3), 3);
    }

    #[test]
    fn missing_or_unknown_division_counts_as_other() {
        assert_eq!(reported_delta(SM, None, 5, 2), 2);
        assert_eq!(reported_delta(SM, Some(&D::Other("99".into())), 3, -2), 0);
    }

    #[test]
    fn nextengine_master_reports_only_sales_and_returns() {
        let ne = StockMaster::NextEngine;
        assert_eq!(reported_delta(ne, Some(&D::Sale), -1, 3), -1);
        assert_eq!(reported_delta(ne, Some(&D::Return), 1, 4), 1);
        assert_eq!(reported_delta(ne, Some(&D::Return), 3, -1), 0);
        assert_eq!(reported_delta(ne, Some(&D::PurchaseReceipt), 5, 5), 0);
        assert_eq!(reported_delta(ne, Some(&D::Stocktaking), 5, 5), 0);
        assert_eq!(reported_delta(ne, Some(&D::Loss), -5, 5), 0);
        assert_eq!(reported_delta(ne, None, -5, 5), 0);
    }

    fn any_division() -> impl Strategy<Value = Option<StockDivision>> {
        prop_oneof![
            Just(None),
            (1u8..=20).prop_map(|n| Some(StockDivision::from_code(&format!("{n:02}")))),
        ]
    }

    proptest! {
        #[test]
        fn invariants(division in any_division(), amount in -100_000i64..100_000, after in -100_000i64..100_000,
                      ne_master in any::<bool>()) {
            let master = if ne_master { StockMaster::NextEngine } else { StockMaster::Smaregi };
            let delta = reported_delta(master, division.as_ref(), amount, after);
            prop_assert!(delta.abs() <= amount.abs());
            prop_assert!(delta == 0 || delta.signum() == amount.signum());
            if division == Some(StockDivision::Shipment) {
                prop_assert_eq!(delta, 0);
            }
            if master == StockMaster::Smaregi
                && matches!(division, Some(StockDivision::Stocktaking | StockDivision::Loss)) {
                prop_assert_eq!(delta, amount);
            }
            if amount < 0 && division != Some(StockDivision::Shipment) && master == StockMaster::Smaregi {
                prop_assert_eq!(delta, amount);
            }
        }
    }
}
