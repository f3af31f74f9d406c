//! The スマレジ・プラットフォームAPI over the old API's contracts: one app (client
//! id and secret), per-contract tokens with scopes, `GET /pos/stock`, `GET
//! /pos/stock/changes/{p}/{s}`, the single-row stock writes, the `pos:stock`
//! webhook with no retry and with faults, the contract notification, a rate
//! limiter and problem+json errors (reference smaregi-platform-api.md,
//! "Simulator checklist"). History ids are the old API's `StockHistory` ids:
//! one history per contract, seen through both APIs.
//!
//! Not built: the bulk writes (`PATCH /stock/bulk`, `POST /stock/add/bulk`),
//! `/shipping` and the events other than `pos:stock`.

// An error here is the HTTP response itself, built once per request.
#![allow(clippy::result_large_err)]

use super::{Change, Outgoing, SmState, SmaregiSim, StockHistoryRow, apply_change, pushes_for};
use crate::common::compare_values;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine;
use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration as StdDuration, Instant};

pub const ALL_SCOPES: &[&str] = &[
    "pos.stock:read",
    "pos.stock:write",
    "pos.stock-changes:read",
    "pos.products:read",
    "pos.stores:read",
];

pub const USER_AGENT: &str = "Smaregi-Platform-Api-Webhook/1.2.4(sandbox)";

/// `YYYY-MM-DDThh:mm:ssTZD`, always in Japan time.
pub fn fmt_tzd(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+09:00").to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of a token (the reference's only example is 3600).
    pub token_ttl_secs: i64,
    /// Per contract and second; the sandbox figures (reference §5), the
    /// strictest attested.
    pub reads_per_sec: u32,
    pub writes_per_sec: u32,
    /// After this many throttled calls a contract's calls are refused with 403
    /// ("many throttling errors may lead to refusal"; numbers not attested).
    pub refuse_after_throttles: Option<u32>,
    /// `stockDivision` a Platform-API write records (unknown; `15` assumed).
    pub write_division: String,
    /// c617: a Platform-API write fires the old push too.
    pub platform_writes_fire_push: bool,
    /// c617 (unconfirmed): an old-API write fires no `pos:stock`. `true` is the
    /// other reading.
    pub old_api_writes_fire_webhook: bool,
    pub webhook_timeout_ms: u64,
    pub max_window_days: i64,
    /// `sort` on `GET /stock/changes/{p}/{s}` is single-source (reference
    /// §3.2); `false` ignores it and answers oldest first (id ascending).
    pub changes_sort_honoured: bool,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            token_ttl_secs: 3600,
            reads_per_sec: 10,
            writes_per_sec: 4,
            refuse_after_throttles: None,
            write_division: "15".into(),
            platform_writes_fire_push: true,
            old_api_writes_fire_webhook: false,
            webhook_timeout_ms: 3000,
            max_window_days: 31,
            changes_sort_honoured: true,
        }
    }
}

/// What the next webhook deliveries suffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// Deliveries never sent (Smaregi does not retry).
    pub drop_next: u32,
    /// Deliveries sent twice with the same `smaregi-event-id`.
    pub duplicate_next: u32,
    /// Deliveries sent twice, the second with a fresh event id.
    pub redeliver_next: u32,
    /// Hold deliveries until [`SmaregiSim::release_webhooks`], which sends them
    /// newest first.
    pub hold: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub contract_id: String,
    pub url: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub http_status: Option<u16>,
    /// `delivered`, `failed: …` or `dropped`.
    pub outcome: String,
}

struct Subscription {
    active: bool,
    scopes: BTreeSet<String>,
    /// Whether the plan reads 在庫変動履歴 (some plans may not).
    stock_changes: bool,
}

