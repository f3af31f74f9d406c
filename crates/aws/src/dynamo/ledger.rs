//! The stock-change ledger: idempotent appends (a DEDUPE item per key, written
//! with the change in one transaction), a per-tenant sequence for append order,
//! and claims that move PEND items into a batch under the BUILDING lock.

use super::batches::{LOCK_SK, PHASE_APPLYING, PHASE_BUILDING, mirror_sk};
use super::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, ReturnValue, WriteRequest};
use sne_domain::StockChange;
use sne_domain::batch_state::BatchState;
use sne_domain::complete::{Mirror, MirrorEntry, StockKey};
use sne_ports::{
    AppendOutcome, ClaimRequest, ClaimedBatch, StockLedger, StockMirrorStore, UploadBatch,
};
use std::collections::HashSet;

fn seq_key(seq: i64) -> String {
    format!("{seq:020}")
}

fn dedupe_sk(dedupe_key: &str) -> String {
    format!("DEDUPE#{}", esc(dedupe_key))
}

/// DynamoDB's sort-key limit is 1024 bytes.
const MAX_DEDUPE_SK: usize = 1024;

const APPEND_PREFIX: &str = "APPEND#";

fn append_sk(id: &str) -> String {
    format!("{APPEND_PREFIX}{id}")
}

/// Outside `APPEND#`, so listing the intents never returns their parts.
fn append_parts_prefix(id: &str) -> String {
    format!("APPENDP#{id}#")
}

fn batch_change_prefix(batch_id: &str) -> String {
    format!("BCHG#{}#", esc(batch_id))
}

struct Lock {
    batch_id: String,
    owner: String,
    lease: i64,
    phase: String,
}

impl Lock {
    fn from_item(item: &Item) -> StoreResult<Lock> {
        Ok(Lock {
            batch_id: attr_s(item, "batch_id")?.to_string(),
            owner: attr_s(item, "owner")?.to_string(),
            lease: opt_n(item, "lease")?.unwrap_or(0),
            phase: opt_s(item, "phase").unwrap_or(PHASE_BUILDING).to_string(),
        })
    }
}

fn lock_item(pk: &str, batch_id: &str, owner: &str, lease: DateTime<Utc>) -> Item {
    let mut item = key(pk, LOCK_SK);
    item.insert("batch_id".into(), s(batch_id));
    item.insert("owner".into(), s(owner));
    item.insert("lease".into(), n(lease.timestamp_micros()));
    item.insert("phase".into(), s(PHASE_BUILDING));
    item
}

fn held_by(batch_id: &str, owner: &str) -> Cond {
    Cond::new("#b = :b AND #o = :o")
        .name("#b", "batch_id")
        .name("#o", "owner")
        .value(":b", s(batch_id))
        .value(":o", s(owner))
}

