//! Every storage port on one DynamoDB table. The item layout, and why each
//! write is shaped the way it is, is described in `crates/aws/README.md`;
//! comments here only point at the guarantee a condition protects.

mod batches;
mod ledger;
mod login;
mod records;
mod tenants;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, KeysAndAttributes, Put, ScalarAttributeType, Select, TableStatus, TransactWriteItem,
    WriteRequest,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sne_domain::TenantId;
use sne_ports::{StoreError, StoreResult};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A random id each compare-and-set loop stamps on the item it writes. The SDK
/// retries a transaction whose answer was lost; when the first attempt had
/// committed, the retry's condition fails against our own write. Reading the
/// item back and finding our id tells that apart from another writer's step,
/// which equal content could not (two runs may plan the same step at one instant).
pub(crate) const WRITE_ID: &str = "wid";

pub(crate) fn new_write_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `item` is the one this loop wrote with `write_id`.
pub(crate) fn written_by(item: &Item, write_id: &str) -> bool {
    item.get(WRITE_ID)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(write_id)
}

/// DynamoDB's own ceiling for one `TransactWriteItems` call.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Bigger values go to part items, keeping every item well under DynamoDB's
/// 400 KB limit with room for the other attributes.
const INLINE_MAX: usize = 150_000;
const PART_SIZE: usize = 350_000;

