//! The drift radar end to end (issue 14): each cause of drift found and
//! explained, nothing in flight mistaken for drift, and 「揃える」 exactly once.

use sne_domain::drift::{DriftCause, DriftCheck, DriftLine};
use sne_domain::tenant::StockMaster;
use sne_domain::upload_csv::UploadLine;
use sne_e2e::{COMPANY, CONTRACT, Harness, Options};
use sne_service::drift::{AlignError, align, check_drift, preview_alignment, run_drift};
use sne_service::run::{Jobs, Mailing};
use sne_simulators::nextengine::{Fault, FaultKind, SeedGoods};

async fn harness(options: Options) -> Harness {
    let mut h = Harness::start(options).await;
    h.give_smaregi_api().await;
    h
}

async fn check(h: &Harness) -> DriftCheck {
    check_drift(&h.ctx, &h.tenant).await.expect("drift check")
}

fn line<'a>(check: &'a DriftCheck, code: &str) -> &'a DriftLine {
    check
        .lines
        .iter()
        .find(|l| l.goods_code.as_str() == code)
        .unwrap_or_else(|| panic!("no drift line for {code}: {:?}", check.lines))
}

fn codes(check: &DriftCheck) -> Vec<&str> {
    check.lines.iter().map(|l| l.goods_code.as_str()).collect()
}

/// A full round: upload, NextEngine runs its queues, the next run records it.
async fn sync(h: &Harness) {
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
}

