//! All storage ports on one SQLite file.
//!
//! Several processes use the file at once (`serve` next to `run upload`), so the
//! file is in WAL mode, waits for locks instead of failing at once, and every
//! read-modify-write runs in a `BEGIN IMMEDIATE` transaction: the write lock is
//! taken before anything is read, so two writers never decide on the same stale
//! state. Conditions are checked inside that transaction; a failed one returns an
//! error, which drops the transaction and so rolls back whatever was written.
//!
//! Values the store never queries on are kept as JSON; everything a query or a
//! condition uses is a real column, with the uniqueness rules as constraints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sne_domain::batch_state::BatchState;
use sne_domain::complete::{Mirror, MirrorEntry, StockKey};
use sne_domain::tenant::{NeTokens, Tenant};
use sne_domain::{ProductPair, QueId, StockChange, TenantId};
use sne_ports::{
    AppendOutcome, BatchRuleError, BatchStore, BuiltContent, ClaimRequest, ClaimedBatch,
    CursorStore, FollowUpRequest, OrderImportRecord, OrderImportStore, OutboxReport, PairSource,
    ProductPairStore, ReportOutbox, StockLedger, StockMirrorStore, StoreError, StoreResult,
    TenantStore, TokenStore, Transition, UploadBatch,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub const DB_FILE_NAME: &str = "smaregi-ne.sqlite3";

/// How long a writer waits for another process's transaction before giving up
/// with [`StoreError::Unavailable`]. Transactions here are short; a long wait
/// means something is stuck, and the caller's retry is the better remedy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Each entry upgrades the schema by one version; `PRAGMA user_version` records
/// how many have run. Append new steps, never edit old ones: files written by an
/// older binary are upgraded in place when opened.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL UNIQUE,
    admin_email TEXT NOT NULL,
    version     INTEGER NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX tenants_by_admin_email ON tenants (admin_email);

CREATE TABLE ne_tokens (
    tenant_id    TEXT PRIMARY KEY,
    access_token TEXT NOT NULL,
    data         TEXT NOT NULL
);

CREATE TABLE product_pairs (
    tenant_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    product_id TEXT NOT NULL,
    goods_code TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source, product_id)
);

-- seq is AUTOINCREMENT so a number is never reused: claims follow append order.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    batch_id   TEXT,
    data       TEXT NOT NULL,
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX changes_by_batch ON changes (tenant_id, batch_id, seq);

CREATE TABLE batches (
    tenant_id   TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER,
    que_id      TEXT,
    data        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, batch_id)
);
-- The ledger's promise "at most one Building batch per tenant", enforced by the
-- file itself and not only by the code that claims.
CREATE UNIQUE INDEX batches_one_building ON batches (tenant_id) WHERE state = 'building';
CREATE INDEX batches_by_state ON batches (tenant_id, state, created_at);
CREATE INDEX batches_by_que_id ON batches (tenant_id, que_id);

CREATE TABLE mirror (
    tenant_id  TEXT NOT NULL,
    store_id   TEXT NOT NULL,
    product_id TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, store_id, product_id)
);

