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
        .route("/healthz", get(|| async { "ok" }))
}
