//! Order-import records and the report outbox: one item per record plus time
//! index items written in the same transaction, so listings are a Query.

use super::*;
use async_trait::async_trait;
use sne_ports::{OrderImportRecord, OrderImportStore, OutboxReport, ReportOutbox};

fn order_sk(id: &str) -> String {
    format!("ORDER#{}", esc(id))
}

fn order_time_sk(record: &OrderImportRecord) -> String {
    format!(
        "OTIME#{}#{}",
        time_key(record.updated_at),
        esc(&record.receive_order_id)
    )
}

fn report_sk(id: &str) -> String {
    format!("REPORT#{}", esc(id))
}

fn report_index_sk(kind: &str, report: &OutboxReport) -> String {
    format!("{kind}#{}#{}", time_key(report.created_at), esc(&report.id))
}

impl DynamoStore {
    async fn records_from_index<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        index: &[Item],
        id_attr: &str,
        item_sk: fn(&str) -> String,
    ) -> StoreResult<Vec<T>> {
        let keys = index
            .iter()
            .map(|i| Ok((pk.to_string(), item_sk(attr_s(i, id_attr)?))))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut found = self.batch_get(&keys).await?;
        keys.iter()
            .filter_map(|k| found.remove(k))
            .map(|item| body(&item))
            .collect()
    }

    async fn report_item(&self, tenant: &TenantId, id: &str) -> StoreResult<(OutboxReport, i64)> {
        let item = self
            .get(&tenant_pk(tenant), &report_sk(id))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("report {id}")))?;
        Ok((body(&item)?, attr_n(&item, "rev")?))
    }

    fn report_put(&self, report: &OutboxReport, rev: i64) -> StoreResult<Item> {
        let mut item = key(&tenant_pk(&report.tenant_id), &report_sk(&report.id));
        item.insert("body".into(), s(to_json(report)?));
        item.insert("rev".into(), n(rev));
        Ok(item)
    }

    /// Read, let `change` decide and edit, write back under the revision read;
    /// lost races re-read and decide again, so every decision (e.g. "no other
    /// claim is running") holds for the state the write replaced. False when
    /// `change` refused, with nothing written.
    async fn update_report(
        &self,
        tenant: &TenantId,
        id: &str,
        change: impl Fn(&mut OutboxReport) -> bool,
    ) -> StoreResult<bool> {
        let pk = tenant_pk(tenant);
        let mut round = 0;
        loop {
            let (mut report, rev) = self.report_item(tenant, id).await?;
            let was_pending = report.sent_at.is_none();
            if !change(&mut report) {
                return Ok(false);
            }
            let mut tx = vec![self.put(self.report_put(&report, rev + 1)?, Some(Cond::rev(rev)))];
            if was_pending && report.sent_at.is_some() {
                tx.push(self.delete(&pk, &report_index_sk("RPEND", &report), None));
            }
            match self.transact(tx).await? {
                Tx::Committed => return Ok(true),
                Tx::Cancelled(_) => {
                    round += 1;
                    cas_backoff(round).await?;
                }
            }
        }
    }
}

#[async_trait]
impl OrderImportStore for DynamoStore {
    async fn order_record(
        &self,
        tenant: &TenantId,
        receive_order_id: &str,
    ) -> StoreResult<Option<OrderImportRecord>> {
        self.get(&tenant_pk(tenant), &order_sk(receive_order_id))
            .await?
            .map(|item| body(&item))
            .transpose()
    }