CREATE TABLE cursors (
    tenant_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE order_records (
    tenant_id        TEXT NOT NULL,
    receive_order_id TEXT NOT NULL,
    state_tag        TEXT NOT NULL,
    updated_at       INTEGER NOT NULL,
    data             TEXT NOT NULL,
    PRIMARY KEY (tenant_id, receive_order_id)
);
CREATE INDEX order_records_by_time ON order_records (tenant_id, updated_at);

CREATE TABLE reports (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER,
    data       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reports_by_time ON reports (tenant_id, created_at);
"#,
    r#"
-- Finished batches whose outcome no report has told yet. Batches finished under
-- an older binary were reported by it, so they start at 0.
ALTER TABLE batches ADD COLUMN awaits_report INTEGER NOT NULL DEFAULT 0;
CREATE INDEX batches_awaiting_report ON batches (tenant_id, created_at) WHERE awaits_report = 1;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Every storage port on one SQLite file. Clones share one connection; a second
/// [`SqliteStore::open`] on the same directory is an independent connection and
/// behaves exactly like another process.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) `<data_dir>/smaregi-ne.sqlite3`
    /// and brings its schema up to date.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE_NAME);
        let mut conn = Connection::open(&path)
            .with_context(|| format!("opening database {}", path.display()))?;
        // Set first: switching to WAL and migrating may have to wait for another process.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "database {} cannot use WAL journaling (got {mode}); is it on a network file system?",
            path.display()
        );
        // Changes are acknowledged to Smaregi once stored: a commit must survive a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn).with_context(|| format!("migrating database {}", path.display()))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking SQLite work off the async runtime's worker threads.
    async fn with_conn<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic inside `work` dropped its transaction, which rolled back: the
            // connection is still sound, so a poisoned lock is no reason to stop.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
    }

    async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // A deferred transaction, so reads of several statements see one snapshot.
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(db)?;
            let out = work(&tx)?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
        .await
    }

    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let out = work(&tx)?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    // Immediate: two processes opening a new file at once must not both create it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    anyhow::ensure!(
        (0..=SCHEMA_VERSION).contains(&version),
        "schema version {version} is newer than this binary's {SCHEMA_VERSION}; upgrade smaregi-ne"
    );
    for step in &MIGRATIONS[version as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------- helpers

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// A step the batch rules refuse is the caller's conflict: it read an older record.
fn rule(e: BatchRuleError) -> StoreError {
    StoreError::Conflict(e.to_string())
}

/// A uniqueness violation is the caller's conflict, anything else the backend's failure.
fn conflict_or_db(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(err, _) if err.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict(what())
        }
        _ => db(e),
    }
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode value: {e}")))
}

fn from_json<T: DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unavailable(format!("stored value is unreadable: {e}")))
}

/// Instants in columns are microseconds, so they compare and sort as numbers; the
/// JSON copy keeps the full value.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn query_json<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Option<T>> {
    let text: Option<String> = conn
        .query_row(sql, params, |row| row.get(0))
        .optional()
        .map_err(db)?;
    text.as_deref().map(from_json).transpose()
}

fn query_json_list<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt
        .query_map(params, |row| row.get::<_, String>(0))
        .map_err(db)?;
    rows.map(|text| from_json(&text.map_err(db)?)).collect()
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn pair_source(source: PairSource) -> &'static str {
    match source {
        PairSource::ProductCode => "product_code",
        PairSource::Table => "table",
    }
}

fn load_batch(conn: &Connection, tenant: &str, batch_id: &str) -> StoreResult<Option<UploadBatch>> {
    query_json(
        conn,
        "SELECT data FROM batches WHERE tenant_id = ?1 AND batch_id = ?2",
        params![tenant, batch_id],
    )
}

fn insert_batch(conn: &Connection, batch: &UploadBatch) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO batches (tenant_id, batch_id, state, created_at, owner, lease_until, que_id, data, awaits_report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            batch.tenant_id.as_str(),
            batch.batch_id,
            batch.state.as_str(),
            micros(batch.created_at),
            batch.owner,
            batch.lease_until.map(micros),
            batch.que_id.as_deref(),
            to_json(batch)?,
            batch.awaits_report(),
        ],
    )
    .map_err(|e| {
        conflict_or_db(e, || {
            format!(
                "batch {} exists, or another batch is building",
                batch.batch_id
            )
        })
    })?;
    Ok(())
}

fn update_batch(conn: &Connection, batch: &UploadBatch) -> StoreResult<()> {
    conn.execute(
        "UPDATE batches SET state = ?3, owner = ?4, lease_until = ?5, que_id = ?6, data = ?7,
             awaits_report = ?8
         WHERE tenant_id = ?1 AND batch_id = ?2",
        params![
            batch.tenant_id.as_str(),
            batch.batch_id,
            batch.state.as_str(),
            batch.owner,
            batch.lease_until.map(micros),
            batch.que_id.as_deref(),
            to_json(batch)?,
            batch.awaits_report(),
        ],
    )
    .map_err(|e| {
        conflict_or_db(e, || {
            format!("another batch is building than {}", batch.batch_id)
        })
    })?;
    Ok(())
}

