//! Recorded EventBridge events through the dispatcher's handler: tenants on
//! embedded storage, the run queue recorded in memory.

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use sne_domain::run_message::{RunMessage, RunReason};
use sne_lambda_common::scheduled::ScheduledEvent;
use sne_lambda_common::{DispatchContext, DispatchKind, handle_dispatch};
use sne_ports::RunQueue;
use sne_test_support::Wiring;
use sne_test_support::tenants::fixture_tenant;
use std::sync::{Arc, Mutex};

const SCHEDULED: &str = include_str!("../../../lambda-common/tests/data/scheduled_event.json");
/// Asks for tenant `t_fixture00001`.
const RUN_REQUESTED: &str = include_str!("../../../lambda-common/tests/data/run_requested.json");

fn event(json: &str) -> LambdaEvent<ScheduledEvent> {
    let payload: EventBridgeEvent = serde_json::from_str(json).expect("an EventBridge event");
    LambdaEvent {
        payload,
        context: LambdaContext::default(),
    }
}

#[derive(Default)]
struct Recorded {
    sent: Mutex<Vec<RunMessage>>,
    refuse: bool,
}

#[async_trait]
impl RunQueue for Recorded {
    async fn enqueue(&self, requests: &[RunMessage]) -> Result<(), String> {
        if self.refuse {
            return Err("AccessDenied".into());
        }
        self.sent.lock().unwrap().extend(requests.iter().cloned());
        Ok(())
    }
}

async fn two_tenants(dir: &std::path::Path, queue: Arc<Recorded>) -> DispatchContext {
    let ctx = Wiring::new(dir).context();
    for (id, contract, code) in [
        (
            "t_fixture00001",
            "c-one",
            "Code0One0000000000000000000000001",
        ),
        (
            "t_fixture00002",
            "c-two",
            "Code0Two0000000000000000000000002",
        ),
    ] {
        fixture_tenant(&ctx, id, contract, code).await;
    }
    DispatchContext {
        tenants: ctx.storage.clone(),
        queue,
    }
}

#[tokio::test]
async fn a_schedule_firing_is_one_message_per_tenant_and_its_retry_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;

    let summary = handle_dispatch(&ctx, DispatchKind::Stock, event(SCHEDULED))
        .await
        .expect("dispatched");
    let mut enqueued = summary.enqueued.clone();
    enqueued.sort();
    assert_eq!(enqueued, ["t_fixture00001", "t_fixture00002"]);
    handle_dispatch(&ctx, DispatchKind::Stock, event(SCHEDULED))
        .await
        .expect("retried");

    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|m| m.reason == RunReason::Schedule));
    let (first, retry) = sent.split_at(2);
    assert_eq!(
        first, retry,
        "a retry asks for the same runs, which SQS drops"
    );
}

#[tokio::test]
async fn run_requested_is_one_message_for_the_named_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;

    let summary = handle_dispatch(&ctx, DispatchKind::Stock, event(RUN_REQUESTED))
        .await
        .expect("dispatched");
    assert_eq!(summary.enqueued, ["t_fixture00001"]);
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].reason, RunReason::Now);
}

#[tokio::test]
async fn unknown_tenants_missing_ids_stray_events_and_a_refusing_queue_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;
    let mut unknown: serde_json::Value = serde_json::from_str(RUN_REQUESTED).unwrap();
    unknown["detail"]["tenant_id"] = "t_nobody".into();
    let mut no_id: serde_json::Value = serde_json::from_str(RUN_REQUESTED).unwrap();
    no_id["detail"] = serde_json::json!({});
    let mut stray: serde_json::Value = serde_json::from_str(SCHEDULED).unwrap();
    stray["source"] = "aws.s3".into();
    stray["detail-type"] = "Object Created".into();
    for (json, says) in [
        (unknown, "t_nobody"),
        (no_id, "tenant_id"),
        (stray, "unexpected event"),
    ] {
        let err = handle_dispatch(&ctx, DispatchKind::Stock, event(&json.to_string()))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(queue.sent.lock().unwrap().is_empty(), "nothing was sent");

    let refusing = DispatchContext {
        queue: Arc::new(Recorded {
            refuse: true,
            ..Recorded::default()
        }),
        ..ctx
    };
    let err = handle_dispatch(&refusing, DispatchKind::Stock, event(SCHEDULED))
        .await
        .expect_err("the queue refused");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
}

