//! `NeClient` against the NextEngine simulator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Duration as ChronoDuration;
use sne_domain::tenant::NeTokens;
use sne_domain::{GoodsCode, TenantId};
use sne_nextengine::{NeClient, NeClientConfig, RetryPolicy};
use sne_ports::nextengine::{NeError, NextEngineApi, OrderRowQuery, QueueStatus};
use sne_ports::{StoreResult, TokenStore};
use sne_simulators::nextengine::{
    Fault, FaultKind, NeConfig, NeSim, OrderUpdate, SeedGoods, SeedOrder, SeedOrderRow, TokenPair,
};

const C: &str = "demo";
const GOODS_SEARCH: &str = "/api_v1_master_goods/search";
const UPLOAD: &str = "/api_v1_master_goods/upload";
const DAY: i64 = 86_400;

/// A token store shared by "processes" (clients), with hooks to stage races.
#[derive(Default)]
struct MemStore {
    tokens: Mutex<HashMap<TenantId, NeTokens>>,
    /// Returned by the next read instead of the stored pair (a stale read).
    stale_read: Mutex<Option<NeTokens>>,
    /// Written right after the next read (another process saving meanwhile).
    write_after_read: Mutex<Option<NeTokens>>,
}

impl MemStore {
    fn get(&self, t: &TenantId) -> Option<NeTokens> {
        self.tokens.lock().unwrap().get(t).cloned()
    }
    fn put(&self, t: &TenantId, tokens: NeTokens) {
        self.tokens.lock().unwrap().insert(t.clone(), tokens);
    }
}

#[async_trait]
impl TokenStore for MemStore {
    async fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>> {
        let read = match self.stale_read.lock().unwrap().take() {
            Some(stale) => Some(stale),
            None => self.get(tenant),
        };
        if let Some(newer) = self.write_after_read.lock().unwrap().take() {
            self.put(tenant, newer);
        }
        Ok(read)
    }

    async fn swap_ne_tokens(
        &self,
        tenant: &TenantId,
        expected: Option<&str>,
        new: &NeTokens,
    ) -> StoreResult<bool> {
        let mut map = self.tokens.lock().unwrap();
        let current = map.get(tenant).map(|t| t.access_token.as_str());
        if current != expected {
            return Ok(false);
        }
        map.insert(tenant.clone(), new.clone());
        Ok(true)
    }
}

fn tenant() -> TenantId {
    TenantId("t-1".into())
}

fn to_tokens(p: TokenPair) -> NeTokens {
    NeTokens {
        access_token: p.access_token,
        refresh_token: p.refresh_token,
        access_token_end: p.access_token_end_date,
        refresh_token_end: p.refresh_token_end_date,
    }
}

fn config(sim: &NeSim) -> NeClientConfig {
    let mut c = NeClientConfig::new("sim-client-id", "sim-client-secret", "http://app.test/cb");
    c.api_base_url = sim.base_url();
    c.sign_in_base_url = sim.base_url();
    c.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    c.request_timeout = Duration::from_secs(5);
    c
}

