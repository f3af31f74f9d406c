//! Wrappers around every port a [`Context`] holds. They count calls and, at the
//! chosen call, let the run "crash": the call either never starts or runs to
//! completion (its effect happens), and then never resolves, while the driver is
//! told to drop the run's future. The NextEngine wrapper can also make a call
//! slow (the run spends time past the unknown-outcome grace before the call
//! goes out) or let the access token expire just before a call (rotation).
//!
//! An upload is the one call the service bounds with a deadline (below the
//! grace), on the runtime's timer, which the shared clock does not drive. A
//! slow upload is therefore what the deadline makes of it: the file reaches
//! NextEngine just before the deadline and the answer does not, so the service
//! sees its timeout. A file arriving later than that cannot happen in
//! production, where the timeout drops the request first.
//!
//! The runs of one event (two processes at once) share one [`Timeline`]: the
//! shared clock only moves while every one of them is spending time, as real
//! time does (see there), never under another run's steps.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sne_domain::batch_state::BatchState;
use sne_domain::complete::{Mirror, StockKey};
use sne_domain::tenant::{NeTokens, SmaregiCredentials, Tenant};
use sne_domain::{
    ChangeRow, GoodsCode, ProductId, ProductPair, QueId, StockChange, StoreId, TenantId,
};
use sne_ports::mail::MailError;
use sne_ports::nextengine::{
    GoodsStock, NeAuth, NeError, NeOrderRow, NextEngineApi, OrderRowQuery, QueueEntry, StockIoEntry,
};
use sne_ports::platform::{ChangedPair, SmaregiPlatformApi};
use sne_ports::smaregi::{
    NewShipment, ShipmentSummary, SmaregiApi, SmaregiError, SmaregiStore, StoreStock,
};
use sne_ports::*;
use sne_service::{Context, Core};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Which port a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Storage,
    NextEngine,
    Smaregi,
    Mail,
    /// The outbox call that records a mail as sent (or not sent).
    MailMark,
    Blob,
}

/// What one run's wrappers do, decided by the event that starts the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Crash at this call (0-based, counted over every port).
    pub crash_at: Option<usize>,
    /// Whether the crashing call takes effect before the run dies.
    pub crash_after_effect: bool,
    /// Whether a crashing mail send may take effect (a mail that went out but
    /// was never marked sent is sent again: at-least-once by nature).
    pub mail_crash_after_effect: bool,
    /// The n-th NextEngine call is slow: the clock passes the grace first.
    pub slow_ne_call: Option<usize>,
    /// Before the n-th NextEngine call the access token expires (rotation).
    /// NextEngine's token runs out then, the clock stays: moving it a day there
    /// would let a day pass between two steps of the run, e.g. between its
    /// `Uploading` mark and its upload call, which the upload deadline rules out
    /// (the other run of the event then found the batch a day old and never
    /// received, and sent it a second time; seed 7003 run 139).
    pub rotate_before_ne_call: Option<usize>,
    /// At this call (over every port) the run pauses while something else
    /// happens (a Smaregi change made in the middle of a run).
    pub pause_at: Option<usize>,
}

/// The virtual time of one event's runs.
///
/// Every run shares one clock, and a run's slow call moves it by minutes.
/// Moving it at once, while another run is in the middle of its own steps, is
/// something real time cannot do: those steps take milliseconds, so during
/// another run's slow call of minutes they are done long before the minutes
/// have passed. An upload the other run has in flight is answered, or dropped
/// by its deadline (on the runtime's timer, which the shared clock does not
/// drive); a mail it is sending is sent and marked sent. The soak used to jump
/// at once (and a token expiring in one run moved the clock a day), which let
/// the other run's upload look older than the unknown-outcome grace while its
/// call was still out (seed 9006 run 359: run B moved the clock a day while run
/// A's upload was being retried against an overloaded NextEngine; B found no
/// queue, sent the file again and A's attempt landed too: stock counted twice),
/// and let a report's send lease run out between its mail going out and its
/// "sent" mark (seed 9002 run 812: one report, four queue results, mailed
/// twice). The service's deadline and lease rule both out in production.
///
/// So time moves as in a discrete-event simulation: a run that spends time
/// ([`Timeline::spend`]) waits until every other run of the event has finished
/// or is spending time too; then the clock moves to the earliest end among
/// them and those runs go on. A single run spends its time at once.
pub struct Timeline {
    advance: Arc<dyn Fn(i64) + Send + Sync>,
    lanes: Mutex<Lanes>,
    moved: Notify,
}