#[tokio::test]
async fn stock_in_step_is_no_drift_and_the_daily_mail_says_so() {
    let h = harness(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    sync(&h).await;
    let run = run_drift(&h.ctx, &h.tenant, "r-drift", Mailing::Send).await;
    let subject = run.report.render().subject;
    assert!(subject.ends_with("在庫差異:なし"), "{subject}");
    let mail = h.mails().pop().expect("the check's mail");
    assert!(mail.body.contains("■ 在庫差異"), "{}", mail.body);
    assert!(
        mail.body
            .contains("比較した商品: 3件 / 差異のある商品: 0件")
    );
    assert!(mail.attachments.is_empty(), "no CSV without lines");
}

#[tokio::test]
async fn a_difference_older_than_the_connection_is_aligned_once_as_the_initial_alignment() {
    let h = harness(Options {
        ne_goods: vec![("8000001", 7, 0), ("8000002", 10, 0), ("8000003", 14, 0)],
        ..Options::default()
    })
    .await;
    let first = check(&h).await;
    assert_eq!(codes(&first), ["8000003", "8000001"], "largest first");
    let short = line(&first, "8000001");
    assert_eq!((short.smaregi, short.difference), (10, -3));
    assert_eq!(short.causes, [DriftCause::BeforeConnection]);
    assert_eq!(short.correction, Some(3));
    assert_eq!(line(&first, "8000003").correction, Some(-4));

    let preview = preview_alignment(&h.ctx, &h.tenant, &first.id)
        .await
        .unwrap();
    assert_eq!(preview.refusal, None);
    assert_eq!(
        preview.corrections,
        [
            UploadLine {
                goods_code: "8000001".into(),
                delta: 3
            },
            UploadLine {
                goods_code: "8000003".into(),
                delta: -4
            },
        ]
    );
    // A sale between the check and the alignment: both are deltas, so both count.
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let batch = align(&h.admin, &h.tenant, &first.id, "admin")
        .await
        .expect("aligned");
    assert_eq!(batch.aligns.as_deref(), Some(first.id.as_str()));
    let again = align(&h.admin, &h.tenant, &first.id, "admin").await;
    assert!(
        matches!(again, Err(AlignError::AlreadyAligned(_))),
        "{again:?}"
    );
    sync(&h).await;
    sync(&h).await;
    let csvs: Vec<String> = h.ne.uploads().into_iter().map(|u| u.csv).collect();
    assert_eq!(
        csvs.iter()
            .filter(|c| c.contains("8000001,3\r\n8000003,-4"))
            .count(),
        1,
        "the corrections went up once: {csvs:?}"
    );
    assert_eq!(h.ne_stock("8000001"), 9);
    assert_eq!(h.ne_stock("8000003"), 10);
    assert!(check(&h).await.lines.is_empty());
}

#[tokio::test]
async fn a_push_smaregi_never_sent_is_drift_named_as_such() {
    let h = harness(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    sync(&h).await;
    // Smaregi's push is lost: the sale happens, nothing reaches the service.
    h.smaregi.configure_push(CONTRACT, None);
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    let found = check(&h).await;
    let l = line(&found, "8000001");
    assert_eq!((l.smaregi, l.difference, l.correction), (7, 2, Some(-2)));
    assert_eq!(l.causes, [DriftCause::MissedSmaregiChange]);
}

#[tokio::test]
async fn a_manual_edit_in_nextengine_is_drift_on_nextengines_side() {
    let h = harness(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    sync(&h).await;
    h.ne.record_stock_change(COMPANY, "8000002", 5, None);
    let found = check(&h).await;
    let l = line(&found, "8000002");
    assert_eq!((l.smaregi, l.difference), (9, 5));
    assert_eq!(l.causes, [DriftCause::ChangedInNextEngine]);
    assert_eq!(found.lines.len(), 1);
}

#[tokio::test]
async fn a_file_nextengine_applied_in_part_is_drift_explained_by_its_failed_queue() {
    for partial in [true, false] {
        // 8000001: 8 of 10 allocated, so the 棚卸 −5 is refused for free stock.
        let h = harness(Options {
            ne_goods: vec![("8000001", 10, 8), ("8000002", 10, 0), ("8000003", 10, 0)],
            ..Options::default()
        })
        .await;
        h.ne.set_partial_apply(partial);
        h.smaregi
            .stocktake(CONTRACT, "1", "8000001", 5)
            .await
            .unwrap();
        h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
        sync(&h).await;
        let found = check(&h).await;
        let refused = line(&found, "8000001");
        // The import is off: every allocation is a web order Smaregi never heard of.
        assert_eq!(refused.expected_free, 5 - 8);
        assert_eq!(refused.difference, 5, "partial={partial}");
        assert_eq!(refused.causes, [DriftCause::QueueFailed]);
        // Its rows go with 「未反映の行を再アップロード」, never also with 「揃える」.
        assert_eq!(refused.correction, None);
        if partial {
            assert_eq!(codes(&found), ["8000001"], "the good row was applied");
        } else {
            let good = line(&found, "8000002");
            assert_eq!(good.difference, 1);
            assert_eq!(good.causes, [DriftCause::QueueFailed]);
        }
    }
}

#[tokio::test]
async fn a_goods_code_registered_late_is_unknown_then_drift_with_its_parked_changes() {
    let h = harness(Options {
        smaregi_stock: vec![("8000001", 10), ("8000009", 10)],
        ne_goods: vec![("8000001", 10, 0)],
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000009", 1).await.unwrap();
    sync(&h).await;
    let unknown = check(&h).await;
    let l = line(&unknown, "8000009");
    assert_eq!(l.causes, [DriftCause::UnknownToNextEngine]);
    assert_eq!((l.nextengine, l.correction), (None, None));
    assert!(
        preview_alignment(&h.ctx, &h.tenant, &unknown.id)
            .await
            .unwrap()
            .corrections
            .is_empty()
    );

    // The operator registers the goods in NextEngine with 0 in stock.
    h.ne.seed_goods(
        COMPANY,
        vec![SeedGoods {
            goods_id: "8000009".into(),
            goods_name: "後から登録".into(),
            stock_quantity: 0,
            allocation_quantity: 0,
        }],
    );
    let late = check(&h).await;
    let l = line(&late, "8000009");
    assert_eq!((l.smaregi, l.difference, l.correction), (9, -9, Some(9)));
    assert_eq!(l.causes, [DriftCause::ParkedWhileUnregistered]);
}

#[tokio::test]
async fn nothing_in_flight_is_mistaken_for_drift() {
    let h = harness(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.smaregi
        .receive(CONTRACT, "1", "8000002", 4)
        .await
        .unwrap();
    let pending = check(&h).await;
    assert!(pending.lines.is_empty(), "pending: {:?}", pending.lines);

    h.run(Jobs::All).await;
    let queued = check(&h).await;
    assert!(queued.lines.is_empty(), "queued: {:?}", queued.lines);

    // NextEngine applied the file; the run that records it has not come yet.
    h.ne.run_queues();
    let applied = check(&h).await;
    assert!(applied.lines.is_empty(), "applied: {:?}", applied.lines);

    h.run(Jobs::All).await;
    assert!(check(&h).await.lines.is_empty());
}

#[tokio::test]
async fn web_orders_nextengine_holds_are_no_drift_and_negative_smaregi_stock_is_zero() {
    let h = harness(Options {
        smaregi_stock: vec![("8000001", 10), ("8000002", -3), ("8000003", -3)],
        // 8000001: 3 allocated to web orders, which Smaregi (import off) never sees.
        ne_goods: vec![("8000001", 10, 3), ("8000002", 0, 0), ("8000003", 2, 0)],
        ..Options::default()
    })
    .await;
    let found = check(&h).await;
    assert_eq!(codes(&found), ["8000003"]);
    let l = line(&found, "8000003");
    assert_eq!(
        (l.expected_free, l.difference, l.correction),
        (0, 2, Some(-2))
    );
}

#[tokio::test]
async fn only_the_counted_stores_are_compared() {
    let h = harness(Options {
        counted_stores: Some(vec!["1".into()]),
        ..Options::default()
    })
    .await;
    h.smaregi.configure_push(CONTRACT, None);
    h.smaregi
        .receive(CONTRACT, "2", "8000001", 50)
        .await
        .unwrap();
    assert!(check(&h).await.lines.is_empty());
    h.smaregi
        .receive(CONTRACT, "1", "8000001", 1)
        .await
        .unwrap();
    assert_eq!(line(&check(&h).await, "8000001").smaregi, 11);
}

#[tokio::test]
async fn set_goods_are_left_to_nextengine() {
    let h = harness(Options {
        ne_goods: vec![("8000001", 10, 0), ("8000002", 10, 0), ("8000003", 99, 0)],
        ..Options::default()
    })
    .await;
    h.ne.seed_set_goods(
        COMPANY,
        "8000003",
        vec![("8000001".into(), 1), ("8000002".into(), 2)],
    );
    let found = check(&h).await;
    assert!(found.lines.is_empty(), "{:?}", found.lines);
    assert_eq!(found.set_goods_skipped, 1);
    assert_eq!(found.goods_compared, 2);
}

#[tokio::test]
async fn with_nextengine_as_master_drift_is_only_reported() {
    let mut h = harness(Options {
        ne_goods: vec![("8000001", 4, 0), ("8000002", 10, 0), ("8000003", 10, 0)],
        ..Options::default()
    })
    .await;
    let mut tenant = h.tenant.clone();
    tenant.stock_master = StockMaster::NextEngine;
    h.tenant = h.ctx.storage.update_tenant(&tenant).await.unwrap();
    let found = check(&h).await;
    assert_eq!(line(&found, "8000001").correction, None);
    assert!(found.corrections().is_empty());
    let refused = align(&h.admin, &h.tenant, &found.id, "admin").await;
    assert!(
        matches!(refused, Err(AlignError::ReportOnly)),
        "{refused:?}"
    );
    let run = run_drift(&h.ctx, &h.tenant, "r-ne-master", Mailing::Send).await;
    let body = run.report.render().body;
    assert!(body.contains("お知らせのみ"), "{body}");
    // The mail lists the largest differences and attaches every line.
    let mail = h.mails().pop().expect("the check's mail");
    assert!(mail.subject.ends_with("在庫差異:1件"), "{}", mail.subject);
    assert!(
        mail.body
            .contains("・8000001 スマレジ10 / ネクストエンジン 在庫数4"),
        "{}",
        mail.body
    );
    assert_eq!(mail.attachments.len(), 1);
    let (name, csv) = &mail.attachments[0];
    assert!(
        name.starts_with("drift_") && name.ends_with(".csv"),
        "{name}"
    );
    let csv = String::from_utf8(csv.clone()).unwrap();
    assert!(csv.starts_with("\u{feff}商品コード,スマレジ在庫,"), "{csv}");
    assert!(csv.contains("\r\n8000001,10,4,0,4,"), "{csv}");
}

#[tokio::test]
async fn alignment_waits_while_a_file_of_the_goods_is_in_flight_and_applies_only_the_latest_fresh_check()
 {
    let h = harness(Options {
        ne_goods: vec![("8000001", 7, 0), ("8000002", 10, 0), ("8000003", 10, 0)],
        ..Options::default()
    })
    .await;
    let first = check(&h).await;
    // A sale of the same goods goes up and waits in NextEngine's queue.
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    let waiting = align(&h.admin, &h.tenant, &first.id, "admin").await;
    assert!(
        matches!(&waiting, Err(AlignError::FilesInFlight(goods)) if goods == &["8000001"]),
        "{waiting:?}"
    );
    // The check made now sees the file and proposes no correction of its goods.
    let during = check(&h).await;
    let l = line(&during, "8000001");
    assert_eq!((l.in_files, l.correction), (-1, None));
    assert!(matches!(
        align(&h.admin, &h.tenant, &first.id, "admin").await,
        Err(AlignError::NotLatest)
    ));

    h.ne.run_queues();
    h.run(Jobs::All).await;
    let after = check(&h).await;
    assert_eq!(line(&after, "8000001").correction, Some(3));
    h.advance(2 * 3600);
    assert!(matches!(
        align(&h.admin, &h.tenant, &after.id, "admin").await,
        Err(AlignError::TooOld)
    ));
    assert!(
        h.ctx
            .storage
            .batches_in_state(&h.tenant.id, sne_domain::batch_state::BatchState::Built)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_alignment_whose_upload_answer_is_lost_is_corrected_once() {
    let h = harness(Options {
        ne_goods: vec![("8000001", 4, 0), ("8000002", 10, 0), ("8000003", 10, 0)],
        ..Options::default()
    })
    .await;
    let found = check(&h).await;
    // Two operators confirm at once: one file.
    let (a, b) = tokio::join!(
        align(&h.admin, &h.tenant, &found.id, "one"),
        align(&h.admin, &h.tenant, &found.id, "two"),
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    // NextEngine takes the file, then the answer is lost: the crash of the
    // alignment's upload midway.
    h.ne.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on("/api_v1_master_goods/upload")
            .times(1),
    );
    h.run(Jobs::All).await;
    h.advance(600);
    for _ in 0..3 {
        sync(&h).await;
        h.advance(600);
    }
    let corrections =
        h.ne.uploads()
            .into_iter()
            .filter(|u| u.csv.contains("8000001,6"))
            .count();
    assert_eq!(corrections, 1, "{:?}", h.ne.uploads());
    assert_eq!(h.ne_stock("8000001"), 10);
    assert!(check(&h).await.lines.is_empty());
}

#[tokio::test]
async fn a_web_order_the_import_has_not_shipped_yet_is_no_drift_and_once_shipped_neither() {
    use sne_service::orders::{OrderImportForm, configure_order_import};
    use sne_simulators::nextengine::{SeedOrder, SeedOrderRow};
    // NextEngine allocated 3 of 8000001 to a web order.
    let mut h = harness(Options {
        ne_goods: vec![("8000001", 10, 3), ("8000002", 10, 0), ("8000003", 10, 0)],
        ..Options::default()
    })
    .await;
    configure_order_import(
        &h.ctx,
        &h.tenant.id,
        OrderImportForm {
            enabled: true,
            contract_id: CONTRACT.into(),
            store_id: "1".into(),
            access_token: sne_e2e::SMAREGI_TOKEN.into(),
        },
    )
    .await
    .expect("import on");
    h.tenant = h.ctx.storage.tenant(&h.tenant.id).await.unwrap().unwrap();
    h.ne.seed_orders(
        COMPANY,
        vec![SeedOrder {
            receive_order_id: 501,
            shop_id: 1,
            shop_cut_form_id: "WEB-501".into(),
            order_date: None,
            import_date: None,
            cancel_type_id: "0".into(),
            order_status_id: "2".into(),
            send_date: None,
            rows: vec![SeedOrderRow {
                row_no: 1,
                goods_id: "8000001".into(),
                goods_name: String::new(),
                quantity: 3,
                cancel_flag: false,
                deleted_flag: false,
            }],
        }],
    );
    let before = check(&h).await;
    assert!(
        before.lines.is_empty(),
        "not yet imported: {:?}",
        before.lines
    );

    h.run(Jobs::ImportOrders).await;
    assert_eq!(
        h.smaregi.stock(CONTRACT, "1", "8000001"),
        Some(7),
        "shipped into Smaregi"
    );
    let after = check(&h).await;
    assert!(after.lines.is_empty(), "imported: {:?}", after.lines);
    // A manual edit of 8000001 in NextEngine still shows, net of the order.
    h.ne.record_stock_change(COMPANY, "8000001", 2, None);
    let l = line(&check(&h).await, "8000001").clone();
    assert_eq!((l.web_orders, l.expected_free, l.difference), (0, 7, 2));
}
