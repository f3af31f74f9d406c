//! Pure parts of the order import (manual 「(β版)ネクストエンジン受注数取り込み」):
//! NextEngine's order rows grouped into orders, their goods mapped to Smaregi
//! products, the idempotency token of each order's shipment, and the record
//! of what the import did with each order.

use crate::TenantId;
use crate::mapping::ProductMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One 受注明細 joined with its 受注伝票 header fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeOrderRow {
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub import_date: Option<NaiveDateTime>,
    pub cancel_type_id: String,
    pub row_no: String,
    pub goods_id: String,
    pub quantity: i64,
    pub row_cancelled: bool,
    pub row_deleted: bool,
    pub last_modified_newest: Option<NaiveDateTime>,
}

/// One NextEngine order, assembled from its rows.
#[derive(Debug, Clone)]
pub struct NeOrder {
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub cancel_type_id: String,
    pub import_date: Option<NaiveDateTime>,
    pub rows: BTreeMap<String, NeOrderRow>,
}

impl NeOrder {
    pub fn is_valid(&self) -> bool {
        self.cancel_type_id.trim() == "0"
    }

    /// goods code × quantity of the live rows, summed per goods code.
    pub fn goods_lines(&self) -> Vec<(String, i64)> {
        let mut lines: BTreeMap<String, i64> = BTreeMap::new();
        for row in self
            .rows
            .values()
            .filter(|r| !r.row_cancelled && !r.row_deleted)
        {
            *lines.entry(row.goods_id.trim().to_string()).or_default() += row.quantity;
        }
        lines.into_iter().filter(|(_, q)| *q != 0).collect()
    }
}

/// Rows per 伝票番号, in 伝票番号 order. A row read twice (an overlap between
/// pages) counts once. Orders NextEngine received before the switch-on are
/// dropped here too, whatever the server filtered.
pub fn group_orders(rows: Vec<NeOrderRow>, imported_since: NaiveDateTime) -> Vec<NeOrder> {
    let mut orders: BTreeMap<(u64, String), NeOrder> = BTreeMap::new();
    for row in rows {
        let id = row.receive_order_id.trim().to_string();
        if id.is_empty() {
            continue;
        }
        let order = orders.entry(order_key(&id)).or_insert_with(|| NeOrder {
            receive_order_id: id.clone(),
            shop_order_no: row.shop_order_no.clone(),
            cancel_type_id: row.cancel_type_id.clone(),
            import_date: row.import_date,
            rows: BTreeMap::new(),
        });
        // Header fields of the most recently modified row win.
        let newer = order
            .rows
            .values()
            .filter_map(|r| r.last_modified_newest)
            .max()
            .is_none_or(|t| row.last_modified_newest.is_some_and(|n| n >= t));
        if newer {
            order.cancel_type_id = row.cancel_type_id.clone();
            order.shop_order_no = row.shop_order_no.clone();
            order.import_date = row.import_date.or(order.import_date);
        }
        order.rows.insert(row.row_no.trim().to_string(), row);
    }
    orders
        .into_values()
        .filter(|o| o.import_date.is_none_or(|d| d >= imported_since))
        .collect()
}

/// goods code × quantity → Smaregi product id × quantity, one row per product.
pub fn shipment_lines(
    map: &ProductMap,
    lines: &[(String, i64)],
) -> Result<Vec<(String, i64)>, String> {
    let mut unmapped = Vec::new();
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for (goods_code, quantity) in lines {
        if *quantity < 0 {
            return Err(format!(
                "商品コード {goods_code} の受注数がマイナスです ({quantity})"
            ));
        }
        match map.product_id(goods_code) {
            Some(product_id) if !product_id.is_empty() => {
                *out.entry(product_id.to_string()).or_default() += quantity
            }
            _ => unmapped.push(goods_code.as_str()),
        }
    }
    if !unmapped.is_empty() {
        return Err(format!(
            "スマレジの商品に対応付けられない商品コードがあります: {}",
            unmapped.join(", ")
        ));
    }
    Ok(out.into_iter().filter(|(_, q)| *q > 0).collect())
}

/// Numeric 伝票番号 sort, text as a fallback.
pub fn order_key(id: &str) -> (u64, String) {
    (id.parse().unwrap_or(u64::MAX), id.to_string())
}