/// A simulator with goods A and B, tokens issued and stored for the tenant.
async fn setup() -> (NeSim, Arc<MemStore>, NeClient) {
    let sim = NeSim::start(NeConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.seed_goods(C, vec![goods("A", 10), goods("B", 5)]);
    let store = Arc::new(MemStore::default());
    store.put(&tenant(), to_tokens(sim.issue_tokens(C)));
    let client = NeClient::new(config(&sim), store.clone());
    (sim, store, client)
}

fn goods(id: &str, stock: i64) -> SeedGoods {
    SeedGoods {
        goods_id: id.into(),
        goods_name: format!("{id} name"),
        stock_quantity: stock,
        allocation_quantity: 0,
    }
}

fn codes(list: &[&str]) -> Vec<GoodsCode> {
    list.iter().map(|s| GoodsCode::from(*s)).collect()
}

fn calls_to(sim: &NeSim, path: &str) -> Vec<(String, Option<String>)> {
    sim.calls()
        .into_iter()
        .filter(|c| c.path == path)
        .map(|c| (c.outcome, c.code))
        .collect()
}

async fn probe(client: &NeClient) -> Result<(), NeError> {
    let found = client
        .existing_goods(&tenant(), &codes(&["A", "Z"]))
        .await?;
    assert_eq!(found.len(), 1);
    assert!(found.contains("A"));
    Ok(())
}

#[test]
fn sign_in_url_is_encoded() {
    let store = Arc::new(MemStore::default());
    let client = NeClient::new(
        NeClientConfig::new("abc 1", "s", "https://app.example/ne/cb?x=1&y=2"),
        store,
    );
    assert_eq!(
        client.sign_in_url(),
        "https://base.next-engine.org/users/sign_in/?client_id=abc+1\
         &redirect_uri=https%3A%2F%2Fapp.example%2Fne%2Fcb%3Fx%3D1%26y%3D2"
    );
}

#[tokio::test]
async fn authorize_through_the_sign_in_redirect() {
    let (sim, _store, client) = setup().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser.get(client.sign_in_url()).send().await.unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("http://app.test/cb?"), "{location}");
    let url = reqwest::Url::parse(&location).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();

    let auth = client.authorize(&q["uid"], &q["state"]).await.unwrap();
    let current = sim.token_pair_of(C).unwrap();
    assert_eq!(auth.tokens, to_tokens(current));
    assert_eq!(auth.company_name, "デモ株式会社");
    assert_eq!(auth.uid, q["uid"]);
    assert!(!auth.company_ne_id.is_empty());
    assert!(!auth.pic_name.is_empty());
    assert!(auth.tokens.refresh_token_end > auth.tokens.access_token_end);

    // A state is single-use.
    let again = client.authorize(&q["uid"], &q["state"]).await;
    assert!(
        matches!(again, Err(NeError::Api { ref code, .. }) if code == "001004"),
        "{again:?}"
    );
}