struct Issued {
    contract_id: String,
    scopes: BTreeSet<String>,
    expires: NaiveDateTime,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Read,
    Write,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub(super) struct PlatformState {
    subscriptions: BTreeMap<String, Subscription>,
    tokens: HashMap<String, Issued>,
    buckets: HashMap<(String, Class), Bucket>,
    throttled: HashMap<String, u32>,
    webhook: Option<(String, Vec<(String, String)>)>,
    notify_url: Option<String>,
    faults: WebhookFaults,
    held: Vec<Outgoing>,
    deliveries: Vec<WebhookDelivery>,
    token_calls: u64,
    api_calls: u64,
}

impl SmaregiSim {
    /// The id host's token URL for a contract.
    pub fn platform_token_url(&self, contract_id: &str) -> String {
        format!("{}/app/{contract_id}/token", self.base_url())
    }

    /// The API host (`https://api.smaregi.jp` stands here).
    pub fn platform_api_url(&self) -> String {
        self.base_url()
    }

    /// Where the app's webhooks go, with the developer-defined headers
    /// (the secret header among them).
    pub fn configure_platform_webhook(&self, url: Option<&str>, headers: &[(&str, &str)]) {
        self.lock().platform.webhook = url.map(|u| {
            (
                u.to_string(),
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        });
    }

    /// 利用者契約通知先URL.
    pub fn configure_contract_notification(&self, url: Option<&str>) {
        self.lock().platform.notify_url = url.map(str::to_string);
    }

    /// The contract installs the app with `scopes` (all when empty): the
    /// contract notification `start` is sent.
    pub async fn platform_subscribe(
        &self,
        contract_id: &str,
        scopes: &[&str],
    ) -> anyhow::Result<()> {
        {
            let mut st = self.lock();
            anyhow::ensure!(
                st.contracts.contains_key(contract_id),
                "unknown contract {contract_id}"
            );
            let scopes = if scopes.is_empty() {
                ALL_SCOPES
            } else {
                scopes
            };
            st.platform.subscriptions.insert(
                contract_id.to_string(),
                Subscription {
                    active: true,
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    stock_changes: true,
                },
            );
        }
        self.notify_contract(contract_id, "start").await;
        Ok(())
    }

    /// A contract event (`end`, `force-stop`, `cancel-force-stop`, `start`,
    /// `change-plan`…): the contract's tokens stop working on `end` and
    /// `force-stop`, and the notification is sent.
    pub async fn platform_contract_event(
        &self,
        contract_id: &str,
        action: &str,
    ) -> anyhow::Result<()> {
        {
            let mut st = self.lock();
            let sub = st
                .platform
                .subscriptions
                .get_mut(contract_id)
                .ok_or_else(|| anyhow::anyhow!("{contract_id} has not installed the app"))?;
            match action {
                "end" | "force-stop" => sub.active = false,
                "start" | "cancel-force-stop" => sub.active = true,
                _ => {}
            }
            if matches!(action, "end" | "force-stop") {
                st.platform
                    .tokens
                    .retain(|_, t| t.contract_id != contract_id);
            }
        }
        self.notify_contract(contract_id, action).await;
        Ok(())
    }

    pub fn set_stock_changes_available(&self, contract_id: &str, available: bool) {
        if let Some(s) = self.lock().platform.subscriptions.get_mut(contract_id) {
            s.stock_changes = available;
        }
    }

    pub fn set_webhook_faults(&self, faults: WebhookFaults) {
        self.lock().platform.faults = faults;
    }

    /// Sends the held deliveries, newest first, and stops holding.
    pub async fn release_webhooks(&self) {
        let held = {
            let mut st = self.lock();
            st.platform.faults.hold = false;
            std::mem::take(&mut st.platform.held)
        };
        for o in held.into_iter().rev() {
            self.send_webhook(o).await;
        }
    }

    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().platform.deliveries.clone()
    }

    /// Calls of the contract answered 429 so far.
    pub fn platform_throttled(&self, contract_id: &str) -> u32 {
        self.lock()
            .platform
            .throttled
            .get(contract_id)
            .copied()
            .unwrap_or(0)
    }

    /// Calls answered so far: token calls and API calls (throttled ones too).
    pub fn platform_calls(&self) -> (u64, u64) {
        let st = self.lock();
        (st.platform.token_calls, st.platform.api_calls)
    }

