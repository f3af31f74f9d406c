use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use sne_simulators::smaregi::{
    CappedOffset, ConditionObjects, PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim,
};

const K: &str = "c1";
const TOKEN: &str = "tok";

async fn ready() -> SmaregiSim {
    ready_with(SmaregiConfig::default()).await
}

async fn ready_with(config: SmaregiConfig) -> SmaregiSim {
    let sim = SmaregiSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_contract(K, TOKEN);
    sim.add_store(K, "1", "本店");
    sim.add_store(K, "2", "支店");
    sim.add_product(K, "8000001", "ABC-001", "商品1");
    sim.add_product(K, "8000002", "ABC-002", "商品2");
    sim
}

async fn call(
    sim: &SmaregiSim,
    contract: &str,
    token: &str,
    proc_name: &str,
    params: Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(sim.access_url())
        .header("X_contract_id", contract)
        .header("X_access_token", token)
        .form(&[("proc_name", proc_name), ("params", &params.to_string())])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn empty_contract_is_code_14() {
    let sim = ready().await;
    let (s, v) = call(&sim, "", TOKEN, "stock_ref", json!({"table_name":"Stock"})).await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!({"error_code":14,"error":"契約IDが無効です。","error_description":"パラメータ不正です。(contractId is empty)"})
    );
}

#[tokio::test]
async fn wrong_token_and_disabled_function() {
    let sim = ready().await;
    let (s, v) = call(&sim, K, "bad", "stock_ref", json!({"table_name":"Stock"})).await;
    assert_eq!(s, 400);
    assert!(v["error_code"].is_number() && v["error"].is_string());
    let (s, _) = call(
        &sim,
        "nope",
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock"}),
    )
    .await;
    assert_eq!(s, 400);
    sim.set_functions(K, &["stock_ref"]);
    let (s, v) = call(
        &sim,
        K,
        TOKEN,
        "shipment_ref",
        json!({"table_name":"Shipment"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("shipment_ref")
    );
    let (s, _) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","conditions":[{"storeId":"1"}]}),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn stock_ref_conditions_paging_and_limit() {
    let sim = ready().await;
    for q in 1..=5 {
        sim.receive(K, "1", "8000001", q).await.unwrap();
    }
    sim.sale(K, "2", "8000002", 1).await.unwrap();
    let params = |page: u32| {
        json!({"table_name":"StockHistory",
            "conditions":[{"id >":"1","id <=":"100001","storeId":"1"}],
            "order":["id desc"], "limit":2, "page":page})
    };
    let (s, v) = call(&sim, K, TOKEN, "stock_ref", params(1)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total_count"], "4");
    assert_eq!(v["result"][0]["id"], "5");
    assert_eq!(v["result"][0]["stockDivision"], "03");
    assert_eq!(v["result"][0]["stockAmount"], "15");
    assert!(v["result"][0]["fromStoreId"].is_null());
    let (_, v) = call(&sim, K, TOKEN, "stock_ref", params(2)).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 2);
    assert_eq!(v["result"][1]["id"], "2");
    let (_, v) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","fields":["storeId","stockAmount"],
               "conditions":[{"storeId":"2"}]}),
    )
    .await;
    assert_eq!(v["total_count"], "1");
    assert_eq!(v["result"][0].as_object().unwrap().len(), 2);
    assert_eq!(v["result"][0]["stockAmount"], "-1");
    let (s, v) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","conditions":[{"storeId":"1"}],"limit":1001}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn stock_upd_absolute_and_relative() {
    let sim = ready().await;
    let upd = |div: &str, amount: &str| {
        json!({"proc_info":{"proc_division":"U","proc_detail_division":div},
               "data":[{"table_name":"Stock","rows":[{"storeId":"1","productId":"8000001","stockAmount":amount,"stockDivision":"15"}]}]})
    };
    let (s, v) = call(&sim, K, TOKEN, "stock_upd", upd("1", "10")).await;
    assert_eq!((s, v), (200, json!({"result":{"Stock":1}})));
    call(&sim, K, TOKEN, "stock_upd", upd("2", "-3")).await;
    assert_eq!(sim.stock(K, "1", "8000001"), Some(7));
    let h = sim.history(K);
    assert_eq!(h[1].amount, -3);
    assert_eq!(h[1].stock_division, "15");
}

