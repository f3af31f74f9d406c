//! Storage ports. Every method is scoped by tenant; conditional writes report a
//! failed condition as [`StoreError::Conflict`] and change nothing.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sne_domain::batch_state::BatchState;
use sne_domain::complete::{Mirror, StockKey};
use sne_domain::tenant::{NeTokens, Tenant};
use sne_domain::{ProductPair, QueId, StockChange, TenantId};

// ---------------------------------------------------------------- tenants

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Conflict when the tenant id or the contract id is already taken.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    async fn tenant_by_contract(&self, contract_id: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant_by_admin_email(&self, email: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Writes `tenant` if the stored version still equals `tenant.version`; returns
    /// the stored tenant with its version bumped. Conflict otherwise.
    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<Tenant>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>>;
    /// Replaces the tokens only while the stored access token is `expected`
    /// (`None`: no tokens stored yet). Returns whether it wrote, so a slow caller
    /// never overwrites newer tokens with the older ones it started with.
    async fn swap_ne_tokens(
        &self,
        tenant: &TenantId,
        expected: Option<&str>,
        new: &NeTokens,
    ) -> StoreResult<bool>;
}

/// Where a product-id ↔ goods-code pair came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// Smaregi 商品コード read with `product_ref` (a cache).
    ProductCode,
    /// The operator's uploaded mapping table.
    Table,
}

#[async_trait]
pub trait ProductPairStore: Send + Sync {
    async fn product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
    ) -> StoreResult<Vec<ProductPair>>;
    /// `replace_all`: the table upload replaces every pair; the cache only adds.
    async fn put_product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
        pairs: &[ProductPair],
        replace_all: bool,
    ) -> StoreResult<()>;
}

// ---------------------------------------------------------------- ledger

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    pub appended: usize,
    pub duplicates: usize,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub new_batch_id: String,
    /// Who builds the batch (a run id); the lease is theirs until `lease_until`.
    pub owner: String,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub max_changes: usize,
}

#[derive(Debug, Clone)]
pub struct ClaimedBatch {
    pub batch_id: String,
    /// In the order they were appended.
    pub changes: Vec<StockChange>,
    /// True when an abandoned `Building` batch (expired lease) was taken over.
    pub resumed: bool,
}

#[async_trait]
pub trait StockLedger: Send + Sync {
    /// Appends all changes whose `dedupe_key` the tenant's ledger does not hold yet,
    /// all or nothing. Appending the same changes again changes nothing.
    async fn append_changes(
        &self,
        tenant: &TenantId,
        changes: &[StockChange],
    ) -> StoreResult<AppendOutcome>;

    /// Atomically moves pending changes into a new `Building` batch. At most one
    /// batch per tenant is `Building`: while another owner's lease runs this
    /// returns `None`; an expired one is taken over (`resumed`) with its changes.
    /// `None` too when nothing is pending.
    async fn claim_batch(
        &self,
        tenant: &TenantId,
        claim: &ClaimRequest,
    ) -> StoreResult<Option<ClaimedBatch>>;

    /// Hands `claim`'s `Building` batch back at once, so the next run rebuilds it
    /// instead of waiting for the lease: the same owner's claim with a lease that
    /// ends `now` (a claim renews its owner's own lease).
    async fn release_claim(
        &self,
        tenant: &TenantId,
        claim: &ClaimRequest,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let release = ClaimRequest {
            lease_until: now,
            ..claim.clone()
        };
        self.claim_batch(tenant, &release).await.map(|_| ())
    }

    async fn pending_changes(&self, tenant: &TenantId) -> StoreResult<usize>;

    /// When the pending change appended first reached the service: how long
    /// the oldest change has waited (the admin screen's lag).
    async fn oldest_pending_change(&self, tenant: &TenantId) -> StoreResult<Option<DateTime<Utc>>>;

    /// Every change not claimed by a batch yet, oldest first: what the drift
    /// radar counts as on its way to NextEngine.
    async fn pending_change_list(&self, tenant: &TenantId) -> StoreResult<Vec<StockChange>>;
    async fn changes_of_batch(
        &self,
        tenant: &TenantId,
        batch_id: &str,
    ) -> StoreResult<Vec<StockChange>>;
}

#[async_trait]
pub trait StockMirrorStore: Send + Sync {
    /// The mirror entries for the given (store, product) keys that exist.
    async fn mirror(&self, tenant: &TenantId, keys: &[StockKey]) -> StoreResult<Mirror>;
}

// ---------------------------------------------------------------- batches