/// All storage ports on one DynamoDB table (see the crate README for the layout).
/// Cloning is cheap: the SDK client is shared.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    tx_limit: usize,
    /// Test hook: an `append_changes` call fails after this many of its
    /// transactions committed, as a crash or an outage midway would.
    #[cfg(feature = "testing")]
    fail_append_after: Option<usize>,
    /// Test hook: this many committed transactions are answered as cancelled,
    /// as the SDK's retry of a commit whose answer was lost answers.
    #[cfg(feature = "testing")]
    lost_answers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            tx_limit: MAX_TRANSACTION_ITEMS,
            #[cfg(feature = "testing")]
            fail_append_after: None,
            #[cfg(feature = "testing")]
            lost_answers: Default::default(),
        }
    }

    /// Test hook (feature `testing`): the next `commits` transactions that commit
    /// are answered `ConditionalCheckFailed`, which is what a caller sees when
    /// the SDK retried a commit whose first answer was lost.
    #[cfg(feature = "testing")]
    pub fn lose_commit_answers(&self, commits: usize) {
        self.lost_answers
            .store(commits, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "testing")]
    fn injected_lost_answer(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.lost_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[cfg(not(feature = "testing"))]
    fn injected_lost_answer(&self) -> bool {
        false
    }

    /// Test hook (feature `testing`): every `append_changes` of this handle
    /// fails with `Unavailable` once `chunks` of its transactions committed.
    #[cfg(feature = "testing")]
    pub fn failing_appends_after(mut self, chunks: usize) -> Self {
        self.fail_append_after = Some(chunks);
        self
    }

    /// `Err` when the test hook says this append must stop after `committed`
    /// transactions; never without the `testing` feature.
    #[allow(unused_variables)]
    pub(crate) fn injected_append_failure(&self, committed: usize) -> StoreResult<()> {
        #[cfg(feature = "testing")]
        if self.fail_append_after.is_some_and(|n| committed >= n) {
            return Err(StoreError::Unavailable(
                "injected failure (test hook)".into(),
            ));
        }
        Ok(())
    }

    /// Caps the items per transaction below DynamoDB's 100 (tests use it to make
    /// the chunking visible with few rows). Values outside 4..=100 are clamped.
    pub fn with_transaction_limit(mut self, items: usize) -> Self {
        self.tx_limit = items.clamp(4, MAX_TRANSACTION_ITEMS);
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand billing, `PK`/`SK` strings, no index) and waits
    /// until it is active. The SAM template declares the same schema.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| e.to_string())
        };
        client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        for _ in 0..120 {
            let described = client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("table {table} did not become active"))
    }

    // ------------------------------------------------------------ reads

    pub(crate) async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Items of partition `pk` whose sort key starts with `prefix`, every page,
    /// strongly consistent; at most `limit` when given.
    pub(crate) async fn query(
        &self,
        pk: &str,
        prefix: &str,
        forward: bool,
        limit: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = limit.map(|l| l.saturating_sub(items.len()));
            if want == Some(0) {
                break;
            }
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition(prefix))
                .set_expression_attribute_values(Some(key_values(pk, prefix)))
                .consistent_read(true)
                .scan_index_forward(forward)
                .set_limit(want.map(|w| w.min(1000) as i32))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(items)
    }

    pub(crate) async fn count(&self, pk: &str, prefix: &str) -> StoreResult<usize> {
        let mut total = 0usize;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition(prefix))
                .set_expression_attribute_values(Some(key_values(pk, prefix)))
                .consistent_read(true)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            total += usize::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(total)
    }

    /// Strongly consistent `BatchGetItem` over any number of keys; missing items
    /// are simply absent from the map.
    pub(crate) async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> StoreResult<HashMap<(String, String), Item>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk.iter().map(|(pk, sk)| key(pk, sk)).collect();
            let mut rounds = 0u32;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let pk = attr_s(&item, "PK")?.to_string();
                    let sk = attr_s(&item, "SK")?.to_string();
                    found.insert((pk, sk), item);
                }
                if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    pending = rest.keys;
                }
                if !pending.is_empty() {
                    rounds += 1;
                    backoff(rounds).await?;
                }
            }
        }
        Ok(found)
    }

    // ------------------------------------------------------------ writes

    /// Unconditional puts and deletes, 25 per call, retrying unprocessed items.
    pub(crate) async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut rounds = 0u32;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(unavailable)?;
                if let Some(rest) = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    pending = rest;
                }
                if !pending.is_empty() {
                    rounds += 1;
                    backoff(rounds).await?;
                }
            }
        }
        Ok(())
    }

    /// One `TransactWriteItems`. A failed condition is an answer, not an error:
    /// it comes back as the per-item reason codes. Conflicts with another
    /// transaction in flight are retried, as AWS recommends.
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<Tx> {
        debug_assert!(items.len() <= self.tx_limit);
        let mut rounds = 0u32;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) if self.injected_lost_answer() => {
                    return Ok(Tx::Cancelled(vec![CONDITION_FAILED.to_string()]));
                }
                Ok(_) => return Ok(Tx::Committed),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
                err.as_service_error()
            {
                let codes: Vec<String> = e
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_string())
                    .collect();
                let failed_condition = codes.iter().any(|c| c == CONDITION_FAILED);
                let retryable = codes
                    .iter()
                    .any(|c| c == "TransactionConflict" || c == "ThrottlingError");
                if failed_condition || codes.is_empty() {
                    return Ok(Tx::Cancelled(codes));
                }
                if retryable && rounds < 10 {
                    rounds += 1;
                    backoff(rounds).await?;
                    continue;
                }
            }
            if matches!(
                err.as_service_error(),
                Some(TransactWriteItemsError::TransactionInProgressException(_))
            ) && rounds < 10
            {
                rounds += 1;
                backoff(rounds).await?;
                continue;
            }
            return Err(unavailable(err));
        }
    }

    /// Puts `bytes` as numbered part items `<prefix><nnnn>` (each with a
    /// condition check on `guard`, so a writer that lost its claim cannot
    /// overwrite the parts of the one that holds it). Returns the part count.
    pub(crate) async fn put_parts(
        &self,
        pk: &str,
        prefix: &str,
        bytes: &[u8],
        guard: &ConditionCheck,
    ) -> StoreResult<Result<usize, ()>> {
        let parts: Vec<&[u8]> = bytes.chunks(PART_SIZE).collect();
        for (i, part) in parts.iter().enumerate() {
            let mut item = key(pk, &format!("{prefix}{i:04}"));
            item.insert("bytes".into(), AttributeValue::B(Blob::new(part.to_vec())));
            let tx = vec![
                TransactWriteItem::builder()
                    .condition_check(guard.clone())
                    .build(),
                self.put(item, None),
            ];
            if let Tx::Cancelled(_) = self.transact(tx).await? {
                return Ok(Err(()));
            }
        }
        Ok(Ok(parts.len()))
    }

    pub(crate) async fn read_parts(
        &self,
        pk: &str,
        prefix: &str,
        count: usize,
    ) -> StoreResult<Vec<u8>> {
        let items = self.query(pk, prefix, true, Some(count)).await?;
        if items.len() != count {
            return Err(StoreError::Unavailable(format!(
                "{pk}/{prefix}: {count} parts expected, {} found",
                items.len()
            )));
        }
        let mut bytes = Vec::new();
        for item in &items {
            match item.get("bytes") {
                Some(AttributeValue::B(blob)) => bytes.extend_from_slice(blob.as_ref()),
                _ => return Err(corrupt(pk, "part without bytes")),
            }
        }
        Ok(bytes)
    }

    // ------------------------------------------------------------ transaction items

    pub(crate) fn put(&self, item: Item, cond: Option<Cond>) -> TransactWriteItem {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(cond) = cond {
            put = put
                .condition_expression(cond.expr)
                .set_expression_attribute_names(cond.names)
                .set_expression_attribute_values(cond.values);
        }
        TransactWriteItem::builder()
            // Table name and item are always set, the only required fields.
            .put(put.build().expect("put has table and item"))
            .build()
    }

    pub(crate) fn delete(&self, pk: &str, sk: &str, cond: Option<Cond>) -> TransactWriteItem {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)));
        if let Some(cond) = cond {
            delete = delete
                .condition_expression(cond.expr)
                .set_expression_attribute_names(cond.names)
                .set_expression_attribute_values(cond.values);
        }
        TransactWriteItem::builder()
            .delete(delete.build().expect("delete has table and key"))
            .build()
    }

    pub(crate) fn check(&self, pk: &str, sk: &str, cond: Cond) -> ConditionCheck {
        ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression(cond.expr)
            .set_expression_attribute_names(cond.names)
            .set_expression_attribute_values(cond.values)
            .build()
            .expect("condition check has table, key and condition")
    }

    pub(crate) fn check_item(&self, check: ConditionCheck) -> TransactWriteItem {
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// Stores `value` as JSON in attribute `attr` when small, else in parts;
    /// `attr`_parts records which.
    pub(crate) async fn put_large<T: Serialize>(
        &self,
        pk: &str,
        part_prefix: &str,
        value: &T,
        guard: &ConditionCheck,
    ) -> StoreResult<Result<LargeValue, ()>> {
        let json = to_json(value)?;
        if json.len() <= INLINE_MAX {
            return Ok(Ok(LargeValue::Inline(json)));
        }
        Ok(self
            .put_parts(pk, part_prefix, json.as_bytes(), guard)
            .await?
            .map(LargeValue::Parts))
    }

    pub(crate) async fn get_large<T: DeserializeOwned + Default>(
        &self,
        item: &Item,
        attr: &str,
        part_prefix: &str,
    ) -> StoreResult<T> {
        let pk = attr_s(item, "PK")?;
        if let Some(AttributeValue::S(json)) = item.get(attr) {
            return from_json(json);
        }
        let parts = opt_n(item, &format!("{attr}_parts"))?.unwrap_or(0);
        if parts == 0 {
            return Ok(T::default());
        }
        let bytes = self.read_parts(pk, part_prefix, parts as usize).await?;
        serde_json::from_slice(&bytes).map_err(|e| corrupt(pk, &e.to_string()))
    }
}

