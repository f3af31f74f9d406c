//! The スマレジ・プラットフォームAPI intake end to end (issue 15): the manual's
//! rules through `pos:stock` webhooks, duplicates, redeliveries, reordering
//! and drops (the backfill), the migration boundary both ways, echoes of the
//! service's own writes, throttling, contract notifications and isolation.

use serde_json::json;
use sne_domain::history_mode::HistorySource;
use sne_e2e::{CONTRACT, Harness, Options};
use sne_service::platform::{switch_intake, write_stock};
use sne_service::run::Jobs;
use sne_simulators::smaregi::platform::WebhookFaults;
use sne_simulators::smaregi::{PushShape, SmaregiConfig};
use sne_test_support::PLATFORM_SECRET;

async fn platform_harness(options: Options) -> Harness {
    let mut h = Harness::start(Options {
        platform: true,
        // The push shape public receivers attest: no history id, so a push is
        // only ever a signal and every count below is the Platform intake's.
        shape: PushShape::Minimal,
        ..options
    })
    .await;
    let message = h.use_platform_intake().await;
    assert!(message.contains("プラットフォームAPI"), "{message}");
    h
}

/// A full round: upload, NextEngine runs its queues, the next run records it.
async fn sync(h: &Harness) {
    h.run(Jobs::All).await;
    h.ne.run_queues();
    h.run(Jobs::All).await;
}

fn delivered(h: &Harness) -> usize {
    h.smaregi
        .webhook_deliveries()
        .iter()
        .filter(|d| d.outcome == "delivered")
        .count()
}

/// The app contract's state as the last confirmed notification left it.
async fn contract_state(h: &Harness) -> Option<String> {
    sne_service::platform::migration::intake_state(&h.admin, &h.tenant.id)
        .await
        .unwrap()
        .platform_contract
}

/// Pending ledger entries that came through the Platform API (the old push
/// keeps arriving beside them, as signals).
async fn pending(h: &Harness) -> usize {
    h.ctx
        .storage
        .pending_change_list(&h.tenant.id)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.source == sne_domain::change::ChangeSource::Platform)
        .count()
}

#[tokio::test]
async fn the_manuals_rules_hold_on_the_platform_intake() {
    let h = platform_harness(Options::default()).await;
    // 売上 2 → -2; 棚卸 to 7 → -3; ロス 1 → -1; 入荷 4 → +4.
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.smaregi
        .stocktake(CONTRACT, "1", "8000002", 7)
        .await
        .unwrap();
    h.smaregi.loss(CONTRACT, "1", "8000003", 1).await.unwrap();
    h.smaregi
        .receive(CONTRACT, "1", "8000003", 4)
        .await
        .unwrap();
    assert_eq!(delivered(&h), 4, "one pos:stock per change");
    assert!(
        !h.smaregi.sends().is_empty(),
        "the old push still arrives, as a signal only"
    );
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 8);
    assert_eq!(h.ne_stock("8000002"), 7);
    assert_eq!(h.ne_stock("8000003"), 13);
    // Below zero in Smaregi: NextEngine holds no negative stock (before −3, +5 → +2).
    h.smaregi.sale(CONTRACT, "2", "8000001", 3).await.unwrap();
    h.smaregi
        .receive(CONTRACT, "2", "8000001", 5)
        .await
        .unwrap();
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 8 - 3 + 2);
    let csvs: Vec<String> = h.ne.uploads().into_iter().map(|u| u.csv).collect();
    assert_eq!(csvs.len(), 2, "{csvs:?}");
}

#[tokio::test]
async fn duplicated_redelivered_and_reordered_webhooks_count_each_change_once() {
    let h = platform_harness(Options::default()).await;
    h.smaregi.set_webhook_faults(WebhookFaults {
        duplicate_next: 1,
        redeliver_next: 1,
        ..WebhookFaults::default()
    });
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    assert_eq!(delivered(&h), 4, "two deliveries of each");
    h.smaregi.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    h.smaregi
        .receive(CONTRACT, "1", "8000002", 5)
        .await
        .unwrap();
    h.smaregi.release_webhooks().await;
    assert_eq!(pending(&h).await, 4, "one ledger entry per change");
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 7);
    assert_eq!(h.ne_stock("8000002"), 14);
}

