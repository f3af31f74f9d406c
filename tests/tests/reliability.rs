//! Issue 10, "Nothing lost, nothing doubled": the loss and double-count paths a
//! review found, each end to end against both simulators.

use sne_domain::batch_state::BatchState;
use sne_domain::report::{PreviousSection, QueueOutcome, UploadSection};
use sne_e2e::{CONTRACT, Harness, Options};
use sne_service::held::{HeldDecision, ResolveError, held_uploads, resolve_held};
use sne_service::run::Jobs;
use sne_simulators::nextengine::{Fault, FaultKind};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape};
use std::time::Duration;

const UPLOAD: &str = "/api_v1_master_goods/upload";

/// Points the relative-shape push of the harness at `url`.
fn push_to(h: &Harness, url: &str) {
    h.smaregi.configure_push(
        CONTRACT,
        Some(PushConfig {
            url: url.to_string(),
            pairs: vec![
                ("contract_id".into(), CONTRACT.into()),
                ("code".into(), h.tenant.customer_code.clone()),
            ],
            pairs_as: PairsAs::Form,
            shape: PushShape::Relative,
            push_api_changes: false,
        }),
    );
}

/// Seconds of the service's clock after which a lost upload not found in the
/// queue is taken as never received.
const GRACE_SECS: i64 = 10;

fn short_grace() -> sne_service::ServiceConfig {
    sne_service::ServiceConfig {
        unknown_outcome_grace: Duration::from_secs(GRACE_SECS as u64),
        ..Default::default()
    }
}

/// How many sent mails tell queue `que_id`'s result.
fn mails_telling(h: &Harness, que_id: &str) -> usize {
    h.mails()
        .iter()
        .filter(|m| m.body.contains(&format!("キューID {que_id}: ")))
        .count()
}

