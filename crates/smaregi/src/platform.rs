//! Client of the スマレジ・プラットフォームAPI for the stock intake: the app's
//! token per contract (client credentials, cached until shortly before it
//! expires, never logged), `GET /pos/stock` for which pairs changed,
//! `GET /pos/stock/changes/{p}/{s}` for the changes themselves, and
//! `POST /pos/stock/{p}/add`. Every call waits for the contract's turn (reads
//! and writes are counted apart, as Smaregi does), a 429 waits its
//! `Retry-After`, and problem+json errors become [`SmaregiError`]s: 401/403 as
//! refused credentials, like the old API's auth codes (reference
//! smaregi-platform-api.md §1, §3, §5).

use crate::client::{int, invalid, non_empty, parse_id};
use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, NaiveDateTime};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use sne_domain::time::parse_push_time;
use sne_domain::{ChangeKind, ChangeRow, ProductId, StockDivision, StoreId};
use sne_ports::RetryPolicy;
use sne_ports::platform::{ChangedPair, SmaregiPlatformApi};
use sne_ports::rate::{ApiRateLimit, RateLimits};
use sne_ports::smaregi::SmaregiError;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const DEFAULT_ID_URL: &str = "https://id.smaregi.jp";
pub const DEFAULT_API_URL: &str = "https://api.smaregi.jp";

/// What the intake reads, and the one write it may make.
pub const SCOPES: &[&str] = &[
    "pos.stock:read",
    "pos.stock-changes:read",
    "pos.products:read",
    "pos.stores:read",
    "pos.stock:write",
];

/// The API's largest page.
const PAGE_LIMIT: usize = 1000;
/// `GET /stock` windows: 31 days is the cap; 30 stays inside it whether
/// Smaregi counts the end inclusively or not.
const WINDOW_DAYS: i64 = 30;
/// A token is renewed this long before it expires (a production client's
/// choice, reference §1), or halfway through a shorter life.
const TOKEN_RENEW_LEAD: Duration = Duration::from_secs(300);
/// Longest `Retry-After` honoured in one wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct PlatformAppConfig {
    /// The token host (`https://id.smaregi.jp`, sandbox `https://id.smaregi.dev`).
    pub id_url: String,
    /// The API host (`https://api.smaregi.jp`, sandbox `https://api.smaregi.dev`).
    pub api_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Calls a second per contract. The reference's production figures are 50
    /// reads and 20 writes; the sandbox's 10 and 4 are what a production
    /// integration defaults to, and what this client does.
    pub reads_per_second: u32,
    pub writes_per_second: u32,
    pub retry: RetryPolicy,
    /// 429 answers waited out per call before giving up.
    pub max_throttle_waits: u32,
    pub timeout: Duration,
}

impl std::fmt::Debug for PlatformAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformAppConfig")
            .field("id_url", &self.id_url)
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl PlatformAppConfig {
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        PlatformAppConfig {
            id_url: DEFAULT_ID_URL.into(),
            api_url: DEFAULT_API_URL.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            reads_per_second: 10,
            writes_per_second: 4,
            retry: RetryPolicy::default(),
            max_throttle_waits: 5,
            timeout: Duration::from_secs(30),
        }
    }
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

pub struct PlatformClient {
    http: reqwest::Client,
    config: PlatformAppConfig,
    tokens: Mutex<HashMap<String, CachedToken>>,
    reads: ApiRateLimit,
    writes: ApiRateLimit,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Read,
    Write,
}

fn limiter(per_second: u32) -> ApiRateLimit {
    ApiRateLimit::new(RateLimits {
        per_tenant: NonZeroU32::new(per_second),
        per_process: None,
    })
}

fn transport(e: impl std::fmt::Display) -> SmaregiError {
    SmaregiError::Transport(e.to_string())
}

/// `YYYY-MM-DDThh:mm:ssTZD` in Japan time.
fn tzd(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+09:00").to_string()
}

