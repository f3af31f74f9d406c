//! In-memory simulator of the old スマレジAPI (`POST /access/`) and of its
//! API送信 (stock_send push) emitter, and of the スマレジ・プラットフォームAPI
//! over the same contracts and history (`platform`). See `README.md` for
//! inferred parts.

pub mod platform;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::common::{self, SimClock, compare_opt, compare_values, fmt_dt, like_match};

pub const ALL_FUNCTIONS: &[&str] = &[
    "stock_ref",
    "stock_upd",
    "product_ref",
    "store_ref",
    "shipment_upd",
    "shipment_ref",
];

/// Old-API error codes other than 14 are not public; these are the
/// simulator's own choices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmaregiErrorCodes {
    pub unknown_contract: u32,
    pub bad_token: u32,
    pub function_disabled: u32,
    pub unknown_proc: u32,
    pub bad_params: u32,
    pub validation: u32,
    /// A heavy-table lookup without a narrowing condition: the refusal is
    /// documented, its code and text are not (reference "Update" table).
    pub narrowing_required: u32,
}

impl Default for SmaregiErrorCodes {
    fn default() -> Self {
        SmaregiErrorCodes {
            unknown_contract: 14,
            bad_token: 21,
            function_disabled: 31,
            unknown_proc: 41,
            bad_params: 42,
            validation: 43,
            narrowing_required: 44,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmaregiConfig {
    pub error_codes: SmaregiErrorCodes,
    pub default_limit: usize,
    pub max_limit: usize,
    pub push_timeout_ms: u64,
    /// What a `shipment_upd` with an already-seen token answers:
    /// false → `{"Shipment":0,"ShipmentIds":[],"ShipmentDetail":0}` (default),
    /// true → the counts and ids of the original request.
    pub replay_returns_original: bool,
    /// A lenient reading of `shipment_upd`: a detail row without `productId` is
    /// dropped instead of refused, so a "test write" meant to be refused
    /// registers a real (empty) shipment. Not attested either way; it exists to
    /// prove that the service never writes to check its settings.
    pub lenient_shipments: bool,
    /// Heavy tables refuse lookups without an id or date range (admin
    /// ver.4.10.0). `None` turns the rule off.
    pub narrowing: Option<NarrowingRule>,
    /// What several objects in `conditions` mean.
    pub condition_objects: ConditionObjects,
    /// Rows a `*_ref` page holds at most, whatever `limit` asks, without
    /// saying so. `None`: `limit` is honoured.
    pub page_cap: Option<usize>,
    /// Where page `n` starts when `page_cap` cut the page short.
    pub capped_offset: CappedOffset,
    /// A `Stock` lookup must name one store (`storeId =`). Not attested: the
    /// strict reading, so that a client reading all of a large shop's stock
    /// in one lookup is caught here rather than by Smaregi.
    pub stock_needs_store: bool,
    /// The Platform API's side of the same contracts.
    pub platform: platform::PlatformConfig,
}

impl Default for SmaregiConfig {
    fn default() -> Self {
        SmaregiConfig {
            error_codes: SmaregiErrorCodes::default(),
            default_limit: 100,
            max_limit: 1000,
            push_timeout_ms: 10_000,
            replay_returns_original: false,
            lenient_shipments: false,
            narrowing: Some(NarrowingRule::default()),
            condition_objects: ConditionObjects::And,
            page_cap: Some(500),
            capped_offset: CappedOffset::Requested,
            stock_needs_store: true,
            platform: platform::PlatformConfig::default(),
        }
    }
}

/// The narrowing rule documented for `TransactionHead` and assumed for
/// `StockHistory`: every lookup names an id range of at most `max_id_range`
/// ids (or one id), or a date range of at most `max_days` days.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NarrowingRule {
    pub tables: Vec<String>,
    pub id_field: String,
    pub max_id_range: u64,
    pub date_fields: Vec<String>,
    pub max_days: i64,
}

impl Default for NarrowingRule {
    fn default() -> Self {
        NarrowingRule {
            tables: vec!["StockHistory".into()],
            id_field: "id".into(),
            max_id_range: 100_000,
            date_fields: vec!["updDateTime".into(), "targetDateTime".into()],
            max_days: 31,
        }
    }
}

/// Several condition objects: the old API supports no OR (reference
/// "Update" table), but what it does instead is not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionObjects {
    /// All objects' keys ANDed, as if they were one object.
    And,
    /// Only the first object counts; the rest are ignored.
    FirstOnly,
    /// Each object's keys ANDed, the objects ORed (the old simulator).
    Or,
}

/// When `page_cap` is below `limit`, page `n` starts at `(n-1) × limit`
/// (`Requested`: the cut rows are never returned) or at `(n-1) × cap`
/// (`Capped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CappedOffset {
    Requested,
    Capped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushShape {
    Full,
    Minimal,
    Absolute,
    Relative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairsAs {
    Headers,
    Form,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushConfig {
    pub url: String,
    #[serde(default)]
    pub pairs: Vec<(String, String)>,
    #[serde(default = "default_pairs_as")]
    pub pairs_as: PairsAs,
    #[serde(default = "default_shape")]
    pub shape: PushShape,
    /// Changes made through the old API are not pushed by Smaregi
    /// (reference §3.4), hence false by default.
    #[serde(default)]
    pub push_api_changes: bool,
}

fn default_pairs_as() -> PairsAs {
    PairsAs::Headers
}
/// The only shape public receivers attest (`productId`, `storeId`,
/// `stockAmount`; reference smaregi-api.md, Update "stock_send rows"): the
/// strictest, so it is what a push gets unless a test asks for another.
fn default_shape() -> PushShape {
    PushShape::Minimal
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockHistoryRow {
    pub id: u64,
    pub upd_date_time: String,
    pub target_date_time: String,
    pub product_id: String,
    pub store_id: String,
    pub amount: i64,
    pub stock_amount: i64,
    pub stock_division: String,
    pub from_store_id: Option<String>,
    pub to_store_id: Option<String>,
    /// `stockHistory.memo` of a Platform-API write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendLog {
    pub id: u64,
    pub contract_id: String,
    pub time: String,
    pub url: String,
    /// Form body exactly as sent (urlencoded).
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// 成功 or 失敗
    pub status: String,
    pub http_status: Option<u16>,
    /// `response(code-<status>:body-<body>)`, or the connection error text.
    pub message: String,
    /// Id of the send this one re-sent.
    pub resend_of: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentRecord {
    pub contract_id: String,
    pub shipment_id: String,
    pub header: BTreeMap<String, Option<String>>,
    pub details: Vec<BTreeMap<String, Option<String>>>,
}

struct Product {
    code: String,
    name: String,
    price: String,
    upd: NaiveDateTime,
}

struct Contract {
    access_token: String,
    functions: BTreeSet<String>,
    stores: BTreeMap<String, (String, NaiveDateTime)>,
    products: BTreeMap<String, Product>,
    stock: BTreeMap<(String, String), (i64, NaiveDateTime)>,
    history: Vec<StockHistoryRow>,
    next_history_id: u64,
    shipments: Vec<ShipmentRecord>,
    next_shipment_id: u64,
    /// token → the success body it produced
    seen_tokens: BTreeMap<String, Value>,
    push: Option<PushConfig>,
}

struct SmState {
    config: SmaregiConfig,
    clock: SimClock,
    contracts: BTreeMap<String, Contract>,
    sends: Vec<SendLog>,
    next_send_id: u64,
    platform: platform::PlatformState,
}

#[derive(Clone)]
pub struct SmaregiSim {
    inner: Arc<Mutex<SmState>>,
    http: reqwest::Client,
    addr: Option<SocketAddr>,
}

/// A pending push (or Platform webhook), built under the lock and sent after
/// releasing it.
struct Outgoing {
    contract_id: String,
    url: String,
    body: String,
    headers: Vec<(String, String)>,
    resend_of: Option<u64>,
    /// Set for a Platform webhook: its `smaregi-event-id`.
    event_id: Option<String>,
}

impl SmaregiSim {
    pub fn new(config: SmaregiConfig) -> SmaregiSim {
        let timeout = StdDuration::from_millis(config.push_timeout_ms);
        SmaregiSim {
            inner: Arc::new(Mutex::new(SmState {
                config,
                clock: SimClock::default(),
                contracts: BTreeMap::new(),
                sends: Vec::new(),
                next_send_id: 1,
                platform: platform::PlatformState::default(),
            })),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client"),
            addr: None,
        }
    }

    pub async fn start(config: SmaregiConfig, addr: SocketAddr) -> anyhow::Result<SmaregiSim> {
        let mut sim = SmaregiSim::new(config);
        let local = common::bind_and_serve(sim.router(), addr).await?;
        sim.addr = Some(local);
        Ok(sim)
    }

    pub fn base_url(&self) -> String {
        match self.addr {
            Some(a) => format!("http://127.0.0.1:{}", a.port()),
            None => String::new(),
        }
    }

    /// The old API's URL (`{base}/access/`).
    pub fn access_url(&self) -> String {
        format!("{}/access/", self.base_url())
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/access/", post(access))
            .route("/access", post(access))
            .route("/_sim/contracts", post(ctl_contract))
            .route("/_sim/functions", post(ctl_functions))
            .route("/_sim/stores", post(ctl_store))
            .route("/_sim/products", post(ctl_product))
            .route("/_sim/stock", get(ctl_stock))
            .route("/_sim/stock/set", post(ctl_set_stock))
            .route("/_sim/stock/set_silently", post(ctl_set_stock_silently))
            .route("/_sim/stock/adjust", post(ctl_adjust))
            .route("/_sim/sale", post(ctl_sale))
            .route("/_sim/stocktake", post(ctl_stocktake))
            .route("/_sim/loss", post(ctl_loss))
            .route("/_sim/receive", post(ctl_receive))
            .route("/_sim/transfer", post(ctl_transfer))
            .route("/_sim/push", post(ctl_push))
            .route("/_sim/sends", get(ctl_sends))
            .route("/_sim/sends/{id}/resend", post(ctl_resend))
            .route("/_sim/shipments", get(ctl_shipments))
            .route("/_sim/history", get(ctl_history))
            .route("/_sim/history/next_id", post(ctl_next_history_id))
            .route("/_sim/clock", get(ctl_clock))
            .route("/_sim/clock/advance", post(ctl_advance))
            .merge(platform::routes())
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, SmState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_jst(&self) -> NaiveDateTime {
        self.lock().clock.now_jst()
    }

    pub fn advance_clock(&self, secs: i64) {
        self.lock().clock.advance(secs);
    }

    /// Adds (or replaces the token of) a contract with every function enabled.
    pub fn add_contract(&self, contract_id: &str, access_token: &str) {
        let mut st = self.lock();
        let c = st
            .contracts
            .entry(contract_id.to_string())
            .or_insert_with(|| Contract {
                access_token: String::new(),
                functions: ALL_FUNCTIONS.iter().map(|s| s.to_string()).collect(),
                stores: BTreeMap::new(),
                products: BTreeMap::new(),
                stock: BTreeMap::new(),
                history: Vec::new(),
                next_history_id: 1,
                shipments: Vec::new(),
                next_shipment_id: 1,
                seen_tokens: BTreeMap::new(),
                push: None,
            });
        c.access_token = access_token.to_string();
    }

    pub fn set_functions(&self, contract_id: &str, functions: &[&str]) {
        if let Some(c) = self.lock().contracts.get_mut(contract_id) {
            c.functions = functions.iter().map(|s| s.to_string()).collect();
        }
    }

    pub fn add_store(&self, contract_id: &str, store_id: &str, store_name: &str) {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        if let Some(c) = st.contracts.get_mut(contract_id) {
            c.stores
                .insert(store_id.to_string(), (store_name.to_string(), now));
        }
    }

    pub fn add_product(
        &self,
        contract_id: &str,
        product_id: &str,
        product_code: &str,
        product_name: &str,
    ) {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        if let Some(c) = st.contracts.get_mut(contract_id) {
            c.products.insert(
                product_id.to_string(),
                Product {
                    code: product_code.to_string(),
                    name: product_name.to_string(),
                    price: "1000".into(),
                    upd: now,
                },
            );
        }
    }

    pub fn configure_push(&self, contract_id: &str, push: Option<PushConfig>) {
        if let Some(c) = self.lock().contracts.get_mut(contract_id) {
            c.push = push;
        }
    }

    pub fn stock(&self, contract_id: &str, store_id: &str, product_id: &str) -> Option<i64> {
        let st = self.lock();
        st.contracts
            .get(contract_id)?
            .stock
            .get(&(store_id.to_string(), product_id.to_string()))
            .map(|(a, _)| *a)
    }

    /// Sets a product's stock in a store to `amount` the way nothing the
    /// service can see does: the `Stock` row changes (its `updDateTime` too),
    /// but no `StockHistory` row is written and nothing is pushed. It stands
    /// for a change Smaregi made without telling anyone (a lost push whose
    /// history the service never read, a repair on Smaregi's side), which only
    /// a comparison of current stock finds.
    pub fn set_stock_silently(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        amount: i64,
    ) -> anyhow::Result<()> {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        let c = st
            .contracts
            .get_mut(contract)
            .ok_or_else(|| anyhow::anyhow!("unknown contract {contract}"))?;
        anyhow::ensure!(c.stores.contains_key(store), "unknown store {store}");
        anyhow::ensure!(
            c.products.contains_key(product),
            "unknown product {product}"
        );
        c.stock
            .insert((store.to_string(), product.to_string()), (amount, now));
        Ok(())
    }

    pub fn history(&self, contract_id: &str) -> Vec<StockHistoryRow> {
        let st = self.lock();
        st.contracts
            .get(contract_id)
            .map(|c| c.history.clone())
            .unwrap_or_default()
    }

    /// Makes the next `StockHistory` row get id `next_id`, leaving a gap as
    /// a busy contract's other stores or deleted rows would. Ids never go
    /// back.
    pub fn set_next_history_id(&self, contract_id: &str, next_id: u64) -> anyhow::Result<()> {
        let mut st = self.lock();
        let c = st
            .contracts
            .get_mut(contract_id)
            .ok_or_else(|| anyhow::anyhow!("unknown contract {contract_id}"))?;
        anyhow::ensure!(
            next_id >= c.next_history_id,
            "next history id {next_id} is below the current {}",
            c.next_history_id
        );
        c.next_history_id = next_id;
        Ok(())
    }

    pub fn sends(&self) -> Vec<SendLog> {
        self.lock().sends.clone()
    }

    pub fn shipments(&self) -> Vec<ShipmentRecord> {
        let st = self.lock();
        st.contracts
            .values()
            .flat_map(|c| c.shipments.iter().cloned())
            .collect()
    }

    // --- actions (each writes history and pushes before returning) ---

    /// 01 マスタ: set the stock to an absolute value.
    pub async fn set_stock(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        amount: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Absolute(amount), "01", None, None)],
        )
        .await
    }

    /// 09 調整: relative adjustment.
    pub async fn adjust(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        delta: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Relative(delta), "09", None, None)],
        )
        .await
    }

