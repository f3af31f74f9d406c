//! What the conformance suite cannot see: the DynamoDB layout's own promises
//! (large files in part items, recovery of an interrupted finish, key escaping).

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{TimeZone, Utc};
use sne_aws::DynamoStore;
use sne_aws::testing::{MotoServer, unique_name};
use sne_domain::batch_state::BatchState;
use sne_domain::change::{ChangeKind, ChangeRow, ChangeSource};
use sne_domain::complete::{Mirror, MirrorEntry, StockKey};
use sne_domain::upload_csv::UploadLine;
use sne_domain::{StockChange, StockDivision, TenantId};
use sne_ports::{
    BatchStore, BuiltContent, ClaimRequest, CursorStore, OrderImportRecord, OrderImportState,
    OrderImportStore, StockLedger, StockMirrorStore, Transition,
};

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let moto = MotoServer::shared().await;
    let table = unique_name("dynamo");
    let store = moto.dynamo_store(&table).await;
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    (store, client, table)
}

fn change(key: &str, product: &str) -> StockChange {
    StockChange {
        dedupe_key: key.into(),
        source: ChangeSource::Push,
        row: ChangeRow {
            store_id: "1".into(),
            product_id: product.into(),
            kind: ChangeKind::History,
            division: Some(StockDivision::Sale),
            amount: Some(-1),
            after: Some(4),
            changed_at: None,
            history_id: None,
            from_store_id: None,
            to_store_id: None,
            layaway_stock_amount: None,
        },
        received_at: Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap(),
    }
}