impl PlatformClient {
    pub fn new(config: PlatformAppConfig) -> Result<Self, SmaregiError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(transport)?;
        Ok(PlatformClient {
            http,
            reads: limiter(config.reads_per_second),
            writes: limiter(config.writes_per_second),
            tokens: Mutex::new(HashMap::new()),
            config,
        })
    }

    async fn token(&self, contract: &str) -> Result<String, SmaregiError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(contract)
            && Instant::now() < t.renew_at
        {
            return Ok(t.token.clone());
        }
        let url = format!(
            "{}/app/{contract}/token",
            self.config.id_url.trim_end_matches('/')
        );
        let scope = SCOPES.join(" ");
        let mut throttled = 0;
        let (status, body) = loop {
            // Token calls count against the contract's limit too, and are
            // throttled like any other call.
            self.reads.until_ready(contract).await;
            let response = self
                .http
                .post(&url)
                .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
                .form(&[("grant_type", "client_credentials"), ("scope", &scope)])
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            let wait = retry_after(&response);
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == StatusCode::TOO_MANY_REQUESTS && throttled < self.config.max_throttle_waits
            {
                throttled += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            break (status, body);
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SmaregiError::Api {
                code: "429".into(),
                message: "token call throttled".into(),
            });
        }
        if !status.is_success() {
            let code = body["error"]
                .as_str()
                .unwrap_or("token_refused")
                .to_string();
            return Err(SmaregiError::Auth {
                message: format!("token refused (HTTP {})", status.as_u16()),
                code,
            });
        }
        let token = body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("token answer without access_token"))?
            .to_string();
        let life = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        let lead = TOKEN_RENEW_LEAD.min(life / 2);
        tokens.insert(
            contract.to_string(),
            CachedToken {
                token: token.clone(),
                renew_at: Instant::now() + life - lead,
            },
        );
        Ok(token)
    }

    async fn forget_token(&self, contract: &str) {
        self.tokens.lock().await.remove(contract);
    }

    /// One call with the contract's token: waits its turn, waits out 429s,
    /// renews a refused token once, retries transport failures and 5xx of
    /// reads (a write is not retried: `add` is not idempotent).
    async fn call(
        &self,
        contract: &str,
        class: Class,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Value), SmaregiError> {
        let limiter = if class == Class::Read {
            &self.reads
        } else {
            &self.writes
        };
        let mut throttled = 0;
        let mut renewed = false;
        let mut attempt = 1;
        loop {
            limiter.until_ready(contract).await;
            let token = self.token(contract).await?;
            let sent = build(&self.http, &token).bearer_auth(&token).send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if class == Class::Read && attempt < self.config.retry.attempts() => {
                    tokio::time::sleep(self.config.retry.delay(attempt)).await;
                    attempt += 1;
                    tracing::debug!(error = %e, "Platform API unreachable; retrying");
                    continue;
                }
                Err(e) => return Err(transport(e)),
            };
            let status = response.status();
            let wait = retry_after(&response);
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == StatusCode::TOO_MANY_REQUESTS && throttled < self.config.max_throttle_waits
            {
                throttled += 1;
                tracing::info!(
                    contract,
                    wait_s = wait.as_secs(),
                    "Platform API throttled; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !renewed {
                renewed = true;
                self.forget_token(contract).await;
                continue;
            }
            if status.is_server_error()
                && class == Class::Read
                && attempt < self.config.retry.attempts()
            {
                tokio::time::sleep(self.config.retry.delay(attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok((status, body));
        }
    }

    fn url(&self, contract: &str, path: &str) -> String {
        format!(
            "{}/{contract}/pos{path}",
            self.config.api_url.trim_end_matches('/')
        )
    }

    async fn get_rows(
        &self,
        contract: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Map<String, Value>>, SmaregiError> {
        let url = self.url(contract, path);
        let (status, body) = self
            .call(contract, Class::Read, |http, _| http.get(&url).query(query))
            .await?;
        if !status.is_success() {
            return Err(problem_error(status, &body));
        }
        let Value::Array(rows) = body else {
            return Err(invalid(format!("{path}: the answer is not a list")));
        };
        rows.into_iter()
            .map(|r| match r {
                Value::Object(m) => Ok(m),
                _ => Err(invalid(format!("{path}: a row is not an object"))),
            })
            .collect()
    }

    /// The pairs of one window, as one page when they fit: page numbers shift
    /// when a row leaves the window mid-way (its stock changed again), so a
    /// full page halves the window instead of turning it; only a window of one
    /// second is paged.
    async fn pairs_in(
        &self,
        contract: &str,
        from: NaiveDateTime,
        to: NaiveDateTime,
        out: &mut Vec<ChangedPair>,
    ) -> Result<(), SmaregiError> {
        let mut pending = vec![(from, to)];
        while let Some((from, to)) = pending.pop() {
            let one_second = to - from <= ChronoDuration::seconds(1);
            let mut page = 1;
            loop {
                let query = [
                    ("upd_date_time-from", tzd(from)),
                    ("upd_date_time-to", tzd(to)),
                    ("fields", "productId,storeId,updDateTime".into()),
                    ("sort", "productId,storeId".into()),
                    ("limit", PAGE_LIMIT.to_string()),
                    ("page", page.to_string()),
                ];
                let rows = self.get_rows(contract, "/stock", &query).await?;
                let full = rows.len() >= PAGE_LIMIT;
                if full && !one_second {
                    let mid = from + (to - from) / 2;
                    pending.push((from, mid));
                    pending.push((mid, to));
                    break;
                }
                for r in &rows {
                    out.push(ChangedPair {
                        product_id: non_empty(r, "productId")
                            .ok_or_else(|| invalid("stock row without productId"))?
                            .into(),
                        store_id: non_empty(r, "storeId")
                            .ok_or_else(|| invalid("stock row without storeId"))?
                            .into(),
                        updated_at: non_empty(r, "updDateTime").and_then(|t| parse_push_time(&t)),
                    });
                }
                if !full {
                    break;
                }
                page += 1;
            }
        }
        Ok(())
    }
}

/// How long a 429 asks to wait (whole seconds), at least one second and at
/// most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Duration {
    let secs = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(secs.max(1)).min(MAX_RETRY_AFTER)
}

/// A problem+json answer as the same errors the old API's client returns.
fn problem_error(status: StatusCode, body: &Value) -> SmaregiError {
    let title = body["title"].as_str().unwrap_or("");
    let detail = body["detail"].as_str().unwrap_or("");
    let message = match (title, detail) {
        ("", "") => format!("HTTP {}", status.as_u16()),
        (t, "") => t.to_string(),
        ("", d) => d.to_string(),
        (t, d) => format!("{t}: {d}"),
    };
    let code = status.as_u16().to_string();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        SmaregiError::Auth { code, message }
    } else {
        SmaregiError::Api { code, message }
    }
}

fn change_row(r: &Map<String, Value>) -> Result<ChangeRow, SmaregiError> {
    Ok(ChangeRow {
        store_id: non_empty(r, "storeId")
            .ok_or_else(|| invalid("stock change without storeId"))?
            .into(),
        product_id: non_empty(r, "productId")
            .ok_or_else(|| invalid("stock change without productId"))?
            .into(),
        kind: ChangeKind::History,
        division: non_empty(r, "stockDivision").map(|d| StockDivision::from_code(&d)),
        amount: Some(int(r, "amount")?.ok_or_else(|| invalid("stock change without amount"))?),
        after: int(r, "stockAmount")?,
        changed_at: non_empty(r, "updDateTime").and_then(|t| parse_push_time(&t)),
        history_id: Some(parse_id(r)?),
        from_store_id: non_empty(r, "fromStoreId").map(StoreId::from),
        to_store_id: non_empty(r, "toStoreId").map(StoreId::from),
        layaway_stock_amount: int(r, "layawayStockAmount")?,
    })
}

#[async_trait]
impl SmaregiPlatformApi for PlatformClient {
    async fn check_contract(&self, contract_id: &str) -> Result<(), SmaregiError> {
        self.forget_token(contract_id).await;
        self.token(contract_id).await.map(|_| ())
    }

    async fn changed_pairs(
        &self,
        contract_id: &str,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<ChangedPair>, SmaregiError> {
        let mut out = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + ChronoDuration::days(WINDOW_DAYS)).min(to);
            self.pairs_in(contract_id, start, end, &mut out).await?;
            start = end;
        }
        // Windows meet at their edges and halves overlap by a second.
        let mut seen = BTreeMap::new();
        for p in out {
            let key = (p.product_id.clone(), p.store_id.clone());
            seen.entry(key)
                .and_modify(|e: &mut ChangedPair| e.updated_at = e.updated_at.max(p.updated_at))
                .or_insert(p);
        }
        Ok(seen.into_values().collect())
    }

    async fn pair_changes(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        after_id: u64,
        since: NaiveDateTime,
    ) -> Result<Vec<ChangeRow>, SmaregiError> {
        let path = format!("/stock/changes/{product}/{store}");
        let mut found: BTreeMap<u64, ChangeRow> = BTreeMap::new();
        let mut page = 1;
        loop {
            let query = [
                ("sort", "updDateTime:desc".to_string()),
                ("limit", PAGE_LIMIT.to_string()),
                ("page", page.to_string()),
            ];
            let rows = self.get_rows(contract_id, &path, &query).await?;
            let n = rows.len();
            let rows: Vec<ChangeRow> = rows.iter().map(change_row).collect::<Result<_, _>>()?;
            // Newest first, as asked: new changes arriving while paging only
            // push rows onto the next page again (read twice, kept once). Stop
            // early only when the page really is newest first and has gone
            // past the window; an API that ignored `sort` is read to the end.
            let descending = rows.windows(2).all(|w| w[0].history_id > w[1].history_id);
            let past = rows.last().is_some_and(|r| {
                r.history_id.is_some_and(|id| id <= after_id)
                    || r.changed_at.is_some_and(|t| t < since)
            });
            for r in rows {
                let Some(id) = r.history_id else { continue };
                if id > after_id && r.changed_at.is_none_or(|t| t >= since) {
                    found.insert(id, r);
                }
            }
            if n < PAGE_LIMIT || (descending && past) {
                break;
            }
            page += 1;
        }
        Ok(found.into_values().collect())
    }

    async fn change(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        id: u64,
    ) -> Result<Option<ChangeRow>, SmaregiError> {
        let path = format!("/stock/changes/{product}/{store}");
        match self
            .get_rows(contract_id, &path, &[("id", id.to_string())])
            .await
        {
            Ok(rows) => {
                for r in &rows {
                    let row = change_row(r)?;
                    if row.history_id == Some(id) {
                        return Ok(Some(row));
                    }
                }
                Ok(None)
            }
            // The product or store is gone: the change cannot be read any more.
            Err(SmaregiError::Api { code, .. }) if code == "404" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_stock(
        &self,
        contract_id: &str,
        product: &ProductId,
        store: &StoreId,
        delta: i64,
        memo: &str,
    ) -> Result<u64, SmaregiError> {
        let url = self.url(contract_id, &format!("/stock/{product}/add"));
        let body = json!({
            "storeId": store.as_str(),
            "stockAmount": delta.to_string(),
            "stockHistory": {"memo": memo},
        });
        let (status, answer) = self
            .call(contract_id, Class::Write, |http, _| {
                http.post(&url).json(&body)
            })
            .await?;
        if !status.is_success() {
            return Err(problem_error(status, &answer));
        }
        answer["stockHistory"]["id"]
            .as_str()
            .and_then(|id| id.parse::<u64>().ok())
            .or_else(|| answer["stockHistory"]["id"].as_u64())
            .ok_or_else(|| invalid("stock write without stockHistory.id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_map_to_the_old_apis_error_kinds() {
        let body = json!({"type":"about:blank","title":"Forbidden","detail":"スコープが不足しています","status":403});
        assert!(matches!(
            problem_error(StatusCode::FORBIDDEN, &body),
            SmaregiError::Auth { ref code, ref message } if code == "403" && message.contains("スコープ")
        ));
        let body = json!({"title":"NotFound","detail":"指定されたIDのリソースが見つかりません"});
        assert!(matches!(
            problem_error(StatusCode::NOT_FOUND, &body),
            SmaregiError::Api { ref code, .. } if code == "404"
        ));
        assert!(matches!(
            problem_error(StatusCode::BAD_GATEWAY, &Value::Null),
            SmaregiError::Api { ref message, .. } if message == "HTTP 502"
        ));
    }

    #[test]
    fn change_rows_read_platform_times_and_strings() {
        let Value::Object(r) = json!({"id":"10","productId":"1","storeId":"0","amount":"-2",
            "stockAmount":"3","stockDivision":"02","updDateTime":"2026-12-01T10:00:00+09:00",
            "layawayStockAmount":"0","fromStoreId":null})
        else {
            unreachable!()
        };
        let row = change_row(&r).unwrap();
        assert_eq!(row.history_id, Some(10));
        assert_eq!((row.amount, row.after), (Some(-2), Some(3)));
        assert_eq!(
            row.changed_at.unwrap().format("%F %T").to_string(),
            "2026-12-01 10:00:00"
        );
        let Value::Object(no_amount) = json!({"id":"10","productId":"1","storeId":"0"}) else {
            unreachable!()
        };
        assert!(change_row(&no_amount).is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let c = PlatformAppConfig::new("id", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
