//! The CSV uploader job (SPEC §2, §7): claim pending changes, complete them, apply
//! the rules, freeze the file, upload it exactly once.
//!
//! The order of steps is what makes retries safe:
//! 1. an upload whose outcome is unknown is resolved from NextEngine's queue
//!    before anything else is sent;
//! 2. a batch's lines are frozen (with the stock mirror it used) in one atomic
//!    step before the first upload attempt, so a retry sends the same bytes;
//! 3. `Uploading` is recorded before the call, so a crash during the call is
//!    recognised as "outcome unknown" by the next run.

use crate::Context;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sne_domain::batch::plan_batch;
use sne_domain::batch_state::BatchState;
use sne_domain::change::ChangeSource;
use sne_domain::complete::complete;
use sne_domain::history_mode::HistoryMode;
use sne_domain::mapping::ProductMap;
use sne_domain::report::{ParkReason, ParkedLine, UploadSection};
use sne_domain::tenant::{MappingMode, Tenant};
use sne_domain::time::to_jst;
use sne_domain::upload_batch::{LostUpload, find_lost_upload};
use sne_domain::upload_csv::render_upload_csv;
use sne_domain::{StockChange, TenantId};
use sne_ports::nextengine::NeError;
use sne_ports::smaregi::SmaregiError;
use sne_ports::{
    BuiltContent, ClaimRequest, OperatorDecision, PairSource, QueueCandidate, Transition,
    UploadBatch,
};
use std::collections::HashSet;

pub const HISTORY_CURSOR: &str = "smaregi_stock_history_id";
/// Every period stock history was read ([`HistoryMode`] as text).
pub const HISTORY_MODE: &str = "smaregi_stock_history_mode";

/// The tenant's stock-history periods. A failed read is an error, never "off":
/// taking it for "off" would count signal pushes as changes a second time.
pub async fn history_mode(ctx: &Context, tenant: &TenantId) -> Result<HistoryMode, NeError> {
    let text = ctx
        .storage
        .cursor(tenant, HISTORY_MODE)
        .await
        .map_err(|e| NeError::Store(e.to_string()))?;
    match text {
        None => Ok(HistoryMode::default()),
        Some(text) => HistoryMode::parse(&text).map_err(|e| NeError::Store(e.to_string())),
    }
}

/// Since when the tenant's changes come from Smaregi's `StockHistory`; `None`
/// when they do not (or the mode cannot be read: the screens then recommend it).
pub async fn history_mode_since(ctx: &Context, tenant: &Tenant) -> Option<DateTime<Utc>> {
    tenant.smaregi_api.as_ref()?;
    history_mode(ctx, &tenant.id).await.ok()?.on_since()
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryModeError {
    #[error("スマレジAPIの契約IDとアクセストークンが設定されていません")]
    NoCredentials,
    #[error(
        "スマレジの在庫変動履歴を読めません。スマレジAPI設定で「在庫情報参照」を「利用する」にしてください: {0}"
    )]
    Smaregi(#[from] sne_ports::smaregi::SmaregiError),
    #[error(
        "受注数取り込みが有効な間は在庫変動履歴の読み取りを停止できません。先に受注数取り込みを停止してください"
    )]
    NeededByOrderImport,
    #[error("在庫変動履歴の読み取り位置がありません。読み取りを設定し直してください")]
    NoCursor,
    #[error(transparent)]
    Store(#[from] sne_ports::StoreError),
}

async fn put_cursor(
    ctx: &Context,
    tenant: &TenantId,
    name: &str,
    value: &str,
) -> Result<(), sne_ports::StoreError> {
    for _ in 0..5 {
        let current = ctx.storage.cursor(tenant, name).await?;
        if ctx
            .storage
            .set_cursor(tenant, name, current.as_deref(), value)
            .await?
        {
            return Ok(());
        }
    }
    Err(sne_ports::StoreError::Conflict(format!(
        "cursor {name} kept changing"
    )))
}

