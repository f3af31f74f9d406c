//! Issue 4's end-to-end cases: pushes from the Smaregi simulator through the
//! service to the NextEngine simulator, on embedded storage.

use sne_domain::report::TOKEN_ERROR_TEXT;
use sne_e2e::{COMPANY, CONTRACT, Harness, Options, SMAREGI_TOKEN};
use sne_ports::smaregi::NewShipment;
use sne_service::run::Jobs;
use sne_simulators::nextengine::{Fault, FaultKind};
use sne_simulators::smaregi::PushShape;
use std::time::Duration;

fn uploaded_csvs(h: &Harness) -> Vec<String> {
    h.ne.uploads().into_iter().map(|u| u.csv).collect()
}

#[tokio::test]
async fn the_manuals_three_examples_reach_nextengine_as_the_right_deltas() {
    let h = Harness::start(Options {
        smaregi_stock: vec![("8000001", 2), ("8000002", -5), ("8000003", -3)],
        ..Options::default()
    })
    .await;
    // before 2, +3 → +3; before −5, +3 → 0; before −3, +5 → +2
    h.smaregi
        .receive(CONTRACT, "1", "8000001", 3)
        .await
        .unwrap();
    h.smaregi
        .receive(CONTRACT, "1", "8000002", 3)
        .await
        .unwrap();
    h.smaregi
        .receive(CONTRACT, "1", "8000003", 5)
        .await
        .unwrap();
    assert!(h.smaregi.sends().iter().all(|s| s.status == "成功"));

    let run = h.run(Jobs::All).await;
    assert!(run.report.render().subject.contains("アップロード:成功"));
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,3\r\n8000003,2\r\n".to_string()]
    );
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 13);
    assert_eq!(h.ne_stock("8000002"), 10);
    assert_eq!(h.ne_stock("8000003"), 12);

    let second = h.run(Jobs::All).await;
    let subject = second.report.render().subject;
    assert!(subject.contains("アップロード:なし"), "{subject}");
    assert!(subject.contains("処理結果:成功"), "{subject}");
    let mails = h.mails();
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[0].attachments.len(),
        1,
        "the CSV goes with the upload mail"
    );
    assert_eq!(
        mails[0].attachments[0].1,
        b"syohin_code,zaiko_su\r\n8000001,3\r\n8000003,2\r\n"
    );
}

#[tokio::test]
async fn shipments_are_never_uploaded() {
    let h = Harness::start(Options {
        push_api_changes: true,
        ..Options::default()
    })
    .await;
    let creds = sne_domain::tenant::SmaregiCredentials {
        contract_id: CONTRACT.into(),
        access_token: SMAREGI_TOKEN.into(),
    };
    let id = h
        .ctx
        .smaregi
        .create_shipment(
            &creds,
            &NewShipment {
                store_id: "1".into(),
                recipient_name: "ネット販売".into(),
                shipment_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
                identification_no: "1001".into(),
                memo: "web-1001".into(),
                token: "tok-1001".into(),
                lines: vec![("8000001".into(), 2)],
                is_return: false,
            },
        )
        .await
        .unwrap();
    assert!(id.is_some());
    let last = h
        .smaregi
        .sends()
        .last()
        .cloned()
        .expect("the shipment was pushed");
    assert!(last.body.contains("stockDivision"), "{}", last.body);
    assert_eq!(last.status, "成功");

    let run = h.run(Jobs::All).await;
    assert!(
        h.ne.uploads().is_empty(),
        "出荷 must never reach NextEngine"
    );
    assert!(run.report.render().subject.contains("アップロード:なし"));
    assert_eq!(h.ne_stock("8000001"), 10);
}

#[tokio::test]
async fn a_resend_changes_nothing() {
    let h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let first = h.smaregi.sends().last().unwrap().id;
    let resent = h.smaregi.resend(first).await.unwrap();
    assert_eq!(resent.status, "成功", "a resend is answered 200");
    h.run(Jobs::All).await;
    // A resend after the upload must not come back either.
    h.smaregi.resend(first).await.unwrap();
    h.run(Jobs::All).await;
    h.ne.run_queues();
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-1\r\n"]
    );
    assert_eq!(h.ne_stock("8000001"), 9);
}

