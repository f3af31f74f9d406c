//! The stock ledger: appends exactly once, claims in order, leases.

use super::sample::*;

pub async fn append_is_idempotent<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let outcome = |appended, duplicates| AppendOutcome {
        appended,
        duplicates,
    };
    let abc = changes("k", 0..3);
    assert_eq!(store.append_changes(&a, &abc).await.unwrap(), outcome(3, 0));
    assert_eq!(store.pending_changes(&a).await.unwrap(), 3);

    assert_eq!(store.append_changes(&a, &abc).await.unwrap(), outcome(0, 3));
    assert_eq!(other.append_changes(&a, &abc).await.unwrap(), outcome(0, 3));
    assert_eq!(
        store.pending_changes(&a).await.unwrap(),
        3,
        "nothing new pending"
    );

    let overlap = changes("k", 2..5);
    assert_eq!(
        other.append_changes(&a, &overlap).await.unwrap(),
        outcome(2, 1)
    );
    assert_eq!(store.pending_changes(&a).await.unwrap(), 5);
    assert_eq!(store.append_changes(&a, &[]).await.unwrap(), outcome(0, 0));

    // A key stays known after its change left the pending set: a Smaregi resend
    // that arrives after the upload must not be uploaded again.
    let claim = store
        .claim_batch(&a, &claim_at("b1", "run", t0(), 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.changes.len(), 5);
    assert_eq!(
        store.append_changes(&a, &changes("k", 0..6)).await.unwrap(),
        outcome(1, 5)
    );
    assert_eq!(store.pending_changes(&a).await.unwrap(), 1);
    assert_eq!(store.changes_of_batch(&a, "b1").await.unwrap().len(), 5);
}

pub async fn concurrent_appends_count_each_change_once<S: Storage + 'static>(fresh: Fresh<S>) {
    let a = fresh.tenant("a");
    let all = changes("c", 0..120);
    let chunks: Vec<Vec<StockChange>> = all.chunks(8).map(<[_]>::to_vec).collect();
    let mut reversed = chunks.clone();
    reversed.reverse();
    let run = |store: Arc<S>, chunks: Vec<Vec<StockChange>>, tenant: TenantId| {
        tokio::spawn(async move {
            let mut total = AppendOutcome::default();
            for chunk in chunks {
                let out = store.append_changes(&tenant, &chunk).await.unwrap();
                assert_eq!(out.appended + out.duplicates, chunk.len());
                total.appended += out.appended;
                total.duplicates += out.duplicates;
            }
            total
        })
    };
    let one = run(fresh.first.clone(), chunks, a.clone());
    let two = run(fresh.second.clone(), reversed, a.clone());
    let (one, two) = (one.await.unwrap(), two.await.unwrap());
    assert_eq!(one.appended + two.appended, all.len(), "{one:?} {two:?}");
    assert_eq!(
        one.duplicates + two.duplicates,
        all.len(),
        "{one:?} {two:?}"
    );
    assert_eq!(fresh.first.pending_changes(&a).await.unwrap(), all.len());
}

/// A push bigger than any backend's single write (DynamoDB: 50 changes per
/// transaction), with a row repeated inside it and rows the ledger already
/// holds: every new change exactly once, in push order.
pub async fn a_large_push_is_appended_whole<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let known = changes("g", 0..10);
    store.append_changes(&a, &known).await.unwrap();
    let mut push = changes("g", 0..250);
    push.insert(180, change("g0100"));
    let out = other.append_changes(&a, &push).await.unwrap();
    assert_eq!(
        out,
        AppendOutcome {
            appended: 240,
            duplicates: 11
        }
    );
    assert_eq!(store.pending_changes(&a).await.unwrap(), 250);
    assert_eq!(
        store.append_changes(&a, &push).await.unwrap(),
        AppendOutcome {
            appended: 0,
            duplicates: 251
        },
        "a resend of the push changes nothing"
    );
    let claim = store
        .claim_batch(&a, &claim_at("b1", "run", t0(), 1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&claim.changes), keys(&changes("g", 0..250)));
}