impl DynamoStore {
    /// Reserves `count` sequence numbers and returns the first. Numbers of a
    /// transaction that then fails are skipped: only their order matters.
    async fn reserve_seq(&self, tenant: &TenantId, count: usize) -> StoreResult<i64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("PK", s(tenant_pk(tenant)))
            .key("SK", s("SEQ"))
            .update_expression("ADD #n :c")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":c", n(count as i64))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let top = out
            .attributes
            .as_ref()
            .map(|a| attr_n(a, "n"))
            .transpose()?
            .ok_or_else(|| corrupt("SEQ", "no value returned"))?;
        Ok(top - count as i64 + 1)
    }

    /// Writes the changes of intent `id` as DEDUPE + PEND pairs, one chunk per
    /// transaction, then removes the intent. Safe to run by several callers at
    /// once and again after a crash: a change is pending once, because its
    /// DEDUPE item is written only if absent; the DEDUPE item names the intent,
    /// so a co-applier's work still counts as appended, not as a duplicate.
    /// `own`: the appender itself (the test hook only stops that one).
    async fn apply_append(
        &self,
        tenant: &TenantId,
        id: &str,
        changes: &[StockChange],
        own: bool,
    ) -> StoreResult<AppendOutcome> {
        let pk = tenant_pk(tenant);
        let mut outcome = AppendOutcome::default();
        let mut committed = 0;
        for chunk in changes.chunks(self.tx_limit / 2) {
            if own {
                self.injected_append_failure(committed)?;
            }
            let mut todo: Vec<&StockChange> = chunk.iter().collect();
            let mut round = 0;
            while !todo.is_empty() {
                let first = self.reserve_seq(tenant, todo.len()).await?;
                let mut tx = Vec::with_capacity(todo.len() * 2);
                for (i, change) in todo.iter().enumerate() {
                    let seq = first + i as i64;
                    let mut dedupe = key(&pk, &dedupe_sk(&change.dedupe_key));
                    dedupe.insert("seq".into(), n(seq));
                    dedupe.insert("append".into(), s(id));
                    let mut pending = key(&pk, &format!("PEND#{}", seq_key(seq)));
                    pending.insert("body".into(), s(to_json(change)?));
                    pending.insert("dedupe_key".into(), s(&change.dedupe_key));
                    tx.push(self.put(dedupe, Some(Cond::absent())));
                    tx.push(self.put(pending, None));
                }
                if let Tx::Committed = self.transact(tx).await? {
                    outcome.appended += todo.len();
                    committed += 1;
                    break;
                }
                // Some keys are known: by an earlier push (duplicates) or by
                // another applier of this very intent (appended all the same).
                let keys: Vec<(String, String)> = todo
                    .iter()
                    .map(|c| (pk.clone(), dedupe_sk(&c.dedupe_key)))
                    .collect();
                let found = self.batch_get(&keys).await?;
                let before = todo.len();
                let mut keys = keys.iter();
                todo.retain(|_| {
                    let Some(item) = keys.next().and_then(|k| found.get(k)) else {
                        return true;
                    };
                    if opt_s(item, "append") == Some(id) {
                        outcome.appended += 1;
                    } else {
                        outcome.duplicates += 1;
                    }
                    false
                });
                if before == todo.len() {
                    round += 1;
                    cas_backoff(round).await?;
                }
            }
        }
        self.delete_intent(&pk, id).await?;
        Ok(outcome)
    }

    /// The intent first, so nobody reads it with its parts gone; parts left
    /// by a crash in between are never read again.
    async fn delete_intent(&self, pk: &str, id: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(append_sk(id)))
            .send()
            .await
            .map_err(unavailable)?;
        let parts = self.query(pk, &append_parts_prefix(id), true, None).await?;
        let deletes = parts
            .iter()
            .map(|item| -> StoreResult<WriteRequest> {
                let sk = attr_s(item, "SK")?;
                let request = DeleteRequest::builder()
                    .set_key(Some(key(pk, sk)))
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(request).build())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.batch_write(deletes).await
    }

    /// Applies every intent still stored: appends that crashed or failed after
    /// their commit point, or are being applied right now.
    async fn finish_appends(&self, tenant: &TenantId) -> StoreResult<()> {
        let pk = tenant_pk(tenant);
        for intent in self.query(&pk, APPEND_PREFIX, true, None).await? {
            let sk = attr_s(&intent, "SK")?;
            let id = sk.trim_start_matches(APPEND_PREFIX).to_string();
            let changes: Vec<StockChange> = match self
                .get_large(&intent, "body", &append_parts_prefix(&id))
                .await
            {
                Ok(changes) => changes,
                // Its applier finished and deleted the parts meanwhile.
                Err(_) if self.get(&pk, sk).await?.is_none() => continue,
                Err(e) => return Err(e),
            };
            self.apply_append(tenant, &id, &changes, false).await?;
        }
        Ok(())
    }

    /// Moves up to `max` pending changes, oldest first, into `batch_id`. Every
    /// transaction re-checks that `owner` still holds the lock, so after a
    /// takeover nothing more lands in a batch whose new owner already read it.
    /// `None` when the lock was lost.
    async fn move_pending(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        owner: &str,
        max: usize,
    ) -> StoreResult<Option<Vec<StockChange>>> {
        let pk = tenant_pk(tenant);
        let per_tx = (self.tx_limit - 1) / 2;
        let guard = self.check(&pk, LOCK_SK, held_by(batch_id, owner));
        let mut moved = Vec::new();
        let mut round = 0;
        'page: while moved.len() < max {
            // One query feeds many transactions; only a lost race re-queries.
            let want = (max - moved.len()).min(1000);
            let page = self.query(&pk, "PEND#", true, Some(want)).await?;
            if page.is_empty() {
                break;
            }
            for chunk in page.chunks(per_tx) {
                let mut tx = vec![self.check_item(guard.clone())];
                let mut changes = Vec::with_capacity(chunk.len());
                for item in chunk {
                    let sk = attr_s(item, "SK")?;
                    let seq = sk.trim_start_matches("PEND#");
                    let change: StockChange = body(item)?;
                    tx.push(self.delete(&pk, sk, Some(Cond::new("attribute_exists(PK)"))));
                    let mut member = key(&pk, &format!("{}{seq}", batch_change_prefix(batch_id)));
                    member.insert("body".into(), s(attr_s(item, "body")?));
                    tx.push(self.put(member, None));
                    changes.push(change);
                }
                if let Tx::Cancelled(_) = self.transact(tx).await? {
                    let lock = self.get(&pk, LOCK_SK).await?;
                    let still_ours = lock
                        .as_ref()
                        .map(Lock::from_item)
                        .transpose()?
                        .is_some_and(|l| l.batch_id == batch_id && l.owner == owner);
                    if !still_ours {
                        return Ok(None);
                    }
                    round += 1;
                    cas_backoff(round).await?;
                    continue 'page;
                }
                moved.extend(changes);
            }
        }
        Ok(Some(moved))
    }
}

