//! The storage conformance suite: what every [`Storage`] adapter must do, written
//! once against the traits so the embedded store and the AWS store are held to the
//! same promises (design.md §7: nothing lost, nothing counted twice, tenants isolated).
//!
//! An adapter's test file supplies an async function that returns a [`Fresh`]
//! storage (empty, with two independent handles onto it, as two processes or two
//! Lambda instances would have) and either expands [`storage_conformance_tests!`]
//! (one `#[tokio::test]` per check) or calls [`run_all`]:
//!
//! ```text
//! async fn fresh() -> Fresh<SqliteStore> {
//!     let dir = tempfile::tempdir().unwrap();
//!     let first = SqliteStore::open(dir.path()).unwrap();
//!     let second = SqliteStore::open(dir.path()).unwrap();
//!     Fresh::new(first, second).keeping(dir)
//! }
//! sne_ports::storage_conformance_tests!(fresh);
//! ```
//!
//! Every check panics with a message on the first broken promise. Checks use
//! tenant ids of their own, so a backend that cannot be emptied cheaply may hand
//! the same storage to several checks, as long as each gets new tenant ids
//! (use [`Fresh::tenant`] for that).

use crate::error::{StoreError, StoreResult};
use crate::storage::*;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sne_domain::batch_state::{BatchState, can_transition};
use sne_domain::change::{ChangeKind, ChangeSource, PushRow};
use sne_domain::complete::{Mirror, MirrorEntry};
use sne_domain::report::{ParkReason, ParkedLine, QueueOutcome};
use sne_domain::tenant::{NeTokens, Tenant};
use sne_domain::upload_csv::UploadLine;
use sne_domain::{StockChange, StockDivision, TenantId};
use std::any::Any;
use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// An empty storage under test.
pub struct Fresh<S> {
    /// The handle most checks use.
    pub first: Arc<S>,
    /// An independent handle onto the same data (its own connection or client),
    /// for the checks that race two processes.
    pub second: Arc<S>,
    prefix: String,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

impl<S> Fresh<S> {
    pub fn new(first: S, second: S) -> Self {
        Self::from_arcs(Arc::new(first), Arc::new(second))
    }

    pub fn from_arcs(first: Arc<S>, second: Arc<S>) -> Self {
        Fresh {
            first,
            second,
            prefix: String::new(),
            _keep: None,
        }
    }

    /// Keeps `guard` (a temp dir, a table deleter…) alive as long as the storage.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// Prefixes every tenant id and contract id the checks create, for backends
    /// whose storage is shared between checks instead of made fresh.
    pub fn with_tenant_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The tenant id a check calls `name`.
    pub fn tenant(&self, name: &str) -> TenantId {
        TenantId(format!("{}{name}", self.prefix))
    }
}

/// Runs every check, each on its own fresh storage from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Storage + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Fresh<S>>,
{
    tenants_are_created_once_and_found(make().await).await;
    tenant_update_is_version_checked(make().await).await;
    ne_tokens_swap_only_over_the_expected_token(make().await).await;
    product_pairs_add_or_replace(make().await).await;
    append_is_idempotent(make().await).await;
    concurrent_appends_count_each_change_once(make().await).await;
    a_large_push_is_appended_whole(make().await).await;
    claims_follow_append_order(make().await).await;
    concurrent_claimers_never_share_a_change(make().await).await;
    lease_blocks_others_until_it_expires(make().await).await;
    finish_build_is_conditional_and_writes_the_mirror(make().await).await;
    every_allowed_transition_works(make().await).await;
    refused_transitions_change_nothing(make().await).await;
    transitions_need_their_data(make().await).await;
    a_stale_step_is_refused(make().await).await;
    outcomes_are_reported_once_with_their_report(make().await).await;
    a_failed_file_is_re_sent_once(make().await).await;
    batch_listings_are_ordered(make().await).await;
    cursor_is_compare_and_set(make().await).await;
    order_record_is_compare_and_set(make().await).await;
    report_outbox_is_idempotent(make().await).await;
    report_claims_are_exclusive_and_expire(make().await).await;
    concurrent_report_claims_have_one_winner(make().await).await;
    login_attempts_are_counted_against_the_limit(make().await).await;
    concurrent_login_attempts_never_exceed_the_limit(make().await).await;
    tenants_are_isolated(make().await).await;
}

/// One `#[tokio::test]` per check (multi-threaded, so the race checks race).
/// `$fresh` is the path of an `async fn() -> Fresh<YourStore>`; the calling crate
/// needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! storage_conformance_tests {
    ($fresh:path) => {
        $crate::storage_conformance_tests!(@each $fresh;
            tenants_are_created_once_and_found,
            tenant_update_is_version_checked,
            ne_tokens_swap_only_over_the_expected_token,
            product_pairs_add_or_replace,
            append_is_idempotent,
            concurrent_appends_count_each_change_once,
            a_large_push_is_appended_whole,
            claims_follow_append_order,
            concurrent_claimers_never_share_a_change,
            lease_blocks_others_until_it_expires,
            finish_build_is_conditional_and_writes_the_mirror,
            every_allowed_transition_works,
            refused_transitions_change_nothing,
            transitions_need_their_data,
            a_stale_step_is_refused,
            outcomes_are_reported_once_with_their_report,
            a_failed_file_is_re_sent_once,
            batch_listings_are_ordered,
            cursor_is_compare_and_set,
            order_record_is_compare_and_set,
            report_outbox_is_idempotent,
            report_claims_are_exclusive_and_expire,
            concurrent_report_claims_have_one_winner,
            login_attempts_are_counted_against_the_limit,
            concurrent_login_attempts_never_exceed_the_limit,
            tenants_are_isolated,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::conformance::$check($fresh().await).await;
            }
        )*
    };
}

