//! Recorded EventBridge events through the scheduled functions' handler (the
//! queue checker, the order importer), on embedded storage.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use sne_lambda_common::scheduled::ScheduledEvent;
use sne_lambda_common::{ScheduledJob, handle_scheduled};
use sne_service::Context;
use sne_test_support::Wiring;
use sne_test_support::tenants::fixture_tenant;

const SCHEDULED: &str = include_str!("data/scheduled_event.json");
const RUN_REQUESTED: &str = include_str!("data/run_requested.json");

fn event(json: &str) -> LambdaEvent<ScheduledEvent> {
    let payload: EventBridgeEvent = serde_json::from_str(json).expect("an EventBridge event");
    LambdaEvent {
        payload,
        context: LambdaContext::default(),
    }
}

async fn two_tenants(dir: &std::path::Path) -> Context {
    let ctx = Wiring::new(dir).context();
    fixture_tenant(
        &ctx,
        "t_fixture00001",
        "c-one",
        "Code0One0000000000000000000000001",
    )
    .await;
    fixture_tenant(
        &ctx,
        "t_fixture00002",
        "c-two",
        "Code0Two0000000000000000000000002",
    )
    .await;
    ctx
}

#[tokio::test]
async fn the_queue_checker_refuses_run_requests_and_stray_events() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = two_tenants(dir.path()).await;
    let mut stray: serde_json::Value = serde_json::from_str(SCHEDULED).unwrap();
    stray["source"] = "aws.s3".into();
    stray["detail-type"] = "Object Created".into();

    for json in [RUN_REQUESTED.to_string(), stray.to_string()] {
        let err = handle_scheduled(&ctx, ScheduledJob::QueueChecker, event(&json))
            .await
            .expect_err("not the queue checker's event");
        assert!(err.to_string().contains("unexpected event"), "{err}");
    }
    let summary = handle_scheduled(&ctx, ScheduledJob::QueueChecker, event(SCHEDULED))
        .await
        .expect("scheduled check");
    assert_eq!(summary.tenants.len(), 2);
}

#[tokio::test]
async fn the_order_importer_runs_only_tenants_with_the_import_on() {
    let dir = tempfile::tempdir().unwrap();
    // Fixture tenants start with the order import off.
    let ctx = two_tenants(dir.path()).await;

    let summary = handle_scheduled(&ctx, ScheduledJob::OrderImporter, event(SCHEDULED))
        .await
        .expect("scheduled import");
    assert!(summary.tenants.is_empty(), "{summary:?}");

    let err = handle_scheduled(&ctx, ScheduledJob::OrderImporter, event(RUN_REQUESTED))
        .await
        .expect_err("run requests go to the dispatcher");
    assert!(err.to_string().contains("unexpected event"), "{err}");
}
