//! `SmaregiClient` against the Smaregi simulator (and, for transport
//! failures, a tiny fake server).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::NaiveDate;
use sne_domain::tenant::SmaregiCredentials;
use sne_domain::{ChangeKind, ProductId, StockDivision};
use sne_ports::smaregi::{NewShipment, SmaregiApi, SmaregiError};
use sne_simulators::smaregi::{CappedOffset, ConditionObjects, SmaregiConfig, SmaregiSim};
use sne_smaregi::{RetryPolicy, SmaregiClient};

const CONTRACT: &str = "sb_test";
const TOKEN: &str = "secret-access-token";

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn creds() -> SmaregiCredentials {
    SmaregiCredentials {
        contract_id: CONTRACT.into(),
        access_token: TOKEN.into(),
    }
}

/// Contract with stores 1 and 2 and products 8000001..=8000003.
async fn setup() -> (SmaregiSim, SmaregiClient) {
    setup_with(SmaregiConfig::default()).await
}

async fn setup_with(config: SmaregiConfig) -> (SmaregiSim, SmaregiClient) {
    let sim = SmaregiSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_contract(CONTRACT, TOKEN);
    sim.add_store(CONTRACT, "1", "本店");
    sim.add_store(CONTRACT, "2", "倉庫");
    for n in 1..=3 {
        let id = format!("800000{n}");
        sim.add_product(CONTRACT, &id, &format!("CODE-{n}"), &format!("商品{n}"));
    }
    let client = SmaregiClient::new(sim.access_url(), retry(), Duration::from_secs(5));
    (sim, client)
}

fn shipment(token: &str, ident: &str, is_return: bool) -> NewShipment {
    NewShipment {
        store_id: "1".into(),
        recipient_name: "ネット販売".into(),
        shipment_date: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        identification_no: ident.into(),
        memo: format!("NE {ident}"),
        token: token.into(),
        lines: vec![("8000001".into(), 2), ("8000002".into(), 1)],
        is_return,
    }
}

