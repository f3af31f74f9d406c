//! In-memory NextEngine API simulator (see `README.md` for the behaviour it
//! models and which parts are inferred).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::common::{self, SimClock, compare_opt, compare_values, fmt_dt, like_match, random_hex};

// ---------------------------------------------------------------------------
// Public configuration and data types
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NeConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Since 2025-02-13 NE applies the good rows of a file with row errors;
    /// whether the API queue does the same is unconfirmed.
    pub partial_apply: bool,
    pub queue_mode: QueueMode,
    pub auto_login_company: String,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub state_ttl_secs: i64,
    /// Expired refresh token: `false` → error 002004 (default), `true` →
    /// `result: "redirect"`. The reference cannot tell which NE does.
    pub refresh_expired_redirect: bool,
    /// Code sent with `result: "redirect"` (access expired, no refresh
    /// token). Not attested; inferred.
    pub redirect_code: String,
    /// How long a `wait_flag=1` call "waits" under an Overload fault.
    pub overload_wait_ms: u64,
    /// Whether a new `/api_neauth` for a company supersedes its previous
    /// token pair (NE changes tokens on every login).
    pub login_supersedes_tokens: bool,
    /// Whether queue rows name their kind: `que_upload_name` `NE_API` for API
    /// uploads and the screen's name (with `que_client_file_name`) for an
    /// operator's own upload. `false`: both empty. Single source; test both.
    pub queue_upload_names: bool,
    /// Where the free-stock refusal starts; the manual's 「以上」 leaves it open.
    pub free_stock_rule: FreeStockRule,
}

/// When a subtraction is refused with 「フリー在庫数以上の在庫を減らすことは
/// できません」 (manual 12616: free stock = stock − allocated). Single
/// source, boundary open: test both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FreeStockRule {
    /// Refused when it takes more than the free stock (`-delta > free`);
    /// taking exactly the free stock, down to 0 free, is allowed.
    #[default]
    BeyondFree,
    /// The literal reading of 以上: refused when it takes the free stock or
    /// more (`-delta >= free`), so an upload never leaves 0 free.
    ReachingZero,
}

impl FreeStockRule {
    fn refuses(self, delta: i64, free: i64) -> bool {
        delta < 0
            && match self {
                FreeStockRule::BeyondFree => -delta > free,
                FreeStockRule::ReachingZero => -delta >= free,
            }
    }
}