    async fn notify_contract(&self, contract_id: &str, action: &str) {
        let (url, body, client_id) = {
            let st = self.lock();
            let Some(url) = st.platform.notify_url.clone() else {
                return;
            };
            let client_id = st.config.platform.client_id.clone();
            let body = json!({
                "contractId": contract_id,
                "event": "AppSubscription",
                "action": action,
                "date": st.clock.now_jst().format("%Y-%m-%d").to_string(),
                "clientId": client_id,
                "plan": {"trial_days": "0", "price": "0", "unit_price": "0", "quantity": "1", "name": "スタンダード"},
                "options": [],
            });
            (url, body, client_id)
        };
        let _ = client_id;
        let r = self
            .http
            .post(&url)
            .header("Smaregi-Event", "AppSubscription")
            .header("Smaregi-Contract-Id", contract_id)
            .json(&body)
            .send()
            .await;
        if let Err(e) = r {
            tracing::info!(error = %e, "contract notification not delivered");
        }
    }

    pub(super) async fn deliver_webhooks(&self, out: Vec<Outgoing>) {
        for o in out {
            let copies = {
                let mut st = self.lock();
                let f = &mut st.platform.faults;
                if f.hold {
                    st.platform.held.push(o);
                    continue;
                }
                if f.drop_next > 0 {
                    f.drop_next -= 1;
                    let log = delivery(&o, None, "dropped");
                    st.platform.deliveries.push(log);
                    continue;
                }
                if f.duplicate_next > 0 {
                    f.duplicate_next -= 1;
                    vec![o.clone_webhook(None), o]
                } else if f.redeliver_next > 0 {
                    f.redeliver_next -= 1;
                    let fresh = uuid::Uuid::new_v4().to_string();
                    vec![o.clone_webhook(None), o.clone_webhook(Some(fresh))]
                } else {
                    vec![o]
                }
            };
            for c in copies {
                self.send_webhook(c).await;
            }
        }
    }

