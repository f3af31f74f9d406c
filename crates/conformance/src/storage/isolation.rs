//! Tenant isolation: nothing of one tenant is seen or changed through another.

use super::sample::*;
use sne_domain::ProductPair;

pub async fn tenants_are_isolated<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let store = &*fresh.first;
    let a = tenant(&fresh.tenant("a"), "A");
    let b = tenant(&fresh.tenant("b"), "B");
    store.create_tenant(&a).await.unwrap();
    store.create_tenant(&b).await.unwrap();
    let (ta, tb) = (a.id.clone(), b.id.clone());

    // Everything A can have.
    store
        .append_changes(&ta, &changes("c", 0..3))
        .await
        .unwrap();
    store
        .claim_batch(&ta, &claim_at("a-b1", "run", t0(), 2))
        .await
        .unwrap()
        .unwrap();
    let mut mirror = Mirror::new();
    let key = StockKey::new("1", "P");
    mirror.insert(key.clone(), mirror_entry(5, 0));
    store
        .finish_build(
            &ta,
            "a-b1",
            "run",
            &BuiltContent {
                mirror_updates: mirror.clone(),
                oldest_change_at: None,
                ..built(lines())
            },
        )
        .await
        .unwrap();
    step(store, &ta, "a-b1", Built, Uploading, minutes(1)).await;
    step(store, &ta, "a-b1", Uploading, Uploaded, minutes(2)).await;
    store
        .claim_batch(&ta, &claim_at("a-b2", "run", minutes(3), 10))
        .await
        .unwrap()
        .unwrap();
    store
        .swap_ne_tokens(&ta, None, &ne_tokens("a-token"))
        .await
        .unwrap();
    store
        .set_cursor(&ta, "history:1", None, "42")
        .await
        .unwrap();
    store
        .put_order_record(&order(&ta, "1001", OrderImportState::Started, t0()), None)
        .await
        .unwrap();
    store
        .enqueue_report(&report(&ta, "run-1", t0()))
        .await
        .unwrap();
    let pair = ProductPair::new("P", "A-1");
    store
        .put_product_pairs(&ta, PairSource::Table, std::slice::from_ref(&pair), true)
        .await
        .unwrap();
    store
        .put_product_pairs(
            &ta,
            PairSource::ProductCode,
            std::slice::from_ref(&pair),
            false,
        )
        .await
        .unwrap();

    let snapshot = |s: Arc<S>, t: TenantId, key: StockKey| async move {
        (
            s.tenant(&t).await.unwrap(),
            s.pending_changes(&t).await.unwrap(),
            s.changes_of_batch(&t, "a-b1").await.unwrap(),
            s.changes_of_batch(&t, "a-b2").await.unwrap(),
            s.recent_batches(&t, 100).await.unwrap(),
            s.ne_tokens(&t).await.unwrap(),
            s.cursor(&t, "history:1").await.unwrap(),
            s.order_records(&t, 100).await.unwrap(),
            s.recent_reports(&t, 100).await.unwrap(),
            s.mirror(&t, std::slice::from_ref(&key)).await.unwrap(),
            s.product_pairs(&t, PairSource::Table).await.unwrap(),
            s.product_pairs(&t, PairSource::ProductCode).await.unwrap(),
        )
    };
    let a_before = snapshot(fresh.first.clone(), ta.clone(), key.clone()).await;

    // Nothing of A is visible through B's id...
    let other = &*fresh.second;
    assert_eq!(other.pending_changes(&tb).await.unwrap(), 0);
    assert!(
        other
            .changes_of_batch(&tb, "a-b1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(other.batch(&tb, "a-b1").await.unwrap(), None);
    assert_eq!(other.batch(&tb, "a-b2").await.unwrap(), None);
    for state in ALL_STATES {
        assert!(other.batches_in_state(&tb, state).await.unwrap().is_empty());
    }
    assert!(other.recent_batches(&tb, 100).await.unwrap().is_empty());
    assert!(other.known_que_ids(&tb).await.unwrap().is_empty());
    assert_eq!(other.ne_tokens(&tb).await.unwrap(), None);
    assert_eq!(other.cursor(&tb, "history:1").await.unwrap(), None);
    assert_eq!(other.order_record(&tb, "1001").await.unwrap(), None);
    assert!(other.order_records(&tb, 100).await.unwrap().is_empty());
    assert!(other.pending_reports(&tb).await.unwrap().is_empty());
    assert!(other.recent_reports(&tb, 100).await.unwrap().is_empty());
    assert!(
        other
            .mirror(&tb, std::slice::from_ref(&key))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        other
            .product_pairs(&tb, PairSource::Table)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        other
            .product_pairs(&tb, PairSource::ProductCode)
            .await
            .unwrap()
            .is_empty()
    );

    // ...and nothing of A changes through B's id.
    assert!(
        other
            .claim_batch(&tb, &claim_at("b-b1", "thief", minutes(30), 100))
            .await
            .unwrap()
            .is_none(),
        "B has nothing pending and A's expired build is not B's"
    );
    assert_refused(
        other
            .finish_build(&tb, "a-b2", "run", &built(lines()))
            .await,
        "finishing A's batch as B",
    );
    let mut t = plan(other, &tb, "a-b1", Uploaded, Succeeded, minutes(4)).await;
    t.outcome = Some(QueueOutcome::Succeeded);
    assert_refused(
        other.transition(&tb, "a-b1", &t).await,
        "moving A's batch as B",
    );
    assert!(
        !other
            .swap_ne_tokens(&tb, Some("a-token"), &ne_tokens("stolen"))
            .await
            .unwrap()
    );
    assert!(
        !other
            .set_cursor(&tb, "history:1", Some("42"), "0")
            .await
            .unwrap()
    );
    assert_conflict(
        other
            .put_order_record(
                &order(
                    &tb,
                    "1001",
                    OrderImportState::Failed { reason: "x".into() },
                    t0(),
                ),
                Some("started"),
            )
            .await,
        "B's order CAS against A's record",
    );
    assert!(
        other
            .claim_report(&tb, "run-1", "run", minutes(5), minutes(10))
            .await
            .is_err()
    );
    assert!(
        other
            .mark_report_sent(&tb, "run-1", "run", minutes(5))
            .await
            .is_err()
    );
    assert!(
        other
            .record_report_failure(&tb, "run-1", "run", "x")
            .await
            .is_err()
    );
    other
        .put_product_pairs(&tb, PairSource::Table, &[], true)
        .await
        .unwrap();

    // B's own data, under the same keys as A's, lives beside A's.
    assert_eq!(
        other
            .append_changes(&tb, &changes("c", 0..3))
            .await
            .unwrap(),
        AppendOutcome {
            appended: 3,
            duplicates: 0
        },
        "dedupe keys are per tenant"
    );
    let b_claim = other
        .claim_batch(&tb, &claim_at("a-b1", "run-b", minutes(31), 100))
        .await
        .unwrap()
        .expect("B may use a batch id that A uses");
    assert_eq!(b_claim.changes.len(), 3);
    let mut b_mirror = Mirror::new();
    b_mirror.insert(key.clone(), mirror_entry(99, 59));
    other
        .finish_build(
            &tb,
            "a-b1",
            "run-b",
            &BuiltContent {
                mirror_updates: b_mirror,
                oldest_change_at: None,
                ..built(vec![])
            },
        )
        .await
        .unwrap();
    assert!(
        other
            .enqueue_report(&report(&tb, "run-1", t0()))
            .await
            .unwrap()
    );
    assert!(
        other
            .swap_ne_tokens(&tb, None, &ne_tokens("b-token"))
            .await
            .unwrap()
    );
    assert!(other.set_cursor(&tb, "history:1", None, "7").await.unwrap());
    other
        .put_order_record(&order(&tb, "1001", OrderImportState::Started, t0()), None)
        .await
        .unwrap();

    assert_eq!(
        snapshot(fresh.first.clone(), ta.clone(), key.clone()).await,
        a_before,
        "nothing of A changed"
    );
    assert_eq!(store.tenant(&tb).await.unwrap(), Some(b));
}