fn shipment(header: Value, details: Value) -> Value {
    json!({"proc_info":{"proc_division":"U"},"data":[
        {"table_name":"Shipment","rows":[header]},
        {"table_name":"ShipmentDetail","rows":details}]})
}

fn good_header(token: &str) -> Value {
    json!({"shipmentStoreId":"1","recipientType":"3","recipientName":"ネット販売",
           "shipmentDivision":"0","shipmentDate":"2024-05-01","status":"2",
           "identificationNo":"NE-1","token":token})
}

#[tokio::test]
async fn shipment_validation_rules() {
    let sim = ready().await;
    let det = json!([{"productId":"8000001","quantity":"2"}]);
    let mut cases: Vec<(&str, Value, Value)> = Vec::new();
    let with = |k: &str, v: Value| {
        let mut h = good_header("t");
        h[k] = v;
        h
    };
    let without = |k: &str| {
        let mut h = good_header("t");
        h.as_object_mut().unwrap().remove(k);
        h
    };
    cases.push(("store missing", without("shipmentStoreId"), det.clone()));
    cases.push((
        "unknown store",
        with("shipmentStoreId", json!("99")),
        det.clone(),
    ));
    cases.push(("bad type", with("recipientType", json!("2")), det.clone()));
    cases.push((
        "id with type 3",
        with("recipientId", json!("5")),
        det.clone(),
    ));
    cases.push(("no name type 3", without("recipientName"), det.clone()));
    cases.push((
        "name too long",
        with("recipientName", json!("あ".repeat(86))),
        det.clone(),
    ));
    let mut t1 = with("recipientType", json!("1"));
    t1.as_object_mut().unwrap().remove("recipientName");
    cases.push(("type 1 without id", t1.clone(), det.clone()));
    let mut t1n = t1.clone();
    t1n["recipientId"] = json!("7");
    t1n["recipientName"] = json!("x");
    cases.push(("name with type 1", t1n, det.clone()));
    cases.push((
        "bad division",
        with("shipmentDivision", json!("3")),
        det.clone(),
    ));
    cases.push((
        "bad date",
        with("shipmentDate", json!("2024/05/01")),
        det.clone(),
    ));
    cases.push(("bad status", with("status", json!("1")), det.clone()));
    cases.push(("no token", without("token"), det.clone()));
    cases.push((
        "unknown product",
        good_header("t"),
        json!([{"productId":"1","quantity":"1"}]),
    ));
    cases.push((
        "duplicate product",
        good_header("t"),
        json!([{"productId":"8000001","quantity":"1"},{"productId":"8000001","quantity":"1"}]),
    ));
    cases.push((
        "quantity missing",
        good_header("t"),
        json!([{"productId":"8000001"}]),
    ));
    cases.push((
        "quantity 6 digits",
        good_header("t"),
        json!([{"productId":"8000001","quantity":"100000"}]),
    ));
    cases.push((
        "memo too long",
        good_header("t"),
        json!([{"productId":"8000001","quantity":"1","memo":"x".repeat(1001)}]),
    ));
    for (name, h, d) in cases {
        let (s, v) = call(&sim, K, TOKEN, "shipment_upd", shipment(h, d)).await;
        assert_eq!(s, 400, "{name}: {v}");
        assert!(v["error_description"].is_string(), "{name}");
    }
    assert!(sim.shipments().is_empty());
    // a valid type-1 shipment
    let mut ok1 = t1.clone();
    ok1["recipientId"] = json!("7");
    let (s, v) = call(&sim, K, TOKEN, "shipment_upd", shipment(ok1, det)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn shipment_status2_writes_division_10_and_token_replay_skipped() {
    let sim = ready().await;
    sim.set_stock(K, "1", "8000001", 10).await.unwrap();
    let body = shipment(
        good_header("2024050112000001"),
        json!([{"productId":"8000001","quantity":"3","memo":"NE-1"}]),
    );
    let (s, v) = call(&sim, K, TOKEN, "shipment_upd", body.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"result":{"Shipment":1,"ShipmentIds":["1"],"ShipmentDetail":1}})
    );
    assert_eq!(sim.stock(K, "1", "8000001"), Some(7));
    let last = sim.history(K).last().unwrap().clone();
    assert_eq!(
        (last.stock_division.as_str(), last.amount, last.stock_amount),
        ("10", -3, 7)
    );
    // replay: success, nothing written
    let (s, v) = call(&sim, K, TOKEN, "shipment_upd", body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["Shipment"], 0);
    assert_eq!(sim.shipments().len(), 1);
    assert_eq!(sim.stock(K, "1", "8000001"), Some(7));
    // shipment_ref by identificationNo
    let (_, v) = call(
        &sim,
        K,
        TOKEN,
        "shipment_ref",
        json!({"table_name":"Shipment","conditions":[{"identificationNo":"NE-1"}]}),
    )
    .await;
    assert_eq!(v["total_count"], "1");
    assert_eq!(v["result"][0]["status"], "2");
    let (_, v) = call(
        &sim,
        K,
        TOKEN,
        "shipment_ref",
        json!({"table_name":"ShipmentDetail","conditions":[{"shipmentId":"1"}]}),
    )
    .await;
    assert_eq!(v["result"][0]["productCode"], "ABC-001");
    // status 0 does not touch stock; 返品 raises it
    let mut h = good_header("t2");
    h["status"] = json!("0");
    call(
        &sim,
        K,
        TOKEN,
        "shipment_upd",
        shipment(h, json!([{"productId":"8000001","quantity":"1"}])),
    )
    .await;
    assert_eq!(sim.stock(K, "1", "8000001"), Some(7));
    let mut h = good_header("t3");
    h["shipmentDivision"] = json!("1");
    call(
        &sim,
        K,
        TOKEN,
        "shipment_upd",
        shipment(h, json!([{"productId":"8000001","quantity":"2"}])),
    )
    .await;
    assert_eq!(sim.stock(K, "1", "8000001"), Some(9));
}

