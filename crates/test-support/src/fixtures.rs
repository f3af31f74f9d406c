//! Batches in the states operators act on (a frozen file, a held upload, a failed
//! file), made through the store's own steps, for the tests of the admin screen
//! and the CLI.

use chrono::{DateTime, Duration, Utc};
use sne_domain::batch_state::BatchState;
use sne_domain::change::{ChangeKind, ChangeRow, ChangeSource};
use sne_domain::report::QueueOutcome;
use sne_domain::upload_csv::UploadLine;
use sne_domain::{StockChange, TenantId};
use sne_ports::{BuiltContent, ClaimRequest, QueueCandidate, Storage, Transition, UploadBatch};

/// A frozen file of `lines` made through the store's own steps (one history
/// change per line, claimed with whatever is pending, frozen), for the tests of
/// what operators do with files (admin screen, CLI).
pub async fn frozen_file(
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
            row: ChangeRow {
                store_id: "1".into(),
                // The identity mapping: the goods code is the product id.
                product_id: line.goods_code.as_str().into(),
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
                oldest_change_at: None,
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
        t.que_id = Some(format!("que-{batch_id}").into());
        t.outcome = Some(QueueOutcome::Failed {
            row_errors: vec![],
            raw_message: "2行目: 仕入先コードは必須です。".into(),
            rows: rows.clone(),
        });
        batch = store.transition(tenant, batch_id, &t).await.unwrap();
    }
    batch
}