fn claim(batch_id: &str, owner: &str) -> ClaimRequest {
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
    ClaimRequest {
        new_batch_id: batch_id.into(),
        owner: owner.into(),
        now,
        lease_until: now + chrono::Duration::minutes(5),
        max_changes: 100_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_an_item_is_kept_whole() {
    let (store, _, _) = store().await;
    let t = TenantId("big".into());
    store
        .append_changes(&t, &[change("k1", "P1")])
        .await
        .unwrap();
    store
        .claim_batch(&t, &claim("b1", "run"))
        .await
        .unwrap()
        .unwrap();
    // ~1.5 MB of lines: several part items, far over DynamoDB's 400 KB.
    let lines: Vec<UploadLine> = (0..40_000)
        .map(|i| UploadLine {
            goods_code: format!("GOODS-{i:08}-商品コード").into(),
            delta: i - 20_000,
        })
        .collect();
    let mut mirror = Mirror::new();
    for i in 0..250 {
        mirror.insert(
            StockKey::new("1", format!("P{i}")),
            MirrorEntry {
                stock: i,
                as_of: None,
            },
        );
    }
    let content = BuiltContent {
        lines: lines.clone(),
        change_count: 1,
        mirror_updates: mirror.clone(),
        oldest_change_at: None,
        ..Default::default()
    };
    let built = store.finish_build(&t, "b1", "run", &content).await.unwrap();
    assert_eq!(built.state, BatchState::Built);
    let stored = store.batch(&t, "b1").await.unwrap().unwrap();
    assert_eq!(stored.lines, lines);
    assert_eq!(stored, built);
    let keys: Vec<StockKey> = mirror.keys().cloned().collect();
    assert_eq!(store.mirror(&t, &keys).await.unwrap(), mirror);
    assert_eq!(
        store.recent_batches(&t, 1).await.unwrap()[0].lines.len(),
        40_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_mirror_write_is_finished_by_the_next_claim() {
    let (store, client, table) = store().await;
    let t = TenantId("crash".into());
    store
        .append_changes(&t, &[change("k1", "P1")])
        .await
        .unwrap();
    store
        .claim_batch(&t, &claim("b1", "run-a"))
        .await
        .unwrap()
        .unwrap();
    let key = StockKey::new("1", "P1");
    let entry = MirrorEntry {
        stock: 7,
        as_of: None,
    };
    let content = BuiltContent {
        lines: vec![UploadLine {
            goods_code: "A".into(),
            delta: 1,
        }],
        change_count: 1,
        mirror_updates: Mirror::from([(key.clone(), entry.clone())]),
        oldest_change_at: None,
        ..Default::default()
    };
    store
        .finish_build(&t, "b1", "run-a", &content)
        .await
        .unwrap();

    // Rewind to the instant after the batch's state change: the lock says
    // `applying` and the mirror item was never written.
    let put = |sk: &str| {
        client
            .put_item()
            .table_name(&table)
            .item("PK", AttributeValue::S("T#crash".into()))
            .item("SK", AttributeValue::S(sk.into()))
    };
    put("BUILDING")
        .item("batch_id", AttributeValue::S("b1".into()))
        .item("owner", AttributeValue::S("run-a".into()))
        .item("phase", AttributeValue::S("applying".into()))
        .send()
        .await
        .unwrap();
    client
        .delete_item()
        .table_name(&table)
        .key("PK", AttributeValue::S("T#crash".into()))
        .key("SK", AttributeValue::S("MIRROR#1#P1".into()))
        .send()
        .await
        .unwrap();
    assert!(
        store
            .mirror(&t, std::slice::from_ref(&key))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .append_changes(&t, &[change("k2", "P1")])
        .await
        .unwrap();
    let next = store
        .claim_batch(&t, &claim("b2", "run-b"))
        .await
        .unwrap()
        .expect("the claim recovers, then claims");
    assert_eq!((next.batch_id.as_str(), next.resumed), ("b2", false));
    assert_eq!(
        store
            .mirror(&t, std::slice::from_ref(&key))
            .await
            .unwrap()
            .get(&key),
        Some(&entry),
        "the staged mirror was applied before the new batch could read it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separators_in_ids_do_not_alias() {
    let (store, _, _) = store().await;
    let t = TenantId("a#b".into());
    let other = TenantId("a".into());
    store.set_cursor(&t, "x#y", None, "1").await.unwrap();
    assert_eq!(store.cursor(&t, "x#y").await.unwrap().as_deref(), Some("1"));
    assert_eq!(store.cursor(&other, "b#CURSOR#x#y").await.unwrap(), None);
    assert_eq!(store.cursor(&t, "x").await.unwrap(), None);

    store
        .append_changes(&t, &[change("k#1", "P#1"), change("k%231", "P%231")])
        .await
        .map(|o| assert_eq!(o.appended, 2, "escaped keys stay distinct"))
        .unwrap();
    let claimed = store
        .claim_batch(&t, &claim("b#1", "run"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.changes.len(), 2);
    assert!(store.changes_of_batch(&t, "b").await.unwrap().is_empty());
    assert_eq!(store.changes_of_batch(&t, "b#1").await.unwrap().len(), 2);
}

fn push(prefix: &str, count: usize) -> Vec<StockChange> {
    (0..count)
        .map(|i| change(&format!("{prefix}{i:04}"), &format!("P{i}")))
        .collect()
}

fn keys_of(changes: &[StockChange]) -> Vec<String> {
    changes.iter().map(|c| c.dedupe_key.clone()).collect()
}

/// A push larger than one transaction fails after its first chunk (as a crash
/// or an outage would). No claim may ever see a part of it: the claim after the
/// failure gets the whole push, and the resend adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_failing_midway_is_never_claimed_in_part() {
    let (store, client, table) = store().await;
    let failing = DynamoStore::new(client, &table).failing_appends_after(1);
    let t = TenantId("midway".into());
    let all = push("m", 250);

    assert!(failing.append_changes(&t, &all).await.is_err());
    let claimed = store.claim_batch(&t, &claim("b1", "run")).await.unwrap();
    let claimed = claimed.map(|c| keys_of(&c.changes)).unwrap_or_default();
    assert_eq!(claimed, keys_of(&all), "all of the push or nothing");

    // Smaregi resends after the 500: everything is known already.
    let again = store.append_changes(&t, &all).await.unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 250));
    assert_eq!(store.pending_changes(&t).await.unwrap(), 0);
}

/// The resend arrives before any claim: the push is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_failed_append_stores_the_push_once() {
    let (store, client, table) = store().await;
    let failing = DynamoStore::new(client, &table).failing_appends_after(1);
    let t = TenantId("resend".into());
    let all = push("r", 250);
    assert!(failing.append_changes(&t, &all[..3]).await.is_ok());

    assert!(failing.append_changes(&t, &all).await.is_err());
    let again = store.append_changes(&t, &all).await.unwrap();
    assert_eq!(again.appended + again.duplicates, 250);
    let claimed = store
        .claim_batch(&t, &claim("b1", "run"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys_of(&claimed.changes), keys_of(&all));
    assert_eq!(
        store.pending_changes(&t).await.unwrap(),
        0,
        "none left over"
    );
}

/// The SDK retries a transaction whose answer was lost; when the first attempt
/// had committed, the retry fails its condition against our own write. A step
/// and an order record must then still be reported as done (they are), and a
/// second runner's step planned on the old revision must still be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_is_recognised_as_our_own() {
    let (store, client, table) = store().await;
    let other = DynamoStore::new(client, &table);
    let t = TenantId("lost-answer".into());
    store
        .append_changes(&t, &[change("k1", "P1")])
        .await
        .unwrap();
    store
        .claim_batch(&t, &claim("b1", "run-a"))
        .await
        .unwrap()
        .unwrap();
    let content = BuiltContent {
        lines: vec![UploadLine {
            goods_code: "A".into(),
            delta: 1,
        }],
        change_count: 1,
        oldest_change_at: None,
        ..Default::default()
    };
    let built = store
        .finish_build(&t, "b1", "run-a", &content)
        .await
        .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 1, 1, 0).unwrap();
    let step = Transition::of(&built, BatchState::Uploading, at);

    store.lose_commit_answers(1);
    let uploading = store
        .transition(&t, "b1", &step)
        .await
        .expect("our own committed step, not a conflict");
    assert_eq!(uploading.state, BatchState::Uploading);
    assert_eq!(uploading.revision, built.revision + 1);
    assert_eq!(store.batch(&t, "b1").await.unwrap(), Some(uploading));
    assert!(
        other.transition(&t, "b1", &step).await.is_err(),
        "the same step planned by another runner on the old revision is refused"
    );

    let record = OrderImportRecord {
        tenant_id: t.clone(),
        receive_order_id: "1001".into(),
        shop_order_no: "shop-1001".into(),
        state: OrderImportState::Started,
        shipment_token: "token-1001".into(),
        lines: vec![("A".into(), 1)],
        updated_at: at,
        reported: false,
        owner: Some("run-a".into()),
    };
    store.lose_commit_answers(1);
    store
        .put_order_record(&record, None)
        .await
        .expect("our own committed record, not a conflict");
    assert_eq!(
        store.order_record(&t, "1001").await.unwrap(),
        Some(record.clone())
    );
    assert!(
        other.put_order_record(&record, None).await.is_err(),
        "a second writer of a new record is still refused"
    );
}