type Push = (HeaderMap, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Push>>>);

async fn receiver(status: StatusCode, body: &'static str) -> (String, Received) {
    let rec = Received::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                move |State(r): State<Received>, headers: HeaderMap, b: String| async move {
                    let form: Vec<(String, String)> = serde_urlencoded::from_str(&b).unwrap();
                    r.0.lock().unwrap().push((headers, form));
                    (status, body)
                },
            ),
        )
        .with_state(rec.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, rec)
}

fn rows_of(form: &[(String, String)]) -> Value {
    let params = &form.iter().find(|(k, _)| k == "params").unwrap().1;
    serde_json::from_str(params).unwrap()
}

fn push(url: &str, shape: PushShape, pairs_as: PairsAs) -> Option<PushConfig> {
    Some(PushConfig {
        url: url.to_string(),
        pairs: vec![
            ("contract_id".into(), K.into()),
            ("code".into(), "secret".into()),
        ],
        pairs_as,
        shape,
        push_api_changes: false,
    })
}

#[tokio::test]
async fn push_shapes_and_pairs() {
    let sim = ready().await;
    let (url, rec) = receiver(StatusCode::OK, "OK").await;

    sim.configure_push(K, push(&url, PushShape::Full, PairsAs::Headers));
    sim.set_stock(K, "1", "8000001", 5).await.unwrap();
    sim.transfer(K, "1", "2", "8000001", 2).await.unwrap();
    {
        let got = rec.0.lock().unwrap();
        assert_eq!(got.len(), 3);
        let (h, f) = &got[0];
        assert_eq!(h["contract_id"], K);
        assert_eq!(h["code"], "secret");
        assert!(f.iter().any(|(k, v)| k == "proc_name" && v == "stock_send"));
        assert!(!f.iter().any(|(k, _)| k == "code"));
        let p = rows_of(f);
        let row = &p["data"][0]["rows"][0];
        assert_eq!(p["data"][0]["table_name"], "Stock");
        assert_eq!(row["id"], "1");
        assert_eq!(row["amount"], "5");
        assert_eq!(row["stockAmount"], "5");
        assert_eq!(row["stockDivision"], "01");
        let t = &rows_of(&got[1].1)["data"][0]["rows"][0];
        assert_eq!(
            (
                t["stockDivision"].as_str(),
                t["fromStoreId"].as_str(),
                t["toStoreId"].as_str()
            ),
            (Some("04"), Some("1"), Some("2"))
        );
        assert_eq!(
            rows_of(&got[2].1)["data"][0]["rows"][0]["stockDivision"],
            "05"
        );
    }
    assert!(sim.sends().iter().all(|s| s.status == "成功"));

    sim.configure_push(K, push(&url, PushShape::Minimal, PairsAs::Form));
    sim.sale(K, "1", "8000001", 1).await.unwrap();
    sim.configure_push(K, push(&url, PushShape::Absolute, PairsAs::Form));
    sim.loss(K, "1", "8000001", 1).await.unwrap();
    sim.configure_push(K, push(&url, PushShape::Relative, PairsAs::Form));
    sim.stocktake(K, "1", "8000001", 10).await.unwrap();
    let got = rec.0.lock().unwrap();
    let (h, f) = &got[3];
    assert!(h.get("code").is_none());
    assert!(f.iter().any(|(k, v)| k == "code" && v == "secret"));
    let min = rows_of(f)["data"][0]["rows"][0].clone();
    assert_eq!(
        min,
        json!({"storeId":"1","productId":"8000001","stockAmount":"2"})
    );
    let abs = rows_of(&got[4].1);
    let abs_row = &abs["data"][0]["rows"][0];
    assert_eq!(abs_row["stockAmount"], "1");
    assert_eq!(abs_row["stockDivision"], "14");
    assert!(abs_row.get("amount").is_none());
    assert!(abs.get("proc_info").is_none());
    let rel = rows_of(&got[5].1);
    assert_eq!(rel["proc_info"]["proc_detail_division"], "2");
    assert_eq!(rel["data"][0]["rows"][0]["stockAmount"], "9");
    assert_eq!(rel["data"][0]["rows"][0]["stockDivision"], "08");
}