#[tokio::test]
async fn an_unknown_goods_code_is_reported_not_a_failed_file() {
    let h = Harness::start(Options {
        smaregi_stock: vec![("8000001", 10), ("8000009", 10)],
        ne_goods: vec![("8000001", 10, 0)],
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.smaregi.sale(CONTRACT, "1", "8000009", 4).await.unwrap();
    h.run(Jobs::All).await;
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-1\r\n"]
    );
    h.ne.run_queues();
    let second = h.run(Jobs::All).await;
    assert!(second.report.render().subject.contains("処理結果:成功"));
    let mails = h.mails();
    assert!(mails[0].body.contains("未登録商品"), "{}", mails[0].body);
    assert!(mails[0].body.contains("8000009"));
}

#[tokio::test]
async fn a_failed_queue_is_reported_with_its_row_errors() {
    let h = Harness::start(Options {
        // NextEngine has 10 in stock but 8 are allocated to orders: free stock 2.
        ne_goods: vec![("8000001", 10, 8), ("8000002", 10, 0)],
        ..Options::default()
    })
    .await;
    h.smaregi
        .stocktake(CONTRACT, "1", "8000001", 5)
        .await
        .unwrap(); // 棚卸 −5
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    let first = h.run(Jobs::All).await;
    let que_id = match &first.report.upload {
        sne_domain::report::UploadSection::Uploaded { que_id, .. } => que_id.to_string(),
        other => panic!("expected an upload, got {other:?}"),
    };
    h.ne.run_queues();
    let second = h.run(Jobs::All).await;
    let subject = second.report.render().subject;
    assert!(
        subject.contains(&format!("処理結果:失敗(キューID:{que_id})")),
        "{subject}"
    );
    let mails = h.mails();
    let body = &mails[1].body;
    assert!(body.contains("前回の処理結果"), "{body}");
    assert!(body.contains("8000001"), "{body}");
    assert!(body.contains("フリー在庫数"), "{body}");
    // The first mail carries the CSV with the same queue id (the manual's recovery path).
    assert!(mails[0].body.contains(&que_id));
    assert_eq!(mails[0].attachments.len(), 1);
    // NextEngine applied the good row; the attachment to retry holds only the failed one.
    assert_eq!(h.ne_stock("8000002"), 9);
    let retry = mails[1]
        .attachments
        .iter()
        .find(|(name, _)| name.contains("failed"))
        .expect("a file with only the failed rows");
    assert_eq!(retry.1, b"syohin_code,zaiko_su\r\n8000001,-5\r\n");
}

#[tokio::test]
async fn an_expired_token_is_reported_and_the_same_changes_go_up_after_reacquisition() {
    let h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.ne.advance_clock(4 * 24 * 3600); // refresh token (3 days) is dead
    let failed = h.run(Jobs::All).await;
    let rendered = failed.report.render();
    assert!(
        rendered.subject.contains("アップロード:失敗"),
        "{}",
        rendered.subject
    );
    let mails = h.mails();
    assert!(
        mails[0].body.contains(TOKEN_ERROR_TEXT),
        "{}",
        mails[0].body
    );
    assert!(mails[0].body.contains("再取得"));
    assert!(h.ne.uploads().is_empty());

    // 再取得: the browser goes through NextEngine's sign-in and comes back with uid/state.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .get(h.ctx.nextengine.sign_in_url())
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let url = reqwest::Url::parse(&location).unwrap();
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .into_owned()
    };
    sne_service::tenants::connect_nextengine(&h.ctx, &h.tenant.id, &get("uid"), &get("state"))
        .await
        .unwrap();

    let retried = h.run(Jobs::All).await;
    assert!(
        retried
            .report
            .render()
            .subject
            .contains("アップロード:成功")
    );
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-2\r\n"]
    );
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 8);
}

