//! Cursors and order-import records: compare-and-set.

use super::sample::*;

pub async fn cursor_is_compare_and_set<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    assert_eq!(store.cursor(&a, "history:1").await.unwrap(), None);
    assert!(
        !store
            .set_cursor(&a, "history:1", Some("5"), "6")
            .await
            .unwrap()
    );
    assert_eq!(store.cursor(&a, "history:1").await.unwrap(), None);

    assert!(store.set_cursor(&a, "history:1", None, "10").await.unwrap());
    assert!(!other.set_cursor(&a, "history:1", None, "11").await.unwrap());
    assert!(
        other
            .set_cursor(&a, "history:1", Some("10"), "20")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_cursor(&a, "history:1", Some("10"), "15")
            .await
            .unwrap(),
        "a run that read 10 must not move the cursor back from 20"
    );
    assert_eq!(
        store.cursor(&a, "history:1").await.unwrap().as_deref(),
        Some("20")
    );

    assert_eq!(
        store.cursor(&a, "history:2").await.unwrap(),
        None,
        "names are separate"
    );
    assert!(store.set_cursor(&a, "history:2", None, "1").await.unwrap());
    assert_eq!(
        other.cursor(&a, "history:1").await.unwrap().as_deref(),
        Some("20")
    );
}

pub async fn order_record_is_compare_and_set<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let started = order(&a, "1001", OrderImportState::Started, t0());
    assert_eq!(store.order_record(&a, "1001").await.unwrap(), None);
    assert_conflict(
        store.put_order_record(&started, Some("started")).await,
        "expecting a record that is absent",
    );
    assert_eq!(store.order_record(&a, "1001").await.unwrap(), None);

    store.put_order_record(&started, None).await.unwrap();
    assert_conflict(
        other.put_order_record(&started, None).await,
        "a second run starting the same order",
    );
    let imported = order(
        &a,
        "1001",
        OrderImportState::Imported {
            shipment_id: "S-1".into(),
        },
        minutes(1),
    );
    assert_conflict(
        other.put_order_record(&imported, Some("imported")).await,
        "wrong expected tag",
    );
    assert_eq!(store.order_record(&a, "1001").await.unwrap(), Some(started));
    other
        .put_order_record(&imported, Some("started"))
        .await
        .unwrap();
    assert_eq!(
        store.order_record(&a, "1001").await.unwrap(),
        Some(imported.clone())
    );
    let cancelled = OrderImportRecord {
        state: OrderImportState::CancelledAfterImport {
            shipment_id: "S-1".into(),
        },
        updated_at: minutes(5),
        reported: true,
        ..imported.clone()
    };
    store
        .put_order_record(&cancelled, Some("imported"))
        .await
        .unwrap();
    assert_conflict(
        store.put_order_record(&imported, Some("imported")).await,
        "going back from cancelled",
    );

    let failed = order(
        &a,
        "1002",
        OrderImportState::Failed {
            reason: "商品が見つかりません".into(),
        },
        minutes(3),
    );
    store.put_order_record(&failed, None).await.unwrap();
    assert_eq!(
        store.order_records(&a, 10).await.unwrap(),
        vec![cancelled.clone(), failed],
        "newest first"
    );
    assert_eq!(store.order_records(&a, 1).await.unwrap(), vec![cancelled]);
}