#[tokio::test]
async fn authorize_with_a_wrong_secret_is_refused_without_leaking_it() {
    let (sim, store, _) = setup().await;
    let mut c = config(&sim);
    c.client_secret = "wrong-secret-value".into();
    let client = NeClient::new(c, store);
    let err = client.authorize("uid", "state").await.unwrap_err();
    assert!(matches!(err, NeError::Api { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn rotated_tokens_are_saved_and_accepted() {
    let (sim, store, client) = setup().await;
    let before = store.get(&tenant()).unwrap();
    sim.advance_clock(DAY + 60);

    probe(&client).await.unwrap();
    let after = store.get(&tenant()).unwrap();
    assert_ne!(after.access_token, before.access_token);
    assert_ne!(after.refresh_token, before.refresh_token);
    assert_eq!(after, to_tokens(sim.token_pair_of(C).unwrap()));
    assert!(after.access_token_end > before.access_token_end);

    // The new pair works and is not rotated again.
    probe(&client).await.unwrap();
    assert_eq!(store.get(&tenant()).unwrap(), after);
}

#[tokio::test]
async fn concurrent_calls_of_one_tenant_do_not_race_the_rotation() {
    let (sim, store, client) = setup().await;
    sim.advance_clock(DAY + 60);
    sim.clear_calls();
    let (a, b, c) = tokio::join!(probe(&client), probe(&client), probe(&client));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    // Serialised: the first call rotates, the others use the saved pair.
    let seen = calls_to(&sim, GOODS_SEARCH);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(o, _)| o == "success"), "{seen:?}");
    assert_eq!(
        store.get(&tenant()).unwrap(),
        to_tokens(sim.token_pair_of(C).unwrap())
    );
}

#[tokio::test]
async fn a_stale_process_never_overwrites_newer_tokens() {
    let (sim, store, client) = setup().await;
    sim.advance_clock(DAY + 60);
    let newer = NeTokens {
        access_token: "saved-by-someone-else".into(),
        ..store.get(&tenant()).unwrap()
    };
    *store.write_after_read.lock().unwrap() = Some(newer.clone());

    // The call itself succeeds (NE rotated for us) ...
    probe(&client).await.unwrap();
    // ... but the compare-and-set refuses to replace what was saved meanwhile.
    assert_eq!(store.get(&tenant()).unwrap(), newer);
}

#[tokio::test]
async fn superseded_tokens_are_reloaded_once() {
    let (sim, store, client_a) = setup().await;
    let original = store.get(&tenant()).unwrap();
    sim.advance_clock(DAY + 60);

    // Process B rotates the pair first and saves it.
    let client_b = NeClient::new(config(&sim), store.clone());
    probe(&client_b).await.unwrap();
    let rotated = store.get(&tenant()).unwrap();
    assert_ne!(rotated, original);

    // Process A read the old pair just before: NE answers 002002, A reloads
    // the stored pair and succeeds without a new sign-in.
    sim.clear_calls();
    *store.stale_read.lock().unwrap() = Some(original);
    probe(&client_a).await.unwrap();
    let seen = calls_to(&sim, GOODS_SEARCH);
    assert_eq!(
        seen,
        vec![
            ("error".to_string(), Some("002002".to_string())),
            ("success".to_string(), None)
        ]
    );
    assert_eq!(store.get(&tenant()).unwrap(), rotated);
}

#[tokio::test]
async fn unknown_tokens_are_a_token_error() {
    let (_sim, store, client) = setup().await;
    let mut bogus = store.get(&tenant()).unwrap();
    bogus.access_token = "not-a-token".into();
    store.put(&tenant(), bogus);
    let err = probe(&client).await.unwrap_err();
    assert!(
        matches!(err, NeError::Token { ref code, .. } if code == "002002"),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_tokens_are_a_token_error() {
    let (_sim, _store, client) = setup().await;
    let other = TenantId("no-tokens".into());
    let err = client
        .existing_goods(&other, &codes(&["A"]))
        .await
        .unwrap_err();
    assert!(matches!(err, NeError::Token { .. }), "{err:?}");
}

#[tokio::test]
async fn expired_refresh_token_needs_a_new_sign_in() {
    let (sim, store, client) = setup().await;
    let before = store.get(&tenant()).unwrap();
    sim.advance_clock(3 * DAY + 60);
    let err = probe(&client).await.unwrap_err();
    assert!(
        matches!(err, NeError::Token { ref code, .. } if code == "002004"),
        "{err:?}"
    );
    assert_eq!(store.get(&tenant()).unwrap(), before);
    // Secrets stay out of error texts.
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&before.access_token) && !text.contains(&before.refresh_token));
}

#[tokio::test]
async fn overload_is_retried() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(Fault::new(FaultKind::Overload).on(GOODS_SEARCH).times(2));
    probe(&client).await.unwrap();
    let seen = calls_to(&sim, GOODS_SEARCH);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].1.as_deref(), Some("003002"));
    // The client never asks NE to hold the request.
    assert!(
        sim.calls()
            .iter()
            .all(|c| c.fields.iter().all(|(k, _)| k != "wait_flag"))
    );
}

#[tokio::test]
async fn lasting_maintenance_is_busy() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(Fault::new(FaultKind::Maintenance002007).on(GOODS_SEARCH));
    let err = probe(&client).await.unwrap_err();
    assert!(
        matches!(err, NeError::Busy { ref code, .. } if code == "002007"),
        "{err:?}"
    );
    assert_eq!(calls_to(&sim, GOODS_SEARCH).len(), 4);
}

#[tokio::test]
async fn stocktake_and_printing_codes_are_retried_like_other_busy_codes() {
    for code in ["008007", "008010", "008003"] {
        let (sim, _store, client) = setup().await;
        sim.inject_fault(Fault::new(FaultKind::Code(code.into())).on(UPLOAD).times(2));
        let que_id = client
            .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-1\r\n")
            .await
            .unwrap_or_else(|e| panic!("{code}: {e:?}"));
        let seen = calls_to(&sim, UPLOAD);
        assert_eq!(seen.len(), 3, "{code}: {seen:?}");
        assert_eq!(seen[0].1.as_deref(), Some(code));
        let uploads = sim.uploads();
        assert_eq!(uploads.len(), 1, "{code}");
        assert_eq!(uploads[0].que_id, que_id);
    }
    // Lasting: Busy with the code, after the bounded attempts.
    let (sim, _store, client) = setup().await;
    sim.inject_fault(Fault::new(FaultKind::Code("008010".into())).on(GOODS_SEARCH));
    let err = probe(&client).await.unwrap_err();
    assert!(
        matches!(err, NeError::Busy { ref code, .. } if code == "008010"),
        "{err:?}"
    );
    assert_eq!(calls_to(&sim, GOODS_SEARCH).len(), 4);
}