#[tokio::test]
async fn a_lost_upload_answer_leads_to_exactly_one_upload() {
    let h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 3).await.unwrap();
    // NextEngine queues the file but the answer never arrives: as if the process
    // died between the upload call and recording the queue id.
    h.ne.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on("/api_v1_master_goods/upload")
            .times(1),
    );
    let first = h.run(Jobs::All).await;
    assert!(
        first
            .report
            .render()
            .subject
            .contains("アップロード:確認中"),
        "{}",
        first.report.render().subject
    );
    assert_eq!(h.ne.uploads().len(), 1);

    let second = h.run(Jobs::All).await;
    let que_id = h.ne.uploads()[0].que_id.clone();
    match &second.report.upload {
        sne_domain::report::UploadSection::Uploaded {
            que_id: adopted, ..
        } => {
            assert_eq!(adopted, &que_id, "the queue of the lost answer is adopted")
        }
        other => panic!("expected the adopted upload, got {other:?}"),
    }
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!(h.ne.uploads().len(), 1, "never uploaded twice");
    assert_eq!(h.ne_stock("8000001"), 7);
}

#[tokio::test]
async fn an_upload_nextengine_never_received_is_sent_once_after_the_grace_period() {
    let h = Harness::start(Options {
        config: sne_service::ServiceConfig {
            unknown_outcome_grace: Duration::from_secs(10),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.ne.inject_fault(
        Fault::new(FaultKind::DropConnection)
            .on("/api_v1_master_goods/upload")
            .times(1),
    );
    h.run(Jobs::All).await;
    assert!(h.ne.uploads().is_empty());
    h.advance(11);
    h.run(Jobs::All).await;
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-1\r\n"]
    );
    h.run(Jobs::All).await;
    assert_eq!(h.ne.uploads().len(), 1);
}

#[tokio::test]
async fn two_runs_at_once_upload_each_change_once() {
    let h = Harness::start(Options {
        ne_goods: vec![("8000001", 100, 0)],
        ..Options::default()
    })
    .await;
    let other = h.second_process();
    let mut expected = 0;
    for round in 0..4 {
        for _ in 0..3 {
            h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
            expected += 1;
        }
        let a = sne_service::run::run_all(&h.ctx, Jobs::Upload);
        let b = sne_service::run::run_all(&other, Jobs::Upload);
        let (ra, rb) = tokio::join!(a, b);
        ra.unwrap();
        rb.unwrap();
        h.ne.run_queues();
        assert_eq!(h.ne_stock("8000001"), 100 - expected, "round {round}");
    }
    // A last pair of runs picks up anything a busy lease held back.
    h.run(Jobs::Upload).await;
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 100 - expected);
}

#[tokio::test]
async fn minimal_pushes_are_completed_from_stock_history() {
    let mut h = Harness::start(Options {
        shape: PushShape::Minimal,
        ..Options::default()
    })
    .await;
    // A push received before history reading starts is still a push: the first
    // absolute value of 8000001 only sets the mirror.
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.enable_history_access().await;
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.smaregi
        .stocktake(CONTRACT, "1", "8000002", 4)
        .await
        .unwrap();
    h.smaregi
        .transfer(CONTRACT, "1", "2", "8000003", 3)
        .await
        .unwrap();
    let sends = h.smaregi.sends();
    assert!(
        sends.iter().all(|s| !s.body.contains("stockDivision")),
        "minimal shape"
    );
    h.run(Jobs::All).await;
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-2\r\n8000002,-6\r\n".to_string()]
    );
    h.ne.run_queues();
    assert_eq!(h.ne_stock("8000001"), 8);
    assert_eq!(h.ne_stock("8000002"), 4);
    assert_eq!(
        h.ne_stock("8000003"),
        10,
        "a transfer between counted stores nets to zero"
    );

    // Switching history reading off goes back to the pushes themselves.
    sne_service::stock_history::set_history_mode(&h.ctx, &h.tenant, false)
        .await
        .unwrap();
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.run(Jobs::All).await;
    let uploads = h.ne.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[1].csv, "syohin_code,zaiko_su\r\n8000001,-1\r\n");
}

