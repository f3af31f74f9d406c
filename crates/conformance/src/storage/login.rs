//! The login throttle: one atomic count-and-check.

use super::sample::*;

pub async fn login_attempts_are_counted_against_the_limit<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let (a, b) = (fresh.tenant("a"), fresh.tenant("b"));
    let window = Duration::minutes(15);
    let allowed = |nth| LoginAttempt::Allowed { nth };
    let locked = LoginAttempt::Locked { until: minutes(15) };
    assert_eq!(
        store
            .reserve_login_attempt(&a, t0(), window, 3)
            .await
            .unwrap(),
        allowed(1)
    );
    assert_eq!(
        other
            .reserve_login_attempt(&a, minutes(5), window, 3)
            .await
            .unwrap(),
        allowed(2)
    );
    assert_eq!(
        store
            .reserve_login_attempt(&a, minutes(10), window, 3)
            .await
            .unwrap(),
        allowed(3)
    );
    assert_eq!(
        other
            .reserve_login_attempt(&a, minutes(11), window, 3)
            .await
            .unwrap(),
        locked,
        "the window started with the first attempt and is used up"
    );
    assert_eq!(
        store
            .reserve_login_attempt(&a, minutes(14), window, 3)
            .await
            .unwrap(),
        locked,
        "a refused attempt does not extend the lock"
    );
    assert_eq!(
        store
            .reserve_login_attempt(&b, minutes(14), window, 3)
            .await
            .unwrap(),
        allowed(1),
        "tenants are counted apart"
    );
    assert_eq!(
        other
            .reserve_login_attempt(&a, minutes(15), window, 3)
            .await
            .unwrap(),
        allowed(1),
        "a new window starts when the old one ends"
    );
    assert_eq!(
        store
            .reserve_login_attempt(&a, minutes(16), window, 3)
            .await
            .unwrap(),
        allowed(2)
    );
    other.reset_login_attempts(&a).await.unwrap();
    assert_eq!(
        store
            .reserve_login_attempt(&a, minutes(17), window, 3)
            .await
            .unwrap(),
        allowed(1),
        "a reset forgets the window"
    );
    assert_eq!(
        store
            .reserve_login_attempt(&b, minutes(17), window, 3)
            .await
            .unwrap(),
        allowed(2),
        "and only the tenant's own"
    );
    store
        .reset_login_attempts(&fresh.tenant("never"))
        .await
        .unwrap();
}

pub async fn concurrent_login_attempts_never_exceed_the_limit<S: Storage + 'static>(
    fresh: Fresh<S>,
) {
    let a = fresh.tenant("a");
    let window = Duration::minutes(15);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 {
                fresh.first.clone()
            } else {
                fresh.second.clone()
            };
            let tenant = a.clone();
            tokio::spawn(async move {
                store
                    .reserve_login_attempt(&tenant, minutes(1), window, 5)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut allowed = Vec::new();
    let mut locked = 0;
    for task in tasks {
        match task.await.unwrap() {
            LoginAttempt::Allowed { nth } => allowed.push(nth),
            LoginAttempt::Locked { until } => {
                assert_eq!(until, minutes(16));
                locked += 1;
            }
        }
    }
    allowed.sort_unstable();
    assert_eq!(
        allowed,
        vec![1, 2, 3, 4, 5],
        "each allowed attempt counted once"
    );
    assert_eq!(locked, 15);
    assert_eq!(
        fresh
            .second
            .reserve_login_attempt(&a, minutes(2), window, 5)
            .await
            .unwrap(),
        LoginAttempt::Locked { until: minutes(16) }
    );
}

// ---------------------------------------------------------------- isolation
