//! Sample data and assertions the storage checks share.

pub(crate) use crate::Fresh;
pub(crate) use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
pub(crate) use sne_domain::batch_state::{BatchState, can_transition};
pub(crate) use sne_domain::change::{ChangeKind, ChangeRow, ChangeSource};
pub(crate) use sne_domain::complete::{Mirror, MirrorEntry, StockKey};
pub(crate) use sne_domain::report::{ParkReason, ParkedLine, QueueOutcome};
pub(crate) use sne_domain::tenant::{NeTokens, Tenant};
pub(crate) use sne_domain::upload_batch::{BatchError, BatchErrorKind};
pub(crate) use sne_domain::upload_csv::UploadLine;
pub(crate) use sne_domain::{StockChange, StockDivision, TenantId};
pub(crate) use sne_ports::storage::*;
pub(crate) use sne_ports::{StoreError, StoreResult};
pub(crate) use std::collections::HashSet;
pub(crate) use std::fmt::Debug;
pub(crate) use std::sync::Arc;
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) const ALL_STATES: [BatchState; 8] = [
    BatchState::Building,
    BatchState::Built,
    BatchState::Empty,
    BatchState::Uploading,
    BatchState::Uploaded,
    BatchState::Succeeded,
    BatchState::Failed,
    BatchState::NeedsAttention,
];

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap()
}

pub(crate) fn minutes(n: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(n)
}

pub(crate) fn tenant(id: &TenantId, name: &str) -> Tenant {
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
        stock_history: Default::default(),
        created_at: t0(),
        version: 1,
    }
}

pub(crate) fn change(key: &str) -> StockChange {
    StockChange {
        dedupe_key: key.to_string(),
        source: ChangeSource::Push,
        row: ChangeRow {
            store_id: "1".into(),
            product_id: format!("P-{key}").into(),
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

pub(crate) fn changes(prefix: &str, range: std::ops::Range<usize>) -> Vec<StockChange> {
    range.map(|i| change(&format!("{prefix}{i:04}"))).collect()
}

pub(crate) fn keys(changes: &[StockChange]) -> Vec<String> {
    changes.iter().map(|c| c.dedupe_key.clone()).collect()
}

pub(crate) fn claim_at(
    batch_id: &str,
    owner: &str,
    now: DateTime<Utc>,
    max_changes: usize,
) -> ClaimRequest {
    ClaimRequest {
        new_batch_id: batch_id.into(),
        owner: owner.into(),
        now,
        lease_until: now + Duration::minutes(5),
        max_changes,
    }
}

pub(crate) fn lines() -> Vec<UploadLine> {
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

pub(crate) fn built(lines: Vec<UploadLine>) -> BuiltContent {
    BuiltContent {
        change_count: lines.len(),
        lines,
        ..Default::default()
    }
}

pub(crate) fn mirror_entry(stock: i64, minute: u32) -> MirrorEntry {
    MirrorEntry {
        stock,
        as_of: NaiveDate::from_ymd_opt(2026, 11, 27).and_then(|d| d.and_hms_opt(10, minute, 0)),
    }
}

pub(crate) fn ne_tokens(access: &str) -> NeTokens {
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

pub(crate) fn order(
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

pub(crate) fn report(tenant: &TenantId, id: &str, at: DateTime<Utc>) -> OutboxReport {
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
pub(crate) fn assert_conflict<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// A missing item may be reported as not found or as a failed condition,
/// whichever the backend's conditional write gives; it must never succeed.
#[track_caller]
pub(crate) fn assert_refused<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected Conflict or NotFound, got {other:?}"),
    }
}

pub(crate) async fn batch_of<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
) -> UploadBatch {
    store
        .batch(tenant, batch_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("batch {batch_id} must exist"))
}

/// Appends one change of its own and claims it as `batch_id`.
pub(crate) async fn claimed<S: Storage>(
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
pub(crate) async fn built_batch<S: Storage>(
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
pub(crate) async fn plan<S: Storage>(
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

pub(crate) async fn step<S: Storage>(
    store: &S,
    tenant: &TenantId,
    batch_id: &str,
    from: BatchState,
    to: BatchState,
    at: DateTime<Utc>,
) -> UploadBatch {
    let mut t = plan(store, tenant, batch_id, from, to, at).await;
    if to == BatchState::Uploaded {
        t.que_id = Some(format!("que-{batch_id}").into());
    }
    if matches!(to, BatchState::Succeeded | BatchState::Failed) {
        t.outcome = Some(QueueOutcome::Succeeded);
    }
    store
        .transition(tenant, batch_id, &t)
        .await
        .unwrap_or_else(|e| panic!("{batch_id}: {from} → {to} must work: {e}"))
}