pub async fn claims_follow_append_order<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    assert!(
        store
            .claim_batch(&a, &claim_at("b0", "run", t0(), 4))
            .await
            .unwrap()
            .is_none(),
        "nothing pending, nothing claimed"
    );
    assert!(
        store.recent_batches(&a, 10).await.unwrap().is_empty(),
        "and no batch made"
    );

    // Keys deliberately not in sorted order: the order is the append order.
    let first = vec![
        change("zz"),
        change("aa"),
        change("mm"),
        change("bb"),
        change("yy"),
    ];
    let second = vec![
        change("cc"),
        change("xx"),
        change("dd"),
        change("ww"),
        change("ee"),
    ];
    store.append_changes(&a, &first).await.unwrap();
    other.append_changes(&a, &second).await.unwrap();
    store.append_changes(&a, &first[1..3]).await.unwrap();
    let expected: Vec<String> = keys(&first).into_iter().chain(keys(&second)).collect();

    let one = store
        .claim_batch(&a, &claim_at("b1", "run-1", minutes(1), 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((one.batch_id.as_str(), one.resumed), ("b1", false));
    assert_eq!(keys(&one.changes), expected[0..4]);
    assert_eq!(one.changes[0], first[0], "changes come back as appended");
    assert_eq!(
        keys(&other.changes_of_batch(&a, "b1").await.unwrap()),
        expected[0..4]
    );
    assert_eq!(store.pending_changes(&a).await.unwrap(), 6);
    let batch = batch_of(other, &a, "b1").await;
    assert_eq!(batch.state, BatchState::Building);
    assert_eq!(batch.owner.as_deref(), Some("run-1"));
    assert_eq!(batch.lease_until, Some(minutes(6)));
    assert_eq!(batch.created_at, minutes(1));
    assert_eq!(batch.tenant_id, a);

    store
        .finish_build(&a, "b1", "run-1", &built(lines()))
        .await
        .unwrap();
    let two = other
        .claim_batch(&a, &claim_at("b2", "run-2", minutes(2), 4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&two.changes), expected[4..8]);
    other
        .finish_build(&a, "b2", "run-2", &built(vec![]))
        .await
        .unwrap();
    let three = store
        .claim_batch(&a, &claim_at("b3", "run-3", minutes(3), 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&three.changes), expected[8..10]);
    store
        .finish_build(&a, "b3", "run-3", &built(lines()))
        .await
        .unwrap();
    assert_eq!(store.pending_changes(&a).await.unwrap(), 0);
    assert!(
        store
            .claim_batch(&a, &claim_at("b4", "run-4", minutes(4), 100))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.batch(&a, "b4").await.unwrap(), None);
}

pub async fn concurrent_claimers_never_share_a_change<S: Storage + 'static>(fresh: Fresh<S>) {
    const TOTAL: usize = 200;
    const CHUNK: usize = 5;
    let a = fresh.tenant("a");
    let appending_done = Arc::new(AtomicBool::new(false));

    let appender = {
        let (store, tenant, done) = (fresh.first.clone(), a.clone(), appending_done.clone());
        tokio::spawn(async move {
            let all = changes("c", 0..TOTAL);
            for (i, chunk) in all.chunks(CHUNK).enumerate() {
                // Each append also repeats the previous chunk's last change, as a
                // Smaregi resend would, while the claimers may be taking it.
                let mut batch = chunk.to_vec();
                if i > 0 {
                    batch.push(all[i * CHUNK - 1].clone());
                }
                let out = store.append_changes(&tenant, &batch).await.unwrap();
                assert_eq!(out.appended, chunk.len(), "chunk {i}: {out:?}");
                tokio::task::yield_now().await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let claimer = |store: Arc<S>, name: &'static str| {
        let (tenant, done) = (a.clone(), appending_done.clone());
        tokio::spawn(async move {
            let mut mine: Vec<(String, Vec<String>)> = vec![];
            let mut round = 0;
            loop {
                round += 1;
                let batch_id = format!("{name}-{round}");
                let claim = store
                    .claim_batch(&tenant, &claim_at(&batch_id, name, t0(), 7))
                    .await
                    .unwrap();
                match claim {
                    Some(claim) => {
                        assert!(
                            !claim.resumed,
                            "{name}: no lease expired, nothing to resume"
                        );
                        assert_eq!(claim.batch_id, batch_id);
                        assert!(!claim.changes.is_empty() && claim.changes.len() <= 7);
                        store
                            .finish_build(&tenant, &batch_id, name, &built(lines()))
                            .await
                            .unwrap();
                        mine.push((batch_id, keys(&claim.changes)));
                        // A pause after each build lets the other claimer in, so the
                        // two take turns and also collide, instead of one winning all.
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    None => {
                        let finished = done.load(Ordering::SeqCst);
                        if finished && store.pending_changes(&tenant).await.unwrap() == 0 {
                            return mine;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
    };
    let one = claimer(fresh.first.clone(), "one");
    let two = claimer(fresh.second.clone(), "two");
    let race = async {
        appender.await.unwrap();
        (one.await.unwrap(), two.await.unwrap())
    };
    let (one, two) = tokio::time::timeout(std::time::Duration::from_secs(120), race)
        .await
        .expect("the claim race finishes within two minutes");

    let mut seen = HashSet::new();
    for (batch_id, claimed) in one.iter().chain(&two) {
        let stored = keys(&fresh.first.changes_of_batch(&a, batch_id).await.unwrap());
        assert_eq!(
            &stored, claimed,
            "{batch_id}: the store agrees with the claim"
        );
        for key in claimed {
            assert!(seen.insert(key.clone()), "{key} was claimed twice");
        }
    }
    assert_eq!(
        seen.len(),
        TOTAL,
        "every change was claimed once, none lost"
    );
    assert_eq!(fresh.first.pending_changes(&a).await.unwrap(), 0);
    let batches = fresh.first.recent_batches(&a, 10_000).await.unwrap();
    assert_eq!(batches.len(), one.len() + two.len());
    assert!(batches.iter().all(|b| b.state == BatchState::Built));
}

pub async fn lease_blocks_others_until_it_expires<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let all = changes("c", 0..3);
    store.append_changes(&a, &all).await.unwrap();
    let first = store
        .claim_batch(&a, &claim_at("b1", "run-a", t0(), 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&first.changes), keys(&all[..2]));

    // Lease of run-a: until t0 + 5 min.
    assert!(
        other
            .claim_batch(&a, &claim_at("b2", "run-b", minutes(1), 10))
            .await
            .unwrap()
            .is_none(),
        "busy while another owner's lease runs, even with changes pending"
    );
    assert_eq!(other.batch(&a, "b2").await.unwrap(), None);
    assert_eq!(store.pending_changes(&a).await.unwrap(), 1);

    // The owner itself may claim again: it gets its own batch back, lease renewed.
    let again = store
        .claim_batch(&a, &claim_at("ignored", "run-a", minutes(2), 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.batch_id.as_str(), again.resumed), ("b1", true));
    assert_eq!(keys(&again.changes), keys(&all[..2]));
    assert_eq!(store.batch(&a, "ignored").await.unwrap(), None);
    assert_eq!(
        batch_of(store, &a, "b1").await.lease_until,
        Some(minutes(7))
    );
    assert!(
        other
            .claim_batch(&a, &claim_at("b2", "run-b", minutes(6), 10))
            .await
            .unwrap()
            .is_none(),
        "the renewed lease still runs"
    );

    // Expired: run-b takes the abandoned batch over, with the same changes.
    let taken = other
        .claim_batch(&a, &claim_at("b2", "run-b", minutes(8), 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.batch_id.as_str(), taken.resumed), ("b1", true));
    assert_eq!(taken.changes, first.changes);
    let batch = batch_of(store, &a, "b1").await;
    assert_eq!(batch.owner.as_deref(), Some("run-b"));
    assert_eq!(batch.lease_until, Some(minutes(13)));
    assert_eq!(batch.state, BatchState::Building);
    assert_eq!(store.batch(&a, "b2").await.unwrap(), None);
    assert_eq!(
        store.pending_changes(&a).await.unwrap(),
        1,
        "not re-claimed twice"
    );

    // The old owner woke up: its build is refused, the new owner's stands.
    assert_conflict(
        store.finish_build(&a, "b1", "run-a", &built(lines())).await,
        "finish by the owner that lost the lease",
    );
    // A release (lease ending now) lets the next claim at that instant take over.
    other
        .release_claim(&a, &claim_at("unused", "run-b", minutes(8), 10), minutes(9))
        .await
        .unwrap();
    assert_eq!(
        batch_of(store, &a, "b1").await.lease_until,
        Some(minutes(9))
    );
    let after_release = store
        .claim_batch(&a, &claim_at("b3", "run-c", minutes(9), 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after_release.batch_id.as_str(), after_release.resumed),
        ("b1", true)
    );
    let done = store
        .finish_build(&a, "b1", "run-c", &built(lines()))
        .await
        .unwrap();
    assert_eq!(done.state, BatchState::Built);

    let rest = other
        .claim_batch(&a, &claim_at("b4", "run-d", minutes(10), 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rest.batch_id.as_str(), rest.resumed), ("b4", false));
    assert_eq!(keys(&rest.changes), keys(&all[2..]));
}

pub async fn the_oldest_pending_change_is_told<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let b = fresh.tenant("b");
    assert_eq!(store.oldest_pending_change(&a).await.unwrap(), None);
    let at = |minutes| t0() + chrono::Duration::minutes(minutes);
    let mut first = changes("o", 0..2);
    first[0].received_at = at(1);
    first[1].received_at = at(2);
    store.append_changes(&a, &first).await.unwrap();
    let mut later = changes("o", 2..3);
    later[0].received_at = at(3);
    other.append_changes(&a, &later).await.unwrap();
    assert_eq!(other.oldest_pending_change(&a).await.unwrap(), Some(at(1)));
    assert_eq!(
        store.oldest_pending_change(&b).await.unwrap(),
        None,
        "per tenant"
    );
    store
        .claim_batch(&a, &claim_at("b1", "run", t0(), 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.oldest_pending_change(&a).await.unwrap(),
        None,
        "claimed changes are not pending"
    );
    let mut newest = changes("o", 3..4);
    newest[0].received_at = at(9);
    store.append_changes(&a, &newest).await.unwrap();
    assert_eq!(store.oldest_pending_change(&a).await.unwrap(), Some(at(9)));
}

pub async fn pending_changes_are_listed_oldest_first_and_claimed_ones_leave_the_list<
    S: Storage + 'static,
>(
    fresh: Fresh<S>,
) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let b = fresh.tenant("b");
    assert!(store.pending_change_list(&a).await.unwrap().is_empty());
    let first = changes("l", 0..3);
    store.append_changes(&a, &first).await.unwrap();
    store
        .claim_batch(&a, &claim_at("b1", "run", t0(), 2))
        .await
        .unwrap()
        .unwrap();
    let later = changes("l", 3..5);
    other.append_changes(&a, &later).await.unwrap();
    other.append_changes(&b, &changes("x", 0..1)).await.unwrap();
    let listed = other.pending_change_list(&a).await.unwrap();
    assert_eq!(
        keys(&listed),
        keys(&[&first[2..], &later[..]].concat()),
        "unclaimed only, in append order, this tenant's only"
    );
    assert_eq!(listed, [&first[2..], &later[..]].concat(), "whole changes");
    assert_eq!(store.pending_change_list(&b).await.unwrap().len(), 1);
}