impl Default for NeConfig {
    fn default() -> Self {
        NeConfig {
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            partial_apply: true,
            queue_mode: QueueMode::Manual,
            auto_login_company: "demo".into(),
            access_token_ttl_secs: 86_400,
            refresh_token_ttl_secs: 3 * 86_400,
            state_ttl_secs: 300,
            refresh_expired_redirect: false,
            redirect_code: "002003".into(),
            overload_wait_ms: 200,
            login_supersedes_tokens: true,
            queue_upload_names: true,
            free_stock_rule: FreeStockRule::BeyondFree,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueMode {
    /// Queues move only on `step_queues` / `run_queues`.
    Manual,
    /// Each queue goes 0→1 after `delay_ms` and finishes `delay_ms` later.
    Auto { delay_ms: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedGoods {
    pub goods_id: String,
    pub goods_name: String,
    pub stock_quantity: i64,
    #[serde(default)]
    pub allocation_quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedOrder {
    pub receive_order_id: i64,
    #[serde(default = "one")]
    pub shop_id: i64,
    pub shop_cut_form_id: String,
    #[serde(default)]
    pub order_date: Option<NaiveDateTime>,
    /// Defaults to the simulator clock's now.
    #[serde(default)]
    pub import_date: Option<NaiveDateTime>,
    #[serde(default = "zero_str")]
    pub cancel_type_id: String,
    #[serde(default = "two_str")]
    pub order_status_id: String,
    #[serde(default)]
    pub send_date: Option<NaiveDateTime>,
    pub rows: Vec<SeedOrderRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedOrderRow {
    pub row_no: i64,
    pub goods_id: String,
    #[serde(default)]
    pub goods_name: String,
    pub quantity: i64,
    #[serde(default)]
    pub cancel_flag: bool,
    #[serde(default)]
    pub deleted_flag: bool,
}

fn one() -> i64 {
    1
}
fn zero_str() -> String {
    "0".into()
}
fn two_str() -> String {
    "2".into()
}

/// Changes to an existing order; every call bumps the last-modified dates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderUpdate {
    pub cancel_type_id: Option<String>,
    pub order_status_id: Option<String>,
    pub send_date: Option<NaiveDateTime>,
    /// Row numbers whose cancel flag becomes "1".
    pub cancel_rows: Vec<i64>,
    /// Row numbers whose deleted flag becomes "1".
    pub delete_rows: Vec<i64>,
    /// (row_no, new quantity)
    pub row_quantities: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedUpload {
    pub que_id: String,
    pub company_id: String,
    pub csv: String,
    pub status: String,
    pub message: String,
    pub received_at: String,
    /// Uploaded through the screen ([`NeSim::operator_upload`]), not the API.
    pub by_operator: bool,
    /// The `data_type` the API upload was sent with (`csv` or `gz`); empty
    /// for screen uploads.
    #[serde(default)]
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Exact request path (e.g. `/api_v1_master_goods/upload`); `None` = every
    /// API path (including `/api_neauth`, excluding sign-in and `/_sim`).
    #[serde(default)]
    pub path: Option<String>,
    /// Fire for the next N matching calls, then disappear; `None` = forever.
    #[serde(default)]
    pub remaining: Option<u32>,
    /// Fire with this probability per matching call (default 1.0).
    #[serde(default)]
    pub probability: Option<f64>,
}

impl Fault {
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            path: None,
            remaining: None,
            probability: None,
        }
    }
    pub fn on(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaultKind {
    /// `wait_flag≠1` → 003002; `wait_flag=1` → waits `overload_wait_ms`, then runs.
    Overload,
    /// `wait_flag≠1` → 003002; `wait_flag=1` → waits, then 003001.
    OverloadWaitTimeout,
    Maintenance002007,
    Maintenance003004,
    SystemError999999,
    /// Answers `result: "error"` with this message code and the text the
    /// reference quotes for it ([`code_message`]), e.g. `008010` (棚卸中) or
    /// `002003` (利用停止). Tokens are carried as for any error, except for
    /// the codes NextEngine documents without them (002002, 002004, 999999).
    Code(String),
    Http5xx(u16),
    Slow(u64),
    DropConnection,
    DropAfterProcessing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    #[serde(with = "ne_dt")]
    pub access_token_end_date: NaiveDateTime,
    pub refresh_token: String,
    #[serde(with = "ne_dt")]
    pub refresh_token_end_date: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedCall {
    pub time: String,
    pub path: String,
    /// Form fields; token and secret values are replaced by `***`.
    pub fields: Vec<(String, String)>,
    /// "success", "error", "redirect", "http-<status>", "dropped".
    pub outcome: String,
    pub code: Option<String>,
}

mod ne_dt {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(dt: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::common::fmt_dt(*dt))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let s = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(&s, crate::common::DATETIME_FMT)
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------

struct Company {
    name: String,
    kana: String,
    ne_id: String,
    uid: String,
    app_header: String,
    goods: BTreeMap<String, Goods>,
    orders: BTreeMap<i64, Order>,
    tokens: Option<TokenPair>,
    /// 入出庫履歴: one entry per change of a goods' stock, oldest first.
    io_history: Vec<IoEntry>,
    /// セット商品: set code → its components (goods code, quantity per set).
    set_goods: BTreeMap<String, Vec<(String, i64)>>,
}

/// One 入出庫履歴 entry. Field names follow the community SDK
/// `shibuya-kosuke/laravel-nextengine` (`MasterStockIoHistory`); which changes
/// NextEngine records and how is assumed: every applied upload row, and every
/// change made with [`NeSim::record_stock_change`] (an order's names its slip).
struct IoEntry {
    id: u64,
    goods_id: String,
    before: i64,
    after: i64,
    cut_form_id: Option<String>,
    reason: String,
    created: NaiveDateTime,
}

struct Goods {
    name: String,
    stock: i64,
    allocation: i64,
    created: NaiveDateTime,
    modified: NaiveDateTime,
}

struct Order {
    shop_id: i64,
    shop_cut_form_id: String,
    order_date: NaiveDateTime,
    import_date: NaiveDateTime,
    cancel_type_id: String,
    order_status_id: String,
    send_date: Option<NaiveDateTime>,
    modified: NaiveDateTime,
    rows: Vec<OrderRow>,
}

struct OrderRow {
    row_no: i64,
    goods_id: String,
    goods_name: String,
    quantity: i64,
    cancel_flag: bool,
    deleted_flag: bool,
    created: NaiveDateTime,
    modified: NaiveDateTime,
}

struct Queue {
    que_id: u64,
    company_id: String,
    status: i32,
    message: String,
    csv: String,
    created: NaiveDateTime,
    modified: NaiveDateTime,
    upload_name: &'static str,
    client_file_name: String,
    data_type: String,
}

/// `que_upload_name` of an API upload (reference: nextengine-api.md, Update "Queue names").
pub const API_UPLOAD_NAME: &str = "NE_API";
/// `que_upload_name` of the screen's goods CSV upload (assumed wording).
pub const SCREEN_UPLOAD_NAME: &str = "商品マスタ一括登録";

struct SignInState {
    company_id: String,
    expires: NaiveDateTime,
    used: bool,
}

struct ActiveFault {
    fault: Fault,
}

struct NeState {
    config: NeConfig,
    clock: SimClock,
    auto_login: String,
    companies: BTreeMap<String, Company>,
    states: HashMap<String, SignInState>,
    /// Every access token ever issued → company; superseded ones stay here so
    /// they can be told apart from garbage (both answer 002002).
    access_index: HashMap<String, String>,
    queues: Vec<Queue>,
    next_que_id: u64,
    faults: Vec<ActiveFault>,
    calls: Vec<RecordedCall>,
}

#[derive(Clone)]
pub struct NeSim {
    inner: Arc<Mutex<NeState>>,
    addr: Option<SocketAddr>,
}

// ---------------------------------------------------------------------------
// Control API (Rust)
// ---------------------------------------------------------------------------

impl NeSim {
    /// A simulator without a listening socket (use [`NeSim::router`]).
    pub fn new(config: NeConfig) -> NeSim {
        let auto = config.auto_login_company.clone();
        let sim = NeSim {
            inner: Arc::new(Mutex::new(NeState {
                config,
                clock: SimClock::default(),
                auto_login: auto.clone(),
                companies: BTreeMap::new(),
                states: HashMap::new(),
                access_index: HashMap::new(),
                queues: Vec::new(),
                next_que_id: 1,
                faults: Vec::new(),
                calls: Vec::new(),
            })),
            addr: None,
        };
        if !auto.is_empty() {
            sim.add_company(&auto, "デモ株式会社");
        }
        sim
    }

    pub async fn start(config: NeConfig, addr: SocketAddr) -> anyhow::Result<NeSim> {
        let mut sim = NeSim::new(config);
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

    pub fn router(&self) -> Router {
        Router::new()
            .route("/users/sign_in/", get(sign_in))
            .route("/users/sign_in", get(sign_in))
            .route("/_sim/companies", post(ctl_add_company))
            .route("/_sim/auto_login", post(ctl_auto_login))
            .route("/_sim/goods", post(ctl_seed_goods))
            .route("/_sim/stock", get(ctl_stock))
            .route("/_sim/orders", post(ctl_seed_orders))
            .route("/_sim/orders/update", post(ctl_update_order))
            .route("/_sim/clock", get(ctl_clock))
            .route("/_sim/clock/advance", post(ctl_advance))
            .route("/_sim/queues/step", post(ctl_step))
            .route("/_sim/queues/run", post(ctl_run))
            .route("/_sim/uploads", get(ctl_uploads))
            .route("/_sim/operator_upload", post(ctl_operator_upload))
            .route("/_sim/faults", post(ctl_fault).delete(ctl_clear_faults))
            .route("/_sim/tokens", get(ctl_tokens))
            .route("/_sim/tokens/issue", post(ctl_issue))
            .route("/_sim/calls", get(ctl_calls).delete(ctl_clear_calls))
            .route("/_sim/config", get(ctl_config))
            .fallback(api_entry)
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, NeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> NeConfig {
        self.lock().config.clone()
    }

    pub fn set_partial_apply(&self, on: bool) {
        self.lock().config.partial_apply = on;
    }

    pub fn set_free_stock_rule(&self, rule: FreeStockRule) {
        self.lock().config.free_stock_rule = rule;
    }

    pub fn add_company(&self, company_id: &str, name: &str) {
        let mut st = self.lock();
        let n = st.companies.len() + 1;
        st.companies
            .entry(company_id.to_string())
            .or_insert_with(|| Company {
                name: name.to_string(),
                kana: "デモカブシキガイシャ".into(),
                ne_id: format!("NE{:06}", n),
                uid: random_hex(16),
                app_header: random_hex(16),
                goods: BTreeMap::new(),
                orders: BTreeMap::new(),
                tokens: None,
                io_history: Vec::new(),
                set_goods: BTreeMap::new(),
            });
    }

    pub fn set_auto_login(&self, company_id: &str) {
        self.lock().auto_login = company_id.to_string();
    }

    pub fn seed_goods(&self, company_id: &str, goods: Vec<SeedGoods>) {
        self.add_company(company_id, company_id);
        let mut st = self.lock();
        let now = st.clock.now_jst();
        let c = st
            .companies
            .get_mut(company_id)
            .expect("company just added");
        for g in goods {
            c.goods.insert(
                g.goods_id,
                Goods {
                    name: g.goods_name,
                    stock: g.stock_quantity,
                    allocation: g.allocation_quantity,
                    created: now,
                    modified: now,
                },
            );
        }
    }

    /// Registers a set goods (セット商品) and its components. NextEngine
    /// computes a set's stock from its components; the simulator keeps the
    /// set's goods row as seeded and only answers `master_setgoods` searches.
    pub fn seed_set_goods(&self, company_id: &str, set_code: &str, components: Vec<(String, i64)>) {
        self.add_company(company_id, company_id);
        let mut st = self.lock();
        if let Some(c) = st.companies.get_mut(company_id) {
            c.set_goods.insert(set_code.to_string(), components);
        }
    }

    /// 在庫数 of one goods.
    pub fn stock(&self, company_id: &str, goods_id: &str) -> Option<i64> {
        let st = self.lock();
        st.companies
            .get(company_id)?
            .goods
            .get(goods_id)
            .map(|g| g.stock)
    }

    /// Changes a goods' stock the way something other than our upload does (an
    /// order's shipment when `slip` names it, an operator's edit otherwise) and
    /// records it in the 入出庫履歴.
    pub fn record_stock_change(
        &self,
        company_id: &str,
        goods_id: &str,
        delta: i64,
        slip: Option<&str>,
    ) {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        let Some(company) = st.companies.get_mut(company_id) else {
            return;
        };
        let Some(g) = company.goods.get_mut(goods_id) else {
            return;
        };
        let before = g.stock;
        g.stock += delta;
        g.modified = now;
        let after = g.stock;
        let reason = if slip.is_some() {
            "出荷確定"
        } else {
            "手動更新"
        };
        push_io_entry(
            company,
            goods_id.to_string(),
            before,
            after,
            slip.map(str::to_string),
            reason,
            now,
        );
    }

    /// (在庫数, 引当数, フリー在庫数)
    pub fn stock_detail(&self, company_id: &str, goods_id: &str) -> Option<(i64, i64, i64)> {
        let st = self.lock();
        let g = st.companies.get(company_id)?.goods.get(goods_id)?;
        Some((g.stock, g.allocation, g.stock - g.allocation))
    }

    pub fn seed_orders(&self, company_id: &str, orders: Vec<SeedOrder>) {
        self.add_company(company_id, company_id);
        let mut st = self.lock();
        let now = st.clock.now_jst();
        let c = st
            .companies
            .get_mut(company_id)
            .expect("company just added");
        for o in orders {
            let rows = o
                .rows
                .into_iter()
                .map(|r| OrderRow {
                    row_no: r.row_no,
                    goods_id: r.goods_id,
                    goods_name: r.goods_name,
                    quantity: r.quantity,
                    cancel_flag: r.cancel_flag,
                    deleted_flag: r.deleted_flag,
                    created: now,
                    modified: now,
                })
                .collect();
            c.orders.insert(
                o.receive_order_id,
                Order {
                    shop_id: o.shop_id,
                    shop_cut_form_id: o.shop_cut_form_id,
                    order_date: o.order_date.unwrap_or(now),
                    import_date: o.import_date.unwrap_or(now),
                    cancel_type_id: o.cancel_type_id,
                    order_status_id: o.order_status_id,
                    send_date: o.send_date,
                    modified: now,
                    rows,
                },
            );
        }
    }

    /// Returns false when the order does not exist.
    pub fn update_order(
        &self,
        company_id: &str,
        receive_order_id: i64,
        update: OrderUpdate,
    ) -> bool {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        let Some(o) = st
            .companies
            .get_mut(company_id)
            .and_then(|c| c.orders.get_mut(&receive_order_id))
        else {
            return false;
        };
        if let Some(v) = update.cancel_type_id {
            o.cancel_type_id = v;
        }
        if let Some(v) = update.order_status_id {
            o.order_status_id = v;
        }
        if update.send_date.is_some() {
            o.send_date = update.send_date;
        }
        o.modified = now;
        for r in o.rows.iter_mut() {
            let mut touched = false;
            if update.cancel_rows.contains(&r.row_no) {
                r.cancel_flag = true;
                touched = true;
            }
            if update.delete_rows.contains(&r.row_no) {
                r.deleted_flag = true;
                touched = true;
            }
            if let Some((_, q)) = update.row_quantities.iter().find(|(n, _)| *n == r.row_no) {
                r.quantity = *q;
                touched = true;
            }
            if touched {
                r.modified = now;
            }
        }
        true
    }

    pub fn advance_clock(&self, secs: i64) {
        self.lock().clock.advance(secs);
    }

    /// The company's access token runs out now, its refresh token still good:
    /// the next call rotates the pair, as a call made just after the access
    /// token's end does, without moving the clock (time passing at once in the
    /// middle of a run is what real time cannot do).
    pub fn expire_access_token(&self, company_id: &str) {
        let mut st = self.lock();
        let now = st.clock.now_jst();
        if let Some(tokens) = st
            .companies
            .get_mut(company_id)
            .and_then(|c| c.tokens.as_mut())
        {
            tokens.access_token_end_date = tokens.access_token_end_date.min(now);
        }
    }

    pub fn now_jst(&self) -> NaiveDateTime {
        self.lock().clock.now_jst()
    }

    pub fn step_queues(&self) {
        let mut st = self.lock();
        let ids: Vec<u64> = st
            .queues
            .iter()
            .filter(|q| q.status == 0 || q.status == 1)
            .map(|q| q.que_id)
            .collect();
        for id in ids {
            step_queue(&mut st, id);
        }
    }

    pub fn run_queues(&self) {
        let mut st = self.lock();
        let ids: Vec<u64> = st
            .queues
            .iter()
            .filter(|q| q.status == 0 || q.status == 1)
            .map(|q| q.que_id)
            .collect();
        for id in ids {
            while st
                .queues
                .iter()
                .any(|q| q.que_id == id && (q.status == 0 || q.status == 1))
            {
                step_queue(&mut st, id);
            }
        }
    }

    /// An operator's own goods CSV uploaded through NextEngine's screen: it lands
    /// in the same queue list as API uploads and is applied the same way.
    pub fn operator_upload(
        &self,
        company_id: &str,
        csv: &str,
        file_name: &str,
    ) -> Result<String, String> {
        let mut st = self.lock();
        validate_csv(csv)?;
        let id = enqueue(
            &mut st,
            company_id,
            csv.to_string(),
            SCREEN_UPLOAD_NAME,
            file_name.to_string(),
            String::new(),
        );
        Ok(id.to_string())
    }

    pub fn uploads(&self) -> Vec<ReceivedUpload> {
        let st = self.lock();
        st.queues
            .iter()
            .map(|q| ReceivedUpload {
                que_id: q.que_id.to_string(),
                company_id: q.company_id.clone(),
                csv: q.csv.clone(),
                status: q.status.to_string(),
                message: q.message.clone(),
                received_at: fmt_dt(q.created),
                by_operator: q.upload_name != API_UPLOAD_NAME,
                data_type: q.data_type.clone(),
            })
            .collect()
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.lock().faults.push(ActiveFault { fault });
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn tokens_of(&self, company_id: &str) -> Option<(String, String)> {
        let st = self.lock();
        st.companies
            .get(company_id)?
            .tokens
            .as_ref()
            .map(|t| (t.access_token.clone(), t.refresh_token.clone()))
    }

    pub fn token_pair_of(&self, company_id: &str) -> Option<TokenPair> {
        self.lock().companies.get(company_id)?.tokens.clone()
    }

    /// Issues a fresh pair as `/api_neauth` would (superseding the old one),
    /// creating the company if needed.
    pub fn issue_tokens(&self, company_id: &str) -> TokenPair {
        self.add_company(company_id, company_id);
        let mut st = self.lock();
        issue_pair(&mut st, company_id)
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }
}

fn issue_pair(st: &mut NeState, company_id: &str) -> TokenPair {
    let now = st.clock.now_jst();
    let pair = TokenPair {
        access_token: random_hex(20),
        access_token_end_date: now + Duration::seconds(st.config.access_token_ttl_secs),
        refresh_token: random_hex(20),
        refresh_token_end_date: now + Duration::seconds(st.config.refresh_token_ttl_secs),
    };
    st.access_index
        .insert(pair.access_token.clone(), company_id.to_string());
    if let Some(c) = st.companies.get_mut(company_id) {
        c.tokens = Some(pair.clone());
    }
    pair
}

// ---------------------------------------------------------------------------
// Upload queue processing
// ---------------------------------------------------------------------------

fn step_queue(st: &mut NeState, que_id: u64) {
    let now = st.clock.now_jst();
    let partial = st.config.partial_apply;
    let free_rule = st.config.free_stock_rule;
    let Some(qi) = st.queues.iter().position(|q| q.que_id == que_id) else {
        return;
    };
    match st.queues[qi].status {
        0 => {
            st.queues[qi].status = 1;
            st.queues[qi].modified = now;
        }
        1 => {
            let company_id = st.queues[qi].company_id.clone();
            let csv = st.queues[qi].csv.clone();
            let goods = &mut st
                .companies
                .get_mut(&company_id)
                .expect("queue of a known company")
                .goods;
            let (errors, deltas) = evaluate_upload(&csv, goods, free_rule);
            let mut io_entries = Vec::new();
            if errors.is_empty() || partial {
                for (code, d) in deltas {
                    if let Some(g) = goods.get_mut(&code) {
                        let before = g.stock;
                        g.stock += d;
                        g.modified = now;
                        io_entries.push((code.clone(), before, g.stock));
                    }
                }
            }
            let company = st
                .companies
                .get_mut(&company_id)
                .expect("queue of a known company");
            for (goods_id, before, after) in io_entries {
                push_io_entry(
                    company,
                    goods_id,
                    before,
                    after,
                    None,
                    "CSVアップロード",
                    now,
                );
            }
            let q = &mut st.queues[qi];
            if errors.is_empty() {
                q.status = 2;
                q.message = String::new();
            } else {
                q.status = -1;
                q.message = errors.join("\n");
            }
            q.modified = now;
        }
        _ => {}
    }
}

fn push_io_entry(
    company: &mut Company,
    goods_id: String,
    before: i64,
    after: i64,
    cut_form_id: Option<String>,
    reason: &str,
    created: NaiveDateTime,
) {
    let id = company.io_history.last().map_or(1, |e| e.id + 1);
    company.io_history.push(IoEntry {
        id,
        goods_id,
        before,
        after,
        cut_form_id,
        reason: reason.to_string(),
        created,
    });
}

/// Walks the rows in order against a scratch copy of the stock so later rows
/// see earlier rows' effects; returns the row errors and the deltas of the
/// good rows.
fn evaluate_upload(
    csv_text: &str,
    goods: &BTreeMap<String, Goods>,
    free_rule: FreeStockRule,
) -> (Vec<String>, Vec<(String, i64)>) {
    let mut errors = Vec::new();
    let mut deltas = Vec::new();
    let mut scratch: HashMap<String, (i64, i64)> = goods
        .iter()
        .map(|(k, g)| (k.clone(), (g.stock, g.allocation)))
        .collect();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let headers = rdr.headers().cloned().unwrap_or_default();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (code_col, qty_col) = (col("syohin_code"), col("zaiko_su"));
    // File line numbers, header = line 1. Counted here rather than taken from the
    // csv reader, whose positions drift on CRLF files.
    for (index, rec) in rdr.records().enumerate() {
        let Ok(rec) = rec else { continue };
        let line = index + 2;
        let code = code_col
            .and_then(|i| rec.get(i))
            .unwrap_or("")
            .trim()
            .to_string();
        if code.is_empty() {
            errors.push(format!("{line}行目: 商品コードは必須です。"));
            continue;
        }
        let Some(&(stock, alloc)) = scratch.get(&code) else {
            errors.push(format!(
                "{line}行目: 仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。"
            ));
            continue;
        };
        let raw = qty_col.and_then(|i| rec.get(i)).unwrap_or("").trim();
        if raw.is_empty() {
            continue;
        }
        let Ok(delta) = raw.parse::<i64>() else {
            errors.push(format!("{line}行目: 在庫数は整数で入力して下さい。"));
            continue;
        };
        if free_rule.refuses(delta, stock - alloc) {
            errors.push(format!(
                "{line}行目: フリー在庫数以上の在庫を減らすことはできません。"
            ));
            continue;
        }
        scratch.insert(code.clone(), (stock + delta, alloc));
        deltas.push((code, delta));
    }
    (errors, deltas)
}

/// Checked at upload time so a malformed file is refused synchronously
/// instead of producing a queue.
fn validate_csv(text: &str) -> Result<(), String> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| format!("CSVの形式が不正です。({e})"))?
        .clone();
    if !headers.iter().any(|h| h.trim() == "syohin_code") {
        return Err("CSVのヘッダーにsyohin_codeがありません。".into());
    }
    for rec in rdr.records() {
        rec.map_err(|e| format!("CSVの形式が不正です。({e})"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// HTTP: sign-in and API entry
// ---------------------------------------------------------------------------

const CODE_PARAM: &str = "010001";
const MSG_OVERLOAD: &str =
    "現在メイン機能サーバーが混み合っておりますので、再度時間を置いてからアクセスして下さい。";

#[derive(Deserialize)]
struct SignInQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
}

async fn sign_in(State(sim): State<NeSim>, Query(q): Query<SignInQuery>) -> Response {
    let mut st = sim.lock();
    if q.client_id.as_deref() != Some(st.config.client_id.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"result":"error","code":"001003","message":"client_idが不正です。"})),
        )
            .into_response();
    }
    let Some(redirect) = q.redirect_uri.filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"result":"error","code":"001003","message":"redirect_uriが指定されていません。"})),
        )
            .into_response();
    };
    let company_id = st.auto_login.clone();
    let Some(uid) = st.companies.get(&company_id).map(|c| c.uid.clone()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"result":"error","code":"001007","message":"ログインする企業が存在しません。"})),
        )
            .into_response();
    };
    let state = random_hex(16);
    let expires = st.clock.now_jst() + Duration::seconds(st.config.state_ttl_secs);
    st.states.insert(
        state.clone(),
        SignInState {
            company_id,
            expires,
            used: false,
        },
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let qs = serde_urlencoded::to_string([("uid", uid.as_str()), ("state", state.as_str())])
        .unwrap_or_default();
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, format!("{redirect}{sep}{qs}"))],
    )
        .into_response()
}