#[tokio::test]
async fn a_dropped_webhook_is_read_by_the_next_runs_backfill() {
    let h = platform_harness(Options::default()).await;
    h.smaregi.set_webhook_faults(WebhookFaults {
        drop_next: 2,
        ..WebhookFaults::default()
    });
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.smaregi
        .transfer(CONTRACT, "1", "2", "8000002", 3)
        .await
        .unwrap();
    assert_eq!(delivered(&h), 0);
    assert_eq!(pending(&h).await, 0, "nothing arrived");
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 8, "found by the backfill in one run");
    assert_eq!(
        h.ne_stock("8000002"),
        10,
        "a transfer between counted stores nets out"
    );
    // Later runs read the same window again (the overlap) and count nothing twice.
    h.advance(60);
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 8);
    assert_eq!(h.ne.uploads().len(), 1);
}

#[tokio::test]
async fn the_migration_boundary_counts_every_change_once_in_both_directions() {
    let mut h = Harness::start(Options {
        platform: true,
        shape: PushShape::Minimal,
        ..Options::default()
    })
    .await;
    h.enable_history_access().await;
    h.advance(1);
    h.smaregi.platform_subscribe(CONTRACT, &[]).await.unwrap();
    // On the old intake: pushes are signals, StockHistory counts; pos:stock
    // webhooks already arrive and are not stored.
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    assert_eq!(
        pending(&h).await,
        0,
        "old intake: no history read yet, pushes are signals"
    );
    // A change just before the switch whose webhook is late.
    h.smaregi.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    let message = switch_intake(&h.admin, &h.tenant, HistorySource::Platform)
        .await
        .unwrap();
    let boundary = h.smaregi.history(CONTRACT).last().unwrap().id;
    assert!(message.contains(&boundary.to_string()), "{message}");
    h.smaregi.release_webhooks().await;
    h.advance(1);
    // After the switch: only the Platform intake.
    h.smaregi.sale(CONTRACT, "1", "8000001", 4).await.unwrap();
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 10 - 1 - 2 - 4);

    // Back to the old intake, with a change whose webhook is dropped just before.
    h.smaregi.set_webhook_faults(WebhookFaults {
        drop_next: 1,
        ..WebhookFaults::default()
    });
    h.smaregi.sale(CONTRACT, "1", "8000002", 3).await.unwrap();
    let message = switch_intake(&h.admin, &h.tenant, HistorySource::OldApi)
        .await
        .unwrap();
    assert!(message.contains("旧API"), "{message}");
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    sync(&h).await;
    assert_eq!(
        h.ne_stock("8000001"),
        3,
        "the old intake re-read nothing twice"
    );
    assert_eq!(h.ne_stock("8000002"), 6);
    // And to the Platform API again.
    switch_intake(&h.admin, &h.tenant, HistorySource::Platform)
        .await
        .unwrap();
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000003", 2).await.unwrap();
    sync(&h).await;
    assert_eq!(
        (
            h.ne_stock("8000001"),
            h.ne_stock("8000002"),
            h.ne_stock("8000003")
        ),
        (3, 6, 8)
    );
    let mode = h
        .ctx
        .storage
        .tenant(&h.tenant.id)
        .await
        .unwrap()
        .unwrap()
        .stock_history;
    assert_eq!(mode.periods.len(), 4, "{mode:?}");
}

#[tokio::test]
async fn a_push_only_tenant_switches_only_once_history_gives_it_ids() {
    let mut h = Harness::start(Options {
        platform: true,
        ..Options::default()
    })
    .await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    h.smaregi.platform_subscribe(CONTRACT, &[]).await.unwrap();
    let refused = switch_intake(&h.admin, &h.tenant, HistorySource::Platform).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("在庫変動履歴の読み取り")),
        "{refused:?}"
    );
    h.give_smaregi_api().await;
    h.enable_history_access().await;
    switch_intake(&h.admin, &h.tenant, HistorySource::Platform)
        .await
        .unwrap();
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 9, "the push before counted once");
}

