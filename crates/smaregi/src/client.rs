use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use sne_domain::tenant::SmaregiCredentials;
use sne_domain::time::parse_api_time;
use sne_domain::{ChangeKind, ChangeRow, ProductId, ProductPair, StockDivision, StoreId};
use sne_ports::smaregi::{
    NewShipment, ShipmentSummary, SmaregiApi, SmaregiError, SmaregiStore, StoreStock,
};
use tracing::{debug, info, warn};

use sne_ports::rate::{ApiRateLimit, RateLimits};
use sne_ports::{Clock, RetryPolicy, SystemClock};

pub const DEFAULT_API_URL: &str = "https://webapi.smaregi.jp/access/";

/// Error codes meaning "contract, token or function not usable". Only 14
/// (契約IDが無効です) is public; 21 (bad token) and 31 (function disabled)
/// are the simulator's choices until the real codes are known. HTTP 401/403
/// count as such errors too, whatever the code.
pub const DEFAULT_AUTH_ERROR_CODES: &[&str] = &["14", "21", "31"];

/// The old API's documented maximum `limit`.
const MAX_PAGE_LIMIT: usize = 1000;
/// One public client saw pages silently cut to 500 rows whatever `limit`
/// asked (reference "Update" table), so ask for no more by default.
pub const DEFAULT_PAGE_SIZE: usize = 500;
/// `StockHistory` lookups must name an id range of at most 100,000 ids
/// (the admin ver.4.10.0 rule for heavy tables, assumed for this table).
const HISTORY_ID_WINDOW: u64 = 100_000;
/// Date windows for finding the newest history id: 30 days stays inside the
/// 31-day cap whether Smaregi counts the end inclusively or not.
const HISTORY_DAYS_WINDOW: i64 = 30;
/// The first date window reaches this far past our clock, so a Smaregi
/// clock somewhat ahead of ours does not hide the newest rows.
const HISTORY_CLOCK_MARGIN_HOURS: i64 = 24;
/// Date windows walked back before concluding there is no history: about
/// 13 months, one call each.
pub const DEFAULT_HISTORY_LOOKBACK_WINDOWS: u32 = 13;
/// Product ids per `product_ref` range lookup.
const PRODUCT_CHUNK: usize = 100;
/// Widest `productId` range per lookup, which bounds the rows it can return
/// however densely the shop numbers its products.
const PRODUCT_SPAN: u64 = 1000;

const HISTORY_FIELDS: &[&str] = &[
    "id",
    "updDateTime",
    "productId",
    "storeId",
    "amount",
    "stockAmount",
    "stockDivision",
    "fromStoreId",
    "toStoreId",
];

#[derive(Clone)]
pub struct SmaregiClient {
    api_url: String,
    retry: RetryPolicy,
    http: reqwest::Client,
    auth_codes: Vec<String>,
    page_size: usize,
    history_lookback: u32,
    /// "Now" for the date-bounded lookups: the service's clock, so a service
    /// whose clock is not the machine's (tests, the fault simulation) asks
    /// Smaregi about its own now.
    clock: Arc<dyn Clock>,
    /// Smaregi counts calls per app and contract a second.
    rate: Arc<ApiRateLimit>,
}

impl fmt::Debug for SmaregiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmaregiClient")
            .field("api_url", &self.api_url)
            .field("retry", &self.retry)
            .field("auth_codes", &self.auth_codes)
            .field("page_size", &self.page_size)
            .field("history_lookback", &self.history_lookback)
            .finish_non_exhaustive()
    }
}

enum Failure {
    /// No complete, readable answer: the call may or may not have run.
    Transport(String),
    /// Smaregi answered with an error.
    Refused(SmaregiError),
}

impl SmaregiClient {
    /// The client as the service runs it: the default retries, and a minute per
    /// request (a history page of 1,000 rows is the slowest call).
    pub fn with_defaults(api_url: &str) -> Self {
        SmaregiClient::new(api_url, RetryPolicy::default(), Duration::from_secs(60))
            .with_rate_limits(RateLimits::DEFAULT)
    }

