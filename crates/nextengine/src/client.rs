use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use sne_domain::tenant::NeTokens;
use sne_domain::time::{API_FORMAT, parse_api_time};
use sne_domain::{GoodsCode, QueId, TenantId};
use sne_ports::TokenStore;
use sne_ports::nextengine::{
    GoodsStock, NeAuth, NeError, NeOrderRow, NextEngineApi, OrderRowQuery, QueueEntry, QueueStatus,
    StockIoEntry,
};
use sne_ports::rate::{ApiRateLimit, RateLimits};
use tracing::{debug, error, info, warn};

use sne_ports::RetryPolicy;

use crate::codes::{CodeClass, class_of};

pub const DEFAULT_API_BASE_URL: &str = "https://api.next-engine.org";
pub const DEFAULT_SIGN_IN_BASE_URL: &str = "https://base.next-engine.org";

/// Page size of the searches; one integrator reports 1000 as NE's cap.
const SEARCH_PAGE: usize = 1000;
/// Values per `-in` condition (single source says 1000 is the maximum).
const IN_CHUNK: usize = 1000;

const PATH_NEAUTH: &str = "/api_neauth";
const PATH_GOODS_SEARCH: &str = "/api_v1_master_goods/search";
/// One row per component of a set goods (reference, Update "Set goods"). Its
/// field names (`set_goods_id`, `set_goods_detail_goods_id`, …) are assumed
/// from NextEngine's naming: the API explorer page is where to confirm them.
const PATH_SET_GOODS_SEARCH: &str = "/api_v1_master_setgoods/search";
const PATH_GOODS_UPLOAD: &str = "/api_v1_master_goods/upload";
const PATH_QUE_SEARCH: &str = "/api_v1_system_que/search";
const PATH_ORDER_ROW_SEARCH: &str = "/api_v1_receiveorder_row/search";
/// 入出庫履歴. Path from the reference (nextengine-api.md, Update "Stock in/out
/// history"); field names from the community SDK `shibuya-kosuke/laravel-nextengine`
/// (assumed until read off the official API explorer).
const PATH_STOCK_IO_SEARCH: &str = "/api_v1_master_stockiohistory/search";
const STOCK_IO_FIELDS: &str = "stock_io_history_id,stock_io_history_goods_id,\
stock_io_history_before_stock_quantity,stock_io_history_after_stock_quantity,\
stock_io_history_cut_form_id,stock_io_history_creation_date";
/// Goods codes per history search: a file's goods over minutes of history stay
/// within a few pages each.
const STOCK_IO_CHUNK: usize = 100;

const QUE_FIELDS: &str = "que_id,que_status_id,que_message,que_method_name,que_creation_date,\
que_last_modified_date,que_upload_name,que_client_file_name";
const GOODS_UPLOAD_METHOD: &str = "SYOHIN_KIHON_CSV";
const ORDER_ROW_FIELDS: &str = "receive_order_row_receive_order_id,\
receive_order_shop_cut_form_id,receive_order_import_date,receive_order_cancel_type_id,\
receive_order_row_no,receive_order_row_goods_id,receive_order_row_quantity,\
receive_order_row_cancel_flag,receive_order_row_deleted_flag,\
receive_order_row_last_modified_newest_date";
const ORDER_ROW_SORT: &str = "receive_order_row_last_modified_newest_date-asc,\
receive_order_id-asc,receive_order_row_no-asc";

/// Waits between re-reads of the stored pair after a `002002` that still finds
/// the pair that was sent: another process may have rotated it at NextEngine
/// and not finished saving yet (its save is retried, see [`SAVE_DELAYS_MS`]);
/// on a loaded machine that can take seconds, and only a real stale pair pays.
const STALE_RELOAD_DELAYS_MS: &[u64] = &[0, 25, 50, 100, 200, 400, 800, 1600, 3200];
/// Retries after a `002002` answered to a pair another process had replaced.
/// Each is "once" for the rotation it saw; the bound only stops two processes
/// from superseding each other forever.
const MAX_STALE_RETRIES: u32 = 3;
/// Waits before the attempts to save a rotated pair. Once NextEngine answered,
/// the pair it sent is the only valid one, so a failed save is worth a few
/// tries before the tenant would need a new sign-in.
const SAVE_DELAYS_MS: &[u64] = &[0, 50, 200, 800];

#[derive(Clone)]
pub struct NeClientConfig {
    pub api_base_url: String,
    pub sign_in_base_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    /// Send `wait_flag=1` on searches (never on uploads, see the crate docs).
    /// Only worth it where the caller can wait up to NE's hour; the request
    /// timeout must then be raised accordingly.
    pub wait_on_overload_for_reads: bool,
    /// How fast calls may go, per tenant and for the process.
    pub rate: RateLimits,
}