/// The real API only speaks HTTP 200 + JSON, so everything below returns a
/// JSON object; the HTTP-level faults are the only exceptions.
fn envelope_error(code: &str, message: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("result".into(), "error".into());
    m.insert("code".into(), code.into());
    m.insert("message".into(), message.into());
    m
}

fn add_tokens(m: &mut Map<String, Value>, t: &TokenPair) {
    m.insert("access_token".into(), t.access_token.clone().into());
    m.insert(
        "access_token_end_date".into(),
        fmt_dt(t.access_token_end_date).into(),
    );
    m.insert("refresh_token".into(), t.refresh_token.clone().into());
    m.insert(
        "refresh_token_end_date".into(),
        fmt_dt(t.refresh_token_end_date).into(),
    );
}

fn json_ok(m: Map<String, Value>) -> Response {
    (StatusCode::OK, Json(Value::Object(m))).into_response()
}

struct Form {
    fields: Vec<(String, Vec<u8>)>,
}

impl Form {
    fn get(&self, k: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    fn get_bytes(&self, k: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_slice())
    }
    fn redacted(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|(k, v)| {
                let shown = match k.as_str() {
                    "access_token" | "refresh_token" | "client_secret" => "***".to_string(),
                    _ => match std::str::from_utf8(v) {
                        Ok(s) => s.to_string(),
                        Err(_) => format!("<{} bytes binary>", v.len()),
                    },
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

fn take_fault(st: &mut NeState, path: &str) -> Option<FaultKind> {
    use rand::Rng;
    let mut hit = None;
    for (i, af) in st.faults.iter_mut().enumerate() {
        if af.fault.path.as_deref().is_some_and(|p| p != path) {
            continue;
        }
        if let Some(p) = af.fault.probability
            && rand::rng().random::<f64>() >= p
        {
            continue;
        }
        if let Some(r) = af.fault.remaining.as_mut() {
            *r = r.saturating_sub(1);
        }
        hit = Some((i, af.fault.kind.clone()));
        break;
    }
    let (i, kind) = hit?;
    if st.faults[i].fault.remaining == Some(0) {
        st.faults.remove(i);
    }
    Some(kind)
}

fn record(sim: &NeSim, path: &str, form: &Form, outcome: &str, code: Option<String>) {
    let mut st = sim.lock();
    let time = fmt_dt(st.clock.now_jst());
    st.calls.push(RecordedCall {
        time,
        path: path.to_string(),
        fields: form.redacted(),
        outcome: outcome.to_string(),
        code,
    });
}

fn outcome_of(m: &Map<String, Value>) -> (String, Option<String>) {
    (
        m.get("result")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        m.get("code").and_then(Value::as_str).map(str::to_string),
    )
}

async fn api_entry(State(sim): State<NeSim>, req: Request) -> Response {
    let kill = common::conn_kill(&req);
    let path = req.uri().path().to_string();
    let is_post = req.method() == axum::http::Method::POST;
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, Json(json!({"error":"body"}))).into_response(),
    };
    let form = Form {
        fields: common::parse_form_bytes(&body),
    };
    if !is_post || path.starts_with("/_sim") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"result":"error","code":"000001","message":"指定されたパスは存在しません。"})),
        )
            .into_response();
    }

    let fault = {
        let mut st = sim.lock();
        take_fault(&mut st, &path)
    };
    match fault {
        Some(FaultKind::Http5xx(status)) => {
            record(&sim, &path, &form, &format!("http-{status}"), None);
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (code, Json(json!({"error": code.to_string()}))).into_response();
        }
        Some(FaultKind::DropConnection) => {
            record(&sim, &path, &form, "dropped", None);
            return common::drop_connection(kill).await;
        }
        Some(FaultKind::Slow(ms)) => tokio::time::sleep(StdDuration::from_millis(ms)).await,
        _ => {}
    }
    let envelope_fault = match &fault {
        Some(FaultKind::DropAfterProcessing | FaultKind::Slow(_)) | None => None,
        Some(k) => Some(k.clone()),
    };

    let m = if path == "/api_neauth" {
        match overload_outcome(&sim, &form, envelope_fault.as_ref(), None).await {
            Some(m) => m,
            None => neauth(&sim, &form),
        }
    } else {
        token_api(&sim, &path, &form, envelope_fault.as_ref()).await
    };
    let (outcome, code) = outcome_of(&m);
    if matches!(fault, Some(FaultKind::DropAfterProcessing)) {
        record(&sim, &path, &form, "dropped", code);
        return common::drop_connection(kill).await;
    }
    record(&sim, &path, &form, &outcome, code);
    json_ok(m)
}

