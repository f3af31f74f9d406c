//! The order section of a run's report: every order whose state the operator
//! has not been told yet, marked told once the report is durably stored.

use crate::Context;
use sne_domain::TenantId;
use sne_domain::orders::order_key;
use sne_domain::report::{FailedOrder, ImportedOrder, OrderSection};
use sne_ports::{OrderImportState, StoreError};

/// Records read when composing the report section (newest first).
const REPORT_SCAN: usize = 1000;

/// Marks the orders of a stored report as told, so the next report does not
/// repeat them. A state that moved on since (e.g. cancelled) stays untold.
pub async fn mark_reported(ctx: &Context, tenant: &TenantId, section: &OrderSection) {
    let ids = section
        .imported
        .iter()
        .map(|o| &o.receive_order_id)
        .chain(section.failed.iter().map(|o| &o.receive_order_id))
        .chain(
            section
                .cancelled_after_import
                .iter()
                .map(|o| &o.receive_order_id),
        );
    for id in ids {
        let Ok(Some(mut record)) = ctx.storage.order_record(tenant, id).await else {
            continue;
        };
        if record.reported || record.state == OrderImportState::Started {
            continue;
        }
        record.reported = true;
        let tag = record.state.tag();
        if let Err(e) = ctx.storage.put_order_record(&record, Some(tag)).await {
            tracing::debug!(tenant = %tenant, order = %id, error = %e, "order not marked as reported");
        }
    }
}

pub(super) async fn unreported_section(
    ctx: &Context,
    tenant: &TenantId,
) -> Result<OrderSection, StoreError> {
    let mut records = ctx.storage.order_records(tenant, REPORT_SCAN).await?;
    records.retain(|r| !r.reported);
    records.sort_by_key(|r| order_key(&r.receive_order_id));
    let mut section = OrderSection::default();
    for r in records {
        let imported = |shipment_id: &str| ImportedOrder {
            receive_order_id: r.receive_order_id.clone(),
            shop_order_no: r.shop_order_no.clone(),
            shipment_id: shipment_id.to_string(),
            lines: r.lines.len(),
        };
        match &r.state {
            OrderImportState::Started => {}
            OrderImportState::Imported { shipment_id } => {
                section.imported.push(imported(shipment_id))
            }
            OrderImportState::CancelledAfterImport { shipment_id } => {
                section.cancelled_after_import.push(imported(shipment_id))
            }
            OrderImportState::Failed { reason } => section.failed.push(FailedOrder {
                receive_order_id: r.receive_order_id.clone(),
                shop_order_no: r.shop_order_no.clone(),
                reason: reason.clone(),
                lines: r.lines.clone(),
            }),
        }
    }
    Ok(section)
}