fn changes_of(conn: &Connection, tenant: &str, batch_id: &str) -> StoreResult<Vec<StockChange>> {
    query_json_list(
        conn,
        "SELECT data FROM changes WHERE tenant_id = ?1 AND batch_id = ?2 ORDER BY seq",
        params![tenant, batch_id],
    )
}

fn load_report(conn: &Connection, tenant: &str, id: &str) -> StoreResult<OutboxReport> {
    query_json(
        conn,
        "SELECT data FROM reports WHERE tenant_id = ?1 AND id = ?2",
        params![tenant, id],
    )?
    .ok_or_else(|| StoreError::NotFound(format!("report {id}")))
}

fn save_report(conn: &Connection, report: &OutboxReport) -> StoreResult<()> {
    conn.execute(
        "UPDATE reports SET sent_at = ?3, data = ?4 WHERE tenant_id = ?1 AND id = ?2",
        params![
            report.tenant_id.as_str(),
            report.id,
            report.sent_at.map(micros),
            to_json(report)?,
        ],
    )
    .map_err(db)?;
    Ok(())
}

impl SqliteStore {
    /// Loads the report, lets `change` decide and edit, and writes it back when
    /// it says so, all in one `BEGIN IMMEDIATE` transaction: the decision is
    /// made on the state no other writer can change before the write.
    async fn change_report(
        &self,
        tenant: &TenantId,
        id: &str,
        change: impl FnOnce(&mut OutboxReport) -> bool + Send + 'static,
    ) -> StoreResult<bool> {
        let tenant = tenant.0.clone();
        let id = id.to_string();
        self.write(move |tx| {
            let mut report = load_report(tx, &tenant, &id)?;
            if !change(&mut report) {
                return Ok(false);
            }
            save_report(tx, &report)?;
            Ok(true)
        })
        .await
    }
}

// ---------------------------------------------------------------- tenants

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tenants (id, contract_id, admin_email, version, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    tenant.id.as_str(),
                    tenant.contract_id,
                    tenant.admin_email,
                    tenant.version as i64,
                    to_json(&tenant)?,
                ],
            )
            .map_err(|e| {
                conflict_or_db(e, || {
                    format!(
                        "tenant {} or contract {} already exists",
                        tenant.id, tenant.contract_id
                    )
                })
            })?;
            Ok(())
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let id = id.0.clone();
        self.read(move |conn| query_json(conn, "SELECT data FROM tenants WHERE id = ?1", [id]))
            .await
    }

    async fn tenant_by_contract(&self, contract_id: &str) -> StoreResult<Option<Tenant>> {
        let contract_id = contract_id.to_string();
        self.read(move |conn| {
            query_json(
                conn,
                "SELECT data FROM tenants WHERE contract_id = ?1",
                [contract_id],
            )
        })
        .await
    }

    async fn tenant_by_admin_email(&self, email: &str) -> StoreResult<Option<Tenant>> {
        let email = email.to_string();
        self.read(move |conn| {
            query_json(
                conn,
                "SELECT data FROM tenants WHERE admin_email = ?1 ORDER BY rowid LIMIT 1",
                [email],
            )
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|conn| query_json_list(conn, "SELECT data FROM tenants ORDER BY rowid", []))
            .await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<Tenant> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT version FROM tenants WHERE id = ?1",
                    [tenant.id.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db)?;
            match stored {
                None => return Err(StoreError::NotFound(format!("tenant {}", tenant.id))),
                Some(version) if version != tenant.version as i64 => {
                    return Err(StoreError::Conflict(format!(
                        "tenant {} changed since version {} (now {version})",
                        tenant.id, tenant.version
                    )));
                }
                Some(_) => {}
            }
            let mut next = tenant;
            next.version += 1;
            tx.execute(
                "UPDATE tenants SET contract_id = ?2, admin_email = ?3, version = ?4, data = ?5
                 WHERE id = ?1",
                params![
                    next.id.as_str(),
                    next.contract_id,
                    next.admin_email,
                    next.version as i64,
                    to_json(&next)?,
                ],
            )
            .map_err(|e| {
                conflict_or_db(e, || {
                    format!("contract {} belongs to another tenant", next.contract_id)
                })
            })?;
            Ok(next)
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json(
                conn,
                "SELECT data FROM ne_tokens WHERE tenant_id = ?1",
                [tenant],
            )
        })
        .await
    }

    async fn swap_ne_tokens(
        &self,
        tenant: &TenantId,
        expected: Option<&str>,
        new: &NeTokens,
    ) -> StoreResult<bool> {
        let tenant = tenant.0.clone();
        let expected = expected.map(str::to_string);
        let new = new.clone();
        self.write(move |tx| {
            let data = to_json(&new)?;
            let written = match expected {
                None => tx.execute(
                    "INSERT INTO ne_tokens (tenant_id, access_token, data) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id) DO NOTHING",
                    params![tenant, new.access_token, data],
                ),
                Some(expected) => tx.execute(
                    "UPDATE ne_tokens SET access_token = ?3, data = ?4
                     WHERE tenant_id = ?1 AND access_token = ?2",
                    params![tenant, expected, new.access_token, data],
                ),
            }
            .map_err(db)?;
            Ok(written == 1)
        })
        .await
    }
}

