use std::io::Write;

use serde_json::Value;
use sne_simulators::nextengine::{
    Fault, FaultKind, FreeStockRule, NeConfig, NeSim, OrderUpdate, SeedGoods, SeedOrder,
    SeedOrderRow,
};

const C: &str = "demo";

async fn start(config: NeConfig) -> NeSim {
    NeSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post(sim: &NeSim, path: &str, form: &[(&str, &str)]) -> Value {
    let r = client()
        .post(format!("{}{}", sim.base_url(), path))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn goods(id: &str, stock: i64, alloc: i64) -> SeedGoods {
    SeedGoods {
        goods_id: id.into(),
        goods_name: format!("{id} name"),
        stock_quantity: stock,
        allocation_quantity: alloc,
    }
}

/// Signed-in sim with goods A (10, alloc 2) and B (5).
async fn ready(config: NeConfig) -> (NeSim, String, String) {
    let sim = start(config).await;
    sim.seed_goods(C, vec![goods("A", 10, 2), goods("B", 5, 0)]);
    let t = sim.issue_tokens(C);
    (sim, t.access_token, t.refresh_token)
}

async fn upload(sim: &NeSim, at: &str, csv: &str) -> Value {
    post(
        sim,
        "/api_v1_master_goods/upload",
        &[("access_token", at), ("data_type", "csv"), ("data", csv)],
    )
    .await
}

async fn que(sim: &NeSim, at: &str, que_id: &str) -> Value {
    let v = post(
        sim,
        "/api_v1_system_que/search",
        &[
            ("access_token", at),
            ("fields", "que_id,que_status_id,que_message,que_method_name"),
            ("que_id-eq", que_id),
        ],
    )
    .await;
    v["data"][0].clone()
}

#[tokio::test]
async fn sign_in_redirect_and_neauth() {
    let sim = start(NeConfig::default()).await;
    let cfg = sim.config();
    let r = client()
        .get(format!(
            "{}/users/sign_in/?client_id={}&redirect_uri=http://app.example/cb",
            sim.base_url(),
            cfg.client_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("http://app.example/cb?uid="), "{loc}");
    let url = reqwest::Url::parse(&loc).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let form = [
        ("uid", q["uid"].as_str()),
        ("state", q["state"].as_str()),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
    ];
    let v = post(&sim, "/api_neauth", &form).await;
    assert_eq!(v["result"], "success");
    for k in [
        "access_token",
        "access_token_end_date",
        "refresh_token",
        "refresh_token_end_date",
        "company_app_header",
        "company_ne_id",
        "company_name",
        "company_kana",
        "uid",
        "pic_ne_id",
        "pic_name",
        "pic_kana",
        "pic_mail_address",
    ] {
        assert!(v[k].is_string(), "{k} missing in {v}");
    }
    assert_eq!(v["access_token_end_date"].as_str().unwrap().len(), 19);
    assert_eq!(
        sim.tokens_of(C).unwrap().0,
        v["access_token"].as_str().unwrap()
    );
    // state is single-use
    let v = post(&sim, "/api_neauth", &form).await;
    assert_eq!(v["result"], "error");
    assert_eq!(v["code"].as_str().unwrap().len(), 6);

    // unknown client id → 400 page
    let r = client()
        .get(format!(
            "{}/users/sign_in/?client_id=nope&redirect_uri=http://x/",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn state_expires_and_wrong_secret() {
    let sim = start(NeConfig::default()).await;
    let cfg = sim.config();
    let get_state = || async {
        let r = client()
            .get(format!(
                "{}/users/sign_in/?client_id={}&redirect_uri=http://a/cb",
                sim.base_url(),
                cfg.client_id
            ))
            .send()
            .await
            .unwrap();
        let url = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        (q["uid"].clone(), q["state"].clone())
    };
    let (uid, state) = get_state().await;
    let v = post(
        &sim,
        "/api_neauth",
        &[
            ("uid", &uid),
            ("state", &state),
            ("client_id", &cfg.client_id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(v["result"], "error");
    sim.advance_clock(301);
    let v = post(
        &sim,
        "/api_neauth",
        &[
            ("uid", &uid),
            ("state", &state),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
        ],
    )
    .await;
    assert_eq!(v["result"], "error", "expired state accepted: {v}");
}

#[tokio::test]
async fn token_rules() {
    let (sim, at, rt) = ready(NeConfig::default()).await;
    let search = [("fields", "goods_id")];
    // missing access token
    let v = post(&sim, "/api_v1_master_goods/search", &search).await;
    assert_eq!(v["code"], "002001");
    // unknown token: 002002 without tokens
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", "bogus"), search[0]],
    )
    .await;
    assert_eq!(v["code"], "002002");
    assert!(v.get("access_token").is_none());
    // valid: echoes current tokens
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", &at), search[0]],
    )
    .await;
    assert_eq!(v["result"], "success");
    assert_eq!(v["access_token"], at.as_str());
    assert_eq!(v["count"], "2");

    // access expired, no refresh → redirect
    sim.advance_clock(86_400 + 1);
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", &at), search[0]],
    )
    .await;
    assert_eq!(v["result"], "redirect");
    assert!(v["code"].is_string());

    // access expired + refresh → success and rotation
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", &at), ("refresh_token", &rt), search[0]],
    )
    .await;
    assert_eq!(v["result"], "success");
    let new_at = v["access_token"].as_str().unwrap().to_string();
    let new_rt = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_at, at);
    assert_ne!(new_rt, rt);
    assert_eq!(sim.tokens_of(C).unwrap(), (new_at.clone(), new_rt.clone()));
    // reusing the old pair → 002002 without tokens
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", &at), ("refresh_token", &rt), search[0]],
    )
    .await;
    assert_eq!(v["code"], "002002");
    assert!(v.get("access_token").is_none());
    // new pair works
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[("access_token", &new_at), search[0]],
    )
    .await;
    assert_eq!(v["result"], "success");

    // refresh expired → 002004, no tokens
    sim.advance_clock(4 * 86_400);
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[
            ("access_token", &new_at),
            ("refresh_token", &new_rt),
            search[0],
        ],
    )
    .await;
    assert_eq!(v["result"], "error");
    assert_eq!(v["code"], "002004");
    assert!(v.get("access_token").is_none());
}

#[tokio::test]
async fn refresh_expired_can_redirect() {
    let (sim, at, rt) = ready(NeConfig {
        refresh_expired_redirect: true,
        ..NeConfig::default()
    })
    .await;
    sim.advance_clock(5 * 86_400);
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[
            ("access_token", &at),
            ("refresh_token", &rt),
            ("fields", "goods_id"),
        ],
    )
    .await;
    assert_eq!(v["result"], "redirect");
}