/// Applies an envelope-level fault. Returns the error body to send, or None
/// to go on (after a simulated wait, for `wait_flag=1` overloads).
async fn overload_outcome(
    sim: &NeSim,
    form: &Form,
    fault: Option<&FaultKind>,
    tokens: Option<&TokenPair>,
) -> Option<Map<String, Value>> {
    let fault = fault?;
    let wait = form.get("wait_flag").as_deref() == Some("1");
    let wait_ms = sim.lock().config.overload_wait_ms;
    let with_tokens = |mut m: Map<String, Value>| {
        if let Some(t) = tokens {
            add_tokens(&mut m, t);
        }
        m
    };
    match fault {
        FaultKind::Overload if wait => {
            tokio::time::sleep(StdDuration::from_millis(wait_ms)).await;
            None
        }
        FaultKind::OverloadWaitTimeout if wait => {
            tokio::time::sleep(StdDuration::from_millis(wait_ms)).await;
            Some(with_tokens(envelope_error("003001", MSG_OVERLOAD)))
        }
        FaultKind::Overload | FaultKind::OverloadWaitTimeout => {
            Some(with_tokens(envelope_error("003002", MSG_OVERLOAD)))
        }
        FaultKind::Maintenance002007 => Some(with_tokens(envelope_error(
            "002007",
            "現在ネクストエンジンサーバーがメンテナンス中の為、再度時間を置いてからアクセスして下さい。",
        ))),
        FaultKind::Maintenance003004 => Some(with_tokens(envelope_error(
            "003004",
            "現在メイン機能サーバーがメンテナンス中の為、再度時間を置いてからアクセスして下さい。",
        ))),
        FaultKind::SystemError999999 => Some(envelope_error(
            "999999",
            "APIサーバーのシステムエラーが発生しました。",
        )),
        FaultKind::Code(code) => {
            let m = envelope_error(code, code_message(code));
            Some(if CODES_WITHOUT_TOKENS.contains(&code.as_str()) {
                m
            } else {
                with_tokens(m)
            })
        }
        _ => None,
    }
}