#[tokio::test]
async fn suspension_codes_are_their_own_error_and_not_retried() {
    for code in ["001007", "002003", "003003"] {
        let (sim, store, client) = setup().await;
        let before = store.get(&tenant()).unwrap();
        sim.inject_fault(Fault::new(FaultKind::Code(code.into())).on(UPLOAD));
        let err = client
            .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-1\r\n")
            .await
            .unwrap_err();
        match &err {
            NeError::Suspended { code: c, message } => {
                assert_eq!(c, code);
                assert!(message.contains("利用停止"), "{message}");
            }
            other => panic!("{code}: {other:?}"),
        }
        assert!(!err.outcome_unknown());
        assert_eq!(calls_to(&sim, UPLOAD).len(), 1, "{code}");
        assert!(sim.uploads().is_empty());
        // Not a token problem: the stored pair stays as it was.
        assert_eq!(store.get(&tenant()).unwrap(), before);
    }
}

#[tokio::test]
async fn a_redirect_is_a_token_error_whatever_its_code() {
    // The simulator's `redirect_code` (002003 by default) is the other
    // reading of 002003: a sign-in request, not a suspension.
    for redirect_code in ["002003", "002004"] {
        let sim = NeSim::start(
            NeConfig {
                redirect_code: redirect_code.into(),
                ..NeConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        sim.seed_goods(C, vec![goods("A", 10)]);
        let store = Arc::new(MemStore::default());
        let mut tokens = to_tokens(sim.issue_tokens(C));
        // Without a refresh token an expired access token gets `redirect`.
        tokens.refresh_token = String::new();
        store.put(&tenant(), tokens);
        let client = NeClient::new(config(&sim), store);
        sim.advance_clock(DAY + 60);
        let err = probe(&client).await.unwrap_err();
        assert!(
            matches!(err, NeError::Token { ref code, .. } if code == redirect_code),
            "{err:?}"
        );
        assert_eq!(calls_to(&sim, GOODS_SEARCH)[0].0, "redirect");
    }
}

#[tokio::test]
async fn read_transport_errors_are_retried() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(
        Fault::new(FaultKind::Http5xx(503))
            .on(GOODS_SEARCH)
            .times(1),
    );
    sim.inject_fault(
        Fault::new(FaultKind::DropConnection)
            .on(GOODS_SEARCH)
            .times(1),
    );
    probe(&client).await.unwrap();
    assert_eq!(calls_to(&sim, GOODS_SEARCH).len(), 3);

    sim.inject_fault(Fault::new(FaultKind::DropConnection).on(GOODS_SEARCH));
    let err = probe(&client).await.unwrap_err();
    assert!(matches!(err, NeError::Transport(_)), "{err:?}");
    assert!(err.outcome_unknown());
}

#[tokio::test]
async fn read_timeouts_are_retried() {
    let (sim, store, _) = setup().await;
    let mut c = config(&sim);
    c.request_timeout = Duration::from_millis(300);
    let client = NeClient::new(c, store);
    sim.inject_fault(Fault::new(FaultKind::Slow(1_500)).on(GOODS_SEARCH).times(1));
    probe(&client).await.unwrap();
}

#[tokio::test]
async fn upload_lost_answer_is_not_retried() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(
        Fault::new(FaultKind::DropAfterProcessing)
            .on(UPLOAD)
            .times(1),
    );
    let err = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-1\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, NeError::Transport(_)), "{err:?}");
    assert!(err.outcome_unknown());
    assert_eq!(calls_to(&sim, UPLOAD).len(), 1);
    assert_eq!(sim.uploads().len(), 1, "NE did take the upload");
}

#[tokio::test]
async fn upload_5xx_is_not_retried() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(Fault::new(FaultKind::Http5xx(502)).on(UPLOAD).times(1));
    let err = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-1\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, NeError::Transport(_)), "{err:?}");
    assert_eq!(calls_to(&sim, UPLOAD).len(), 1);
}

#[tokio::test]
async fn upload_overload_is_retried_into_one_queue() {
    let (sim, _store, client) = setup().await;
    sim.inject_fault(Fault::new(FaultKind::Overload).on(UPLOAD).times(2));
    let que_id = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-1\r\n")
        .await
        .unwrap();
    assert_eq!(calls_to(&sim, UPLOAD).len(), 3);
    let uploads = sim.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].que_id, que_id);
}