#[tokio::test]
async fn minimal_pushes_without_history_access_set_the_mirror_first() {
    let h = Harness::start(Options {
        shape: PushShape::Minimal,
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let first = h.run(Jobs::All).await;
    assert!(
        h.ne.uploads().is_empty(),
        "the first absolute value only sets the mirror"
    );
    assert!(first.report.notices.iter().any(|n| n.contains("基準値")));
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.run(Jobs::All).await;
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-2\r\n"]
    );
    let _ = COMPANY;
}

#[tokio::test]
async fn a_quiet_shop_keeps_its_nextengine_connection() {
    let h = Harness::start(Options::default()).await;
    // A week without a single stock change, runs every few hours: the refresh
    // token (3 days) would die unless the runs renew it.
    for _ in 0..(7 * 24 / 6) {
        h.advance(6 * 3600);
        h.run(Jobs::All).await;
    }
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let run = h.run(Jobs::All).await;
    assert!(
        run.report.render().subject.contains("アップロード:成功"),
        "{}",
        run.report.render().subject
    );
    assert!(h.mails().iter().all(|m| !m.body.contains(TOKEN_ERROR_TEXT)));
}

/// A mailer that is down for its first `failures` sends.
struct FlakyMailer {
    inner: std::sync::Arc<dyn sne_ports::Mailer>,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl sne_ports::Mailer for FlakyMailer {
    async fn send(&self, mail: &sne_ports::Mail) -> Result<String, sne_ports::mail::MailError> {
        let left = self.failures.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.failures
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(sne_ports::mail::MailError::Unavailable(
                "SMTP relay down".into(),
            ));
        }
        self.inner.send(mail).await
    }
}

#[tokio::test]
async fn a_report_that_cannot_be_sent_goes_out_with_the_next_run() {
    let mut h = Harness::start(Options::default()).await;
    h.ctx.mailer = std::sync::Arc::new(FlakyMailer {
        inner: h.ctx.mailer.clone(),
        failures: std::sync::atomic::AtomicUsize::new(1),
    });
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let first = h.run(Jobs::All).await;
    assert_eq!((first.mail.sent, first.mail.failed), (0, 1));
    assert!(h.mails().is_empty());

    // Nothing new happens, but the pending report (with its CSV) still goes out.
    let second = h.run(Jobs::All).await;
    assert_eq!((second.mail.sent, second.mail.failed), (1, 0));
    let mails = h.mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].subject.contains("アップロード:成功"),
        "{}",
        mails[0].subject
    );
    assert_eq!(
        mails[0].attachments[0].1,
        b"syohin_code,zaiko_su\r\n8000001,-1\r\n"
    );
    // Sent once, never again.
    h.run(Jobs::All).await;
    assert_eq!(h.mails().len(), 1);
}