#[async_trait]
impl StockLedger for DynamoStore {
    async fn append_changes(
        &self,
        tenant: &TenantId,
        changes: &[StockChange],
    ) -> StoreResult<AppendOutcome> {
        let pk = tenant_pk(tenant);
        let mut outcome = AppendOutcome::default();
        let mut seen = HashSet::new();
        let mut unique = Vec::with_capacity(changes.len());
        for change in changes {
            if seen.insert(change.dedupe_key.as_str()) {
                unique.push(change.clone());
            } else {
                outcome.duplicates += 1;
            }
        }
        if unique.is_empty() {
            return Ok(outcome);
        }
        for change in &unique {
            // A key DynamoDB would refuse must fail the push before its intent
            // is written, or the intent could never be applied.
            if dedupe_sk(&change.dedupe_key).len() > MAX_DEDUPE_SK {
                return Err(StoreError::Unavailable(format!(
                    "dedupe key of {} bytes is too long to store",
                    change.dedupe_key.len()
                )));
            }
        }
        // The push as one intent item is the commit point: before it nothing of
        // the push exists, after it all of it will be applied (see README).
        let id = seq_key(self.reserve_seq(tenant, 1).await?);
        let guard = self.check(&pk, &append_sk(&id), Cond::absent());
        let Ok(value) = self
            .put_large(&pk, &append_parts_prefix(&id), &unique, &guard)
            .await?
        else {
            return Err(corrupt("APPEND", "intent id reused"));
        };
        let mut intent = key(&pk, &append_sk(&id));
        value.store(&mut intent, "body");
        if let Tx::Cancelled(_) = self
            .transact(vec![self.put(intent, Some(Cond::absent()))])
            .await?
        {
            return Err(corrupt("APPEND", "intent id reused"));
        }
        let applied = self.apply_append(tenant, &id, &unique, true).await?;
        outcome.appended += applied.appended;
        outcome.duplicates += applied.duplicates;
        Ok(outcome)
    }