    /// One attempt, never retried.
    async fn send_webhook(&self, o: Outgoing) {
        let timeout = self.lock().config.platform.webhook_timeout_ms;
        let mut req = self
            .http
            .post(&o.url)
            .timeout(StdDuration::from_millis(timeout))
            .header("content-type", "application/json")
            .body(o.body.clone());
        for (k, v) in &o.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let (status, outcome) = match req.send().await {
            Ok(r) if r.status().is_success() => {
                (Some(r.status().as_u16()), "delivered".to_string())
            }
            Ok(r) => (
                Some(r.status().as_u16()),
                format!("failed: HTTP {}", r.status().as_u16()),
            ),
            Err(e) => (None, format!("failed: {e}")),
        };
        let log = delivery(&o, status, &outcome);
        self.lock().platform.deliveries.push(log);
    }
}

impl Outgoing {
    fn clone_webhook(&self, fresh_event_id: Option<String>) -> Outgoing {
        let event_id = fresh_event_id.or_else(|| self.event_id.clone());
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| {
                if k == "smaregi-event-id" {
                    (k.clone(), event_id.clone().unwrap_or_default())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        Outgoing {
            contract_id: self.contract_id.clone(),
            url: self.url.clone(),
            body: self.body.clone(),
            headers,
            resend_of: None,
            event_id,
        }
    }
}

fn delivery(o: &Outgoing, http_status: Option<u16>, outcome: &str) -> WebhookDelivery {
    WebhookDelivery {
        event_id: o.event_id.clone().unwrap_or_default(),
        contract_id: o.contract_id.clone(),
        url: o.url.clone(),
        body: o.body.clone(),
        headers: o.headers.clone(),
        http_status,
        outcome: outcome.to_string(),
    }
}

/// The `pos:stock` webhook of history rows just written, if the app has a
/// webhook endpoint and the contract has the app.
pub(super) fn webhooks_for(
    st: &mut SmState,
    contract_id: &str,
    rows: &[StockHistoryRow],
    action: &str,
) -> Vec<Outgoing> {
    let Some((url, custom)) = st.platform.webhook.clone() else {
        return Vec::new();
    };
    if rows.is_empty()
        || !st
            .platform
            .subscriptions
            .get(contract_id)
            .is_some_and(|s| s.active)
    {
        return Vec::new();
    }
    let event_id = uuid::Uuid::new_v4().to_string();
    let ids: Vec<Value> = rows
        .iter()
        .map(|r| json!({"id": r.id.to_string(), "productId": r.product_id, "storeId": r.store_id}))
        .collect();
    let body =
        json!({"contractId": contract_id, "event": "pos:stock", "action": action, "ids": ids});
    let mut headers = vec![
        ("smaregi-event".to_string(), "pos:stock".to_string()),
        ("smaregi-event-id".to_string(), event_id.clone()),
        ("smaregi-contract-id".to_string(), contract_id.to_string()),
        ("user-agent".to_string(), USER_AGENT.to_string()),
    ];
    headers.extend(custom);
    vec![Outgoing {
        contract_id: contract_id.to_string(),
        url,
        body: body.to_string(),
        headers,
        resend_of: None,
        event_id: Some(event_id),
    }]
}

/// The `pos:stock` an old-API write fires under the other reading of c617.
pub(super) fn old_api_echoes(
    st: &mut SmState,
    contract_id: &str,
    rows: &[StockHistoryRow],
) -> Vec<Outgoing> {
    if !st.config.platform.old_api_writes_fire_webhook {
        return Vec::new();
    }
    webhooks_for(st, contract_id, rows, "edited")
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

pub(super) fn routes() -> Router<SmaregiSim> {
    Router::new()
        .route("/app/{contract}/token", post(token))
        .route("/{contract}/pos/stock", get(get_stock))
        .route(
            "/{contract}/pos/stock/changes/{product}/{store}",
            get(get_changes),
        )
        .route("/{contract}/pos/stock/{product}", patch(patch_stock))
        .route("/{contract}/pos/stock/{product}/add", post(add_stock))
        .route("/_sim/platform/subscribe", post(ctl_subscribe))
        .route("/_sim/platform/contract_event", post(ctl_contract_event))
        .route("/_sim/platform/webhook", post(ctl_webhook))
        .route("/_sim/platform/notification", post(ctl_notification))
        .route("/_sim/platform/faults", post(ctl_faults))
        .route("/_sim/platform/release", post(ctl_release))
        .route("/_sim/platform/deliveries", get(ctl_deliveries))
}

/// The reference's two "not found" details (ops/patchstockproductid; moriuchi).
const NO_SUCH_ID: &str = "指定されたIDのリソースが見つかりません";
const NO_SUCH_STORE: &str = "指定された店舗IDのリソースが見つかりません";

/// RFC 7807 body as the reference quotes it.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let title = match status.as_u16() {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        429 => "Too Many Requests",
        _ => "Internal Server Error",
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": "about:blank", "title": title, "detail": detail, "status": status.as_u16()})
            .to_string(),
    )
        .into_response()
}

/// RFC 6749 §5.2: 401 for a client that failed to authenticate, 400 for the rest.
fn oauth_error(error: &str, description: &str) -> Response {
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    scope: String,
}

async fn token(
    State(sim): State<SmaregiSim>,
    Path(contract): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: TokenForm = match serde_urlencoded::from_str(&body) {
        Ok(f) => f,
        Err(_) => return oauth_error("invalid_request", "the body is not a form"),
    };
    let mut st = sim.lock();
    st.platform.token_calls += 1;
    let cfg = st.config.platform.clone();
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", cfg.client_id, cfg.client_secret));
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Basic {expected}") {
        return oauth_error("invalid_client", "Client authentication failed");
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form || form.grant_type != "client_credentials" {
        return oauth_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if let Err(r) = take(&mut st, &contract, Class::Read) {
        return r;
    }
    let Some(sub) = st
        .platform
        .subscriptions
        .get(&contract)
        .filter(|s| s.active)
    else {
        return oauth_error("invalid_client", "the contract has not installed the app");
    };
    let wanted: BTreeSet<String> = form.scope.split_whitespace().map(str::to_string).collect();
    let granted: BTreeSet<String> = wanted.intersection(&sub.scopes).cloned().collect();
    let access_token = format!("pt-{}", uuid::Uuid::new_v4().simple());
    let expires = st.clock.now_jst() + Duration::seconds(cfg.token_ttl_secs);
    let scope = granted.iter().cloned().collect::<Vec<_>>().join(" ");
    st.platform.tokens.insert(
        access_token.clone(),
        Issued {
            contract_id: contract,
            scopes: granted,
            expires,
        },
    );
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": cfg.token_ttl_secs,
        "scope": scope,
    }))
    .into_response()
}

