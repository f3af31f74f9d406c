//! Upload batches: the state machine as compare-and-set on a revision, the
//! frozen file in the batch item (or part items), and the per-tenant BUILDING
//! lock that `claim_batch` takes and `finish_build` / `transition` release.

use super::*;
use async_trait::async_trait;
use serde::Deserialize;
use sne_domain::batch_state::BatchState;
use sne_domain::complete::MirrorEntry;
use sne_domain::report::ParkedLine;
use sne_domain::upload_csv::UploadLine;
use sne_domain::{ProductId, QueId, StoreId};
use sne_ports::{
    BatchRuleError, BatchStore, BuiltContent, FollowUpRequest, Transition, UploadBatch,
};

pub(crate) const LOCK_SK: &str = "BUILDING";
pub(crate) const PHASE_BUILDING: &str = "building";
/// The batch is no longer Building but its staged mirror is not applied yet.
pub(crate) const PHASE_APPLYING: &str = "applying";

/// What `finish_build` freezes, kept apart from the small batch document so
/// state changes never rewrite (or risk truncating) the file's lines.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Frozen {
    lines: Vec<UploadLine>,
    parked: Vec<ParkedLine>,
    notes: Vec<String>,
}

pub(crate) type StagedMirror = Vec<(StoreId, ProductId, MirrorEntry)>;

pub(crate) struct StoredBatch {
    pub batch: UploadBatch,
    pub item: Item,
    pub rev: i64,
}

pub(crate) fn batch_sk(batch_id: &str) -> String {
    format!("BATCH#{}", esc(batch_id))
}

fn frozen_prefix(batch_id: &str) -> String {
    format!("{}#F#", batch_sk(batch_id))
}

fn mirror_prefix(batch_id: &str) -> String {
    format!("{}#M#", batch_sk(batch_id))
}

pub(crate) fn state_sk(state: BatchState, batch: &UploadBatch) -> String {
    format!(
        "BSTATE#{}#{}#{}",
        state.as_str(),
        time_key(batch.created_at),
        esc(&batch.batch_id)
    )
}

fn time_sk(batch: &UploadBatch) -> String {
    format!(
        "BTIME#{}#{}",
        time_key(batch.created_at),
        esc(&batch.batch_id)
    )
}

pub(crate) fn mirror_sk(store_id: &str, product_id: &str) -> String {
    format!("MIRROR#{}#{}", esc(store_id), esc(product_id))
}

impl DynamoStore {
    /// The batch item for `batch` at revision `rev`, keeping whatever frozen or
    /// staged content `base` already carries.
    pub(crate) fn batch_item(
        &self,
        base: Option<&Item>,
        batch: &UploadBatch,
        rev: i64,
    ) -> StoreResult<Item> {
        let mut item = base
            .cloned()
            .unwrap_or_else(|| key(&tenant_pk(&batch.tenant_id), &batch_sk(&batch.batch_id)));
        let mut doc = batch.clone();
        doc.lines.clear();
        doc.parked.clear();
        doc.notes.clear();
        item.insert("body".into(), s(to_json(&doc)?));
        item.insert("st".into(), s(batch.state.as_str()));
        item.insert("rev".into(), n(rev));
        match &batch.owner {
            Some(owner) => item.insert("owner".into(), s(owner)),
            None => item.remove("owner"),
        };
        Ok(item)
    }

    pub(crate) fn report_wait_item(&self, batch: &UploadBatch) -> Item {
        let mut item = key(&tenant_pk(&batch.tenant_id), &report_wait_sk(batch));
        item.insert("batch_id".into(), s(&batch.batch_id));
        item
    }

    /// A new batch's item and the index items it needs next to it.
    pub(crate) fn new_batch_writes(
        &self,
        batch: &UploadBatch,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        Ok(self.new_batch_writes_of(batch, self.batch_item(None, batch, 1)?))
    }

    fn new_batch_writes_of(&self, batch: &UploadBatch, item: Item) -> Vec<TransactWriteItem> {
        let pk = tenant_pk(&batch.tenant_id);
        let mut by_time = key(&pk, &time_sk(batch));
        by_time.insert("batch_id".into(), s(&batch.batch_id));
        let mut by_state = key(&pk, &state_sk(batch.state, batch));
        by_state.insert("batch_id".into(), s(&batch.batch_id));
        vec![
            self.put(item, Some(Cond::absent())),
            self.put(by_time, None),
            self.put(by_state, None),
        ]
    }