/// Switches reading Smaregi's `StockHistory` on or off (SPEC §3's preferred path).
///
/// Switching on reads the newest history id first and counts every change after
/// it from history; pushes received from this moment on are only signals, pushes
/// received before it are still completed as pushes. Switching off first reads
/// history up to now, since the pushes of those changes were only signals. A
/// change made in the seconds around a switch whose push arrives late could fall
/// on the wrong side, which is why operators switch at a quiet moment (README).
pub async fn set_history_mode(
    ctx: &Context,
    tenant: &Tenant,
    on: bool,
) -> Result<String, HistoryModeError> {
    let creds = tenant.smaregi_api.as_ref();
    let mode = history_mode(ctx, &tenant.id)
        .await
        .map_err(|e| HistoryModeError::Store(sne_ports::StoreError::Unavailable(e.to_string())))?;
    if !on {
        if tenant.order_import.enabled && mode.on_since().is_some() {
            return Err(HistoryModeError::NeededByOrderImport);
        }
        if mode.on_since().is_some()
            && let Some(creds) = creds
        {
            collect_history(ctx, tenant, creds).await?;
        }
        let off = mode.switched_off(ctx.clock.now());
        put_cursor(ctx, &tenant.id, HISTORY_MODE, &off.to_text()).await?;
        return Ok("在庫変動履歴の読み取りを停止しました".into());
    }
    let creds = creds.ok_or(HistoryModeError::NoCredentials)?;
    if mode.on_since().is_some() {
        return Ok("在庫変動履歴の読み取りはすでに有効です".into());
    }
    let since = ctx.clock.now();
    let latest = ctx
        .smaregi
        .latest_stock_history_id(creds)
        .await?
        .unwrap_or(0);
    put_cursor(ctx, &tenant.id, HISTORY_CURSOR, &latest.to_string()).await?;
    put_cursor(
        ctx,
        &tenant.id,
        HISTORY_MODE,
        &mode.switched_on(since).to_text(),
    )
    .await?;
    Ok(format!(
        "在庫変動履歴の読み取りを開始しました(履歴ID {latest} より後の変動を通知します)"
    ))
}

/// What one upload run did, for the report.
#[derive(Debug, Clone)]
pub struct UploadRun {
    /// The first file's section (the report's 「アップロード」).
    pub section: UploadSection,
    /// The batches uploaded in this run, oldest first; their CSVs go with the report.
    pub uploaded_batches: Vec<UploadBatch>,
    pub notices: Vec<String>,
}

pub fn csv_key(tenant: &TenantId, batch_id: &str, at: DateTime<Utc>) -> String {
    let local = to_jst(at);
    format!(
        "tenants/{}/uploads/{}/{batch_id}.csv",
        tenant,
        local.format("%Y/%m/%d")
    )
}

