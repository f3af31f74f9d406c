//! The admin screen's and the CLI's 「(β版)ネクストエンジン受注数取り込み」 setting:
//! trimmed, proven with read calls against Smaregi, then saved.

use crate::Core;
use crate::wording;
use chrono::SubsecRound;
use sne_domain::TenantId;
use sne_domain::tenant::{OrderImportSettings, SmaregiCredentials, Tenant};
use sne_ports::StoreError;
use sne_ports::smaregi::SmaregiError;

pub use crate::wording::{
    ORDER_IMPORT_NEEDS_STOCK_HISTORY as HISTORY_REQUIRED, ORDER_IMPORT_STARTED as STARTED_MESSAGE,
    ORDER_IMPORT_STOPPED as STOPPED_MESSAGE,
};

/// The admin screen's 「(β版)ネクストエンジン受注数取り込み」 form.
#[derive(Debug, Clone, Default)]
pub struct OrderImportForm {
    /// 「実行する」 (true) / 「実行しない」 (false).
    pub enabled: bool,
    pub contract_id: String,
    pub store_id: String,
    pub access_token: String,
}

/// A saved setting: the manual's message and anything the operator should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderImportSaved {
    pub message: &'static str,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrderImportError {
    /// The input or Smaregi's answer to the check; nothing was saved.
    #[error("{0}")]
    Invalid(String),
    #[error("{}", wording::ORDER_IMPORT_UNKNOWN_TENANT)]
    UnknownTenant,
    #[error("{}", wording::order_import_not_saved(.0))]
    Store(#[from] StoreError),
}

/// Pasted values arrive with spaces, full-width spaces and line breaks around
/// (or inside) them; none of the three fields can contain whitespace.
fn clean(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Saves the order-import setting after proving it works: the credentials are
/// accepted, 「24.出荷情報取得」 and 「17.出荷情報更新」 are enabled and the store
/// exists. Switching off needs no check. Reused by the CLI and the admin screen.
pub async fn configure_order_import(
    ctx: &Core,
    tenant_id: &TenantId,
    form: OrderImportForm,
) -> Result<OrderImportSaved, OrderImportError> {
    let mut warnings = Vec::new();
    if !form.enabled {
        // The credentials stay: they also give the uploader history access.
        update_tenant_with(ctx, tenant_id, |t| t.order_import.enabled = false).await?;
        tracing::info!(tenant = %tenant_id, "order import switched off");
        return Ok(OrderImportSaved {
            message: STOPPED_MESSAGE,
            warnings,
        });
    }
    let tenant = ctx
        .storage
        .tenant(tenant_id)
        .await?
        .ok_or(OrderImportError::UnknownTenant)?;
    let (creds, store_id) = validate_form(&tenant, &form)?;
    check_with_smaregi(ctx, &creds, &store_id, &mut warnings).await?;
    // History reading goes on before the import does, so every shipment the
    // import creates is read back from StockHistory as 出荷 and never uploaded.
    let tenant =
        update_tenant_with(ctx, tenant_id, |t| t.smaregi_api = Some(creds.clone())).await?;
    if crate::stock_history::history_mode_since(ctx, &tenant)
        .await
        .is_none()
    {
        let message = crate::stock_history::set_history_mode(ctx, &tenant, true)
            .await
            .map_err(|e| OrderImportError::Invalid(e.to_string()))?;
        warnings.push(wording::order_import_stock_history_started(message));
    }
    let now = ctx.clock.now().trunc_subsecs(0);
    update_tenant_with(ctx, tenant_id, |t| {
        let was_on = t.order_import.enabled;
        t.smaregi_api = Some(creds.clone());
        t.order_import = OrderImportSettings {
            enabled: true,
            store_id: Some(store_id.clone()),
            // Re-saving while on (e.g. a new token) must not skip the orders
            // received since the import was first switched on.
            enabled_at: match (was_on, t.order_import.enabled_at) {
                (true, Some(at)) => Some(at),
                _ => Some(now),
            },
        };
    })
    .await?;
    tracing::info!(tenant = %tenant_id, "order import switched on");
    Ok(OrderImportSaved {
        message: STARTED_MESSAGE,
        warnings,
    })
}

/// Applies `change` to the fresh tenant and saves it. Another writer (admin
/// screen, token rotation) may bump the version between read and write; the
/// change is then applied again on the newer tenant.
async fn update_tenant_with(
    ctx: &Core,
    tenant_id: &TenantId,
    change: impl Fn(&mut Tenant),
) -> Result<Tenant, OrderImportError> {
    for _ in 0..5 {
        let mut tenant = ctx
            .storage
            .tenant(tenant_id)
            .await?
            .ok_or(OrderImportError::UnknownTenant)?;
        change(&mut tenant);
        match ctx.storage.update_tenant(&tenant).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OrderImportError::Store(StoreError::Conflict(
        wording::ORDER_IMPORT_TENANT_KEPT_CHANGING.into(),
    )))
}

fn validate_form(
    tenant: &Tenant,
    form: &OrderImportForm,
) -> Result<(SmaregiCredentials, String), OrderImportError> {
    let invalid = |m: &str| OrderImportError::Invalid(m.to_string());
    let contract_id = clean(&form.contract_id);
    let store_id = clean(&form.store_id);
    let access_token = clean(&form.access_token);
    if contract_id.is_empty() {
        return Err(invalid(wording::ORDER_IMPORT_CONTRACT_ID_MISSING));
    }
    if store_id.is_empty() {
        return Err(invalid(wording::ORDER_IMPORT_STORE_ID_MISSING));
    }
    if access_token.is_empty() {
        return Err(invalid(wording::ORDER_IMPORT_ACCESS_TOKEN_MISSING));
    }
    // Shipments must land in the contract whose pushes this tenant receives,
    // or their 出荷 could never be recognised (and another shop's stock would move).
    if contract_id != tenant.contract_id {
        return Err(OrderImportError::Invalid(
            wording::order_import_contract_mismatch(&contract_id, &tenant.contract_id),
        ));
    }
    if !store_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(wording::ORDER_IMPORT_STORE_ID_NOT_DIGITS));
    }
    if !access_token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(wording::ORDER_IMPORT_ACCESS_TOKEN_BAD_CHARS));
    }
    Ok((
        SmaregiCredentials {
            contract_id,
            access_token,
        },
        store_id,
    ))
}