#[tokio::test]
async fn a_held_upload_never_stops_later_uploads_and_a_person_resolves_it() {
    // NextEngine gives no upload names: nothing proves which queue is ours.
    let h = Harness::start(Options {
        queue_upload_names: false,
        config: short_grace(),
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.ne.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on(UPLOAD)
            .times(1),
    );
    let first = h.run(Jobs::All).await;
    assert!(matches!(
        first.report.upload,
        UploadSection::Unresolved { .. }
    ));
    let ours = h.ne.uploads()[0].que_id.clone();
    // Meanwhile the operator uploads a goods CSV of their own on NextEngine's screen.
    let theirs = h
        .operator_upload("syohin_code,zaiko_su\n8000002,5\n")
        .await
        .unwrap()
        .unwrap();

    h.advance(GRACE_SECS + 1);
    let second = h.run(Jobs::All).await;
    let held = held_uploads(&h.ctx, &h.tenant.id).await.unwrap();
    assert_eq!(held.len(), 1, "two unnamed candidates: held, not guessed");
    let candidates: Vec<_> = held[0]
        .candidates
        .iter()
        .map(|c| c.que_id.clone())
        .collect();
    assert_eq!(candidates, vec![ours.clone(), theirs.clone()]);
    assert!(
        second.report.notices.iter().any(|n| n.contains("要確認")),
        "{:?}",
        second.report.notices
    );

    // Later changes keep flowing while the held file waits.
    h.smaregi.sale(CONTRACT, "1", "8000003", 2).await.unwrap();
    let third = h.run(Jobs::All).await;
    assert!(
        matches!(third.report.upload, UploadSection::Uploaded { .. }),
        "{:?}",
        third.report.upload
    );
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000003"), 8);

    // A queue another batch owns cannot be taken; then the person picks ours.
    let later = h.ne.uploads().last().unwrap().que_id.clone();
    let taken = resolve_held(
        &h.admin,
        &h.tenant.id,
        &held[0].batch_id,
        HeldDecision::TreatAsUploaded {
            que_id: later.into(),
        },
        "admin@shop.example",
    )
    .await;
    assert!(
        matches!(taken, Err(ResolveError::QueIdTaken(_))),
        "{taken:?}"
    );
    let resolved = resolve_held(
        &h.admin,
        &h.tenant.id,
        &held[0].batch_id,
        HeldDecision::TreatAsUploaded {
            que_id: ours.clone().into(),
        },
        "admin@shop.example",
    )
    .await
    .unwrap();
    assert_eq!(resolved.state, BatchState::Uploaded);
    let decision = resolved.decision.clone().unwrap();
    assert_eq!(decision.by, "admin@shop.example");
    let again = resolve_held(
        &h.admin,
        &h.tenant.id,
        &held[0].batch_id,
        HeldDecision::Reupload,
        "someone@shop.example",
    )
    .await;
    assert!(
        matches!(again, Err(ResolveError::NotHeld(_))),
        "decided once"
    );

    h.run(Jobs::All).await;
    assert_eq!(
        h.ne.uploads().len(),
        3,
        "the held file was never sent again"
    );
    assert_eq!(h.ne_stock("8000001"), 9, "the sale counted once");
    let telling: Vec<_> = h
        .mails()
        .into_iter()
        .filter(|m| m.body.contains(&format!("キューID {ours}: 成功")))
        .collect();
    assert_eq!(telling.len(), 1);
    assert!(
        telling[0].body.contains("admin@shop.example"),
        "{}",
        telling[0].body
    );
    assert!(telling[0].body.contains("「アップロード済みとして扱う」"));
}

#[tokio::test]
async fn a_held_upload_the_person_sends_again_goes_up_once() {
    let h = Harness::start(Options {
        queue_upload_names: false,
        config: short_grace(),
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    // The upload never reaches NextEngine, but an operator's upload lands in the window.
    h.ne.inject_fault(Fault::new(FaultKind::DropConnection).on(UPLOAD).times(1));
    h.run(Jobs::All).await;
    h.operator_upload("syohin_code,zaiko_su\n8000002,5\n")
        .await
        .unwrap();
    h.advance(GRACE_SECS + 1);
    h.run(Jobs::All).await;
    let held = held_uploads(&h.ctx, &h.tenant.id).await.unwrap();
    assert_eq!(held.len(), 1);
    resolve_held(
        &h.admin,
        &h.tenant.id,
        &held[0].batch_id,
        HeldDecision::Reupload,
        "admin@shop.example",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        h.run(Jobs::All).await;
        h.ne.run_queues();
    }
    let ours: Vec<_> =
        h.ne.uploads()
            .into_iter()
            .filter(|u| !u.by_operator)
            .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(h.ne_stock("8000001"), 9);
    assert_eq!(h.ne_stock("8000002"), 15);
}

#[tokio::test]
async fn an_operators_csv_in_the_window_is_never_taken_for_our_lost_upload() {
    // Our upload never arrived; the operator's screen upload is the only queue.
    let h = Harness::start(Options {
        config: short_grace(),
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.ne.inject_fault(Fault::new(FaultKind::DropConnection).on(UPLOAD).times(1));
    h.run(Jobs::All).await;
    h.operator_upload("syohin_code,zaiko_su\n8000002,5\n")
        .await
        .unwrap();
    h.advance(GRACE_SECS + 1);
    h.run(Jobs::All).await;
    h.ne.run_queues();
    let ours: Vec<_> =
        h.ne.uploads()
            .into_iter()
            .filter(|u| !u.by_operator)
            .collect();
    assert_eq!(ours.len(), 1, "sent again, once: {ours:?}");
    assert_eq!(h.ne_stock("8000001"), 9);

    // Our answer is lost beside an operator's upload: ours (the API upload) is adopted.
    h.smaregi.sale(CONTRACT, "1", "8000003", 1).await.unwrap();
    h.ne.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on(UPLOAD)
            .times(1),
    );
    h.run(Jobs::All).await;
    let lost = h.ne.uploads().last().unwrap().que_id.clone();
    h.operator_upload("syohin_code,zaiko_su\n8000002,1\n")
        .await
        .unwrap();
    let adopting = h.run(Jobs::All).await;
    match &adopting.report.upload {
        UploadSection::Uploaded { que_id, .. } => assert_eq!(que_id, &lost),
        other => panic!("expected the adoption, got {other:?}"),
    }
    // The adopted upload's report carries its CSV like any other upload.
    let mail = h.mails().pop().unwrap();
    assert!(mail.body.contains(&lost), "{}", mail.body);
    assert!(
        mail.attachments
            .iter()
            .any(|(name, bytes)| name.ends_with(".csv")
                && String::from_utf8_lossy(bytes).contains("8000003,-1")),
        "{:?}",
        mail.attachments.iter().map(|a| &a.0).collect::<Vec<_>>()
    );
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne_stock("8000003"), 9);
    assert_eq!(h.ne.uploads().iter().filter(|u| !u.by_operator).count(), 2);
}

#[tokio::test]
async fn a_queue_result_is_reported_exactly_once_whatever_dies_when() {
    let h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    let que_id = h.ne.uploads()[0].que_id.clone();
    h.ne.run_queues();
    // A run records the result and dies before its report exists.
    let check = sne_service::checker::run_check(&h.ctx, &h.tenant).await;
    assert!(check.error.is_none());
    let batch = h
        .ctx
        .storage
        .recent_batches(&h.tenant.id, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(batch.state, BatchState::Succeeded);
    assert_eq!(mails_telling(&h, &que_id), 0);

    // Two runs at once afterwards: the result is in exactly one report.
    let other = h.second_process();
    let (a, b) = tokio::join!(
        sne_service::run::run_all(&h.ctx, Jobs::All),
        sne_service::run::run_all(&other, Jobs::All)
    );
    let told: usize = [a.unwrap(), b.unwrap()]
        .iter()
        .flatten()
        .filter(|r| match &r.report.previous {
            PreviousSection::Results { results } => results
                .iter()
                .any(|q| q.que_id == que_id && q.outcome == QueueOutcome::Succeeded),
            _ => false,
        })
        .count();
    assert_eq!(told, 1);
    h.run(Jobs::All).await;
    assert_eq!(mails_telling(&h, &que_id), 1);
}

#[tokio::test]
async fn a_slow_upload_is_cut_off_before_the_grace_and_resolved_from_the_queue() {
    let h = Harness::start(Options {
        config: sne_service::ServiceConfig {
            upload_deadline: Duration::from_millis(200),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.ne.inject_fault(Fault::new(FaultKind::Slow(3_000)).on(UPLOAD).times(1));
    let slow = h.run(Jobs::All).await;
    assert!(
        matches!(slow.report.upload, UploadSection::Unresolved { .. }),
        "the call was cut off at the deadline: {:?}",
        slow.report.upload
    );
    // Inside the grace nothing else goes up; past it, the queue decides.
    h.run(Jobs::All).await;
    h.advance(601);
    for _ in 0..2 {
        h.run(Jobs::All).await;
        h.ne.run_queues();
    }
    assert_eq!(h.ne.uploads().len(), 1, "never sent twice");
    assert_eq!(h.ne_stock("8000001"), 9);
}

#[tokio::test]
async fn an_unreadable_history_mode_stops_the_build_instead_of_counting_signals() {
    let mut h = Harness::start(Options::default()).await;
    h.enable_history_access().await;
    // Only a tenant from before the periods moved into its record reads them
    // as text (from the legacy cursor); that text is what can be unreadable.
    let mode_key = sne_service::cursors::LEGACY_STOCK_HISTORY_MODE.name;
    let good = Some(as_legacy_tenant(&h).await);
    let retired = h.ctx.storage.cursor(&h.tenant.id, mode_key).await.unwrap();
    assert!(
        h.ctx
            .storage
            .set_cursor(&h.tenant.id, mode_key, retired.as_deref(), "{not json")
            .await
            .unwrap()
    );
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let broken = h.run(Jobs::All).await;
    assert!(
        matches!(broken.report.upload, UploadSection::Failed { .. }),
        "{:?}",
        broken.report.upload
    );
    assert!(h.ne.uploads().is_empty(), "nothing built on a guess");
    h.ctx
        .storage
        .set_cursor(
            &h.tenant.id,
            mode_key,
            Some("{not json"),
            good.as_deref().unwrap(),
        )
        .await
        .unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne_stock("8000001"), 9, "once, from history");
}

#[tokio::test]
async fn a_relative_push_received_while_history_was_read_stays_a_signal_after_switching_off() {
    let mut h = Harness::start(Options {
        shape: PushShape::Relative,
        ..Options::default()
    })
    .await;
    h.enable_history_access().await;
    h.advance(1);
    // The push of this sale fails (Smaregi shows 失敗) and arrives only later.
    push_to(&h, "http://127.0.0.1:9/smaregi/webhook");
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 9, "counted from history");
    push_to(&h, &format!("{}/smaregi/webhook", h.service_url));
    let failed = h
        .smaregi
        .sends()
        .into_iter()
        .find(|s| s.status != "成功")
        .unwrap();
    let mut late = reqwest::Client::new()
        .post(format!("{}/smaregi/webhook", h.service_url))
        .body(failed.body.clone());
    for (name, value) in &failed.headers {
        late = late.header(name.as_str(), value.as_str());
    }
    assert!(late.send().await.unwrap().status().is_success());
    // Switching off reads history up to now; the late push was only a signal.
    sne_service::stock_history::set_history_mode(&h.ctx, &h.tenant, false)
        .await
        .unwrap();
    h.advance(1);
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne_stock("8000001"), 9, "never counted a second time");
    // Off, pushes count again.
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 8);
}

#[tokio::test]
async fn switching_history_off_first_reads_what_happened_while_it_was_on() {
    let mut h = Harness::start(Options {
        shape: PushShape::Minimal,
        ..Options::default()
    })
    .await;
    h.enable_history_access().await;
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 3).await.unwrap();
    // Off before any run: the push was a signal, so history must be read now.
    sne_service::stock_history::set_history_mode(&h.ctx, &h.tenant, false)
        .await
        .unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 7);
}

#[tokio::test]
async fn a_backlog_over_the_row_cap_goes_up_as_several_files_each_once() {
    let h = Harness::start(Options {
        smaregi_stock: vec![("8000001", 10), ("8000002", 10), ("8000003", 10)],
        config: sne_service::ServiceConfig {
            max_rows_per_file: 2,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    for product in ["8000001", "8000002", "8000003", "8000001", "8000002"] {
        h.smaregi.sale(CONTRACT, "1", product, 1).await.unwrap();
    }
    let run = h.run(Jobs::All).await;
    let uploads = h.ne.uploads();
    assert_eq!(uploads.len(), 3, "5 changes, 2 per file: {uploads:?}");
    assert!(
        uploads.iter().all(|u| u.csv.lines().count() <= 3),
        "header + 2 rows"
    );
    assert!(matches!(run.report.upload, UploadSection::Uploaded { .. }));
    let more: Vec<_> = run
        .report
        .notices
        .iter()
        .filter(|n| n.contains("続けてファイル"))
        .collect();
    assert_eq!(more.len(), 2, "{:?}", run.report.notices);
    let mail = h.mails().pop().unwrap();
    assert_eq!(
        mail.attachments
            .iter()
            .filter(|(n, _)| n.ends_with(".csv"))
            .count(),
        3
    );
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne.uploads().len(), 3, "each file once");
    assert_eq!(h.ne_stock("8000001"), 8);
    assert_eq!(h.ne_stock("8000002"), 8);
    assert_eq!(h.ne_stock("8000003"), 9);
}

/// The newest history id is looked up by date: by the service's clock, not the
/// machine's, or a change counted from its push is read again from history.
#[tokio::test]
async fn switching_history_on_after_days_never_rereads_what_pushes_counted() {
    let mut h = Harness::start(Options {
        shape: PushShape::Relative,
        ..Options::default()
    })
    .await;
    h.advance(2 * 86_400);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.enable_history_access().await;
    h.advance(1);
    for _ in 0..2 {
        h.run(Jobs::All).await;
        h.ne.run_queues();
    }
    assert_eq!(h.ne_stock("8000001"), 9);
}

/// Makes the harness's tenant look as it did before the stock-history periods
/// became a tenant setting: the record holds none, the legacy cursor is unset;
/// returns the periods as the legacy cursor held them.
async fn as_legacy_tenant(h: &Harness) -> String {
    let mut tenant = h.ctx.storage.tenant(&h.tenant.id).await.unwrap().unwrap();
    let text = tenant.stock_history.to_text();
    assert!(tenant.stock_history.on_since().is_some(), "history is read");
    tenant.stock_history = Default::default();
    h.ctx.storage.update_tenant(&tenant).await.unwrap();
    text
}

#[tokio::test]
async fn a_history_mode_kept_before_the_tenant_setting_is_read_and_moved_by_the_next_switch() {
    let mut h = Harness::start(Options::default()).await;
    h.enable_history_access().await;
    let key = sne_service::cursors::LEGACY_STOCK_HISTORY_MODE.name;
    let legacy = as_legacy_tenant(&h).await;
    let retired = h.ctx.storage.cursor(&h.tenant.id, key).await.unwrap();
    assert!(
        h.ctx
            .storage
            .set_cursor(&h.tenant.id, key, retired.as_deref(), &legacy)
            .await
            .unwrap()
    );
    let on_since = sne_service::stock_history::history_mode_since(&h.ctx, &h.tenant)
        .await
        .expect("read from the legacy cursor");

    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne_stock("8000001"), 9, "once, from history");

    let tenant = h.ctx.storage.tenant(&h.tenant.id).await.unwrap().unwrap();
    sne_service::stock_history::set_history_mode(&h.ctx, &tenant, false)
        .await
        .unwrap();
    let tenant = h.ctx.storage.tenant(&h.tenant.id).await.unwrap().unwrap();
    assert_eq!(
        tenant.stock_history.periods.len(),
        1,
        "the legacy period moved"
    );
    assert_eq!(tenant.stock_history.periods[0].on, on_since);
    assert!(tenant.stock_history.periods[0].off.is_some());
    let cursor = h.ctx.storage.cursor(&h.tenant.id, key).await.unwrap();
    assert!(
        cursor.as_deref().unwrap_or_default().is_empty(),
        "the legacy cursor is retired: {cursor:?}"
    );
    assert_eq!(
        sne_service::stock_history::history_mode_since(&h.ctx, &tenant).await,
        None
    );
}