    pub fn new(api_url: impl Into<String>, retry: RetryPolicy, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(15)))
            // Sends `X_contract_id` as spelled in the manual; the header
            // name is case-insensitive, but some gateways are not.
            .http1_title_case_headers()
            .build()
            .expect("the HTTP client builds with the bundled TLS roots");
        SmaregiClient {
            api_url: api_url.into(),
            retry,
            http,
            auth_codes: DEFAULT_AUTH_ERROR_CODES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            page_size: DEFAULT_PAGE_SIZE,
            history_lookback: DEFAULT_HISTORY_LOOKBACK_WINDOWS,
            clock: Arc::new(SystemClock),
            rate: Arc::new(ApiRateLimit::new(RateLimits::UNLIMITED)),
        }
    }

    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate = Arc::new(ApiRateLimit::new(limits));
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Rows asked for per `*_ref` page (1 to 1000; default 500).
    pub fn with_page_size(mut self, rows: usize) -> Self {
        self.page_size = rows.clamp(1, MAX_PAGE_LIMIT);
        self
    }

    /// How many 30-day windows [`SmaregiApi::latest_stock_history_id`]
    /// walks back before answering "no history" (at least 1).
    pub fn with_history_lookback(mut self, windows: u32) -> Self {
        self.history_lookback = windows.max(1);
        self
    }

    /// Replaces the error codes read as [`SmaregiError::Auth`].
    pub fn with_auth_error_codes<I, S>(mut self, codes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.auth_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    fn headers(creds: &SmaregiCredentials) -> Result<HeaderMap, SmaregiError> {
        let bad = |what: &str| SmaregiError::Auth {
            code: "client".into(),
            message: format!("the {what} contains characters not allowed in an HTTP header"),
        };
        let contract = HeaderValue::from_str(&creds.contract_id).map_err(|_| bad("contract id"))?;
        let mut token =
            HeaderValue::from_str(&creds.access_token).map_err(|_| bad("access token"))?;
        token.set_sensitive(true);
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static("x_contract_id"), contract);
        h.insert(HeaderName::from_static("x_access_token"), token);
        Ok(h)
    }

    async fn attempt(
        &self,
        headers: &HeaderMap,
        proc_name: &str,
        params: &str,
    ) -> Result<Value, Failure> {
        let resp = self
            .http
            .post(&self.api_url)
            .headers(headers.clone())
            .form(&[("proc_name", proc_name), ("params", params)])
            .send()
            .await
            .map_err(|e| Failure::Transport(describe(e)))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Failure::Transport(format!("HTTP {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::Transport(describe(e)))?;
        let parsed = serde_json::from_slice::<Value>(&body).ok();
        if let Some(Value::Object(m)) = &parsed
            && (m.contains_key("error_code") || m.contains_key("error"))
        {
            return Err(Failure::Refused(self.error_of(m, status.as_u16())));
        }
        if matches!(status.as_u16(), 401 | 403) {
            return Err(Failure::Refused(SmaregiError::Auth {
                code: format!("http_{}", status.as_u16()),
                message: format!("HTTP {status}"),
            }));
        }
        match parsed {
            Some(v @ Value::Object(_)) if status.is_success() && v.get("result").is_some() => Ok(v),
            _ if status.is_success() => Err(Failure::Transport(format!(
                "HTTP {status}: unreadable response body"
            ))),
            _ => Err(Failure::Refused(SmaregiError::Api {
                code: format!("http_{}", status.as_u16()),
                message: snippet(&String::from_utf8_lossy(&body)),
            })),
        }
    }

    fn error_of(&self, m: &Map<String, Value>, status: u16) -> SmaregiError {
        let code = text(m, "error_code").unwrap_or_else(|| format!("http_{status}"));
        let message = [text(m, "error"), text(m, "error_description")]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if self.auth_codes.contains(&code) || matches!(status, 401 | 403) {
            SmaregiError::Auth { code, message }
        } else {
            SmaregiError::Api { code, message }
        }
    }

    /// One API call; `retry` only for calls that change nothing.
    async fn call(
        &self,
        creds: &SmaregiCredentials,
        proc_name: &str,
        params: &Value,
        retry: bool,
    ) -> Result<Value, SmaregiError> {
        let headers = Self::headers(creds)?;
        let params = params.to_string();
        let max = if retry { self.retry.attempts() } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.rate.until_ready(&creds.contract_id).await;
            match self.attempt(&headers, proc_name, &params).await {
                Ok(v) => {
                    debug!(proc_name, contract = %creds.contract_id, attempt, "Smaregi call succeeded");
                    return Ok(v);
                }
                Err(Failure::Refused(e)) => {
                    warn!(proc_name, contract = %creds.contract_id, error = %e, "Smaregi refused the call");
                    return Err(e);
                }
                Err(Failure::Transport(msg)) if attempt < max => {
                    let delay = self.retry.delay(attempt);
                    warn!(proc_name, attempt, ?delay, error = %msg, "Smaregi call will be retried");
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Transport(msg)) => {
                    warn!(proc_name, contract = %creds.contract_id, error = %msg, "Smaregi unreachable");
                    return Err(SmaregiError::Transport(msg));
                }
            }
        }
    }

    /// A `*_ref` call paged from 1 until a page comes back empty, or short
    /// with every row of `total_count` received. `limit × page` is no end
    /// signal: Smaregi may cut pages below `limit` without saying so.
    async fn reference(
        &self,
        creds: &SmaregiCredentials,
        proc_name: &str,
        mut params: Map<String, Value>,
        max_rows: usize,
    ) -> Result<Vec<Map<String, Value>>, SmaregiError> {
        let mut limit = self.page_size.min(max_rows.max(1));
        let mut out = Vec::new();
        let mut page = 1usize;
        loop {
            params.insert("limit".into(), json!(limit));
            params.insert("page".into(), json!(page));
            let v = self
                .call(creds, proc_name, &Value::Object(params.clone()), true)
                .await?;
            let total = match v.get("total_count") {
                Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
                Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                _ => None,
            }
            .ok_or_else(|| invalid(format!("{proc_name} answer without total_count")))?;
            let rows = match v.get("result") {
                Some(Value::Array(a)) => a,
                _ => return Err(invalid(format!("{proc_name} answer without result rows"))),
            };
            let n = rows.len();
            for r in rows {
                match r {
                    Value::Object(o) => out.push(o.clone()),
                    _ => return Err(invalid(format!("{proc_name} row is not an object"))),
                }
            }
            if out.len() >= max_rows {
                out.truncate(max_rows);
                return Ok(out);
            }
            if n == 0 || out.len() >= total {
                return Ok(out);
            }
            if n < limit {
                // A short page while rows are still missing: Smaregi cut the
                // page. Where its next page starts is unknown, so go on with
                // pages of the size it returns, which start right after the
                // rows received whichever way it counts.
                if out.len() % n != 0 {
                    return Err(invalid(format!(
                        "{proc_name} returned {n} of {limit} rows on page {page} with {} of {total} received; the rest cannot be paged safely",
                        out.len()
                    )));
                }
                warn!(
                    proc_name,
                    limit,
                    returned = n,
                    "Smaregi cut a page short; paging on with its size"
                );
                limit = n;
                page = out.len() / n;
            }
            page += 1;
        }
    }

    async fn shipment_id_by_token(
        &self,
        creds: &SmaregiCredentials,
        token: &str,
    ) -> Result<Option<String>, SmaregiError> {
        let params = json!({
            "table_name": "Shipment",
            "fields": ["shipmentId"],
            "conditions": [{"token": token}],
            "order": ["shipmentId"],
        });
        let Value::Object(params) = params else {
            unreachable!("a JSON object literal")
        };
        let rows = self.reference(creds, "shipment_ref", params, 1).await?;
        Ok(rows.first().and_then(|r| text(r, "shipmentId")))
    }
}

