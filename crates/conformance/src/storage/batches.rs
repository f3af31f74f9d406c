//! Upload batches: building, every state-machine edge, follow-ups, reported outcomes.

use super::sample::*;

pub async fn finish_build_is_conditional_and_writes_the_mirror<S: Storage + 'static>(
    fresh: Fresh<S>,
) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let k1 = StockKey::new("1", "P1");
    let k2 = StockKey::new("2", "P2");
    let wanted = [k1.clone(), k2.clone()];
    claimed(store, &a, "b1", t0()).await;

    let mut mirror = Mirror::new();
    mirror.insert(k1.clone(), mirror_entry(5, 1));
    mirror.insert(
        k2.clone(),
        MirrorEntry {
            stock: -3,
            as_of: None,
        },
    );
    let content = BuiltContent {
        lines: lines(),
        parked: vec![ParkedLine {
            goods_code: "UNKNOWN".into(),
            delta: 4,
            reason: ParkReason::NotRegistered,
        }],
        notes: vec!["店舗1 商品P1: 初めて受信".into()],
        change_count: 7,
        csv_key: Some(format!("tenants/{a}/uploads/2026/11/27/b1.csv")),
        mirror_updates: mirror.clone(),
        at: minutes(1),
        oldest_change_at: None,
    };

    assert_conflict(
        other.finish_build(&a, "b1", "intruder", &content).await,
        "finish by another owner",
    );
    let untouched = batch_of(store, &a, "b1").await;
    assert_eq!(untouched.state, BatchState::Building);
    assert!(untouched.lines.is_empty());
    assert!(
        store.mirror(&a, &wanted).await.unwrap().is_empty(),
        "a refused build writes no mirror"
    );
    assert_refused(
        store.finish_build(&a, "nope", "builder", &content).await,
        "finish of a batch that does not exist",
    );

    let done = store
        .finish_build(&a, "b1", "builder", &content)
        .await
        .unwrap();
    assert_eq!(done.state, BatchState::Built);
    assert_eq!(done.lines, content.lines);
    assert_eq!(done.parked, content.parked);
    assert_eq!(done.notes, content.notes);
    assert_eq!(done.change_count, 7);
    assert_eq!(done.csv_key, content.csv_key);
    assert_eq!(done.created_at, t0());
    assert_eq!(batch_of(other, &a, "b1").await, done);
    assert_eq!(other.mirror(&a, &wanted).await.unwrap(), mirror);
    let only_one = other
        .mirror(&a, &[k2.clone(), StockKey::new("9", "none")])
        .await
        .unwrap();
    assert_eq!(only_one.len(), 1, "only entries that exist come back");

    assert_conflict(
        store.finish_build(&a, "b1", "builder", &content).await,
        "finishing twice",
    );
    assert_eq!(batch_of(store, &a, "b1").await, done);

    // No lines: Empty, and the mirror still moves (a first-seen value, say).
    claimed(store, &a, "b2", minutes(1)).await;
    let mut newer = Mirror::new();
    newer.insert(k1.clone(), mirror_entry(8, 30));
    let empty = store
        .finish_build(
            &a,
            "b2",
            "builder",
            &BuiltContent {
                mirror_updates: newer.clone(),
                change_count: 1,
                oldest_change_at: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(empty.state, BatchState::Empty);
    assert!(empty.lines.is_empty());
    let now = store.mirror(&a, &wanted).await.unwrap();
    assert_eq!(now.get(&k1), Some(&mirror_entry(8, 30)), "overwritten");
    assert_eq!(now.get(&k2), mirror.get(&k2), "kept");
}

pub async fn every_allowed_transition_works<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");

    // b1 walks the retry edges: Built ⇄ Uploading, NeedsAttention → Built | Uploaded.
    built_batch(store, &a, "b1", t0()).await;
    let up = step(store, &a, "b1", Built, Uploading, minutes(1)).await;
    assert_eq!(up.upload_started_at, Some(minutes(1)));
    assert_eq!((up.upload_attempts, up.updated_at), (1, minutes(1)));
    let mut back = plan(other, &a, "b1", Uploading, Built, minutes(2)).await;
    back.error = Some(BatchError::new(
        BatchErrorKind::Token,
        "NextEngine: 002002 トークンエラー",
    ));
    let back = other.transition(&a, "b1", &back).await.unwrap();
    assert_eq!(back.state, Built);
    assert_eq!(
        back.last_error.as_ref().map(|e| e.message.as_str()),
        Some("NextEngine: 002002 トークンエラー")
    );
    assert_eq!(
        batch_of(store, &a, "b1").await.last_error.map(|e| e.kind),
        Some(BatchErrorKind::Token),
        "the error's kind is stored with it"
    );
    assert_eq!(back.lines, lines(), "the frozen file is kept");
    let up = step(other, &a, "b1", Built, Uploading, minutes(3)).await;
    assert_eq!(
        (up.upload_attempts, up.upload_started_at),
        (2, Some(minutes(3)))
    );
    step(store, &a, "b1", Uploading, NeedsAttention, minutes(4)).await;
    step(store, &a, "b1", NeedsAttention, Built, minutes(5)).await;
    step(store, &a, "b1", Built, Uploading, minutes(6)).await;
    step(store, &a, "b1", Uploading, NeedsAttention, minutes(7)).await;
    let uploaded = step(store, &a, "b1", NeedsAttention, Uploaded, minutes(8)).await;
    assert_eq!(uploaded.que_id.as_deref(), Some("que-b1"));
    assert_eq!(uploaded.upload_attempts, 3);
    let mut ok = plan(store, &a, "b1", Uploaded, Succeeded, minutes(9)).await;
    ok.outcome = Some(QueueOutcome::Succeeded);
    let ok = store.transition(&a, "b1", &ok).await.unwrap();
    assert_eq!(
        (ok.state, ok.outcome.clone()),
        (Succeeded, Some(QueueOutcome::Succeeded))
    );
    assert_eq!(ok.updated_at, minutes(9));
    assert_eq!(batch_of(other, &a, "b1").await, ok);

    // b2: the straight path into Failed, with the row errors kept.
    built_batch(store, &a, "b2", minutes(10)).await;
    step(store, &a, "b2", Built, Uploading, minutes(11)).await;
    let mut sent = plan(store, &a, "b2", Uploading, Uploaded, minutes(12)).await;
    sent.que_id = Some("4711".into());
    assert_eq!(
        store
            .transition(&a, "b2", &sent)
            .await
            .unwrap()
            .que_id
            .as_deref(),
        Some("4711")
    );
    let failure = QueueOutcome::Failed {
        row_errors: vec![],
        raw_message: "3行目: 商品コードが存在しません".into(),
        rows: vec![],
    };
    let mut failed = plan(store, &a, "b2", Uploaded, Failed, minutes(13)).await;
    failed.outcome = Some(failure.clone());
    let failed = store.transition(&a, "b2", &failed).await.unwrap();
    assert_eq!((failed.state, failed.outcome), (Failed, Some(failure)));

    // The two edges out of Building, taken with `transition` itself.
    claimed(store, &a, "b3", minutes(14)).await;
    assert_eq!(
        step(store, &a, "b3", Building, Built, minutes(15))
            .await
            .state,
        Built
    );
    claimed(store, &a, "b4", minutes(16)).await;
    assert_eq!(
        step(store, &a, "b4", Building, Empty, minutes(17))
            .await
            .state,
        Empty
    );
    assert!(
        store
            .batches_in_state(&a, Building)
            .await
            .unwrap()
            .is_empty()
    );

    let mut ques = store.known_que_ids(&a).await.unwrap();
    ques.sort();
    assert_eq!(ques, vec!["4711".to_string(), "que-b1".to_string()]);
}