#[tokio::test]
async fn uploads_are_sent_gzipped() {
    let (sim, _store, client) = setup().await;
    // Bytes that need percent-encoding once compressed, and a BOM-less CRLF file.
    let csv = "syohin_code,zaiko_su\r\nA,-1\r\nB,+2\r\n";
    client
        .upload_stock_csv(&tenant(), csv.as_bytes())
        .await
        .unwrap();
    let uploads = sim.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].data_type, "gz");
    assert_eq!(uploads[0].csv, csv, "NextEngine reads back the same file");
    let call = sim.calls().into_iter().find(|c| c.path == UPLOAD).unwrap();
    let field = |k: &str| {
        call.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("data_type").as_deref(), Some("gz"));
    assert_ne!(
        field("data").as_deref(),
        Some(csv),
        "not sent as plain text"
    );
    sim.run_queues();
    assert_eq!(sim.stock(C, "A"), Some(9));
    assert_eq!(sim.stock(C, "B"), Some(7));
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_never_sent() {
    let (sim, _store, client) = setup().await;
    let err = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\n\x82\xa0,-1\r\n")
        .await
        .unwrap_err();
    assert!(
        matches!(err, NeError::Api { ref code, .. } if code == "client"),
        "{err:?}"
    );
    assert!(calls_to(&sim, UPLOAD).is_empty());
}

#[tokio::test]
async fn upload_rejected_file_is_an_api_error() {
    let (sim, _store, client) = setup().await;
    let err = client
        .upload_stock_csv(&tenant(), b"zaiko_su\r\n-1\r\n")
        .await
        .unwrap_err();
    assert!(matches!(err, NeError::Api { .. }), "{err:?}");
    assert!(sim.uploads().is_empty());
}