/// Error answers that carry no tokens (reference: "Tokens in error answers").
const CODES_WITHOUT_TOKENS: &[&str] = &["002002", "002004", "999999"];

/// The message texts the reference quotes (§2.2, most from Hamee's
/// app-template-fuel `router.php`); `[xxxxx]` placeholders filled in with
/// sample values. Codes without a known text (e.g. 003005, 004001) get a
/// generic one rather than an invented wording.
pub fn code_message(code: &str) -> &'static str {
    match code {
        "000001" => "指定されたパスは存在しません。",
        "001007" | "002003" => {
            "[デモ株式会社]様のネクストエンジンが、次の理由により利用停止になっています。[ご利用料金の未払い]"
        }
        "002002" => "アクセストークンが無効です。(access_token, refresh_tokenが不正です)",
        "002004" => "リフレッシュトークンの有効期限が切れています。再度ログインして下さい。",
        "002007" => {
            "現在ネクストエンジンサーバーがメンテナンス中の為、再度時間を置いてからアクセスして下さい。"
        }
        "003001" | "003002" => MSG_OVERLOAD,
        "003003" => "[デモ株式会社]様のメイン機能が、利用停止です。",
        "003004" => {
            "現在メイン機能サーバーがメンテナンス中の為、再度時間を置いてからアクセスして下さい。"
        }
        "008003" => "受注取込中のため、更新出来ません。",
        "008007" => "納品書印刷中の伝票があります。時間を空けて再度APIを実行して下さい。",
        "008010" => "棚卸中のため、更新出来ません。",
        "999999" => "APIサーバーのシステムエラーが発生しました。",
        _ => "エラーが発生しました。",
    }
}

fn neauth(sim: &NeSim, form: &Form) -> Map<String, Value> {
    let mut st = sim.lock();
    let uid = form.get("uid").unwrap_or_default();
    let state = form.get("state").unwrap_or_default();
    if uid.is_empty() {
        return envelope_error("001001", "POSTパラメータにuidが指定されていません");
    }
    if state.is_empty() {
        return envelope_error("001002", "POSTパラメータにstateが指定されていません");
    }
    if form.get("client_id").as_deref() != Some(st.config.client_id.as_str())
        || form.get("client_secret").as_deref() != Some(st.config.client_secret.as_str())
    {
        return envelope_error("001003", "client_idまたはclient_secretが不正です。");
    }
    let now = st.clock.now_jst();
    let company_id = match st.states.get_mut(&state) {
        Some(s) if !s.used && now <= s.expires => {
            s.used = true;
            s.company_id.clone()
        }
        Some(s) if s.used => {
            return envelope_error("001004", "stateは既に使用されています。");
        }
        Some(_) => {
            return envelope_error("001004", "stateの有効期限が切れています。");
        }
        None => return envelope_error("001004", "stateが不正です。"),
    };
    let Some(company_uid) = st.companies.get(&company_id).map(|c| c.uid.clone()) else {
        return envelope_error("001004", "stateが不正です。");
    };
    if company_uid != uid {
        return envelope_error("001005", "uidが不正です。");
    }
    let supersede = st.config.login_supersedes_tokens;
    let pair = match st.companies[&company_id].tokens.clone() {
        Some(t) if !supersede => t,
        _ => issue_pair(&mut st, &company_id),
    };
    let c = &st.companies[&company_id];
    let mut m = Map::new();
    m.insert("result".into(), "success".into());
    add_tokens(&mut m, &pair);
    m.insert("company_app_header".into(), c.app_header.clone().into());
    m.insert("company_ne_id".into(), c.ne_id.clone().into());
    m.insert("company_name".into(), c.name.clone().into());
    m.insert("company_kana".into(), c.kana.clone().into());
    m.insert("uid".into(), c.uid.clone().into());
    m.insert("pic_ne_id".into(), "1".into());
    m.insert("pic_name".into(), "シミュレーター 太郎".into());
    m.insert("pic_kana".into(), "シミュレーター タロウ".into());
    m.insert(
        "pic_mail_address".into(),
        format!("pic@{company_id}.example").into(),
    );
    m
}

enum Auth {
    Ok { company_id: String, rotate: bool },
    Fail(Map<String, Value>),
}

fn authenticate(st: &NeState, form: &Form) -> Auth {
    let access = form.get("access_token").unwrap_or_default();
    if access.is_empty() {
        return Auth::Fail(envelope_error(
            "002001",
            "POSTパラメータにaccess_tokenが指定されていません",
        ));
    }
    let invalid = || {
        Auth::Fail(envelope_error(
            "002002",
            "アクセストークンが無効です。(access_token, refresh_tokenが不正です)",
        ))
    };
    let Some(company_id) = st.access_index.get(&access) else {
        return invalid();
    };
    let Some(current) = st.companies.get(company_id).and_then(|c| c.tokens.as_ref()) else {
        return invalid();
    };
    if current.access_token != access {
        return invalid();
    }
    let now = st.clock.now_jst();
    if now < current.access_token_end_date {
        return Auth::Ok {
            company_id: company_id.clone(),
            rotate: false,
        };
    }
    let refresh = form.get("refresh_token").unwrap_or_default();
    if refresh.is_empty() {
        let mut m = envelope_error(
            &st.config.redirect_code,
            "アクセストークンの有効期限が切れています。再度ログインして下さい。",
        );
        m.insert("result".into(), "redirect".into());
        return Auth::Fail(m);
    }
    if refresh != current.refresh_token {
        return invalid();
    }
    if now >= current.refresh_token_end_date {
        let mut m = envelope_error(
            "002004",
            "リフレッシュトークンの有効期限が切れています。再度ログインして下さい。",
        );
        if st.config.refresh_expired_redirect {
            m.insert("result".into(), "redirect".into());
        }
        return Auth::Fail(m);
    }
    Auth::Ok {
        company_id: company_id.clone(),
        rotate: true,
    }
}

async fn token_api(
    sim: &NeSim,
    path: &str,
    form: &Form,
    fault: Option<&FaultKind>,
) -> Map<String, Value> {
    let (company_id, rotate, current) = {
        let st = sim.lock();
        match authenticate(&st, form) {
            Auth::Fail(m) => return m,
            Auth::Ok { company_id, rotate } => {
                let cur = st.companies[&company_id].tokens.clone();
                (company_id, rotate, cur)
            }
        }
    };
    // Envelope faults strike before rotation, so the client keeps a pair
    // that is still the current one.
    if let Some(m) = overload_outcome(sim, form, fault, current.as_ref()).await {
        return m;
    }
    let mut st = sim.lock();
    let pair = if rotate {
        issue_pair(&mut st, &company_id)
    } else {
        match st.companies[&company_id].tokens.clone() {
            Some(p) => p,
            // Superseded while we waited for the overload.
            None => {
                return envelope_error(
                    "002002",
                    "アクセストークンが無効です。(access_token, refresh_tokenが不正です)",
                );
            }
        }
    };
    let mut m = run_endpoint(&mut st, sim, &company_id, path, form);
    add_tokens(&mut m, &pair);
    m
}