pub async fn refused_transitions_change_nothing<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let store = &*fresh.first;
    let a = fresh.tenant("a");

    // Every (from, to) pair that is not an allowed edge out of the batch's actual
    // state is refused, with the data each edge needs present, so that only the
    // state rules decide.
    async fn only_allowed_edges<S: Storage>(store: &S, tenant: &TenantId, batch_id: &str) {
        let before = batch_of(store, tenant, batch_id).await;
        for from in ALL_STATES {
            for to in ALL_STATES {
                if from == before.state && can_transition(from, to) {
                    continue;
                }
                let mut t = plan(store, tenant, batch_id, from, to, minutes(99)).await;
                t.que_id = Some("que-x".into());
                t.outcome = Some(QueueOutcome::Succeeded);
                t.error = Some(BatchError::new(
                    BatchErrorKind::Refused,
                    "must not be stored",
                ));
                assert_conflict(
                    store.transition(tenant, batch_id, &t).await,
                    &format!("{batch_id} is {}: {from} → {to}", before.state),
                );
            }
        }
        assert_eq!(
            batch_of(store, tenant, batch_id).await,
            before,
            "refused transitions changed {batch_id}"
        );
    }

    claimed(store, &a, "b1", t0()).await;
    only_allowed_edges(store, &a, "b1").await;
    store
        .finish_build(&a, "b1", "builder", &built(lines()))
        .await
        .unwrap();
    for (from, to) in [
        (Built, Uploading),
        (Uploading, NeedsAttention),
        (NeedsAttention, Uploaded),
        (Uploaded, Succeeded),
    ] {
        only_allowed_edges(store, &a, "b1").await;
        step(store, &a, "b1", from, to, minutes(1)).await;
    }
    only_allowed_edges(store, &a, "b1").await;

    built_batch(store, &a, "b2", minutes(2)).await;
    step(store, &a, "b2", Built, Uploading, minutes(3)).await;
    step(store, &a, "b2", Uploading, Uploaded, minutes(4)).await;
    let mut failed = plan(store, &a, "b2", Uploaded, Failed, minutes(5)).await;
    failed.outcome = Some(QueueOutcome::Overdue { minutes: 90 });
    store.transition(&a, "b2", &failed).await.unwrap();
    only_allowed_edges(store, &a, "b2").await;

    claimed(store, &a, "b3", minutes(6)).await;
    store
        .finish_build(&a, "b3", "builder", &built(vec![]))
        .await
        .unwrap();
    only_allowed_edges(store, &a, "b3").await;

    // Two runs racing on the same edge: exactly one wins.
    built_batch(store, &a, "b4", minutes(7)).await;
    let t = plan(store, &a, "b4", Built, Uploading, minutes(8)).await;
    let (x, y) = futures::join!(
        fresh.first.transition(&a, "b4", &t),
        fresh.second.transition(&a, "b4", &t)
    );
    assert!(
        x.is_ok() != y.is_ok(),
        "one of two racing transitions wins: {x:?} / {y:?}"
    );
    assert_eq!(batch_of(store, &a, "b4").await.upload_attempts, 1);

    assert_refused(
        store
            .transition(
                &a,
                "missing",
                &plan(store, &a, "missing", Built, Uploading, minutes(9)).await,
            )
            .await,
        "transition of a batch that does not exist",
    );
    assert_eq!(store.batch(&a, "missing").await.unwrap(), None);
}

