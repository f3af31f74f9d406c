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
use sne_domain::{ChangeKind, StockDivision};
use sne_ports::smaregi::{NewShipment, SmaregiApi, SmaregiError};
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
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
    let sim = SmaregiSim::start(SmaregiConfig::default(), "127.0.0.1:0".parse().unwrap())
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
    let mut pairs = client.product_codes(&creds(), &ids).await.unwrap();
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

#[tokio::test]
async fn shipment_store_check_registers_nothing() {
    use sne_ports::smaregi::ShipmentStoreCheck;
    let (sim, client) = setup().await;
    assert_eq!(
        client.check_shipment_store(&creds(), "1").await.unwrap(),
        ShipmentStoreCheck::StoreExists
    );
    assert_eq!(
        client.check_shipment_store(&creds(), "99").await.unwrap(),
        ShipmentStoreCheck::UnknownStore
    );
    assert!(sim.shipments().is_empty());
    assert!(sim.history(CONTRACT).is_empty());
    // Only 「24.出荷情報取得」: the dry call hits the function check.
    sim.set_functions(CONTRACT, &["shipment_ref", "store_ref"]);
    assert!(matches!(
        client.check_shipment_store(&creds(), "1").await,
        Err(SmaregiError::Auth { .. })
    ));
}
