//! The one HTTP router: served by `axum::serve` locally and by `lambda_http` on AWS.

use crate::Context;
use crate::webhook::{self, MAX_BODY_BYTES};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Html;
use axum::routing::{get, post};

pub fn router(ctx: Context) -> Router {
    Router::new()
        .route(
            "/smaregi/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/", get(placeholder))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(ctx)
}

async fn placeholder() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"ja\"><meta charset=\"utf-8\"><title>スマレジtoネクストエンジン</title>\
         <h1>スマレジtoネクストエンジン</h1><p>管理画面は準備中です。</p></html>",
    )
}
