//! Login, logout and the login rate limit.

use super::session::{self, PRELOGIN_COOKIE, SESSION_COOKIE, Session};
use super::views::{Layout, LoginPage};
use super::{
    AdminError, AdminResult, Flash, LOGIN_FAILURES_CURSOR, page, redirect_with, take_flash,
};
use crate::Context;
use crate::tenants::{hash_password, verify_password};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sne_domain::TenantId;
use std::sync::OnceLock;

pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;
pub const LOCKED_MESSAGE: &str =
    "ログイン試行回数が多すぎます。しばらくしてから再度お試しください。";
pub const WRONG_MESSAGE: &str = "メールアドレスまたはパスワードが正しくありません。";

/// The login form has no session yet; its CSRF token is keyed by a random
/// pre-login cookie instead, so another site cannot log a browser into our screen.
fn login_csrf(ctx: &Context, prelogin: &str) -> String {
    session::csrf_token(
        ctx.config.session_secret.as_bytes(),
        &TenantId("-login-".into()),
        prelogin,
    )
}

fn login_page(
    ctx: &Context,
    headers: &HeaderMap,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> AdminResult {
    let prelogin = session::cookie(headers, PRELOGIN_COOKIE)
        .filter(|v| v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .unwrap_or_else(session::random_nonce);
    let (flash, clear) = take_flash(ctx, headers);
    let view = LoginPage {
        layout: Layout {
            title: "ログイン",
            active: "login",
            logged_in: false,
            tenant_name: String::new(),
            csrf: login_csrf(ctx, &prelogin),
            flash,
        },
        email,
        error,
    };
    let mut response = page(ctx, &view, clear)?;
    *response.status_mut() = status;
    session::add_header(
        &mut response,
        session::set_cookie(ctx, PRELOGIN_COOKIE, &prelogin, 3600),
    );
    Ok(response)
}

pub async fn form(State(ctx): State<Context>, headers: HeaderMap) -> AdminResult {
    if session::session_from_headers(&ctx, &headers).await.is_ok() {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(&ctx, &headers, String::new(), None, StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf: Option<String>,
    email: String,
    password: String,
}

/// A hash to verify against when the email is unknown, so both paths cost the same
/// and the answer does not reveal which addresses have an account.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("smaregi-ne dummy password"))
}

/// `<count>:<window start>` of the tenant's recent failures.
fn parse_failures(raw: Option<&str>) -> (u32, i64) {
    raw.and_then(|v| v.split_once(':'))
        .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)))
        .unwrap_or((0, 0))
}

async fn is_locked(ctx: &Context, tenant: &TenantId) -> Result<bool, AdminError> {
    let raw = ctx.storage.cursor(tenant, LOGIN_FAILURES_CURSOR).await?;
    let (count, start) = parse_failures(raw.as_deref());
    Ok(count >= MAX_FAILURES && ctx.clock.now().timestamp() < start + FAILURE_WINDOW_SECS)
}

/// Counts one failure; returns the count in the current window.
async fn record_failure(ctx: &Context, tenant: &TenantId) -> Result<u32, AdminError> {
    for _ in 0..10 {
        let now = ctx.clock.now().timestamp();
        let raw = ctx.storage.cursor(tenant, LOGIN_FAILURES_CURSOR).await?;
        let (count, start) = parse_failures(raw.as_deref());
        let (count, start) = if count == 0 || now >= start + FAILURE_WINDOW_SECS {
            (1, now)
        } else {
            (count + 1, start)
        };
        if ctx
            .storage
            .set_cursor(
                tenant,
                LOGIN_FAILURES_CURSOR,
                raw.as_deref(),
                &format!("{count}:{start}"),
            )
            .await?
        {
            return Ok(count);
        }
    }
    Err(AdminError::Internal(
        "login failure counter kept changing".into(),
    ))
}

async fn reset_failures(ctx: &Context, tenant: &TenantId) -> Result<(), AdminError> {
    let raw = ctx.storage.cursor(tenant, LOGIN_FAILURES_CURSOR).await?;
    if parse_failures(raw.as_deref()).0 > 0 {
        // Losing this race to a concurrent failure only keeps a stricter count.
        ctx.storage
            .set_cursor(tenant, LOGIN_FAILURES_CURSOR, raw.as_deref(), "0:0")
            .await?;
    }
    Ok(())
}

pub async fn submit(
    State(ctx): State<Context>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AdminResult {
    let csrf_ok = session::cookie(&headers, PRELOGIN_COOKIE)
        .zip(form.csrf.as_deref())
        .is_some_and(|(prelogin, token)| {
            use subtle::ConstantTimeEq;
            let expected = login_csrf(&ctx, prelogin);
            expected.len() == token.len() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
        });
    let email = form.email.trim().to_string();
    if !csrf_ok {
        return login_page(
            &ctx,
            &headers,
            email,
            Some("ページの有効期限が切れました。もう一度ログインしてください。".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let refuse = |message: &str| {
        login_page(
            &ctx,
            &headers,
            email.clone(),
            Some(message.to_string()),
            StatusCode::OK,
        )
    };
    let tenant = if email.is_empty() {
        None
    } else {
        ctx.storage.tenant_by_admin_email(&email).await?
    };
    let Some(tenant) = tenant else {
        let _ = verify_password(&form.password, dummy_hash());
        return refuse(WRONG_MESSAGE);
    };
    if is_locked(&ctx, &tenant.id).await? {
        let _ = verify_password(&form.password, dummy_hash());
        tracing::warn!(tenant = %tenant.id, "admin login refused: too many failures");
        return refuse(LOCKED_MESSAGE);
    }
    if !verify_password(&form.password, &tenant.admin_password_hash) {
        let count = record_failure(&ctx, &tenant.id).await?;
        tracing::warn!(tenant = %tenant.id, failures = count, "admin login failed");
        return refuse(if count >= MAX_FAILURES {
            LOCKED_MESSAGE
        } else {
            WRONG_MESSAGE
        });
    }
    reset_failures(&ctx, &tenant.id).await?;
    tracing::info!(tenant = %tenant.id, "admin login");
    let mut response = Redirect::to("/").into_response();
    session::add_header(
        &mut response,
        session::new_session_cookie(&ctx, &tenant.id).await?,
    );
    session::add_header(&mut response, session::clear_cookie(&ctx, PRELOGIN_COOKIE));
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// Ends every session of the tenant (all browsers), not just this one: a signed
/// cookie cannot be recalled, only outdated.
pub async fn logout(
    State(ctx): State<Context>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> AdminResult<Response> {
    session.check_csrf(form.csrf.as_deref())?;
    session::bump_epoch(&ctx, &session.tenant.id).await?;
    tracing::info!(tenant = %session.tenant.id, "admin logout");
    let mut response = redirect_with(&ctx, "/login", Flash::ok("ログアウトしました。"));
    session::add_header(&mut response, session::clear_cookie(&ctx, SESSION_COOKIE));
    Ok(response)
}