    async fn claim_batch(
        &self,
        tenant: &TenantId,
        claim: &ClaimRequest,
    ) -> StoreResult<Option<ClaimedBatch>> {
        let pk = tenant_pk(tenant);
        // A push is claimed whole or not at all: one whose append stopped after
        // its commit point is completed before anything is taken.
        self.finish_appends(tenant).await?;
        let mut round = 0;
        loop {
            if round > 0 {
                cas_backoff(round).await?;
            }
            round += 1;
            if let Some(item) = self.get(&pk, LOCK_SK).await? {
                let lock = Lock::from_item(&item)?;
                if lock.phase == PHASE_APPLYING {
                    // A finisher stopped between its batch and its mirror writes.
                    self.apply_staged_mirror(tenant, &lock.batch_id).await?;
                    continue;
                }
                let held_by_other =
                    lock.owner != claim.owner && lock.lease > claim.now.timestamp_micros();
                if held_by_other {
                    return Ok(None);
                }
                let Some(stored) = self.load_batch(tenant, &lock.batch_id).await? else {
                    return Err(corrupt("BUILDING", "lock names a missing batch"));
                };
                if stored.batch.state != BatchState::Building {
                    return Err(corrupt(
                        "BUILDING",
                        "lock names a batch that is not building",
                    ));
                }
                let batch = stored
                    .batch
                    .take_over(&claim.owner, claim.now, claim.lease_until)
                    .map_err(super::batches::rule)?;
                let taken = Cond::new("#b = :b AND #o = :o AND #l = :l")
                    .name("#b", "batch_id")
                    .name("#o", "owner")
                    .name("#l", "lease")
                    .value(":b", s(&lock.batch_id))
                    .value(":o", s(&lock.owner))
                    .value(":l", n(lock.lease));
                let tx = vec![
                    self.put(
                        lock_item(&pk, &lock.batch_id, &claim.owner, claim.lease_until),
                        Some(taken),
                    ),
                    self.put(
                        self.batch_item(Some(&stored.item), &batch, stored.rev + 1)?,
                        Some(Cond::rev(stored.rev)),
                    ),
                ];
                if let Tx::Cancelled(_) = self.transact(tx).await? {
                    continue;
                }
                let changes = self.changes_of_batch(tenant, &lock.batch_id).await?;
                return Ok(Some(ClaimedBatch {
                    batch_id: lock.batch_id,
                    changes,
                    resumed: true,
                }));
            }

            if self.query(&pk, "PEND#", true, Some(1)).await?.is_empty() {
                return Ok(None);
            }
            let batch = UploadBatch::building(
                tenant.clone(),
                claim.new_batch_id.clone(),
                claim.owner.clone(),
                claim.now,
                claim.lease_until,
            );
            let mut tx = vec![self.put(
                lock_item(&pk, &batch.batch_id, &claim.owner, claim.lease_until),
                Some(Cond::absent()),
            )];
            tx.extend(self.new_batch_writes(&batch)?);
            if let Tx::Cancelled(codes) = self.transact(tx).await? {
                let lock_taken = codes.first().is_none_or(|c| c == CONDITION_FAILED);
                if !lock_taken {
                    return Err(StoreError::Conflict(format!(
                        "batch id {} is already used",
                        batch.batch_id
                    )));
                }
                // Another claimer was faster; look at its lock again.
                continue;
            }
            // A batch of zero changes would be built for nothing, so 0 still takes one.
            let max = claim.max_changes.max(1);
            return Ok(self
                .move_pending(tenant, &batch.batch_id, &claim.owner, max)
                .await?
                .map(|changes| ClaimedBatch {
                    batch_id: batch.batch_id,
                    changes,
                    resumed: false,
                }));
        }
    }

    async fn pending_changes(&self, tenant: &TenantId) -> StoreResult<usize> {
        self.count(&tenant_pk(tenant), "PEND#").await
    }

    async fn oldest_pending_change(&self, tenant: &TenantId) -> StoreResult<Option<DateTime<Utc>>> {
        let first = self
            .query(&tenant_pk(tenant), "PEND#", true, Some(1))
            .await?;
        first
            .first()
            .map(|item| body::<StockChange>(item).map(|c| c.received_at))
            .transpose()
    }

    async fn pending_change_list(&self, tenant: &TenantId) -> StoreResult<Vec<StockChange>> {
        self.query(&tenant_pk(tenant), "PEND#", true, None)
            .await?
            .iter()
            .map(body)
            .collect()
    }

    async fn changes_of_batch(
        &self,
        tenant: &TenantId,
        batch_id: &str,
    ) -> StoreResult<Vec<StockChange>> {
        self.query(
            &tenant_pk(tenant),
            &batch_change_prefix(batch_id),
            true,
            None,
        )
        .await?
        .iter()
        .map(body)
        .collect()
    }
}

#[async_trait]
impl StockMirrorStore for DynamoStore {
    async fn mirror(&self, tenant: &TenantId, keys: &[StockKey]) -> StoreResult<Mirror> {
        let pk = tenant_pk(tenant);
        let wanted: Vec<(String, String)> = keys
            .iter()
            .map(|k| (pk.clone(), mirror_sk(&k.store_id, &k.product_id)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = self.batch_get(&wanted).await?;
        let mut mirror = Mirror::new();
        for key in keys {
            if let Some(item) = found.get(&(pk.clone(), mirror_sk(&key.store_id, &key.product_id)))
            {
                let entry: MirrorEntry = body(item)?;
                mirror.insert(key.clone(), entry);
            }
        }
        Ok(mirror)
    }
}