impl NeClientConfig {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        NeClientConfig {
            api_base_url: DEFAULT_API_BASE_URL.to_string(),
            sign_in_base_url: DEFAULT_SIGN_IN_BASE_URL.to_string(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            wait_on_overload_for_reads: false,
            rate: RateLimits::UNLIMITED,
        }
    }

    /// The app as this service runs it: NextEngine's two hosts, and the sign-in
    /// callback at `/nextengine/callback` under the service's public URL (the
    /// redirect URI registered with the app).
    pub fn for_service(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        public_url: &str,
        api_base_url: &str,
        sign_in_base_url: &str,
    ) -> Self {
        NeClientConfig {
            api_base_url: api_base_url.to_string(),
            sign_in_base_url: sign_in_base_url.to_string(),
            rate: RateLimits::DEFAULT,
            ..NeClientConfig::new(
                client_id,
                client_secret,
                format!("{}/nextengine/callback", public_url.trim_end_matches('/')),
            )
        }
    }
}

impl fmt::Debug for NeClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeClientConfig")
            .field("api_base_url", &self.api_base_url)
            .field("sign_in_base_url", &self.sign_in_base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field(
                "wait_on_overload_for_reads",
                &self.wait_on_overload_for_reads,
            )
            .finish()
    }
}

pub struct NeClient {
    config: NeClientConfig,
    http: reqwest::Client,
    tokens: Arc<dyn TokenStore>,
    /// One call in flight per tenant: a second concurrent call would send the
    /// pair the first one is about to rotate and get `002002`.
    tenant_locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
    rate: ApiRateLimit,
}

impl fmt::Debug for NeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallKind {
    Read,
    /// Not idempotent: only answers proving NE did nothing may be retried.
    Upload,
}

enum Attempt {
    Envelope(Map<String, Value>),
    /// No complete, readable answer.
    Transport(String),
}

enum Verdict {
    Success,
    Token(String, String),
    Stale(String, String),
    Retry(String, String),
    Suspended(String, String),
    Api(String, String),
}