#[async_trait]
impl SmaregiApi for SmaregiClient {
    async fn stock_history_after(
        &self,
        creds: &SmaregiCredentials,
        after_id: u64,
        max_rows: usize,
    ) -> Result<Vec<ChangeRow>, SmaregiError> {
        if max_rows == 0 {
            return Ok(Vec::new());
        }
        // Id windows, because the lookup must be narrowed; ids may jump by
        // more than a window, so an empty window is no end signal: walk on
        // up to the newest id, found only once a window falls short.
        let mut out = Vec::new();
        let mut cursor = after_id;
        let mut newest: Option<Option<u64>> = None;
        loop {
            let upper = cursor.saturating_add(HISTORY_ID_WINDOW);
            let params = obj(json!({
                "table_name": "StockHistory",
                "fields": HISTORY_FIELDS,
                "conditions": [{"id >": cursor.to_string(), "id <=": upper.to_string()}],
                "order": ["id"],
            }));
            let rows = self
                .reference(creds, "stock_ref", params, max_rows - out.len())
                .await?;
            for r in &rows {
                let row = history_row(r)?;
                // Guard against loose matching on Smaregi's side.
                if row.history_id.is_some_and(|id| id > cursor && id <= upper) {
                    out.push(row);
                }
            }
            if out.len() >= max_rows || upper == u64::MAX {
                break;
            }
            let latest = match newest {
                Some(n) => n,
                None => *newest.insert(self.latest_stock_history_id(creds).await?),
            };
            match latest {
                Some(n) if n > upper => cursor = upper,
                _ => break,
            }
        }
        out.sort_by_key(|r| r.history_id);
        Ok(out)
    }