fn run_endpoint(
    st: &mut NeState,
    sim: &NeSim,
    company_id: &str,
    path: &str,
    form: &Form,
) -> Map<String, Value> {
    let result = match path {
        "/api_v1_master_goods/upload" => upload(st, sim, company_id, form),
        "/api_v1_login_company/info" => {
            let c = &st.companies[company_id];
            let mut m = Map::new();
            m.insert("result".into(), "success".into());
            m.insert("count".into(), "1".into());
            m.insert(
                "data".into(),
                json!([{"company_id": company_id, "company_ne_id": c.ne_id, "company_name": c.name, "company_kana": c.kana}]),
            );
            Ok(m)
        }
        _ => {
            let Some((table, verb)) = path
                .strip_prefix("/api_v1_")
                .and_then(|p| p.split_once('/'))
            else {
                return envelope_error("000001", "指定されたパスは存在しません。");
            };
            let Some(kind) = Table::from_name(table) else {
                return envelope_error("000001", "指定されたパスは存在しません。");
            };
            match verb {
                "search" => search(st, company_id, kind, form, false),
                "count" => search(st, company_id, kind, form, true),
                _ => return envelope_error("000001", "指定されたパスは存在しません。"),
            }
        }
    };
    result.unwrap_or_else(|msg| envelope_error(CODE_PARAM, &msg))
}

fn upload(
    st: &mut NeState,
    sim: &NeSim,
    company_id: &str,
    form: &Form,
) -> Result<Map<String, Value>, String> {
    let data_type = form.get("data_type").unwrap_or_default();
    let Some(data) = form.get_bytes("data") else {
        return Err("POSTパラメータにdataが指定されていません".into());
    };
    let raw = match data_type.as_str() {
        "csv" => data.to_vec(),
        "gz" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|_| "dataのgzip展開に失敗しました。".to_string())?;
            out
        }
        _ => return Err("data_typeが不正です。(csv または gz を指定して下さい)".into()),
    };
    let text = String::from_utf8(raw).map_err(|_| "CSVの文字コードが不正です。".to_string())?;
    let text = text.trim_start_matches('\u{feff}').to_string();
    validate_csv(&text)?;
    let que_id = enqueue(
        st,
        company_id,
        text,
        API_UPLOAD_NAME,
        String::new(),
        data_type,
    );
    if let QueueMode::Auto { delay_ms } = st.config.queue_mode {
        let sim = sim.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                tokio::time::sleep(StdDuration::from_millis(delay_ms)).await;
                let mut st = sim.lock();
                step_queue(&mut st, que_id);
            }
        });
    }
    let mut m = Map::new();
    m.insert("result".into(), "success".into());
    m.insert("que_id".into(), que_id.to_string().into());
    Ok(m)
}

fn enqueue(
    st: &mut NeState,
    company_id: &str,
    csv: String,
    upload_name: &'static str,
    client_file_name: String,
    data_type: String,
) -> u64 {
    let now = st.clock.now_jst();
    let que_id = st.next_que_id;
    st.next_que_id += 1;
    st.queues.push(Queue {
        que_id,
        company_id: company_id.to_string(),
        status: 0,
        message: String::new(),
        csv,
        created: now,
        modified: now,
        upload_name,
        client_file_name,
        data_type,
    });
    que_id
}

// ---------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Table {
    Que,
    Goods,
    Stock,
    OrderBase,
    OrderRow,
    StockIo,
    SetGoods,
}

/// `master_setgoods`: one row per component. The names follow NextEngine's
/// pattern (`<table>_<field>`, details as `<table>_detail_…`) and are assumed:
/// the reference attests the endpoint, not its fields.
const SET_GOODS_FIELDS: &[&str] = &[
    "set_goods_id",
    "set_goods_name",
    "set_goods_detail_goods_id",
    "set_goods_detail_quantity",
];

const STOCK_IO_FIELDS: &[&str] = &[
    "stock_io_history_id",
    "stock_io_history_shop_id",
    "stock_io_history_goods_id",
    "stock_io_history_date",
    "stock_io_history_before_stock_quantity",
    "stock_io_history_after_stock_quantity",
    "stock_io_history_quantity",
    "stock_io_history_cut_form_id",
    "stock_io_history_io_flag",
    "stock_io_history_reason",
    "stock_io_history_deleted_flag",
    "stock_io_history_creation_date",
    "stock_io_history_last_modified_date",
];

const QUE_FIELDS: &[&str] = &[
    "que_id",
    "que_method_name",
    "que_shop_id",
    "que_upload_name",
    "que_client_file_name",
    "que_file_name",
    "que_status_id",
    "que_message",
    "que_deleted_flag",
    "que_creation_date",
    "que_last_modified_date",
    "que_last_modified_null_safe_date",
    "que_creator_id",
    "que_creator_name",
    "que_last_modified_by_id",
    "que_last_modified_by_null_safe_id",
    "que_last_modified_by_name",
    "que_last_modified_by_null_safe_name",
];
const GOODS_FIELDS: &[&str] = &[
    "goods_id",
    "goods_name",
    "goods_deleted_flag",
    "goods_creation_date",
    "goods_last_modified_date",
    "stock_quantity",
    "stock_allocation_quantity",
    "stock_free_quantity",
];
const STOCK_FIELDS: &[&str] = &[
    "stock_goods_id",
    "stock_quantity",
    "stock_allocation_quantity",
    "stock_free_quantity",
    "stock_defective_quantity",
    "stock_deleted_flag",
    "stock_creation_date",
    "stock_last_modified_date",
];
const ORDER_FIELDS: &[&str] = &[
    "receive_order_id",
    "receive_order_shop_id",
    "receive_order_shop_cut_form_id",
    "receive_order_date",
    "receive_order_import_date",
    "receive_order_cancel_type_id",
    "receive_order_cancel_type_name",
    "receive_order_order_status_id",
    "receive_order_order_status_name",
    "receive_order_last_modified_date",
    "receive_order_send_date",
    "receive_order_deleted_flag",
];
const ROW_FIELDS: &[&str] = &[
    "receive_order_row_receive_order_id",
    "receive_order_row_no",
    "receive_order_row_shop_cut_form_id",
    "receive_order_row_goods_id",
    "receive_order_row_goods_name",
    "receive_order_row_quantity",
    "receive_order_row_cancel_flag",
    "receive_order_row_stock_allocation_quantity",
    "receive_order_row_deleted_flag",
    "receive_order_row_creation_date",
    "receive_order_row_last_modified_date",
    "receive_order_row_last_modified_newest_date",
];

impl Table {
    fn from_name(name: &str) -> Option<Table> {
        Some(match name {
            "system_que" => Table::Que,
            "master_goods" => Table::Goods,
            "master_stock" => Table::Stock,
            "receiveorder_base" => Table::OrderBase,
            "receiveorder_row" => Table::OrderRow,
            "master_stockiohistory" => Table::StockIo,
            "master_setgoods" => Table::SetGoods,
            _ => return None,
        })
    }
    fn knows(self, field: &str) -> bool {
        match self {
            Table::Que => QUE_FIELDS.contains(&field),
            Table::Goods => GOODS_FIELDS.contains(&field),
            Table::Stock => STOCK_FIELDS.contains(&field),
            Table::OrderBase => ORDER_FIELDS.contains(&field),
            Table::OrderRow => ROW_FIELDS.contains(&field) || ORDER_FIELDS.contains(&field),
            Table::StockIo => STOCK_IO_FIELDS.contains(&field),
            Table::SetGoods => SET_GOODS_FIELDS.contains(&field),
        }
    }
}

type Row = BTreeMap<&'static str, Option<String>>;

fn s<T: ToString>(v: T) -> Option<String> {
    Some(v.to_string())
}

fn flag(b: bool) -> Option<String> {
    s(if b { "1" } else { "0" })
}

fn cancel_type_name(id: &str) -> &'static str {
    match id {
        "0" => "有効な受注です。",
        "1" => "取込重複によりキャンセル",
        "2" => "返品によりキャンセル",
        "3" => "分割・統合によりキャンセル",
        "4" => "受注者都合によりキャンセル",
        "5" => "都合によるキャンセル",
        _ => "その他",
    }
}

fn status_name(id: &str) -> &'static str {
    match id {
        "0" => "取込情報不足",
        "1" => "受注メール取込済",
        "2" => "起票済(CSV/手入力)",
        "20" => "納品書印刷待ち",
        "30" => "納品書印刷中",
        "40" => "納品書印刷済",
        "50" => "出荷確定済（完了）",
        _ => "",
    }
}