// ---------------------------------------------------------------- sample data

const ALL_STATES: [BatchState; 8] = [
    BatchState::Building,
    BatchState::Built,
    BatchState::Empty,
    BatchState::Uploading,
    BatchState::Uploaded,
    BatchState::Succeeded,
    BatchState::Failed,
    BatchState::NeedsAttention,
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap()
}

fn minutes(n: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(n)
}

fn tenant(id: &TenantId, name: &str) -> Tenant {
    Tenant {
        id: id.clone(),
        name: format!("{name} 店"),
        contract_id: format!("contract-{}", id.0),
        customer_code: format!("code-{}", id.0),
        admin_email: format!("admin-{}@example.com", id.0),
        admin_password_hash: "$argon2id$v=19$sample".into(),
        notify_emails: vec![format!("notify-{}@example.com", id.0)],
        stock_master: Default::default(),
        counted_stores: Some(vec!["1".into(), "2".into()]),
        mapping_mode: Default::default(),
        smaregi_api: None,
        order_import: Default::default(),
        created_at: t0(),
        version: 1,
    }
}

fn change(key: &str) -> StockChange {
    StockChange {
        dedupe_key: key.to_string(),
        source: ChangeSource::Push,
        row: PushRow {
            store_id: "1".into(),
            product_id: format!("P-{key}"),
            kind: ChangeKind::History,
            division: Some(StockDivision::Sale),
            amount: Some(-1),
            after: Some(4),
            changed_at: NaiveDate::from_ymd_opt(2026, 11, 27).and_then(|d| d.and_hms_opt(10, 0, 0)),
            history_id: None,
            from_store_id: None,
            to_store_id: None,
            layaway_stock_amount: None,
        },
        received_at: t0(),
    }
}

fn changes(prefix: &str, range: std::ops::Range<usize>) -> Vec<StockChange> {
    range.map(|i| change(&format!("{prefix}{i:04}"))).collect()
}

fn keys(changes: &[StockChange]) -> Vec<String> {
    changes.iter().map(|c| c.dedupe_key.clone()).collect()
}

fn claim_at(batch_id: &str, owner: &str, now: DateTime<Utc>, max_changes: usize) -> ClaimRequest {
    ClaimRequest {
        new_batch_id: batch_id.into(),
        owner: owner.into(),
        now,
        lease_until: now + Duration::minutes(5),
        max_changes,
    }
}

fn lines() -> Vec<UploadLine> {
    vec![
        UploadLine {
            goods_code: "A-1".into(),
            delta: 3,
        },
        UploadLine {
            goods_code: "B_2".into(),
            delta: -2,
        },
    ]
}

fn built(lines: Vec<UploadLine>) -> BuiltContent {
    BuiltContent {
        change_count: lines.len(),
        lines,
        ..Default::default()
    }
}

fn mirror_entry(stock: i64, minute: u32) -> MirrorEntry {
    MirrorEntry {
        stock,
        as_of: NaiveDate::from_ymd_opt(2026, 11, 27).and_then(|d| d.and_hms_opt(10, minute, 0)),
    }
}

fn ne_tokens(access: &str) -> NeTokens {
    let end = NaiveDate::from_ymd_opt(2026, 11, 28)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .unwrap();
    NeTokens {
        access_token: access.into(),
        refresh_token: format!("refresh-{access}"),
        access_token_end: end,
        refresh_token_end: end + Duration::days(2),
    }
}

