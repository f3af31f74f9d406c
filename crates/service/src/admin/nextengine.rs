//! トークンの再取得: 「再取得」 → NextEngine sign-in → `/nextengine/callback`.

use super::login::CsrfForm;
use super::session::{self, NE_BIND_COOKIE, Session};
use super::{AdminError, AdminResult, Flash, redirect_with};
use crate::AdminContext;
use crate::tenants::{ConnectError, TenantError, connect_nextengine};
use crate::wording;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use sne_ports::nextengine::NeError;

/// Remembers in a signed cookie that this session started the sign-in, then hands
/// the browser to NextEngine.
pub async fn reacquire(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let mut response = Redirect::to(&ctx.nextengine.sign_in_url()).into_response();
    session::add_header(&mut response, session::ne_binding_cookie(&ctx, &session));
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Callback {
    uid: String,
    state: String,
}

/// `/api_neauth`'s refusals in the operator's words.
fn explain(error: &ConnectError) -> String {
    match error {
        ConnectError::NextEngine(NeError::Api { code, .. } | NeError::Token { code, .. }) => {
            match code.as_str() {
                "001001" | "001002" => wording::ne_login_incomplete(code),
                "001003" => wording::ne_service_not_allowed(code),
                "001004" => wording::ne_login_expired(code),
                "001005" => wording::ne_login_mismatch(code),
                _ => wording::ne_token_not_obtained(code),
            }
        }
        ConnectError::NextEngine(NeError::Suspended { code, .. }) => wording::ne_suspended(code),
        ConnectError::NextEngine(NeError::Busy { .. }) => wording::ne_busy(),
        ConnectError::NextEngine(NeError::Transport(_)) => wording::ne_unreachable(),
        ConnectError::NextEngine(NeError::Store(_))
        | ConnectError::Tenant(TenantError::Store(_)) => wording::ne_token_not_saved(),
        ConnectError::Tenant(e) => wording::ne_token_not_saved_because(e),
    }
}

pub async fn callback(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<Callback>,
) -> AdminResult {
    // Without the binding, someone else's sign-in (a link sent to the operator)
    // could attach a foreign NextEngine company to this tenant.
    if !session::ne_binding_matches(&ctx, &headers, &session) {
        tracing::warn!(tenant = %session.tenant.id, "NextEngine callback without a matching 再取得");
        return Err(AdminError::Forbidden(
            wording::NE_REACQUIRE_NOT_STARTED.into(),
        ));
    }
    let uid = query.uid.trim();
    let state = query.state.trim();
    let result = if uid.is_empty() || state.is_empty() {
        Err(Flash::error(wording::NE_CALLBACK_INCOMPLETE))
    } else {
        match connect_nextengine(&ctx, &session.tenant.id, uid, state).await {
            Ok(auth) => {
                tracing::info!(tenant = %session.tenant.id, company = %auth.company_ne_id, "NextEngine tokens re-acquired");
                let mut flash = Flash::ok(wording::NE_TOKEN_UPDATED);
                if !auth.company_name.is_empty() {
                    flash
                        .lines
                        .push(wording::ne_connected_to(&auth.company_name));
                }
                Ok(flash)
            }
            Err(e) => {
                tracing::warn!(tenant = %session.tenant.id, error = %e, "NextEngine re-acquisition failed");
                Err(Flash::error(explain(&e)))
            }
        }
    };
    let mut response = redirect_with(&ctx, "/", result.unwrap_or_else(|e| e));
    // One sign-in per 「再取得」.
    session::add_header(&mut response, session::clear_cookie(&ctx, NE_BIND_COOKIE));
    Ok(response)
}