/// Token bucket per contract and class; a throttled call is answered 429 with
/// `Retry-After`, and too many of them lead to refusal when configured.
fn take(st: &mut SmState, contract: &str, class: Class) -> Result<(), Response> {
    let cfg = &st.config.platform;
    let rate = f64::from(match class {
        Class::Read => cfg.reads_per_sec,
        Class::Write => cfg.writes_per_sec,
    })
    .max(0.001);
    if let Some(limit) = cfg.refuse_after_throttles
        && st.platform.throttled.get(contract).copied().unwrap_or(0) >= limit
    {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "リクエスト制限の超過が続いたため利用を停止しています",
        ));
    }
    let now = Instant::now();
    let bucket = st
        .platform
        .buckets
        .entry((contract.to_string(), class))
        .or_insert(Bucket {
            tokens: rate,
            at: now,
        });
    bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        return Ok(());
    }
    let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
    *st.platform
        .throttled
        .entry(contract.to_string())
        .or_default() += 1;
    let mut r = problem(
        StatusCode::TOO_MANY_REQUESTS,
        "リクエスト数が上限を超えました。しばらく待ってから再度お試しください",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        wait.to_string().parse().expect("digits"),
    );
    Err(r)
}

fn authorize(
    st: &mut SmState,
    contract: &str,
    headers: &HeaderMap,
    scope: &str,
    class: Class,
) -> Result<(), Response> {
    st.platform.api_calls += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let now = st.clock.now_jst();
    let Some(issued) = st.platform.tokens.get(bearer) else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "アクセストークンが不正です",
        ));
    };
    if issued.expires <= now {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "アクセストークンの有効期限が切れています",
        ));
    }
    if issued.contract_id != contract {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "アクセストークンが不正です",
        ));
    }
    if !issued.scopes.contains(scope) {
        return Err(problem(StatusCode::FORBIDDEN, "スコープが不足しています"));
    }
    take(st, contract, class)
}

type Q = Query<BTreeMap<String, String>>;

fn paging(q: &BTreeMap<String, String>) -> Result<(usize, usize), Response> {
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                problem(
                    StatusCode::BAD_REQUEST,
                    "limitは1から1000の範囲で指定してください",
                )
            })?,
    };
    let page = match q.get("page") {
        None => 1,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| problem(StatusCode::BAD_REQUEST, "pageは1以上で指定してください"))?,
    };
    Ok((limit, page))
}

fn parse_tzd(name: &str, v: &str) -> Result<NaiveDateTime, Response> {
    DateTime::<FixedOffset>::parse_from_rfc3339(v)
        .ok()
        .filter(|_| v.len() == 25)
        .map(|t| {
            t.with_timezone(&FixedOffset::east_opt(9 * 3600).expect("JST"))
                .naive_local()
        })
        .ok_or_else(|| {
            problem(
                StatusCode::BAD_REQUEST,
                &format!("{name}はYYYY-MM-DDThh:mm:ssTZD形式で指定してください"),
            )
        })
}

