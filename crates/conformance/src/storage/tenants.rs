//! Tenants, their NextEngine tokens and product pairs.

use super::sample::*;
use sne_domain::ProductPair;

pub async fn tenants_are_created_once_and_found<S: Storage + 'static>(fresh: Fresh<S>) {
    let store = &*fresh.first;
    let a = tenant(&fresh.tenant("a"), "A");
    store.create_tenant(&a).await.unwrap();
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.tenant_by_contract(&a.contract_id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.tenant_by_admin_email(&a.admin_email).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        fresh.second.tenant(&a.id).await.unwrap(),
        Some(a.clone()),
        "another handle sees the tenant"
    );
    assert_eq!(store.tenant(&fresh.tenant("nobody")).await.unwrap(), None);
    assert_eq!(store.tenant_by_contract("no-such").await.unwrap(), None);
    assert_eq!(
        store
            .tenant_by_admin_email("nobody@example.com")
            .await
            .unwrap(),
        None
    );

    let mut same_contract = tenant(&fresh.tenant("a2"), "A2");
    same_contract.contract_id = a.contract_id.clone();
    assert_conflict(
        store.create_tenant(&same_contract).await,
        "a second tenant with a taken contract id",
    );
    let mut same_id = tenant(&a.id, "A again");
    same_id.contract_id = "contract-other".into();
    assert_conflict(
        fresh.second.create_tenant(&same_id).await,
        "a second tenant with a taken tenant id",
    );
    assert_eq!(store.tenant(&same_contract.id).await.unwrap(), None);
    assert_eq!(
        store.tenant_by_contract("contract-other").await.unwrap(),
        None
    );
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(a.clone()));

    let b = tenant(&fresh.tenant("b"), "B");
    store.create_tenant(&b).await.unwrap();
    let listed: Vec<TenantId> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .filter(|id| *id == a.id || *id == b.id)
        .collect();
    assert_eq!(listed.len(), 2, "both tenants are listed once: {listed:?}");
}

pub async fn tenant_update_is_version_checked<S: Storage + 'static>(fresh: Fresh<S>) {
    let store = &*fresh.first;
    let a = tenant(&fresh.tenant("a"), "A");
    let b = tenant(&fresh.tenant("b"), "B");
    store.create_tenant(&a).await.unwrap();
    store.create_tenant(&b).await.unwrap();

    let mut edit = a.clone();
    edit.name = "新しい店名".into();
    edit.order_import.enabled = true;
    let stored = store.update_tenant(&edit).await.unwrap();
    assert_eq!(stored.version, a.version + 1, "the version is bumped");
    assert_eq!(stored.name, "新しい店名");
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(stored.clone()));

    // A writer that read before the update must not overwrite it.
    let mut stale = a.clone();
    stale.name = "古い編集".into();
    assert_conflict(fresh.second.update_tenant(&stale).await, "stale version");
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(stored.clone()));

    let mut next = stored.clone();
    next.notify_emails.push("more@example.com".into());
    let again = fresh.second.update_tenant(&next).await.unwrap();
    assert_eq!(again.version, stored.version + 1);
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(again.clone()));

    // The contract id finds one tenant only, so an update cannot take another's.
    let mut steal = again.clone();
    steal.contract_id = b.contract_id.clone();
    assert_conflict(
        store.update_tenant(&steal).await,
        "taking another's contract id",
    );
    assert_eq!(store.tenant(&a.id).await.unwrap(), Some(again));
    assert_eq!(
        store.tenant_by_contract(&b.contract_id).await.unwrap(),
        Some(b)
    );

    assert_refused(
        store
            .update_tenant(&tenant(&fresh.tenant("ghost"), "G"))
            .await,
        "updating a tenant that does not exist",
    );
    assert_eq!(store.tenant(&fresh.tenant("ghost")).await.unwrap(), None);
}

pub async fn ne_tokens_swap_only_over_the_expected_token<S: Storage + 'static>(fresh: Fresh<S>) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    assert_eq!(store.ne_tokens(&a).await.unwrap(), None);
    assert!(
        !store
            .swap_ne_tokens(&a, Some("imagined"), &ne_tokens("t1"))
            .await
            .unwrap(),
        "no tokens stored, so nothing equals the expected one"
    );
    assert_eq!(store.ne_tokens(&a).await.unwrap(), None);

    assert!(
        store
            .swap_ne_tokens(&a, None, &ne_tokens("t1"))
            .await
            .unwrap()
    );
    assert!(
        !other
            .swap_ne_tokens(&a, None, &ne_tokens("t2"))
            .await
            .unwrap(),
        "expected none, but t1 is stored"
    );
    assert_eq!(other.ne_tokens(&a).await.unwrap(), Some(ne_tokens("t1")));

    assert!(
        !store
            .swap_ne_tokens(&a, Some("wrong"), &ne_tokens("t2"))
            .await
            .unwrap()
    );
    assert!(
        other
            .swap_ne_tokens(&a, Some("t1"), &ne_tokens("t2"))
            .await
            .unwrap()
    );
    // The slow refresher that started from t1 must not bring t1's successor back.
    assert!(
        !store
            .swap_ne_tokens(&a, Some("t1"), &ne_tokens("t3"))
            .await
            .unwrap()
    );
    assert_eq!(store.ne_tokens(&a).await.unwrap(), Some(ne_tokens("t2")));
}

pub async fn product_pairs_add_or_replace<S: Storage + 'static>(fresh: Fresh<S>) {
    let store = &*fresh.first;
    let a = fresh.tenant("a");
    let pair = |p: &str, c: &str| ProductPair::new(p, c);
    let sorted = |mut v: Vec<ProductPair>| {
        v.sort();
        v
    };
    assert!(
        store
            .product_pairs(&a, PairSource::ProductCode)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .put_product_pairs(
            &a,
            PairSource::ProductCode,
            &[pair("1", "A"), pair("2", "B")],
            false,
        )
        .await
        .unwrap();
    store
        .put_product_pairs(&a, PairSource::ProductCode, &[pair("3", "C")], false)
        .await
        .unwrap();
    assert_eq!(
        sorted(
            store
                .product_pairs(&a, PairSource::ProductCode)
                .await
                .unwrap()
        ),
        vec![pair("1", "A"), pair("2", "B"), pair("3", "C")],
        "the cache only adds"
    );

    store
        .put_product_pairs(
            &a,
            PairSource::Table,
            &[pair("1", "X"), pair("9", "Z")],
            true,
        )
        .await
        .unwrap();
    fresh
        .second
        .put_product_pairs(&a, PairSource::Table, &[pair("8", "Y")], true)
        .await
        .unwrap();
    assert_eq!(
        store.product_pairs(&a, PairSource::Table).await.unwrap(),
        vec![pair("8", "Y")],
        "a table upload replaces every pair"
    );
    assert_eq!(
        sorted(
            store
                .product_pairs(&a, PairSource::ProductCode)
                .await
                .unwrap()
        ),
        vec![pair("1", "A"), pair("2", "B"), pair("3", "C")],
        "the two sources are separate"
    );
}