#[tokio::test]
async fn upload_queue_lifecycle_and_stock() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    let v = upload(&sim, &at, "syohin_code,zaiko_su\r\nA,-3\r\nB,4\r\n").await;
    assert_eq!(v["result"], "success");
    let id = v["que_id"].as_str().unwrap().to_string();
    let q = que(&sim, &at, &id).await;
    assert_eq!(q["que_status_id"], "0");
    assert_eq!(q["que_method_name"], "SYOHIN_KIHON_CSV");
    assert_eq!(sim.stock(C, "A"), Some(10));
    sim.step_queues();
    assert_eq!(que(&sim, &at, &id).await["que_status_id"], "1");
    sim.step_queues();
    assert_eq!(que(&sim, &at, &id).await["que_status_id"], "2");
    assert_eq!(sim.stock(C, "A"), Some(7));
    assert_eq!(sim.stock(C, "B"), Some(9));
    assert_eq!(
        sim.uploads()[0].csv,
        "syohin_code,zaiko_su\r\nA,-3\r\nB,4\r\n"
    );
}

#[tokio::test]
async fn gzip_upload_and_bad_data_type() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(b"zaiko_su,syohin_code,other\n2,A,x\n")
        .unwrap();
    let gz = enc.finish().unwrap();
    // reqwest's form() needs &str values, so hand-encode the binary field.
    let body = format!(
        "access_token={at}&data_type=gz&data={}",
        gz.iter().map(|b| format!("%{b:02X}")).collect::<String>()
    );
    let v: Value = client()
        .post(format!("{}/api_v1_master_goods/upload", sim.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"], "success", "{v}");
    sim.run_queues();
    assert_eq!(sim.stock(C, "A"), Some(12));
    // The simulator records how each file came: the decoded text and its data_type.
    upload(&sim, &at, "syohin_code,zaiko_su\nB,1\n").await;
    sim.operator_upload(C, "syohin_code,zaiko_su\nB,1\n", "mine.csv")
        .unwrap();
    let uploads = sim.uploads();
    let kinds: Vec<(&str, bool)> = uploads
        .iter()
        .map(|u| (u.data_type.as_str(), u.by_operator))
        .collect();
    assert_eq!(kinds, [("gz", false), ("csv", false), ("", true)]);
    assert_eq!(uploads[0].csv, "zaiko_su,syohin_code,other\n2,A,x\n");

    let v = post(
        &sim,
        "/api_v1_master_goods/upload",
        &[("access_token", &at), ("data_type", "xml"), ("data", "x")],
    )
    .await;
    assert_eq!(v["result"], "error");
    assert!(v["access_token"].is_string());
    let v = upload(&sim, &at, "foo,bar\n1,2\n").await;
    assert_eq!(v["result"], "error");
}

#[tokio::test]
async fn unknown_goods_row_error() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    // CRLF, as the service writes it: line numbers must not drift.
    let v = upload(&sim, &at, "syohin_code,zaiko_su\r\nA,-1\r\nNOPE,3\r\n").await;
    let id = v["que_id"].as_str().unwrap().to_string();
    sim.run_queues();
    let q = que(&sim, &at, &id).await;
    assert_eq!(q["que_status_id"], "-1");
    assert_eq!(
        q["que_message"],
        "3行目: 仕入先コードは必須です。商品名は必須です。原価は必須です。売価は必須です。"
    );
    // partial apply (default): row 2 applied
    assert_eq!(sim.stock(C, "A"), Some(9));
}

