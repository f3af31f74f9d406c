//! `POST /smaregi/webhook`: Smaregi's 在庫情報送信 (SPEC §4).
//!
//! The answer is `200` only once every change is in the ledger; a resend lands on
//! the same dedupe keys and changes nothing. `400 code_mismatch` is the exact text
//! Smaregi shows operators (manual §1), so it must not vary.

use crate::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sne_domain::StockChange;
use sne_domain::change::{ChangeSource, dedupe_keys};
use sne_domain::push::{MAX_PARAMS_BYTES, parse_stock_send};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// Largest request body accepted: the params limit plus room for the other fields
/// and URL encoding.
pub const MAX_BODY_BYTES: usize = MAX_PARAMS_BYTES * 3 + 64 * 1024;

pub const CODE_MISMATCH: &str = "code_mismatch";

pub async fn receive(State(ctx): State<Context>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => return (StatusCode::BAD_REQUEST, "malformed form body").into_response(),
    };
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .or_else(|| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let contract_id = field("contract_id");
    let code = field("code");

    let tenant = match ctx.storage.tenant_by_contract(&contract_id).await {
        Ok(tenant) => tenant,
        Err(e) => {
            tracing::error!(error = %e, "tenant lookup failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response();
        }
    };
    let Some(tenant) = tenant.filter(|t| {
        !contract_id.is_empty() && bool::from(t.customer_code.as_bytes().ct_eq(code.as_bytes()))
    }) else {
        tracing::warn!("push refused: unknown contract or wrong code");
        return (StatusCode::BAD_REQUEST, CODE_MISMATCH).into_response();
    };

    let proc_name = form.get("proc_name").map(String::as_str).unwrap_or("");
    let params = form.get("params").map(String::as_str).unwrap_or("");
    let push = match parse_stock_send(proc_name, params) {
        Ok(push) => push,
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "malformed push");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let received_at = ctx.clock.now();
    let changes: Vec<StockChange> = dedupe_keys(&push.rows, &push.fingerprint)
        .into_iter()
        .zip(&push.rows)
        .map(|(dedupe_key, row)| StockChange {
            dedupe_key,
            source: ChangeSource::Push,
            row: row.clone(),
            received_at,
        })
        .collect();
    match ctx.storage.append_changes(&tenant.id, &changes).await {
        Ok(outcome) => {
            tracing::info!(
                tenant = %tenant.id,
                appended = outcome.appended,
                duplicates = outcome.duplicates,
                "push stored"
            );
            (StatusCode::OK, "OK").into_response()
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "push not stored");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response()
        }
    }
}