/// Two runners both saw the batch `Uploading` (its answer lost). One sends it
/// again (`→ Built → Uploading`); the other's step, planned on what it read,
/// must fail although the state matches again: it would send the file twice.
pub async fn a_stale_step_is_refused<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    built_batch(store, &a, "b1", t0()).await;
    step(store, &a, "b1", Built, Uploading, minutes(1)).await;
    let seen_by_both = batch_of(other, &a, "b1").await;
    let back = store
        .transition(&a, "b1", &Transition::of(&seen_by_both, Built, minutes(11)))
        .await
        .unwrap();
    let again = store
        .transition(&a, "b1", &Transition::of(&back, Uploading, minutes(12)))
        .await
        .unwrap();
    assert_eq!(again.state, seen_by_both.state);
    assert_conflict(
        other
            .transition(&a, "b1", &Transition::of(&seen_by_both, Built, minutes(13)))
            .await,
        "a step planned on an older revision",
    );
    assert_eq!(batch_of(store, &a, "b1").await, again, "nothing changed");
    assert!(again.revision > seen_by_both.revision);
}

/// 「未反映の行を再アップロード」: two requests racing on the same failed file
/// (two admins, a double click, two processes) make exactly one new file, with
/// every line (also past one item's size), and the failed file names it.
pub async fn a_failed_file_is_re_sent_once<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let (store, other) = (fresh.first.clone(), fresh.second.clone());
    let a = fresh.tenant("a");
    built_batch(&*store, &a, "b1", t0()).await;
    step(&*store, &a, "b1", Built, Uploading, minutes(1)).await;
    step(&*store, &a, "b1", Uploading, Uploaded, minutes(2)).await;
    let mut t = plan(&*store, &a, "b1", Uploaded, Failed, minutes(3)).await;
    t.outcome = Some(QueueOutcome::Failed {
        row_errors: vec![],
        raw_message: String::new(),
        rows: vec![],
    });
    let failed = store.transition(&a, "b1", &t).await.unwrap();
    let resend_lines: Vec<UploadLine> = (0..12_000)
        .map(|i| UploadLine {
            goods_code: format!("GOODS-{i:06}").into(),
            delta: -(i % 7) - 1,
        })
        .collect();
    let request = |id: &str| FollowUpRequest {
        expected_revision: failed.revision,
        new_batch_id: id.into(),
        lines: resend_lines.clone(),
        csv_key: Some(format!("csv/{id}.csv")),
        by: "op@example.test".into(),
        at: minutes(4),
    };
    let (r1, r2) = (request("r1"), request("r2"));
    let (ta, tb) = (a.clone(), a.clone());
    let first = tokio::spawn(async move { store.start_follow_up(&ta, "b1", &r1).await });
    let second = tokio::spawn(async move { other.start_follow_up(&tb, "b1", &r2).await });
    let outcomes = [first.await.unwrap(), second.await.unwrap()];
    let winners: Vec<&UploadBatch> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one re-send: {outcomes:?}");
    for lost in outcomes.iter().filter(|o| o.is_err()) {
        assert!(
            matches!(lost, Err(StoreError::Conflict(_))),
            "the loser is a conflict: {lost:?}"
        );
    }
    let store = &*fresh.first;
    let winner = winners[0].batch_id.clone();
    let loser = if winner == "r1" { "r2" } else { "r1" };
    let resend = batch_of(store, &a, &winner).await;
    assert_eq!(resend.state, Built);
    assert_eq!(resend.follows.as_deref(), Some("b1"));
    assert_eq!(resend.lines, resend_lines, "every line, in order");
    assert!(
        store.batch(&a, loser).await.unwrap().is_none(),
        "no second file"
    );
    let built: Vec<String> = store
        .batches_in_state(&a, Built)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.batch_id)
        .collect();
    assert_eq!(built, vec![winner.clone()]);
    let source = batch_of(store, &a, "b1").await;
    assert_eq!(source.state, Failed, "the failed file stays failed");
    assert_eq!(source.follow_up.map(|f| f.batch_id), Some(winner));
    // Asked again later: refused, nothing new.
    assert_conflict(
        store
            .start_follow_up(
                &a,
                "b1",
                &FollowUpRequest {
                    expected_revision: source.revision,
                    ..request("r3")
                },
            )
            .await,
        "a file already re-sent",
    );
    assert!(store.batch(&a, "r3").await.unwrap().is_none());
    // Only a failed file can be re-sent.
    assert_conflict(
        store
            .start_follow_up(
                &a,
                &resend.batch_id,
                &FollowUpRequest {
                    expected_revision: resend.revision,
                    ..request("r4")
                },
            )
            .await,
        "a file that did not fail",
    );
}