/// `fields`, `sort` and paging over string-valued rows.
fn shape_rows(
    mut rows: Vec<BTreeMap<&'static str, Value>>,
    q: &BTreeMap<String, String>,
    known: &[&'static str],
    default_sort: &[&'static str],
) -> Result<Vec<Value>, Response> {
    let (limit, page) = paging(q)?;
    let mut sort: Vec<(String, bool)> = Vec::new();
    if let Some(s) = q.get("sort") {
        for part in s.split(',') {
            let (field, desc) = match part.trim().split_once(':') {
                Some((f, "desc")) => (f, true),
                Some((f, "asc")) | Some((f, "")) => (f, false),
                Some(_) => return Err(problem(StatusCode::BAD_REQUEST, "sortの指定が不正です")),
                None => (part.trim(), false),
            };
            if !known.contains(&field) {
                return Err(problem(StatusCode::BAD_REQUEST, "sortの指定が不正です"));
            }
            sort.push((field.to_string(), desc));
        }
    }
    sort.extend(default_sort.iter().map(|f| (f.to_string(), false)));
    rows.sort_by(|a, b| {
        for (f, desc) in &sort {
            let x = a.get(f.as_str()).and_then(Value::as_str);
            let y = b.get(f.as_str()).and_then(Value::as_str);
            let o = match (x, y) {
                (Some(x), Some(y)) => compare_values(x, y),
                (x, y) => x.cmp(&y),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let fields: Option<Vec<&str>> = q
        .get("fields")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.split(',').map(str::trim).collect());
    if let Some(fs) = &fields
        && let Some(bad) = fs.iter().find(|f| !known.contains(f))
    {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            &format!("fieldsに存在しない項目が指定されています({bad})"),
        ));
    }
    Ok(rows
        .into_iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|r| {
            let m: serde_json::Map<String, Value> = r
                .into_iter()
                .filter(|(k, _)| fields.as_ref().is_none_or(|fs| fs.contains(k)))
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            Value::Object(m)
        })
        .collect())
}

const STOCK_FIELDS: &[&str] = &[
    "storeId",
    "productId",
    "stockAmount",
    "layawayStockAmount",
    "updDateTime",
];

async fn get_stock(
    State(sim): State<SmaregiSim>,
    Path(contract): Path<String>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let mut st = sim.lock();
    if let Err(r) = authorize(&mut st, &contract, &headers, "pos.stock:read", Class::Read) {
        return r;
    }
    let window = match (q.get("upd_date_time-from"), q.get("upd_date_time-to")) {
        (None, None) => None,
        (Some(f), Some(t)) => {
            let from = match parse_tzd("upd_date_time-from", f) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let to = match parse_tzd("upd_date_time-to", t) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let days = st.config.platform.max_window_days;
            if to < from || to - from > Duration::days(days) {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "upd_date_time-fromとupd_date_time-toの期間は{days}日以内で指定してください"
                    ),
                );
            }
            Some((from, to))
        }
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "upd_date_time-fromとupd_date_time-toは両方指定してください",
            );
        }
    };
    let Some(c) = st.contracts.get(&contract) else {
        return problem(StatusCode::NOT_FOUND, NO_SUCH_ID);
    };
    let rows: Vec<BTreeMap<&'static str, Value>> = c
        .stock
        .iter()
        .filter(|((s, p), (_, upd))| {
            q.get("store_id").is_none_or(|w| w == s)
                && q.get("product_id").is_none_or(|w| w == p)
                && window.is_none_or(|(f, t)| *upd >= f && *upd <= t)
        })
        .map(|((s, p), (amount, upd))| {
            BTreeMap::from([
                ("storeId", json!(s)),
                ("productId", json!(p)),
                ("stockAmount", json!(amount.to_string())),
                ("layawayStockAmount", json!("0")),
                ("updDateTime", json!(fmt_tzd(*upd))),
            ])
        })
        .collect();
    match shape_rows(rows, &q, STOCK_FIELDS, &["productId", "storeId"]) {
        Ok(rows) => Json(Value::Array(rows)).into_response(),
        Err(r) => r,
    }
}

const CHANGE_FIELDS: &[&str] = &[
    "id",
    "updDateTime",
    "targetDateTime",
    "productId",
    "storeId",
    "amount",
    "stockAmount",
    "layawayStockAmount",
    "stockDivision",
    "fromStoreId",
    "toStoreId",
    "memo",
];

