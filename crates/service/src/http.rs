//! The one HTTP router: served by `axum::serve` locally and by `lambda_http` on AWS.

use crate::Context;
use crate::webhook::{self, MAX_BODY_BYTES};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub fn router(ctx: Context) -> Router {
    Router::new()
        .route(
            "/smaregi/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/healthz", get(|| async { "ok" }))
        // The 管理画面: `/`, `/login`, `/settings`, `/nextengine/callback`, …
        .merge(crate::admin::router())
        .with_state(ctx)
}