#[derive(Default)]
struct Lanes {
    /// Runs of the event (gates) that have not finished.
    active: usize,
    /// Seconds the clock moved since the event began.
    elapsed: i64,
    /// When each run now spending time is done, in `elapsed` seconds.
    waking: Vec<i64>,
}

impl Timeline {
    pub fn new(advance: Arc<dyn Fn(i64) + Send + Sync>) -> Arc<Timeline> {
        Arc::new(Timeline {
            advance,
            lanes: Mutex::new(Lanes::default()),
            moved: Notify::new(),
        })
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join(&self) {
        self.lanes().active += 1;
    }

    fn leave(&self) {
        let mut lanes = self.lanes();
        lanes.active = lanes.active.saturating_sub(1);
        self.step(&mut lanes);
    }

    /// Moves the clock if every active run is spending time.
    fn step(&self, lanes: &mut Lanes) {
        let Some(&next) = lanes.waking.iter().min() else {
            return;
        };
        if next <= lanes.elapsed {
            // Someone is already due and about to go on.
            self.moved.notify_waiters();
            return;
        }
        if lanes.waking.len() < lanes.active {
            return;
        }
        (self.advance)(next - lanes.elapsed);
        lanes.elapsed = next;
        self.moved.notify_waiters();
    }

    /// The calling run spends `secs` seconds (a slow call): returns once the
    /// clock has moved that far.
    pub async fn spend(&self, secs: i64) {
        if secs <= 0 {
            return;
        }
        let until = {
            let mut lanes = self.lanes();
            let until = lanes.elapsed + secs;
            lanes.waking.push(until);
            self.step(&mut lanes);
            until
        };
        // Leaves `waking` however the wait ends (also when the run is dropped).
        struct Waiting<'a>(&'a Timeline, i64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let mut lanes = self.0.lanes();
                if let Some(i) = lanes.waking.iter().position(|&w| w == self.1) {
                    lanes.waking.swap_remove(i);
                }
                self.0.step(&mut lanes);
            }
        }
        let _waiting = Waiting(self, until);
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.lanes().elapsed >= until {
                return;
            }
            moved.await;
        }
    }
}

pub struct Gate {
    /// Tells the runs of one event apart in `SOAK_LOG` traces.
    id: usize,
    faults: Faults,
    calls: AtomicUsize,
    ne_calls: AtomicUsize,
    fired: AtomicBool,
    /// A mail went out and is not marked sent yet.
    mail_window: AtomicBool,
    /// Its reports are being marked sent (a digest has several).
    marking: AtomicBool,
    /// The crash point fell into a mail window: crash at the first call after it.
    deferred: AtomicBool,
    crashed: Notify,
    pub paused: Notify,
    pub resume: Notify,
    /// Shared with the other run of the event, if any; this gate is one of its runs.
    timeline: Arc<Timeline>,
    /// Lets NextEngine's access token run out now.
    expire_token: Arc<dyn Fn() + Send + Sync>,
    slow_secs: i64,
    /// The service's upload deadline, in seconds.
    deadline_secs: i64,
}

impl Drop for Gate {
    /// The run is over (finished or crashed and dropped): it no longer holds time back.
    fn drop(&mut self) {
        self.timeline.leave();
    }
}

impl Gate {
    /// A gate for one run of the event `timeline` belongs to. Create the gates
    /// of all runs of an event before starting any of them, so none spends time
    /// before the other has joined.
    pub fn new(
        faults: Faults,
        timeline: Arc<Timeline>,
        expire_token: Arc<dyn Fn() + Send + Sync>,
        slow_secs: i64,
        deadline_secs: i64,
    ) -> Gate {
        static GATES: AtomicUsize = AtomicUsize::new(0);
        timeline.join();
        Gate {
            id: GATES.fetch_add(1, Ordering::SeqCst),
            faults,
            calls: AtomicUsize::new(0),
            ne_calls: AtomicUsize::new(0),
            fired: AtomicBool::new(false),
            mail_window: AtomicBool::new(false),
            marking: AtomicBool::new(false),
            deferred: AtomicBool::new(false),
            crashed: Notify::new(),
            paused: Notify::new(),
            resume: Notify::new(),
            timeline,
            expire_token,
            slow_secs,
            deadline_secs,
        }
    }