fn order_row(id: i64, o: &Order) -> Row {
    let mut r = Row::new();
    r.insert("receive_order_id", s(id));
    r.insert("receive_order_shop_id", s(o.shop_id));
    r.insert("receive_order_shop_cut_form_id", s(&o.shop_cut_form_id));
    r.insert("receive_order_date", s(fmt_dt(o.order_date)));
    r.insert("receive_order_import_date", s(fmt_dt(o.import_date)));
    r.insert("receive_order_cancel_type_id", s(&o.cancel_type_id));
    r.insert(
        "receive_order_cancel_type_name",
        s(cancel_type_name(&o.cancel_type_id)),
    );
    r.insert("receive_order_order_status_id", s(&o.order_status_id));
    r.insert(
        "receive_order_order_status_name",
        s(status_name(&o.order_status_id)),
    );
    r.insert("receive_order_last_modified_date", s(fmt_dt(o.modified)));
    r.insert("receive_order_send_date", o.send_date.map(fmt_dt));
    r.insert("receive_order_deleted_flag", s("0"));
    r
}

fn build_rows(st: &NeState, company_id: &str, table: Table) -> Vec<Row> {
    let c = &st.companies[company_id];
    match table {
        Table::Que => st
            .queues
            .iter()
            .filter(|q| q.company_id == company_id)
            .map(|q| {
                let mut r = Row::new();
                r.insert("que_id", s(q.que_id));
                r.insert("que_method_name", s("SYOHIN_KIHON_CSV"));
                r.insert("que_shop_id", None);
                let named = st.config.queue_upload_names;
                r.insert("que_upload_name", s(if named { q.upload_name } else { "" }));
                r.insert(
                    "que_client_file_name",
                    s(if named {
                        q.client_file_name.as_str()
                    } else {
                        ""
                    }),
                );
                r.insert("que_file_name", s(format!("que_{}.csv", q.que_id)));
                r.insert("que_status_id", s(q.status));
                r.insert("que_message", s(&q.message));
                r.insert("que_deleted_flag", s("0"));
                r.insert("que_creation_date", s(fmt_dt(q.created)));
                r.insert("que_last_modified_date", s(fmt_dt(q.modified)));
                r.insert("que_last_modified_null_safe_date", s(fmt_dt(q.modified)));
                for k in [
                    "que_creator_id",
                    "que_last_modified_by_id",
                    "que_last_modified_by_null_safe_id",
                ] {
                    r.insert(k, s("1"));
                }
                for k in [
                    "que_creator_name",
                    "que_last_modified_by_name",
                    "que_last_modified_by_null_safe_name",
                ] {
                    r.insert(k, s("シミュレーター 太郎"));
                }
                r
            })
            .collect(),
        Table::Goods => c
            .goods
            .iter()
            .map(|(id, g)| {
                let mut r = Row::new();
                r.insert("goods_id", s(id));
                r.insert("goods_name", s(&g.name));
                r.insert("goods_deleted_flag", s("0"));
                r.insert("goods_creation_date", s(fmt_dt(g.created)));
                r.insert("goods_last_modified_date", s(fmt_dt(g.modified)));
                r.insert("stock_quantity", s(g.stock));
                r.insert("stock_allocation_quantity", s(g.allocation));
                r.insert("stock_free_quantity", s(g.stock - g.allocation));
                r
            })
            .collect(),
        Table::Stock => c
            .goods
            .iter()
            .map(|(id, g)| {
                let mut r = Row::new();
                r.insert("stock_goods_id", s(id));
                r.insert("stock_quantity", s(g.stock));
                r.insert("stock_allocation_quantity", s(g.allocation));
                r.insert("stock_free_quantity", s(g.stock - g.allocation));
                r.insert("stock_defective_quantity", s(0));
                r.insert("stock_deleted_flag", s("0"));
                r.insert("stock_creation_date", s(fmt_dt(g.created)));
                r.insert("stock_last_modified_date", s(fmt_dt(g.modified)));
                r
            })
            .collect(),
        Table::OrderBase => c.orders.iter().map(|(id, o)| order_row(*id, o)).collect(),
        Table::SetGoods => c
            .set_goods
            .iter()
            .flat_map(|(id, components)| {
                let name = c.goods.get(id).map(|g| g.name.clone()).unwrap_or_default();
                components.iter().map(move |(goods, quantity)| {
                    let mut r = Row::new();
                    r.insert("set_goods_id", s(id));
                    r.insert("set_goods_name", s(&name));
                    r.insert("set_goods_detail_goods_id", s(goods));
                    r.insert("set_goods_detail_quantity", s(quantity));
                    r
                })
            })
            .collect(),
        Table::StockIo => c
            .io_history
            .iter()
            .map(|e| {
                let mut r = Row::new();
                r.insert("stock_io_history_id", s(e.id));
                r.insert("stock_io_history_shop_id", None);
                r.insert("stock_io_history_goods_id", s(&e.goods_id));
                r.insert("stock_io_history_date", s(e.created.format("%Y-%m-%d")));
                r.insert("stock_io_history_before_stock_quantity", s(e.before));
                r.insert("stock_io_history_after_stock_quantity", s(e.after));
                // The quantity is unsigned beside an in/out flag (assumed: 0 = in, 1 = out).
                r.insert("stock_io_history_quantity", s((e.after - e.before).abs()));
                r.insert("stock_io_history_io_flag", flag(e.after < e.before));
                r.insert("stock_io_history_cut_form_id", e.cut_form_id.clone());
                r.insert("stock_io_history_reason", s(&e.reason));
                r.insert("stock_io_history_deleted_flag", s("0"));
                r.insert("stock_io_history_creation_date", s(fmt_dt(e.created)));
                r.insert("stock_io_history_last_modified_date", s(fmt_dt(e.created)));
                r
            })
            .collect(),
        Table::OrderRow => c
            .orders
            .iter()
            .flat_map(|(id, o)| {
                o.rows.iter().map(move |l| {
                    let mut r = order_row(*id, o);
                    r.insert("receive_order_row_receive_order_id", s(id));
                    r.insert("receive_order_row_no", s(l.row_no));
                    r.insert("receive_order_row_shop_cut_form_id", s(&o.shop_cut_form_id));
                    r.insert("receive_order_row_goods_id", s(&l.goods_id));
                    r.insert("receive_order_row_goods_name", s(&l.goods_name));
                    r.insert("receive_order_row_quantity", s(l.quantity));
                    r.insert("receive_order_row_cancel_flag", flag(l.cancel_flag));
                    r.insert("receive_order_row_stock_allocation_quantity", s(0));
                    r.insert("receive_order_row_deleted_flag", flag(l.deleted_flag));
                    r.insert("receive_order_row_creation_date", s(fmt_dt(l.created)));
                    r.insert(
                        "receive_order_row_last_modified_date",
                        s(fmt_dt(l.modified)),
                    );
                    r.insert(
                        "receive_order_row_last_modified_newest_date",
                        s(fmt_dt(l.modified.max(o.modified))),
                    );
                    r
                })
            })
            .collect(),
    }
}

const OPS: &[&str] = &[
    "eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "like", "nlike", "null", "nnull", "blank",
    "nblank",
];
const RESERVED: &[&str] = &[
    "access_token",
    "refresh_token",
    "wait_flag",
    "fields",
    "offset",
    "limit",
    "sort",
];

/// One `{field}-{op}` condition, prepared once per search: a `-in` list of a
/// thousand goods codes is matched against every row.
struct Condition {
    field: String,
    op: String,
    arg: String,
    list: std::collections::HashSet<String>,
}

impl Condition {
    fn new(field: &str, op: &str, arg: String) -> Self {
        let list = if op == "in" || op == "nin" {
            arg.split(',').map(|a| a.trim().to_string()).collect()
        } else {
            Default::default()
        };
        Condition {
            field: field.to_string(),
            op: op.to_string(),
            arg,
            list,
        }
    }

    /// Equality is exact, as a database matches a string column: goods code `01`
    /// is not goods code `1`. Ranges compare numbers as numbers.
    fn matches(&self, value: Option<&str>) -> bool {
        use std::cmp::Ordering::*;
        let (op, arg) = (self.op.as_str(), self.arg.as_str());
        match op {
            "null" => value.is_none(),
            "nnull" => value.is_some(),
            "blank" => value.is_none_or(str::is_empty),
            "nblank" => value.is_some_and(|v| !v.is_empty()),
            _ => {
                let Some(v) = value else {
                    return op == "neq" || op == "nin" || op == "nlike";
                };
                match op {
                    "eq" => v == arg.trim(),
                    "neq" => v != arg.trim(),
                    "gt" => compare_values(v, arg) == Greater,
                    "gte" => compare_values(v, arg) != Less,
                    "lt" => compare_values(v, arg) == Less,
                    "lte" => compare_values(v, arg) != Greater,
                    "in" => self.list.contains(v),
                    "nin" => !self.list.contains(v),
                    "like" => like_match(v, arg),
                    "nlike" => !like_match(v, arg),
                    _ => false,
                }
            }
        }
    }
}