pub(crate) enum LargeValue {
    Inline(String),
    Parts(usize),
}

impl LargeValue {
    pub(crate) fn store(self, item: &mut Item, attr: &str) {
        match self {
            LargeValue::Inline(json) => {
                item.insert(attr.into(), s(json));
                item.remove(&format!("{attr}_parts"));
            }
            LargeValue::Parts(count) => {
                item.remove(attr);
                item.insert(format!("{attr}_parts"), n(count as i64));
            }
        }
    }
}

pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";

#[derive(Debug)]
pub(crate) enum Tx {
    Committed,
    /// One reason code per transaction item, in order ("None" for those that
    /// were fine); empty when the backend did not say.
    Cancelled(Vec<String>),
}

/// A condition expression with its placeholders.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cond {
    expr: String,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Cond {
    pub(crate) fn new(expr: impl Into<String>) -> Self {
        Cond {
            expr: expr.into(),
            ..Default::default()
        }
    }

    /// `attribute_not_exists(PK)`: the item must be new.
    pub(crate) fn absent() -> Self {
        Cond::new("attribute_not_exists(PK)")
    }

    pub(crate) fn name(mut self, placeholder: &str, attr: &str) -> Self {
        self.names
            .get_or_insert_with(HashMap::new)
            .insert(placeholder.into(), attr.into());
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values
            .get_or_insert_with(HashMap::new)
            .insert(placeholder.into(), value);
        self
    }

    /// `#rev = :rev`: optimistic concurrency on items that are read, changed in
    /// memory and written back whole.
    pub(crate) fn rev(rev: i64) -> Self {
        Cond::new("#rev = :rev")
            .name("#rev", "rev")
            .value(":rev", n(rev))
    }
}