#[tokio::test]
async fn beyond_free_stock_and_non_integer() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    // A: stock 10, allocated 2 → free 8
    let v = upload(&sim, &at, "syohin_code,zaiko_su\nA,-9\nB,x\nA,-8\n").await;
    let id = v["que_id"].as_str().unwrap().to_string();
    sim.run_queues();
    let q = que(&sim, &at, &id).await;
    let msg = q["que_message"].as_str().unwrap();
    let lines: Vec<&str> = msg.split('\n').collect();
    assert_eq!(
        lines[0],
        "2行目: フリー在庫数以上の在庫を減らすことはできません。"
    );
    assert!(lines[1].starts_with("3行目: "));
    assert_eq!(lines.len(), 2);
    assert_eq!(sim.stock(C, "A"), Some(2));
}

#[tokio::test]
async fn the_free_stock_boundary_is_configurable() {
    const REFUSED: &str = "フリー在庫数以上の在庫を減らすことはできません。";
    // A: stock 10, allocated 2 → free 8. Each case: (rule, delta, refused).
    let cases = [
        (FreeStockRule::BeyondFree, -7, false),
        (FreeStockRule::BeyondFree, -8, false),
        (FreeStockRule::BeyondFree, -9, true),
        (FreeStockRule::ReachingZero, -7, false),
        (FreeStockRule::ReachingZero, -8, true),
        (FreeStockRule::ReachingZero, -9, true),
    ];
    for (rule, delta, refused) in cases {
        let (sim, at, _) = ready(NeConfig {
            free_stock_rule: rule,
            ..NeConfig::default()
        })
        .await;
        let csv = format!("syohin_code,zaiko_su\r\nA,{delta}\r\nB,-5\r\n");
        let id = upload(&sim, &at, &csv).await["que_id"]
            .as_str()
            .unwrap()
            .to_string();
        sim.run_queues();
        let q = que(&sim, &at, &id).await;
        let case = format!("{rule:?} {delta}");
        // B has nothing allocated: taking all 5 reaches 0 free, so only the
        // literal reading refuses it.
        let b_refused = rule == FreeStockRule::ReachingZero;
        let mut expected = Vec::new();
        if refused {
            expected.push(format!("2行目: {REFUSED}"));
            assert_eq!(sim.stock_detail(C, "A"), Some((10, 2, 8)), "{case}");
        } else {
            assert_eq!(sim.stock(C, "A"), Some(10 + delta), "{case}");
        }
        if b_refused {
            expected.push(format!("3行目: {REFUSED}"));
        }
        assert_eq!(q["que_message"], expected.join("\n"), "{case}");
        let status = if expected.is_empty() { "2" } else { "-1" };
        assert_eq!(q["que_status_id"], status, "{case}");
        assert_eq!(sim.stock(C, "B"), Some(if b_refused { 5 } else { 0 }));
    }
    // Switchable at run time; additions are never refused.
    let (sim, at, _) = ready(NeConfig::default()).await;
    sim.set_free_stock_rule(FreeStockRule::ReachingZero);
    assert_eq!(sim.config().free_stock_rule, FreeStockRule::ReachingZero);
    upload(&sim, &at, "syohin_code,zaiko_su\nA,-8\nB,3\n").await;
    sim.run_queues();
    assert_eq!(sim.stock(C, "A"), Some(10));
    assert_eq!(sim.stock(C, "B"), Some(8));
}