    /// 02 売上
    pub async fn sale(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        qty: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Relative(-qty), "02", None, None)],
        )
        .await
    }

    /// 08 棚卸: amount = counted − current.
    pub async fn stocktake(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        counted: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Absolute(counted), "08", None, None)],
        )
        .await
    }

    /// 14 ロス
    pub async fn loss(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        qty: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Relative(-qty), "14", None, None)],
        )
        .await
    }

    /// 03 仕入 (入荷)
    pub async fn receive(
        &self,
        contract: &str,
        store: &str,
        product: &str,
        qty: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[(store, product, Change::Relative(qty), "03", None, None)],
        )
        .await
    }

    /// 04 出庫 at `from` and 05 入庫 at `to`.
    pub async fn transfer(
        &self,
        contract: &str,
        from: &str,
        to: &str,
        product: &str,
        qty: i64,
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        self.act(
            contract,
            &[
                (
                    from,
                    product,
                    Change::Relative(-qty),
                    "04",
                    Some(from),
                    Some(to),
                ),
                (
                    to,
                    product,
                    Change::Relative(qty),
                    "05",
                    Some(from),
                    Some(to),
                ),
            ],
        )
        .await
    }

    #[allow(clippy::type_complexity)]
    async fn act(
        &self,
        contract: &str,
        changes: &[(&str, &str, Change, &str, Option<&str>, Option<&str>)],
    ) -> anyhow::Result<Vec<StockHistoryRow>> {
        let (rows, out) = {
            let mut st = self.lock();
            let now = st.clock.now_jst();
            let c = st
                .contracts
                .get_mut(contract)
                .ok_or_else(|| anyhow::anyhow!("unknown contract {contract}"))?;
            for (store, product, ..) in changes {
                anyhow::ensure!(c.stores.contains_key(*store), "unknown store {store}");
                anyhow::ensure!(
                    c.products.contains_key(*product),
                    "unknown product {product}"
                );
            }
            let rows: Vec<StockHistoryRow> = changes
                .iter()
                .map(|(store, product, change, div, from, to)| {
                    apply_change(c, now, store, product, *change, div, *from, *to)
                })
                .collect();
            let mut out = pushes_for(c, contract, &rows);
            out.extend(platform::webhooks_for(&mut st, contract, &rows, "edited"));
            (rows, out)
        };
        self.deliver(out).await;
        Ok(rows)
    }

    async fn deliver(&self, out: Vec<Outgoing>) {
        let (webhooks, pushes): (Vec<_>, Vec<_>) =
            out.into_iter().partition(|o| o.event_id.is_some());
        for o in pushes {
            self.send_one(o).await;
        }
        self.deliver_webhooks(webhooks).await;
    }

    async fn send_one(&self, o: Outgoing) -> SendLog {
        let mut req = self
            .http
            .post(&o.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(o.body.clone());
        for (k, v) in &o.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let (status, http_status, message) = match req.send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                let msg = format!("response(code-{code}:body-{body})");
                let st = if code == 200 { "成功" } else { "失敗" };
                (st.to_string(), Some(code), msg)
            }
            Err(e) => ("失敗".to_string(), None, format!("HTTPS送信エラー {e}")),
        };
        let mut st = self.lock();
        let log = SendLog {
            id: st.next_send_id,
            contract_id: o.contract_id,
            time: fmt_dt(st.clock.now_jst()),
            url: o.url,
            body: o.body,
            headers: o.headers,
            status,
            http_status,
            message,
            resend_of: o.resend_of,
        };
        st.next_send_id += 1;
        st.sends.push(log.clone());
        log
    }

    /// 再送する: sends the identical body again and logs a new entry.
    pub async fn resend(&self, id: u64) -> anyhow::Result<SendLog> {
        let o = {
            let st = self.lock();
            let s = st
                .sends
                .iter()
                .find(|s| s.id == id)
                .ok_or_else(|| anyhow::anyhow!("no send {id}"))?;
            Outgoing {
                contract_id: s.contract_id.clone(),
                url: s.url.clone(),
                body: s.body.clone(),
                headers: s.headers.clone(),
                resend_of: Some(id),
                event_id: None,
            }
        };
        Ok(self.send_one(o).await)
    }
}