#[tokio::test]
async fn the_services_own_platform_writes_are_not_counted_when_they_come_back() {
    let h = platform_harness(Options::default()).await;
    let id = write_stock(
        &h.admin,
        &h.tenant,
        &"8000001".into(),
        &"1".into(),
        -2,
        "smaregi-ne",
    )
    .await
    .unwrap();
    let echo = h.smaregi.webhook_deliveries();
    assert!(
        echo.iter()
            .any(|d| d.body.contains(&format!("\"id\":\"{id}\""))),
        "{echo:?}"
    );
    assert_eq!(h.smaregi.stock(CONTRACT, "1", "8000001"), Some(8));
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    sync(&h).await;
    assert_eq!(
        h.ne_stock("8000001"),
        10,
        "our own write is no change to report"
    );
    assert_eq!(h.ne_stock("8000002"), 9);
}

#[tokio::test]
async fn throttled_calls_wait_their_retry_after_and_the_run_completes() {
    let mut config = SmaregiConfig::default();
    config.platform.reads_per_sec = 2;
    let h = platform_harness(Options {
        smaregi_config: config,
        ..Options::default()
    })
    .await;
    h.smaregi.set_webhook_faults(WebhookFaults {
        drop_next: 3,
        ..WebhookFaults::default()
    });
    for product in ["8000001", "8000002", "8000003"] {
        h.smaregi.sale(CONTRACT, "1", product, 1).await.unwrap();
    }
    // The client keeps to its own 10/s: the simulator's 2/s throttles it.
    sync(&h).await;
    assert!(h.smaregi.platform_throttled(CONTRACT) > 0, "throttled");
    for product in ["8000001", "8000002", "8000003"] {
        assert_eq!(h.ne_stock(product), 9, "{product}");
    }
}

#[tokio::test]
async fn a_contract_that_ended_stops_the_intake_with_a_notice_and_a_restart_resumes_it() {
    let h = platform_harness(Options::default()).await;
    h.smaregi
        .platform_contract_event(CONTRACT, "end")
        .await
        .unwrap();
    assert_eq!(contract_state(&h).await.as_deref(), Some("suspended:end"));
    let run = h.run(Jobs::All).await;
    let body = run.report.render().body;
    assert!(body.contains("アプリ契約が停止"), "{body}");
    h.smaregi
        .platform_contract_event(CONTRACT, "start")
        .await
        .unwrap();
    assert_eq!(contract_state(&h).await.as_deref(), Some("active"));
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 9);
}

