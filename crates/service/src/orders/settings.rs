//! The admin screen's and the CLI's 「(β版)ネクストエンジン受注数取り込み」 setting:
//! trimmed, proven with read calls against Smaregi, then saved.

use crate::Core;
use chrono::SubsecRound;
use sne_domain::TenantId;
use sne_domain::tenant::{OrderImportSettings, SmaregiCredentials, Tenant};
use sne_ports::StoreError;
use sne_ports::smaregi::SmaregiError;

pub const STARTED_MESSAGE: &str = "受注数取り込みを開始しました";
pub const STOPPED_MESSAGE: &str = "受注数取り込みを停止しました";
pub const HISTORY_REQUIRED: &str = "受注数取り込みには在庫変動履歴の読み取りが必要です。取り込んだ出荷がネクストエンジンへ二重に通知されないよう、取り込みを止めています。管理画面の設定で「在庫変動履歴の読み取り」を有効にしてください";

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
    #[error("テナントが見つかりません")]
    UnknownTenant,
    #[error("設定を保存できませんでした: {0}")]
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
        warnings.push(format!(
            "{message}。受注数取り込みの出荷が二重に通知されないよう、在庫の増減はスマレジの在庫変動履歴から読み取ります"
        ));
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
        "テナント設定が更新され続けています。もう一度お試しください".into(),
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
        return Err(invalid("スマレジ契約IDを入力してください"));
    }
    if store_id.is_empty() {
        return Err(invalid("取り込み先スマレジ側店舗IDを入力してください"));
    }
    if access_token.is_empty() {
        return Err(invalid("スマレジアクセストークンを入力してください"));
    }
    // Shipments must land in the contract whose pushes this tenant receives,
    // or their 出荷 could never be recognised (and another shop's stock would move).
    if contract_id != tenant.contract_id {
        return Err(OrderImportError::Invalid(format!(
            "スマレジ契約ID {contract_id} はこのアカウントの契約ID ({}) と一致しません",
            tenant.contract_id
        )));
    }
    if !store_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            "取り込み先スマレジ側店舗IDは半角数字で入力してください (スマレジ管理画面 店舗 > 店舗一覧 の店舗ID)",
        ));
    }
    if !access_token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "スマレジアクセストークンに使用できない文字が含まれています。コピーした内容を確認してください",
        ));
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
        SmaregiError::Transport(_) => {
            "スマレジに接続できませんでした。時間をおいてもう一度「設定」をクリックしてください"
                .to_string()
        }
        SmaregiError::Auth { message, .. } | SmaregiError::Api { message, .. } => {
            format!("{what} (スマレジの応答: {message})")
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
        .map_err(|e| {
            smaregi_check_error(
                "スマレジ契約ID・スマレジアクセストークンが正しいこと、スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 の「受信機能を利用する」が「利用する」で、機能設定の「24.出荷情報取得」が「利用する」になっていることを確認してください",
                &e,
            )
        })?;
    // 2. The store, from 店舗情報参照 (store_ref). Only read calls: a test write
    //    that a lenient Smaregi accepted would be a real 未出荷 shipment.
    //    「17.出荷情報更新」 cannot be proven without writing; a disabled one stops
    //    the first import with a text that names it.
    match ctx.smaregi.stores(creds).await {
        Ok(stores) if stores.iter().any(|s| s.store_id == store_id) => {}
        Ok(_) => {
            return Err(OrderImportError::Invalid(format!(
                "取り込み先スマレジ側店舗ID {store_id} の店舗がスマレジにありません。スマレジ管理画面 店舗 > 店舗一覧 で店舗IDを確認してください"
            )));
        }
        Err(e @ SmaregiError::Transport(_)) => return Err(smaregi_check_error("", &e)),
        Err(_) => warnings.push(format!(
            "スマレジAPI設定の機能設定で「店舗情報参照」が利用できないため、店舗ID {store_id} を確認できませんでした。店舗IDが正しいことをスマレジ管理画面 店舗 > 店舗一覧 で確認してください(誤っている場合は最初の取り込みで止まり、通知メールでお知らせします)"
        )),
    }
    // The import needs stock-history reading (see `import_orders`), which needs
    // 在庫情報参照 (stock_ref) with the same credentials.
    ctx.smaregi
        .latest_stock_history_id(creds)
        .await
        .map_err(|e| {
            smaregi_check_error(
                "受注数取り込みには在庫変動履歴の読み取りが必要です。スマレジAPI設定の機能設定で「在庫情報参照」も「利用する」にしてください",
                &e,
            )
        })?;
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
