//! Recorded run-queue (SQS FIFO) events through the runner's handler, on
//! embedded storage.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use sne_domain::run_message::RunReason;
use sne_lambda_common::handle_run_messages;
use sne_lambda_common::runner::plan;
use sne_service::Context;
use sne_service::run::{Jobs, Mailing};
use sne_test_support::Wiring;
use sne_test_support::tenants::fixture_tenant;

/// One schedule message for tenant `t_fixture00001`.
const RECORDED: &str = include_str!("data/run_messages.json");

/// The recorded event with these (group, body) messages in its place.
fn event(messages: &[(&str, &str)]) -> LambdaEvent<SqsEvent> {
    let recorded: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
    let template = recorded["Records"][0].clone();
    let records: Vec<serde_json::Value> = messages
        .iter()
        .enumerate()
        .map(|(n, (group, body))| {
            let mut record = template.clone();
            record["messageId"] = format!("m{n}").into();
            record["body"] = (*body).into();
            record["attributes"]["MessageGroupId"] = (*group).into();
            record
        })
        .collect();
    let payload: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event");
    LambdaEvent {
        payload,
        context: LambdaContext::default(),
    }
}

async fn tenant(dir: &std::path::Path) -> Context {
    let ctx = Wiring::new(dir).context();
    fixture_tenant(
        &ctx,
        "t_fixture00001",
        "c-one",
        "Code0One0000000000000000000000001",
    )
    .await;
    ctx
}

fn failed(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn the_recorded_message_runs_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = tenant(dir.path()).await;
    let payload: SqsEvent = serde_json::from_str(RECORDED).expect("the recorded event");
    let response = handle_run_messages(
        &ctx,
        LambdaEvent {
            payload,
            context: LambdaContext::default(),
        },
    )
    .await
    .expect("handled");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
}

#[tokio::test]
async fn a_message_whose_run_cannot_start_is_given_back_with_its_tenants_later_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = tenant(dir.path()).await;
    let response = handle_run_messages(
        &ctx,
        event(&[
            ("t_gone", r#"{"tenant_id":"t_gone","reason":"changes"}"#),
            (
                "t_fixture00001",
                r#"{"tenant_id":"t_fixture00001","reason":"changes"}"#,
            ),
            ("t_gone", r#"{"tenant_id":"t_gone","reason":"schedule"}"#),
            ("t_bad", "not json"),
        ]),
    )
    .await
    .expect("the invocation itself succeeds");
    // The unknown tenant's message and the one queued behind it in its group
    // go back (FIFO order), the malformed one too; the known tenant ran.
    assert_eq!(failed(&response), ["m0", "m2", "m3"]);
}

#[test]
fn pushes_upload_and_leave_their_mail_to_the_schedule_which_runs_the_stock_path() {
    assert_eq!(
        plan(RunReason::Changes),
        Some((Jobs::Upload, Mailing::Defer))
    );
    assert_eq!(
        plan(RunReason::Schedule),
        Some((Jobs::Stock, Mailing::Send))
    );
    assert_eq!(plan(RunReason::Now), Some((Jobs::Stock, Mailing::Send)));
    assert_eq!(
        plan(RunReason::Orders),
        Some((Jobs::ImportOrders, Mailing::Send))
    );
    assert_eq!(
        plan(RunReason::Check),
        Some((Jobs::CheckQueue, Mailing::Send))
    );
    assert_eq!(plan(RunReason::Drift), None);
}

#[tokio::test]
async fn a_drift_message_runs_the_tenants_drift_check_and_leaves_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = tenant(dir.path()).await;
    let response = handle_run_messages(
        &ctx,
        event(&[(
            "drift-t_fixture00001",
            r#"{"tenant_id":"t_fixture00001","reason":"drift"}"#,
        )]),
    )
    .await
    .expect("handled");
    // The fixture tenant has no Smaregi API credentials: the check fails in
    // its report, which is no failure of the message.
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let reports = ctx
        .storage
        .recent_reports(&sne_domain::TenantId("t_fixture00001".into()), 10)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].subject.ends_with("在庫差異:失敗"),
        "{}",
        reports[0].subject
    );
    assert!(
        reports[0].body.contains("スマレジAPIの設定"),
        "{}",
        reports[0].body
    );
}