#[async_trait]
impl ProductPairStore for SqliteStore {
    async fn product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
    ) -> StoreResult<Vec<ProductPair>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT product_id, goods_code FROM product_pairs
                     WHERE tenant_id = ?1 AND source = ?2 ORDER BY product_id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![tenant, pair_source(source)], |row| {
                    Ok(ProductPair::new(
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                    ))
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn put_product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
        pairs: &[ProductPair],
        replace_all: bool,
    ) -> StoreResult<()> {
        let tenant = tenant.0.clone();
        let pairs = pairs.to_vec();
        self.write(move |tx| {
            let source = pair_source(source);
            if replace_all {
                tx.execute(
                    "DELETE FROM product_pairs WHERE tenant_id = ?1 AND source = ?2",
                    params![tenant, source],
                )
                .map_err(db)?;
            }
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO product_pairs (tenant_id, source, product_id, goods_code)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id, source, product_id)
                     DO UPDATE SET goods_code = excluded.goods_code",
                )
                .map_err(db)?;
            for pair in &pairs {
                stmt.execute(params![
                    tenant,
                    source,
                    pair.product_id.as_str(),
                    pair.goods_code.as_str()
                ])
                .map_err(db)?;
            }
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------- ledger

#[async_trait]
impl StockLedger for SqliteStore {
    async fn append_changes(
        &self,
        tenant: &TenantId,
        changes: &[StockChange],
    ) -> StoreResult<AppendOutcome> {
        let tenant = tenant.0.clone();
        let changes = changes.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO changes (tenant_id, dedupe_key, data) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
                )
                .map_err(db)?;
            let mut outcome = AppendOutcome::default();
            for change in &changes {
                let inserted = stmt
                    .execute(params![tenant, change.dedupe_key, to_json(change)?])
                    .map_err(db)?;
                if inserted == 1 {
                    outcome.appended += 1;
                } else {
                    outcome.duplicates += 1;
                }
            }
            Ok(outcome)
        })
        .await
    }

    async fn claim_batch(
        &self,
        tenant: &TenantId,
        claim: &ClaimRequest,
    ) -> StoreResult<Option<ClaimedBatch>> {
        let tenant = tenant.clone();
        let claim = claim.clone();
        self.write(move |tx| {
            let building: Option<UploadBatch> = query_json(
                tx,
                "SELECT data FROM batches WHERE tenant_id = ?1 AND state = 'building'",
                [tenant.as_str()],
            )?;
            if let Some(batch) = building {
                if !batch.claimable_by(&claim.owner, claim.now) {
                    return Ok(None);
                }
                let batch = batch
                    .take_over(&claim.owner, claim.now, claim.lease_until)
                    .map_err(rule)?;
                update_batch(tx, &batch)?;
                let changes = changes_of(tx, tenant.as_str(), &batch.batch_id)?;
                return Ok(Some(ClaimedBatch {
                    batch_id: batch.batch_id,
                    changes,
                    resumed: true,
                }));
            }

            let pending: i64 = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM changes WHERE tenant_id = ?1 AND batch_id IS NULL)",
                    [tenant.as_str()],
                    |row| row.get(0),
                )
                .map_err(db)?;
            if pending == 0 {
                return Ok(None);
            }
            let batch = UploadBatch::building(
                tenant.clone(),
                claim.new_batch_id.clone(),
                claim.owner,
                claim.now,
                claim.lease_until,
            );
            insert_batch(tx, &batch)?;
            // A batch of zero changes would be built for nothing, so 0 still takes one.
            tx.execute(
                "UPDATE changes SET batch_id = ?2 WHERE seq IN (
                     SELECT seq FROM changes WHERE tenant_id = ?1 AND batch_id IS NULL
                     ORDER BY seq LIMIT ?3)",
                params![tenant.as_str(), batch.batch_id, limit(claim.max_changes.max(1))],
            )
            .map_err(db)?;
            let changes = changes_of(tx, tenant.as_str(), &batch.batch_id)?;
            Ok(Some(ClaimedBatch {
                batch_id: batch.batch_id,
                changes,
                resumed: false,
            }))
        })
        .await
    }

    async fn pending_changes(&self, tenant: &TenantId) -> StoreResult<usize> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            let count: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM changes WHERE tenant_id = ?1 AND batch_id IS NULL",
                    [tenant],
                    |row| row.get(0),
                )
                .map_err(db)?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn oldest_pending_change(&self, tenant: &TenantId) -> StoreResult<Option<DateTime<Utc>>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            let oldest: Option<StockChange> = query_json(
                conn,
                "SELECT data FROM changes WHERE tenant_id = ?1 AND batch_id IS NULL ORDER BY seq LIMIT 1",
                params![tenant],
            )?;
            Ok(oldest.map(|c| c.received_at))
        })
        .await
    }

    async fn pending_change_list(&self, tenant: &TenantId) -> StoreResult<Vec<StockChange>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM changes WHERE tenant_id = ?1 AND batch_id IS NULL ORDER BY seq",
                params![tenant],
            )
        })
        .await
    }

    async fn changes_of_batch(
        &self,
        tenant: &TenantId,
        batch_id: &str,
    ) -> StoreResult<Vec<StockChange>> {
        let tenant = tenant.0.clone();
        let batch_id = batch_id.to_string();
        self.read(move |conn| changes_of(conn, &tenant, &batch_id))
            .await
    }
}

