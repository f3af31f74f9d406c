//! The 管理画面 (design.md §6): server-rendered pages for one tenant's operator.
//!
//! Security model, in one place:
//! - sessions are signed cookies (see `session`), revoked per tenant by an epoch;
//! - every POST checks the session's CSRF token before it reads anything else;
//! - every read goes through the session's tenant id, so another tenant's batch,
//!   CSV or staged upload is simply not found;
//! - secrets (passwords, tokens) are never rendered back; the お客様専用コード is the
//!   one exception, because the operator must copy it into Smaregi.

mod dashboard;
mod drift;
mod history;
mod login;
mod mapping;
mod nextengine;
mod order_import;
mod session;
mod settings;
mod views;

pub use session::{EPOCH_CURSOR, SESSION_COOKIE};

use crate::AdminContext;
use crate::wording;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sne_ports::StoreError;

/// Largest mapping table accepted (tens of thousands of rows fit easily).
const MAPPING_UPLOAD_LIMIT: usize = 10 * 1024 * 1024;

pub fn router() -> Router<AdminContext> {
    Router::new()
        .route("/", get(dashboard::show))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/nextengine/reacquire", post(nextengine::reacquire))
        .route("/nextengine/callback", get(nextengine::callback))
        .route("/settings", get(settings::show).post(settings::save))
        .route(
            "/settings/mapping",
            post(mapping::upload).layer(DefaultBodyLimit::max(MAPPING_UPLOAD_LIMIT)),
        )
        .route("/settings/mapping/confirm", post(mapping::confirm))
        .route("/settings/customer-code", post(settings::regenerate_code))
        .route("/settings/stock-history", post(settings::stock_history))
        .route("/settings/intake", post(settings::intake))
        .route(
            "/order-import",
            get(order_import::show).post(order_import::save),
        )
        .route("/history", get(history::show))
        .route("/history/batches/{id}/csv", get(history::download_csv))
        .route("/history/held/{id}/resolve", post(history::resolve_held))
        .route(
            "/history/batches/{id}/resend-unapplied",
            post(history::resend_unapplied),
        )
        .route("/run-now", post(history::run_now))
        .route("/drift", get(drift::show))
        .route("/drift/check", post(drift::check_now))
        .route("/drift/{id}/csv", get(drift::download_csv))
        .route(
            "/drift/{id}/align",
            get(drift::preview).post(drift::confirm),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// Pages carry the CSRF token and tenant data: never cached, never framed.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(header::CACHE_CONTROL, "no-store");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
    );
    response
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("login required")]
    LoginRequired,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<askama::Error> for AdminError {
    fn from(e: askama::Error) -> Self {
        AdminError::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AdminError::LoginRequired => return Redirect::to("/login").into_response(),
            AdminError::NotFound => (StatusCode::NOT_FOUND, wording::PAGE_NOT_FOUND.to_string()),
            AdminError::Forbidden(message) => (StatusCode::FORBIDDEN, message.clone()),
            AdminError::Store(_) | AdminError::Internal(_) => {
                tracing::error!(error = %self, "admin screen error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    wording::PAGE_ERROR.to_string(),
                )
            }
        };
        let page = views::ErrorPage { message };
        match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, page.message).into_response(),
        }
    }
}

pub type AdminResult<T = Response> = Result<T, AdminError>;

/// A one-shot message shown on the next page (Post/Redirect/Get). Signed, so a
/// crafted cookie cannot make our page display someone else's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `ok` or `error`.
    pub kind: String,
    pub lines: Vec<String>,
}

impl Flash {
    pub fn ok(line: impl Into<String>) -> Self {
        Flash {
            kind: "ok".into(),
            lines: vec![line.into()],
        }
    }

    pub fn error(line: impl Into<String>) -> Self {
        Flash {
            kind: "error".into(),
            lines: vec![line.into()],
        }
    }

    pub fn is_error(&self) -> bool {
        self.kind == "error"
    }
}

/// 303 to `to` with a message for the page there.
pub fn redirect_with(ctx: &AdminContext, to: &str, flash: Flash) -> Response {
    let value = session::sign(ctx.config.session_secret.as_bytes(), "flash", &flash);
    let mut response = Redirect::to(to).into_response();
    session::add_header(
        &mut response,
        session::set_cookie(ctx, session::FLASH_COOKIE, &value, 120),
    );
    response
}

/// The pending message, if any, and whether the page must clear its cookie.
pub fn take_flash(ctx: &AdminContext, headers: &HeaderMap) -> (Option<Flash>, bool) {
    match session::cookie(headers, session::FLASH_COOKIE) {
        Some(value) => (
            session::verify(ctx.config.session_secret.as_bytes(), "flash", value),
            true,
        ),
        None => (None, false),
    }
}

/// Renders a page, clearing the flash cookie it displayed.
pub fn page(
    ctx: &AdminContext,
    template: &impl askama::Template,
    clear_flash: bool,
) -> AdminResult {
    let mut response = Html(template.render()?).into_response();
    if clear_flash {
        session::add_header(
            &mut response,
            session::clear_cookie(ctx, session::FLASH_COOKIE),
        );
    }
    Ok(response)
}

/// Japanese date and time of an instant, as the operator reads it.
pub fn jst(at: chrono::DateTime<chrono::Utc>) -> String {
    sne_domain::time::to_jst(at)
        .format("%Y/%m/%d %H:%M")
        .to_string()
}