#[tokio::test]
async fn a_notification_a_token_call_does_not_confirm_changes_nothing() {
    let h = platform_harness(Options::default()).await;
    let http = reqwest::Client::new();
    let forged = http
        .post(format!("{}/smaregi/platform/contract", h.service_url))
        .header("Smaregi-Event", "AppSubscription")
        .json(&json!({"contractId": CONTRACT, "event": "AppSubscription", "action": "force-stop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 200);
    assert_ne!(
        contract_state(&h).await.as_deref(),
        Some("suspended:force-stop")
    );
    let bad = http
        .post(format!("{}/smaregi/platform/contract", h.service_url))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

async fn post_webhook(
    h: &Harness,
    secret: Option<&str>,
    contract: &str,
    event: &str,
    body: serde_json::Value,
) -> u16 {
    let mut r = reqwest::Client::new()
        .post(format!("{}/smaregi/platform/webhook", h.service_url))
        .header("smaregi-event", event)
        .header("smaregi-event-id", "0b8f7c9e-0000-4000-8000-000000000001")
        .header("smaregi-contract-id", contract)
        .json(&body);
    if let Some(secret) = secret {
        r = r.header(PLATFORM_SECRET.0, secret);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_webhook_refuses_strangers_and_keeps_tenants_apart() {
    let h = platform_harness(Options::default()).await;
    let other = sne_service::tenants::create_tenant(
        &h.ctx,
        sne_service::tenants::NewTenant {
            name: "別の店".into(),
            contract_id: "c-other".into(),
            admin_email: "admin@other.example".into(),
            admin_password: "other-password".into(),
            notify_emails: vec!["notify@other.example".into()],
            counted_stores: None,
        },
    )
    .await
    .unwrap();
    let body = |contract: &str, id: &str| {
        json!({"contractId": contract, "event": "pos:stock", "action": "edited",
               "ids": [{"id": id, "productId": "8000001", "storeId": "1"}]})
    };
    let good = PLATFORM_SECRET.1;
    assert_eq!(
        post_webhook(&h, None, CONTRACT, "pos:stock", body(CONTRACT, "900")).await,
        401
    );
    assert_eq!(
        post_webhook(
            &h,
            Some("nope"),
            CONTRACT,
            "pos:stock",
            body(CONTRACT, "900")
        )
        .await,
        401
    );
    assert_eq!(
        post_webhook(
            &h,
            Some(good),
            "c-unknown",
            "pos:stock",
            body("c-unknown", "900")
        )
        .await,
        404
    );
    assert_eq!(
        post_webhook(
            &h,
            Some(good),
            CONTRACT,
            "pos:stock",
            body("c-other", "900")
        )
        .await,
        400,
        "body and header disagree"
    );
    assert_eq!(
        post_webhook(
            &h,
            Some(good),
            CONTRACT,
            "pos:stock",
            json!({"contractId": CONTRACT, "ids": [{"id": "x", "productId": "1", "storeId": "1"}]})
        )
        .await,
        400
    );
    assert_eq!(
        post_webhook(
            &h,
            Some(good),
            CONTRACT,
            "pos:products",
            json!({"contractId": CONTRACT, "productIds": ["1"]})
        )
        .await,
        200
    );
    assert_eq!(pending(&h).await, 0, "nothing refused was stored");
    // The other shop is on the old intake: its webhooks are answered, not stored.
    assert_eq!(
        post_webhook(
            &h,
            Some(good),
            "c-other",
            "pos:stock",
            body("c-other", "900")
        )
        .await,
        200
    );
    assert_eq!(h.ctx.storage.pending_changes(&other.id).await.unwrap(), 0);
    assert_eq!(pending(&h).await, 0);
    // Ours stores, once however often it comes.
    for _ in 0..2 {
        assert_eq!(
            post_webhook(&h, Some(good), CONTRACT, "pos:stock", body(CONTRACT, "900")).await,
            200
        );
    }
    assert_eq!(pending(&h).await, 1);
    assert_eq!(h.ctx.storage.pending_changes(&other.id).await.unwrap(), 0);
}

#[tokio::test]
async fn a_webhook_id_smaregi_does_not_show_waits_its_grace_then_is_reported_and_not_counted() {
    let h = platform_harness(Options::default()).await;
    let body = json!({"contractId": CONTRACT, "event": "pos:stock", "action": "edited",
        "ids": [{"id": "99999", "productId": "8000001", "storeId": "1"}]});
    assert_eq!(
        post_webhook(&h, Some(PLATFORM_SECRET.1), CONTRACT, "pos:stock", body).await,
        200
    );
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    // It may only not be visible yet: the file waits rather than drop it.
    let run = h.run(Jobs::All).await;
    let body = run.report.render().body;
    assert!(
        body.contains("在庫変動履歴ID 99999 がまだスマレジで読めない"),
        "{body}"
    );
    assert!(
        h.ne.uploads().is_empty(),
        "nothing frozen while it may still appear"
    );
    h.advance(9 * 60);
    h.run(Jobs::All).await;
    assert!(h.ne.uploads().is_empty(), "still within the grace");
    // Past the grace it is given up as one Smaregi no longer has.
    h.advance(2 * 60);
    let run = h.run(Jobs::All).await;
    let body = run.report.render().body;
    assert!(body.contains("要確認: 在庫変動履歴ID 99999"), "{body}");
    h.ne.run_queues();
    h.run(Jobs::All).await;
    assert_eq!((h.ne_stock("8000001"), h.ne_stock("8000002")), (10, 9));
}

#[tokio::test]
async fn webhooks_left_when_the_contract_ends_are_read_through_the_old_api() {
    let h = platform_harness(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    assert_eq!(pending(&h).await, 1, "stored as an unresolved change");
    h.smaregi
        .platform_contract_event(CONTRACT, "end")
        .await
        .unwrap();
    let message = switch_intake(&h.admin, &h.tenant, HistorySource::OldApi)
        .await
        .unwrap();
    assert!(message.contains("旧API"), "{message}");
    h.advance(1);
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    sync(&h).await;
    assert_eq!(h.ne_stock("8000001"), 7, "both sales, each once");
}
