//! The スマレジ・プラットフォームAPI side of the Smaregi simulator, driven over
//! HTTP the way a real client (and a real webhook receiver) would see it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::NaiveDateTime;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sne_simulators::smaregi::platform::{ALL_SCOPES, PlatformConfig, WebhookFaults};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim};

const A: &str = "c1";
const B: &str = "c2";
const P1: &str = "8000001";
const P2: &str = "8000002";
/// Registered but its stock never changes.
const P3: &str = "8000003";
const CLIENT_ID: &str = "sim-client-id";
const SECRET: &str = "sim-client-secret";
const NOT_FOUND: &str = "指定されたIDのリソースが見つかりません";

fn old_token(contract: &str) -> String {
    format!("old-{contract}")
}

/// Rates high enough that only the rate-limit tests are throttled.
fn fast() -> PlatformConfig {
    PlatformConfig {
        reads_per_sec: 1000,
        writes_per_sec: 1000,
        ..PlatformConfig::default()
    }
}

fn config(platform: PlatformConfig) -> SmaregiConfig {
    SmaregiConfig {
        platform,
        ..SmaregiConfig::default()
    }
}

fn add_contract(sim: &SmaregiSim, c: &str) {
    sim.add_contract(c, &old_token(c));
    sim.add_store(c, "1", "本店");
    sim.add_store(c, "2", "支店");
    sim.add_product(c, P1, "ABC-001", "商品1");
    sim.add_product(c, P2, "ABC-002", "商品2");
    sim.add_product(c, P3, "ABC-003", "商品3");
}

/// Contracts A and B, both with the app installed with every scope.
async fn ready_with(config: SmaregiConfig) -> SmaregiSim {
    let sim = SmaregiSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for c in [A, B] {
        add_contract(&sim, c);
        sim.platform_subscribe(c, &[]).await.unwrap();
    }
    sim
}

async fn ready() -> SmaregiSim {
    ready_with(config(fast())).await
}

// --- HTTP helpers ----------------------------------------------------------

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn api(sim: &SmaregiSim, path: &str) -> String {
    format!("{}{path}", sim.platform_api_url())
}

async fn token_call(sim: &SmaregiSim, contract: &str, secret: &str, scope: &str) -> Resp {
    send(
        reqwest::Client::new()
            .post(sim.platform_token_url(contract))
            .basic_auth(CLIENT_ID, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)]),
    )
    .await
}