#[tokio::test]
async fn partial_apply_off_rejects_whole_file() {
    let (sim, at, _) = ready(NeConfig {
        partial_apply: false,
        ..NeConfig::default()
    })
    .await;
    upload(&sim, &at, "syohin_code,zaiko_su\nA,-1\nNOPE,3\n").await;
    sim.run_queues();
    assert_eq!(sim.uploads()[0].status, "-1");
    assert_eq!(sim.stock(C, "A"), Some(10));
}

fn order(id: i64, cancel: &str, status: &str, rows: &[(&str, i64)]) -> SeedOrder {
    SeedOrder {
        receive_order_id: id,
        shop_id: 1,
        shop_cut_form_id: format!("S-{id}"),
        order_date: None,
        import_date: None,
        cancel_type_id: cancel.into(),
        order_status_id: status.into(),
        send_date: None,
        rows: rows
            .iter()
            .enumerate()
            .map(|(i, (g, q))| SeedOrderRow {
                row_no: i as i64 + 1,
                goods_id: g.to_string(),
                goods_name: String::new(),
                quantity: *q,
                cancel_flag: false,
                deleted_flag: false,
            })
            .collect(),
    }
}

#[tokio::test]
async fn search_filters_sort_paging_fields() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    sim.seed_goods(C, vec![goods("C-10", 100, 0), goods("C-9", 3, 0)]);
    // fields required
    let v = post(
        &sim,
        "/api_v1_master_stock/search",
        &[("access_token", &at)],
    )
    .await;
    assert_eq!(v["result"], "error");
    assert!(v["access_token"].is_string());
    // numeric gt + sort desc + only requested fields
    let v = post(
        &sim,
        "/api_v1_master_stock/search",
        &[
            ("access_token", &at),
            ("fields", "stock_goods_id,stock_free_quantity"),
            ("stock_quantity-gt", "5"),
            ("sort", "stock_quantity-desc"),
        ],
    )
    .await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stock_goods_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C-10", "A"]);
    assert_eq!(v["count"], "2");
    assert_eq!(v["data"][1]["stock_free_quantity"], "8");
    assert_eq!(v["data"][0].as_object().unwrap().len(), 2);
    // like, in, nin, offset, limit
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[
            ("access_token", &at),
            ("fields", "goods_id"),
            ("goods_id-like", "C%"),
            ("sort", "goods_id-asc"),
            ("offset", "1"),
            ("limit", "1"),
        ],
    )
    .await;
    assert_eq!(v["count"], "1");
    assert_eq!(v["data"][0]["goods_id"], "C-9");
    let v = post(
        &sim,
        "/api_v1_master_goods/search",
        &[
            ("access_token", &at),
            ("fields", "goods_id"),
            ("goods_id-in", "A,B,Z"),
            ("goods_id-nin", "B"),
        ],
    )
    .await;
    assert_eq!(v["data"][0]["goods_id"], "A");
    assert_eq!(v["count"], "1");

    // orders: row search with joined header filters
    sim.seed_orders(
        C,
        vec![
            order(1, "0", "2", &[("A", 1), ("B", 2)]),
            order(2, "5", "2", &[("A", 4)]),
            order(3, "0", "50", &[("B", 1)]),
        ],
    );
    let v = post(
        &sim,
        "/api_v1_receiveorder_row/search",
        &[
            ("access_token", &at),
            (
                "fields",
                "receive_order_row_receive_order_id,receive_order_row_no,receive_order_row_goods_id,receive_order_row_quantity,receive_order_order_status_id",
            ),
            ("receive_order_cancel_type_id-eq", "0"),
            ("receive_order_row_cancel_flag-neq", "1"),
            ("receive_order_order_status_id-in", "2,20"),
            ("sort", "receive_order_id-asc,receive_order_row_no-desc"),
        ],
    )
    .await;
    assert_eq!(v["count"], "2");
    assert_eq!(v["data"][0]["receive_order_row_no"], "2");
    assert_eq!(v["data"][0]["receive_order_row_quantity"], "2");
    assert_eq!(v["data"][1]["receive_order_order_status_id"], "2");

    // cancel an order, bumps last-modified; -gte on dates as strings
    sim.advance_clock(60);
    let since = sim.now_jst().format("%Y-%m-%d %H:%M:%S").to_string();
    assert!(sim.update_order(
        C,
        1,
        OrderUpdate {
            cancel_type_id: Some("5".into()),
            ..Default::default()
        }
    ));
    let v = post(
        &sim,
        "/api_v1_receiveorder_base/search",
        &[
            ("access_token", &at),
            (
                "fields",
                "receive_order_id,receive_order_cancel_type_id,receive_order_import_date",
            ),
            ("receive_order_last_modified_date-gte", &since),
        ],
    )
    .await;
    assert_eq!(v["count"], "1");
    assert_eq!(v["data"][0]["receive_order_cancel_type_id"], "5");
    assert!(v["data"][0]["receive_order_import_date"].is_string());
}