    /// Resolves once the crash point was hit.
    pub async fn crashed(&self) {
        self.crashed.notified().await
    }

    pub fn has_crashed(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.crashed.notify_one();
    }

    async fn pass<T>(&self, port: Port, name: &str, call: impl Future<Output = T>) -> T {
        self.pass_bounded(port, name, false, call).await.0
    }

    /// [`Gate::pass`] for a call the service bounds with its upload deadline;
    /// also says whether the call was slow, i.e. the deadline ran out on it.
    async fn pass_bounded<T>(
        &self,
        port: Port,
        name: &str,
        bounded: bool,
        call: impl Future<Output = T>,
    ) -> (T, bool) {
        if self.has_crashed() {
            return std::future::pending().await;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(target: "soak::gate", gate = self.id, call = n, ?port, name, "call");
        if self.faults.pause_at == Some(n) {
            self.paused.notify_one();
            self.resume.notified().await;
        }
        let mut slow = false;
        if port == Port::NextEngine {
            let k = self.ne_calls.fetch_add(1, Ordering::SeqCst);
            if self.faults.rotate_before_ne_call == Some(k) {
                (self.expire_token)();
            }
            if self.faults.slow_ne_call == Some(k) {
                slow = true;
                let secs = if bounded {
                    (self.deadline_secs - 1).max(0)
                } else {
                    self.slow_secs
                };
                // The other run of the event, if any, goes on meanwhile.
                self.timeline.spend(secs).await;
            }
        }
        // A mail of several waiting reports (a digest) is marked sent report by
        // report: its window ends with the last mark, at the next other call.
        if port != Port::MailMark && self.marking.swap(false, Ordering::SeqCst) {
            self.mail_window.store(false, Ordering::SeqCst);
        }
        let window = self.mail_window.load(Ordering::SeqCst);
        let mut crash = self.faults.crash_at == Some(n);
        if !self.faults.mail_crash_after_effect {
            // Between a mail that went out and its "sent" mark any outbox is
            // at-least-once; a crash there says nothing about the service.
            if crash && window {
                self.deferred.store(true, Ordering::SeqCst);
                crash = false;
            } else if !window && self.deferred.swap(false, Ordering::SeqCst) {
                crash = true;
            }
        }
        if crash {
            tracing::debug!(target: "soak::gate", gate = self.id, call = n, name, "crash");
            let effect = self.faults.crash_after_effect
                && (port != Port::Mail || self.faults.mail_crash_after_effect);
            if effect {
                let _ = call.await;
            }
            self.fire();
            return std::future::pending().await;
        }
        let out = call.await;
        match port {
            Port::Mail => self.mail_window.store(true, Ordering::SeqCst),
            Port::MailMark => self.marking.store(true, Ordering::SeqCst),
            _ => {}
        }
        let timed_out = slow && bounded;
        if timed_out {
            self.timeline.spend(1).await;
        }
        (out, timed_out)
    }
}

/// `ctx` with every port behind `gate`.
pub fn gated(ctx: &Context, gate: Arc<Gate>) -> Context {
    Context {
        core: Core {
            storage: Arc::new(GatedStorage {
                inner: ctx.storage.clone(),
                gate: gate.clone(),
            }),
            blobs: Arc::new(GatedBlobs {
                inner: ctx.blobs.clone(),
                gate: gate.clone(),
            }),
            nextengine: Arc::new(GatedNe {
                inner: ctx.nextengine.clone(),
                gate: gate.clone(),
            }),
            smaregi: Arc::new(GatedSmaregi {
                inner: ctx.smaregi.clone(),
                gate: gate.clone(),
            }),
            platform: Arc::new(GatedPlatform {
                inner: ctx.platform.clone(),
                gate: gate.clone(),
            }),
            ..ctx.core.clone()
        },
        mailer: Arc::new(GatedMailer {
            inner: ctx.mailer.clone(),
            gate,
        }),
    }
}

pub struct GatedStorage {
    inner: Arc<dyn Storage>,
    gate: Arc<Gate>,
}

macro_rules! gated_storage {
    ($trait:ident { $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $trait for GatedStorage {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.gate.pass(Port::Storage, stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

gated_storage!(TenantStore {
    fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    fn tenant_by_contract(&self, contract_id: &str) -> StoreResult<Option<Tenant>>;
    fn tenant_by_admin_email(&self, email: &str) -> StoreResult<Option<Tenant>>;
    fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    fn update_tenant(&self, tenant: &Tenant) -> StoreResult<Tenant>;
});

gated_storage!(TokenStore {
    fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>>;
    fn swap_ne_tokens(&self, tenant: &TenantId, expected: Option<&str>, new: &NeTokens) -> StoreResult<bool>;
});

gated_storage!(ProductPairStore {
    fn product_pairs(&self, tenant: &TenantId, source: PairSource) -> StoreResult<Vec<ProductPair>>;
    fn put_product_pairs(&self, tenant: &TenantId, source: PairSource, pairs: &[ProductPair], replace_all: bool) -> StoreResult<()>;
});

gated_storage!(StockLedger {
    fn append_changes(&self, tenant: &TenantId, changes: &[StockChange]) -> StoreResult<AppendOutcome>;
    fn claim_batch(&self, tenant: &TenantId, claim: &ClaimRequest) -> StoreResult<Option<ClaimedBatch>>;
    fn pending_changes(&self, tenant: &TenantId) -> StoreResult<usize>;
    fn oldest_pending_change(&self, tenant: &TenantId) -> StoreResult<Option<DateTime<Utc>>>;
    fn pending_change_list(&self, tenant: &TenantId) -> StoreResult<Vec<StockChange>>;
    fn changes_of_batch(&self, tenant: &TenantId, batch_id: &str) -> StoreResult<Vec<StockChange>>;
});

gated_storage!(StockMirrorStore {
    fn mirror(&self, tenant: &TenantId, keys: &[StockKey]) -> StoreResult<Mirror>;
});

gated_storage!(BatchStore {
    fn finish_build(&self, tenant: &TenantId, batch_id: &str, owner: &str, content: &BuiltContent) -> StoreResult<UploadBatch>;
    fn transition(&self, tenant: &TenantId, batch_id: &str, transition: &Transition) -> StoreResult<UploadBatch>;
    fn start_follow_up(&self, tenant: &TenantId, batch_id: &str, request: &FollowUpRequest) -> StoreResult<UploadBatch>;
    fn freeze_batch(&self, tenant: &TenantId, batch: &UploadBatch) -> StoreResult<()>;
    fn batch(&self, tenant: &TenantId, batch_id: &str) -> StoreResult<Option<UploadBatch>>;
    fn batches_in_state(&self, tenant: &TenantId, state: BatchState) -> StoreResult<Vec<UploadBatch>>;
    fn recent_batches(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<UploadBatch>>;
    fn known_que_ids(&self, tenant: &TenantId) -> StoreResult<Vec<QueId>>;
    fn unreported_outcomes(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<UploadBatch>>;
});

gated_storage!(LoginThrottle {
    fn reserve_login_attempt(&self, tenant: &TenantId, now: DateTime<Utc>, window: chrono::Duration, limit: u32) -> StoreResult<LoginAttempt>;
    fn reset_login_attempts(&self, tenant: &TenantId) -> StoreResult<()>;
});

gated_storage!(CursorStore {
    fn cursor(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<String>>;
    fn set_cursor(&self, tenant: &TenantId, name: &str, expected: Option<&str>, value: &str) -> StoreResult<bool>;
});

gated_storage!(OrderImportStore {
    fn order_record(&self, tenant: &TenantId, receive_order_id: &str) -> StoreResult<Option<OrderImportRecord>>;
    fn put_order_record(&self, record: &OrderImportRecord, expected_tag: Option<&str>) -> StoreResult<()>;
    fn order_records(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<OrderImportRecord>>;
});

#[async_trait]
impl ReportOutbox for GatedStorage {
    async fn enqueue_report(&self, report: &OutboxReport) -> StoreResult<bool> {
        self.gate
            .pass(
                Port::Storage,
                "enqueue_report",
                self.inner.enqueue_report(report),
            )
            .await
    }
    async fn pending_reports(&self, tenant: &TenantId) -> StoreResult<Vec<OutboxReport>> {
        self.gate
            .pass(
                Port::Storage,
                "pending_reports",
                self.inner.pending_reports(tenant),
            )
            .await
    }
    async fn claim_report(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.gate
            .pass(
                Port::Storage,
                "claim_report",
                self.inner.claim_report(tenant, id, owner, now, lease_until),
            )
            .await
    }
    async fn mark_report_sent(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.gate
            .pass(
                Port::MailMark,
                "mark_report_sent",
                self.inner.mark_report_sent(tenant, id, owner, at),
            )
            .await
    }
    async fn record_report_failure(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: &str,
    ) -> StoreResult<bool> {
        self.gate
            .pass(
                Port::MailMark,
                "record_report_failure",
                self.inner.record_report_failure(tenant, id, owner, error),
            )
            .await
    }
    async fn recent_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> StoreResult<Vec<OutboxReport>> {
        self.gate
            .pass(
                Port::Storage,
                "recent_reports",
                self.inner.recent_reports(tenant, limit),
            )
            .await
    }
}

pub struct GatedBlobs {
    inner: Arc<dyn BlobStore>,
    gate: Arc<Gate>,
}

#[async_trait]
impl BlobStore for GatedBlobs {
    async fn put_blob(&self, key: &str, bytes: &[u8], content_type: &str) -> StoreResult<()> {
        self.gate
            .pass(
                Port::Blob,
                "put_blob",
                self.inner.put_blob(key, bytes, content_type),
            )
            .await
    }
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.gate
            .pass(Port::Blob, "get_blob", self.inner.get_blob(key))
            .await
    }
    async fn download_url(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> StoreResult<Option<String>> {
        self.gate
            .pass(
                Port::Blob,
                "download_url",
                self.inner.download_url(key, expires_in),
            )
            .await
    }
}

pub struct GatedMailer {
    inner: Arc<dyn Mailer>,
    gate: Arc<Gate>,
}

#[async_trait]
impl Mailer for GatedMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        self.gate
            .pass(Port::Mail, "send", self.inner.send(mail))
            .await
    }
}

pub struct GatedNe {
    inner: Arc<dyn NextEngineApi>,
    gate: Arc<Gate>,
}

#[async_trait]
impl NextEngineApi for GatedNe {
    fn sign_in_url(&self) -> String {
        self.inner.sign_in_url()
    }
    async fn authorize(&self, uid: &str, state: &str) -> Result<NeAuth, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "authorize",
                self.inner.authorize(uid, state),
            )
            .await
    }
    async fn existing_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "existing_goods",
                self.inner.existing_goods(tenant, codes),
            )
            .await
    }
    async fn goods_stock(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<Vec<GoodsStock>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "goods_stock",
                self.inner.goods_stock(tenant, codes),
            )
            .await
    }
    async fn set_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "set_goods",
                self.inner.set_goods(tenant, codes),
            )
            .await
    }
    async fn upload_stock_csv(&self, tenant: &TenantId, csv: &[u8]) -> Result<QueId, NeError> {
        let (out, timed_out) = self
            .gate
            .pass_bounded(
                Port::NextEngine,
                "upload_stock_csv",
                true,
                self.inner.upload_stock_csv(tenant, csv),
            )
            .await;
        if timed_out {
            // What the service's own timeout makes of an answer past its deadline.
            return Err(NeError::Transport(
                "no answer within the upload deadline".into(),
            ));
        }
        out
    }
    async fn queues_by_id(
        &self,
        tenant: &TenantId,
        que_ids: &[QueId],
    ) -> Result<Vec<QueueEntry>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "queues_by_id",
                self.inner.queues_by_id(tenant, que_ids),
            )
            .await
    }
    async fn goods_upload_queues_since(
        &self,
        tenant: &TenantId,
        since: NaiveDateTime,
    ) -> Result<Vec<QueueEntry>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "goods_upload_queues_since",
                self.inner.goods_upload_queues_since(tenant, since),
            )
            .await
    }
    async fn stock_io_history(
        &self,
        tenant: &TenantId,
        goods_codes: &[GoodsCode],
        since: NaiveDateTime,
    ) -> Result<Vec<StockIoEntry>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "stock_io_history",
                self.inner.stock_io_history(tenant, goods_codes, since),
            )
            .await
    }
    async fn order_rows(
        &self,
        tenant: &TenantId,
        query: &OrderRowQuery,
    ) -> Result<Vec<NeOrderRow>, NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "order_rows",
                self.inner.order_rows(tenant, query),
            )
            .await
    }
    async fn keep_tokens_alive(&self, tenant: &TenantId) -> Result<(), NeError> {
        self.gate
            .pass(
                Port::NextEngine,
                "keep_tokens_alive",
                self.inner.keep_tokens_alive(tenant),
            )
            .await
    }
}