async fn token(sim: &SmaregiSim, contract: &str, scope: &str) -> String {
    let r = token_call(sim, contract, SECRET, scope).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn full_token(sim: &SmaregiSim, contract: &str) -> String {
    token(sim, contract, &ALL_SCOPES.join(" ")).await
}

async fn get(sim: &SmaregiSim, tok: &str, path: &str, query: &[(&str, &str)]) -> Resp {
    send(
        reqwest::Client::new()
            .get(api(sim, path))
            .bearer_auth(tok)
            .query(query),
    )
    .await
}

async fn get_raw(sim: &SmaregiSim, tok: &str, path_and_query: &str) -> Resp {
    send(
        reqwest::Client::new()
            .get(api(sim, path_and_query))
            .bearer_auth(tok),
    )
    .await
}

async fn patch_stock(sim: &SmaregiSim, tok: &str, c: &str, product: &str, body: Value) -> Resp {
    send(
        reqwest::Client::new()
            .patch(api(sim, &format!("/{c}/pos/stock/{product}")))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

async fn add_stock(sim: &SmaregiSim, tok: &str, c: &str, product: &str, body: Value) -> Resp {
    send(
        reqwest::Client::new()
            .post(api(sim, &format!("/{c}/pos/stock/{product}/add")))
            .bearer_auth(tok)
            .json(&body),
    )
    .await
}

/// The old API (`POST /access/`).
async fn old_call(
    sim: &SmaregiSim,
    contract: &str,
    proc_name: &str,
    params: Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(sim.access_url())
        .header("X_contract_id", contract)
        .header("X_access_token", old_token(contract))
        .form(&[("proc_name", proc_name), ("params", &params.to_string())])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_problem(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{}",
        r.body
    );
    assert_eq!(r.body["type"], "about:blank", "{}", r.body);
    assert!(
        r.body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        r.body
    );
    assert!(
        r.body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status, "{}", r.body);
}

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    rows(v)
        .iter()
        .map(|r| {
            (
                r["productId"].as_str().unwrap().to_string(),
                r["storeId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(p: &str, s: &str) -> (String, String) {
    (p.to_string(), s.to_string())
}

fn ids(v: &Value) -> Vec<String> {
    rows(v)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

const TZD: &str = "%Y-%m-%dT%H:%M:%S+09:00";

/// Checks `YYYY-MM-DDThh:mm:ss+09:00` and returns the local time.
fn parse_tzd(s: &str) -> NaiveDateTime {
    assert_eq!(s.len(), 25, "{s}");
    NaiveDateTime::parse_from_str(s, TZD).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn tzd(t: NaiveDateTime) -> String {
    t.format(TZD).to_string()
}

// --- receivers ---------------------------------------------------------------

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(HeaderMap, String)>>>);

impl Inbox {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn headers(&self, i: usize) -> HeaderMap {
        self.0.lock().unwrap()[i].0.clone()
    }
    fn header(&self, i: usize, name: &str) -> String {
        self.headers(i)
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_string()
    }
    fn raw(&self, i: usize) -> String {
        self.0.lock().unwrap()[i].1.clone()
    }
    fn json(&self, i: usize) -> Value {
        serde_json::from_str(&self.raw(i)).unwrap()
    }
}

/// Records every request on arrival, then waits `delay_ms` and answers
/// `status`.
async fn receiver(status: StatusCode, delay_ms: u64) -> (String, Inbox) {
    let inbox = Inbox::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                move |State(i): State<Inbox>, h: HeaderMap, b: String| async move {
                    i.0.lock().unwrap().push((h, b));
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    status
                },
            ),
        )
        .with_state(inbox.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, inbox)
}

async fn webhook_receiver(sim: &SmaregiSim) -> Inbox {
    let (url, inbox) = receiver(StatusCode::OK, 0).await;
    sim.configure_platform_webhook(Some(&url), &[("x-secret", "s")]);
    inbox
}

fn full_push(url: &str) -> Option<PushConfig> {
    Some(PushConfig {
        url: url.to_string(),
        pairs: vec![("code".into(), "secret".into())],
        pairs_as: PairsAs::Headers,
        shape: PushShape::Full,
        push_api_changes: false,
    })
}

/// The row of an old `stock_send` form body.
fn push_row(form_body: &str) -> Value {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(form_body).unwrap();
    assert!(
        form.iter()
            .any(|(k, v)| k == "proc_name" && v == "stock_send")
    );
    let params = &form.iter().find(|(k, _)| k == "params").unwrap().1;
    let p: Value = serde_json::from_str(params).unwrap();
    p["data"][0]["rows"][0].clone()
}

fn webhook_ids(body: &Value) -> Vec<String> {
    rows(&body["ids"])
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

// --- 1. token endpoint -------------------------------------------------------

#[tokio::test]
async fn token_endpoint_auth_scopes_and_expiry() {
    let ttl = 600;
    let sim = ready_with(config(PlatformConfig {
        token_ttl_secs: ttl,
        ..fast()
    }))
    .await;

    let r = token_call(&sim, A, "wrong-secret", "pos.stock:read").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_client");
    assert!(r.body.get("access_token").is_none());

    // No Authorization header at all.
    let r = send(
        reqwest::Client::new()
            .post(sim.platform_token_url(A))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.get("access_token").is_none());

    // A contract that has not installed the app.
    add_contract(&sim, "c3");
    let r = token_call(&sim, "c3", SECRET, "pos.stock:read").await;
    assert!(r.status >= 400, "{}", r.body);
    assert!(r.body.get("access_token").is_none(), "{}", r.body);

    // Granted = requested ∩ subscribed.
    sim.platform_subscribe(
        "c3",
        &["pos.stock:read", "pos.products:read", "pos.stores:read"],
    )
    .await
    .unwrap();
    let r = token_call(
        &sim,
        "c3",
        SECRET,
        "pos.stock:read pos.stock:write pos.products:read",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut granted: Vec<&str> = r.body["scope"].as_str().unwrap().split(' ').collect();
    granted.sort_unstable();
    assert_eq!(granted, vec!["pos.products:read", "pos.stock:read"]);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], ttl);
    let tok = r.body["access_token"].as_str().unwrap().to_string();
    assert!(!tok.is_empty());

    // The token works, for what it was granted only.
    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = patch_stock(
        &sim,
        &tok,
        "c3",
        P1,
        json!({"storeId":"1","stockAmount":"1"}),
    )
    .await;
    assert_problem(&r, 403);

    // Still valid just before expiry, refused once the TTL has passed.
    sim.advance_clock(ttl - 30);
    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim.advance_clock(30);
    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_problem(&r, 401);

    // A fresh token works again.
    let tok = token(&sim, "c3", "pos.stock:read").await;
    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

// --- 2. GET /pos/stock --------------------------------------------------------

#[tokio::test]
async fn stock_list_rows_filters_window_paging_and_fields() {
    let sim = ready().await;
    // (P1, 1) = 5 at t0; (P2, 2) = -1 at t0 + 1 h; (P2, 1) = 7 at t0 + 2 h.
    sim.set_stock(A, "1", P1, 5).await.unwrap();
    sim.advance_clock(3600);
    sim.sale(A, "2", P2, 1).await.unwrap();
    sim.advance_clock(3600);
    sim.set_stock(A, "1", P2, 7).await.unwrap();
    let tok = full_token(&sim, A).await;
    let path = format!("/{A}/pos/stock");

    let r = get(&sim, &tok, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Default order productId, storeId; never-changed pairs (P3 anywhere,
    // P1 in store 2) are absent.
    assert_eq!(
        pairs(&r.body),
        vec![pair(P1, "1"), pair(P2, "1"), pair(P2, "2")]
    );
    let all = r.body.clone();
    for row in rows(&all) {
        let obj = row.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![
                "layawayStockAmount",
                "productId",
                "stockAmount",
                "storeId",
                "updDateTime"
            ]
        );
        assert!(obj.values().all(Value::is_string), "{row}");
        parse_tzd(row["updDateTime"].as_str().unwrap());
    }
    let amounts: Vec<&str> = rows(&all)
        .iter()
        .map(|r| r["stockAmount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, vec!["5", "7", "-1"]);
    assert_eq!(all[0]["layawayStockAmount"], "0");
    let t0 = parse_tzd(all[0]["updDateTime"].as_str().unwrap());
    let t1 = parse_tzd(all[2]["updDateTime"].as_str().unwrap());
    let t2 = parse_tzd(all[1]["updDateTime"].as_str().unwrap());
    assert!(t0 < t1 && t1 < t2, "{t0} {t1} {t2}");

    // Filters.
    let r = get(&sim, &tok, &path, &[("store_id", "2")]).await;
    assert_eq!(pairs(&r.body), vec![pair(P2, "2")]);
    assert_eq!(r.body[0]["stockAmount"], "-1");
    let r = get(&sim, &tok, &path, &[("product_id", P2)]).await;
    assert_eq!(pairs(&r.body), vec![pair(P2, "1"), pair(P2, "2")]);
    let r = get(&sim, &tok, &path, &[("product_id", P2), ("store_id", "1")]).await;
    assert_eq!(pairs(&r.body), vec![pair(P2, "1")]);
    let r = get(&sim, &tok, &path, &[("product_id", P3)]).await;
    assert_eq!(r.status, 200);
    assert!(rows(&r.body).is_empty());

    // Window: only rows changed inside it (query() encodes `+` as %2B).
    let min = chrono::Duration::minutes(1);
    let (from, to) = (tzd(t1 - min), tzd(t1 + min));
    let window = [
        ("upd_date_time-from", from.as_str()),
        ("upd_date_time-to", to.as_str()),
    ];
    let r = get(&sim, &tok, &path, &window).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(pairs(&r.body), vec![pair(P2, "2")]);
    // Exactly 31 days is allowed and takes t0 and t1, not t2.
    let (from, to) = (tzd(t1 - chrono::Duration::days(31)), tzd(t1));
    let r = get(
        &sim,
        &tok,
        &path,
        &[
            ("upd_date_time-from", from.as_str()),
            ("upd_date_time-to", to.as_str()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(pairs(&r.body), vec![pair(P1, "1"), pair(P2, "2")]);
    // One second more is refused.
    let from = tzd(t1 - chrono::Duration::days(31) - chrono::Duration::seconds(1));
    let r = get(
        &sim,
        &tok,
        &path,
        &[
            ("upd_date_time-from", from.as_str()),
            ("upd_date_time-to", to.as_str()),
        ],
    )
    .await;
    assert_problem(&r, 400);
    // Only one end of the window.
    let r = get(&sim, &tok, &path, &[("upd_date_time-from", to.as_str())]).await;
    assert_problem(&r, 400);
    let r = get(&sim, &tok, &path, &[("upd_date_time-to", to.as_str())]).await;
    assert_problem(&r, 400);
    // A raw `+` decodes to a space: not TZD.
    let raw = format!(
        "{path}?upd_date_time-from={}&upd_date_time-to={}",
        tzd(t1 - min),
        tzd(t1 + min)
    );
    assert!(raw.contains("+09:00"));
    let r = get_raw(&sim, &tok, &raw).await;
    assert_problem(&r, 400);
    // The same, encoded, is fine.
    let r = get_raw(&sim, &tok, &raw.replace('+', "%2B")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(pairs(&r.body), vec![pair(P2, "2")]);

    // limit bounds.
    for bad in ["0", "1001"] {
        let r = get(&sim, &tok, &path, &[("limit", bad)]).await;
        assert_problem(&r, 400);
    }
    let r = get(&sim, &tok, &path, &[("limit", "1000")]).await;
    assert_eq!(rows(&r.body).len(), 3);

    // Paging.
    let page = |n: &'static str| [("limit", "2"), ("page", n)];
    let r = get(&sim, &tok, &path, &page("1")).await;
    assert_eq!(pairs(&r.body), vec![pair(P1, "1"), pair(P2, "1")]);
    let r = get(&sim, &tok, &path, &page("2")).await;
    assert_eq!(pairs(&r.body), vec![pair(P2, "2")]);
    let r = get(&sim, &tok, &path, &page("3")).await;
    assert_eq!(r.status, 200);
    assert!(rows(&r.body).is_empty());

    // Sort.
    let r = get(&sim, &tok, &path, &[("sort", "storeId:desc")]).await;
    assert_eq!(
        pairs(&r.body),
        vec![pair(P2, "2"), pair(P1, "1"), pair(P2, "1")]
    );

    // fields.
    let r = get(&sim, &tok, &path, &[("fields", "productId,stockAmount")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for row in rows(&r.body) {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["productId", "stockAmount"]);
    }
    assert_eq!(r.body[0]["stockAmount"], "5");
    let r = get(&sim, &tok, &path, &[("fields", "productId,nope")]).await;
    assert_problem(&r, 400);
}

#[tokio::test]
async fn stock_list_tokens_are_per_contract_and_need_the_scope() {
    let sim = ready().await;
    sim.set_stock(B, "1", P1, 3).await.unwrap();
    let tok_a = full_token(&sim, A).await;
    let r = get(&sim, &tok_a, &format!("/{B}/pos/stock"), &[]).await;
    assert_problem(&r, 401);
    let tok_b = full_token(&sim, B).await;
    let r = get(&sim, &tok_b, &format!("/{B}/pos/stock"), &[]).await;
    assert_eq!(pairs(&r.body), vec![pair(P1, "1")]);
    // A contract's stock is its own.
    let r = get(&sim, &tok_a, &format!("/{A}/pos/stock"), &[]).await;
    assert!(rows(&r.body).is_empty());

    let r = get(&sim, "not-a-token", &format!("/{A}/pos/stock"), &[]).await;
    assert_problem(&r, 401);
    let r = send(reqwest::Client::new().get(api(&sim, &format!("/{A}/pos/stock")))).await;
    assert_problem(&r, 401);

    let changes_only = token(&sim, A, "pos.stock-changes:read").await;
    let r = get(&sim, &changes_only, &format!("/{A}/pos/stock"), &[]).await;
    assert_problem(&r, 403);
}

// --- 3. GET /pos/stock/changes/{p}/{s} ----------------------------------------

#[tokio::test]
async fn stock_changes_rows_id_sort_and_refusals() {
    let sim = ready().await;
    sim.set_next_history_id(A, 1000).unwrap();
    sim.set_stock(A, "1", P1, 10).await.unwrap();
    sim.advance_clock(60);
    sim.sale(A, "1", P1, 3).await.unwrap();
    sim.advance_clock(60);
    sim.receive(A, "1", P1, 4).await.unwrap();
    // Other pairs' rows stay out.
    sim.sale(A, "2", P1, 1).await.unwrap();
    sim.sale(A, "1", P2, 1).await.unwrap();
    let tok = full_token(&sim, A).await;
    let path = format!("/{A}/pos/stock/changes/{P1}/1");

    let r = get(&sim, &tok, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec!["1000", "1001", "1002"]);
    // The same ids as the old API's StockHistory.
    let old: Vec<String> = sim
        .history(A)
        .iter()
        .filter(|h| h.product_id == P1 && h.store_id == "1")
        .map(|h| h.id.to_string())
        .collect();
    assert_eq!(ids(&r.body), old);
    let (s, v) = old_call(
        &sim,
        A,
        "stock_ref",
        json!({"table_name":"StockHistory",
               "conditions":[{"id >":"999","id <=":"2000","productId":P1,"storeId":"1"}],
               "order":["id"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let via_old: Vec<&str> = rows(&v["result"])
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(via_old, ids(&r.body));

    let sale = &r.body[1];
    assert_eq!(sale["stockDivision"], "02");
    assert_eq!(sale["amount"], "-3");
    assert_eq!(sale["stockAmount"], "7");
    assert_eq!(sale["productId"], P1);
    assert_eq!(sale["storeId"], "1");
    for f in ["id", "amount", "stockAmount", "stockDivision"] {
        assert!(sale[f].is_string(), "{f}: {sale}");
    }
    parse_tzd(sale["updDateTime"].as_str().unwrap());
    assert_eq!(r.body[0]["stockDivision"], "01");
    assert_eq!(r.body[0]["amount"], "10");
    assert_eq!(r.body[2]["stockDivision"], "03");
    assert_eq!(r.body[2]["stockAmount"], "11");

    // id= gives that row only.
    let r = get(&sim, &tok, &path, &[("id", "1001")]).await;
    assert_eq!(ids(&r.body), vec!["1001"]);
    assert_eq!(r.body[0]["stockDivision"], "02");
    let r = get(&sim, &tok, &path, &[("id", "99999")]).await;
    assert_eq!(r.status, 200);
    assert!(rows(&r.body).is_empty());

    // Newest first.
    let r = get(&sim, &tok, &path, &[("sort", "updDateTime:desc")]).await;
    assert_eq!(ids(&r.body), vec!["1002", "1001", "1000"]);
    let r = get(&sim, &tok, &path, &[("stock_division", "02")]).await;
    assert_eq!(ids(&r.body), vec!["1001"]);
    let r = get(&sim, &tok, &path, &[("limit", "2"), ("page", "2")]).await;
    assert_eq!(ids(&r.body), vec!["1002"]);

    // Unknown product.
    let r = get(
        &sim,
        &tok,
        &format!("/{A}/pos/stock/changes/9999999/1"),
        &[],
    )
    .await;
    assert_problem(&r, 404);
    assert_eq!(r.body["detail"], NOT_FOUND);

    // The plan has no 在庫変動履歴.
    sim.set_stock_changes_available(A, false);
    let r = get(&sim, &tok, &path, &[]).await;
    assert_problem(&r, 403);
    sim.set_stock_changes_available(A, true);
    let r = get(&sim, &tok, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The token lacks the separate scope.
    let stock_only = token(&sim, A, "pos.stock:read").await;
    let r = get(&sim, &stock_only, &path, &[]).await;
    assert_problem(&r, 403);
}

// --- 4. writes and the echo matrix -------------------------------------------

#[tokio::test]
async fn writes_set_add_validate_and_record_history() {
    let sim = ready().await;
    sim.set_stock(A, "1", P1, 3).await.unwrap();
    let tok = full_token(&sim, A).await;

    let r = patch_stock(
        &sim,
        &tok,
        A,
        P1,
        json!({"storeId":"1","stockAmount":"7","stockHistory":{"memo":"m"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["productId"], P1);
    assert_eq!(r.body["storeId"], "1");
    assert_eq!(r.body["stockAmount"], "7");
    assert_eq!(r.body["stockHistory"]["memo"], "m");
    parse_tzd(r.body["updDateTime"].as_str().unwrap());
    let set_id = r.body["stockHistory"]["id"].as_str().unwrap().to_string();
    assert_eq!(sim.stock(A, "1", P1), Some(7));
    assert_eq!(set_id, sim.history(A).last().unwrap().id.to_string());

    let r = add_stock(&sim, &tok, A, P1, json!({"storeId":"1","stockAmount":"-2"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["stockAmount"], "5");
    let add_id = r.body["stockHistory"]["id"].as_str().unwrap().to_string();
    assert_ne!(add_id, set_id);
    assert_eq!(sim.stock(A, "1", P1), Some(5));

    // Refusals change nothing.
    let history_len = sim.history(A).len();
    let bad = [
        patch_stock(
            &sim,
            &tok,
            A,
            P1,
            json!({"storeId":"1","stockAmount":"1000000000"}),
        )
        .await,
        patch_stock(
            &sim,
            &tok,
            A,
            P1,
            json!({"storeId":"1","stockAmount":"-1000000000"}),
        )
        .await,
        add_stock(
            &sim,
            &tok,
            A,
            P1,
            json!({"storeId":"1","stockAmount":"1999999999"}),
        )
        .await,
        // In range itself, but 5 + 999999999 overflows the stock.
        add_stock(
            &sim,
            &tok,
            A,
            P1,
            json!({"storeId":"1","stockAmount":"999999999"}),
        )
        .await,
        patch_stock(&sim, &tok, A, P1, json!({"storeId":"99","stockAmount":"1"})).await,
        add_stock(&sim, &tok, A, P1, json!({"storeId":"99","stockAmount":"1"})).await,
        patch_stock(
            &sim,
            &tok,
            A,
            P1,
            json!({"storeId":"1","stockAmount":"1","stockHistory":{"memo":"x".repeat(101)}}),
        )
        .await,
    ];
    for r in &bad {
        assert_problem(r, 400);
    }
    assert_eq!(
        bad[4].body["detail"],
        "指定された店舗IDのリソースが見つかりません"
    );
    let r = patch_stock(
        &sim,
        &tok,
        A,
        "9999999",
        json!({"storeId":"1","stockAmount":"1"}),
    )
    .await;
    assert_problem(&r, 404);
    assert_eq!(sim.stock(A, "1", P1), Some(5));
    assert_eq!(sim.history(A).len(), history_len);
    // The upper bound itself is accepted.
    let r = patch_stock(
        &sim,
        &tok,
        A,
        P2,
        json!({"storeId":"2","stockAmount":"999999999"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The written rows in the change history: division 15, the memo.
    let r = get(&sim, &tok, &format!("/{A}/pos/stock/changes/{P1}/1"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = |id: &str| {
        rows(&r.body)
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no row {id}: {}", r.body))
            .clone()
    };
    let set = row(&set_id);
    assert_eq!(set["stockDivision"], "15");
    assert_eq!(set["memo"], "m");
    assert_eq!(set["amount"], "4");
    assert_eq!(set["stockAmount"], "7");
    let add = row(&add_id);
    assert_eq!(add["stockDivision"], "15");
    assert_eq!(add["amount"], "-2");
    assert_eq!(add["stockAmount"], "5");

    // Writing needs pos.stock:write.
    let read_only = token(&sim, A, "pos.stock:read pos.stock-changes:read").await;
    let r = patch_stock(
        &sim,
        &read_only,
        A,
        P1,
        json!({"storeId":"1","stockAmount":"1"}),
    )
    .await;
    assert_problem(&r, 403);
    assert_eq!(sim.stock(A, "1", P1), Some(5));
}

#[tokio::test]
async fn platform_write_fires_webhook_and_old_push() {
    let sim = ready().await;
    let hooks = webhook_receiver(&sim).await;
    let (push_url, pushes) = receiver(StatusCode::OK, 0).await;
    sim.configure_push(A, full_push(&push_url));
    let tok = full_token(&sim, A).await;

    let r = patch_stock(
        &sim,
        &tok,
        A,
        P1,
        json!({"storeId":"1","stockAmount":"7","stockHistory":{"memo":"m"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["stockHistory"]["id"].as_str().unwrap().to_string();

    assert_eq!(hooks.count(), 1);
    let body = hooks.json(0);
    assert_eq!(body["event"], "pos:stock");
    assert_eq!(body["action"], "edited");
    assert_eq!(body["ids"][0]["id"], id.as_str());
    assert_eq!(rows(&body["ids"]).len(), 1);

    let sends = sim.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].status, "成功");
    assert_eq!(pushes.count(), 1);
    let row = push_row(&pushes.raw(0));
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["stockAmount"], "7");
    assert_eq!(row["stockDivision"], "15");

    // The other reading: no old push for a Platform write.
    let sim = ready_with(config(PlatformConfig {
        platform_writes_fire_push: false,
        ..fast()
    }))
    .await;
    let hooks = webhook_receiver(&sim).await;
    let (push_url, pushes) = receiver(StatusCode::OK, 0).await;
    sim.configure_push(A, full_push(&push_url));
    let tok = full_token(&sim, A).await;
    let r = add_stock(&sim, &tok, A, P1, json!({"storeId":"1","stockAmount":"2"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["stockHistory"]["id"].as_str().unwrap();
    assert_eq!(hooks.count(), 1);
    assert_eq!(hooks.json(0)["ids"][0]["id"], id);
    assert!(sim.sends().is_empty());
    assert_eq!(pushes.count(), 0);
    // A POS sale still pushes: only Platform writes are affected.
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(sim.sends().len(), 1);
    assert_eq!(hooks.count(), 2);
}

fn stock_upd(amount: &str) -> Value {
    json!({"proc_info":{"proc_division":"U","proc_detail_division":"1"},
           "data":[{"table_name":"Stock","rows":[
               {"storeId":"1","productId":P1,"stockAmount":amount,"stockDivision":"15"}]}]})
}

#[tokio::test]
async fn old_api_write_fires_webhook_only_when_configured() {
    let sim = ready().await;
    let hooks = webhook_receiver(&sim).await;
    let (push_url, pushes) = receiver(StatusCode::OK, 0).await;
    sim.configure_push(A, full_push(&push_url));
    let (s, v) = old_call(&sim, A, "stock_upd", stock_upd("4")).await;
    assert_eq!((s, v), (200, json!({"result":{"Stock":1}})));
    assert_eq!(sim.stock(A, "1", P1), Some(4));
    assert_eq!(hooks.count(), 0);
    assert!(sim.webhook_deliveries().is_empty());
    assert_eq!(pushes.count(), 0);
    // The control: a POS sale on the same sim does fire.
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 1);

    let sim = ready_with(config(PlatformConfig {
        old_api_writes_fire_webhook: true,
        ..fast()
    }))
    .await;
    let hooks = webhook_receiver(&sim).await;
    let (push_url, pushes) = receiver(StatusCode::OK, 0).await;
    sim.configure_push(A, full_push(&push_url));
    let (s, v) = old_call(&sim, A, "stock_upd", stock_upd("4")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(hooks.count(), 1);
    let body = hooks.json(0);
    assert_eq!(body["event"], "pos:stock");
    assert_eq!(body["action"], "edited");
    assert_eq!(
        webhook_ids(&body),
        vec![sim.history(A).last().unwrap().id.to_string()]
    );
    assert_eq!(body["ids"][0]["productId"], P1);
    assert_eq!(body["ids"][0]["storeId"], "1");
    // The old push still follows its own rule (push_api_changes = false).
    assert_eq!(pushes.count(), 0);
    assert!(sim.sends().is_empty());
}

// --- 5. webhook sender --------------------------------------------------------

#[tokio::test]
async fn webhook_headers_and_body() {
    let sim = ready().await;
    let hooks = webhook_receiver(&sim).await;
    let rows = sim.sale(A, "1", P1, 2).await.unwrap();
    assert_eq!(hooks.count(), 1);
    assert_eq!(hooks.header(0, "smaregi-event"), "pos:stock");
    let event_id = hooks.header(0, "smaregi-event-id");
    uuid::Uuid::parse_str(&event_id).unwrap();
    assert_eq!(hooks.header(0, "smaregi-contract-id"), A);
    assert!(
        hooks
            .header(0, "user-agent")
            .starts_with("Smaregi-Platform-Api-Webhook"),
        "{}",
        hooks.header(0, "user-agent")
    );
    assert!(
        hooks
            .header(0, "content-type")
            .starts_with("application/json")
    );
    assert_eq!(hooks.header(0, "x-secret"), "s");
    assert_eq!(
        hooks.json(0),
        json!({"contractId":A,"event":"pos:stock","action":"edited",
               "ids":[{"id":rows[0].id.to_string(),"productId":P1,"storeId":"1"}]})
    );
    let log = sim.webhook_deliveries();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event_id, event_id);
    assert_eq!(log[0].contract_id, A);
    assert_eq!(log[0].outcome, "delivered");
    assert_eq!(log[0].http_status, Some(200));

    // Each delivery has a fresh event id; the other contract is named as such.
    sim.sale(B, "2", P2, 1).await.unwrap();
    assert_eq!(hooks.count(), 2);
    assert_ne!(hooks.header(1, "smaregi-event-id"), event_id);
    assert_eq!(hooks.header(1, "smaregi-contract-id"), B);
    assert_eq!(hooks.json(1)["contractId"], B);

    // A contract without the app gets no webhook.
    add_contract(&sim, "c3");
    sim.sale("c3", "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 2);
}

#[tokio::test]
async fn failed_webhook_is_not_retried() {
    let sim = ready().await;
    let (url, hooks) = receiver(StatusCode::INTERNAL_SERVER_ERROR, 0).await;
    sim.configure_platform_webhook(Some(&url), &[]);
    sim.sale(A, "1", P1, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hooks.count(), 1);
    let log = sim.webhook_deliveries();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].outcome.starts_with("failed"), "{}", log[0].outcome);
    assert_eq!(log[0].http_status, Some(500));
}

#[tokio::test]
async fn slow_webhook_receiver_times_out_and_is_not_retried() {
    let sim = ready_with(config(PlatformConfig {
        webhook_timeout_ms: 300,
        ..fast()
    }))
    .await;
    let (url, hooks) = receiver(StatusCode::OK, 1500).await;
    sim.configure_platform_webhook(Some(&url), &[]);
    let started = Instant::now();
    sim.sale(A, "1", P1, 1).await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_millis(1200), "{took:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hooks.count(), 1);
    let log = sim.webhook_deliveries();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].outcome.starts_with("failed"), "{}", log[0].outcome);
    assert_eq!(log[0].http_status, None);
}

#[tokio::test]
async fn webhook_faults_drop_duplicate_redeliver_hold() {
    let sim = ready().await;
    let hooks = webhook_receiver(&sim).await;

    // Dropped: never received, logged.
    sim.set_webhook_faults(WebhookFaults {
        drop_next: 1,
        ..WebhookFaults::default()
    });
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 0);
    let log = sim.webhook_deliveries();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].outcome, "dropped");
    // Only the next one.
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 1);

    // Duplicated: twice with the same event id.
    sim.set_webhook_faults(WebhookFaults {
        duplicate_next: 1,
        ..WebhookFaults::default()
    });
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 3);
    assert_eq!(
        hooks.header(1, "smaregi-event-id"),
        hooks.header(2, "smaregi-event-id")
    );
    assert_eq!(hooks.json(1), hooks.json(2));
    assert_ne!(
        hooks.header(0, "smaregi-event-id"),
        hooks.header(1, "smaregi-event-id")
    );

    // Redelivered: twice, fresh event id, same history ids.
    sim.set_webhook_faults(WebhookFaults {
        redeliver_next: 1,
        ..WebhookFaults::default()
    });
    let row = sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 5);
    assert_ne!(
        hooks.header(3, "smaregi-event-id"),
        hooks.header(4, "smaregi-event-id")
    );
    assert_eq!(webhook_ids(&hooks.json(3)), vec![row[0].id.to_string()]);
    assert_eq!(webhook_ids(&hooks.json(3)), webhook_ids(&hooks.json(4)));
    // Both logged, with their own event ids.
    let log = sim.webhook_deliveries();
    let n = log.len();
    assert_eq!(log[n - 2].event_id, hooks.header(3, "smaregi-event-id"));
    assert_eq!(log[n - 1].event_id, hooks.header(4, "smaregi-event-id"));

    // Held, then released newest first.
    sim.set_webhook_faults(WebhookFaults {
        hold: true,
        ..WebhookFaults::default()
    });
    let first = sim.sale(A, "1", P1, 1).await.unwrap()[0].id.to_string();
    let second = sim.sale(A, "2", P2, 1).await.unwrap()[0].id.to_string();
    assert_eq!(hooks.count(), 5);
    sim.release_webhooks().await;
    assert_eq!(hooks.count(), 7);
    assert_eq!(webhook_ids(&hooks.json(5)), vec![second]);
    assert_eq!(webhook_ids(&hooks.json(6)), vec![first]);
    // Holding stopped.
    sim.sale(A, "1", P1, 1).await.unwrap();
    assert_eq!(hooks.count(), 8);
}

#[tokio::test]
async fn control_api_subscribe_faults_and_deliveries() {
    let sim = ready().await;
    add_contract(&sim, "c3");
    let c = reqwest::Client::new();
    let base = sim.base_url();
    let (url, hooks) = receiver(StatusCode::OK, 0).await;

    let r = c
        .post(format!("{base}/_sim/platform/subscribe"))
        .json(&json!({"contract_id":"c3",
                      "scopes":["pos.stock:read","pos.stock-changes:read"],
                      "stock_changes":false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/_sim/platform/subscribe"))
        .json(&json!({"contract_id":"nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = token_call(&sim, "c3", SECRET, "pos.stock:read pos.stock:write").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "pos.stock:read");
    let tok = token(&sim, "c3", "pos.stock-changes:read").await;
    let r = get(&sim, &tok, &format!("/c3/pos/stock/changes/{P1}/1"), &[]).await;
    assert_problem(&r, 403);

    let r = c
        .post(format!("{base}/_sim/platform/webhook"))
        .json(&json!({"url":url,"headers":[["x-secret","s"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/_sim/platform/faults"))
        .json(&json!({"drop_next":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sale = json!({"contract_id":"c3","store_id":"1","product_id":P1,"quantity":1});
    let r = c
        .post(format!("{base}/_sim/sale"))
        .json(&sale)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hooks.count(), 0);

    let r = c
        .post(format!("{base}/_sim/platform/faults"))
        .json(&json!({"hold":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.post(format!("{base}/_sim/sale"))
        .json(&sale)
        .send()
        .await
        .unwrap();
    assert_eq!(hooks.count(), 0);
    let r = c
        .post(format!("{base}/_sim/platform/release"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hooks.count(), 1);
    assert_eq!(hooks.header(0, "x-secret"), "s");
    assert_eq!(hooks.header(0, "smaregi-contract-id"), "c3");

    let log: Value = c
        .get(format!("{base}/_sim/platform/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let log = rows(&log);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["outcome"], "dropped");
    assert_eq!(log[0]["contract_id"], "c3");
    assert_eq!(log[1]["outcome"], "delivered");
    assert_eq!(log[1]["http_status"], 200);
    assert_eq!(
        log[1]["event_id"].as_str().unwrap(),
        hooks.header(0, "smaregi-event-id")
    );
}

// --- 6. rate limiter ----------------------------------------------------------

#[tokio::test]
async fn rate_limiter_throttles_per_contract_with_retry_after() {
    let sim = ready_with(config(PlatformConfig {
        reads_per_sec: 2,
        ..PlatformConfig::default()
    }))
    .await;
    let tok_a = full_token(&sim, A).await;
    let tok_b = full_token(&sim, B).await;
    // Token calls count too; let the buckets fill again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let path = format!("/{A}/pos/stock");
    assert_eq!(get(&sim, &tok_a, &path, &[]).await.status, 200);
    assert_eq!(get(&sim, &tok_a, &path, &[]).await.status, 200);
    let r = get(&sim, &tok_a, &path, &[]).await;
    assert_problem(&r, 429);
    let wait: u64 = r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {:?}: {e}", r.headers["retry-after"]));
    assert!(wait >= 1, "{wait}");

    // Another contract has its own bucket.
    let r = get(&sim, &tok_b, &format!("/{B}/pos/stock"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = get(&sim, &tok_a, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn rate_limiter_refuses_after_throttles() {
    let sim = ready_with(config(PlatformConfig {
        reads_per_sec: 2,
        refuse_after_throttles: Some(1),
        ..PlatformConfig::default()
    }))
    .await;
    // The token call takes one of A's two tokens.
    let tok_a = full_token(&sim, A).await;
    let path = format!("/{A}/pos/stock");
    let r = get(&sim, &tok_a, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_problem(&get(&sim, &tok_a, &path, &[]).await, 429);
    let r = get(&sim, &tok_a, &path, &[]).await;
    assert_problem(&r, 403);
    assert!(r.headers.get("retry-after").is_none());

    // Per contract: B is not refused.
    let tok_b = full_token(&sim, B).await;
    let r = get(&sim, &tok_b, &format!("/{B}/pos/stock"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

// --- 7. contract notification ------------------------------------------------

#[tokio::test]
async fn contract_notification_start_and_end() {
    let sim = ready().await;
    let (url, inbox) = receiver(StatusCode::OK, 0).await;
    sim.configure_contract_notification(Some(&url));
    add_contract(&sim, "c3");

    sim.platform_subscribe("c3", &[]).await.unwrap();
    assert_eq!(inbox.count(), 1);
    assert_eq!(inbox.header(0, "smaregi-event"), "AppSubscription");
    assert_eq!(inbox.header(0, "smaregi-contract-id"), "c3");
    assert!(
        inbox
            .header(0, "content-type")
            .starts_with("application/json")
    );
    let start = inbox.json(0);
    assert_eq!(start["contractId"], "c3");
    assert_eq!(start["event"], "AppSubscription");
    assert_eq!(start["action"], "start");
    assert_eq!(start["clientId"], CLIENT_ID);
    let date = start["date"].as_str().unwrap();
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    assert_eq!(date.len(), 10);
    assert!(start["plan"].is_object(), "{start}");

    let tok = full_token(&sim, "c3").await;
    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    sim.platform_contract_event("c3", "end").await.unwrap();
    assert_eq!(inbox.count(), 2);
    assert_eq!(inbox.header(1, "smaregi-event"), "AppSubscription");
    assert_eq!(inbox.header(1, "smaregi-contract-id"), "c3");
    let end = inbox.json(1);
    assert_eq!(end["action"], "end");
    assert_eq!(end["contractId"], "c3");
    assert_eq!(end["clientId"], CLIENT_ID);

    let r = get(&sim, &tok, "/c3/pos/stock", &[]).await;
    assert_problem(&r, 401);
    let r = token_call(&sim, "c3", SECRET, "pos.stock:read").await;
    assert!(r.status >= 400, "{}", r.body);
    assert!(r.body.get("access_token").is_none(), "{}", r.body);
    // Other contracts keep working.
    let tok_a = full_token(&sim, A).await;
    assert_eq!(
        get(&sim, &tok_a, &format!("/{A}/pos/stock"), &[])
            .await
            .status,
        200
    );
}
