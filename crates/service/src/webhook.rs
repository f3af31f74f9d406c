//! `POST /smaregi/webhook`: Smaregi's 在庫情報送信 (design.md §4).
//!
//! The answer is `200` only once every change is in the ledger; a resend lands on
//! the same dedupe keys and changes nothing. `400 code_mismatch` is the exact text
//! Smaregi shows operators (manual §1), so it must not vary.

use crate::{AdminContext, Core};
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sne_domain::TenantId;
use sne_domain::push::{MAX_PARAMS_BYTES, parse_stock_send};
use sne_ports::{Clock, RunTrigger, StockLedger, TenantStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// What the webhook uses, and all the webhook Lambda is given (its role reaches
/// the table and the run queue only): the tenants a push is authenticated
/// against, the ledger it is stored in, the clock that stamps it, and the
/// trigger that asks for the tenant's run once it is stored.
#[derive(Clone)]
pub struct WebhookContext {
    pub tenants: Arc<dyn TenantStore>,
    pub ledger: Arc<dyn StockLedger>,
    pub clock: Arc<dyn Clock>,
    pub runs: Arc<dyn RunTrigger>,
    /// The Platform webhook's secret header (`None`: that endpoint refuses all).
    pub platform_secret: Option<crate::context::WebhookSecret>,
}

impl WebhookContext {
    /// The webhook's part of a core, where one process also serves the rest.
    pub fn of(core: &Core, runs: Arc<dyn RunTrigger>) -> Self {
        WebhookContext {
            tenants: core.storage.clone(),
            ledger: core.storage.clone(),
            clock: core.clock.clone(),
            runs,
            platform_secret: core.config.platform_webhook_secret.clone(),
        }
    }
}

impl FromRef<AdminContext> for WebhookContext {
    fn from_ref(ctx: &AdminContext) -> Self {
        WebhookContext::of(ctx, ctx.trigger.clone())
    }
}

/// Longest the webhook waits for its run request: the push is stored already,
/// and the schedule uploads it if the request is lost.
const RUN_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks for the run of a stored push; never fails the push.
pub(crate) async fn request_run(ctx: &WebhookContext, tenant: &TenantId) {
    match tokio::time::timeout(RUN_REQUEST_TIMEOUT, ctx.runs.changes_stored(tenant)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(tenant = %tenant, error = %e, "run not requested; the schedule uploads the push")
        }
        Err(_) => {
            tracing::warn!(tenant = %tenant, "run request timed out; the schedule uploads the push")
        }
    }
}

/// Largest request body accepted: the params limit plus room for the other fields
/// and URL encoding.
pub const MAX_BODY_BYTES: usize = MAX_PARAMS_BYTES * 3 + 64 * 1024;

pub const CODE_MISMATCH: &str = "code_mismatch";

/// Whether `name` is the 個別設定 pair `wanted` (written with `_`, lower case) as a
/// shop may have typed it: letters in any case, and `-` for `_`, because proxies
/// such as nginx drop header names with underscores by default, so README
/// recommends `contract-id`. Nothing else is loosened: `contractid` is not
/// `contract_id`.
fn is_pair_name(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len()
        && name.bytes().zip(wanted.bytes()).all(|(got, want)| {
            let got = match got.to_ascii_lowercase() {
                b'-' => b'_',
                other => other,
            };
            got == want
        })
}

/// The value of the pair `wanted`: from the form fields if any field has that
/// name, else from the headers. Several fields (or headers) with that name must
/// agree; if they do not, the pair counts as missing and the push is refused.
fn pair_value(form: &[(String, String)], headers: &HeaderMap, wanted: &str) -> String {
    let mut values: Vec<String> = form
        .iter()
        .filter(|(name, _)| is_pair_name(name, wanted))
        .map(|(_, value)| value.trim().to_string())
        .collect();
    if values.is_empty() {
        values = headers
            .iter()
            .filter(|(name, _)| is_pair_name(name.as_str(), wanted))
            .map(|(_, value)| value.to_str().map(|v| v.trim().to_string()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| vec![String::new()]);
    }
    match values.split_first() {
        Some((first, rest)) if rest.iter().all(|v| v == first) => first.clone(),
        _ => String::new(),
    }
}

pub async fn receive(
    State(ctx): State<WebhookContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(fields) => fields,
        Err(_) => return (StatusCode::BAD_REQUEST, "malformed form body").into_response(),
    };
    let contract_id = pair_value(&fields, &headers, "contract_id");
    let code = pair_value(&fields, &headers, "code");
    // The push itself keeps its exact field names; a repeated one counts last.
    let form: HashMap<String, String> = fields.into_iter().collect();

    let tenant = match ctx.tenants.tenant_by_contract(&contract_id).await {
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
    let changes = push.changes(ctx.clock.now());
    match ctx.ledger.append_changes(&tenant.id, &changes).await {
        Ok(outcome) => {
            tracing::info!(
                tenant = %tenant.id,
                appended = outcome.appended,
                duplicates = outcome.duplicates,
                "push stored"
            );
            if outcome.appended > 0 {
                request_run(&ctx, &tenant.id).await;
            }
            (StatusCode::OK, "OK").into_response()
        }
        Err(e) => {
            tracing::error!(tenant = %tenant.id, error = %e, "push not stored");
            (StatusCode::INTERNAL_SERVER_ERROR, "storage unavailable").into_response()
        }
    }
}