async fn get_changes(
    State(sim): State<SmaregiSim>,
    Path((contract, product, store)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let mut st = sim.lock();
    if let Err(r) = authorize(
        &mut st,
        &contract,
        &headers,
        "pos.stock-changes:read",
        Class::Read,
    ) {
        return r;
    }
    if !st
        .platform
        .subscriptions
        .get(&contract)
        .is_some_and(|s| s.stock_changes)
    {
        return problem(
            StatusCode::FORBIDDEN,
            "ご契約のプランでは在庫変動履歴を利用できません",
        );
    }
    let Some(c) = st.contracts.get(&contract) else {
        return problem(StatusCode::NOT_FOUND, NO_SUCH_ID);
    };
    if !c.products.contains_key(&product) {
        return problem(StatusCode::NOT_FOUND, NO_SUCH_ID);
    }
    if !c.stores.contains_key(&store) {
        return problem(StatusCode::NOT_FOUND, NO_SUCH_STORE);
    }
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let rows: Vec<BTreeMap<&'static str, Value>> = c
        .history
        .iter()
        .filter(|h| {
            h.product_id == product
                && h.store_id == store
                && q.get("id").is_none_or(|id| *id == h.id.to_string())
                && q.get("stock_division")
                    .is_none_or(|d| *d == h.stock_division)
        })
        .map(|h| {
            let tzd = |t: &str| {
                NaiveDateTime::parse_from_str(t, crate::common::DATETIME_FMT)
                    .map(fmt_tzd)
                    .unwrap_or_default()
            };
            BTreeMap::from([
                ("id", json!(h.id.to_string())),
                ("updDateTime", json!(tzd(&h.upd_date_time))),
                ("targetDateTime", json!(tzd(&h.target_date_time))),
                ("productId", json!(h.product_id)),
                ("storeId", json!(h.store_id)),
                ("amount", json!(h.amount.to_string())),
                ("stockAmount", json!(h.stock_amount.to_string())),
                ("layawayStockAmount", json!("0")),
                ("stockDivision", json!(h.stock_division)),
                ("fromStoreId", opt(&h.from_store_id)),
                ("toStoreId", opt(&h.to_store_id)),
                ("memo", opt(&h.memo)),
            ])
        })
        .collect();
    let mut q = q;
    if !st.config.platform.changes_sort_honoured {
        q.remove("sort");
    }
    match shape_rows(rows, &q, CHANGE_FIELDS, &["id"]) {
        Ok(rows) => Json(Value::Array(rows)).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct WriteBody {
    #[serde(rename = "storeId")]
    store_id: Option<Value>,
    #[serde(rename = "stockAmount")]
    stock_amount: Option<Value>,
    #[serde(rename = "stockHistory")]
    stock_history: Option<WriteHistory>,
}

#[derive(Deserialize)]
struct WriteHistory {
    memo: Option<String>,
}

async fn patch_stock(
    State(sim): State<SmaregiSim>,
    Path((contract, product)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    write(sim, contract, product, headers, body, false).await
}

async fn add_stock(
    State(sim): State<SmaregiSim>,
    Path((contract, product)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    write(sim, contract, product, headers, body, true).await
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn write(
    sim: SmaregiSim,
    contract: String,
    product: String,
    headers: HeaderMap,
    body: String,
    relative: bool,
) -> Response {
    let (resp, out) = {
        let mut st = sim.lock();
        if let Err(r) = authorize(
            &mut st,
            &contract,
            &headers,
            "pos.stock:write",
            Class::Write,
        ) {
            return r;
        }
        let Ok(b) = serde_json::from_str::<WriteBody>(&body) else {
            return problem(StatusCode::BAD_REQUEST, "リクエストボディが不正です");
        };
        let Some(store) = b
            .store_id
            .as_ref()
            .and_then(text_of)
            .filter(|s| s.len() <= 15)
        else {
            return problem(
                StatusCode::BAD_REQUEST,
                "storeIdは15文字以内で指定してください",
            );
        };
        let max: i64 = if relative { 1_999_999_998 } else { 999_999_999 };
        let Some(amount) = b
            .stock_amount
            .as_ref()
            .and_then(text_of)
            .and_then(|a| a.parse::<i64>().ok())
            .filter(|a| (-max..=max).contains(a))
        else {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("stockAmountは-{max}から{max}の範囲で指定してください"),
            );
        };
        let memo = b.stock_history.and_then(|h| h.memo);
        if memo.as_ref().is_some_and(|m| m.chars().count() > 100) {
            return problem(
                StatusCode::BAD_REQUEST,
                "memoは100文字以内で指定してください",
            );
        }
        let now = st.clock.now_jst();
        let division = st.config.platform.write_division.clone();
        let fire_push = st.config.platform.platform_writes_fire_push;
        let Some(c) = st.contracts.get_mut(&contract) else {
            return problem(StatusCode::NOT_FOUND, NO_SUCH_ID);
        };
        if !c.products.contains_key(&product) {
            return problem(StatusCode::NOT_FOUND, NO_SUCH_ID);
        }
        if !c.stores.contains_key(&store) {
            return problem(StatusCode::BAD_REQUEST, NO_SUCH_STORE);
        }
        let current = c
            .stock
            .get(&(store.clone(), product.clone()))
            .map(|(a, _)| *a)
            .unwrap_or(0);
        let change = if relative {
            if !(-999_999_999..=999_999_999).contains(&(current + amount)) {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "在庫数が-999999999から999999999の範囲を超えます",
                );
            }
            Change::Relative(amount)
        } else {
            Change::Absolute(amount)
        };
        let mut row = apply_change(c, now, &store, &product, change, &division, None, None);
        row.memo = memo.clone();
        if let Some(last) = c.history.last_mut() {
            last.memo = memo.clone();
        }
        let mut out = if fire_push {
            pushes_for(c, &contract, std::slice::from_ref(&row))
        } else {
            Vec::new()
        };
        out.extend(webhooks_for(
            &mut st,
            &contract,
            std::slice::from_ref(&row),
            "edited",
        ));
        let resp = json!({
            "productId": product,
            "storeId": store,
            "stockAmount": row.stock_amount.to_string(),
            "updDateTime": fmt_tzd(now),
            "stockHistory": {"id": row.id.to_string(), "memo": memo},
        });
        (resp, out)
    };
    sim.deliver(out).await;
    Json(resp).into_response()
}

// ---------------------------------------------------------------------------
// Control API
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct SubscribeBody {
    contract_id: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    stock_changes: Option<bool>,
}

async fn ctl_subscribe(State(sim): State<SmaregiSim>, Json(b): Json<SubscribeBody>) -> Response {
    let scopes: Vec<&str> = b.scopes.iter().map(String::as_str).collect();
    match sim.platform_subscribe(&b.contract_id, &scopes).await {
        Ok(()) => {
            if let Some(available) = b.stock_changes {
                sim.set_stock_changes_available(&b.contract_id, available);
            }
            Json(json!({"ok": true})).into_response()
        }
        Err(e) => super::ctl_err(e),
    }
}

#[derive(Deserialize)]
struct ContractEventBody {
    contract_id: String,
    action: String,
}

async fn ctl_contract_event(
    State(sim): State<SmaregiSim>,
    Json(b): Json<ContractEventBody>,
) -> Response {
    match sim.platform_contract_event(&b.contract_id, &b.action).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => super::ctl_err(e),
    }
}

#[derive(Deserialize)]
struct UrlBody {
    url: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

async fn ctl_webhook(State(sim): State<SmaregiSim>, Json(b): Json<UrlBody>) -> Json<Value> {
    let headers: Vec<(&str, &str)> = b
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sim.configure_platform_webhook(b.url.as_deref(), &headers);
    Json(json!({"ok": true}))
}

async fn ctl_notification(State(sim): State<SmaregiSim>, Json(b): Json<UrlBody>) -> Json<Value> {
    sim.configure_contract_notification(b.url.as_deref());
    Json(json!({"ok": true}))
}

async fn ctl_faults(State(sim): State<SmaregiSim>, Json(f): Json<WebhookFaults>) -> Json<Value> {
    sim.set_webhook_faults(f);
    Json(json!({"ok": true}))
}

async fn ctl_release(State(sim): State<SmaregiSim>) -> Json<Value> {
    sim.release_webhooks().await;
    Json(json!({"ok": true}))
}

async fn ctl_deliveries(State(sim): State<SmaregiSim>) -> Json<Value> {
    Json(json!(sim.webhook_deliveries()))
}