#[async_trait]
impl StockMirrorStore for SqliteStore {
    async fn mirror(&self, tenant: &TenantId, keys: &[StockKey]) -> StoreResult<Mirror> {
        let tenant = tenant.0.clone();
        let keys = keys.to_vec();
        self.read(move |conn| {
            let mut mirror = Mirror::new();
            for key in keys {
                let entry: Option<MirrorEntry> = query_json(
                    conn,
                    "SELECT data FROM mirror WHERE tenant_id = ?1 AND store_id = ?2 AND product_id = ?3",
                    params![tenant, key.store_id.as_str(), key.product_id.as_str()],
                )?;
                if let Some(entry) = entry {
                    mirror.insert(key, entry);
                }
            }
            Ok(mirror)
        })
        .await
    }
}

// ---------------------------------------------------------------- batches

#[async_trait]
impl BatchStore for SqliteStore {
    async fn finish_build(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        owner: &str,
        content: &BuiltContent,
    ) -> StoreResult<UploadBatch> {
        let tenant = tenant.0.clone();
        let batch_id = batch_id.to_string();
        let owner = owner.to_string();
        let content = content.clone();
        self.write(move |tx| {
            let batch = load_batch(tx, &tenant, &batch_id)?
                .ok_or_else(|| StoreError::NotFound(format!("batch {batch_id}")))?
                .freeze(&owner, &content)
                .map_err(rule)?;
            update_batch(tx, &batch)?;

            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO mirror (tenant_id, store_id, product_id, data) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id, store_id, product_id) DO UPDATE SET data = excluded.data",
                )
                .map_err(db)?;
            for (key, entry) in &content.mirror_updates {
                stmt.execute(params![tenant, key.store_id.as_str(), key.product_id.as_str(), to_json(entry)?])
                    .map_err(db)?;
            }
            Ok(batch)
        })
        .await
    }

    async fn transition(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        transition: &Transition,
    ) -> StoreResult<UploadBatch> {
        let tenant = tenant.0.clone();
        let batch_id = batch_id.to_string();
        let t = transition.clone();
        self.write(move |tx| {
            let batch = load_batch(tx, &tenant, &batch_id)?
                .ok_or_else(|| StoreError::NotFound(format!("batch {batch_id}")))?
                .apply(&t)
                .map_err(rule)?;
            update_batch(tx, &batch)?;
            Ok(batch)
        })
        .await
    }

    async fn start_follow_up(
        &self,
        tenant: &TenantId,
        batch_id: &str,
        request: &FollowUpRequest,
    ) -> StoreResult<UploadBatch> {
        let tenant = tenant.0.clone();
        let batch_id = batch_id.to_string();
        let request = request.clone();
        self.write(move |tx| {
            let (source, resend) = load_batch(tx, &tenant, &batch_id)?
                .ok_or_else(|| StoreError::NotFound(format!("batch {batch_id}")))?
                .start_follow_up(&request)
                .map_err(rule)?;
            update_batch(tx, &source)?;
            insert_batch(tx, &resend)?;
            Ok(resend)
        })
        .await
    }

    async fn freeze_batch(&self, tenant: &TenantId, batch: &UploadBatch) -> StoreResult<()> {
        batch.check_freezable(tenant).map_err(rule)?;
        let batch = batch.clone();
        self.write(move |tx| insert_batch(tx, &batch)).await
    }

    async fn batch(&self, tenant: &TenantId, batch_id: &str) -> StoreResult<Option<UploadBatch>> {
        let tenant = tenant.0.clone();
        let batch_id = batch_id.to_string();
        self.read(move |conn| load_batch(conn, &tenant, &batch_id))
            .await
    }

    async fn batches_in_state(
        &self,
        tenant: &TenantId,
        state: BatchState,
    ) -> StoreResult<Vec<UploadBatch>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM batches WHERE tenant_id = ?1 AND state = ?2
                 ORDER BY created_at, rowid",
                params![tenant, state.as_str()],
            )
        })
        .await
    }

    async fn recent_batches(
        &self,
        tenant: &TenantId,
        limit_to: usize,
    ) -> StoreResult<Vec<UploadBatch>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM batches WHERE tenant_id = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
                params![tenant, limit(limit_to)],
            )
        })
        .await
    }

    async fn known_que_ids(&self, tenant: &TenantId) -> StoreResult<Vec<QueId>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT DISTINCT que_id FROM batches
                     WHERE tenant_id = ?1 AND que_id IS NOT NULL ORDER BY que_id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([tenant], |row| row.get::<_, String>(0).map(QueId::from))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }
    async fn unreported_outcomes(
        &self,
        tenant: &TenantId,
        limit_to: usize,
    ) -> StoreResult<Vec<UploadBatch>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM batches WHERE tenant_id = ?1 AND awaits_report = 1
                 ORDER BY created_at, rowid LIMIT ?2",
                params![tenant, limit(limit_to)],
            )
        })
        .await
    }
}