    async fn batch_from_item(&self, item: Item) -> StoreResult<StoredBatch> {
        let mut batch: UploadBatch = body(&item)?;
        let frozen: Frozen = self
            .get_large(&item, "frozen", &frozen_prefix(&batch.batch_id))
            .await?;
        batch.lines = frozen.lines;
        batch.parked = frozen.parked;
        batch.notes = frozen.notes;
        let rev = attr_n(&item, "rev")?;
        Ok(StoredBatch { batch, item, rev })
    }

    pub(crate) async fn load_batch(
        &self,
        tenant: &TenantId,
        batch_id: &str,
    ) -> StoreResult<Option<StoredBatch>> {
        match self.get(&tenant_pk(tenant), &batch_sk(batch_id)).await? {
            Some(item) => Ok(Some(self.batch_from_item(item).await?)),
            None => Ok(None),
        }
    }

    /// Batches named by index items, in the index's order.
    async fn batches_from_index(
        &self,
        tenant: &TenantId,
        index: Vec<Item>,
    ) -> StoreResult<Vec<UploadBatch>> {
        let pk = tenant_pk(tenant);
        let keys = index
            .iter()
            .map(|i| Ok((pk.clone(), batch_sk(attr_s(i, "batch_id")?))))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut found = self.batch_get(&keys).await?;
        let mut batches = Vec::with_capacity(keys.len());
        for key in &keys {
            if let Some(item) = found.remove(key) {
                batches.push(self.batch_from_item(item).await?.batch);
            }
        }
        Ok(batches)
    }

    /// Applies the mirror staged in a batch while the lock says `applying`. Each
    /// chunk re-checks the lock, so once anyone released it (after applying the
    /// same values) a slow applier can no longer overwrite newer mirror values.
    pub(crate) async fn apply_staged_mirror(
        &self,
        tenant: &TenantId,
        batch_id: &str,
    ) -> StoreResult<()> {
        let pk = tenant_pk(tenant);
        let held = Cond::new("#b = :b AND #p = :p")
            .name("#b", "batch_id")
            .name("#p", "phase")
            .value(":b", s(batch_id))
            .value(":p", s(PHASE_APPLYING));
        if let Some(item) = self.get(&pk, &batch_sk(batch_id)).await? {
            let staged: StagedMirror = self
                .get_large(&item, "mirror", &mirror_prefix(batch_id))
                .await?;
            let guard = self.check(&pk, LOCK_SK, held.clone());
            for chunk in staged.chunks(self.tx_limit - 1) {
                let mut tx = vec![self.check_item(guard.clone())];
                for (store_id, product_id, entry) in chunk {
                    let mut m = key(&pk, &mirror_sk(store_id, product_id));
                    m.insert("body".into(), s(to_json(entry)?));
                    tx.push(self.put(m, None));
                }
                if let Tx::Cancelled(_) = self.transact(tx).await? {
                    return Ok(());
                }
            }
        }
        self.transact(vec![self.delete(&pk, LOCK_SK, Some(held))])
            .await
            .map(|_| ())
    }
}

fn conflict(batch_id: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Conflict(format!("batch {batch_id}: {why}"))
}

/// A step the batch rules refuse is the caller's conflict: it read an older record.
pub(crate) fn rule(e: BatchRuleError) -> StoreError {
    StoreError::Conflict(e.to_string())
}

/// Sparse index of finished batches no report has told yet.
pub(crate) fn report_wait_sk(batch: &UploadBatch) -> String {
    format!(
        "BREPORT#{}#{}",
        time_key(batch.created_at),
        esc(&batch.batch_id)
    )
}