/// Smaregi's idempotency token for the shipment of one order: the same for every
/// attempt, different for every tenant, order and purpose.
pub fn shipment_token(tenant: &TenantId, receive_order_id: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\u{1f}{receive_order_id}\u{1f}shipment"));
    // 32 characters: unique enough, and short of any plausible column size.
    hex::encode(digest)[..32].to_string()
}

// ---------------------------------------------------------------- import records

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderImportState {
    /// A shipment call may have been made; look it up before calling again.
    Started,
    Imported {
        shipment_id: String,
    },
    Failed {
        reason: String,
    },
    CancelledAfterImport {
        shipment_id: String,
    },
}

impl OrderImportState {
    pub fn tag(&self) -> &'static str {
        match self {
            OrderImportState::Started => "started",
            OrderImportState::Imported { .. } => "imported",
            OrderImportState::Failed { .. } => "failed",
            OrderImportState::CancelledAfterImport { .. } => "cancelled_after_import",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderImportRecord {
    pub tenant_id: TenantId,
    /// NextEngine 伝票番号.
    pub receive_order_id: String,
    pub shop_order_no: String,
    pub state: OrderImportState,
    /// The `token` sent with `shipment_upd`; derived from tenant and order.
    pub shipment_token: String,
    /// goods code × quantity as imported.
    pub lines: Vec<(String, i64)>,
    pub updated_at: DateTime<Utc>,
    /// Whether a run report has told the operator about the current state.
    pub reported: bool,
    /// The import run that wrote the record. Import runs hold a per-tenant lease,
    /// so a `Started` record is only ever resolved after its run's lease ran out.
    #[serde(default)]
    pub owner: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProductPair;
    use crate::tenant::MappingMode;
    use crate::time::parse_api_time;

    fn row(id: &str, no: &str, goods: &str, qty: i64, at: &str) -> NeOrderRow {
        NeOrderRow {
            receive_order_id: id.into(),
            shop_order_no: format!("S-{id}"),
            import_date: parse_api_time("2026-01-01 10:00:00"),
            cancel_type_id: "0".into(),
            row_no: no.into(),
            goods_id: goods.into(),
            quantity: qty,
            row_cancelled: false,
            row_deleted: false,
            last_modified_newest: parse_api_time(at),
        }
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let t = TenantId("t_a".into());
        assert_eq!(shipment_token(&t, "1"), shipment_token(&t, "1"));
        assert_ne!(shipment_token(&t, "1"), shipment_token(&t, "2"));
        assert_ne!(
            shipment_token(&t, "1"),
            shipment_token(&TenantId("t_b".into()), "1")
        );
        assert_eq!(shipment_token(&t, "1").len(), 32);
    }

    #[test]
    fn rows_group_per_order_and_live_rows_sum_per_goods() {
        let mut cancelled = row("2", "3", "A", 5, "2026-01-01 10:00:00");
        cancelled.row_cancelled = true;
        let mut deleted = row("2", "4", "B", 5, "2026-01-01 10:00:00");
        deleted.row_deleted = true;
        let old = {
            let mut r = row("3", "1", "A", 1, "2026-01-01 10:00:00");
            r.import_date = parse_api_time("2025-12-31 23:59:59");
            r
        };
        let since = parse_api_time("2026-01-01 00:00:00").unwrap();
        let orders = group_orders(
            vec![
                row("10", "1", "A", 1, "2026-01-01 10:00:00"),
                row("2", "1", "A", 1, "2026-01-01 10:00:00"),
                row("2", "2", "A", 2, "2026-01-01 10:00:00"),
                row("2", "2", "A", 2, "2026-01-01 10:00:00"),
                cancelled,
                deleted,
                old,
            ],
            since,
        );
        let ids: Vec<_> = orders.iter().map(|o| o.receive_order_id.as_str()).collect();
        assert_eq!(ids, ["2", "10"]);
        assert_eq!(orders[0].goods_lines(), vec![("A".to_string(), 3)]);
    }

    #[test]
    fn mapping_sums_per_product_and_names_unmapped_codes() {
        let map = ProductMap::for_mode(
            MappingMode::Table,
            [ProductPair::new("1", "A"), ProductPair::new("2", "B")],
        );
        assert_eq!(
            shipment_lines(&map, &[("A".into(), 1), ("B".into(), 2)]).unwrap(),
            vec![("1".to_string(), 1), ("2".to_string(), 2)]
        );
        let err = shipment_lines(&map, &[("A".into(), 1), ("X".into(), 1)]).unwrap_err();
        assert!(err.contains('X'), "{err}");
    }
}