pub struct GatedPlatform {
    inner: Arc<dyn SmaregiPlatformApi>,
    gate: Arc<Gate>,
}

#[async_trait]
impl SmaregiPlatformApi for GatedPlatform {
    async fn check_contract(&self, contract_id: &str) -> Result<(), SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "platform.check_contract",
                self.inner.check_contract(contract_id),
            )
            .await
    }
    async fn changed_pairs(
        &self,
        contract_id: &str,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<ChangedPair>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "platform.changed_pairs",
                self.inner.changed_pairs(contract_id, from, to),
            )
            .await
    }
    async fn pair_changes(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        after_id: u64,
        since: NaiveDateTime,
    ) -> Result<Vec<ChangeRow>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "platform.pair_changes",
                self.inner
                    .pair_changes(contract_id, product, store, after_id, since),
            )
            .await
    }
    async fn change(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        id: u64,
    ) -> Result<Option<ChangeRow>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "platform.change",
                self.inner.change(contract_id, product, store, id),
            )
            .await
    }
    async fn add_stock(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        delta: i64,
        memo: &str,
    ) -> Result<u64, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "platform.add_stock",
                self.inner
                    .add_stock(contract_id, product, store, delta, memo),
            )
            .await
    }
}

pub struct GatedSmaregi {
    inner: Arc<dyn SmaregiApi>,
    gate: Arc<Gate>,
}