#[tokio::test]
async fn api_changes_not_pushed_by_default() {
    let sim = ready().await;
    let (url, rec) = receiver(StatusCode::OK, "OK").await;
    sim.configure_push(K, push(&url, PushShape::Full, PairsAs::Form));
    call(
        &sim,
        K,
        TOKEN,
        "shipment_upd",
        shipment(
            good_header("x"),
            json!([{"productId":"8000001","quantity":"1"}]),
        ),
    )
    .await;
    assert!(rec.0.lock().unwrap().is_empty());
    let mut p = push(&url, PushShape::Full, PairsAs::Form).unwrap();
    p.push_api_changes = true;
    sim.configure_push(K, Some(p));
    call(
        &sim,
        K,
        TOKEN,
        "shipment_upd",
        shipment(
            good_header("y"),
            json!([{"productId":"8000001","quantity":"1"}]),
        ),
    )
    .await;
    let got = rec.0.lock().unwrap();
    assert_eq!(
        rows_of(&got[0].1)["data"][0]["rows"][0]["stockDivision"],
        "10"
    );
}

#[tokio::test]
async fn failed_push_logged_and_resent() {
    let sim = ready().await;
    let (bad_url, _) = receiver(StatusCode::BAD_REQUEST, "code_mismatch").await;
    sim.configure_push(K, push(&bad_url, PushShape::Full, PairsAs::Form));
    sim.sale(K, "1", "8000001", 1).await.unwrap();
    let s = sim.sends()[0].clone();
    assert_eq!(s.status, "失敗");
    assert_eq!(s.message, "response(code-400:body-code_mismatch)");
    let r = sim.resend(s.id).await.unwrap();
    assert_eq!(r.body, s.body);
    assert_eq!(r.resend_of, Some(s.id));
    assert_eq!(sim.sends().len(), 2);

    // resend over HTTP control API after the receiver is fixed
    let (ok_url, rec) = receiver(StatusCode::OK, "OK").await;
    sim.configure_push(K, push(&ok_url, PushShape::Full, PairsAs::Form));
    sim.sale(K, "1", "8000001", 1).await.unwrap();
    let id = sim.sends().last().unwrap().id;
    let v: Value = reqwest::Client::new()
        .post(format!("{}/_sim/sends/{id}/resend", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "成功");
    assert_eq!(rec.0.lock().unwrap().len(), 2);

    // connection error
    sim.configure_push(
        K,
        push("http://127.0.0.1:1/hook", PushShape::Full, PairsAs::Form),
    );
    sim.sale(K, "1", "8000001", 1).await.unwrap();
    let s = sim.sends().last().unwrap().clone();
    assert_eq!(s.status, "失敗");
    assert!(s.http_status.is_none());
}

#[tokio::test]
async fn control_api_actions() {
    let sim = ready().await;
    let c = reqwest::Client::new();
    let base = sim.base_url();
    let r = c
        .post(format!("{base}/_sim/receive"))
        .json(&json!({"contract_id":K,"store_id":"1","product_id":"8000001","quantity":4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = c
        .get(format!(
            "{base}/_sim/stock?contract_id={K}&store_id=1&product_id=8000001"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["stock_amount"], 4);
    let r = c
        .post(format!("{base}/_sim/sale"))
        .json(&json!({"contract_id":K,"store_id":"9","product_id":"8000001","quantity":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// Stock rows (1, 8000001) = 5, (2, 8000002) = -1, (1, 8000002) = 7.
async fn three_stock_rows(sim: &SmaregiSim) {
    sim.set_stock(K, "1", "8000001", 5).await.unwrap();
    sim.sale(K, "2", "8000002", 1).await.unwrap();
    sim.set_stock(K, "1", "8000002", 7).await.unwrap();
}

fn stock_pairs(v: &Value) -> Vec<(String, String)> {
    v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["storeId"].as_str().unwrap().to_string(),
                r["productId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn several_condition_objects_are_and_by_default() {
    let both = json!({"table_name":"Stock","order":["storeId","productId"],
        "conditions":[{"storeId":"1"},{"productId":"8000002"}]});
    let pair = |s: &str, p: &str| (s.to_string(), p.to_string());

    let sim = ready().await;
    three_stock_rows(&sim).await;
    let (s, v) = call(&sim, K, TOKEN, "stock_ref", both.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total_count"], "1");
    assert_eq!(stock_pairs(&v), vec![pair("1", "8000002")]);

    let sim = ready_with(SmaregiConfig {
        condition_objects: ConditionObjects::FirstOnly,
        ..SmaregiConfig::default()
    })
    .await;
    three_stock_rows(&sim).await;
    let (_, v) = call(&sim, K, TOKEN, "stock_ref", both.clone()).await;
    assert_eq!(
        stock_pairs(&v),
        vec![pair("1", "8000001"), pair("1", "8000002")]
    );

    // OR reading: the second object names no store, which the default
    // strictness refuses, so it is switched off to see the reading itself.
    let sim = ready_with(SmaregiConfig {
        condition_objects: ConditionObjects::Or,
        stock_needs_store: false,
        ..SmaregiConfig::default()
    })
    .await;
    three_stock_rows(&sim).await;
    let (_, v) = call(&sim, K, TOKEN, "stock_ref", both).await;
    assert_eq!(
        stock_pairs(&v),
        vec![
            pair("1", "8000001"),
            pair("1", "8000002"),
            pair("2", "8000002")
        ]
    );
}

#[tokio::test]
async fn stock_history_lookups_must_be_narrowed() {
    let sim = ready().await;
    for q in 1..=3 {
        sim.receive(K, "1", "8000001", q).await.unwrap();
    }
    let now = sim.now_jst();
    let at = |days: i64| {
        (now + chrono::Duration::days(days))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let hist = |conditions: Value| json!({"table_name":"StockHistory","conditions":conditions,"order":["id"]});
    let refused = [
        json!(null),
        json!([]),
        json!([{"id >":"0"}]),
        json!([{"storeId":"1"}]),
        json!([{"id >":"0","id <=":"100001"}]),
        json!([{"id >=":"1","id <=":"100001"}]),
        json!([{"updDateTime >=":at(-32),"updDateTime <=":at(0)}]),
        json!([{"updDateTime >=":at(-1)}]),
        json!([{"updDateTime like":"20%"}]),
    ];
    for c in refused {
        let (s, v) = call(&sim, K, TOKEN, "stock_ref", hist(c.clone())).await;
        assert_eq!(s, 400, "{c} → {v}");
        assert_eq!(v["error_code"], 44, "{c} → {v}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains("絞り込み条件"),
            "{v}"
        );
    }
    let accepted = [
        (json!([{"id >":"0","id <=":"100000"}]), 3),
        (json!([{"id >=":"2","id <":"100002"}]), 2),
        (json!([{"id":"2"}]), 1),
        (
            json!([{"updDateTime >=":at(-31),"updDateTime <=":at(0)}]),
            3,
        ),
        (
            json!([{"targetDateTime >":at(-1),"targetDateTime <":at(1)}]),
            3,
        ),
    ];
    for (c, n) in accepted {
        let (s, v) = call(&sim, K, TOKEN, "stock_ref", hist(c.clone())).await;
        assert_eq!(s, 200, "{c} → {v}");
        assert_eq!(v["total_count"], n.to_string(), "{c} → {v}");
    }
    // Under AND the bounds may sit in different objects; under OR each
    // object is a lookup of its own and must be narrowed by itself.
    let split = hist(json!([{"id >":"0"},{"id <=":"100000"}]));
    let (s, v) = call(&sim, K, TOKEN, "stock_ref", split.clone()).await;
    assert_eq!((s, v["total_count"].clone()), (200, json!("3")), "{v}");
    let or = ready_with(SmaregiConfig {
        condition_objects: ConditionObjects::Or,
        ..SmaregiConfig::default()
    })
    .await;
    let (s, _) = call(&or, K, TOKEN, "stock_ref", split).await;
    assert_eq!(s, 400);
    // Stock is not a heavy table; it only needs its store. The rule can be switched off.
    let (s, _) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","conditions":[{"storeId":"1"}]}),
    )
    .await;
    assert_eq!(s, 200);
    let lax = ready_with(SmaregiConfig {
        narrowing: None,
        ..SmaregiConfig::default()
    })
    .await;
    lax.receive(K, "1", "8000001", 1).await.unwrap();
    let (s, v) = call(
        &lax,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"StockHistory"}),
    )
    .await;
    assert_eq!((s, v["total_count"].clone()), (200, json!("1")));
}

#[tokio::test]
async fn history_ids_can_jump() {
    let sim = ready().await;
    sim.receive(K, "1", "8000001", 1).await.unwrap();
    sim.set_next_history_id(K, 250_001).unwrap();
    sim.receive(K, "1", "8000001", 1).await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/history/next_id", sim.base_url()))
        .json(&json!({"contract_id":K,"next_id":400_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.receive(K, "1", "8000001", 1).await.unwrap();
    let ids: Vec<u64> = sim.history(K).iter().map(|h| h.id).collect();
    assert_eq!(ids, vec![1, 250_001, 400_000]);
    assert!(sim.set_next_history_id(K, 10).is_err());
    assert!(sim.set_next_history_id("nobody", 10).is_err());
}

async fn page(sim: &SmaregiSim, limit: usize, page: usize) -> (String, Vec<String>) {
    let (s, v) = call(
        sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"StockHistory","fields":["id"],
               "conditions":[{"id >":"0","id <=":"100000"}],
               "order":["id"],"limit":limit,"page":page}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ids = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (v["total_count"].as_str().unwrap().to_string(), ids)
}

#[tokio::test]
async fn pages_are_capped_silently() {
    let ids = |r: std::ops::RangeInclusive<u32>| r.map(|n| n.to_string()).collect::<Vec<_>>();
    let capped = |offset| SmaregiConfig {
        page_cap: Some(3),
        capped_offset: offset,
        ..SmaregiConfig::default()
    };
    let sim = ready_with(capped(CappedOffset::Requested)).await;
    for _ in 0..12 {
        sim.receive(K, "1", "8000001", 1).await.unwrap();
    }
    // The total is the true one; the page is cut to 3 and page 2 starts
    // after the 5 rows asked for, so rows 4 and 5 are never seen.
    assert_eq!(page(&sim, 5, 1).await, ("12".into(), ids(1..=3)));
    assert_eq!(page(&sim, 5, 2).await, ("12".into(), ids(6..=8)));
    assert_eq!(page(&sim, 2, 2).await, ("12".into(), ids(3..=4)));

    let sim = ready_with(capped(CappedOffset::Capped)).await;
    for _ in 0..12 {
        sim.receive(K, "1", "8000001", 1).await.unwrap();
    }
    assert_eq!(page(&sim, 5, 2).await, ("12".into(), ids(4..=6)));

    // The default cap is 500, below the documented 1000.
    let sim = ready().await;
    for _ in 0..501 {
        sim.receive(K, "1", "8000001", 1).await.unwrap();
    }
    let (total, got) = page(&sim, 1000, 1).await;
    assert_eq!((total.as_str(), got.len()), ("501", 500));
    let lax = ready_with(SmaregiConfig {
        page_cap: None,
        ..SmaregiConfig::default()
    })
    .await;
    for _ in 0..501 {
        lax.receive(K, "1", "8000001", 1).await.unwrap();
    }
    assert_eq!(page(&lax, 1000, 1).await.1.len(), 501);
}

#[tokio::test]
async fn a_stock_lookup_names_its_store_unless_the_rule_is_off() {
    let sim = ready().await;
    sim.receive(K, "1", "8000001", 1).await.unwrap();
    for params in [
        json!({"table_name":"Stock"}),
        json!({"table_name":"Stock","conditions":[{"productId":"8000001"}]}),
        json!({"table_name":"Stock","conditions":[{"storeId >":"0"}]}),
    ] {
        let (s, v) = call(&sim, K, TOKEN, "stock_ref", params.clone()).await;
        assert_eq!(s, 400, "{params}: {v}");
        assert_eq!(v["error"], "検索条件が不正です。");
        assert!(v["error_description"].as_str().unwrap().contains("storeId"));
    }
    let (s, v) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","conditions":[{"storeId":"1","productId >":"0"}]}),
    )
    .await;
    assert_eq!((s, v["total_count"].as_str()), (200, Some("1")), "{v}");
    let lax = ready_with(SmaregiConfig {
        stock_needs_store: false,
        ..SmaregiConfig::default()
    })
    .await;
    let (s, _) = call(&lax, K, TOKEN, "stock_ref", json!({"table_name":"Stock"})).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_silent_stock_change_shows_in_stock_but_writes_no_history_and_pushes_nothing() {
    let sim = ready().await;
    let (url, rec) = receiver(StatusCode::OK, "OK").await;
    sim.configure_push(K, push(&url, PushShape::Full, PairsAs::Headers));
    sim.sale(K, "1", "8000001", 1).await.unwrap();
    assert_eq!((sim.history(K).len(), sim.sends().len()), (1, 1));

    sim.advance_clock(60);
    sim.set_stock_silently(K, "1", "8000001", 9).unwrap();
    // A product never stocked in a store gets its first Stock row silently too.
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/_sim/stock/set_silently", sim.base_url()))
        .json(&json!({"contract_id":K,"store_id":"2","product_id":"8000002","amount":-4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.stock(K, "1", "8000001"), Some(9));
    assert_eq!(sim.stock(K, "2", "8000002"), Some(-4));
    assert_eq!(sim.history(K).len(), 1, "no history row");
    assert_eq!(sim.sends().len(), 1, "no push");
    assert_eq!(rec.0.lock().unwrap().len(), 1);

    let (s, v) = call(
        &sim,
        K,
        TOKEN,
        "stock_ref",
        json!({"table_name":"Stock","conditions":[{"storeId":"1"}],
               "fields":["productId","stockAmount","updDateTime"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"][0]["stockAmount"], "9");
    let now = sim.now_jst().format("%Y-%m-%d %H:%M:%S").to_string();
    assert_eq!(v["result"][0]["updDateTime"], now.as_str());

    assert!(sim.set_stock_silently(K, "9", "8000001", 1).is_err());
    assert!(sim.set_stock_silently(K, "1", "404", 1).is_err());
    let r = c
        .post(format!("{}/_sim/stock/set_silently", sim.base_url()))
        .json(&json!({"contract_id":K,"store_id":"9","product_id":"8000001","amount":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
