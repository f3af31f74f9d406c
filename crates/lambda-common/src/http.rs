//! Narrowing of the one router for the webhook function.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// Paths the webhook's Function URL answers; everything else is the admin
/// function's business.
pub const WEBHOOK_PATHS: &[&str] = &["/smaregi/webhook", "/smaregi/platform/webhook", "/healthz"];

/// The router with every path but the webhook's answered `404`: the webhook URL is
/// public and its role has fewer rights, so the admin screen must not be reachable
/// through it.
pub fn webhook_only(router: Router) -> Router {
    router.layer(middleware::from_fn(only_webhook_paths))
}

async fn only_webhook_paths(request: Request<Body>, next: Next) -> Response {
    if WEBHOOK_PATHS.contains(&request.uri().path()) {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