pub use sne_domain::upload_batch::{
    BatchRuleError, BuiltContent, DecisionAction, FollowUp, FollowUpRequest, OperatorDecision,
    QueueCandidate, Transition, UploadBatch,
};

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// `Building` held by `owner` → `Built` (or `Empty` when there are no lines),
    /// with the mirror writes, atomically. Conflict when the batch is not
    /// `Building` or another owner holds it.
    async fn finish_build(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        owner: &str,
        content: &BuiltContent,
    ) -> StoreResult<UploadBatch>;

    /// Applies [`UploadBatch::apply`] to the stored record and writes the result
    /// only if the stored revision is still the one the step was planned on:
    /// Conflict otherwise, and for every step the domain refuses.
    async fn transition(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        transition: &Transition,
    ) -> StoreResult<UploadBatch>;

    /// Applies [`UploadBatch::start_follow_up`] to the failed batch `batch_id` and
    /// stores both records in one atomic step: the failed file marked as re-sent
    /// (only if its revision is still the one the request names) and the new
    /// `Built` batch. Conflict for every request the domain refuses, so a file's
    /// unapplied rows are re-sent once however often the button is pressed.
    async fn start_follow_up(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        request: &FollowUpRequest,
    ) -> StoreResult<UploadBatch>;

    /// Stores a `Built` batch made outside the ledger (an alignment's
    /// corrections) if no batch has its id yet: Conflict otherwise, so a
    /// retried or repeated request freezes the file once.
    async fn freeze_batch(&self, tenant: &TenantId, batch: &UploadBatch) -> StoreResult<()>;

    async fn batch(&self, tenant: &TenantId, batch_id: &str) -> StoreResult<Option<UploadBatch>>;

    /// Oldest first.
    async fn batches_in_state(
        &self,
        tenant: &TenantId,
        state: BatchState,
    ) -> StoreResult<Vec<UploadBatch>>;

    /// Newest first.
    async fn recent_batches(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<UploadBatch>>;

    /// All queue ids already recorded for the tenant (to recognise our own uploads).
    async fn known_que_ids(&self, tenant: &TenantId) -> StoreResult<Vec<QueId>>;

    /// Finished batches (`Succeeded`, `Failed`) no report has carried yet, oldest
    /// first, at most `limit`.
    async fn unreported_outcomes(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<UploadBatch>>;
}

// ---------------------------------------------------------------- cursors

#[async_trait]
pub trait CursorStore: Send + Sync {
    async fn cursor(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<String>>;
    /// Compare-and-set: writes only while the stored value is `expected`.
    async fn set_cursor(
        &self,
        tenant: &TenantId,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> StoreResult<bool>;
}

// ---------------------------------------------------------------- order import

pub use sne_domain::orders::{OrderImportRecord, OrderImportState};

#[async_trait]
pub trait OrderImportStore: Send + Sync {
    async fn order_record(
        &self,
        tenant: &TenantId,
        receive_order_id: &str,
    ) -> StoreResult<Option<OrderImportRecord>>;
    /// Writes the record if the stored state tag is `expected_tag` (`None`: absent).
    async fn put_order_record(
        &self,
        record: &OrderImportRecord,
        expected_tag: Option<&str>,
    ) -> StoreResult<()>;
    /// Newest first.
    async fn order_records(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<OrderImportRecord>>;
}

// ---------------------------------------------------------------- report outbox

pub use sne_domain::outbox::{OutboxReport, ReportClaim, StoredAttachment};

#[async_trait]
pub trait ReportOutbox: Send + Sync {
    /// Returns false when a report with this id was already enqueued (and then
    /// changes nothing). Otherwise stores it and marks every batch of
    /// `reported_batches` reported in it ([`UploadBatch::mark_reported`]), all or
    /// nothing: Conflict when one of them cannot be marked.
    async fn enqueue_report(&self, report: &OutboxReport) -> StoreResult<bool>;
    /// Unsent reports, oldest first (claimed or not).
    async fn pending_reports(&self, tenant: &TenantId) -> StoreResult<Vec<OutboxReport>>;
    /// Takes the report for sending until `lease_until`, as one conditional
    /// write: true only when it is unsent and no other owner's claim runs past
    /// `now`. False (and nothing written) otherwise; NotFound when absent.
    /// A sender sends only what it claimed, so two runs at once never send one
    /// report twice, and a crashed sender's report goes out once its lease ends.
    async fn claim_report(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Marks the report sent and ends the claim, only while `owner` holds it
    /// (see [`OutboxReport::mark_sent`]). False and nothing written otherwise.
    async fn mark_report_sent(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Counts a failed send and releases `owner`'s claim, so the next run
    /// retries at once. False and nothing written when the claim is not `owner`'s.
    async fn record_report_failure(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: &str,
    ) -> StoreResult<bool>;
    /// Newest first, sent or not.
    async fn recent_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<OutboxReport>>;
}

// ---------------------------------------------------------------- login throttle

/// The answer to [`LoginThrottle::reserve_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The attempt may be checked; it is the `nth` of the current window
    /// (1-based), counted already.
    Allowed { nth: u32 },
    /// The window's attempts are used up until `until`; nothing was counted.
    Locked { until: DateTime<Utc> },
}

#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Counts one login attempt of the tenant before its password is checked,
    /// in one atomic step with the check against the limit: at most `limit`
    /// attempts are ever allowed in a window, however many arrive at once. A
    /// window starts with the first attempt after the previous one ended and
    /// lasts `window`.
    async fn reserve_login_attempt(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> StoreResult<LoginAttempt>;
    /// Forgets the tenant's attempts (after a successful login).
    async fn reset_login_attempts(&self, tenant: &TenantId) -> StoreResult<()>;
}

// ---------------------------------------------------------------- blobs

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put_blob(&self, key: &str, bytes: &[u8], content_type: &str) -> StoreResult<()>;
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A time-limited link where the backend offers one (S3); `None` locally, where
    /// the admin screen serves the file itself.
    async fn download_url(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> StoreResult<Option<String>>;
}

/// Everything the jobs need from storage, as one object to pass around.
pub trait Storage:
    TenantStore
    + TokenStore
    + ProductPairStore
    + StockLedger
    + StockMirrorStore
    + BatchStore
    + CursorStore
    + OrderImportStore
    + ReportOutbox
    + LoginThrottle
{
}

impl<T> Storage for T where
    T: TenantStore
        + TokenStore
        + ProductPairStore
        + StockLedger
        + StockMirrorStore
        + BatchStore
        + CursorStore
        + OrderImportStore
        + ReportOutbox
        + LoginThrottle
{
}