pub fn csv_file_name(batch: &UploadBatch) -> String {
    format!(
        "zaiko_{}_{}.csv",
        to_jst(batch.created_at).format("%Y%m%d%H%M%S"),
        batch.batch_id
    )
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Uploads what is waiting. Files hold at most `max_rows_per_file` rows, so a
/// backlog becomes several frozen files, each its own batch through the same
/// state machine; after a file went up the run takes the next, up to
/// `max_files_per_run`, and the report names every one.
pub async fn run_upload(ctx: &Context, tenant: &Tenant, run_id: &str) -> UploadRun {
    let mut notices = Vec::new();
    let mut first = None;
    let mut uploaded_batches = Vec::new();
    for _ in 0..ctx.config.max_files_per_run.max(1) {
        let (section, uploaded) = match upload_steps(ctx, tenant, run_id, &mut notices).await {
            Ok(done) => done,
            Err(section) => (section, None),
        };
        let went_up = matches!(section, UploadSection::Uploaded { .. });
        match (&first, &section, &uploaded) {
            (None, _, _) => first = Some(section),
            (
                Some(_),
                UploadSection::Uploaded {
                    que_id, products, ..
                },
                Some(batch),
            ) => notices.push(format!(
                "続けてファイル {} もアップロードしました(キューID {que_id}、{products} 商品)",
                csv_file_name(batch)
            )),
            // A later file that did not go up waits for the next run, which
            // reports it; this run's section stays the first file's.
            (Some(_), _, _) => {}
        }
        uploaded_batches.extend(uploaded);
        let more = went_up
            && ctx
                .storage
                .pending_changes(&tenant.id)
                .await
                .is_ok_and(|n| n > 0);
        if !more {
            break;
        }
    }
    // Each file's steps repeat the reminders (held uploads, say): tell them once.
    let mut seen = HashSet::new();
    notices.retain(|n| seen.insert(n.clone()));
    UploadRun {
        section: first.unwrap_or(UploadSection::Nothing { parked: vec![] }),
        uploaded_batches,
        notices,
    }
}

async fn upload_steps(
    ctx: &Context,
    tenant: &Tenant,
    run_id: &str,
    notices: &mut Vec<String>,
) -> Result<(UploadSection, Option<UploadBatch>), UploadSection> {
    let store = &ctx.storage;
    let failed = |batch_id: Option<String>, e: &dyn std::fmt::Display| UploadSection::Failed {
        batch_id,
        reason: e.to_string(),
    };

    // 1. Uploads with unknown outcome come first: nothing new goes up until
    //    NextEngine's queue tells us whether they arrived, or a person decides.
    let uploading = store
        .batches_in_state(&tenant.id, BatchState::Uploading)
        .await
        .map_err(|e| failed(None, &e))?;
    for batch in uploading {
        match resolve_unknown_outcome(ctx, tenant, &batch).await? {
            Resolution::Adopted(adopted) => {
                return Ok((uploaded_section(ctx, &adopted).await, Some(*adopted)));
            }
            Resolution::Wait(section) => return Ok((section, None)),
            // Deltas commute: the held file waits for its person, later files go on.
            Resolution::Held(notice) => notices.push(notice),
            Resolution::SendAgain => {}
        }
    }
    let held = store
        .batches_in_state(&tenant.id, BatchState::NeedsAttention)
        .await
        .map_err(|e| failed(None, &e))?;
    if !held.is_empty() {
        notices.push(format!(
            "要確認のアップロードが {} 件あります。管理画面の「要確認のアップロード」で「アップロード済みとして扱う」か「再アップロードする」を選んでください(それ以降の在庫変動は通常どおり通知しています)",
            held.len()
        ));
    }

    // 2. A frozen file left over from an earlier run goes up before any new one.
    let built = store
        .batches_in_state(&tenant.id, BatchState::Built)
        .await
        .map_err(|e| failed(None, &e))?;
    if let Some(batch) = built.into_iter().next() {
        return upload_batch(ctx, tenant, batch).await;
    }

    // 3. New changes: read Smaregi's history when the tenant chose to, then claim
    //    and build. The mode decides which pushes are signals: unreadable, no build.
    let mode = history_mode(ctx, &tenant.id)
        .await
        .map_err(|e| failed(None, &e))?;
    if let (Some(_), Some(creds)) = (mode.on_since(), &tenant.smaregi_api)
        && let Err(e) = collect_history(ctx, tenant, creds).await
    {
        notices.push(match e {
            // Refused credentials or a function switched off: retrying alone never
            // helps, the operator has to look (reference: smaregi-api.md, Update
            // "Error codes" — only code 14 is attested).
            HistoryModeError::Smaregi(SmaregiError::Auth { .. }) => format!(
                "スマレジが在庫変動履歴の読み取りを受け付けませんでした。スマレジ管理画面 設定 > システム連携 > スマレジAPI設定 で契約ID・アクセストークンと、機能設定の「在庫情報参照」が「利用する」になっていることを確認してください。読み取れるまで在庫の変動は通知されません: {e}"
            ),
            e => format!("スマレジの在庫変動履歴を読めませんでした(次回再試行します): {e}"),
        });
    }
    let now = ctx.clock.now();
    let claim = ClaimRequest {
        new_batch_id: new_id("b_"),
        owner: run_id.to_string(),
        now,
        lease_until: now
            + ChronoDuration::from_std(ctx.config.build_lease)
                .unwrap_or(ChronoDuration::minutes(5)),
        // Every file row is a goods code of at least one change, so fewer
        // changes than the row cap keep the file within it.
        max_changes: ctx
            .config
            .max_changes_per_batch
            .min(ctx.config.max_rows_per_file)
            .max(1),
    };
    let Some(claimed) = store
        .claim_batch(&tenant.id, &claim)
        .await
        .map_err(|e| failed(None, &e))?
    else {
        return Ok((UploadSection::Nothing { parked: vec![] }, None));
    };
    let batch_id = claimed.batch_id.clone();
    let content =
        match build_content(ctx, tenant, &batch_id, &claimed.changes, &mode, notices).await {
            Ok(content) => content,
            Err(e) => {
                // Hand the batch back at once (same owner, lease ending now) so the next
                // run rebuilds it instead of waiting for the lease to run out.
                let release = ClaimRequest {
                    lease_until: ctx.clock.now(),
                    ..claim.clone()
                };
                let _ = store.claim_batch(&tenant.id, &release).await;
                return Err(section_for_ne_error(Some(batch_id), &e));
            }
        };
    let batch = store
        .finish_build(&tenant.id, &batch_id, run_id, &content)
        .await
        .map_err(|e| failed(Some(batch_id.clone()), &e))?;
    if batch.state == BatchState::Empty {
        return Ok((
            UploadSection::Nothing {
                parked: batch.parked.clone(),
            },
            None,
        ));
    }
    upload_batch(ctx, tenant, batch).await
}

/// Completes, maps and checks the claimed changes; returns what gets frozen.
async fn build_content(
    ctx: &Context,
    tenant: &Tenant,
    batch_id: &str,
    changes: &[StockChange],
    mode: &HistoryMode,
    notices: &mut Vec<String>,
) -> Result<BuiltContent, NeError> {
    let store_err = |e: sne_ports::StoreError| NeError::Store(e.to_string());
    // Pushes received while history was read are only signals: the history rows
    // carry every change exactly once.
    let rows: Vec<_> = changes
        .iter()
        .filter(|c| !mode.is_signal(c))
        .map(|c| c.row.clone())
        .collect();
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.store_id.clone(), r.product_id.clone()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mirror = ctx
        .storage
        .mirror(&tenant.id, &keys)
        .await
        .map_err(store_err)?;
    let completion = complete(&rows, &mirror);
    let map = product_map(ctx, tenant, &completion.changes).await?;
    let mut plan = plan_batch(
        tenant.stock_master,
        tenant.counted_stores.as_deref(),
        &map,
        &completion.changes,
    );
    let codes: Vec<String> = plan.lines.iter().map(|l| l.goods_code.clone()).collect();
    let known = if codes.is_empty() {
        HashSet::new()
    } else {
        ctx.nextengine.existing_goods(&tenant.id, &codes).await?
    };
    let (lines, unknown): (Vec<_>, Vec<_>) = plan
        .lines
        .into_iter()
        .partition(|l| known.contains(&l.goods_code));
    plan.parked.extend(unknown.into_iter().map(|l| ParkedLine {
        goods_code: l.goods_code,
        delta: l.delta,
        reason: ParkReason::NotRegistered,
    }));
    let mut notes: Vec<String> = completion.notes.iter().map(|n| n.describe()).collect();
    if plan.changes_of_other_stores > 0 {
        notes.push(format!(
            "連携対象外の店舗の在庫変動 {} 件は通知していません",
            plan.changes_of_other_stores
        ));
    }
    notices.extend(notes.iter().cloned());
    Ok(BuiltContent {
        csv_key: (!lines.is_empty()).then(|| csv_key(&tenant.id, batch_id, ctx.clock.now())),
        lines,
        parked: plan.parked,
        notes,
        change_count: changes.len(),
        mirror_updates: completion.mirror_updates,
        at: ctx.clock.now(),
    })
}

async fn product_map(
    ctx: &Context,
    tenant: &Tenant,
    changes: &[sne_domain::change::CompletedChange],
) -> Result<ProductMap, NeError> {
    let store_err = |e: sne_ports::StoreError| NeError::Store(e.to_string());
    match tenant.mapping_mode {
        MappingMode::ProductId => Ok(ProductMap::Identity),
        MappingMode::Table => {
            let pairs = ctx
                .storage
                .product_pairs(&tenant.id, PairSource::Table)
                .await
                .map_err(store_err)?;
            Ok(ProductMap::for_mode(MappingMode::Table, pairs))
        }
        MappingMode::ProductCode => {
            let mut pairs = ctx
                .storage
                .product_pairs(&tenant.id, PairSource::ProductCode)
                .await
                .map_err(store_err)?;
            let cached: HashSet<&str> = pairs.iter().map(|(p, _)| p.as_str()).collect();
            let missing: Vec<String> = changes
                .iter()
                .map(|c| c.product_id.clone())
                .filter(|p| !cached.contains(p.as_str()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if let (false, Some(creds)) = (missing.is_empty(), &tenant.smaregi_api) {
                match ctx.smaregi.product_codes(creds, &missing).await {
                    Ok(found) => {
                        ctx.storage
                            .put_product_pairs(&tenant.id, PairSource::ProductCode, &found, false)
                            .await
                            .map_err(store_err)?;
                        pairs.extend(found);
                    }
                    // Unmapped products are parked and reported; the rest still goes up.
                    Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "product_ref failed"),
                }
            }
            Ok(ProductMap::for_mode(MappingMode::ProductCode, pairs))
        }
    }
}

/// Appends Smaregi `StockHistory` rows newer than the cursor to the ledger. The
/// dedupe key is the history id, so reading a row twice changes nothing and the
/// cursor may lag safely behind the ledger.
async fn collect_history(
    ctx: &Context,
    tenant: &Tenant,
    creds: &sne_domain::tenant::SmaregiCredentials,
) -> Result<(), HistoryModeError> {
    let cursor = ctx.storage.cursor(&tenant.id, HISTORY_CURSOR).await?;
    let Some(after_id) = cursor.as_deref().and_then(|c| c.parse::<u64>().ok()) else {
        return Err(HistoryModeError::NoCursor);
    };
    let rows = ctx
        .smaregi
        .stock_history_after(creds, after_id, ctx.config.max_history_rows)
        .await?;
    let Some(max_id) = rows.iter().filter_map(|r| r.history_id).max() else {
        return Ok(());
    };
    let received_at = ctx.clock.now();
    let changes: Vec<StockChange> = rows
        .into_iter()
        .map(|row| StockChange {
            dedupe_key: format!("h:{}", row.history_id.unwrap_or_default()),
            source: ChangeSource::History,
            row,
            received_at,
        })
        .collect();
    ctx.storage.append_changes(&tenant.id, &changes).await?;
    // Losing this race to another reader only means reading some rows again.
    ctx.storage
        .set_cursor(
            &tenant.id,
            HISTORY_CURSOR,
            cursor.as_deref(),
            &max_id.to_string(),
        )
        .await?;
    Ok(())
}

async fn upload_batch(
    ctx: &Context,
    tenant: &Tenant,
    batch: UploadBatch,
) -> Result<(UploadSection, Option<UploadBatch>), UploadSection> {
    let store = &ctx.storage;
    let batch_id = batch.batch_id.clone();
    let failed = |e: &dyn std::fmt::Display| UploadSection::Failed {
        batch_id: Some(batch_id.clone()),
        reason: e.to_string(),
    };
    let csv = render_upload_csv(&batch.lines);
    // The blob is derived from the frozen lines, so writing it again is harmless.
    if let Some(key) = &batch.csv_key {
        store_blob(ctx, key, &csv).await.map_err(|e| failed(&e))?;
    }
    let uploading = store
        .transition(
            &tenant.id,
            &batch_id,
            &Transition::of(&batch, BatchState::Uploading, ctx.clock.now()),
        )
        .await
        .map_err(|e| failed(&e))?;
    // Bounded well below the grace, so no attempt is still in flight when another
    // run concludes from the queue list that NextEngine never got the file.
    let sent = tokio::time::timeout(
        ctx.config.upload_deadline(),
        ctx.nextengine.upload_stock_csv(&tenant.id, &csv),
    )
    .await
    .unwrap_or_else(|_| {
        Err(NeError::Transport(
            "no answer within the upload deadline".into(),
        ))
    });
    match sent {
        Ok(que_id) => {
            let uploaded = record_que_id(ctx, tenant, &uploading, &que_id, None)
                .await
                .map_err(|e| failed(&e))?;
            Ok((uploaded_section(ctx, &uploaded).await, Some(uploaded)))
        }
        Err(e) if e.outcome_unknown() => Ok((
            UploadSection::Unresolved {
                batch_id,
                reason: format!(
                    "ネクストエンジンからの応答がありませんでした({e})。次回の実行でキューを確認してから再送します"
                ),
            },
            None,
        )),
        Err(e) => {
            // An error envelope proves nothing was queued: the frozen file waits for
            // the next run.
            let mut back = Transition::of(&uploading, BatchState::Built, ctx.clock.now());
            back.error = Some(e.to_string());
            store
                .transition(&tenant.id, &batch_id, &back)
                .await
                .map_err(|se| failed(&se))?;
            Err(section_for_ne_error(Some(batch_id), &e))
        }
    }
}

async fn record_que_id(
    ctx: &Context,
    tenant: &Tenant,
    batch: &UploadBatch,
    que_id: &str,
    decision: Option<OperatorDecision>,
) -> Result<UploadBatch, sne_ports::StoreError> {
    let mut t = Transition::of(batch, BatchState::Uploaded, ctx.clock.now());
    t.que_id = Some(que_id.to_string());
    t.decision = decision;
    ctx.storage
        .transition(&tenant.id, &batch.batch_id, &t)
        .await
}

async fn store_blob(ctx: &Context, key: &str, csv: &[u8]) -> Result<(), sne_ports::StoreError> {
    if ctx.blobs.get_blob(key).await?.as_deref() == Some(csv) {
        return Ok(());
    }
    ctx.blobs.put_blob(key, csv, "text/csv").await
}

/// The report's CSV link points at the admin screen's download route, never at
/// the blob store: an S3 link presigned by a Lambda dies with the role's temporary
/// credentials (hours), while the route mints a short-lived link per click after
/// login. The link carries no secret; without a public URL there is no link (the
/// CSV is attached to the mail anyway).
async fn uploaded_section(ctx: &Context, batch: &UploadBatch) -> UploadSection {
    let public_url = ctx.config.public_url.trim_end_matches('/');
    let download_url = (batch.csv_key.is_some() && !public_url.is_empty())
        .then(|| format!("{public_url}/history/batches/{}/csv", batch.batch_id));
    UploadSection::Uploaded {
        batch_id: batch.batch_id.clone(),
        que_id: batch.que_id.clone().unwrap_or_default(),
        products: batch.lines.len(),
        changes: batch.change_count,
        csv_file_name: csv_file_name(batch),
        download_url,
        parked: batch.parked.clone(),
    }
}

/// What became of an upload whose answer never arrived.
enum Resolution {
    /// Found in NextEngine's queue: it is `Uploaded` now.
    Adopted(Box<UploadBatch>),
    /// Too early to tell; nothing else goes up in this run.
    Wait(UploadSection),
    /// Ambiguous: held for a person, with this notice for the report.
    Held(String),
    /// Not in the queue after the grace: back to `Built`, sent again.
    SendAgain,
}

/// An upload call whose answer never arrived: find it in NextEngine's queue.
async fn resolve_unknown_outcome(
    ctx: &Context,
    tenant: &Tenant,
    batch: &UploadBatch,
) -> Result<Resolution, UploadSection> {
    let store = &ctx.storage;
    let store_failed = |e: sne_ports::StoreError| UploadSection::Failed {
        batch_id: Some(batch.batch_id.clone()),
        reason: e.to_string(),
    };
    // The latest attempt's start: an earlier attempt's queue would have shown up
    // before that attempt was made.
    let started = batch.upload_started_at.unwrap_or(batch.updated_at);
    // Queue dates have second precision and NextEngine's clock is not ours.
    let since = to_jst(started - ChronoDuration::minutes(2));
    let queues = ctx
        .nextengine
        .goods_upload_queues_since(&tenant.id, since)
        .await
        .map_err(|e| section_for_ne_error(Some(batch.batch_id.clone()), &e))?;
    let known: HashSet<String> = store
        .known_que_ids(&tenant.id)
        .await
        .map_err(store_failed)?
        .into_iter()
        .collect();
    let candidates: Vec<QueueCandidate> = queues
        .into_iter()
        .filter(|q| !known.contains(&q.que_id))
        .map(|q| QueueCandidate {
            created_at: q
                .created_at
                .map(|t| t.format(sne_domain::time::API_FORMAT).to_string())
                .unwrap_or_default(),
            que_id: q.que_id,
            upload_name: q.upload_name,
            client_file_name: q.client_file_name,
        })
        .collect();
    let waited = (ctx.clock.now() - started).to_std().unwrap_or_default();
    match find_lost_upload(candidates) {
        LostUpload::Adopt(queue) => {
            let adopted = record_que_id(ctx, tenant, batch, &queue.que_id, None)
                .await
                .map_err(store_failed)?;
            tracing::info!(tenant = %tenant.id, batch = %batch.batch_id, que_id = %queue.que_id,
                "adopted the queue of an upload whose answer was lost");
            Ok(Resolution::Adopted(Box::new(adopted)))
        }
        // A request still in flight could yet be queued, or be the one found.
        _ if waited < ctx.config.unknown_outcome_grace => {
            Ok(Resolution::Wait(UploadSection::Unresolved {
                batch_id: batch.batch_id.clone(),
                reason: "前回のアップロードの結果をネクストエンジンのキューで確認中です".into(),
            }))
        }
        LostUpload::NotFound => {
            let mut back = Transition::of(batch, BatchState::Built, ctx.clock.now());
            back.error = Some("ネクストエンジンのキューに見つからないため再送します".into());
            store
                .transition(&tenant.id, &batch.batch_id, &back)
                .await
                .map_err(store_failed)?;
            Ok(Resolution::SendAgain)
        }
        LostUpload::Ambiguous(candidates) => {
            let ids: Vec<_> = candidates.iter().map(|q| q.que_id.clone()).collect();
            let mut t = Transition::of(batch, BatchState::NeedsAttention, ctx.clock.now());
            t.error = Some(format!("候補のキュー: {}", ids.join(",")));
            t.candidates = candidates;
            store
                .transition(&tenant.id, &batch.batch_id, &t)
                .await
                .map_err(store_failed)?;
            Ok(Resolution::Held(format!(
                "ファイル {} のアップロード結果を特定できません(候補のキューID: {})。二重計上を避けるため自動では再送せず、要確認として保留しました。管理画面の「要確認のアップロード」で確認してください",
                batch.batch_id,
                ids.join(",")
            )))
        }
    }
}

pub fn section_for_ne_error(batch_id: Option<String>, e: &NeError) -> UploadSection {
    match (e, batch_id) {
        (NeError::Token { .. }, Some(batch_id)) => UploadSection::TokenError {
            batch_id,
            detail: e.to_string(),
        },
        (NeError::Token { .. }, None) => UploadSection::TokenError {
            batch_id: String::new(),
            detail: e.to_string(),
        },
        (NeError::Suspended { .. }, batch_id) => UploadSection::Suspended {
            batch_id,
            detail: e.to_string(),
        },
        (_, batch_id) => UploadSection::Failed {
            batch_id,
            reason: e.to_string(),
        },
    }
}