#[async_trait]
impl SmaregiApi for GatedSmaregi {
    async fn stock_history_after(
        &self,
        creds: &SmaregiCredentials,
        after_id: u64,
        max_rows: usize,
    ) -> Result<Vec<ChangeRow>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "stock_history_after",
                self.inner.stock_history_after(creds, after_id, max_rows),
            )
            .await
    }
    async fn latest_stock_history_id(
        &self,
        creds: &SmaregiCredentials,
    ) -> Result<Option<u64>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "latest_stock_history_id",
                self.inner.latest_stock_history_id(creds),
            )
            .await
    }
    async fn product_codes(
        &self,
        creds: &SmaregiCredentials,
        product_ids: &[ProductId],
    ) -> Result<Vec<ProductPair>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "product_codes",
                self.inner.product_codes(creds, product_ids),
            )
            .await
    }
    async fn stores(&self, creds: &SmaregiCredentials) -> Result<Vec<SmaregiStore>, SmaregiError> {
        self.gate
            .pass(Port::Smaregi, "stores", self.inner.stores(creds))
            .await
    }
    async fn stock_of_stores(
        &self,
        creds: &SmaregiCredentials,
        store_ids: &[StoreId],
    ) -> Result<Vec<StoreStock>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "stock_of_stores",
                self.inner.stock_of_stores(creds, store_ids),
            )
            .await
    }
    async fn shipments_by_identification(
        &self,
        creds: &SmaregiCredentials,
        identification_no: &str,
    ) -> Result<Vec<ShipmentSummary>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "shipments_by_identification",
                self.inner
                    .shipments_by_identification(creds, identification_no),
            )
            .await
    }
    async fn create_shipment(
        &self,
        creds: &SmaregiCredentials,
        shipment: &NewShipment,
    ) -> Result<Option<String>, SmaregiError> {
        self.gate
            .pass(
                Port::Smaregi,
                "create_shipment",
                self.inner.create_shipment(creds, shipment),
            )
            .await
    }
}
