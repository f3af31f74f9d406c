//! The one HTTP router: served by `axum::serve` locally and by `lambda_http` on AWS.

use crate::AdminContext;
use crate::webhook::{self, MAX_BODY_BYTES, WebhookContext};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};

/// Everything: the webhook and the admin screen.
pub fn router(ctx: AdminContext) -> Router {
    webhook_routes()
        // The 管理画面: `/`, `/login`, `/settings`, `/nextengine/callback`, …
        .merge(crate::admin::router())
        // The 利用者契約通知先URL: it checks the contract with a token call,
        // which only the core (the Platform client) can make.
        .route(
            "/smaregi/platform/contract",
            post(crate::platform::webhook::receive_contract)
                .layer(DefaultBodyLimit::max(64 * 1024)),
        )
        .with_state(ctx)
}

/// The webhook alone, on its narrow context: what the webhook Lambda serves.
pub fn webhook_router(ctx: WebhookContext) -> Router {
    webhook_routes().with_state(ctx)
}

fn webhook_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    WebhookContext: FromRef<S>,
{
    Router::new()
        .route(
            "/smaregi/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            "/smaregi/platform/webhook",
            post(crate::platform::webhook::receive_stock).layer(DefaultBodyLimit::max(
                crate::platform::webhook::MAX_WEBHOOK_BYTES,
            )),
        )
        .route("/healthz", get(|| async { "ok" }))
}