#[tokio::test]
async fn set_goods_search_answers_one_row_per_component_and_refuses_other_tables_fields() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    sim.seed_goods(C, vec![goods("SET-1", 0, 0)]);
    sim.seed_set_goods(C, "SET-1", vec![("A".into(), 2), ("B".into(), 1)]);
    let v = post(
        &sim,
        "/api_v1_master_setgoods/search",
        &[
            ("access_token", &at),
            (
                "fields",
                "set_goods_id,set_goods_detail_goods_id,set_goods_detail_quantity",
            ),
            ("set_goods_id-in", "SET-1,A"),
            ("sort", "set_goods_detail_goods_id-asc"),
        ],
    )
    .await;
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(v["count"], "2");
    let rows: Vec<(&str, &str, &str)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["set_goods_id"].as_str().unwrap(),
                r["set_goods_detail_goods_id"].as_str().unwrap(),
                r["set_goods_detail_quantity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("SET-1", "A", "2"), ("SET-1", "B", "1")]);

    // An ordinary goods is no set: the goods table still has SET-1, the set table not A.
    let v = post(
        &sim,
        "/api_v1_master_setgoods/search",
        &[
            ("access_token", &at),
            ("fields", "set_goods_id"),
            ("set_goods_id-eq", "A"),
        ],
    )
    .await;
    assert_eq!(v["count"], "0", "{v}");

    let v = post(
        &sim,
        "/api_v1_master_setgoods/search",
        &[("access_token", &at), ("fields", "set_goods_id,goods_id")],
    )
    .await;
    assert_eq!(v["result"], "error");
    assert!(v["message"].as_str().unwrap().contains("(goods_id)"), "{v}");
}