fn search(
    st: &NeState,
    company_id: &str,
    table: Table,
    form: &Form,
    count_only: bool,
) -> Result<Map<String, Value>, String> {
    let fields: Vec<String> = match form.get("fields") {
        Some(f) if !f.trim().is_empty() => f.split(',').map(|x| x.trim().to_string()).collect(),
        _ if count_only => Vec::new(),
        _ => return Err("POSTパラメータにfieldsが指定されていません".into()),
    };
    for f in &fields {
        if !table.knows(f) {
            return Err(format!(
                "fieldsに存在しないフィールドが指定されています。({f})"
            ));
        }
    }
    let mut filters = Vec::new();
    for (k, _) in &form.fields {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        let Some((field, op)) = k.rsplit_once('-') else {
            continue;
        };
        if !OPS.contains(&op) {
            continue;
        }
        if !table.knows(field) {
            return Err(format!(
                "検索条件に存在しないフィールドが指定されています。({field})"
            ));
        }
        filters.push(Condition::new(field, op, form.get(k).unwrap_or_default()));
    }
    let parse_num = |k: &str, default: usize| -> Result<usize, String> {
        match form.get(k) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| format!("{k}が不正です。")),
        }
    };
    let offset = parse_num("offset", 0)?;
    let limit = parse_num("limit", 10_000)?;
    let mut sort_keys = Vec::new();
    if let Some(sort) = form.get("sort").filter(|s| !s.trim().is_empty()) {
        for part in sort.split(',') {
            let part = part.trim();
            let (f, desc) = match part.rsplit_once('-') {
                Some((f, "asc")) => (f, false),
                Some((f, "desc")) => (f, true),
                _ => (part, false),
            };
            if !table.knows(f) {
                return Err(format!(
                    "sortに存在しないフィールドが指定されています。({f})"
                ));
            }
            sort_keys.push((f.to_string(), desc));
        }
    }

    let mut rows: Vec<Row> = build_rows(st, company_id, table)
        .into_iter()
        .filter(|r| {
            filters
                .iter()
                .all(|c| c.matches(r.get(c.field.as_str()).and_then(|v| v.as_deref())))
        })
        .collect();
    let mut m = Map::new();
    m.insert("result".into(), "success".into());
    if count_only {
        m.insert("count".into(), rows.len().to_string().into());
        return Ok(m);
    }
    rows.sort_by(|a, b| {
        for (f, desc) in &sort_keys {
            let o = compare_opt(
                a.get(f.as_str()).and_then(|v| v.as_deref()),
                b.get(f.as_str()).and_then(|v| v.as_deref()),
            );
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let data: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            let mut o = Map::new();
            for f in &fields {
                let v = r.get(f.as_str()).cloned().flatten();
                o.insert(f.clone(), v.map(Value::String).unwrap_or(Value::Null));
            }
            Value::Object(o)
        })
        .collect();
    m.insert("count".into(), data.len().to_string().into());
    m.insert("data".into(), Value::Array(data));
    Ok(m)
}

// ---------------------------------------------------------------------------
// HTTP control API
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct CompanyBody {
    company_id: String,
    #[serde(default)]
    name: Option<String>,
}

async fn ctl_add_company(State(sim): State<NeSim>, Json(b): Json<CompanyBody>) -> Json<Value> {
    sim.add_company(&b.company_id, b.name.as_deref().unwrap_or(&b.company_id));
    Json(json!({"ok": true}))
}

async fn ctl_auto_login(State(sim): State<NeSim>, Json(b): Json<CompanyBody>) -> Json<Value> {
    sim.add_company(&b.company_id, b.name.as_deref().unwrap_or(&b.company_id));
    sim.set_auto_login(&b.company_id);
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct GoodsBody {
    company_id: String,
    goods: Vec<SeedGoods>,
}

async fn ctl_seed_goods(State(sim): State<NeSim>, Json(b): Json<GoodsBody>) -> Json<Value> {
    let n = b.goods.len();
    sim.seed_goods(&b.company_id, b.goods);
    Json(json!({"ok": true, "count": n}))
}

#[derive(Deserialize)]
struct StockQuery {
    company_id: String,
    goods_id: String,
}

async fn ctl_stock(State(sim): State<NeSim>, Query(q): Query<StockQuery>) -> Response {
    match sim.stock_detail(&q.company_id, &q.goods_id) {
        Some((stock, alloc, free)) => Json(json!({
            "goods_id": q.goods_id, "stock_quantity": stock,
            "allocation_quantity": alloc, "free_quantity": free
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error":"no such goods"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct OrdersBody {
    company_id: String,
    orders: Vec<SeedOrder>,
}

async fn ctl_seed_orders(State(sim): State<NeSim>, Json(b): Json<OrdersBody>) -> Json<Value> {
    let n = b.orders.len();
    sim.seed_orders(&b.company_id, b.orders);
    Json(json!({"ok": true, "count": n}))
}

#[derive(Deserialize)]
struct UpdateOrderBody {
    company_id: String,
    receive_order_id: i64,
    #[serde(flatten)]
    update: OrderUpdate,
}

async fn ctl_update_order(State(sim): State<NeSim>, Json(b): Json<UpdateOrderBody>) -> Response {
    if sim.update_order(&b.company_id, b.receive_order_id, b.update) {
        Json(json!({"ok": true})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error":"no such order"})),
        )
            .into_response()
    }
}

async fn ctl_clock(State(sim): State<NeSim>) -> Json<Value> {
    Json(json!({"now_jst": fmt_dt(sim.now_jst())}))
}

#[derive(Deserialize)]
struct AdvanceBody {
    secs: i64,
}

async fn ctl_advance(State(sim): State<NeSim>, Json(b): Json<AdvanceBody>) -> Json<Value> {
    sim.advance_clock(b.secs);
    Json(json!({"now_jst": fmt_dt(sim.now_jst())}))
}

async fn ctl_step(State(sim): State<NeSim>) -> Json<Value> {
    sim.step_queues();
    Json(json!(sim.uploads()))
}

async fn ctl_run(State(sim): State<NeSim>) -> Json<Value> {
    sim.run_queues();
    Json(json!(sim.uploads()))
}

async fn ctl_uploads(State(sim): State<NeSim>) -> Json<Value> {
    Json(json!(sim.uploads()))
}

#[derive(Deserialize)]
struct OperatorUpload {
    company_id: String,
    csv: String,
    file_name: String,
}

async fn ctl_operator_upload(
    State(sim): State<NeSim>,
    Json(u): Json<OperatorUpload>,
) -> (StatusCode, Json<Value>) {
    match sim.operator_upload(&u.company_id, &u.csv, &u.file_name) {
        Ok(que_id) => (StatusCode::OK, Json(json!({"que_id": que_id}))),
        Err(message) => (StatusCode::BAD_REQUEST, Json(json!({"error": message}))),
    }
}

async fn ctl_fault(State(sim): State<NeSim>, Json(f): Json<Fault>) -> Json<Value> {
    sim.inject_fault(f);
    Json(json!({"ok": true}))
}

async fn ctl_clear_faults(State(sim): State<NeSim>) -> Json<Value> {
    sim.clear_faults();
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct CompanyQuery {
    company_id: String,
}

async fn ctl_tokens(State(sim): State<NeSim>, Query(q): Query<CompanyQuery>) -> Response {
    match sim.token_pair_of(&q.company_id) {
        Some(t) => Json(json!(t)).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error":"no tokens"}))).into_response(),
    }
}

async fn ctl_issue(State(sim): State<NeSim>, Json(b): Json<CompanyQuery>) -> Json<Value> {
    Json(json!(sim.issue_tokens(&b.company_id)))
}

async fn ctl_calls(State(sim): State<NeSim>) -> Json<Value> {
    Json(json!(sim.calls()))
}

async fn ctl_clear_calls(State(sim): State<NeSim>) -> Json<Value> {
    sim.clear_calls();
    Json(json!({"ok": true}))
}

async fn ctl_config(State(sim): State<NeSim>) -> Json<Value> {
    Json(json!(sim.config()))
}
