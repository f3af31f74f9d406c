//! The report outbox and its send claims.

use super::sample::*;

pub async fn report_outbox_is_idempotent<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let r1 = report(&a, "run-1", t0());
    assert!(store.enqueue_report(&r1).await.unwrap());
    let mut again = r1.clone();
    again.subject = "別の件名".into();
    assert!(
        !other.enqueue_report(&again).await.unwrap(),
        "the same id twice keeps the first"
    );
    let r2 = report(&a, "run-2", minutes(1));
    assert!(other.enqueue_report(&r2).await.unwrap());
    assert_eq!(
        store.pending_reports(&a).await.unwrap(),
        vec![r1.clone(), r2.clone()],
        "oldest first"
    );

    assert!(
        store
            .claim_report(&a, "run-1", "sender", t0(), minutes(5))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_report_failure(&a, "run-1", "sender", "SES: throttled")
            .await
            .unwrap()
    );
    let pending = store.pending_reports(&a).await.unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("SES: throttled"));
    assert_eq!(pending[0].claim, None, "a failed send releases its claim");
    assert_eq!(pending.len(), 2, "a failed send stays pending");

    assert!(
        other
            .claim_report(&a, "run-1", "sender-2", minutes(1), minutes(6))
            .await
            .unwrap()
    );
    assert!(
        other
            .mark_report_sent(&a, "run-1", "sender-2", minutes(2))
            .await
            .unwrap()
    );
    assert_eq!(store.pending_reports(&a).await.unwrap(), vec![r2.clone()]);
    assert!(
        !store.enqueue_report(&r1).await.unwrap(),
        "a sent report is not enqueued again"
    );
    let recent = store.recent_reports(&a, 10).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0], r2, "newest first");
    assert_eq!(recent[1].id, "run-1");
    assert_eq!(recent[1].sent_at, Some(minutes(2)));
    assert_eq!(recent[1].attempts, 1);
    assert_eq!(recent[1].claim, None);
    assert_eq!(recent[1].subject, r1.subject);
    assert_eq!(store.recent_reports(&a, 1).await.unwrap(), vec![r2]);
    assert!(
        store
            .mark_report_sent(&a, "unknown", "sender", minutes(3))
            .await
            .is_err()
    );
    assert!(
        store
            .claim_report(&a, "unknown", "sender", minutes(3), minutes(8))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------- report claims

pub async fn report_claims_are_exclusive_and_expire<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    store
        .enqueue_report(&report(&a, "run-1", t0()))
        .await
        .unwrap();
    let claim = |owner: &'static str, now: i64, lease: i64| {
        other.claim_report(&a, "run-1", owner, minutes(now), minutes(now + lease))
    };

    assert!(
        claim("one", 0, 5).await.unwrap(),
        "an unsent report is free"
    );
    assert!(
        !claim("two", 1, 5).await.unwrap(),
        "held by one until minute 5"
    );
    assert!(!claim("two", 4, 5).await.unwrap(), "still held at minute 4");
    assert!(claim("one", 1, 5).await.unwrap(), "the owner may renew");
    let pending = store.pending_reports(&a).await.unwrap();
    assert_eq!(
        pending[0].claim,
        Some(ReportClaim {
            owner: "one".into(),
            until: minutes(6)
        }),
        "claimed reports stay pending"
    );
    assert!(
        !store
            .mark_report_sent(&a, "run-1", "two", minutes(2))
            .await
            .unwrap(),
        "only the holder marks sent"
    );
    assert!(
        !store
            .record_report_failure(&a, "run-1", "two", "x")
            .await
            .unwrap(),
        "only the holder records a failure"
    );
    let unchanged = store.pending_reports(&a).await.unwrap();
    assert_eq!(unchanged, pending, "refused writes change nothing");

    // One's sender died: at the end of its lease another takes over.
    assert!(
        claim("two", 6, 5).await.unwrap(),
        "an expired claim is taken over"
    );
    assert!(
        !store
            .mark_report_sent(&a, "run-1", "one", minutes(7))
            .await
            .unwrap(),
        "a claim taken over is no longer the old owner's"
    );
    assert!(
        !claim("one", 7, 5).await.unwrap(),
        "nor can it take it back"
    );
    assert!(
        store
            .mark_report_sent(&a, "run-1", "two", minutes(8))
            .await
            .unwrap()
    );
    assert!(store.pending_reports(&a).await.unwrap().is_empty());
    assert!(
        !claim("three", 60, 5).await.unwrap(),
        "a sent report is never claimed"
    );
    assert!(
        !claim("two", 60, 5).await.unwrap(),
        "not even by its sender"
    );
    assert!(
        !store
            .mark_report_sent(&a, "run-1", "two", minutes(61))
            .await
            .unwrap(),
        "sent once"
    );
    assert_eq!(
        store.recent_reports(&a, 1).await.unwrap()[0].sent_at,
        Some(minutes(8))
    );
}

pub async fn concurrent_report_claims_have_one_winner<S: Storage + 'static>(fresh: Fresh<S>) {
    let a = fresh.tenant("a");
    for id in ["run-1", "run-2", "run-3"] {
        fresh
            .first
            .enqueue_report(&report(&a, id, t0()))
            .await
            .unwrap();
    }
    for id in ["run-1", "run-2", "run-3"] {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    fresh.first.clone()
                } else {
                    fresh.second.clone()
                };
                let tenant = a.clone();
                tokio::spawn(async move {
                    let owner = format!("sender-{i}");
                    let won = store
                        .claim_report(&tenant, id, &owner, minutes(1), minutes(6))
                        .await
                        .unwrap();
                    won.then_some(owner)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap());
        }
        assert_eq!(
            winners.len(),
            1,
            "{id}: exactly one claim wins: {winners:?}"
        );
        let stored = fresh.first.pending_reports(&a).await.unwrap();
        let stored = stored.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            stored.claim.as_ref().map(|c| c.owner.as_str()),
            Some(winners[0].as_str()),
            "{id}: the stored claim is the winner's"
        );
    }
}

// ---------------------------------------------------------------- login throttle