#[tokio::test]
async fn stock_history_pages_past_one_thousand_rows() {
    let (sim, client) = setup().await;
    sim.set_stock(CONTRACT, "1", "8000001", 100).await.unwrap();
    for _ in 0..1203 {
        sim.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    }
    sim.transfer(CONTRACT, "1", "2", "8000002", 3)
        .await
        .unwrap();
    // 1 + 1203 + 2 rows.
    let all = client
        .stock_history_after(&creds(), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(all.len(), 1206);
    let ids: Vec<u64> = all.iter().map(|r| r.history_id.unwrap()).collect();
    assert_eq!(ids, (1..=1206).collect::<Vec<_>>());

    let first = &all[0];
    assert_eq!(first.kind, ChangeKind::History);
    assert_eq!(first.division, Some(StockDivision::Master));
    assert_eq!((first.amount, first.after), (Some(100), Some(100)));
    assert!(first.changed_at.is_some());
    let sale = &all[1];
    assert_eq!(sale.division, Some(StockDivision::Sale));
    assert_eq!((sale.amount, sale.after), (Some(-1), Some(99)));
    assert_eq!(
        (sale.store_id.as_str(), sale.product_id.as_str()),
        ("1", "8000001")
    );
    assert_eq!(sale.from_store_id, None);
    let transfer_in = &all[1205];
    assert_eq!(transfer_in.division, Some(StockDivision::TransferIn));
    assert_eq!(transfer_in.store_id, "2");
    assert_eq!(transfer_in.from_store_id.as_deref(), Some("1"));
    assert_eq!(transfer_in.to_store_id.as_deref(), Some("2"));

    let capped = client.stock_history_after(&creds(), 0, 1100).await.unwrap();
    assert_eq!(capped.len(), 1100);
    assert_eq!(capped.last().unwrap().history_id, Some(1100));

    let tail = client
        .stock_history_after(&creds(), 1200, 1000)
        .await
        .unwrap();
    let ids: Vec<u64> = tail.iter().map(|r| r.history_id.unwrap()).collect();
    assert_eq!(ids, (1201..=1206).collect::<Vec<_>>());

    assert!(
        client
            .stock_history_after(&creds(), 1206, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .stock_history_after(&creds(), 0, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn latest_history_id() {
    let (sim, client) = setup().await;
    assert_eq!(
        client.latest_stock_history_id(&creds()).await.unwrap(),
        None
    );
    for n in 0..12 {
        sim.adjust(CONTRACT, "1", "8000003", n).await.unwrap();
    }
    assert_eq!(
        client.latest_stock_history_id(&creds()).await.unwrap(),
        Some(12)
    );
}

#[tokio::test]
async fn product_codes_in_chunks() {
    let (sim, client) = setup().await;
    for n in 0..250 {
        sim.add_product(CONTRACT, &format!("9{n:05}"), &format!("P-{n}"), "x");
    }
    let mut ids: Vec<String> = (0..250).map(|n| format!("9{n:05}")).collect();
    ids.extend([
        "8000001".to_string(),
        "1234".into(),
        String::new(),
        "8000001".into(),
    ]);
    let mut pairs = product_codes(&client, &ids).await;
    pairs.sort();
    assert_eq!(pairs.len(), 251);
    assert!(pairs.contains(&("8000001".into(), "CODE-1".into())));
    assert!(pairs.contains(&("900249".into(), "P-249".into())));
    assert!(
        client
            .product_codes(&creds(), &[])
            .await
            .unwrap()
            .is_empty()
    );
}

fn ids_of(rows: &[sne_domain::ChangeRow]) -> Vec<u64> {
    rows.iter().map(|r| r.history_id.unwrap()).collect()
}

#[tokio::test]
async fn stock_history_walks_id_windows_across_wide_gaps() {
    let (sim, client) = setup().await;
    for _ in 0..3 {
        sim.receive(CONTRACT, "1", "8000001", 1).await.unwrap();
    }
    // Two whole empty windows, then a row right on a window's upper edge
    // seen from 3 (3 + 3 × 100000), then a far jump.
    sim.set_next_history_id(CONTRACT, 250_001).unwrap();
    sim.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    sim.set_next_history_id(CONTRACT, 300_003).unwrap();
    sim.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    sim.set_next_history_id(CONTRACT, 5_000_000).unwrap();
    sim.transfer(CONTRACT, "1", "2", "8000001", 1)
        .await
        .unwrap();
    let all = client
        .stock_history_after(&creds(), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(
        ids_of(&all),
        vec![1, 2, 3, 250_001, 300_003, 5_000_000, 5_000_001]
    );
    assert_eq!(all[3].division, Some(StockDivision::Sale));
    assert_eq!(all[6].division, Some(StockDivision::TransferIn));
    assert_eq!(all[6].after, Some(1));

    let from_3 = client
        .stock_history_after(&creds(), 3, 10_000)
        .await
        .unwrap();
    assert_eq!(
        ids_of(&from_3),
        vec![250_001, 300_003, 5_000_000, 5_000_001]
    );
    // max_rows holds across windows and the rest comes with the next read.
    let two = client.stock_history_after(&creds(), 2, 2).await.unwrap();
    assert_eq!(ids_of(&two), vec![3, 250_001]);
    let next = client
        .stock_history_after(&creds(), 250_001, 2)
        .await
        .unwrap();
    assert_eq!(ids_of(&next), vec![300_003, 5_000_000]);
    let rest = client
        .stock_history_after(&creds(), 5_000_000, 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&rest), vec![5_000_001]);
    assert!(
        client
            .stock_history_after(&creds(), 5_000_001, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A cursor beyond every id reads one window and asks for the newest id.
    assert!(
        client
            .stock_history_after(&creds(), 9_000_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        client.latest_stock_history_id(&creds()).await.unwrap(),
        Some(5_000_001)
    );
}

#[tokio::test]
async fn stock_history_on_an_empty_contract() {
    let (_sim, client) = setup().await;
    assert!(
        client
            .stock_history_after(&creds(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .stock_history_after(&creds(), 123_456, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn latest_history_id_walks_back_over_quiet_months() {
    let (sim, client) = setup().await;
    // The last stock change was 100 days ago: three 30-day windows find
    // nothing, the fourth does.
    sim.advance_clock(-100 * 86_400);
    sim.receive(CONTRACT, "1", "8000001", 1).await.unwrap();
    sim.set_next_history_id(CONTRACT, 700_000).unwrap();
    sim.receive(CONTRACT, "1", "8000001", 1).await.unwrap();
    sim.advance_clock(100 * 86_400);
    assert_eq!(
        client.latest_stock_history_id(&creds()).await.unwrap(),
        Some(700_000)
    );
    // A lookback shorter than the quiet spell reports no history.
    let short = client.clone().with_history_lookback(3);
    assert_eq!(short.latest_stock_history_id(&creds()).await.unwrap(), None);
    // The gap needs the newest id to be walked.
    let rows = client.stock_history_after(&creds(), 1, 10).await.unwrap();
    assert_eq!(ids_of(&rows), vec![700_000]);
    // A change today is the newest, whatever lies further back.
    sim.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    assert_eq!(
        short.latest_stock_history_id(&creds()).await.unwrap(),
        Some(700_001)
    );
}

#[tokio::test]
async fn product_codes_do_not_rely_on_or() {
    for mode in [
        ConditionObjects::And,
        ConditionObjects::FirstOnly,
        ConditionObjects::Or,
    ] {
        let (sim, client) = setup_with(SmaregiConfig {
            condition_objects: mode,
            ..SmaregiConfig::default()
        })
        .await;
        // Dense ids (one range lookup per 100), sparse ones, ids of other
        // lengths, and products we do not ask for inside the ranges.
        for n in 0..250 {
            sim.add_product(CONTRACT, &format!("9{n:05}"), &format!("P-{n}"), "x");
        }
        for id in ["5", "77", "123456789012345", "8000100", "8009999"] {
            sim.add_product(CONTRACT, id, &format!("C{id}"), "x");
        }
        sim.add_product(CONTRACT, "8000004", "", "コードなし");
        let mut ids: Vec<String> = (0..250).step_by(2).map(|n| format!("9{n:05}")).collect();
        ids.extend(
            [
                "8000001",
                "8000003",
                "8000004",
                "8009999",
                "5",
                "77",
                "123456789012345",
                "1234",
                "",
                "8000001",
            ]
            .map(String::from),
        );
        let mut pairs = product_codes(&client, &ids).await;
        pairs.sort();
        let mut expected: Vec<(String, String)> = (0..250)
            .step_by(2)
            .map(|n| (format!("9{n:05}"), format!("P-{n}")))
            .collect();
        expected.extend(
            [
                ("8000001", "CODE-1"),
                ("8000003", "CODE-3"),
                ("8009999", "C8009999"),
                ("5", "C5"),
                ("77", "C77"),
                ("123456789012345", "C123456789012345"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        );
        expected.sort();
        assert_eq!(pairs, expected, "{mode:?}");
    }
}

#[tokio::test]
async fn paging_survives_pages_cut_below_the_page_size() {
    for offset in [CappedOffset::Requested, CappedOffset::Capped] {
        let (sim, client) = setup_with(SmaregiConfig {
            page_cap: Some(300),
            capped_offset: offset,
            // Paging alone: the window rule is covered above.
            narrowing: None,
            ..SmaregiConfig::default()
        })
        .await;
        for _ in 0..1206 {
            sim.receive(CONTRACT, "1", "8000001", 1).await.unwrap();
        }
        let all = client
            .stock_history_after(&creds(), 0, 10_000)
            .await
            .unwrap();
        assert_eq!(ids_of(&all), (1..=1206).collect::<Vec<_>>(), "{offset:?}");
        let some = client.stock_history_after(&creds(), 5, 700).await.unwrap();
        assert_eq!(ids_of(&some), (6..=705).collect::<Vec<_>>(), "{offset:?}");
        for n in 0..700 {
            sim.add_product(CONTRACT, &format!("{}", 7_000_000 + n), "x", "x");
        }
        let ids: Vec<String> = (0..700).map(|n| format!("{}", 7_000_000 + n)).collect();
        assert_eq!(product_codes(&client, &ids).await.len(), 700, "{offset:?}");
    }
    // Asking for 1000 rows a page from the default simulator (500 a page).
    let (sim, client) = setup().await;
    let client = client.with_page_size(1000);
    for _ in 0..1206 {
        sim.receive(CONTRACT, "1", "8000001", 1).await.unwrap();
    }
    let all = client
        .stock_history_after(&creds(), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(ids_of(&all), (1..=1206).collect::<Vec<_>>());
}

#[tokio::test]
async fn stores_are_listed() {
    let (_sim, client) = setup().await;
    let stores = client.stores(&creds()).await.unwrap();
    let names: Vec<(&str, &str)> = stores
        .iter()
        .map(|s| (s.store_id.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(names, vec![("1", "本店"), ("2", "倉庫")]);
}

#[tokio::test]
async fn shipment_is_created_once_per_token() {
    let (sim, client) = setup().await;
    sim.set_stock(CONTRACT, "1", "8000001", 10).await.unwrap();

    let id = client
        .create_shipment(&creds(), &shipment("20261127100000-01", "NE-1001", false))
        .await
        .unwrap();
    let id = id.expect("a new shipment id");
    let replay = client
        .create_shipment(&creds(), &shipment("20261127100000-01", "NE-1001", false))
        .await
        .unwrap();
    assert_eq!(replay, None);

    let all = sim.shipments();
    assert_eq!(all.len(), 1);
    let header = &all[0].header;
    assert_eq!(all[0].shipment_id, id);
    assert_eq!(header["recipientType"].as_deref(), Some("3"));
    assert_eq!(header["recipientName"].as_deref(), Some("ネット販売"));
    assert_eq!(header["shipmentDivision"].as_deref(), Some("0"));
    assert_eq!(header["shipmentDate"].as_deref(), Some("2026-11-27"));
    assert_eq!(header["status"].as_deref(), Some("2"));
    assert_eq!(all[0].details.len(), 2);
    assert_eq!(all[0].details[0]["memo"].as_deref(), Some("NE NE-1001"));
    assert_eq!(sim.stock(CONTRACT, "1", "8000001"), Some(8));

    let found = client
        .shipments_by_identification(&creds(), "NE-1001")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].shipment_id, id);
    assert_eq!(
        (found[0].division.as_str(), found[0].status.as_str()),
        ("0", "2")
    );

    let back = client
        .create_shipment(&creds(), &shipment("20261127100000-02", "NE-1001", true))
        .await
        .unwrap();
    assert!(back.is_some());
    assert_eq!(sim.stock(CONTRACT, "1", "8000001"), Some(10));
    let found = client
        .shipments_by_identification(&creds(), "NE-1001")
        .await
        .unwrap();
    let divisions: Vec<&str> = found.iter().map(|s| s.division.as_str()).collect();
    assert_eq!(divisions, vec!["0", "1"]);
    assert!(
        client
            .shipments_by_identification(&creds(), "NE-9")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn validation_error_is_api() {
    let (sim, client) = setup().await;
    let mut bad = shipment("t-1", "NE-1", false);
    bad.lines = vec![("99999999".into(), 1)];
    let err = client.create_shipment(&creds(), &bad).await.unwrap_err();
    assert!(
        matches!(err, SmaregiError::Api { ref code, .. } if code == "43"),
        "{err:?}"
    );
    assert!(sim.shipments().is_empty());
}

#[tokio::test]
async fn refused_credentials_are_auth_errors() {
    let (sim, client) = setup().await;
    let wrong = SmaregiCredentials {
        contract_id: CONTRACT.into(),
        access_token: "wrong-token".into(),
    };
    let err = client.stores(&wrong).await.unwrap_err();
    assert!(
        matches!(err, SmaregiError::Auth { ref code, .. } if code == "21"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-token"));

    let empty = SmaregiCredentials {
        contract_id: String::new(),
        access_token: TOKEN.into(),
    };
    let err = client.stores(&empty).await.unwrap_err();
    assert!(
        matches!(err, SmaregiError::Auth { ref code, ref message } if code == "14" && message.contains("契約ID")),
        "{err:?}"
    );

    let unknown = SmaregiCredentials {
        contract_id: "sb_nobody".into(),
        access_token: TOKEN.into(),
    };
    let err = client.stores(&unknown).await.unwrap_err();
    assert!(
        matches!(err, SmaregiError::Auth { ref code, .. } if code == "14"),
        "{err:?}"
    );

    sim.set_functions(CONTRACT, &["stock_ref", "product_ref", "store_ref"]);
    let err = client
        .create_shipment(&creds(), &shipment("t-2", "NE-2", false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SmaregiError::Auth { ref code, .. } if code == "31"),
        "{err:?}"
    );
    let err = client
        .shipments_by_identification(&creds(), "NE-2")
        .await
        .unwrap_err();
    assert!(matches!(err, SmaregiError::Auth { .. }), "{err:?}");
    assert!(client.stores(&creds()).await.is_ok());
}

// ---------------------------------------------------------------- transport

#[derive(Clone)]
struct Flaky {
    hits: Arc<AtomicUsize>,
    fail_first: usize,
}

async fn flaky(
    State(f): State<Flaky>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let n = f.hits.fetch_add(1, Ordering::SeqCst);
    assert_eq!(headers["x_contract_id"], CONTRACT);
    assert_eq!(headers["x_access_token"], TOKEN);
    assert!(body.contains("proc_name=") && body.contains("params="));
    if n < f.fail_first {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let json = if body.contains("shipment_upd") {
        r#"{"result":{"Shipment":1,"ShipmentIds":["77"],"ShipmentDetail":2}}"#
    } else {
        r#"{"total_count":"1","result":[{"storeId":"1","storeName":"本店"}]}"#
    };
    (StatusCode::OK, [("content-type", "application/json")], json).into_response()
}

async fn start_flaky(fail_first: usize) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/access/", axum::routing::post(flaky))
        .with_state(Flaky {
            hits: hits.clone(),
            fail_first,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/access/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test]
async fn reference_calls_retry_transport_errors() {
    let (url, hits) = start_flaky(2).await;
    let client = SmaregiClient::new(url, retry(), Duration::from_secs(5));
    let stores = client.stores(&creds()).await.unwrap();
    assert_eq!(stores.len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let (url, hits) = start_flaky(usize::MAX).await;
    let client = SmaregiClient::new(url, retry(), Duration::from_secs(5));
    let err = client.stores(&creds()).await.unwrap_err();
    assert!(matches!(err, SmaregiError::Transport(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn shipment_upd_is_not_retried_after_an_unknown_outcome() {
    let (url, hits) = start_flaky(1).await;
    let client = SmaregiClient::new(url, retry(), Duration::from_secs(5));
    let err = client
        .create_shipment(&creds(), &shipment("t-1", "NE-1", false))
        .await
        .unwrap_err();
    assert!(matches!(err, SmaregiError::Transport(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let id = client
        .create_shipment(&creds(), &shipment("t-1", "NE-1", false))
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("77"));
}

#[tokio::test]
async fn unreachable_server_is_transport() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/access/", listener.local_addr().unwrap());
    drop(listener);
    let client = SmaregiClient::new(url, retry(), Duration::from_secs(2));
    let err = client.latest_stock_history_id(&creds()).await.unwrap_err();
    assert!(matches!(err, SmaregiError::Transport(_)), "{err:?}");
}

/// Pages whose sizes say rows were cut somewhere we cannot page around:
/// 4 rows, then 3 of 4 with 10 in total.
async fn ragged(body: String) -> axum::response::Response {
    let page = if body.contains("%22page%22%3A1") {
        1
    } else {
        2
    };
    let n = if page == 1 { 4 } else { 3 };
    let rows: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"storeId": format!("{page}{i}"), "storeName": "x"}))
        .collect();
    let json = serde_json::json!({"total_count": "10", "result": rows}).to_string();
    (StatusCode::OK, [("content-type", "application/json")], json).into_response()
}

#[tokio::test]
async fn a_cut_page_that_cannot_be_paged_around_is_an_error() {
    let app = axum::Router::new().route("/access/", axum::routing::post(ragged));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/access/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = SmaregiClient::new(url, retry(), Duration::from_secs(5)).with_page_size(4);
    let err = client.stores(&creds()).await.unwrap_err();
    assert!(
        matches!(err, SmaregiError::Api { ref code, ref message } if code == "invalid_response" && message.contains("3 of 4")),
        "{err:?}"
    );
}

/// The client's answer for product ids given as text, as (id, code) texts.
async fn product_codes(client: &SmaregiClient, ids: &[String]) -> Vec<(String, String)> {
    let ids: Vec<ProductId> = ids.iter().map(ProductId::from).collect();
    client
        .product_codes(&creds(), &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|pair| (pair.product_id.into(), pair.goods_code.into()))
        .collect()
}

#[tokio::test]
async fn a_contracts_calls_keep_to_the_configured_rate() {
    let (sim, _) = setup().await;
    sim.adjust(CONTRACT, "1", "8000003", 1).await.unwrap();
    let client = SmaregiClient::new(sim.access_url(), retry(), Duration::from_secs(5))
        .with_rate_limits(sne_ports::RateLimits::new(10, 0));
    let started = std::time::Instant::now();
    for _ in 0..4 {
        assert_eq!(
            client.latest_stock_history_id(&creds()).await.unwrap(),
            Some(1)
        );
    }
    // At least a call each, ten a second with a burst of one.
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stock_of_stores_pages_every_row_of_each_store_without_page_numbers() {
    // Pages silently cut to 500 rows, as one public client saw.
    let (sim, client) = setup().await;
    sim.add_store(CONTRACT, "3", "空の店");
    let client = client.with_page_size(1000);
    for n in 0..1234u64 {
        let id = format!("{}", 9_000_000 + n);
        sim.add_product(CONTRACT, &id, &format!("C{n}"), "大量");
        let amount = i64::try_from(n % 7).unwrap() - 2;
        sim.set_stock(CONTRACT, "1", &id, amount).await.unwrap();
        if n % 2 == 0 {
            sim.set_stock(CONTRACT, "2", &id, 1).await.unwrap();
        }
    }
    let stores = ["1".into(), "2".into(), "3".into()];
    let rows = client.stock_of_stores(&creds(), &stores).await.unwrap();
    let of = |store: &str| rows.iter().filter(|r| r.store_id.as_str() == store).count();
    assert_eq!((of("1"), of("2"), of("3")), (1234, 617, 0));
    let mut seen: Vec<_> = rows
        .iter()
        .map(|r| (r.store_id.as_str(), r.product_id.as_str()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), rows.len(), "no row twice");
    let first = rows
        .iter()
        .find(|r| r.store_id.as_str() == "1" && r.product_id.as_str() == "9000000")
        .unwrap();
    assert_eq!(first.amount, -2, "negative stock is kept");
    assert!(first.updated_at.is_some());
    for r in &rows {
        assert_eq!(
            Some(r.amount),
            sim.stock(CONTRACT, r.store_id.as_str(), r.product_id.as_str()),
            "{r:?}"
        );
    }
    assert!(rows.iter().any(|r| r.amount < 0) && rows.iter().any(|r| r.amount > 0));
}

/// A `stock_ref` call as the client's transport makes it, answered raw.
async fn raw_stock_ref(sim: &SmaregiSim, params: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(sim.access_url())
        .header("X_contract_id", CONTRACT)
        .header("X_access_token", TOKEN)
        .form(&[("proc_name", "stock_ref"), ("params", &params.to_string())])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_simulator_refuses_a_stock_lookup_without_a_store_and_the_client_never_sends_one() {
    let (sim, client) = setup().await;
    sim.set_stock(CONTRACT, "1", "8000001", 3).await.unwrap();
    sim.set_stock(CONTRACT, "2", "8000001", -1).await.unwrap();
    for params in [
        serde_json::json!({"table_name": "Stock", "order": ["productId"]}),
        serde_json::json!({"table_name": "Stock", "conditions": [{"productId": "8000001"}]}),
        serde_json::json!({"table_name": "Stock", "conditions": [{"storeId <>": "9"}]}),
    ] {
        let (status, v) = raw_stock_ref(&sim, params.clone()).await;
        assert_eq!(status, 400, "{params}: {v}");
        assert_eq!(v["error_code"], 44, "the narrowing refusal's code: {v}");
        assert_eq!(v["error"], "検索条件が不正です。");
        assert!(
            v["error_description"].as_str().unwrap().contains("storeId"),
            "{v}"
        );
    }
    // The client names one store per lookup, so the strict simulator answers it.
    let rows = client
        .stock_of_stores(&creds(), &["1".into(), "2".into()])
        .await
        .unwrap();
    let got: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| (r.store_id.as_str(), r.product_id.as_str(), r.amount))
        .collect();
    assert_eq!(got, [("1", "8000001", 3), ("2", "8000001", -1)]);
    assert!(
        client
            .stock_of_stores(&creds(), &[])
            .await
            .unwrap()
            .is_empty()
    );
}