    async fn put_order_record(
        &self,
        record: &OrderImportRecord,
        expected_tag: Option<&str>,
    ) -> StoreResult<()> {
        let pk = tenant_pk(&record.tenant_id);
        let sk = order_sk(&record.receive_order_id);
        let write_id = new_write_id();
        let mut round = 0;
        loop {
            let stored = self.get(&pk, &sk).await?;
            if round > 0 && stored.as_ref().is_some_and(|i| written_by(i, &write_id)) {
                return Ok(());
            }
            let stored_tag = stored.as_ref().map(|i| attr_s(i, "tag")).transpose()?;
            if stored_tag != expected_tag {
                return Err(StoreError::Conflict(format!(
                    "order {} is {}, not {}",
                    record.receive_order_id,
                    stored_tag.unwrap_or("absent"),
                    expected_tag.unwrap_or("absent"),
                )));
            }
            let rev = stored.as_ref().map(|i| attr_n(i, "rev")).transpose()?;
            let mut item = key(&pk, &sk);
            item.insert("body".into(), s(to_json(record)?));
            item.insert("tag".into(), s(record.state.tag()));
            item.insert("rev".into(), n(rev.unwrap_or(0) + 1));
            item.insert(WRITE_ID.into(), s(&write_id));
            let mut by_time = key(&pk, &order_time_sk(record));
            by_time.insert("order_id".into(), s(&record.receive_order_id));
            let cond = match rev {
                None => Cond::absent(),
                Some(rev) => Cond::rev(rev),
            };
            let mut tx = vec![self.put(item, Some(cond))];
            if let Some(stored) = &stored {
                let old: OrderImportRecord = body(stored)?;
                let old_sk = order_time_sk(&old);
                if old_sk != order_time_sk(record) {
                    tx.push(self.delete(&pk, &old_sk, None));
                }
            }
            tx.push(self.put(by_time, None));
            match self.transact(tx).await? {
                Tx::Committed => return Ok(()),
                Tx::Cancelled(_) => {
                    round += 1;
                    cas_backoff(round).await?;
                }
            }
        }
    }

    async fn order_records(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<OrderImportRecord>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let pk = tenant_pk(tenant);
        let index = self.query(&pk, "OTIME#", false, Some(limit)).await?;
        self.records_from_index(&pk, &index, "order_id", order_sk)
            .await
    }
}

#[async_trait]
impl ReportOutbox for DynamoStore {
    async fn enqueue_report(&self, report: &OutboxReport) -> StoreResult<bool> {
        let pk = tenant_pk(&report.tenant_id);
        let mut round = 0;
        loop {
            // The report item comes first: its code tells "already enqueued" apart
            // from a batch that changed since it was read.
            let mut tx = vec![self.put(self.report_put(report, 1)?, Some(Cond::absent()))];
            for kind in ["RTIME", "RPEND"] {
                if kind == "RPEND" && report.sent_at.is_some() {
                    continue;
                }
                let mut index = key(&pk, &report_index_sk(kind, report));
                index.insert("report_id".into(), s(&report.id));
                tx.push(self.put(index, None));
            }
            for batch_id in &report.reported_batches {
                let stored = self
                    .load_batch(&report.tenant_id, batch_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("batch {batch_id}")))?;
                // Marked by this very report: it was stored in the same
                // transaction, so enqueueing it again is the no-op it promises.
                if stored.batch.reported_in.as_deref() == Some(report.id.as_str()) {
                    return Ok(false);
                }
                let marked = stored
                    .batch
                    .mark_reported(&report.id)
                    .map_err(super::batches::rule)?;
                tx.push(self.put(
                    self.batch_item(Some(&stored.item), &marked, stored.rev + 1)?,
                    Some(Cond::rev(stored.rev)),
                ));
                tx.push(self.delete(&pk, &super::batches::report_wait_sk(&marked), None));
            }
            if tx.len() > self.tx_limit {
                return Err(StoreError::Conflict(format!(
                    "a report can mark at most {} batches",
                    (self.tx_limit - 3) / 2
                )));
            }
            match self.transact(tx).await? {
                Tx::Committed => return Ok(true),
                Tx::Cancelled(codes) if codes.first().is_some_and(|c| c == CONDITION_FAILED) => {
                    return Ok(false);
                }
                Tx::Cancelled(_) => {
                    round += 1;
                    cas_backoff(round).await?;
                }
            }
        }
    }

    async fn pending_reports(&self, tenant: &TenantId) -> StoreResult<Vec<OutboxReport>> {
        let pk = tenant_pk(tenant);
        let index = self.query(&pk, "RPEND#", true, None).await?;
        let mut reports: Vec<OutboxReport> = self
            .records_from_index(&pk, &index, "report_id", report_sk)
            .await?;
        reports.retain(|r| r.sent_at.is_none());
        Ok(reports)
    }

    async fn claim_report(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.update_report(tenant, id, |report| report.claim(owner, now, lease_until))
            .await
    }

    async fn mark_report_sent(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.update_report(tenant, id, |report| report.mark_sent(owner, at))
            .await
    }

    async fn record_report_failure(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: &str,
    ) -> StoreResult<bool> {
        self.update_report(tenant, id, |report| report.record_failure(owner, error))
            .await
    }

    async fn recent_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<OutboxReport>> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let pk = tenant_pk(tenant);
        let index = self.query(&pk, "RTIME#", false, Some(limit)).await?;
        self.records_from_index(&pk, &index, "report_id", report_sk)
            .await
    }
}