// ---------------------------------------------------------------- keys and attributes

/// Escapes the separator so ids that contain `#` can never alias another key
/// (`a#b` + `c` vs `a` + `b#c`), and a prefix query never reaches a sibling.
pub(crate) fn esc(part: &str) -> String {
    part.replace('%', "%25").replace('#', "%23")
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("T#{}", esc(tenant.as_str()))
}

/// Microseconds since the epoch, zero-padded so string order is time order.
pub(crate) fn time_key(at: DateTime<Utc>) -> String {
    format!("{:020}", at.timestamp_micros().max(0))
}

/// DynamoDB refuses an empty string in a key condition, so "every item of the
/// partition" is a condition on the partition key alone.
fn key_condition(prefix: &str) -> &'static str {
    if prefix.is_empty() {
        "PK = :pk"
    } else {
        "PK = :pk AND begins_with(SK, :prefix)"
    }
}

fn key_values(pk: &str, prefix: &str) -> HashMap<String, AttributeValue> {
    let mut values = HashMap::from([(":pk".to_string(), s(pk))]);
    if !prefix.is_empty() {
        values.insert(":prefix".into(), s(prefix));
    }
    values
}

pub(crate) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn attr_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(
            item.get("SK")
                .and_then(|v| v.as_s().ok())
                .map_or("?", |v| v),
            &format!("attribute {name} missing"),
        )),
    }
}

pub(crate) fn opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(crate) fn opt_n(item: &Item, name: &str) -> StoreResult<Option<i64>> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(name, "not an integer")),
        _ => Ok(None),
    }
}

pub(crate) fn attr_n(item: &Item, name: &str) -> StoreResult<i64> {
    opt_n(item, name)?.ok_or_else(|| corrupt(name, "attribute missing"))
}

pub(crate) fn body<T: DeserializeOwned>(item: &Item) -> StoreResult<T> {
    from_json(attr_s(item, "body")?)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(format!("encode: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Unavailable(format!("decode: {e}")))
}

pub(crate) fn corrupt(what: &str, why: &str) -> StoreError {
    StoreError::Unavailable(format!("stored item {what}: {why}"))
}

pub(crate) fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

/// `true` when the SDK error is a failed condition of a single-item write.
pub(crate) fn is_condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

async fn backoff(round: u32) -> StoreResult<()> {
    if round > 12 {
        return Err(StoreError::Unavailable(
            "DynamoDB kept refusing the request (throttled or contended)".into(),
        ));
    }
    let millis = 10u64 << round.min(8);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(())
}

/// Optimistic read-modify-write loops give up after this many lost races; each
/// lost race means another writer made progress, so this is never reached in
/// practice except under a bug.
pub(crate) const CAS_ROUNDS: u32 = 16;

pub(crate) async fn cas_backoff(round: u32) -> StoreResult<()> {
    if round >= CAS_ROUNDS {
        return Err(StoreError::Conflict("too many concurrent writers".into()));
    }
    tokio::time::sleep(Duration::from_millis(2 << round.min(6))).await;
    Ok(())
}