fn order(
    tenant: &TenantId,
    id: &str,
    state: OrderImportState,
    at: DateTime<Utc>,
) -> OrderImportRecord {
    OrderImportRecord {
        tenant_id: tenant.clone(),
        receive_order_id: id.into(),
        shop_order_no: format!("shop-{id}"),
        state,
        shipment_token: format!("token-{id}"),
        lines: vec![("A-1".into(), 2)],
        updated_at: at,
        reported: false,
        owner: None,
    }
}

fn report(tenant: &TenantId, id: &str, at: DateTime<Utc>) -> OutboxReport {
    OutboxReport {
        id: id.into(),
        tenant_id: tenant.clone(),
        created_at: at,
        to: vec!["shop@example.com".into()],
        subject: format!("【スマレジtoネクストエンジン】{id}"),
        body: "本文".into(),
        attachments: vec![StoredAttachment {
            file_name: "在庫.csv".into(),
            content_type: "text/csv".into(),
            blob_key: format!("tenants/{tenant}/uploads/{id}.csv"),
        }],
        sent_at: None,
        attempts: 0,
        last_error: None,
        reported_batches: vec![],
        claim: None,
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// A missing item may be reported as not found or as a failed condition,
/// whichever the backend's conditional write gives; it must never succeed.
#[track_caller]
fn assert_refused<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected Conflict or NotFound, got {other:?}"),
    }
}

async fn batch_of<S: Storage>(store: &S, tenant: &TenantId, batch_id: &str) -> UploadBatch {
    store
        .batch(tenant, batch_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("batch {batch_id} must exist"))
}

/// Appends one change of its own and claims it as `batch_id`.
async fn claimed<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
    now: DateTime<Utc>,
) -> ClaimedBatch {
    store
        .append_changes(tenant, &[change(&format!("{batch_id}-change"))])
        .await
        .unwrap();
    let claim = store
        .claim_batch(tenant, &claim_at(batch_id, "builder", now, 1000))
        .await
        .unwrap()
        .expect("a pending change is claimed");
    assert_eq!(claim.batch_id, batch_id);
    claim
}

/// A batch in state `Built`, claimed and built at `now`.
async fn built_batch<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
    now: DateTime<Utc>,
) -> UploadBatch {
    claimed(store, tenant, batch_id, now).await;
    store
        .finish_build(tenant, batch_id, "builder", &built(lines()))
        .await
        .unwrap()
}

/// A step planned on the batch as it is stored now; `from` may differ from its
/// state, so refusals by state are tested apart from refusals by revision. Steps
/// out of `NeedsAttention` carry a person's decision.
async fn plan<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
    from: BatchState,
    to: BatchState,
    at: DateTime<Utc>,
) -> Transition {
    let revision = store
        .batch(tenant, batch_id)
        .await
        .unwrap()
        .map_or(0, |b| b.revision);
    Transition {
        from,
        to,
        at,
        expected_revision: revision,
        que_id: None,
        outcome: None,
        error: None,
        candidates: vec![],
        decision: (from == BatchState::NeedsAttention).then(|| OperatorDecision {
            action: DecisionAction::Reupload,
            by: "admin@shop.example".into(),
            at,
            que_id: None,
        }),
    }
}

async fn step<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
    from: BatchState,
    to: BatchState,
    at: DateTime<Utc>,
) -> UploadBatch {
    let mut t = plan(store, tenant, batch_id, from, to, at).await;
    if to == BatchState::Uploaded {
        t.que_id = Some(format!("que-{batch_id}"));
    }
    if matches!(to, BatchState::Succeeded | BatchState::Failed) {
        t.outcome = Some(QueueOutcome::Succeeded);
    }
    store
        .transition(tenant, batch_id, &t)
        .await
        .unwrap_or_else(|e| panic!("{batch_id}: {from} → {to} must work: {e}"))
}