/// The manual's rules, a 棚卸, a sale and a shipment made through the old API,
/// with stock-history reading on: the same NextEngine stock whatever the pushes
/// carry and whether Smaregi pushes the API's own changes (reference
/// smaregi-api.md, Update "stock_send rows" and "Echo of old-API writes").
#[tokio::test]
async fn with_history_reading_every_push_shape_gives_the_manuals_deltas() {
    for shape in [
        PushShape::Minimal,
        PushShape::Absolute,
        PushShape::Relative,
        PushShape::Full,
    ] {
        for push_api_changes in [false, true] {
            let mut h = Harness::start(Options {
                shape,
                push_api_changes,
                smaregi_stock: vec![("8000001", 2), ("8000002", -5), ("8000003", -3)],
                ..Options::default()
            })
            .await;
            h.enable_history_access().await;
            h.advance(1);
            let case = format!("{shape:?}, push_api_changes {push_api_changes}");
            for (product, qty) in [("8000001", 3), ("8000002", 3), ("8000003", 5)] {
                h.smaregi
                    .receive(CONTRACT, "1", product, qty)
                    .await
                    .unwrap();
            }
            let creds = h.tenant.smaregi_api.clone().unwrap();
            h.ctx
                .smaregi
                .create_shipment(
                    &creds,
                    &NewShipment {
                        store_id: "1".into(),
                        recipient_name: "ネット販売".into(),
                        shipment_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
                        identification_no: "2001".into(),
                        memo: "web-2001".into(),
                        token: "tok-2001".into(),
                        lines: vec![("8000001".into(), 1)],
                        is_return: false,
                    },
                )
                .await
                .unwrap();
            h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
            // 棚卸 from −2 to 4: +6, whatever the stock was.
            h.smaregi
                .stocktake(CONTRACT, "1", "8000002", 4)
                .await
                .unwrap();
            for _ in 0..2 {
                h.run(Jobs::All).await;
                h.ne.run_queues();
            }
            assert_eq!(h.ne_stock("8000001"), 12, "{case}: +3, the 出荷 not, −1");
            assert_eq!(h.ne_stock("8000002"), 16, "{case}: 0 from −5, then 棚卸 +6");
            assert_eq!(h.ne_stock("8000003"), 12, "{case}: +2 of +5 from −3");
        }
    }
}

/// A function switched off in Smaregi is not a passing glitch: the report says
/// what to check, and nothing is counted from the pushes meanwhile.
#[tokio::test]
async fn a_refused_history_read_says_what_to_check_in_smaregi() {
    let mut h = Harness::start(Options {
        shape: PushShape::Minimal,
        ..Options::default()
    })
    .await;
    h.enable_history_access().await;
    h.advance(1);
    let without_stock_ref: Vec<&str> = sne_simulators::smaregi::ALL_FUNCTIONS
        .iter()
        .copied()
        .filter(|f| *f != "stock_ref")
        .collect();
    h.smaregi.set_functions(CONTRACT, &without_stock_ref);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let run = h.run(Jobs::All).await;
    assert!(
        run.report
            .notices
            .iter()
            .any(|n| n.contains("在庫情報参照")),
        "{:?}",
        run.report.notices
    );
    assert!(h.ne.uploads().is_empty(), "the push was only a signal");
    h.smaregi
        .set_functions(CONTRACT, sne_simulators::smaregi::ALL_FUNCTIONS);
    h.run(Jobs::All).await;
    h.ne.run_queues();
    assert_eq!(
        h.ne_stock("8000001"),
        9,
        "counted once the read works again"
    );
}

#[tokio::test]
async fn a_suspended_nextengine_account_is_reported_as_such_and_the_changes_wait() {
    let h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    // Hamee's reading of 002003: the account is suspended (利用停止).
    h.ne.inject_fault(Fault::new(FaultKind::Code("002003".into())));
    let suspended = h.run(Jobs::All).await;
    assert!(
        matches!(
            &suspended.report.upload,
            sne_domain::report::UploadSection::Suspended { .. }
        ),
        "{:?}",
        suspended.report.upload
    );
    let body = &h.mails()[0].body;
    assert!(body.contains(sne_domain::report::SUSPENDED_TEXT), "{body}");
    assert!(body.contains("利用停止"), "{body}");
    assert!(!body.contains(TOKEN_ERROR_TEXT), "{body}");
    assert!(h.ne.uploads().is_empty());

    // Once the contract is in order, the kept change goes up once.
    h.ne.clear_faults();
    let resumed = h.run(Jobs::All).await;
    assert!(
        resumed
            .report
            .render()
            .subject
            .contains("アップロード:成功")
    );
    assert_eq!(
        uploaded_csvs(&h),
        vec!["syohin_code,zaiko_su\r\n8000001,-2\r\n"]
    );
}