async fn goods_search(sim: &NeSim, at: &str, extra: &[(&str, &str)]) -> reqwest::Result<Value> {
    let mut form = vec![("access_token", at), ("fields", "goods_id")];
    form.extend_from_slice(extra);
    client()
        .post(format!("{}/api_v1_master_goods/search", sim.base_url()))
        .form(&form)
        .send()
        .await?
        .json()
        .await
}

#[tokio::test]
async fn envelope_faults() {
    let (sim, at, _) = ready(NeConfig {
        overload_wait_ms: 10,
        ..NeConfig::default()
    })
    .await;
    let cases = [
        (FaultKind::Overload, vec![], "003002", true),
        (
            FaultKind::OverloadWaitTimeout,
            vec![("wait_flag", "1")],
            "003001",
            true,
        ),
        (FaultKind::Maintenance002007, vec![], "002007", true),
        (FaultKind::Maintenance003004, vec![], "003004", true),
        (FaultKind::SystemError999999, vec![], "999999", false),
    ];
    for (kind, extra, code, tokens) in cases {
        sim.inject_fault(Fault::new(kind).times(1));
        let v = goods_search(&sim, &at, &extra).await.unwrap();
        assert_eq!(v["result"], "error");
        assert_eq!(v["code"], code);
        assert_eq!(v.get("access_token").is_some(), tokens, "{code}");
        // fault consumed
        let v = goods_search(&sim, &at, &extra).await.unwrap();
        assert_eq!(v["result"], "success");
    }
    // wait_flag=1 rides out an overload
    sim.inject_fault(Fault::new(FaultKind::Overload).times(1));
    let v = goods_search(&sim, &at, &[("wait_flag", "1")])
        .await
        .unwrap();
    assert_eq!(v["result"], "success");
    // path filter: fault on another path does not hit search
    sim.inject_fault(Fault::new(FaultKind::Overload).on("/api_v1_master_goods/upload"));
    let v = goods_search(&sim, &at, &[]).await.unwrap();
    assert_eq!(v["result"], "success");
    sim.clear_faults();
}