/// A report marks the outcomes it tells in the same atomic step that stores it:
/// told once, by exactly one of two racing reports, and never lost.
pub async fn outcomes_are_reported_once_with_their_report<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    for (id, at) in [("b1", 0), ("b2", 10)] {
        built_batch(store, &a, id, minutes(at)).await;
        step(store, &a, id, Built, Uploading, minutes(at + 1)).await;
        step(store, &a, id, Uploading, Uploaded, minutes(at + 2)).await;
    }
    assert!(store.unreported_outcomes(&a, 10).await.unwrap().is_empty());
    step(store, &a, "b1", Uploaded, Succeeded, minutes(20)).await;
    step(store, &a, "b2", Uploaded, Succeeded, minutes(21)).await;
    let waiting: Vec<_> = other
        .unreported_outcomes(&a, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.batch_id)
        .collect();
    assert_eq!(
        waiting,
        vec!["b1".to_string(), "b2".to_string()],
        "oldest first"
    );
    assert_eq!(store.unreported_outcomes(&a, 1).await.unwrap().len(), 1);

    let mut r1 = report(&a, "r1", minutes(22));
    r1.reported_batches = waiting.clone();
    let mut r2 = report(&a, "r2", minutes(22));
    r2.reported_batches = vec!["b2".into()];
    let (x, y) = futures::join!(store.enqueue_report(&r1), other.enqueue_report(&r2));
    assert!(
        matches!(
            (&x, &y),
            (Ok(true), Err(StoreError::Conflict(_))) | (Err(StoreError::Conflict(_)), Ok(true))
        ),
        "exactly one report tells b2: {x:?} / {y:?}"
    );
    let stored: Vec<_> = store
        .recent_reports(&a, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "the losing report was not stored: {stored:?}"
    );
    if x.is_ok() {
        assert!(store.unreported_outcomes(&a, 10).await.unwrap().is_empty());
        assert_eq!(
            batch_of(other, &a, "b2").await.reported_in.as_deref(),
            Some("r1")
        );
        // Enqueueing the same report again is a no-op, not a conflict.
        assert!(!store.enqueue_report(&r1).await.unwrap());
    } else {
        let left = store.unreported_outcomes(&a, 10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].batch_id, "b1");
    }
}