#[async_trait]
impl BatchStore for DynamoStore {
    async fn finish_build(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        owner: &str,
        content: &BuiltContent,
    ) -> StoreResult<UploadBatch> {
        let pk = tenant_pk(tenant);
        let Some(stored) = self.load_batch(tenant, batch_id).await? else {
            return Err(StoreError::NotFound(format!("batch {batch_id}")));
        };
        let batch = stored.batch.freeze(owner, content).map_err(rule)?;

        // Parts are written first, each guarded by the revision just read: a
        // takeover bumps it, so a builder that lost the batch writes nothing more.
        let guard = self.check(&pk, &batch_sk(batch_id), Cond::rev(stored.rev));
        let frozen = Frozen {
            lines: content.lines.clone(),
            parked: content.parked.clone(),
            notes: content.notes.clone(),
        };
        let frozen = self
            .put_large(&pk, &frozen_prefix(batch_id), &frozen, &guard)
            .await?
            .map_err(|()| conflict(batch_id, "taken over while finishing"))?;
        let mut staged: StagedMirror = content
            .mirror_updates
            .iter()
            .map(|(key, entry)| (key.store_id.clone(), key.product_id.clone(), entry.clone()))
            .collect();
        staged.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let has_mirror = !staged.is_empty();
        let staged = self
            .put_large(&pk, &mirror_prefix(batch_id), &staged, &guard)
            .await?
            .map_err(|()| conflict(batch_id, "taken over while finishing"))?;

        let mut item = self.batch_item(Some(&stored.item), &batch, stored.rev + 1)?;
        frozen.store(&mut item, "frozen");
        staged.store(&mut item, "mirror");

        let mut by_state = key(&pk, &state_sk(batch.state, &batch));
        by_state.insert("batch_id".into(), s(batch_id));
        let ours = Cond::new("#b = :b AND #o = :o")
            .name("#b", "batch_id")
            .name("#o", "owner")
            .value(":b", s(batch_id))
            .value(":o", s(owner));
        // The state change is the last write. The mirror is applied after it,
        // while the lock (now `applying`) keeps the next claim from building on
        // a mirror that is behind: see the README for why not before.
        let lock_write = if has_mirror {
            let mut lock = key(&pk, LOCK_SK);
            lock.insert("batch_id".into(), s(batch_id));
            lock.insert("owner".into(), s(owner));
            lock.insert("phase".into(), s(PHASE_APPLYING));
            self.put(lock, Some(ours))
        } else {
            self.delete(&pk, LOCK_SK, Some(ours))
        };
        let tx = vec![
            self.put(item, Some(Cond::rev(stored.rev))),
            self.delete(&pk, &state_sk(BatchState::Building, &batch), None),
            self.put(by_state, None),
            lock_write,
        ];
        if let Tx::Cancelled(_) = self.transact(tx).await? {
            return Err(conflict(batch_id, "changed while finishing"));
        }
        if has_mirror {
            self.apply_staged_mirror(tenant, batch_id).await?;
        }
        Ok(batch)
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        t: &Transition,
    ) -> StoreResult<UploadBatch> {
        let pk = tenant_pk(tenant);
        let write_id = new_write_id();
        let mut round = 0;
        loop {
            let Some(stored) = self.load_batch(tenant, batch_id).await? else {
                return Err(StoreError::NotFound(format!("batch {batch_id}")));
            };
            if round > 0 && written_by(&stored.item, &write_id) {
                return Ok(stored.batch);
            }
            let batch = stored.batch.apply(t).map_err(rule)?;

            let mut item = self.batch_item(Some(&stored.item), &batch, stored.rev + 1)?;
            item.insert(WRITE_ID.into(), s(&write_id));
            let mut by_state = key(&pk, &state_sk(batch.state, &batch));
            by_state.insert("batch_id".into(), s(batch_id));
            let mut tx = vec![
                self.put(item, Some(Cond::rev(stored.rev))),
                self.delete(&pk, &state_sk(t.from, &batch), None),
                self.put(by_state, None),
            ];
            if batch.awaits_report() {
                tx.push(self.put(self.report_wait_item(&batch), None));
            }
            if let (BatchState::Uploaded, Some(que_id)) = (t.to, &batch.que_id) {
                let mut que = key(&pk, &format!("QUE#{}#{}", esc(que_id), esc(batch_id)));
                que.insert("que_id".into(), s(que_id.as_str()));
                tx.push(self.put(que, None));
            }
            if t.from == BatchState::Building {
                tx.push(
                    self.delete(
                        &pk,
                        LOCK_SK,
                        Some(
                            Cond::new("attribute_not_exists(PK) OR #b = :b")
                                .name("#b", "batch_id")
                                .value(":b", s(batch_id)),
                        ),
                    ),
                );
            }
            match self.transact(tx).await? {
                Tx::Committed => return Ok(batch),
                // Someone else wrote the batch since it was read: look again,
                // the domain rules then decide (a stale step fails there).
                Tx::Cancelled(_) => {
                    round += 1;
                    cas_backoff(round).await?;
                }
            }
        }
    }

