//! A failed file, judged row by row from NextEngine's stock in/out history, and
//! 「未反映の行を再アップロード」: both readings of whether an API upload is
//! applied in part (reference: nextengine-api.md, Update "Partial application").

use sne_domain::batch_state::BatchState;
use sne_domain::report::QueueOutcome;
use sne_domain::row_application::RowFate;
use sne_e2e::{COMPANY, CONTRACT, Harness, Options};
use sne_ports::UploadBatch;
use sne_service::resend::{ResendError, resend_unapplied};
use sne_service::run::Jobs;
use sne_simulators::nextengine::{Fault, FaultKind};
use sne_test_support::admin_of;

const HISTORY_PATH: &str = "/api_v1_master_stockiohistory/search";

/// NextEngine has 10 of 8000001 with 8 allocated (2 free), so the 棚卸 −5 is
/// refused for free stock; 8000002's sale of 1 is a good row. The file is
/// uploaded and waits in NextEngine's queue.
async fn a_queued_file(partial_apply: bool) -> Harness {
    let h = Harness::start(Options {
        ne_goods: vec![("8000001", 10, 8), ("8000002", 10, 0)],
        ..Options::default()
    })
    .await;
    h.ne.set_partial_apply(partial_apply);
    h.smaregi
        .stocktake(CONTRACT, "1", "8000001", 5)
        .await
        .unwrap();
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    let first = h.run(Jobs::All).await;
    assert!(
        matches!(
            first.report.upload,
            sne_domain::report::UploadSection::Uploaded { .. }
        ),
        "{:?}",
        first.report.upload
    );
    h
}

/// The queued file processed, then the run that records its failure.
async fn a_failed_file(
    partial_apply: bool,
    history_fault: Option<FaultKind>,
) -> (Harness, UploadBatch) {
    let h = a_queued_file(partial_apply).await;
    if let Some(kind) = history_fault {
        h.ne.inject_fault(Fault::new(kind).on(HISTORY_PATH));
    }
    h.ne.run_queues();
    h.run(Jobs::All).await;
    let failed = failed_files(&h).await;
    assert_eq!(failed.len(), 1, "one failed file");
    (h, failed.into_iter().next().unwrap())
}

async fn failed_files(h: &Harness) -> Vec<UploadBatch> {
    h.ctx
        .storage
        .batches_in_state(&h.tenant.id, BatchState::Failed)
        .await
        .unwrap()
}

fn fates(batch: &UploadBatch) -> Vec<(String, RowFate)> {
    match &batch.outcome {
        Some(QueueOutcome::Failed { rows, .. }) => rows
            .iter()
            .map(|r| (r.goods_code.to_string(), r.fate))
            .collect(),
        other => panic!("not a failed outcome: {other:?}"),
    }
}

fn fate(code: &str, fate: RowFate) -> (String, RowFate) {
    (code.to_string(), fate)
}

#[tokio::test]
async fn a_file_refused_whole_re_sends_its_good_rows_once_and_only_them() {
    let (h, failed) = a_failed_file(false, None).await;
    assert_eq!(h.ne_stock("8000002"), 10, "NextEngine applied nothing");
    assert_eq!(
        fates(&failed),
        [
            fate("8000001", RowFate::Refused),
            fate("8000002", RowFate::NotApplied)
        ]
    );
    let mails = h.mails();
    let body = &mails[1].body;
    assert!(
        body.contains("エラーのなかった行のうち 1 行は反映されていません"),
        "{body}"
    );
    assert!(body.contains("「未反映の行を再アップロード」"), "{body}");
    let retry = mails[1]
        .attachments
        .iter()
        .find(|(name, _)| name.contains("failed"))
        .expect("the unapplied rows as a file");
    assert_eq!(
        retry.1, b"syohin_code,zaiko_su\r\n8000001,-5\r\n8000002,-1\r\n",
        "both rows are unapplied"
    );

    let resend = resend_unapplied(&h.admin, &h.tenant.id, &failed.batch_id, false, "op")
        .await
        .unwrap();
    assert_eq!(
        resend.lines.len(),
        1,
        "the free-stock row waits for its tick"
    );
    // A second press, and a second process pressing too, change nothing.
    for ctx in [&h.admin, &admin_of(&h.second_process())] {
        let again = resend_unapplied(ctx, &h.tenant.id, &failed.batch_id, true, "op2").await;
        assert!(
            matches!(again, Err(ResendError::AlreadyResent { .. })),
            "{again:?}"
        );
    }
    let uploads_before = h.ne.uploads().len();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
    h.run(Jobs::All).await;
    let uploads = h.ne.uploads();
    assert_eq!(uploads.len(), uploads_before + 1, "one more file, once");
    assert_eq!(
        uploads.last().unwrap().csv,
        "syohin_code,zaiko_su\r\n8000002,-1\r\n"
    );
    assert_eq!(h.ne_stock("8000002"), 9, "the sale counted exactly once");
    assert_eq!(h.ne_stock("8000001"), 10, "the refused row was not sent");
    let resent = h
        .ctx
        .storage
        .batch(&h.tenant.id, &resend.batch_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.state, BatchState::Succeeded);
    assert_eq!(resent.follows.as_deref(), Some(failed.batch_id.as_str()));
}

