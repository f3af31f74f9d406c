//! Recorded Function URL events (API Gateway v2 payloads) through the router the
//! webhook function serves, on its narrow context over embedded storage.

use axum::body::to_bytes;
use sne_lambda_common::http::webhook_only;
use sne_service::Context;
use sne_service::webhook::WebhookContext;
use sne_test_support::Wiring;
use sne_test_support::tenants::fixture_tenant;
use tower::ServiceExt;

/// The tenant the recorded events were made for.
const TENANT_ID: &str = "t_fixture00001";
const CONTRACT: &str = "c-lambda-fixture";
const CODE: &str = "Fixture0Code0For0Lambda0Tests001";

async fn send(ctx: &Context, fixture: &str) -> (u16, String) {
    let request = lambda_http::request::from_str(fixture).expect("a Function URL event");
    let webhook = WebhookContext::of(ctx, sne_test_support::admin_of(ctx).trigger);
    let response = webhook_only(sne_service::http::webhook_router(webhook))
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status().as_u16();
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (
        status,
        String::from_utf8(body.to_vec()).expect("utf-8 body"),
    )
}

#[tokio::test]
async fn a_push_with_the_wrong_code_is_refused_with_code_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Wiring::new(dir.path()).context();
    let tenant = fixture_tenant(&ctx, TENANT_ID, CONTRACT, CODE).await;

    let (status, body) = send(&ctx, include_str!("data/function_url_push_wrong_code.json")).await;

    assert_eq!((status, body.as_str()), (400, "code_mismatch"));
    assert_eq!(ctx.storage.pending_changes(&tenant.id).await.unwrap(), 0);
}

#[tokio::test]
async fn a_push_with_the_right_code_is_stored_once_and_answered_200() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Wiring::new(dir.path()).context();
    let tenant = fixture_tenant(&ctx, TENANT_ID, CONTRACT, CODE).await;
    // Recorded as Function URLs deliver form posts: base64 body.
    let fixture = include_str!("data/function_url_push_right_code.json");

    let (status, _) = send(&ctx, fixture).await;
    assert_eq!(status, 200);
    assert_eq!(ctx.storage.pending_changes(&tenant.id).await.unwrap(), 1);

    // Smaregi's 再送する delivers the identical body again.
    let (status, _) = send(&ctx, fixture).await;
    assert_eq!(status, 200);
    assert_eq!(ctx.storage.pending_changes(&tenant.id).await.unwrap(), 1);
}

#[tokio::test]
async fn the_webhook_url_does_not_serve_the_admin_screen() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Wiring::new(dir.path()).context();
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("data/function_url_push_wrong_code.json")).unwrap();
    event["rawPath"] = "/".into();
    event["requestContext"]["http"]["path"] = "/".into();
    event["requestContext"]["http"]["method"] = "GET".into();
    event.as_object_mut().unwrap().remove("body");

    let (status, _) = send(&ctx, &event.to_string()).await;

    assert_eq!(status, 404);
}

/// The webhook function's context with the Platform webhook's secret header
/// configured as the recorded event carries it.
fn with_platform_secret(ctx: &Context, value: &str) -> Context {
    let mut ctx = ctx.clone();
    ctx.config.platform_webhook_secret = Some(sne_service::WebhookSecret {
        header: "x-smaregi-ne-secret".into(),
        value: value.into(),
    });
    ctx
}

#[tokio::test]
async fn a_platform_pos_stock_event_is_stored_once_for_a_tenant_on_the_platform_intake() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Wiring::new(dir.path()).context();
    let mut tenant = fixture_tenant(&ctx, TENANT_ID, CONTRACT, CODE).await;
    tenant.stock_history = tenant.stock_history.switched_on_via(
        sne_domain::history_mode::HistorySource::Platform,
        chrono::Utc::now(),
    );
    let tenant = ctx.storage.update_tenant(&tenant).await.unwrap();
    let fixture = include_str!("data/function_url_platform_pos_stock.json");

    // Without a configured secret the endpoint refuses everything.
    let (status, _) = send(&ctx, fixture).await;
    assert_eq!(status, 404);
    let (status, _) = send(&with_platform_secret(&ctx, "another-secret"), fixture).await;
    assert_eq!(status, 401);
    assert_eq!(ctx.storage.pending_changes(&tenant.id).await.unwrap(), 0);

    let ctx = with_platform_secret(&ctx, "fixture-platform-secret");
    for _ in 0..2 {
        let (status, _) = send(&ctx, fixture).await;
        assert_eq!(status, 200);
    }
    let pending = ctx.storage.pending_change_list(&tenant.id).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "a duplicate delivery lands on the same key"
    );
    assert_eq!(pending[0].dedupe_key, "h:101");
}