pub async fn transitions_need_their_data<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let store = &*fresh.first;
    let a = fresh.tenant("a");
    built_batch(store, &a, "b1", t0()).await;
    step(store, &a, "b1", Built, Uploading, minutes(1)).await;
    let before = batch_of(store, &a, "b1").await;
    assert_conflict(
        store
            .transition(
                &a,
                "b1",
                &plan(store, &a, "b1", Uploading, Uploaded, minutes(2)).await,
            )
            .await,
        "uploaded without a queue id",
    );
    assert_eq!(batch_of(store, &a, "b1").await, before);

    step(store, &a, "b1", Uploading, NeedsAttention, minutes(3)).await;
    let before = batch_of(store, &a, "b1").await;
    assert_conflict(
        store
            .transition(
                &a,
                "b1",
                &plan(store, &a, "b1", NeedsAttention, Uploaded, minutes(4)).await,
            )
            .await,
        "a person's uploaded without a queue id",
    );
    assert_eq!(batch_of(store, &a, "b1").await, before);

    step(store, &a, "b1", NeedsAttention, Uploaded, minutes(5)).await;
    let before = batch_of(store, &a, "b1").await;
    for to in [Succeeded, Failed] {
        assert_conflict(
            store
                .transition(
                    &a,
                    "b1",
                    &plan(store, &a, "b1", Uploaded, to, minutes(6)).await,
                )
                .await,
            &format!("{to} without the queue outcome"),
        );
    }
    assert_eq!(batch_of(store, &a, "b1").await, before);
}