#[tokio::test]
async fn applied_good_rows_are_never_re_sent() {
    let (h, failed) = a_failed_file(true, None).await;
    assert_eq!(h.ne_stock("8000002"), 9, "NextEngine applied the good row");
    assert_eq!(
        fates(&failed),
        [
            fate("8000001", RowFate::Refused),
            fate("8000002", RowFate::Applied)
        ]
    );
    let body = &h.mails()[1].body;
    assert!(
        body.contains(
            "エラーのなかった行のうち 1 行は、ネクストエンジンの入出庫履歴で反映を確認しました"
        ),
        "{body}"
    );
    // Only the free-stock row is unapplied, and it goes only when ticked.
    let nothing = resend_unapplied(&h.admin, &h.tenant.id, &failed.batch_id, false, "op").await;
    assert!(
        matches!(nothing, Err(ResendError::NothingToResend(_))),
        "{nothing:?}"
    );
    // The operator freed the allocation in NextEngine, then ticks the box.
    h.ne.seed_goods(
        COMPANY,
        vec![sne_simulators::nextengine::SeedGoods {
            goods_id: "8000001".into(),
            goods_name: "8000001".into(),
            stock_quantity: 10,
            allocation_quantity: 0,
        }],
    );
    let resend = resend_unapplied(&h.admin, &h.tenant.id, &failed.batch_id, true, "op")
        .await
        .unwrap();
    assert_eq!(resend.lines.len(), 1);
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne_stock("8000001"), 5);
    assert_eq!(
        h.ne_stock("8000002"),
        9,
        "the applied row was not sent again"
    );
}

#[tokio::test]
async fn an_unreadable_history_leaves_good_rows_unknown_and_never_re_sends_them() {
    // 004001: the app lacks permission for the API, a refusal no retry mends,
    // so the file is judged at once with its good rows unknown.
    let (h, failed) = a_failed_file(false, Some(FaultKind::Code("004001".into()))).await;
    assert_eq!(
        fates(&failed),
        [
            fate("8000001", RowFate::Refused),
            fate("8000002", RowFate::Unknown)
        ]
    );
    let body = &h.mails()[1].body;
    assert!(
        body.contains("入出庫履歴を読めなかったため、反映されたかどうかを確認できませんでした"),
        "{body}"
    );
    let resend = resend_unapplied(&h.admin, &h.tenant.id, &failed.batch_id, true, "op")
        .await
        .unwrap();
    assert_eq!(
        resend
            .lines
            .iter()
            .map(|l| l.goods_code.as_str())
            .collect::<Vec<_>>(),
        ["8000001"],
        "the unknown row is left to a person"
    );
}

#[tokio::test]
async fn a_passing_history_error_judges_the_file_next_run() {
    let h = a_queued_file(false).await;
    h.ne.run_queues();
    // Maintenance on every call of the history while this run checks.
    h.ne.inject_fault(Fault::new(FaultKind::Maintenance002007).on(HISTORY_PATH));
    let second = h.run(Jobs::All).await;
    let uploaded = h
        .ctx
        .storage
        .batches_in_state(&h.tenant.id, BatchState::Uploaded)
        .await
        .unwrap();
    assert_eq!(
        uploaded.len(),
        1,
        "not judged while the history is unreadable"
    );
    assert!(
        !second.report.render().subject.contains("処理結果:失敗"),
        "{}",
        second.report.render().subject
    );
    h.ne.clear_faults();
    let third = h.run(Jobs::All).await;
    assert!(third.report.render().subject.contains("処理結果:失敗"));
    let failed = failed_files(&h).await;
    assert_eq!(
        fates(&failed[0]),
        [
            fate("8000001", RowFate::Refused),
            fate("8000002", RowFate::NotApplied)
        ]
    );
}

#[tokio::test]
async fn an_order_shipment_of_the_same_size_is_not_taken_for_our_row() {
    let h = a_queued_file(false).await;
    // While the file waits in the queue, a web order of one unit ships in NextEngine.
    h.ne.record_stock_change(COMPANY, "8000002", -1, Some("1001"));
    h.ne.run_queues();
    h.run(Jobs::All).await;
    let failed = failed_files(&h).await;
    assert_eq!(
        fates(&failed[0]),
        [
            fate("8000001", RowFate::Refused),
            fate("8000002", RowFate::NotApplied)
        ],
        "the order's change names its slip: not ours"
    );
}
