//! トークンの再取得: 「再取得」 → NextEngine sign-in → `/nextengine/callback`.

use super::login::CsrfForm;
use super::session::{self, NE_BIND_COOKIE, Session};
use super::{AdminError, AdminResult, Flash, redirect_with};
use crate::AdminContext;
use crate::tenants::{ConnectError, TenantError, connect_nextengine};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use sne_ports::nextengine::NeError;

pub const UPDATED_MESSAGE: &str = "トークンを更新しました";

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
    let retry = "管理画面の「再取得」からもう一度やり直してください。";
    match error {
        ConnectError::NextEngine(NeError::Api { code, .. } | NeError::Token { code, .. }) => {
            match code.as_str() {
                "001001" | "001002" => format!(
                    "ネクストエンジンからのログイン情報が不足していました (エラーコード {code})。{retry}"
                ),
                "001003" => format!(
                    "ネクストエンジンにこのサービスが認められませんでした (エラーコード {code})。お手数ですがサービスの運営者にお問い合わせください。"
                ),
                "001004" => format!(
                    "ネクストエンジンのログインの有効期限が切れているか、すでに使用済みです (エラーコード {code})。{retry}"
                ),
                "001005" => format!(
                    "ネクストエンジンのログイン情報が一致しませんでした (エラーコード {code})。{retry}"
                ),
                _ => format!(
                    "ネクストエンジンでトークンを取得できませんでした (エラーコード {code})。{retry}"
                ),
            }
        }
        ConnectError::NextEngine(NeError::Suspended { code, .. }) => format!(
            "ネクストエンジンのご利用が停止されているため、接続できませんでした (エラーコード {code})。ネクストエンジンのご契約の状況とアプリの利用状況を確認してください。"
        ),
        ConnectError::NextEngine(NeError::Busy { .. }) => {
            format!("ネクストエンジンが混み合っているか、メンテナンス中です。時間をおいて{retry}")
        }
        ConnectError::NextEngine(NeError::Transport(_)) => {
            format!("ネクストエンジンに接続できませんでした。時間をおいて{retry}")
        }
        ConnectError::NextEngine(NeError::Store(_))
        | ConnectError::Tenant(TenantError::Store(_)) => {
            format!("トークンを保存できませんでした。時間をおいて{retry}")
        }
        ConnectError::Tenant(e) => format!("トークンを保存できませんでした ({e})。{retry}"),
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
            "この画面からトークンの再取得は開始されていないか、有効期限が切れています。管理画面の「再取得」をクリックしてやり直してください。".into(),
        ));
    }
    let uid = query.uid.trim();
    let state = query.state.trim();
    let result = if uid.is_empty() || state.is_empty() {
        Err(Flash::error(
            "ネクストエンジンからのログイン情報が不足していました。管理画面の「再取得」からもう一度やり直してください。",
        ))
    } else {
        match connect_nextengine(&ctx, &session.tenant.id, uid, state).await {
            Ok(auth) => {
                tracing::info!(tenant = %session.tenant.id, company = %auth.company_ne_id, "NextEngine tokens re-acquired");
                let mut flash = Flash::ok(UPDATED_MESSAGE);
                if !auth.company_name.is_empty() {
                    flash.lines.push(format!("接続先: {}", auth.company_name));
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