#[derive(Clone, Copy)]
enum Change {
    Absolute(i64),
    Relative(i64),
}

#[allow(clippy::too_many_arguments)]
fn apply_change(
    c: &mut Contract,
    now: NaiveDateTime,
    store: &str,
    product: &str,
    change: Change,
    division: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> StockHistoryRow {
    let key = (store.to_string(), product.to_string());
    let current = c.stock.get(&key).map(|(a, _)| *a).unwrap_or(0);
    let after = match change {
        Change::Absolute(v) => v,
        Change::Relative(d) => current + d,
    };
    c.stock.insert(key, (after, now));
    let row = StockHistoryRow {
        id: c.next_history_id,
        upd_date_time: fmt_dt(now),
        target_date_time: fmt_dt(now),
        product_id: product.to_string(),
        store_id: store.to_string(),
        amount: after - current,
        stock_amount: after,
        stock_division: division.to_string(),
        from_store_id: from.map(str::to_string),
        to_store_id: to.map(str::to_string),
        memo: None,
    };
    c.next_history_id += 1;
    c.history.push(row.clone());
    row
}

fn push_row(shape: PushShape, h: &StockHistoryRow) -> Value {
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    match shape {
        PushShape::Full => json!({
            "id": h.id.to_string(), "storeId": h.store_id, "productId": h.product_id,
            "amount": h.amount.to_string(), "stockAmount": h.stock_amount.to_string(),
            "stockDivision": h.stock_division, "updDateTime": h.upd_date_time,
            "fromStoreId": opt(&h.from_store_id), "toStoreId": opt(&h.to_store_id),
        }),
        PushShape::Minimal => json!({
            "storeId": h.store_id, "productId": h.product_id,
            "stockAmount": h.stock_amount.to_string(),
        }),
        PushShape::Absolute => json!({
            "storeId": h.store_id, "productId": h.product_id,
            "stockAmount": h.stock_amount.to_string(),
            "stockDivision": h.stock_division, "updDateTime": h.upd_date_time,
        }),
        PushShape::Relative => json!({
            "storeId": h.store_id, "productId": h.product_id,
            "stockAmount": h.amount.to_string(),
            "stockDivision": h.stock_division, "updDateTime": h.upd_date_time,
        }),
    }
}

fn pushes_for(c: &Contract, contract_id: &str, rows: &[StockHistoryRow]) -> Vec<Outgoing> {
    let Some(p) = &c.push else {
        return Vec::new();
    };
    rows.iter()
        .map(|h| {
            let mut params = json!({"data":[{"table_name":"Stock","rows":[push_row(p.shape, h)]}]});
            if p.shape == PushShape::Relative {
                params["proc_info"] = json!({"proc_division":"U","proc_detail_division":"2"});
            }
            let mut form = vec![
                ("proc_name".to_string(), "stock_send".to_string()),
                ("params".to_string(), params.to_string()),
            ];
            let mut headers = Vec::new();
            match p.pairs_as {
                PairsAs::Form => form.extend(p.pairs.iter().cloned()),
                PairsAs::Headers => headers.extend(p.pairs.iter().cloned()),
            }
            Outgoing {
                contract_id: contract_id.to_string(),
                url: p.url.clone(),
                body: serde_urlencoded::to_string(&form).unwrap_or_default(),
                headers,
                resend_of: None,
                event_id: None,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Old API: POST /access/
// ---------------------------------------------------------------------------

struct ApiError {
    code: u32,
    error: String,
    description: String,
}

fn api_err(code: u32, error: &str, description: impl Into<String>) -> ApiError {
    ApiError {
        code,
        error: error.to_string(),
        description: description.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error_code": self.code, "error": self.error, "error_description": self.description})),
        )
            .into_response()
    }
}

async fn access(State(sim): State<SmaregiSim>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let contract_id = header("X_contract_id");
    let token = header("X_access_token");
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let form: BTreeMap<String, String> = common::parse_form_bytes(&body)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    match access_inner(&sim, &contract_id, &token, &form).await {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn access_inner(
    sim: &SmaregiSim,
    contract_id: &str,
    token: &str,
    form: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let codes = sim.lock().config.error_codes.clone();
    if contract_id.is_empty() {
        return Err(api_err(
            14,
            "契約IDが無効です。",
            "パラメータ不正です。(contractId is empty)",
        ));
    }
    {
        let st = sim.lock();
        let Some(c) = st.contracts.get(contract_id) else {
            return Err(api_err(
                codes.unknown_contract,
                "契約IDが無効です。",
                format!("パラメータ不正です。(contractId {contract_id} is not found)"),
            ));
        };
        if token.is_empty() || c.access_token != token {
            return Err(api_err(
                codes.bad_token,
                "アクセストークンが無効です。",
                "認証に失敗しました。(accessToken is invalid)",
            ));
        }
    }
    let proc_name = form.get("proc_name").cloned().unwrap_or_default();
    if !ALL_FUNCTIONS.contains(&proc_name.as_str()) {
        return Err(api_err(
            codes.unknown_proc,
            "処理名が不正です。",
            format!("パラメータ不正です。(proc_name {proc_name} is not supported)"),
        ));
    }
    if !sim.lock().contracts[contract_id]
        .functions
        .contains(&proc_name)
    {
        return Err(api_err(
            codes.function_disabled,
            "この機能は利用できません。",
            format!("API受信設定の機能設定で「利用する」になっていません。(proc_name {proc_name})"),
        ));
    }
    let bad = |d: String| api_err(codes.bad_params, "パラメータが不正です。", d);
    let params: Value = serde_json::from_str(form.get("params").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad(format!("paramsがJSONとして解析できません。({e})")))?;
    if !params.is_object() {
        return Err(bad("paramsはJSONオブジェクトで指定して下さい。".into()));
    }
    match proc_name.as_str() {
        "stock_upd" => {
            let (resp, out) = stock_upd(sim, contract_id, &params, &codes)?;
            sim.deliver(out).await;
            Ok(resp)
        }
        "shipment_upd" => {
            let (resp, out) = shipment_upd(sim, contract_id, &params, &codes)?;
            sim.deliver(out).await;
            Ok(resp)
        }
        _ => reference(sim, contract_id, &proc_name, &params, &codes),
    }
}

fn val_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

type SRow = BTreeMap<String, Option<String>>;

const STOCK_COLS: &[&str] = &["storeId", "productId", "stockAmount", "updDateTime"];
const HISTORY_COLS: &[&str] = &[
    "id",
    "updDateTime",
    "targetDateTime",
    "productId",
    "storeId",
    "amount",
    "stockAmount",
    "stockDivision",
    "fromStoreId",
    "toStoreId",
];
const PRODUCT_COLS: &[&str] = &[
    "productId",
    "categoryId",
    "productCode",
    "productName",
    "price",
    "size",
    "color",
    "groupCode",
    "supplierProductNo",
    "updDateTime",
];
const STORE_COLS: &[&str] = &[
    "storeId",
    "storeCode",
    "storeName",
    "storeAbbr",
    "updDateTime",
];
const SHIPMENT_COLS: &[&str] = &[
    "shipmentId",
    "shipmentStoreId",
    "recipientType",
    "recipientId",
    "recipientName",
    "shipmentDivision",
    "shipmentDate",
    "status",
    "identificationNo",
    "token",
    "modified",
];
const SHIPMENT_DETAIL_COLS: &[&str] = &[
    "shipmentId",
    "productId",
    "productCode",
    "productName",
    "size",
    "color",
    "groupCode",
    "supplierProductNo",
    "cost",
    "quantity",
    "memo",
    "modified",
];

fn table_rows(c: &Contract, table: &str) -> Vec<SRow> {
    let row = |pairs: Vec<(&str, Option<String>)>| -> SRow {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    match table {
        "Stock" => c
            .stock
            .iter()
            .map(|((s, p), (a, t))| {
                row(vec![
                    ("storeId", Some(s.clone())),
                    ("productId", Some(p.clone())),
                    ("stockAmount", Some(a.to_string())),
                    ("updDateTime", Some(fmt_dt(*t))),
                ])
            })
            .collect(),
        "StockHistory" => c
            .history
            .iter()
            .map(|h| {
                row(vec![
                    ("id", Some(h.id.to_string())),
                    ("updDateTime", Some(h.upd_date_time.clone())),
                    ("targetDateTime", Some(h.target_date_time.clone())),
                    ("productId", Some(h.product_id.clone())),
                    ("storeId", Some(h.store_id.clone())),
                    ("amount", Some(h.amount.to_string())),
                    ("stockAmount", Some(h.stock_amount.to_string())),
                    ("stockDivision", Some(h.stock_division.clone())),
                    ("fromStoreId", h.from_store_id.clone()),
                    ("toStoreId", h.to_store_id.clone()),
                ])
            })
            .collect(),
        "Product" => c
            .products
            .iter()
            .map(|(id, p)| {
                row(vec![
                    ("productId", Some(id.clone())),
                    ("categoryId", Some("1".into())),
                    ("productCode", Some(p.code.clone())),
                    ("productName", Some(p.name.clone())),
                    ("price", Some(p.price.clone())),
                    ("size", None),
                    ("color", None),
                    ("groupCode", None),
                    ("supplierProductNo", None),
                    ("updDateTime", Some(fmt_dt(p.upd))),
                ])
            })
            .collect(),
        "Store" => c
            .stores
            .iter()
            .map(|(id, (name, t))| {
                row(vec![
                    ("storeId", Some(id.clone())),
                    ("storeCode", Some(id.clone())),
                    ("storeName", Some(name.clone())),
                    ("storeAbbr", Some(name.clone())),
                    ("updDateTime", Some(fmt_dt(*t))),
                ])
            })
            .collect(),
        "Shipment" => c.shipments.iter().map(|s| s.header.clone()).collect(),
        "ShipmentDetail" => c
            .shipments
            .iter()
            .flat_map(|s| s.details.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

fn reference(
    sim: &SmaregiSim,
    contract_id: &str,
    proc_name: &str,
    params: &Value,
    codes: &SmaregiErrorCodes,
) -> Result<Value, ApiError> {
    let bad = |d: String| api_err(codes.bad_params, "パラメータが不正です。", d);
    let table = params
        .get("table_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("table_nameが指定されていません。".into()))?;
    let cols: &[&str] = match (proc_name, table) {
        ("stock_ref", "Stock") => STOCK_COLS,
        ("stock_ref", "StockHistory") => HISTORY_COLS,
        ("product_ref", "Product") => PRODUCT_COLS,
        ("store_ref", "Store") => STORE_COLS,
        ("shipment_ref", "Shipment") => SHIPMENT_COLS,
        ("shipment_ref", "ShipmentDetail") => SHIPMENT_DETAIL_COLS,
        _ => {
            return Err(bad(format!(
                "table_name {table} は {proc_name} では指定できません。"
            )));
        }
    };
    let fields: Vec<String> = match params.get("fields") {
        None | Some(Value::Null) => cols.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(a)) if !a.is_empty() => a.iter().filter_map(val_str).collect(),
        Some(Value::Array(_)) => cols.iter().map(|s| s.to_string()).collect(),
        _ => return Err(bad("fieldsは配列で指定して下さい。".into())),
    };
    for f in &fields {
        if !cols.contains(&f.as_str()) {
            return Err(bad(format!(
                "fieldsに存在しない項目が指定されています。({f})"
            )));
        }
    }
    let mut groups: Vec<Vec<(String, String, String)>> = Vec::new();
    match params.get("conditions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for obj in a {
                let Some(obj) = obj.as_object() else {
                    return Err(bad(
                        "conditionsの要素はオブジェクトで指定して下さい。".into()
                    ));
                };
                let mut g = Vec::new();
                for (k, v) in obj {
                    let (field, op) = match k.trim().split_once(' ') {
                        Some((f, op)) => (f.trim(), op.trim()),
                        None => (k.trim(), "="),
                    };
                    if !["=", "<>", ">", ">=", "<", "<=", "like"].contains(&op) {
                        return Err(bad(format!("conditionsの演算子が不正です。({k})")));
                    }
                    if !cols.contains(&field) {
                        return Err(bad(format!(
                            "conditionsに存在しない項目が指定されています。({field})"
                        )));
                    }
                    let Some(v) = val_str(v) else {
                        return Err(bad(format!("conditionsの値が不正です。({k})")));
                    };
                    g.push((field.to_string(), op.to_string(), v));
                }
                groups.push(g);
            }
        }
        _ => return Err(bad("conditionsは配列で指定して下さい。".into())),
    }
    let st = sim.lock();
    let groups = match st.config.condition_objects {
        ConditionObjects::Or => groups,
        ConditionObjects::And if groups.is_empty() => groups,
        ConditionObjects::And => vec![groups.concat()],
        ConditionObjects::FirstOnly => groups.into_iter().take(1).collect(),
    };
    if let Some(rule) = &st.config.narrowing
        && rule.tables.iter().any(|t| t == table)
        && (groups.is_empty() || !groups.iter().all(|g| narrowed(rule, g)))
    {
        return Err(api_err(
            codes.narrowing_required,
            "検索条件が不正です。",
            format!(
                "{table}の参照には絞り込み条件が必要です。({}の範囲は{}件以内、{}の範囲は{}日以内で指定して下さい)",
                rule.id_field,
                rule.max_id_range,
                rule.date_fields.join("/"),
                rule.max_days
            ),
        ));
    }
    if table == "Stock"
        && st.config.stock_needs_store
        && (groups.is_empty()
            || !groups.iter().all(|g| {
                g.iter()
                    .any(|(f, op, _)| f.as_str() == "storeId" && op.as_str() == "=")
            }))
    {
        return Err(api_err(
            codes.narrowing_required,
            "検索条件が不正です。",
            "Stockの参照には店舗ID(storeId)の指定が必要です。".to_string(),
        ));
    }
    let mut order = Vec::new();
    if let Some(o) = params.get("order") {
        let list: Vec<String> = match o {
            Value::Array(a) => a.iter().filter_map(val_str).collect(),
            Value::String(s) => vec![s.clone()],
            _ => return Err(bad("orderは配列で指定して下さい。".into())),
        };
        for item in list {
            let mut parts = item.split_whitespace();
            let f = parts.next().unwrap_or("").to_string();
            let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(_) => return Err(bad(format!("orderが不正です。({item})"))),
            };
            if !cols.contains(&f.as_str()) {
                return Err(bad(format!(
                    "orderに存在しない項目が指定されています。({f})"
                )));
            }
            order.push((f, desc));
        }
    }
    let num = |k: &str, default: usize| -> Result<usize, ApiError> {
        match params.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => val_str(v)
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| bad(format!("{k}が不正です。"))),
        }
    };
    let limit = num("limit", st.config.default_limit)?;
    if limit == 0 || limit > st.config.max_limit {
        return Err(bad(format!(
            "limitは1〜{}の範囲で指定して下さい。",
            st.config.max_limit
        )));
    }
    let page = num("page", 1)?;
    if page == 0 {
        return Err(bad("pageは1以上で指定して下さい。".into()));
    }
    let c = &st.contracts[contract_id];
    let mut rows: Vec<SRow> = table_rows(c, table)
        .into_iter()
        .filter(|r| {
            groups.is_empty()
                || groups.iter().any(|g| {
                    g.iter().all(|(f, op, v)| {
                        let Some(Some(x)) = r.get(f) else {
                            return op == "<>";
                        };
                        let o = compare_values(x, v);
                        match op.as_str() {
                            "=" => o.is_eq(),
                            "<>" => o.is_ne(),
                            ">" => o.is_gt(),
                            ">=" => o.is_ge(),
                            "<" => o.is_lt(),
                            "<=" => o.is_le(),
                            _ => like_match(x, v),
                        }
                    })
                })
        })
        .collect();
    rows.sort_by(|a, b| {
        for (f, desc) in &order {
            let o = compare_opt(
                a.get(f).and_then(|v| v.as_deref()),
                b.get(f).and_then(|v| v.as_deref()),
            );
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let total = rows.len();
    let per_page = st
        .config
        .page_cap
        .map_or(limit, |cap| limit.min(cap.max(1)));
    let stride = match st.config.capped_offset {
        CappedOffset::Requested => limit,
        CappedOffset::Capped => per_page,
    };
    let result: Vec<Value> = rows
        .into_iter()
        .skip((page - 1) * stride)
        .take(per_page)
        .map(|r| {
            let mut o = Map::new();
            for f in &fields {
                let v = r.get(f).cloned().flatten();
                o.insert(f.clone(), v.map(Value::String).unwrap_or(Value::Null));
            }
            Value::Object(o)
        })
        .collect();
    Ok(json!({"total_count": total.to_string(), "result": result}))
}

/// Whether one ANDed group of conditions bounds the lookup as `rule` asks.
fn narrowed(rule: &NarrowingRule, group: &[(String, String, String)]) -> bool {
    let int = |v: &str| v.trim().parse::<i128>().ok();
    let mut lo: Option<i128> = None; // exclusive
    let mut hi: Option<i128> = None; // inclusive
    for (_, op, v) in group.iter().filter(|(f, ..)| *f == rule.id_field) {
        let Some(n) = int(v) else { continue };
        match op.as_str() {
            "=" => return true,
            ">" => lo = Some(lo.map_or(n, |l| l.max(n))),
            ">=" => lo = Some(lo.map_or(n - 1, |l| l.max(n - 1))),
            "<=" => hi = Some(hi.map_or(n, |h| h.min(n))),
            "<" => hi = Some(hi.map_or(n - 1, |h| h.min(n - 1))),
            _ => {}
        }
    }
    if let (Some(l), Some(h)) = (lo, hi)
        && h - l <= rule.max_id_range as i128
    {
        return true;
    }
    let time = |v: &str| {
        NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M:%S")
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
    };
    rule.date_fields.iter().any(|df| {
        let mut from = None;
        let mut to = None;
        for (_, op, v) in group.iter().filter(|(f, ..)| f == df) {
            let Some(t) = time(v) else { continue };
            match op.as_str() {
                "=" => return true,
                ">" | ">=" => from = Some(from.map_or(t, |x: NaiveDateTime| x.max(t))),
                "<" | "<=" => to = Some(to.map_or(t, |x: NaiveDateTime| x.min(t))),
                _ => {}
            }
        }
        matches!((from, to), (Some(a), Some(b)) if b - a <= chrono::Duration::days(rule.max_days))
    })
}

fn table_data<'a>(params: &'a Value, table: &str) -> Option<&'a Vec<Value>> {
    params
        .get("data")?
        .as_array()?
        .iter()
        .find(|d| d.get("table_name").and_then(Value::as_str) == Some(table))?
        .get("rows")?
        .as_array()
}

fn field(row: &Value, k: &str) -> Option<String> {
    row.get(k).and_then(val_str).filter(|s| !s.is_empty())
}

fn stock_upd(
    sim: &SmaregiSim,
    contract_id: &str,
    params: &Value,
    codes: &SmaregiErrorCodes,
) -> Result<(Value, Vec<Outgoing>), ApiError> {
    let bad = |d: String| api_err(codes.bad_params, "パラメータが不正です。", d);
    let invalid = |d: String| api_err(codes.validation, "入力値が不正です。", d);
    let detail = params
        .pointer("/proc_info/proc_detail_division")
        .and_then(val_str)
        .unwrap_or_else(|| "1".into());
    let relative = match detail.as_str() {
        "1" => false,
        "2" => true,
        _ => {
            return Err(bad(
                "proc_detail_divisionは1または2で指定して下さい。".into()
            ));
        }
    };
    let rows = table_data(params, "Stock")
        .ok_or_else(|| bad("dataにtable_name Stockのrowsがありません。".into()))?;
    let mut st = sim.lock();
    let now = st.clock.now_jst();
    let c = st.contracts.get_mut(contract_id).expect("checked contract");
    let mut parsed = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let n = i + 1;
        let store =
            field(r, "storeId").ok_or_else(|| invalid(format!("{n}行目: storeIdは必須です。")))?;
        let product = field(r, "productId")
            .ok_or_else(|| invalid(format!("{n}行目: productIdは必須です。")))?;
        let amount = field(r, "stockAmount")
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| invalid(format!("{n}行目: stockAmountは整数で指定して下さい。")))?;
        let div = field(r, "stockDivision")
            .ok_or_else(|| invalid(format!("{n}行目: stockDivisionは必須です。")))?;
        if div.len() != 2 || !div.chars().all(|ch| ch.is_ascii_digit()) {
            return Err(invalid(format!(
                "{n}行目: stockDivisionが不正です。({div})"
            )));
        }
        if !c.stores.contains_key(&store) {
            return Err(invalid(format!("{n}行目: 店舗ID {store} は存在しません。")));
        }
        if !c.products.contains_key(&product) {
            return Err(invalid(format!(
                "{n}行目: 商品ID {product} は存在しません。"
            )));
        }
        parsed.push((store, product, amount, div));
    }
    let mut hist = Vec::new();
    for (store, product, amount, div) in &parsed {
        let change = if relative {
            Change::Relative(*amount)
        } else {
            Change::Absolute(*amount)
        };
        hist.push(apply_change(
            c, now, store, product, change, div, None, None,
        ));
    }
    let mut out = if c.push.as_ref().is_some_and(|p| p.push_api_changes) {
        pushes_for(c, contract_id, &hist)
    } else {
        Vec::new()
    };
    out.extend(platform::old_api_echoes(&mut st, contract_id, &hist));
    Ok((json!({"result": {"Stock": parsed.len()}}), out))
}

fn shipment_upd(
    sim: &SmaregiSim,
    contract_id: &str,
    params: &Value,
    codes: &SmaregiErrorCodes,
) -> Result<(Value, Vec<Outgoing>), ApiError> {
    let bad = |d: String| api_err(codes.bad_params, "パラメータが不正です。", d);
    let invalid = |d: String| api_err(codes.validation, "入力値が不正です。", d);
    let headers = table_data(params, "Shipment")
        .ok_or_else(|| bad("dataにtable_name Shipmentのrowsがありません。".into()))?;
    if headers.len() != 1 {
        return Err(bad("Shipmentのrowsは1件で指定して下さい。".into()));
    }
    let h = &headers[0];
    let details = table_data(params, "ShipmentDetail")
        .ok_or_else(|| bad("dataにtable_name ShipmentDetailのrowsがありません。".into()))?;
    if field(h, "shipmentId").is_some() {
        return Err(bad(
            "shipmentIdを指定した更新はシミュレーターでは未対応です。".into(),
        ));
    }
    let req = |k: &str| field(h, k).ok_or_else(|| invalid(format!("Shipment.{k}は必須です。")));
    let store = req("shipmentStoreId")?;
    let rtype = req("recipientType")?;
    if rtype != "1" && rtype != "3" {
        return Err(invalid(
            "Shipment.recipientTypeは1または3で指定して下さい。".into(),
        ));
    }
    let rid = field(h, "recipientId");
    let rname = field(h, "recipientName");
    match (rtype.as_str(), &rid) {
        ("1", None) => {
            return Err(invalid(
                "Shipment.recipientIdは受取先タイプが1の場合必須です。".into(),
            ));
        }
        ("3", Some(_)) => {
            return Err(invalid(
                "Shipment.recipientIdは受取先タイプが1の場合のみ指定できます。".into(),
            ));
        }
        _ => {}
    }
    match (rtype.as_str(), &rname) {
        ("3", None) => {
            return Err(invalid(
                "Shipment.recipientNameは受取先タイプが3の場合必須です。".into(),
            ));
        }
        ("1", Some(_)) => {
            return Err(invalid(
                "Shipment.recipientNameは受取先タイプが3の場合のみ指定できます。".into(),
            ));
        }
        (_, Some(n)) if n.chars().count() > 85 => {
            return Err(invalid(
                "Shipment.recipientNameは85文字以内で指定して下さい。".into(),
            ));
        }
        _ => {}
    }
    let division = req("shipmentDivision")?;
    if !["0", "1", "2"].contains(&division.as_str()) {
        return Err(invalid(
            "Shipment.shipmentDivisionは0,1,2のいずれかで指定して下さい。".into(),
        ));
    }
    let date = req("shipmentDate")?;
    if date.len() != 10 || NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
        return Err(invalid(
            "Shipment.shipmentDateはYYYY-MM-DD形式で指定して下さい。".into(),
        ));
    }
    let status = req("status")?;
    if status != "0" && status != "2" {
        return Err(invalid(
            "Shipment.statusは0または2で指定して下さい。".into(),
        ));
    }
    let token = req("token")?;
    let ident = field(h, "identificationNo");

    let mut st = sim.lock();
    let replay_original = st.config.replay_returns_original;
    let lenient = st.config.lenient_shipments;
    let now = st.clock.now_jst();
    let c = st.contracts.get_mut(contract_id).expect("checked contract");
    if !c.stores.contains_key(&store) {
        return Err(invalid(format!(
            "Shipment.shipmentStoreId {store} は存在しません。"
        )));
    }
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    for (i, d) in details.iter().enumerate() {
        let n = i + 1;
        if lenient && field(d, "productId").is_none() {
            continue;
        }
        let pid = field(d, "productId")
            .ok_or_else(|| invalid(format!("ShipmentDetail {n}行目: productIdは必須です。")))?;
        if !c.products.contains_key(&pid) {
            return Err(invalid(format!(
                "ShipmentDetail {n}行目: 商品ID {pid} は存在しません。"
            )));
        }
        if !seen.insert(pid.clone()) {
            return Err(invalid(format!(
                "ShipmentDetail {n}行目: 商品ID {pid} が重複しています。"
            )));
        }
        let qty = field(d, "quantity")
            .ok_or_else(|| invalid(format!("ShipmentDetail {n}行目: quantityは必須です。")))?;
        if qty.is_empty() || qty.len() > 5 || !qty.chars().all(|ch| ch.is_ascii_digit()) {
            return Err(invalid(format!(
                "ShipmentDetail {n}行目: quantityは5桁以内の数値で指定して下さい。"
            )));
        }
        let memo = field(d, "memo");
        if memo.as_ref().is_some_and(|m| m.chars().count() > 1000) {
            return Err(invalid(format!(
                "ShipmentDetail {n}行目: memoは1000文字以内で指定して下さい。"
            )));
        }
        let cost = field(d, "cost");
        if cost.as_ref().is_some_and(|x| x.parse::<f64>().is_err()) {
            return Err(invalid(format!("ShipmentDetail {n}行目: costが不正です。")));
        }
        lines.push((pid, qty.parse::<i64>().unwrap_or(0), memo, cost));
    }
    if let Some(orig) = c.seen_tokens.get(&token) {
        let body = if replay_original {
            orig.clone()
        } else {
            json!({"result": {"Shipment": 0, "ShipmentIds": [], "ShipmentDetail": 0}})
        };
        return Ok((body, Vec::new()));
    }
    let sid = c.next_shipment_id.to_string();
    c.next_shipment_id += 1;
    let modified = fmt_dt(now);
    let header: SRow = [
        ("shipmentId", Some(sid.clone())),
        ("shipmentStoreId", Some(store.clone())),
        ("recipientType", Some(rtype)),
        ("recipientId", rid),
        ("recipientName", rname),
        ("shipmentDivision", Some(division.clone())),
        ("shipmentDate", Some(date)),
        ("status", Some(status.clone())),
        ("identificationNo", ident),
        ("token", Some(token.clone())),
        ("modified", Some(modified.clone())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut detail_rows = Vec::new();
    for (pid, qty, memo, cost) in &lines {
        let p = &c.products[pid];
        let r: SRow = [
            ("shipmentId", Some(sid.clone())),
            ("productId", Some(pid.clone())),
            ("productCode", Some(p.code.clone())),
            ("productName", Some(p.name.clone())),
            ("size", None),
            ("color", None),
            ("groupCode", None),
            ("supplierProductNo", None),
            ("cost", cost.clone().or(Some("0".into()))),
            ("quantity", Some(qty.to_string())),
            ("memo", memo.clone()),
            ("modified", Some(modified.clone())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        detail_rows.push(r);
    }
    let mut hist = Vec::new();
    if status == "2" {
        for (pid, qty, ..) in &lines {
            // 返品 (division 1) brings goods back; 出荷 and 販促品 take them out.
            let delta = if division == "1" { *qty } else { -*qty };
            hist.push(apply_change(
                c,
                now,
                &store,
                pid,
                Change::Relative(delta),
                "10",
                None,
                None,
            ));
        }
    }
    c.shipments.push(ShipmentRecord {
        contract_id: contract_id.to_string(),
        shipment_id: sid.clone(),
        header,
        details: detail_rows,
    });
    let body =
        json!({"result": {"Shipment": 1, "ShipmentIds": [sid], "ShipmentDetail": lines.len()}});
    c.seen_tokens.insert(token, body.clone());
    let mut out = if c.push.as_ref().is_some_and(|p| p.push_api_changes) {
        pushes_for(c, contract_id, &hist)
    } else {
        Vec::new()
    };
    out.extend(platform::old_api_echoes(&mut st, contract_id, &hist));
    Ok((body, out))
}

// ---------------------------------------------------------------------------
// HTTP control API
// ---------------------------------------------------------------------------

fn ctl_err(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

fn rows_response(r: anyhow::Result<Vec<StockHistoryRow>>) -> Response {
    match r {
        Ok(rows) => Json(json!(rows)).into_response(),
        Err(e) => ctl_err(e),
    }
}

#[derive(Deserialize)]
struct ContractBody {
    contract_id: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    functions: Option<Vec<String>>,
}

async fn ctl_contract(State(sim): State<SmaregiSim>, Json(b): Json<ContractBody>) -> Json<Value> {
    sim.add_contract(&b.contract_id, &b.access_token);
    if let Some(f) = b.functions {
        let refs: Vec<&str> = f.iter().map(String::as_str).collect();
        sim.set_functions(&b.contract_id, &refs);
    }
    Json(json!({"ok": true}))
}

async fn ctl_functions(State(sim): State<SmaregiSim>, Json(b): Json<ContractBody>) -> Json<Value> {
    let f = b.functions.unwrap_or_default();
    let refs: Vec<&str> = f.iter().map(String::as_str).collect();
    sim.set_functions(&b.contract_id, &refs);
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct StoreBody {
    contract_id: String,
    store_id: String,
    store_name: String,
}

async fn ctl_store(State(sim): State<SmaregiSim>, Json(b): Json<StoreBody>) -> Json<Value> {
    sim.add_store(&b.contract_id, &b.store_id, &b.store_name);
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct ProductBody {
    contract_id: String,
    product_id: String,
    #[serde(default)]
    product_code: String,
    #[serde(default)]
    product_name: String,
}

async fn ctl_product(State(sim): State<SmaregiSim>, Json(b): Json<ProductBody>) -> Json<Value> {
    sim.add_product(
        &b.contract_id,
        &b.product_id,
        &b.product_code,
        &b.product_name,
    );
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct ActionBody {
    contract_id: String,
    #[serde(default)]
    store_id: String,
    product_id: String,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    quantity: i64,
    #[serde(default)]
    counted: i64,
    #[serde(default)]
    from_store_id: String,
    #[serde(default)]
    to_store_id: String,
}

async fn ctl_set_stock(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.set_stock(&b.contract_id, &b.store_id, &b.product_id, b.amount)
            .await,
    )
}

async fn ctl_set_stock_silently(
    State(sim): State<SmaregiSim>,
    Json(b): Json<ActionBody>,
) -> Response {
    match sim.set_stock_silently(&b.contract_id, &b.store_id, &b.product_id, b.amount) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_adjust(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.adjust(&b.contract_id, &b.store_id, &b.product_id, b.amount)
            .await,
    )
}

async fn ctl_sale(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.sale(&b.contract_id, &b.store_id, &b.product_id, b.quantity)
            .await,
    )
}

async fn ctl_stocktake(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.stocktake(&b.contract_id, &b.store_id, &b.product_id, b.counted)
            .await,
    )
}

async fn ctl_loss(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.loss(&b.contract_id, &b.store_id, &b.product_id, b.quantity)
            .await,
    )
}

async fn ctl_receive(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.receive(&b.contract_id, &b.store_id, &b.product_id, b.quantity)
            .await,
    )
}

async fn ctl_transfer(State(sim): State<SmaregiSim>, Json(b): Json<ActionBody>) -> Response {
    rows_response(
        sim.transfer(
            &b.contract_id,
            &b.from_store_id,
            &b.to_store_id,
            &b.product_id,
            b.quantity,
        )
        .await,
    )
}

#[derive(Deserialize)]
struct PushBody {
    contract_id: String,
    #[serde(flatten)]
    push: Option<PushConfig>,
}

async fn ctl_push(State(sim): State<SmaregiSim>, Json(b): Json<PushBody>) -> Json<Value> {
    sim.configure_push(&b.contract_id, b.push);
    Json(json!({"ok": true}))
}

async fn ctl_sends(State(sim): State<SmaregiSim>) -> Json<Value> {
    Json(json!(sim.sends()))
}

async fn ctl_resend(State(sim): State<SmaregiSim>, Path(id): Path<u64>) -> Response {
    match sim.resend(id).await {
        Ok(l) => Json(json!(l)).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_shipments(State(sim): State<SmaregiSim>) -> Json<Value> {
    Json(json!(sim.shipments()))
}

#[derive(Deserialize)]
struct StockQuery {
    contract_id: String,
    store_id: String,
    product_id: String,
}

async fn ctl_stock(State(sim): State<SmaregiSim>, Query(q): Query<StockQuery>) -> Json<Value> {
    Json(json!({"stock_amount": sim.stock(&q.contract_id, &q.store_id, &q.product_id)}))
}

#[derive(Deserialize)]
struct ContractQuery {
    contract_id: String,
}

async fn ctl_history(State(sim): State<SmaregiSim>, Query(q): Query<ContractQuery>) -> Json<Value> {
    Json(json!(sim.history(&q.contract_id)))
}

#[derive(Deserialize)]
struct NextIdBody {
    contract_id: String,
    next_id: u64,
}

async fn ctl_next_history_id(State(sim): State<SmaregiSim>, Json(b): Json<NextIdBody>) -> Response {
    match sim.set_next_history_id(&b.contract_id, b.next_id) {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => ctl_err(e),
    }
}

async fn ctl_clock(State(sim): State<SmaregiSim>) -> Json<Value> {
    Json(json!({"now_jst": fmt_dt(sim.now_jst())}))
}

#[derive(Deserialize)]
struct AdvanceBody {
    secs: i64,
}

async fn ctl_advance(State(sim): State<SmaregiSim>, Json(b): Json<AdvanceBody>) -> Json<Value> {
    sim.advance_clock(b.secs);
    Json(json!({"now_jst": fmt_dt(sim.now_jst())}))
}