#[tokio::test]
async fn code_faults_answer_each_code_with_its_text() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    let cases = [
        ("008003", "受注取込中", true),
        ("008007", "納品書印刷中", true),
        ("008010", "棚卸中", true),
        ("001007", "利用停止", true),
        ("002003", "利用停止", true),
        ("003003", "利用停止", true),
        ("002002", "", false),
        ("002004", "", false),
        ("999999", "システムエラー", false),
    ];
    for (code, text, tokens) in cases {
        sim.inject_fault(Fault::new(FaultKind::Code(code.into())).times(1));
        // wait_flag=1 does not wait out a data-state or contract error.
        let v = goods_search(&sim, &at, &[("wait_flag", "1")])
            .await
            .unwrap();
        assert_eq!(v["result"], "error", "{code}");
        assert_eq!(v["code"], code);
        assert!(v["message"].as_str().unwrap().contains(text), "{v}");
        assert_eq!(v.get("access_token").is_some(), tokens, "{code}");
        let v = goods_search(&sim, &at, &[]).await.unwrap();
        assert_eq!(v["result"], "success", "{code}: fault consumed");
    }
    // The control route takes the same kind.
    let r = client()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&serde_json::json!({"kind": {"Code": "008010"}, "remaining": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let v = goods_search(&sim, &at, &[]).await.unwrap();
    assert_eq!(v["code"], "008010");
}

#[tokio::test]
async fn http_level_faults() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    sim.inject_fault(Fault::new(FaultKind::Http5xx(503)).times(1));
    let r = client()
        .post(format!("{}/api_v1_master_goods/search", sim.base_url()))
        .form(&[("access_token", at.as_str()), ("fields", "goods_id")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    sim.inject_fault(Fault::new(FaultKind::Slow(300)).times(1));
    let t = std::time::Instant::now();
    let v = goods_search(&sim, &at, &[]).await.unwrap();
    assert!(t.elapsed().as_millis() >= 300);
    assert_eq!(v["result"], "success");

    sim.inject_fault(
        Fault::new(FaultKind::DropConnection)
            .on("/api_v1_master_goods/upload")
            .times(1),
    );
    let r = client()
        .post(format!("{}/api_v1_master_goods/upload", sim.base_url()))
        .form(&[
            ("access_token", at.as_str()),
            ("data_type", "csv"),
            ("data", "syohin_code,zaiko_su\nA,1\n"),
        ])
        .send()
        .await;
    assert!(r.is_err(), "drop must be a connection error");
    assert!(
        sim.uploads().is_empty(),
        "dropped request must not be processed"
    );
}

#[tokio::test]
async fn drop_after_processing_creates_queue() {
    let (sim, at, _) = ready(NeConfig::default()).await;
    sim.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on("/api_v1_master_goods/upload")
            .times(1),
    );
    let r = client()
        .post(format!("{}/api_v1_master_goods/upload", sim.base_url()))
        .form(&[
            ("access_token", at.as_str()),
            ("data_type", "csv"),
            ("data", "syohin_code,zaiko_su\nA,1\n"),
        ])
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(sim.uploads().len(), 1);
    let q = que(&sim, &at, "1").await;
    assert_eq!(q["que_status_id"], "0");
    let calls = sim.calls();
    let up = calls
        .iter()
        .find(|c| c.path == "/api_v1_master_goods/upload")
        .unwrap();
    assert_eq!(up.outcome, "dropped");
    assert!(
        calls
            .iter()
            .flat_map(|c| c.fields.iter())
            .filter(|(k, _)| k == "access_token")
            .all(|(_, v)| v == "***")
    );
}

#[tokio::test]
async fn auto_queue_mode() {
    let (sim, at, _) = ready(NeConfig {
        queue_mode: sne_simulators::nextengine::QueueMode::Auto { delay_ms: 20 },
        ..NeConfig::default()
    })
    .await;
    upload(&sim, &at, "syohin_code,zaiko_su\nB,1\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sim.uploads()[0].status, "2");
    assert_eq!(sim.stock(C, "B"), Some(6));
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = start(NeConfig::default()).await;
    let c = client();
    let base = sim.base_url();
    c.post(format!("{base}/_sim/goods"))
        .json(&serde_json::json!({"company_id":"demo","goods":[{"goods_id":"X","goods_name":"x","stock_quantity":4}]}))
        .send()
        .await
        .unwrap();
    let v: Value = c
        .get(format!("{base}/_sim/stock?company_id=demo&goods_id=X"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["stock_quantity"], 4);
    let t: Value = c
        .post(format!("{base}/_sim/tokens/issue"))
        .json(&serde_json::json!({"company_id":"demo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(t["access_token"].is_string());
    let r = c
        .post(format!("{base}/_sim/faults"))
        .json(&serde_json::json!({"kind":{"Http5xx":502},"remaining":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/api_v1_master_goods/search"))
        .form(&[("access_token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}