// ---------------------------------------------------------------- tenants

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
    let pair = |p: &str, c: &str| (p.to_string(), c.to_string());
    let sorted = |mut v: Vec<(String, String)>| {
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

// ---------------------------------------------------------------- ledger

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
    let release = ClaimRequest {
        lease_until: minutes(9),
        ..claim_at("unused", "run-b", minutes(9), 10)
    };
    other.claim_batch(&a, &release).await.unwrap().unwrap();
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

// ---------------------------------------------------------------- batches

pub async fn finish_build_is_conditional_and_writes_the_mirror<S: Storage + 'static>(
    fresh: Fresh<S>,
) {
    let (store, other) = (&*fresh.first, &*fresh.second);
    let a = fresh.tenant("a");
    let k1 = ("1".to_string(), "P1".to_string());
    let k2 = ("2".to_string(), "P2".to_string());
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
        .mirror(&a, &[k2.clone(), ("9".into(), "none".into())])
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
    back.error = Some("NextEngine: 002002 トークンエラー".into());
    let back = other.transition(&a, "b1", &back).await.unwrap();
    assert_eq!(back.state, Built);
    assert_eq!(
        back.last_error.as_deref(),
        Some("NextEngine: 002002 トークンエラー")
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
                t.error = Some("must not be stored".into());
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
            goods_code: format!("GOODS-{i:06}"),
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
    let key = ("1".to_string(), "P".to_string());
    mirror.insert(key.clone(), mirror_entry(5, 0));
    store
        .finish_build(
            &ta,
            "a-b1",
            "run",
            &BuiltContent {
                mirror_updates: mirror.clone(),
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
    let pair = ("P".to_string(), "A-1".to_string());
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

    let snapshot = |s: Arc<S>, t: TenantId, key: (String, String)| async move {
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

/// A frozen file of `lines` made through the store's own steps (one history
/// change per line, claimed with whatever is pending, frozen), for the tests of
/// what operators do with files (admin screen, CLI).
async fn frozen_file(
    store: &dyn Storage,
    tenant: &TenantId,
    batch_id: &str,
    lines: Vec<UploadLine>,
    now: DateTime<Utc>,
) -> UploadBatch {
    let changes: Vec<StockChange> = lines
        .iter()
        .map(|line| StockChange {
            dedupe_key: format!("operator-test:{batch_id}:{}", line.goods_code),
            source: ChangeSource::History,
            row: PushRow {
                store_id: "1".into(),
                product_id: line.goods_code.clone(),
                kind: ChangeKind::History,
                division: None,
                amount: Some(line.delta),
                after: None,
                changed_at: None,
                history_id: None,
                from_store_id: None,
                to_store_id: None,
                layaway_stock_amount: None,
            },
            received_at: now,
        })
        .collect();
    store.append_changes(tenant, &changes).await.unwrap();
    let claim = ClaimRequest {
        new_batch_id: batch_id.into(),
        owner: "operator-test".into(),
        now,
        lease_until: now + Duration::minutes(5),
        max_changes: usize::MAX,
    };
    store.claim_batch(tenant, &claim).await.unwrap().unwrap();
    store
        .finish_build(
            tenant,
            batch_id,
            "operator-test",
            &BuiltContent {
                change_count: lines.len(),
                lines,
                at: now,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// A batch of `tenant` held as 要確認 — an upload whose answer was lost and whose
/// queue NextEngine's list could not prove — for the tests of what operators do
/// with such a batch.
pub async fn hold_a_batch(
    store: &dyn Storage,
    tenant: &TenantId,
    batch_id: &str,
    line: UploadLine,
    candidates: Vec<QueueCandidate>,
    now: DateTime<Utc>,
) -> UploadBatch {
    let built = frozen_file(store, tenant, batch_id, vec![line], now).await;
    let uploading = store
        .transition(
            tenant,
            batch_id,
            &Transition::of(&built, BatchState::Uploading, now),
        )
        .await
        .unwrap();
    let mut hold = Transition::of(&uploading, BatchState::NeedsAttention, now);
    hold.candidates = candidates;
    store.transition(tenant, batch_id, &hold).await.unwrap()
}

/// Makes `batch_id` a file NextEngine's queue failed, with `rows` as the stock
/// in/out history judged them, the way a run records it (for the tests of
/// 「未反映の行を再アップロード」).
pub async fn fail_a_batch(
    store: &dyn Storage,
    tenant: &TenantId,
    batch_id: &str,
    rows: Vec<sne_domain::row_application::RowVerdict>,
    now: DateTime<Utc>,
) -> UploadBatch {
    let lines: Vec<UploadLine> = rows
        .iter()
        .map(|r| UploadLine {
            goods_code: r.goods_code.clone(),
            delta: r.delta,
        })
        .collect();
    let mut batch = frozen_file(store, tenant, batch_id, lines, now).await;
    for to in [
        BatchState::Uploading,
        BatchState::Uploaded,
        BatchState::Failed,
    ] {
        let mut t = Transition::of(&batch, to, now);
        t.que_id = Some(format!("que-{batch_id}"));
        t.outcome = Some(QueueOutcome::Failed {
            row_errors: vec![],
            raw_message: "2行目: 仕入先コードは必須です。".into(),
            rows: rows.clone(),
        });
        batch = store.transition(tenant, batch_id, &t).await.unwrap();
    }
    batch
}
