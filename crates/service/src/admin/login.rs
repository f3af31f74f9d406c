//! Login, logout and the login rate limit.

use super::session::{self, PRELOGIN_COOKIE, SESSION_COOKIE, Session};
use super::views::{Layout, LoginPage};
use super::{AdminResult, Flash, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::tenants::{hash_password, verify_password};
use crate::wording;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sne_domain::TenantId;
use sne_ports::LoginAttempt;
use std::sync::OnceLock;

pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;

/// The login form has no session yet; its CSRF token is keyed by a random
/// pre-login cookie instead, so another site cannot log a browser into our screen.
fn login_csrf(ctx: &AdminContext, prelogin: &str) -> String {
    session::csrf_token(
        ctx.config.session_secret.as_bytes(),
        &TenantId("-login-".into()),
        prelogin,
    )
}

fn login_page(
    ctx: &AdminContext,
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
            title: wording::LOGIN_TITLE,
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

pub async fn form(State(ctx): State<AdminContext>, headers: HeaderMap) -> AdminResult {
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

/// Argon2 takes tens of milliseconds of CPU by design; on the blocking pool a
/// flood of logins cannot stall the webhook and the jobs served by the same runtime.
async fn verify_off_runtime(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

pub async fn submit(
    State(ctx): State<AdminContext>,
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
            Some(wording::LOGIN_PAGE_EXPIRED.into()),
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
        let _ = verify_off_runtime(&form.password, dummy_hash()).await;
        return refuse(wording::LOGIN_WRONG);
    };
    // The attempt is counted before the password is checked, in the same atomic
    // step as the check against the limit: parallel requests cannot all pass a
    // check made before any of them has failed, so at most MAX_FAILURES
    // passwords are ever tried per window.
    let window = chrono::Duration::seconds(FAILURE_WINDOW_SECS);
    let nth = match ctx
        .storage
        .reserve_login_attempt(&tenant.id, ctx.clock.now(), window, MAX_FAILURES)
        .await?
    {
        LoginAttempt::Allowed { nth } => nth,
        LoginAttempt::Locked { .. } => {
            // No hash to check: the answer says "locked" whatever the password,
            // so a flood against a locked login costs no CPU.
            tracing::warn!(tenant = %tenant.id, "admin login refused: too many failures");
            return refuse(wording::LOGIN_LOCKED);
        }
    };
    if !verify_off_runtime(&form.password, &tenant.admin_password_hash).await {
        tracing::warn!(tenant = %tenant.id, failures = nth, "admin login failed");
        return refuse(if nth >= MAX_FAILURES {
            wording::LOGIN_LOCKED
        } else {
            wording::LOGIN_WRONG
        });
    }
    ctx.storage.reset_login_attempts(&tenant.id).await?;
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
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> AdminResult<Response> {
    session.check_csrf(form.csrf.as_deref())?;
    session::bump_epoch(&ctx, &session.tenant.id).await?;
    tracing::info!(tenant = %session.tenant.id, "admin logout");
    let mut response = redirect_with(&ctx, "/login", Flash::ok(wording::LOGGED_OUT));
    session::add_header(&mut response, session::clear_cookie(&ctx, SESSION_COOKIE));
    Ok(response)
}