    async fn start_follow_up(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        request: &FollowUpRequest,
    ) -> StoreResult<UploadBatch> {
        let pk = tenant_pk(tenant);
        let Some(stored) = self.load_batch(tenant, batch_id).await? else {
            return Err(StoreError::NotFound(format!("batch {batch_id}")));
        };
        let (source, resend) = stored.batch.start_follow_up(request).map_err(rule)?;
        // The new file's parts go first, guarded by the failed file's revision:
        // a request that lost the race writes nothing more.
        let guard = self.check(&pk, &batch_sk(batch_id), Cond::rev(stored.rev));
        let frozen = Frozen {
            lines: resend.lines.clone(),
            parked: vec![],
            notes: vec![],
        };
        let frozen = self
            .put_large(&pk, &frozen_prefix(&resend.batch_id), &frozen, &guard)
            .await?
            .map_err(|()| conflict(batch_id, "changed while re-sending"))?;
        let mut resend_item = self.batch_item(None, &resend, 1)?;
        frozen.store(&mut resend_item, "frozen");
        let mut tx = vec![self.put(
            self.batch_item(Some(&stored.item), &source, stored.rev + 1)?,
            Some(Cond::rev(stored.rev)),
        )];
        tx.extend(self.new_batch_writes_of(&resend, resend_item));
        if let Tx::Cancelled(_) = self.transact(tx).await? {
            return Err(conflict(batch_id, "changed while re-sending"));
        }
        Ok(resend)
    }

    async fn freeze_batch(&self, tenant: &TenantId, batch: &UploadBatch) -> StoreResult<()> {
        batch.check_freezable(tenant).map_err(rule)?;
        let pk = tenant_pk(tenant);
        let batch_id = &batch.batch_id;
        // Parts first, guarded by the batch's absence; a second request for the
        // same id carries the same lines, and its transaction below is refused.
        let guard = self.check(&pk, &batch_sk(batch_id), Cond::absent());
        let frozen = Frozen {
            lines: batch.lines.clone(),
            parked: batch.parked.clone(),
            notes: batch.notes.clone(),
        };
        let frozen = self
            .put_large(&pk, &frozen_prefix(batch_id), &frozen, &guard)
            .await?
            .map_err(|()| conflict(batch_id, "already frozen"))?;
        let mut item = self.batch_item(None, batch, 1)?;
        frozen.store(&mut item, "frozen");
        if let Tx::Cancelled(_) = self.transact(self.new_batch_writes_of(batch, item)).await? {
            return Err(conflict(batch_id, "already frozen"));
        }
        Ok(())
    }

    async fn batch(&self, tenant: &TenantId, batch_id: &str) -> StoreResult<Option<UploadBatch>> {
        Ok(self.load_batch(tenant, batch_id).await?.map(|s| s.batch))
    }

    async fn batches_in_state(
        &self,
        tenant: &TenantId,
        state: BatchState,
    ) -> StoreResult<Vec<UploadBatch>> {
        let index = self
            .query(
                &tenant_pk(tenant),
                &format!("BSTATE#{}#", state.as_str()),
                true,
                None,
            )
            .await?;
        let mut batches = self.batches_from_index(tenant, index).await?;
        // The index and the batch are read apart: drop one that moved on between.
        batches.retain(|b| b.state == state);
        Ok(batches)
    }

    async fn recent_batches(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<UploadBatch>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let index = self
            .query(&tenant_pk(tenant), "BTIME#", false, Some(limit))
            .await?;
        self.batches_from_index(tenant, index).await
    }

    async fn known_que_ids(&self, tenant: &TenantId) -> StoreResult<Vec<QueId>> {
        let items = self.query(&tenant_pk(tenant), "QUE#", true, None).await?;
        let mut ids = items
            .iter()
            .map(|i| attr_s(i, "que_id").map(QueId::from))
            .collect::<StoreResult<Vec<_>>>()?;
        ids.dedup();
        Ok(ids)
    }

    async fn unreported_outcomes(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<UploadBatch>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let index = self
            .query(&tenant_pk(tenant), "BREPORT#", true, Some(limit))
            .await?;
        let mut batches = self.batches_from_index(tenant, index).await?;
        batches.retain(UploadBatch::awaits_report);
        Ok(batches)
    }
}