pub async fn batch_listings_are_ordered<S: Storage + 'static>(fresh: Fresh<S>) {
    use BatchState::*;
    let store = &*fresh.first;
    let a = fresh.tenant("a");
    for (i, id) in ["b1", "b2", "b3"].into_iter().enumerate() {
        built_batch(store, &a, id, minutes(i as i64)).await;
    }
    let ids = |batches: Vec<UploadBatch>| -> Vec<String> {
        batches.into_iter().map(|b| b.batch_id).collect()
    };
    assert_eq!(
        ids(store.batches_in_state(&a, Built).await.unwrap()),
        ["b1", "b2", "b3"],
        "oldest first"
    );
    assert_eq!(
        ids(store.recent_batches(&a, 2).await.unwrap()),
        ["b3", "b2"],
        "newest first, limited"
    );
    assert!(store.known_que_ids(&a).await.unwrap().is_empty());

    step(store, &a, "b2", Built, Uploading, minutes(5)).await;
    step(store, &a, "b2", Uploading, Uploaded, minutes(6)).await;
    assert_eq!(
        ids(store.batches_in_state(&a, Built).await.unwrap()),
        ["b1", "b3"]
    );
    assert_eq!(
        ids(store.batches_in_state(&a, Uploaded).await.unwrap()),
        ["b2"]
    );
    assert_eq!(store.known_que_ids(&a).await.unwrap(), ["que-b2"]);
    assert_eq!(
        ids(store.recent_batches(&a, 10).await.unwrap()),
        ["b3", "b2", "b1"]
    );
}

// ---------------------------------------------------------------- cursors, orders, reports

pub async fn a_frozen_batch_is_stored_once<S: Storage + 'static>(fresh: Fresh<S>) {
    use sne_domain::upload_batch::UploadBatch;
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let b = fresh.tenant("b");
    let frozen = UploadBatch::alignment(
        a.clone(),
        "d1",
        lines(),
        "admin",
        t0(),
        "tenants/a/uploads/x.csv".into(),
    );
    store.freeze_batch(&a, &frozen).await.unwrap();
    let stored = batch_of(other, &a, &frozen.batch_id).await;
    assert_eq!(stored.state, BatchState::Built);
    assert_eq!(stored.lines, lines());
    assert_eq!(stored.aligns.as_deref(), Some("d1"));
    let listed = store.batches_in_state(&a, BatchState::Built).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        store.recent_batches(&a, 10).await.unwrap()[0].batch_id,
        frozen.batch_id
    );

    let mut again = frozen.clone();
    again.lines.truncate(1);
    let second = other.freeze_batch(&a, &again).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    assert_eq!(batch_of(store, &a, &frozen.batch_id).await.lines, lines());

    // Refused before anything is written: another tenant's, not Built, empty.
    let foreign = other.freeze_batch(&b, &frozen).await;
    assert!(foreign.is_err(), "{foreign:?}");
    let mut building = frozen.clone();
    building.batch_id = "b_other".into();
    building.state = BatchState::Building;
    assert!(store.freeze_batch(&a, &building).await.is_err());
    let mut empty = frozen.clone();
    empty.batch_id = "b_empty".into();
    empty.lines.clear();
    assert!(store.freeze_batch(&a, &empty).await.is_err());
    assert!(store.batch(&a, "b_other").await.unwrap().is_none());
    assert!(store.batch(&a, "b_empty").await.unwrap().is_none());
    assert!(store.batch(&b, &frozen.batch_id).await.unwrap().is_none());

    // From here it is a file like any other.
    let up = step(
        store,
        &a,
        &frozen.batch_id,
        BatchState::Built,
        BatchState::Uploading,
        minutes(1),
    )
    .await;
    assert_eq!(up.upload_attempts, 1);
    assert!(
        store
            .batches_in_state(&a, BatchState::Built)
            .await
            .unwrap()
            .is_empty()
    );
}
