//! The Platform endpoints: `POST /smaregi/platform/webhook` (the app's one
//! webhook URL; `pos:stock` is stored, other events are acknowledged) and
//! `POST /smaregi/platform/contract` (the 利用者契約通知先URL).
//!
//! A webhook is authenticated by the developer-defined secret header
//! (compared in constant time) and its `smaregi-contract-id`; its ids are
//! stored as unresolved changes under their history-id keys before the `200`,
//! so a duplicate delivery — same `smaregi-event-id` or not — lands on the
//! same keys and changes nothing. Smaregi never retries: a `5xx` here is a
//! change the next run's backfill reads instead.

use super::intake::{PlatformError, unresolved_change};
use crate::AdminContext;
use crate::cursors::{PLATFORM_CONTRACT, Update};
use crate::webhook::{WebhookContext, request_run};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sne_domain::history_mode::HistorySource;
use sne_ports::smaregi::SmaregiError;
use subtle::ConstantTimeEq;

/// A `pos:stock` body: Smaregi's bulk updates stay well below this.
pub const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct StockEvent {
    #[serde(rename = "contractId")]
    contract_id: String,
    #[serde(default)]
    action: String,
    ids: Vec<StockEventId>,
}

#[derive(Deserialize)]
struct StockEventId {
    id: String,
    #[serde(rename = "productId")]
    product_id: String,
    #[serde(rename = "storeId")]
    store_id: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
}

pub async fn receive_stock(
    State(ctx): State<WebhookContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &ctx.platform_secret else {
        return (StatusCode::NOT_FOUND, "platform intake not configured").into_response();
    };
    let given = header(&headers, &secret.header);
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(secret.value.as_bytes())) {
        tracing::warn!("platform webhook refused: wrong or missing secret header");
        return (StatusCode::UNAUTHORIZED, "secret mismatch").into_response();
    }
    let contract_id = header(&headers, "smaregi-contract-id");
    let event = header(&headers, "smaregi-event");
    let event_id = header(&headers, "smaregi-event-id");
    if contract_id.is_empty() {
        return (StatusCode::BAD_REQUEST, "smaregi-contract-id missing").into_response();
    }
    let tenant = match ctx.tenants.tenant_by_contract(contract_id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            tracing::warn!(contract_id, "platform webhook for an unknown contract");
            return (StatusCode::NOT_FOUND, "unknown contract").into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "tenant lookup failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response();
        }
    };
    if event != "pos:stock" {
        tracing::info!(tenant = %tenant.id, event, event_id, "platform event acknowledged, not used");
        return StatusCode::OK.into_response();
    }
    let parsed: StockEvent = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed pos:stock body: {e}"),
            )
                .into_response();
        }
    };
    if parsed.contract_id != contract_id {
        return (
            StatusCode::BAD_REQUEST,
            "contractId differs from smaregi-contract-id",
        )
            .into_response();
    }
    let now = ctx.clock.now();
    let mut changes = Vec::with_capacity(parsed.ids.len());
    for entry in parsed.ids {
        let (Ok(id), false, false) = (
            entry.id.trim().parse::<u64>(),
            entry.product_id.trim().is_empty(),
            entry.store_id.trim().is_empty(),
        ) else {
            return (
                StatusCode::BAD_REQUEST,
                "an ids entry lacks a numeric id, productId or storeId",
            )
                .into_response();
        };
        changes.push(unresolved_change(
            id,
            entry.product_id.trim().into(),
            entry.store_id.trim().into(),
            now,
        ));
    }
    if tenant.stock_history.reader() != Some(HistorySource::Platform) {
        // The old intake counts these changes; switching over reads them
        // through the backfill.
        tracing::info!(tenant = %tenant.id, event_id, "pos:stock for a tenant on the old intake: not stored");
        return StatusCode::OK.into_response();
    }
    match ctx.ledger.append_changes(&tenant.id, &changes).await {
        Ok(outcome) => {
            tracing::info!(
                tenant = %tenant.id,
                event_id,
                action = parsed.action,
                appended = outcome.appended,
                duplicates = outcome.duplicates,
                "pos:stock stored"
            );
            if outcome.appended > 0 {
                request_run(&ctx, &tenant.id).await;
            }
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "pos:stock not stored");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response()
        }
    }
}

#[derive(Deserialize)]
struct ContractNotice {
    #[serde(rename = "contractId")]
    contract_id: String,
    event: String,
    action: String,
}

/// A contract notification is believed only as far as a token call agrees:
/// `start` makes the intake active once a token is granted, `end` and
/// `force-stop` suspend it once tokens are refused. Nothing in the request
/// itself proves it came from Smaregi.
pub async fn receive_contract(State(ctx): State<AdminContext>, body: Bytes) -> Response {
    let notice: ContractNotice = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed notification: {e}"),
            )
                .into_response();
        }
    };
    if notice.event != "AppSubscription" || notice.contract_id.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "not an AppSubscription notification",
        )
            .into_response();
    }
    let tenant = match ctx.storage.tenant_by_contract(&notice.contract_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::info!(
                contract_id = notice.contract_id,
                action = notice.action,
                "contract notification for a contract without tenant"
            );
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "tenant lookup failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response();
        }
    };
    let usable = ctx.platform.check_contract(&tenant.contract_id).await;
    let state = match (notice.action.as_str(), &usable) {
        ("end" | "force-stop", Err(SmaregiError::Auth { .. })) => {
            Some(format!("suspended:{}", notice.action))
        }
        (_, Ok(())) => Some("active".to_string()),
        _ => None,
    };
    let Some(state) = state else {
        tracing::warn!(tenant = %tenant.id, action = notice.action, "contract notification not confirmed by a token call; state kept");
        return StatusCode::OK.into_response();
    };
    match PLATFORM_CONTRACT
        .update(&ctx, &tenant.id, |_| Update::Set(state.clone()))
        .await
    {
        Ok(_) => {
            tracing::info!(tenant = %tenant.id, state, "platform contract state");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            let e = PlatformError::from(e);
            tracing::error!(tenant = %tenant.id, error = %e, "platform contract state not stored");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response()
        }
    }
}