fn smaregi_check_error(what: &str, e: &SmaregiError) -> OrderImportError {
    OrderImportError::Invalid(match e {
        SmaregiError::Transport(_) => wording::ORDER_IMPORT_SMAREGI_UNREACHABLE.to_string(),
        SmaregiError::Auth { message, .. } | SmaregiError::Api { message, .. } => {
            wording::order_import_check_refused(what, message)
        }
    })
}

async fn check_with_smaregi(
    ctx: &Core,
    creds: &SmaregiCredentials,
    store_id: &str,
    warnings: &mut Vec<String>,
) -> Result<(), OrderImportError> {
    // 1. shipment_ref: proves the credentials and 「24.出荷情報取得」.
    ctx.smaregi
        .shipments_by_identification(creds, "smaregi-ne-settings-check")
        .await
        .map_err(|e| smaregi_check_error(wording::ORDER_IMPORT_CHECK_SHIPMENTS, &e))?;
    // 2. The store, from 店舗情報参照 (store_ref). Only read calls: a test write
    //    that a lenient Smaregi accepted would be a real 未出荷 shipment.
    //    「17.出荷情報更新」 cannot be proven without writing; a disabled one stops
    //    the first import with a text that names it.
    match ctx.smaregi.stores(creds).await {
        Ok(stores) if stores.iter().any(|s| s.store_id == store_id) => {}
        Ok(_) => {
            return Err(OrderImportError::Invalid(
                wording::order_import_store_missing(store_id),
            ));
        }
        Err(e @ SmaregiError::Transport(_)) => return Err(smaregi_check_error("", &e)),
        Err(_) => warnings.push(wording::order_import_store_unchecked(store_id)),
    }
    // The import needs stock-history reading (see `import_orders`), which needs
    // 在庫情報参照 (stock_ref) with the same credentials.
    ctx.smaregi
        .latest_stock_history_id(creds)
        .await
        .map_err(|e| smaregi_check_error(wording::ORDER_IMPORT_CHECK_STOCK_HISTORY, &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_removed_from_pasted_values() {
        assert_eq!(clean(" abc\r\n\tdef\u{3000}"), "abcdef");
    }
}