impl NeClient {
    pub fn new(config: NeClientConfig, tokens: Arc<dyn TokenStore>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(15)))
            .build()
            .expect("the HTTP client builds with the bundled TLS roots");
        NeClient {
            rate: ApiRateLimit::new(config.rate),
            config,
            http,
            tokens,
            tenant_locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &NeClientConfig {
        &self.config
    }

    fn tenant_lock(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.tenant_locks.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(tenant.clone()).or_default().clone()
    }

    async fn load_tokens(&self, tenant: &TenantId) -> Result<NeTokens, NeError> {
        match self.tokens.ne_tokens(tenant).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(NeError::Token {
                code: String::new(),
                message: "no NextEngine tokens stored: sign in to NextEngine first".into(),
            }),
            Err(e) => Err(NeError::Store(e)),
        }
    }

    async fn send(&self, path: &str, form: &[(&str, &[u8])]) -> Attempt {
        let url = format!("{}{}", self.config.api_base_url.trim_end_matches('/'), path);
        let request = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(encode_form(form));
        let resp = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Transport(describe(e)),
        };
        let status = resp.status();
        if status.is_server_error() {
            return Attempt::Transport(format!("HTTP {status}"));
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Transport(describe(e)),
        };
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) if m.contains_key("result") => Attempt::Envelope(m),
            _ => Attempt::Transport(format!("HTTP {status}: unreadable response body")),
        }
    }

    async fn pause(&self, path: &str, retry: u32, why: &str) {
        let delay = self.config.retry.delay(retry);
        warn!(
            path,
            retry,
            ?delay,
            reason = why,
            "NextEngine call will be retried"
        );
        tokio::time::sleep(delay).await;
    }

    /// Calls a token-authenticated API and returns the success envelope.
    async fn token_call<V: AsRef<[u8]> + Sync>(
        &self,
        tenant: &TenantId,
        path: &str,
        params: &[(&str, V)],
        kind: CallKind,
    ) -> Result<Map<String, Value>, NeError> {
        let lock = self.tenant_lock(tenant);
        let _in_flight = lock.lock().await;
        let mut tokens = self.load_tokens(tenant).await?;
        let mut stale_retries = 0;
        let max = self.config.retry.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = tokens.clone();
            let outcome = {
                let mut form: Vec<(&str, &[u8])> = vec![
                    ("access_token", tokens.access_token.as_bytes()),
                    ("refresh_token", tokens.refresh_token.as_bytes()),
                ];
                if kind == CallKind::Read && self.config.wait_on_overload_for_reads {
                    form.push(("wait_flag", b"1"));
                }
                form.extend(params.iter().map(|(k, v)| (*k, v.as_ref())));
                self.rate.until_ready(tenant.as_str()).await;
                self.send(path, &form).await
            };
            let m = match outcome {
                Attempt::Envelope(m) => m,
                Attempt::Transport(msg) => {
                    if kind == CallKind::Upload {
                        warn!(path, %tenant, error = %msg, "upload outcome unknown; not retried");
                        return Err(NeError::Transport(msg));
                    }
                    if attempt < max {
                        self.pause(path, attempt, &msg).await;
                        continue;
                    }
                    return Err(NeError::Transport(msg));
                }
            };
            tokens = self.keep_rotated_tokens(tenant, tokens, &m, kind).await?;
            match classify(&m) {
                Verdict::Success => {
                    debug!(path, %tenant, attempt, "NextEngine call succeeded");
                    return Ok(m);
                }
                Verdict::Stale(code, message) => {
                    // `002002` is NextEngine refusing a superseded pair before
                    // running the call (it carries no tokens, reference §1.4 and
                    // the "Update" table), so nothing was done and a retry with
                    // the newer pair runs the call once. That holds for uploads
                    // too: the refused upload created no queue, so retrying it
                    // cannot upload twice (reference §2.2: "yes, once, after
                    // reloading the newest tokens", as Hamee's own update app does).
                    if stale_retries < MAX_STALE_RETRIES
                        && let Some(fresh) = self.rotated_elsewhere(tenant, &sent).await?
                    {
                        stale_retries += 1;
                        info!(path, %tenant, "tokens were rotated elsewhere; retrying with the stored pair");
                        tokens = fresh;
                        attempt -= 1;
                        continue;
                    }
                    warn!(path, %tenant, code, "NextEngine refused the tokens");
                    return Err(NeError::Token { code, message });
                }
                Verdict::Token(code, message) => {
                    warn!(path, %tenant, code, "NextEngine refused the tokens");
                    return Err(NeError::Token { code, message });
                }
                Verdict::Retry(code, message) => {
                    if attempt < max {
                        self.pause(path, attempt, &code).await;
                        continue;
                    }
                    warn!(path, %tenant, code, "NextEngine still busy after retries");
                    return Err(NeError::Busy { code, message });
                }
                Verdict::Suspended(code, message) => {
                    error!(path, %tenant, code, "NextEngine account is suspended");
                    return Err(NeError::Suspended { code, message });
                }
                Verdict::Api(code, message) => {
                    warn!(path, %tenant, code, "NextEngine answered with an error");
                    return Err(NeError::Api { code, message });
                }
            }
        }
    }

    /// After a `002002`: the stored pair when it is no longer the one that was
    /// sent (another process rotated it), `None` when it stays the same, which
    /// makes the `002002` a real token error. Re-reads a few times because the
    /// rotating process saves only after NextEngine's answer reached it.
    async fn rotated_elsewhere(
        &self,
        tenant: &TenantId,
        sent: &NeTokens,
    ) -> Result<Option<NeTokens>, NeError> {
        for &ms in STALE_RELOAD_DELAYS_MS {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let stored = self.load_tokens(tenant).await?;
            if stored.access_token != sent.access_token
                || stored.refresh_token != sent.refresh_token
            {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// Compare-and-set of a rotated pair over the one sent, retried when the
    /// store fails. A retry after a write whose answer was lost finds the new
    /// pair stored and reports `Ok(false)`, which the caller handles.
    async fn save_rotated(
        &self,
        tenant: &TenantId,
        sent: &NeTokens,
        new: &NeTokens,
    ) -> Result<bool, sne_ports::StoreError> {
        let mut last = None;
        for (i, &ms) in SAVE_DELAYS_MS.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            match self
                .tokens
                .swap_ne_tokens(tenant, Some(&sent.access_token), new)
                .await
            {
                Ok(wrote) => return Ok(wrote),
                Err(e) => {
                    // The error text comes from the store and never holds a token.
                    warn!(%tenant, attempt = i + 1, error = %e, "saving rotated NextEngine tokens failed");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("SAVE_DELAYS_MS is not empty"))
    }

    /// Saves a pair NE handed out in place of the one sent. Returns the pair
    /// to use from now on.
    async fn keep_rotated_tokens(
        &self,
        tenant: &TenantId,
        sent: NeTokens,
        m: &Map<String, Value>,
        kind: CallKind,
    ) -> Result<NeTokens, NeError> {
        let Some(new) = tokens_in(m, &sent) else {
            return Ok(sent);
        };
        if new.access_token == sent.access_token && new.refresh_token == sent.refresh_token {
            return Ok(sent);
        }
        match self.save_rotated(tenant, &sent, &new).await {
            Ok(true) => {
                info!(%tenant, access_token_end = %new.access_token_end, "saved rotated NextEngine tokens");
                Ok(new)
            }
            Ok(false) => {
                // Someone stored a newer pair (e.g. a fresh sign-in) while we
                // were calling: theirs wins, ours is never written over it.
                warn!(%tenant, "token store already holds other tokens; keeping those");
                match self.tokens.ne_tokens(tenant).await {
                    Ok(Some(t)) => Ok(t),
                    _ => Ok(new),
                }
            }
            Err(e) => {
                error!(%tenant, error = %e, "could not save rotated NextEngine tokens");
                if kind == CallKind::Upload {
                    // The upload happened: its que_id matters more than the
                    // error, which the next call will surface as a token error.
                    Ok(new)
                } else {
                    Err(NeError::Store(e))
                }
            }
        }
    }

    /// Runs a search page by page until a short page.
    /// The subset of `codes` a search of `path` finds by its code field `id`,
    /// in `-in` chunks.
    async fn codes_found(
        &self,
        tenant: &TenantId,
        path: &str,
        id: &str,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        let wanted = searchable(codes);
        let list: Vec<&str> = wanted.iter().copied().collect();
        let mut found = HashSet::new();
        for chunk in list.chunks(IN_CHUNK) {
            let rows = self
                .search_all(
                    tenant,
                    path,
                    id,
                    &[(&format!("{id}-in"), chunk.join(","))],
                    &format!("{id}-asc"),
                )
                .await?;
            for row in rows {
                // NE may compare loosely (case, numbers); only an exact
                // match is the goods we asked about.
                if let Some(code) = text(&row, id)
                    && wanted.contains(code.as_str())
                {
                    found.insert(GoodsCode::from(code));
                }
            }
        }
        Ok(found)
    }

    async fn search_all(
        &self,
        tenant: &TenantId,
        path: &str,
        fields: &str,
        filters: &[(&str, String)],
        sort: &str,
    ) -> Result<Vec<Map<String, Value>>, NeError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let mut params: Vec<(&str, String)> = filters.to_vec();
            params.push(("fields", fields.to_string()));
            params.push(("sort", sort.to_string()));
            params.push(("offset", offset.to_string()));
            params.push(("limit", SEARCH_PAGE.to_string()));
            let m = self
                .token_call(tenant, path, &params, CallKind::Read)
                .await?;
            let rows = data_rows(m)?;
            let n = rows.len();
            out.extend(rows);
            if n < SEARCH_PAGE {
                return Ok(out);
            }
            offset += n;
        }
    }
}

#[async_trait]
impl NextEngineApi for NeClient {
    fn sign_in_url(&self) -> String {
        let query = serde_urlencoded::to_string([
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
        ])
        .unwrap_or_default();
        format!(
            "{}/users/sign_in/?{query}",
            self.config.sign_in_base_url.trim_end_matches('/')
        )
    }

    async fn authorize(&self, uid: &str, state: &str) -> Result<NeAuth, NeError> {
        let form = [
            ("uid", uid),
            ("state", state),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        let max = self.config.retry.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let form: Vec<(&str, &[u8])> = form.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            let m = match self.send(PATH_NEAUTH, &form).await {
                Attempt::Envelope(m) => m,
                // `state` is single-use and may already be spent: a retry
                // could only fail, so the operator signs in again instead.
                Attempt::Transport(msg) => return Err(NeError::Transport(msg)),
            };
            match classify(&m) {
                Verdict::Success => return parse_auth(&m),
                Verdict::Retry(code, message) => {
                    if attempt < max {
                        self.pause(PATH_NEAUTH, attempt, &code).await;
                        continue;
                    }
                    return Err(NeError::Busy { code, message });
                }
                Verdict::Token(code, message) | Verdict::Stale(code, message) => {
                    return Err(NeError::Token { code, message });
                }
                Verdict::Suspended(code, message) => {
                    return Err(NeError::Suspended { code, message });
                }
                Verdict::Api(code, message) => {
                    warn!(code, "NextEngine refused the sign-in exchange");
                    return Err(NeError::Api { code, message });
                }
            }
        }
    }

    async fn existing_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.codes_found(tenant, PATH_GOODS_SEARCH, "goods_id", codes)
            .await
    }

    async fn goods_stock(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<Vec<GoodsStock>, NeError> {
        let wanted = searchable(codes);
        let list: Vec<&str> = wanted.iter().copied().collect();
        let mut found = Vec::new();
        for chunk in list.chunks(IN_CHUNK) {
            let rows = self
                .search_all(
                    tenant,
                    PATH_GOODS_SEARCH,
                    "goods_id,stock_quantity,stock_allocation_quantity,stock_free_quantity",
                    &[("goods_id-in", chunk.join(","))],
                    "goods_id-asc",
                )
                .await?;
            for row in rows {
                let Some(id) = text(&row, "goods_id").filter(|id| wanted.contains(id.as_str()))
                else {
                    continue;
                };
                let stock = quantity(&row, "stock_quantity", &id)?;
                let allocated = quantity(&row, "stock_allocation_quantity", &id)?;
                let free = match text(&row, "stock_free_quantity").filter(|t| !t.trim().is_empty())
                {
                    Some(_) => quantity(&row, "stock_free_quantity", &id)?,
                    None => stock - allocated,
                };
                found.push(GoodsStock {
                    goods_code: GoodsCode::from(id),
                    stock,
                    allocated,
                    free,
                });
            }
        }
        Ok(found)
    }

    async fn set_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.codes_found(tenant, PATH_SET_GOODS_SEARCH, "set_goods_id", codes)
            .await
    }

    async fn upload_stock_csv(&self, tenant: &TenantId, csv: &[u8]) -> Result<QueId, NeError> {
        // The file must be UTF-8 for NextEngine to read it (the simulator
        // refuses anything else); such a file never leaves the service.
        if std::str::from_utf8(csv).is_err() {
            return Err(NeError::Api {
                code: "client".into(),
                message: "the stock CSV is not valid UTF-8; nothing was sent".into(),
            });
        }
        // Hamee's sample: 「通常はGZipでアップロードして下さい」 (reference,
        // Update "Upload encoding").
        let gz = gzip(csv).map_err(|e| NeError::Api {
            code: "client".into(),
            message: format!("the stock CSV could not be compressed ({e}); nothing was sent"),
        })?;
        let params = [("data_type", b"gz".to_vec()), ("data", gz)];
        let m = self
            .token_call(tenant, PATH_GOODS_UPLOAD, &params, CallKind::Upload)
            .await?;
        match text(&m, "que_id").filter(|q| !q.is_empty()) {
            Some(q) => {
                info!(%tenant, que_id = %q, "stock CSV accepted by NextEngine");
                Ok(QueId::from(q))
            }
            // Accepted but no id: treat like a lost answer so the caller
            // resolves it from the queue instead of uploading again.
            None => Err(NeError::Transport(
                "upload accepted without a que_id".into(),
            )),
        }
    }

    async fn queues_by_id(
        &self,
        tenant: &TenantId,
        que_ids: &[QueId],
    ) -> Result<Vec<QueueEntry>, NeError> {
        let ids: BTreeSet<&str> = que_ids
            .iter()
            .map(QueId::as_str)
            .filter(|q| !q.is_empty() && !q.contains(','))
            .collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let rows = self
                .search_all(
                    tenant,
                    PATH_QUE_SEARCH,
                    QUE_FIELDS,
                    &[("que_id-in", chunk.join(","))],
                    "que_id-asc",
                )
                .await?;
            for row in rows {
                let entry = queue_entry(&row)?;
                if ids.contains(&entry.que_id.as_str()) {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    async fn keep_tokens_alive(&self, tenant: &TenantId) -> Result<(), NeError> {
        self.token_call(
            tenant,
            PATH_QUE_SEARCH,
            &[("fields", "que_id".to_string()), ("limit", "1".to_string())],
            CallKind::Read,
        )
        .await
        .map(|_| ())
    }

    async fn goods_upload_queues_since(
        &self,
        tenant: &TenantId,
        since: NaiveDateTime,
    ) -> Result<Vec<QueueEntry>, NeError> {
        let filters = [
            ("que_method_name-eq", GOODS_UPLOAD_METHOD.to_string()),
            (
                "que_creation_date-gte",
                since.format(API_FORMAT).to_string(),
            ),
        ];
        let rows = self
            .search_all(tenant, PATH_QUE_SEARCH, QUE_FIELDS, &filters, "que_id-asc")
            .await?;
        rows.iter().map(queue_entry).collect()
    }

    async fn order_rows(
        &self,
        tenant: &TenantId,
        query: &OrderRowQuery,
    ) -> Result<Vec<NeOrderRow>, NeError> {
        let mut params: Vec<(&str, String)> = vec![
            ("fields", ORDER_ROW_FIELDS.to_string()),
            ("sort", ORDER_ROW_SORT.to_string()),
            ("offset", query.offset.to_string()),
        ];
        // 0 would ask for nothing; leave NE's default page size instead.
        if query.limit > 0 {
            params.push(("limit", query.limit.to_string()));
        }
        if let Some(t) = query.modified_since {
            params.push((
                "receive_order_row_last_modified_newest_date-gte",
                t.format(API_FORMAT).to_string(),
            ));
        }
        if let Some(t) = query.imported_since {
            params.push((
                "receive_order_import_date-gte",
                t.format(API_FORMAT).to_string(),
            ));
        }
        let m = self
            .token_call(tenant, PATH_ORDER_ROW_SEARCH, &params, CallKind::Read)
            .await?;
        data_rows(m)?.iter().map(order_row).collect()
    }

    async fn stock_io_history(
        &self,
        tenant: &TenantId,
        goods_codes: &[GoodsCode],
        since: NaiveDateTime,
    ) -> Result<Vec<StockIoEntry>, NeError> {
        let codes: BTreeSet<&str> = goods_codes
            .iter()
            .map(GoodsCode::as_str)
            .filter(|c| !c.is_empty() && !c.contains(','))
            .collect();
        let codes: Vec<&str> = codes.into_iter().collect();
        let mut out = Vec::new();
        for chunk in codes.chunks(STOCK_IO_CHUNK) {
            let filters = [
                ("stock_io_history_goods_id-in", chunk.join(",")),
                (
                    "stock_io_history_creation_date-gte",
                    since.format(API_FORMAT).to_string(),
                ),
                ("stock_io_history_deleted_flag-eq", "0".to_string()),
            ];
            let rows = self
                .search_all(
                    tenant,
                    PATH_STOCK_IO_SEARCH,
                    STOCK_IO_FIELDS,
                    &filters,
                    "stock_io_history_id-asc",
                )
                .await?;
            for row in rows {
                out.push(stock_io_entry(&row)?);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- encoding

/// `application/x-www-form-urlencoded` over bytes, as a browser or PHP's
/// `http_build_query` writes it: a gzip `data` value is binary, which the
/// string-only form serialisers cannot carry.
fn encode_form(form: &[(&str, &[u8])]) -> Vec<u8> {
    fn push_encoded(out: &mut Vec<u8>, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for &b in bytes {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b),
                b' ' => out.push(b'+'),
                _ => out.extend([b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
            }
        }
    }
    let mut out = Vec::new();
    for (i, (k, v)) in form.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        push_encoded(&mut out, k.as_bytes());
        out.push(b'=');
        push_encoded(&mut out, v);
    }
    out
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    encoder.finish()
}

// ---------------------------------------------------------------- parsing

fn describe(e: reqwest::Error) -> String {
    // The URL carries no secret (everything travels in the body), but
    // stripping it keeps error texts free of any query a caller might add.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body unreadable"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn classify(m: &Map<String, Value>) -> Verdict {
    let result = m.get("result").and_then(Value::as_str).unwrap_or("");
    if result == "success" {
        return Verdict::Success;
    }
    let code = text(m, "code").unwrap_or_default();
    let message = message_of(m);
    // NextEngine asks for a new sign-in, whatever the code says: this keeps
    // the reading of 002003 as "refresh failed" (third-party) working next to
    // Hamee's reading as a suspension, which comes as `result: "error"`.
    if result == "redirect" {
        return Verdict::Token(code, message);
    }
    match class_of(&code) {
        CodeClass::StaleToken => Verdict::Stale(code, message),
        CodeClass::Token => Verdict::Token(code, message),
        CodeClass::Busy => Verdict::Retry(code, message),
        CodeClass::Suspended => Verdict::Suspended(code, message),
        CodeClass::Refused => Verdict::Api(code, message),
    }
}

/// `message` is a string, or an array of objects for bulk operations.
fn message_of(m: &Map<String, Value>) -> String {
    fn flatten(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
            Value::Object(o) => o.values().for_each(|x| flatten(x, out)),
            _ => {}
        }
    }
    let mut parts = Vec::new();
    if let Some(v) = m.get("message") {
        flatten(v, &mut parts);
    }
    let joined = parts.join(" / ");
    if joined.chars().count() > 2000 {
        joined.chars().take(2000).collect::<String>() + "…"
    } else {
        joined
    }
}

/// A value as text: NE sends numbers as strings, but tolerate real numbers.
fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time_of(m: &Map<String, Value>, key: &str) -> Option<NaiveDateTime> {
    text(m, key).as_deref().and_then(parse_api_time)
}

/// The codes an `-in` search can ask for. NE goods codes never contain commas
/// (reference §4.4), and a comma would split the list, so such a code cannot
/// exist there.
fn searchable(codes: &[GoodsCode]) -> BTreeSet<&str> {
    codes
        .iter()
        .map(GoodsCode::as_str)
        .filter(|c| !c.is_empty() && !c.contains(','))
        .collect()
}

/// A stock figure: NextEngine sends numbers as strings; an empty one is 0.
fn quantity(row: &Map<String, Value>, key: &str, goods: &str) -> Result<i64, NeError> {
    match text(row, key) {
        None => Ok(0),
        Some(t) if t.trim().is_empty() => Ok(0),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| invalid(format!("{key} of goods {goods} is not a number: {t:?}"))),
    }
}

fn invalid(what: impl Into<String>) -> NeError {
    NeError::Api {
        code: "invalid_response".into(),
        message: what.into(),
    }
}

/// The pair a response carries, if any. Missing end dates fall back to the
/// sent ones: losing a rotated token would force a new sign-in, a wrong
/// expiry date only an early warning.
fn tokens_in(m: &Map<String, Value>, sent: &NeTokens) -> Option<NeTokens> {
    let access = text(m, "access_token").filter(|s| !s.is_empty())?;
    let refresh = text(m, "refresh_token")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| sent.refresh_token.clone());
    Some(NeTokens {
        access_token: access,
        refresh_token: refresh,
        access_token_end: time_of(m, "access_token_end_date").unwrap_or(sent.access_token_end),
        refresh_token_end: time_of(m, "refresh_token_end_date").unwrap_or(sent.refresh_token_end),
    })
}

fn parse_auth(m: &Map<String, Value>) -> Result<NeAuth, NeError> {
    let need = |k: &str| text(m, k).ok_or_else(|| invalid(format!("/api_neauth without {k}")));
    let date = |k: &str| time_of(m, k).ok_or_else(|| invalid(format!("/api_neauth: bad {k}")));
    Ok(NeAuth {
        tokens: NeTokens {
            access_token: need("access_token")?,
            refresh_token: need("refresh_token")?,
            access_token_end: date("access_token_end_date")?,
            refresh_token_end: date("refresh_token_end_date")?,
        },
        company_ne_id: text(m, "company_ne_id").unwrap_or_default(),
        company_name: text(m, "company_name").unwrap_or_default(),
        uid: text(m, "uid").unwrap_or_default(),
        pic_name: text(m, "pic_name").unwrap_or_default(),
    })
}

fn data_rows(mut m: Map<String, Value>) -> Result<Vec<Map<String, Value>>, NeError> {
    match m.remove("data") {
        Some(Value::Array(rows)) => rows
            .into_iter()
            .map(|r| match r {
                Value::Object(o) => Ok(o),
                _ => Err(invalid("search row is not an object")),
            })
            .collect(),
        Some(Value::Null) | None if text(&m, "count").as_deref() == Some("0") => Ok(Vec::new()),
        _ => Err(invalid("search answer without data")),
    }
}

fn queue_entry(row: &Map<String, Value>) -> Result<QueueEntry, NeError> {
    Ok(QueueEntry {
        que_id: text(row, "que_id")
            .ok_or_else(|| invalid("queue row without que_id"))?
            .into(),
        status: QueueStatus::from_code(&text(row, "que_status_id").unwrap_or_default()),
        message: text(row, "que_message").unwrap_or_default(),
        method_name: text(row, "que_method_name").unwrap_or_default(),
        created_at: time_of(row, "que_creation_date"),
        modified_at: time_of(row, "que_last_modified_date"),
        upload_name: text(row, "que_upload_name").unwrap_or_default(),
        client_file_name: text(row, "que_client_file_name").unwrap_or_default(),
    })
}

fn stock_io_entry(row: &Map<String, Value>) -> Result<StockIoEntry, NeError> {
    let number = |k: &str| -> Result<i64, NeError> {
        let raw = text(row, k).unwrap_or_default();
        raw.trim()
            .parse()
            .map_err(|_| invalid(format!("stock history {k} {raw:?}")))
    };
    Ok(StockIoEntry {
        goods_code: text(row, "stock_io_history_goods_id")
            .ok_or_else(|| invalid("stock history row without goods id"))?
            .into(),
        before: number("stock_io_history_before_stock_quantity")?,
        after: number("stock_io_history_after_stock_quantity")?,
        at: time_of(row, "stock_io_history_creation_date")
            .ok_or_else(|| invalid("stock history row without creation date"))?,
        slip: text(row, "stock_io_history_cut_form_id").filter(|s| !s.trim().is_empty()),
    })
}

fn order_row(row: &Map<String, Value>) -> Result<NeOrderRow, NeError> {
    let s = |k: &str| text(row, k).unwrap_or_default();
    let quantity = s("receive_order_row_quantity");
    Ok(NeOrderRow {
        receive_order_id: s("receive_order_row_receive_order_id"),
        shop_order_no: s("receive_order_shop_cut_form_id"),
        import_date: time_of(row, "receive_order_import_date"),
        cancel_type_id: s("receive_order_cancel_type_id"),
        row_no: s("receive_order_row_no"),
        goods_id: s("receive_order_row_goods_id"),
        quantity: quantity
            .trim()
            .parse()
            .map_err(|_| invalid(format!("order row quantity {quantity:?}")))?,
        row_cancelled: s("receive_order_row_cancel_flag").trim() == "1",
        row_deleted: s("receive_order_row_deleted_flag").trim() == "1",
        last_modified_newest: time_of(row, "receive_order_row_last_modified_newest_date"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn classifies_envelopes() {
        let v = |x| classify(&obj(x));
        assert!(matches!(v(json!({"result":"success"})), Verdict::Success));
        assert!(matches!(
            v(json!({"result":"redirect","code":"002003","message":"x"})),
            Verdict::Token(..)
        ));
        assert!(matches!(
            v(json!({"result":"error","code":"002002","message":"x"})),
            Verdict::Stale(..)
        ));
        assert!(matches!(
            v(json!({"result":"error","code":"002004","message":"x"})),
            Verdict::Token(..)
        ));
        assert!(matches!(
            v(json!({"result":"error","code":"003002","message":"x"})),
            Verdict::Retry(..)
        ));
        for code in ["008003", "008007", "008010", "002007", "003004"] {
            assert!(
                matches!(
                    v(json!({"result":"error","code":code,"message":"x"})),
                    Verdict::Retry(..)
                ),
                "{code}"
            );
        }
        for code in ["001007", "002003", "003003"] {
            assert!(
                matches!(
                    v(json!({"result":"error","code":code,"message":"x"})),
                    Verdict::Suspended(..)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            v(json!({"result":"error","code":"002001","message":"x"})),
            Verdict::Token(..)
        ));
        assert!(matches!(
            v(json!({"result":"error","code":"999999","message":"x"})),
            Verdict::Api(..)
        ));
        assert!(matches!(
            v(json!({"result":"error","code":"020500","message":[{"a":"row 1 bad"}]})),
            Verdict::Api(c, m) if c == "020500" && m == "row 1 bad"
        ));
    }

    #[test]
    fn forms_encode_any_bytes() {
        let body = encode_form(&[
            ("a b", b"x+y&z=1"),
            ("data", &[0x1f, 0x8b, 0x00, b'~']),
            ("e", b""),
        ]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "a+b=x%2By%26z%3D1&data=%1F%8B%00%7E&e="
        );
        let text = "syohin_code,zaiko_su\r\nA-1_b.c,-3\r\n";
        let body = encode_form(&[("data", text.as_bytes())]);
        let ours = String::from_utf8(body).unwrap();
        // The same as the string serialiser for text values.
        assert_eq!(ours, serde_urlencoded::to_string([("data", text)]).unwrap());
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let csv = b"syohin_code,zaiko_su\r\nA,-1\r\n";
        let gz = gzip(csv).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, csv);
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let c = NeClientConfig::new("id-1", "very-secret", "https://x/cb");
        let text = format!("{c:?}");
        assert!(text.contains("id-1") && !text.contains("very-secret"));
    }

    #[test]
    fn rotated_tokens_keep_sent_dates_when_missing() {
        let t = |s: &str| parse_api_time(s).unwrap();
        let sent = NeTokens {
            access_token: "a".into(),
            refresh_token: "r".into(),
            access_token_end: t("2026-01-01 00:00:00"),
            refresh_token_end: t("2026-01-03 00:00:00"),
        };
        let m = obj(json!({"access_token":"a2","refresh_token":"r2",
            "access_token_end_date":"2026-01-02 00:00:00"}));
        let new = tokens_in(&m, &sent).unwrap();
        assert_eq!(new.access_token, "a2");
        assert_eq!(new.access_token_end, t("2026-01-02 00:00:00"));
        assert_eq!(new.refresh_token_end, t("2026-01-03 00:00:00"));
        assert!(tokens_in(&obj(json!({"result":"error"})), &sent).is_none());
    }
}