// ---------------------------------------------------------------- cursors

#[async_trait]
impl CursorStore for SqliteStore {
    async fn cursor(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<String>> {
        let tenant = tenant.0.clone();
        let name = name.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT value FROM cursors WHERE tenant_id = ?1 AND name = ?2",
                params![tenant, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn set_cursor(
        &self,
        tenant: &TenantId,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> StoreResult<bool> {
        let tenant = tenant.0.clone();
        let name = name.to_string();
        let expected = expected.map(str::to_string);
        let value = value.to_string();
        self.write(move |tx| {
            let written = match expected {
                None => tx.execute(
                    "INSERT INTO cursors (tenant_id, name, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id, name) DO NOTHING",
                    params![tenant, name, value],
                ),
                Some(expected) => tx.execute(
                    "UPDATE cursors SET value = ?4 WHERE tenant_id = ?1 AND name = ?2 AND value = ?3",
                    params![tenant, name, expected, value],
                ),
            }
            .map_err(db)?;
            Ok(written == 1)
        })
        .await
    }
}

// ---------------------------------------------------------------- order import

#[async_trait]
impl OrderImportStore for SqliteStore {
    async fn order_record(
        &self,
        tenant: &TenantId,
        receive_order_id: &str,
    ) -> StoreResult<Option<OrderImportRecord>> {
        let tenant = tenant.0.clone();
        let receive_order_id = receive_order_id.to_string();
        self.read(move |conn| {
            query_json(
                conn,
                "SELECT data FROM order_records WHERE tenant_id = ?1 AND receive_order_id = ?2",
                params![tenant, receive_order_id],
            )
        })
        .await
    }

    async fn put_order_record(
        &self,
        record: &OrderImportRecord,
        expected_tag: Option<&str>,
    ) -> StoreResult<()> {
        let record = record.clone();
        let expected_tag = expected_tag.map(str::to_string);
        self.write(move |tx| {
            let tenant = record.tenant_id.as_str();
            let stored: Option<String> = tx
                .query_row(
                    "SELECT state_tag FROM order_records WHERE tenant_id = ?1 AND receive_order_id = ?2",
                    params![tenant, record.receive_order_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db)?;
            if stored != expected_tag {
                return Err(StoreError::Conflict(format!(
                    "order {} is {}, not {}",
                    record.receive_order_id,
                    stored.as_deref().unwrap_or("absent"),
                    expected_tag.as_deref().unwrap_or("absent"),
                )));
            }
            tx.execute(
                "INSERT INTO order_records (tenant_id, receive_order_id, state_tag, updated_at, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, receive_order_id) DO UPDATE SET
                     state_tag = excluded.state_tag,
                     updated_at = excluded.updated_at,
                     data = excluded.data",
                params![
                    tenant,
                    record.receive_order_id,
                    record.state.tag(),
                    micros(record.updated_at),
                    to_json(&record)?,
                ],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn order_records(
        &self,
        tenant: &TenantId,
        limit_to: usize,
    ) -> StoreResult<Vec<OrderImportRecord>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM order_records WHERE tenant_id = ?1
                 ORDER BY updated_at DESC, rowid DESC LIMIT ?2",
                params![tenant, limit(limit_to)],
            )
        })
        .await
    }
}

// ---------------------------------------------------------------- report outbox

#[async_trait]
impl ReportOutbox for SqliteStore {
    async fn enqueue_report(&self, report: &OutboxReport) -> StoreResult<bool> {
        let report = report.clone();
        self.write(move |tx| {
            let inserted = tx
                .execute(
                    "INSERT INTO reports (tenant_id, id, created_at, sent_at, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant_id, id) DO NOTHING",
                    params![
                        report.tenant_id.as_str(),
                        report.id,
                        micros(report.created_at),
                        report.sent_at.map(micros),
                        to_json(&report)?,
                    ],
                )
                .map_err(db)?;
            if inserted == 0 {
                return Ok(false);
            }
            // A failed mark rolls the insert back with the transaction.
            for batch_id in &report.reported_batches {
                let batch = load_batch(tx, report.tenant_id.as_str(), batch_id)?
                    .ok_or_else(|| StoreError::NotFound(format!("batch {batch_id}")))?
                    .mark_reported(&report.id)
                    .map_err(rule)?;
                update_batch(tx, &batch)?;
            }
            Ok(true)
        })
        .await
    }

    async fn pending_reports(&self, tenant: &TenantId) -> StoreResult<Vec<OutboxReport>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM reports WHERE tenant_id = ?1 AND sent_at IS NULL
                 ORDER BY created_at, rowid",
                [tenant],
            )
        })
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
        let owner = owner.to_string();
        self.change_report(tenant, id, move |report| {
            report.claim(&owner, now, lease_until)
        })
        .await
    }

    async fn mark_report_sent(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let owner = owner.to_string();
        self.change_report(tenant, id, move |report| report.mark_sent(&owner, at))
            .await
    }

    async fn record_report_failure(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        error: &str,
    ) -> StoreResult<bool> {
        let owner = owner.to_string();
        let error = error.to_string();
        self.change_report(tenant, id, move |report| {
            report.record_failure(&owner, &error)
        })
        .await
    }

    async fn recent_reports(
        &self,
        tenant: &TenantId,
        limit_to: usize,
    ) -> StoreResult<Vec<OutboxReport>> {
        let tenant = tenant.0.clone();
        self.read(move |conn| {
            query_json_list(
                conn,
                "SELECT data FROM reports WHERE tenant_id = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
                params![tenant, limit(limit_to)],
            )
        })
        .await
    }
}

// ---------------------------------------------------------------- login throttle

/// The counter lives in the cursors table under the name and `<count>:<window
/// start, seconds>` format it had before it got its own port, so an upgrade
/// keeps a running lock and needs no schema change.
const LOGIN_ATTEMPTS_CURSOR: &str = "admin_login_failures";

#[async_trait]
impl sne_ports::LoginThrottle for SqliteStore {
    async fn reserve_login_attempt(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> StoreResult<sne_ports::LoginAttempt> {
        use sne_ports::LoginAttempt;
        let tenant = tenant.0.clone();
        self.write(move |tx| {
            let stored: Option<String> = tx
                .query_row(
                    "SELECT value FROM cursors WHERE tenant_id = ?1 AND name = ?2",
                    params![tenant, LOGIN_ATTEMPTS_CURSOR],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db)?;
            let (count, start) = stored
                .as_deref()
                .and_then(|v| v.split_once(':'))
                .and_then(|(c, s)| Some((c.parse::<u32>().ok()?, s.parse::<i64>().ok()?)))
                .unwrap_or((0, 0));
            let ends = start.saturating_add(window.num_seconds());
            let (count, start) = if count == 0 || now.timestamp() >= ends {
                (1, now.timestamp())
            } else if count >= limit {
                let until = DateTime::from_timestamp(ends, 0).unwrap_or(now);
                return Ok(LoginAttempt::Locked { until });
            } else {
                (count + 1, start)
            };
            tx.execute(
                "INSERT INTO cursors (tenant_id, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value",
                params![tenant, LOGIN_ATTEMPTS_CURSOR, format!("{count}:{start}")],
            )
            .map_err(db)?;
            Ok(LoginAttempt::Allowed { nth: count })
        })
        .await
    }

    async fn reset_login_attempts(&self, tenant: &TenantId) -> StoreResult<()> {
        let tenant = tenant.0.clone();
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM cursors WHERE tenant_id = ?1 AND name = ?2",
                params![tenant, LOGIN_ATTEMPTS_CURSOR],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_the_directory_and_a_versioned_wal_schema() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested/data");
        let store = SqliteStore::open(&data_dir).unwrap();
        assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
        let conn = store.conn.lock().unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reopening_keeps_the_schema_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        // Opening again runs no migration twice (CREATE TABLE would fail).
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .conn
            .lock()
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }

    #[test]
    fn only_one_building_batch_per_tenant_even_for_raw_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = store.conn.lock().unwrap();
        let insert = |tenant: &str, id: &str| {
            conn.execute(
                "INSERT INTO batches (tenant_id, batch_id, state, created_at, data)
                 VALUES (?1, ?2, 'building', 0, '{}')",
                params![tenant, id],
            )
        };
        insert("t1", "b1").unwrap();
        insert("t2", "b1").unwrap();
        assert!(insert("t1", "b2").is_err());
    }
}