#[tokio::test]
async fn existing_goods_chunks_and_matches_exactly() {
    let (sim, _store, client) = setup().await;
    let seeded: Vec<SeedGoods> = (0..1500).map(|i| goods(&format!("G{i:05}"), 1)).collect();
    sim.seed_goods(C, seeded);
    sim.seed_goods(C, vec![goods("1", 1)]);
    sim.clear_calls();

    let mut asked: Vec<GoodsCode> = (0..2100).map(|i| format!("G{i:05}").into()).collect();
    asked.extend(codes(&["", "A,B", "01", "G00001"]));
    let found = client.existing_goods(&tenant(), &asked).await.unwrap();
    assert_eq!(found.len(), 1500);
    assert!(found.contains("G00000") && found.contains("G01499"));
    assert!(!found.contains("G01500"));
    // "01" is not the goods "1".
    assert!(!found.contains("1") && !found.contains("01"));
    // 2101 distinct valid codes: three `-in` chunks, none of which fills a page.
    assert_eq!(calls_to(&sim, GOODS_SEARCH).len(), 3);

    assert!(
        client
            .existing_goods(&tenant(), &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn queue_statuses_follow_processing() {
    let (sim, _store, client) = setup().await;
    let start = sim.now_jst() - ChronoDuration::seconds(1);
    let good = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-3\r\nB,2\r\n")
        .await
        .unwrap();
    let bad = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nNOPE,1\r\n")
        .await
        .unwrap();
    let ids = vec![good.clone(), bad.clone(), "999".into()];

    let q = client.queues_by_id(&tenant(), &ids).await.unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|e| e.status == QueueStatus::Waiting));
    assert!(q.iter().all(|e| e.method_name == "SYOHIN_KIHON_CSV"));
    assert!(q.iter().all(|e| e.created_at.is_some()));

    sim.step_queues();
    let q = client.queues_by_id(&tenant(), &ids).await.unwrap();
    assert!(q.iter().all(|e| e.status == QueueStatus::Running));

    sim.run_queues();
    let q = client.queues_by_id(&tenant(), &ids).await.unwrap();
    let by_id: HashMap<_, _> = q.into_iter().map(|e| (e.que_id.clone(), e)).collect();
    assert_eq!(by_id[&good].status, QueueStatus::Done);
    assert_eq!(by_id[&bad].status, QueueStatus::Failed);
    assert!(!by_id[&bad].message.is_empty());
    assert_eq!(sim.stock(C, "A"), Some(7));

    let since = client
        .goods_upload_queues_since(&tenant(), start)
        .await
        .unwrap();
    let listed: Vec<_> = since.iter().map(|e| e.que_id.clone()).collect();
    assert_eq!(listed, vec![good, bad]);
    let future = sim.now_jst() + ChronoDuration::hours(1);
    assert!(
        client
            .goods_upload_queues_since(&tenant(), future)
            .await
            .unwrap()
            .is_empty()
    );
}

fn order(id: i64, rows: usize) -> SeedOrder {
    SeedOrder {
        receive_order_id: id,
        shop_id: 1,
        shop_cut_form_id: format!("SHOP-{id}"),
        order_date: None,
        import_date: None,
        cancel_type_id: "0".into(),
        order_status_id: "2".into(),
        send_date: None,
        rows: (1..=rows as i64)
            .map(|n| SeedOrderRow {
                row_no: n,
                goods_id: if n % 2 == 1 { "A".into() } else { "B".into() },
                goods_name: "名前".into(),
                quantity: n,
                cancel_flag: false,
                deleted_flag: false,
            })
            .collect(),
    }
}

#[tokio::test]
async fn order_rows_page_and_filter() {
    let (sim, _store, client) = setup().await;
    let seeded_at = sim.now_jst();
    sim.seed_orders(C, (1..=4).map(|id| order(id, 2)).collect());

    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let q = OrderRowQuery {
            modified_since: None,
            imported_since: Some(seeded_at),
            offset,
            limit: 3,
        };
        let page = client.order_rows(&tenant(), &q).await.unwrap();
        let n = page.len();
        all.extend(page);
        if n < 3 {
            break;
        }
        offset += n;
    }
    assert_eq!(all.len(), 8);
    let keys: Vec<_> = all
        .iter()
        .map(|r| (r.receive_order_id.clone(), r.row_no.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by_key(|(o, r)| (o.parse::<i64>().unwrap(), r.parse::<i64>().unwrap()));
    assert_eq!(keys, sorted);
    let first = &all[0];
    assert_eq!(first.receive_order_id, "1");
    assert_eq!(first.shop_order_no, "SHOP-1");
    assert_eq!(first.goods_id, "A");
    assert_eq!(first.quantity, 1);
    assert_eq!(first.cancel_type_id, "0");
    assert!(!first.row_cancelled && !first.row_deleted);
    assert!(first.import_date.is_some());
    assert!(first.last_modified_newest.is_some());

    // Only the changed order comes back for a later modified_since.
    sim.advance_clock(600);
    let changed_from = sim.now_jst();
    sim.update_order(
        C,
        3,
        OrderUpdate {
            cancel_rows: vec![2],
            ..OrderUpdate::default()
        },
    );
    let q = OrderRowQuery {
        modified_since: Some(changed_from),
        imported_since: None,
        offset: 0,
        limit: 100,
    };
    let changed = client.order_rows(&tenant(), &q).await.unwrap();
    assert_eq!(changed.len(), 2);
    assert!(changed.iter().all(|r| r.receive_order_id == "3"));
    assert!(changed.iter().any(|r| r.row_no == "2" && r.row_cancelled));
}

#[tokio::test]
async fn keep_alive_rotates_expired_access_tokens_of_a_quiet_tenant() {
    let (sim, store, client) = setup().await;
    let before = store.get(&tenant()).unwrap();
    // Two quiet days: without a call the refresh token would die on the third.
    sim.advance_clock(2 * DAY);
    client.keep_tokens_alive(&tenant()).await.unwrap();
    let after = store.get(&tenant()).unwrap();
    assert_ne!(after.refresh_token, before.refresh_token);
    assert!(after.refresh_token_end > before.refresh_token_end);
    assert_eq!(after, to_tokens(sim.token_pair_of(C).unwrap()));
}

/// One "process"'s handle onto the shared store, with hooks to stage races.
struct ProcStore {
    shared: Arc<MemStore>,
    /// This many next swaps fail as a store outage would.
    failing_swaps: std::sync::atomic::AtomicUsize,
    swaps: std::sync::atomic::AtomicUsize,
    /// Before writing, a swap says so on the first and waits for the second.
    hold_swap: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>,
    reads: std::sync::atomic::AtomicUsize,
    /// Notified when read number `.0` (1-based) has been answered.
    after_read: Option<(usize, Arc<tokio::sync::Notify>)>,
}

impl ProcStore {
    fn new(shared: Arc<MemStore>) -> Self {
        ProcStore {
            shared,
            failing_swaps: Default::default(),
            swaps: Default::default(),
            hold_swap: None,
            reads: Default::default(),
            after_read: None,
        }
    }
}

#[async_trait]
impl TokenStore for ProcStore {
    async fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>> {
        let read = self.shared.ne_tokens(tenant).await;
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if let Some((at, notify)) = &self.after_read
            && *at == n
        {
            notify.notify_one();
        }
        read
    }

    async fn swap_ne_tokens(
        &self,
        tenant: &TenantId,
        expected: Option<&str>,
        new: &NeTokens,
    ) -> StoreResult<bool> {
        use std::sync::atomic::Ordering::SeqCst;
        self.swaps.fetch_add(1, SeqCst);
        if let Some((entered, release)) = &self.hold_swap {
            entered.notify_one();
            release.notified().await;
        }
        let fail = self
            .failing_swaps
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(sne_ports::StoreError::Unavailable(
                "store briefly unreachable".into(),
            ));
        }
        self.shared.swap_ne_tokens(tenant, expected, new).await
    }
}

#[tokio::test]
async fn a_failed_save_of_rotated_tokens_is_retried() {
    let (sim, store, _) = setup().await;
    let proc = Arc::new(ProcStore::new(store.clone()));
    proc.failing_swaps
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let client = NeClient::new(config(&sim), proc.clone());
    let before = store.get(&tenant()).unwrap();
    sim.advance_clock(DAY + 60);

    // The rotated pair is the only valid one now: losing it would force a sign-in.
    probe(&client).await.unwrap();
    assert_eq!(proc.swaps.load(std::sync::atomic::Ordering::SeqCst), 2);
    let after = store.get(&tenant()).unwrap();
    assert_ne!(after, before);
    assert_eq!(after, to_tokens(sim.token_pair_of(C).unwrap()));
    sim.clear_calls();
    probe(&client).await.unwrap();
    assert_eq!(
        calls_to(&sim, GOODS_SEARCH),
        vec![("success".to_string(), None)]
    );
}

#[tokio::test]
async fn superseded_while_the_rotating_process_is_still_saving() {
    let (sim, store, _) = setup().await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    // Process A rotates at NextEngine and is held before its save ...
    let mut a = ProcStore::new(store.clone());
    a.hold_swap = Some((entered.clone(), release.clone()));
    let client_a = NeClient::new(config(&sim), Arc::new(a));
    // ... until process B has got its 002002 and re-read the (still old) pair:
    // read 1 is B's first load, read 2 the re-read after the 002002.
    let mut b = ProcStore::new(store.clone());
    b.after_read = Some((2, release.clone()));
    let client_b = NeClient::new(config(&sim), Arc::new(b));
    sim.advance_clock(DAY + 60);
    sim.clear_calls();

    let a_call = tokio::spawn(async move { probe(&client_a).await });
    entered.notified().await;
    probe(&client_b)
        .await
        .expect("B waits for A's save instead of reporting a token error");
    a_call.await.unwrap().unwrap();

    let seen = calls_to(&sim, GOODS_SEARCH);
    assert_eq!(
        seen,
        vec![
            ("success".to_string(), None),
            ("error".to_string(), Some("002002".to_string())),
            ("success".to_string(), None),
        ]
    );
    assert_eq!(
        store.get(&tenant()).unwrap(),
        to_tokens(sim.token_pair_of(C).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_rotating_concurrently_never_get_a_token_error() {
    let (sim, store, _) = setup().await;
    // Two processes: each its own client (its own in-process lock), one store.
    let one = NeClient::new(config(&sim), store.clone());
    let two = NeClient::new(config(&sim), store.clone());
    for round in 0..25 {
        // Every round starts with an expired access token, so the first call
        // to reach NextEngine rotates and the other may send the old pair.
        sim.advance_clock(DAY + 60);
        let (a, b, c) = tokio::join!(probe(&one), probe(&two), probe(&two));
        for (who, r) in [("one", a), ("two", b), ("two again", c)] {
            if let Err(e) = r {
                panic!("round {round}, process {who}: {e:?}");
            }
        }
        assert_eq!(
            store.get(&tenant()).unwrap(),
            to_tokens(sim.token_pair_of(C).unwrap()),
            "round {round}: the stored pair is the newest"
        );
    }
}

#[tokio::test]
async fn stock_io_history_gives_each_change_with_its_stock_before_and_after() {
    let (sim, _store, client) = setup().await;
    let since = sim.now_jst();
    let que_id = client
        .upload_stock_csv(&tenant(), b"syohin_code,zaiko_su\r\nA,-3\r\nB,2\r\n")
        .await
        .unwrap();
    sim.run_queues();
    sim.record_stock_change(C, "A", -1, Some("5001"));
    let entries = client
        .stock_io_history(&tenant(), &codes(&["A", "B", "missing"]), since)
        .await
        .unwrap();
    let seen: Vec<(&str, i64, i64, Option<&str>)> = entries
        .iter()
        .map(|e| (e.goods_code.as_str(), e.before, e.after, e.slip.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("A", 10, 7, None),
            ("B", 5, 7, None),
            ("A", 7, 6, Some("5001"))
        ]
    );
    // Narrowed by goods and time: another goods, and nothing before `since`.
    let only_b = client
        .stock_io_history(&tenant(), &codes(&["B"]), since)
        .await
        .unwrap();
    assert_eq!(only_b.len(), 1);
    sim.advance_clock(60);
    let later = client
        .stock_io_history(&tenant(), &codes(&["A", "B"]), sim.now_jst())
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?} of queue {que_id}");
}

#[tokio::test]
async fn a_tenants_calls_keep_to_the_configured_rate() {
    let (sim, store, _) = setup().await;
    let mut limited = config(&sim);
    limited.rate = sne_ports::RateLimits::new(10, 0);
    let client = NeClient::new(limited, store);
    let started = std::time::Instant::now();
    for _ in 0..4 {
        probe(&client).await.unwrap();
    }
    let calls = calls_to(&sim, GOODS_SEARCH).len();
    // Ten a second with a burst of one: n calls take at least n − 1 tenths.
    let least = Duration::from_millis(100 * (calls as u64 - 1)) - Duration::from_millis(10);
    assert!(
        started.elapsed() >= least,
        "{calls} calls in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn goods_stock_reads_every_asked_goods_in_chunks_and_set_goods_are_told_apart() {
    let (sim, _store, client) = setup().await;
    let seeded: Vec<SeedGoods> = (0..1200)
        .map(|i| SeedGoods {
            allocation_quantity: i % 3,
            ..goods(&format!("S{i:05}"), i - 5)
        })
        .collect();
    sim.seed_goods(C, seeded);
    sim.clear_calls();
    let mut asked: Vec<GoodsCode> = (0..1500).map(|i| format!("S{i:05}").into()).collect();
    asked.push("A".into());
    let found = client.goods_stock(&tenant(), &asked).await.unwrap();
    assert_eq!(
        found.len(),
        1201,
        "the 1,200 seeded and A; the rest unknown"
    );
    let s7 = found
        .iter()
        .find(|g| g.goods_code.as_str() == "S00007")
        .unwrap();
    assert_eq!((s7.stock, s7.allocated, s7.free), (2, 1, 1));
    let s0 = found
        .iter()
        .find(|g| g.goods_code.as_str() == "S00000")
        .unwrap();
    assert_eq!((s0.stock, s0.free), (-5, -5), "negative figures are kept");
    // Two `-in` chunks; the first fills a page of 1,000, so one more page is asked.
    assert_eq!(calls_to(&sim, GOODS_SEARCH).len(), 3);

    sim.seed_set_goods(C, "A", vec![("S00001".into(), 1), ("S00002".into(), 2)]);
    let sets = client
        .set_goods(&tenant(), &codes(&["A", "B", "S00001"]))
        .await
        .unwrap();
    assert_eq!(sets, [GoodsCode::from("A")].into_iter().collect());
    assert!(client.set_goods(&tenant(), &[]).await.unwrap().is_empty());
}