#[tokio::test]
async fn the_order_importers_schedule_is_a_message_per_tenant_with_the_import_on() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;
    // Fixture tenants start with the import off; turn it on for one.
    let mut one = ctx
        .tenants
        .tenant(&sne_domain::TenantId("t_fixture00002".into()))
        .await
        .unwrap()
        .unwrap();
    one.order_import.enabled = true;
    ctx.tenants.update_tenant(&one).await.unwrap();

    let summary = handle_dispatch(&ctx, DispatchKind::Orders, event(SCHEDULED))
        .await
        .expect("dispatched");
    assert_eq!(summary.enqueued, ["t_fixture00002"]);
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent[0].reason, RunReason::Orders);

    let err = handle_dispatch(&ctx, DispatchKind::Orders, event(RUN_REQUESTED))
        .await
        .expect_err("run requests go to the stock dispatcher");
    assert!(err.to_string().contains("unexpected event"), "{err}");
}

#[tokio::test]
async fn the_queue_checkers_schedule_is_a_message_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;
    let summary = handle_dispatch(&ctx, DispatchKind::Check, event(SCHEDULED))
        .await
        .expect("dispatched");
    assert_eq!(summary.enqueued.len(), 2);
    let sent = queue.sent.lock().unwrap().clone();
    assert!(sent.iter().all(|m| m.reason == RunReason::Check));
    // Its firing is its own run, beside the uploader's of the same minute.
    let stock = RunMessage::schedule(sent[0].tenant_id.clone(), chrono_time(SCHEDULED));
    assert_ne!(stock.dedupe_id, sent[0].dedupe_id);
    let err = handle_dispatch(&ctx, DispatchKind::Check, event(RUN_REQUESTED))
        .await
        .expect_err("run requests go to the stock dispatcher");
    assert!(err.to_string().contains("unexpected event"), "{err}");
}

fn chrono_time(json: &str) -> chrono::DateTime<chrono::Utc> {
    let event: EventBridgeEvent = serde_json::from_str(json).unwrap();
    event.time.unwrap()
}

const DRIFT_CHECK_REQUESTED: &str =
    include_str!("../../../lambda-common/tests/data/drift_check_requested.json");

#[tokio::test]
async fn the_drift_checkers_schedule_asks_the_tenants_with_smaregi_api_and_a_click_asks_one() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(Recorded::default());
    let ctx = two_tenants(dir.path(), queue.clone()).await;
    let id = sne_domain::TenantId("t_fixture00002".into());
    let mut tenant = ctx.tenants.tenant(&id).await.unwrap().unwrap();
    tenant.smaregi_api = Some(sne_domain::tenant::SmaregiCredentials {
        contract_id: "c-two".into(),
        access_token: "token".into(),
    });
    ctx.tenants.update_tenant(&tenant).await.unwrap();

    let summary = handle_dispatch(&ctx, DispatchKind::Drift, event(SCHEDULED))
        .await
        .expect("dispatched");
    assert_eq!(summary.enqueued, ["t_fixture00002"]);
    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent[0].reason, RunReason::Drift);
    // Beside the tenant's runs, so a long check never holds an upload back.
    assert_eq!(sent[0].group_id(), "drift-t_fixture00002");

    let summary = handle_dispatch(&ctx, DispatchKind::Drift, event(DRIFT_CHECK_REQUESTED))
        .await
        .expect("dispatched");
    assert_eq!(summary.enqueued, ["t_fixture00001"]);
    assert_eq!(queue.sent.lock().unwrap()[1].reason, RunReason::Drift);

    let err = handle_dispatch(&ctx, DispatchKind::Drift, event(RUN_REQUESTED))
        .await
        .expect_err("「今すぐ実行」 goes to the stock dispatcher");
    assert!(err.to_string().contains("unexpected event"), "{err}");
    let err = handle_dispatch(&ctx, DispatchKind::Stock, event(DRIFT_CHECK_REQUESTED))
        .await
        .expect_err("a drift request goes to the drift checker");
    assert!(err.to_string().contains("unexpected event"), "{err}");
}