    async fn latest_stock_history_id(
        &self,
        creds: &SmaregiCredentials,
    ) -> Result<Option<u64>, SmaregiError> {
        // A lookup needs a narrowing condition and the newest id is what we
        // do not know, so ask by date: the newest row of the latest window
        // that has any. Ids grow with `updDateTime`, the time a row is
        // written (`targetDateTime` may be back-dated).
        let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        let mut to = sne_domain::time::to_jst(self.clock.now())
            + chrono::Duration::hours(HISTORY_CLOCK_MARGIN_HOURS);
        for _ in 0..self.history_lookback {
            let from = to - chrono::Duration::days(HISTORY_DAYS_WINDOW);
            let params = obj(json!({
                "table_name": "StockHistory",
                "fields": ["id"],
                "conditions": [{"updDateTime >=": fmt(from), "updDateTime <=": fmt(to)}],
                "order": ["id desc"],
            }));
            let rows = self.reference(creds, "stock_ref", params, 1).await?;
            if let Some(r) = rows.first() {
                return parse_id(r).map(Some);
            }
            to = from;
        }
        debug!(contract = %creds.contract_id, windows = self.history_lookback, "no StockHistory rows in the lookback");
        Ok(None)
    }

    async fn product_codes(
        &self,
        creds: &SmaregiCredentials,
        product_ids: &[ProductId],
    ) -> Result<Vec<ProductPair>, SmaregiError> {
        let wanted: BTreeSet<&str> = product_ids
            .iter()
            .map(ProductId::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        let mut out = Vec::new();
        // Several condition objects are no OR in the old API, so each
        // lookup is one condition: a single id, or a bounded id range whose
        // extra rows are dropped below.
        for condition in product_conditions(&wanted) {
            let params = obj(json!({
                "table_name": "Product",
                "fields": ["productId", "productCode"],
                "conditions": [condition],
                "order": ["productId"],
            }));
            let rows = self
                .reference(creds, "product_ref", params, usize::MAX)
                .await?;
            for r in rows {
                // Smaregi may compare ids numerically ("01" = "1"): keep only
                // the ids asked for. A product without a code maps to nothing.
                if let (Some(id), Some(code)) = (text(&r, "productId"), text(&r, "productCode"))
                    && wanted.contains(id.as_str())
                    && !code.is_empty()
                {
                    out.push(ProductPair::new(id, code));
                }
            }
        }
        Ok(out)
    }

    async fn stores(&self, creds: &SmaregiCredentials) -> Result<Vec<SmaregiStore>, SmaregiError> {
        let params = obj(json!({
            "table_name": "Store",
            "fields": ["storeId", "storeName"],
            "order": ["storeId"],
        }));
        let rows = self
            .reference(creds, "store_ref", params, usize::MAX)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SmaregiStore {
                    store_id: text(r, "storeId").ok_or_else(|| invalid("store without storeId"))?,
                    name: text(r, "storeName").unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn stock_of_stores(
        &self,
        creds: &SmaregiCredentials,
        store_ids: &[StoreId],
    ) -> Result<Vec<StoreStock>, SmaregiError> {
        let mut out = Vec::new();
        for store in store_ids {
            // Keyset pages (`productId >` the last one seen) rather than page
            // numbers: a Stock row created while a store is read would shift
            // numbered pages and show a row twice or not at all.
            let mut after: Option<u64> = None;
            loop {
                let mut condition = json!({ "storeId": store.as_str() });
                if let Some(last) = after {
                    condition["productId >"] = json!(last.to_string());
                }
                let params = obj(json!({
                    "table_name": "Stock",
                    "fields": ["storeId", "productId", "stockAmount", "updDateTime"],
                    "conditions": [condition],
                    "order": ["productId"],
                }));
                let rows = self
                    .reference(creds, "stock_ref", params, self.page_size)
                    .await?;
                let n = rows.len();
                let before = after;
                for r in &rows {
                    let Some((id, row)) = stock_row(r, store)? else {
                        continue;
                    };
                    // Guard against loose matching on Smaregi's side.
                    if after.is_some_and(|last| id <= last) {
                        continue;
                    }
                    after = Some(id);
                    out.push(row);
                }
                if n < self.page_size {
                    break;
                }
                if after == before {
                    return Err(invalid(format!(
                        "a full Stock page of store {store} held no new product; the rest cannot be paged safely"
                    )));
                }
            }
        }
        Ok(out)
    }

    async fn shipments_by_identification(
        &self,
        creds: &SmaregiCredentials,
        identification_no: &str,
    ) -> Result<Vec<ShipmentSummary>, SmaregiError> {
        let params = obj(json!({
            "table_name": "Shipment",
            "fields": ["shipmentId", "identificationNo", "shipmentDivision", "status"],
            "conditions": [{"identificationNo": identification_no}],
            "order": ["shipmentId"],
        }));
        let rows = self
            .reference(creds, "shipment_ref", params, usize::MAX)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let ident = text(r, "identificationNo").unwrap_or_default();
                // Guard against loose matching on Smaregi's side.
                (ident == identification_no).then(|| ShipmentSummary {
                    shipment_id: text(r, "shipmentId").unwrap_or_default(),
                    identification_no: ident,
                    division: text(r, "shipmentDivision").unwrap_or_default(),
                    status: text(r, "status").unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn create_shipment(
        &self,
        creds: &SmaregiCredentials,
        shipment: &NewShipment,
    ) -> Result<Option<String>, SmaregiError> {
        let header = json!({
            "shipmentStoreId": shipment.store_id,
            "recipientType": "3",
            "recipientName": shipment.recipient_name,
            "shipmentDivision": if shipment.is_return { "1" } else { "0" },
            "shipmentDate": shipment.shipment_date.format("%Y-%m-%d").to_string(),
            "status": "2",
            "identificationNo": shipment.identification_no,
            "token": shipment.token,
        });
        let details: Vec<Value> = shipment
            .lines
            .iter()
            .map(|(product_id, qty)| {
                json!({
                    "productId": product_id,
                    "quantity": qty.to_string(),
                    "memo": shipment.memo,
                })
            })
            .collect();
        let params = json!({
            "proc_info": {"proc_division": "U"},
            "data": [
                {"table_name": "Shipment", "rows": [header]},
                {"table_name": "ShipmentDetail", "rows": details},
            ],
        });
        let v = self.call(creds, "shipment_upd", &params, false).await?;
        let result = v.get("result").and_then(Value::as_object);
        let first_id = result
            .and_then(|r| r.get("ShipmentIds"))
            .and_then(Value::as_array)
            .and_then(|ids| ids.first())
            .and_then(|id| match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        if let Some(id) = first_id {
            info!(contract = %creds.contract_id, shipment_id = %id, identification_no = %shipment.identification_no, "shipment created");
            return Ok(Some(id));
        }
        let count = result
            .and_then(|r| text(r, "Shipment"))
            .and_then(|c| c.trim().parse::<u64>().ok());
        if count == Some(0) {
            info!(contract = %creds.contract_id, identification_no = %shipment.identification_no, "shipment token already used; Smaregi skipped it");
            return Ok(None);
        }
        // Written but no id in the answer (its shape is inferred): find it by
        // the token, which identifies this request.
        let found = self.shipment_id_by_token(creds, &shipment.token).await?;
        if found.is_none() && count.is_some() {
            return Err(invalid(
                "shipment_upd reported a row but it cannot be found",
            ));
        }
        Ok(found)
    }
}

// ---------------------------------------------------------------- parsing

/// One condition object per lookup for the wanted product ids. Ranges only
/// join ids of one length without leading zeros, where numeric and text
/// order agree, so a range means the same whichever way Smaregi compares.
fn product_conditions(wanted: &BTreeSet<&str>) -> Vec<Value> {
    let mut numeric: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    for id in wanted {
        match id.parse::<u64>() {
            Ok(n) if n.to_string() == *id => numeric.push(n),
            _ => out.push(json!({ "productId": id })),
        }
    }
    numeric.sort_by_key(|n| (n.to_string().len(), *n));
    let mut chunk: Vec<u64> = Vec::new();
    let flush = |chunk: &mut Vec<u64>, out: &mut Vec<Value>| {
        match chunk.as_slice() {
            [] => {}
            [one] => out.push(json!({ "productId": one.to_string() })),
            [first, .., last] => out.push(json!({
                "productId >=": first.to_string(),
                "productId <=": last.to_string(),
            })),
        }
        chunk.clear();
    };
    for n in numeric {
        if let Some(&first) = chunk.first()
            && (chunk.len() >= PRODUCT_CHUNK
                || n - first > PRODUCT_SPAN
                || n.to_string().len() != first.to_string().len())
        {
            flush(&mut chunk, &mut out);
        }
        chunk.push(n);
    }
    flush(&mut chunk, &mut out);
    out
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut out = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn snippet(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() > 200 {
        body.chars().take(200).collect::<String>() + "…"
    } else {
        body.to_string()
    }
}

pub(crate) fn invalid(what: impl Into<String>) -> SmaregiError {
    SmaregiError::Api {
        code: "invalid_response".into(),
        message: what.into(),
    }
}

/// Values arrive as strings or null; tolerate numbers too.
pub(crate) fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn non_empty(m: &Map<String, Value>, key: &str) -> Option<String> {
    text(m, key)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Integers as Smaregi prints them, including a decimal form like `"3.000"`.
pub(crate) fn int(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, SmaregiError> {
    let Some(s) = non_empty(m, key) else {
        return Ok(None);
    };
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Some(n));
    }
    match s.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
        _ => Err(invalid(format!("{key} is not an integer: {s:?}"))),
    }
}

pub(crate) fn parse_id(r: &Map<String, Value>) -> Result<u64, SmaregiError> {
    non_empty(r, "id")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| invalid("StockHistory row without a numeric id"))
}

/// One `Stock` row of `store`, with its `productId` as a number (the key the
/// lookups page on), or `None` for a row of another store (loose matching on
/// Smaregi's side). `stockAmount` is a string-typed integer that may be
/// negative; anything else is an error, as is a row without it.
fn stock_row(
    r: &Map<String, Value>,
    store: &StoreId,
) -> Result<Option<(u64, StoreStock)>, SmaregiError> {
    let product =
        non_empty(r, "productId").ok_or_else(|| invalid("Stock row without productId"))?;
    let id = product
        .parse::<u64>()
        .map_err(|_| invalid(format!("Stock productId is not a number: {product:?}")))?;
    if non_empty(r, "storeId").as_deref() != Some(store.as_str()) {
        return Ok(None);
    }
    let amount = int(r, "stockAmount")?.ok_or_else(|| invalid("Stock row without stockAmount"))?;
    Ok(Some((
        id,
        StoreStock {
            store_id: store.clone(),
            product_id: ProductId::from(product),
            amount,
            updated_at: non_empty(r, "updDateTime").and_then(|t| parse_api_time(&t)),
        },
    )))
}

fn history_row(r: &Map<String, Value>) -> Result<ChangeRow, SmaregiError> {
    Ok(ChangeRow {
        store_id: non_empty(r, "storeId")
            .ok_or_else(|| invalid("StockHistory without storeId"))?
            .into(),
        product_id: non_empty(r, "productId")
            .ok_or_else(|| invalid("StockHistory without productId"))?
            .into(),
        kind: ChangeKind::History,
        division: non_empty(r, "stockDivision").map(|d| StockDivision::from_code(&d)),
        amount: int(r, "amount")?,
        after: int(r, "stockAmount")?,
        changed_at: non_empty(r, "updDateTime").and_then(|t| parse_api_time(&t)),
        history_id: Some(parse_id(r)?),
        from_store_id: non_empty(r, "fromStoreId").map(StoreId::from),
        to_store_id: non_empty(r, "toStoreId").map(StoreId::from),
        layaway_stock_amount: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_rows_parse_strings_and_nulls() {
        let r = obj(
            json!({"id":"42","updDateTime":"2026-11-27 10:00:00","productId":"8000001",
            "storeId":"1","amount":"-2","stockAmount":"3.000","stockDivision":"2",
            "fromStoreId":null,"toStoreId":""}),
        );
        let row = history_row(&r).unwrap();
        assert_eq!(row.history_id, Some(42));
        assert_eq!(row.amount, Some(-2));
        assert_eq!(row.after, Some(3));
        assert_eq!(row.division, Some(StockDivision::Sale));
        assert_eq!(row.from_store_id, None);
        assert_eq!(row.to_store_id, None);
        assert!(row.changed_at.is_some());
        assert!(history_row(&obj(json!({"id":"x","storeId":"1","productId":"2"}))).is_err());
    }

    #[test]
    fn stock_rows_parse_signed_strings_and_missing_times() {
        let store = StoreId::from("1");
        let r = obj(
            json!({"storeId":"1","productId":"8000001","stockAmount":"-3",
            "updDateTime":"2026-11-27 10:00:00"}),
        );
        let (id, row) = stock_row(&r, &store).unwrap().unwrap();
        assert_eq!(id, 8_000_001);
        assert_eq!(row.product_id.as_str(), "8000001");
        assert_eq!(row.amount, -3);
        assert_eq!(
            row.updated_at,
            Some(
                chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
                    .unwrap()
                    .and_hms_opt(10, 0, 0)
                    .unwrap()
            )
        );
        let r =
            obj(json!({"storeId":"1","productId":"2","stockAmount":"4.000","updDateTime":null}));
        let (_, row) = stock_row(&r, &store).unwrap().unwrap();
        assert_eq!((row.amount, row.updated_at), (4, None));
        let other = obj(json!({"storeId":"2","productId":"2","stockAmount":"1"}));
        assert_eq!(stock_row(&other, &store).unwrap(), None);
        for bad in [
            json!({"storeId":"1","productId":"2","stockAmount":"1.5"}),
            json!({"storeId":"1","productId":"2","stockAmount":"many"}),
            json!({"storeId":"1","productId":"2","stockAmount":null}),
            json!({"storeId":"1","productId":"x","stockAmount":"1"}),
            json!({"storeId":"1","stockAmount":"1"}),
        ] {
            let err = stock_row(&obj(bad.clone()), &store).unwrap_err();
            assert!(
                matches!(err, SmaregiError::Api { ref code, .. } if code == "invalid_response"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn product_lookups_are_single_bounded_conditions() {
        let wanted: BTreeSet<&str> = [
            "5", "6", "7", "99", "100", "101", "1000", "2000", "2001", "08", "x",
        ]
        .into_iter()
        .collect();
        let range = |a: &str, b: &str| json!({"productId >=": a, "productId <=": b});
        let one = |a: &str| json!({ "productId": a });
        assert_eq!(
            product_conditions(&wanted),
            vec![
                one("08"),
                one("x"),
                range("5", "7"),
                one("99"),
                range("100", "101"),
                range("1000", "2000"),
                one("2001"),
            ]
        );
        let dense: Vec<String> = (0..250).map(|n| (10_000 + n).to_string()).collect();
        let dense: BTreeSet<&str> = dense.iter().map(String::as_str).collect();
        assert_eq!(
            product_conditions(&dense),
            vec![
                range("10000", "10099"),
                range("10100", "10199"),
                range("10200", "10249"),
            ]
        );
    }

    #[test]
    fn debug_output_has_no_credentials() {
        let c = SmaregiClient::new(
            DEFAULT_API_URL,
            RetryPolicy::default(),
            Duration::from_secs(5),
        );
        assert!(format!("{c:?}").contains("webapi.smaregi.jp"));
    }
}
