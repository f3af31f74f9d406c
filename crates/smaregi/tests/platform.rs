//! `PlatformClient` against the スマレジ・プラットフォームAPI side of the Smaregi
//! simulator: tokens per contract, `GET /pos/stock` windows,
//! `GET /pos/stock/changes/{p}/{s}` paging, 429s and problem+json errors, and
//! the one write (reference smaregi-platform-api.md).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use sne_domain::{ChangeKind, ChangeRow, ProductId, StockDivision, StoreId};
use sne_ports::RetryPolicy;
use sne_ports::platform::SmaregiPlatformApi;
use sne_ports::smaregi::SmaregiError;
use sne_simulators::smaregi::platform::PlatformConfig;
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
use sne_smaregi::platform::{PlatformAppConfig, PlatformClient};

const A: &str = "c1";
const B: &str = "c2";
const P1: &str = "8000001";
const P2: &str = "8000002";
const P3: &str = "8000003";
const NOT_IN_PLAN: &str = "ご契約のプランでは在庫変動履歴を利用できません";
const NO_SUCH_STORE: &str = "指定された店舗IDのリソースが見つかりません";

/// Rates high enough that only the rate-limit tests are throttled.
fn fast() -> PlatformConfig {
    PlatformConfig {
        reads_per_sec: 1000,
        writes_per_sec: 1000,
        ..PlatformConfig::default()
    }
}

fn add_contract(sim: &SmaregiSim, c: &str) {
    sim.add_contract(c, &format!("old-{c}"));
    sim.add_store(c, "1", "本店");
    sim.add_store(c, "2", "支店");
    sim.add_product(c, P1, "ABC-001", "商品1");
    sim.add_product(c, P2, "ABC-002", "商品2");
    sim.add_product(c, P3, "ABC-003", "商品3");
}

/// Contracts A and B with stores 1, 2 and products P1..P3; both have the app
/// installed with every scope.
async fn ready(platform: PlatformConfig) -> SmaregiSim {
    let sim = SmaregiSim::start(
        SmaregiConfig {
            platform,
            ..SmaregiConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    for c in [A, B] {
        add_contract(&sim, c);
        sim.platform_subscribe(c, &[]).await.unwrap();
    }
    sim
}

fn app_config(sim: &SmaregiSim, reads: u32, writes: u32) -> PlatformAppConfig {
    let defaults = PlatformConfig::default();
    let mut cfg = PlatformAppConfig::new(&defaults.client_id, &defaults.client_secret);
    cfg.id_url = sim.base_url();
    cfg.api_url = sim.platform_api_url();
    cfg.reads_per_second = reads;
    cfg.writes_per_second = writes;
    cfg.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    cfg
}

fn client_with(sim: &SmaregiSim, reads: u32, writes: u32) -> PlatformClient {
    PlatformClient::new(app_config(sim, reads, writes)).unwrap()
}

/// The client's sandbox defaults (10 reads, 4 writes a second).
fn client(sim: &SmaregiSim) -> PlatformClient {
    client_with(sim, 10, 4)
}

fn fast_client(sim: &SmaregiSim) -> PlatformClient {
    client_with(sim, 1000, 1000)
}

fn p(id: &str) -> ProductId {
    ProductId::from(id)
}

fn s(id: &str) -> StoreId {
    StoreId::from(id)
}

fn hours(n: i64) -> ChronoDuration {
    ChronoDuration::hours(n)
}

fn days(n: i64) -> ChronoDuration {
    ChronoDuration::days(n)
}

fn pair_set(pairs: &[sne_ports::platform::ChangedPair]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|p| (p.product_id.to_string(), p.store_id.to_string()))
        .collect()
}

fn pair(product: &str, store: &str) -> (String, String) {
    (product.to_string(), store.to_string())
}

fn ids(rows: &[ChangeRow]) -> Vec<u64> {
    rows.iter().map(|r| r.history_id.unwrap()).collect()
}

/// The `upd_date_time` of a history row (old-API format), as Japan time.
fn time_of(row: &sne_simulators::smaregi::StockHistoryRow) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(&row.upd_date_time, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn assert_auth(e: &SmaregiError, want_code: &str, want_in_message: &str) {
    match e {
        SmaregiError::Auth { code, message } => {
            assert_eq!(code, want_code, "{e}");
            assert!(message.contains(want_in_message), "{e}");
        }
        other => panic!("expected Auth({want_code}), got {other:?}"),
    }
}

// --- 1. tokens ------------------------------------------------------------

#[tokio::test]
async fn one_token_serves_many_calls_and_is_renewed_once_when_refused() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let sale = sim.sale(A, "1", P1, 1).await.unwrap().remove(0);
    let t0 = sim.now_jst();
    for _ in 0..3 {
        let pairs = client
            .changed_pairs(A, t0 - hours(1), t0 + hours(1))
            .await
            .unwrap();
        assert_eq!(pair_set(&pairs), BTreeSet::from([pair(P1, "1")]));
        let rows = client
            .pair_changes(A, &p(P1), &s("1"), 0, t0 - hours(1))
            .await
            .unwrap();
        assert_eq!(ids(&rows), vec![sale.id]);
        assert!(
            client
                .change(A, &p(P1), &s("1"), sale.id)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(sim.platform_calls(), (1, 9), "one token for nine calls");

    // The token outlives the sim's clock: the API answers 401 and the client
    // asks for one new token, then goes on with it.
    sim.advance_clock(PlatformConfig::default().token_ttl_secs);
    let rows = client
        .pair_changes(A, &p(P1), &s("1"), 0, t0 - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&rows), vec![sale.id]);
    assert_eq!(sim.platform_calls(), (2, 11), "refused once, renewed once");
    client
        .change(A, &p(P1), &s("1"), sale.id)
        .await
        .unwrap()
        .unwrap();
    client
        .changed_pairs(A, t0 - hours(1), sim.now_jst())
        .await
        .unwrap();
    assert_eq!(sim.platform_calls(), (2, 13));
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_credentials() {
    let sim = ready(fast()).await;
    let mut cfg = app_config(&sim, 1000, 1000);
    cfg.client_secret = "not-the-secret".into();
    let client = PlatformClient::new(cfg).unwrap();
    let e = client.check_contract(A).await.unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");
    let now = sim.now_jst();
    let e = client
        .changed_pairs(A, now - hours(1), now)
        .await
        .unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");
    let e = client
        .pair_changes(A, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");
    assert_eq!(sim.platform_calls().1, 0, "no API call without a token");
}

#[tokio::test]
async fn a_contract_without_the_app_is_refused_until_it_installs_it() {
    let sim = ready(fast()).await;
    let c3 = "c3";
    add_contract(&sim, c3);
    sim.sale(c3, "1", P1, 1).await.unwrap();
    let client = fast_client(&sim);
    let e = client.check_contract(c3).await.unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");
    let now = sim.now_jst();
    let e = client
        .pair_changes(c3, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");

    sim.platform_subscribe(c3, &[]).await.unwrap();
    client.check_contract(c3).await.unwrap();
    let rows = client
        .pair_changes(c3, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // The other contracts were never affected.
    client.check_contract(A).await.unwrap();
}

// --- 2. changed pairs -------------------------------------------------------

#[tokio::test]
async fn changed_pairs_over_seventy_days_splits_the_window() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    // Before the window.
    sim.sale(A, "2", P3, 1).await.unwrap();
    sim.advance_clock(days(31).num_seconds());
    let x = sim.sale(A, "1", P1, 1).await.unwrap().remove(0);
    // The first 30-day window ends exactly on X's change.
    let from = time_of(&x) - days(30);
    sim.advance_clock(days(40).num_seconds());
    let y = sim.adjust(A, "2", P1, 4).await.unwrap().remove(0);
    sim.advance_clock(days(25).num_seconds());
    let z = sim.sale(A, "1", P2, 2).await.unwrap().remove(0);
    sim.advance_clock(hours(3).num_seconds());
    let to = sim.now_jst();
    sim.advance_clock(days(1).num_seconds());
    // After the window.
    sim.sale(A, "2", P2, 1).await.unwrap();
    assert!(to - from > days(70), "the span must need three windows");

    let pairs = client.changed_pairs(A, from, to).await.unwrap();
    assert_eq!(
        pair_set(&pairs),
        BTreeSet::from([pair(P1, "1"), pair(P1, "2"), pair(P2, "1")]),
        "{pairs:?}"
    );
    assert_eq!(pairs.len(), 3, "each pair once: {pairs:?}");
    for (row, store, product) in [(&x, "1", P1), (&y, "2", P1), (&z, "1", P2)] {
        let got = pairs
            .iter()
            .find(|c| c.product_id.as_str() == product && c.store_id.as_str() == store)
            .unwrap();
        assert_eq!(got.updated_at, Some(time_of(row)), "{got:?}");
    }

    // A window with nothing in it.
    let empty = client
        .changed_pairs(A, from - days(100), from - days(60))
        .await
        .unwrap();
    assert!(empty.is_empty(), "{empty:?}");
}

/// 1,050 products, one store, each sold once: the pairs come back once each.
async fn many_pairs(spread: bool) {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let products: Vec<String> = (0..1050).map(|n| format!("9{n:05}")).collect();
    for (n, id) in products.iter().enumerate() {
        sim.add_product(A, id, &format!("P-{n}"), "x");
    }
    let mut times = Vec::new();
    for (n, id) in products.iter().enumerate() {
        if spread && n % 50 == 0 {
            sim.advance_clock(7);
        }
        times.push(time_of(&sim.sale(A, "1", id, 1).await.unwrap()[0]));
    }
    // A change of the other contract inside the window, one of another
    // store after it: both stay out.
    sim.sale(B, "1", P1, 1).await.unwrap();
    sim.advance_clock(5);
    sim.sale(A, "2", P1, 1).await.unwrap();
    // From the first sale to the last: a burst fits a window of one second
    // or two, which the client cannot halve below a second and must page.
    let from = times[0];
    let to = times[times.len() - 1].max(from + ChronoDuration::seconds(1));
    let pairs = client.changed_pairs(A, from, to).await.unwrap();
    assert_eq!(pairs.len(), 1050);
    let want: BTreeSet<(String, String)> = products.iter().map(|id| pair(id, "1")).collect();
    assert_eq!(pair_set(&pairs), want);
    for (c, t) in pairs.iter().zip(&times) {
        assert_eq!(c.updated_at, Some(*t), "{c:?}");
    }
}

#[tokio::test]
async fn more_than_a_page_of_pairs_spread_over_a_window_come_back_once_each() {
    many_pairs(true).await;
}

#[tokio::test]
async fn more_than_a_page_of_pairs_in_one_burst_come_back_once_each() {
    many_pairs(false).await;
}

// --- 3. pair changes --------------------------------------------------------

#[tokio::test]
async fn pair_changes_after_an_id_and_since_a_time_oldest_first() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let start = sim.now_jst();
    let set = sim.set_stock(A, "1", P1, 10).await.unwrap().remove(0);
    sim.advance_clock(60);
    let sale = sim.sale(A, "1", P1, 2).await.unwrap().remove(0);
    // Other pairs and the other contract interleave.
    sim.sale(A, "2", P1, 1).await.unwrap();
    sim.sale(A, "1", P2, 1).await.unwrap();
    sim.sale(B, "1", P1, 1).await.unwrap();
    let adjust = sim.adjust(A, "1", P1, 5).await.unwrap().remove(0);
    sim.advance_clock(60);
    let late = sim.sale(A, "1", P1, 3).await.unwrap().remove(0);

    let all = client
        .pair_changes(A, &p(P1), &s("1"), 0, start - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&all), vec![set.id, sale.id, adjust.id, late.id]);
    let r = &all[1];
    assert_eq!(r.kind, ChangeKind::History);
    assert_eq!(
        (r.product_id.as_str(), r.store_id.as_str()),
        (P1, "1"),
        "{r:?}"
    );
    assert_eq!(r.division, Some(StockDivision::from_code("02")));
    assert_eq!((r.amount, r.after), (Some(-2), Some(8)));
    assert_eq!(r.history_id, Some(sale.id));
    assert_eq!(r.changed_at, Some(time_of(&sale)));
    assert_eq!(all[0].division, Some(StockDivision::from_code("01")));
    assert_eq!((all[0].amount, all[0].after), (Some(10), Some(10)));
    assert_eq!(all[2].division, Some(StockDivision::from_code("09")));
    assert_eq!((all[2].amount, all[2].after), (Some(5), Some(13)));
    assert_eq!((all[3].amount, all[3].after), (Some(-3), Some(10)));

    let after = client
        .pair_changes(A, &p(P1), &s("1"), sale.id, start - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&after), vec![adjust.id, late.id]);

    // `since` is inclusive: the sale's second is in.
    let since = client
        .pair_changes(A, &p(P1), &s("1"), 0, time_of(&sale))
        .await
        .unwrap();
    assert_eq!(ids(&since), vec![sale.id, adjust.id, late.id]);
    let both = client
        .pair_changes(A, &p(P1), &s("1"), adjust.id, time_of(&sale))
        .await
        .unwrap();
    assert_eq!(ids(&both), vec![late.id]);
    let none = client
        .pair_changes(A, &p(P1), &s("1"), late.id, start - hours(1))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let later = client
        .pair_changes(A, &p(P1), &s("1"), 0, time_of(&late) + hours(1))
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?}");
    // A pair that never changed has no changes.
    let quiet = client
        .pair_changes(A, &p(P3), &s("2"), 0, start - hours(1))
        .await
        .unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");
}

/// 1,100 changes of one pair (and some of another), read with `after_id`
/// and `since` cuts; `distinct_seconds` puts every change in its own second,
/// so a newest-first page is strictly descending and may stop early.
async fn many_changes(sort_honoured: bool, distinct_seconds: bool) {
    let sim = ready(PlatformConfig {
        changes_sort_honoured: sort_honoured,
        ..fast()
    })
    .await;
    let client = fast_client(&sim);
    let start = sim.now_jst();
    let mut rows = sim.set_stock(A, "1", P1, 5000).await.unwrap();
    for n in 0..1099 {
        if distinct_seconds {
            sim.advance_clock(1);
        }
        rows.extend(sim.sale(A, "1", P1, 1).await.unwrap());
        if n % 100 == 0 {
            sim.sale(A, "2", P1, 1).await.unwrap();
        }
    }
    assert_eq!(rows.len(), 1100);
    let all_ids: Vec<u64> = rows.iter().map(|r| r.id).collect();

    let all = client
        .pair_changes(A, &p(P1), &s("1"), 0, start - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&all), all_ids);
    assert_eq!(all[1099].after, Some(5000 - 1099));
    assert_eq!(all[1099].division, Some(StockDivision::from_code("02")));

    // Cut inside the older page (newest first) / the newer page (oldest first).
    for cut in [50usize, 600, 1050] {
        let after = client
            .pair_changes(A, &p(P1), &s("1"), rows[cut].id, start - hours(1))
            .await
            .unwrap();
        assert_eq!(ids(&after), all_ids[cut + 1..], "after_id cut {cut}");
        if distinct_seconds {
            let since = client
                .pair_changes(A, &p(P1), &s("1"), 0, time_of(&rows[cut]))
                .await
                .unwrap();
            assert_eq!(ids(&since), all_ids[cut..], "since cut {cut}");
        }
    }
    let mixed = client
        .pair_changes(A, &p(P1), &s("1"), rows[600].id, time_of(&rows[50]))
        .await
        .unwrap();
    assert_eq!(ids(&mixed), all_ids[601..]);
}

#[tokio::test]
async fn more_than_a_page_of_changes_is_paged() {
    many_changes(true, false).await;
}

#[tokio::test]
async fn more_than_a_page_of_changes_in_distinct_seconds_is_paged() {
    many_changes(true, true).await;
}

#[tokio::test]
async fn more_than_a_page_of_changes_when_sort_is_ignored() {
    many_changes(false, false).await;
}

#[tokio::test]
async fn more_than_a_page_of_changes_in_distinct_seconds_when_sort_is_ignored() {
    many_changes(false, true).await;
}

// --- 4. one change ----------------------------------------------------------

#[tokio::test]
async fn one_change_by_id() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    sim.set_stock(A, "1", P1, 7).await.unwrap();
    let sale = sim.sale(A, "1", P1, 2).await.unwrap().remove(0);
    let other = sim.sale(A, "1", P2, 1).await.unwrap().remove(0);

    let row = client
        .change(A, &p(P1), &s("1"), sale.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.history_id, Some(sale.id));
    assert_eq!((row.product_id.as_str(), row.store_id.as_str()), (P1, "1"));
    assert_eq!(row.division, Some(StockDivision::Sale));
    assert_eq!((row.amount, row.after), (Some(-2), Some(5)));
    assert_eq!(row.changed_at, Some(time_of(&sale)));

    // No such id, an id of another pair, an unknown product or store.
    assert_eq!(client.change(A, &p(P1), &s("1"), 9999).await.unwrap(), None);
    assert_eq!(
        client.change(A, &p(P1), &s("1"), other.id).await.unwrap(),
        None
    );
    assert_eq!(
        client
            .change(A, &p("9999999"), &s("1"), sale.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client.change(A, &p(P1), &s("99"), sale.id).await.unwrap(),
        None
    );
    // The id belongs to contract A only.
    assert_eq!(
        client.change(B, &p(P1), &s("1"), sale.id).await.unwrap(),
        None
    );
}

// --- 5. throttling and refusals ----------------------------------------------

#[tokio::test]
async fn throttled_reads_wait_for_retry_after() {
    let sim = ready(PlatformConfig {
        reads_per_sec: 1,
        ..fast()
    })
    .await;
    let client = client_with(&sim, 50, 50);
    let sale = sim.sale(A, "1", P1, 1).await.unwrap().remove(0);
    let now = sim.now_jst();
    let pairs = client.changed_pairs(A, now - hours(1), now).await.unwrap();
    assert_eq!(pair_set(&pairs), BTreeSet::from([pair(P1, "1")]));
    let rows = client
        .pair_changes(A, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&rows), vec![sale.id]);
    assert!(
        client
            .change(A, &p(P1), &s("1"), sale.id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(sim.platform_throttled(A) > 0);
    assert_eq!(sim.platform_throttled(B), 0);
}

/// Token calls count against the contract's limit (reference §5), so the
/// token host answers 429 too; that is a wait, not refused credentials.
#[tokio::test]
async fn a_throttled_token_call_is_waited_out_not_refused() {
    let sim = ready(PlatformConfig {
        reads_per_sec: 1,
        ..fast()
    })
    .await;
    let client = client_with(&sim, 50, 50);
    sim.sale(A, "1", P1, 1).await.unwrap();
    let now = sim.now_jst();
    client
        .pair_changes(A, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap();
    // The contract's second is used up: the token call is throttled.
    let checked = client.check_contract(A).await;
    assert!(sim.platform_throttled(A) > 0);
    assert!(checked.is_ok(), "{checked:?}");
}

#[tokio::test]
async fn a_plan_without_stock_changes_is_refused_with_the_detail() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let sale = sim.sale(A, "1", P1, 1).await.unwrap().remove(0);
    let now = sim.now_jst();
    sim.set_stock_changes_available(A, false);
    let e = client
        .pair_changes(A, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap_err();
    assert_auth(&e, "403", NOT_IN_PLAN);
    let e = client
        .change(A, &p(P1), &s("1"), sale.id)
        .await
        .unwrap_err();
    assert_auth(&e, "403", NOT_IN_PLAN);
    // Stock levels are on every plan; the other contract is unaffected.
    client.changed_pairs(A, now - hours(1), now).await.unwrap();
    client
        .pair_changes(B, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap();
    sim.set_stock_changes_available(A, true);
    let rows = client
        .pair_changes(A, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap();
    assert_eq!(ids(&rows), vec![sale.id]);
}

#[tokio::test]
async fn a_missing_scope_is_refused_with_the_detail() {
    let sim = ready(fast()).await;
    let c3 = "c3";
    add_contract(&sim, c3);
    sim.platform_subscribe(c3, &["pos.stock:read", "pos.stock:write"])
        .await
        .unwrap();
    sim.sale(c3, "1", P1, 1).await.unwrap();
    let client = fast_client(&sim);
    // The token is granted (with fewer scopes).
    client.check_contract(c3).await.unwrap();
    let now = sim.now_jst();
    let e = client
        .pair_changes(c3, &p(P1), &s("1"), 0, now - hours(1))
        .await
        .unwrap_err();
    assert_auth(&e, "403", "スコープが不足しています");
    let pairs = client.changed_pairs(c3, now - hours(1), now).await.unwrap();
    assert_eq!(pair_set(&pairs), BTreeSet::from([pair(P1, "1")]));
}

// --- 6. the write -------------------------------------------------------------

#[tokio::test]
async fn add_stock_returns_the_history_id_that_comes_back_as_a_change() {
    let sim = ready(fast()).await;
    let client = client(&sim);
    sim.set_stock(A, "1", P1, 10).await.unwrap();
    let start = sim.now_jst();
    let id = client
        .add_stock(A, &p(P1), &s("1"), -3, "sne:order-42")
        .await
        .unwrap();
    assert_eq!(sim.stock(A, "1", P1), Some(7));
    let history = sim.history(A);
    let last = history.last().unwrap();
    assert_eq!(last.id, id);
    assert_eq!(last.memo.as_deref(), Some("sne:order-42"));

    let rows = client
        .pair_changes(A, &p(P1), &s("1"), 0, start)
        .await
        .unwrap();
    let row = rows.iter().find(|r| r.history_id == Some(id)).unwrap();
    assert_eq!(row.division, Some(StockDivision::from_code("15")));
    assert_eq!((row.amount, row.after), (Some(-3), Some(7)));
    let one = client.change(A, &p(P1), &s("1"), id).await.unwrap();
    assert_eq!(one.as_ref(), Some(row));

    // A pair never changed before starts from zero.
    let id2 = client.add_stock(A, &p(P2), &s("2"), 4, "").await.unwrap();
    assert!(id2 > id);
    assert_eq!(sim.stock(A, "2", P2), Some(4));
}

#[tokio::test]
async fn add_stock_to_an_unknown_store_is_an_api_error_with_the_detail() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let before = sim.history(A).len();
    let e = client
        .add_stock(A, &p(P1), &s("99"), 1, "x")
        .await
        .unwrap_err();
    match &e {
        SmaregiError::Api { code, message } => {
            assert_eq!(code, "400", "{e}");
            assert!(message.contains(NO_SUCH_STORE), "{e}");
        }
        other => panic!("expected Api(400), got {other:?}"),
    }
    let e = client
        .add_stock(A, &p("9999999"), &s("1"), 1, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SmaregiError::Api { code, .. } if code == "404"),
        "{e:?}"
    );
    assert_eq!(sim.history(A).len(), before, "nothing was written");
}

#[tokio::test]
async fn throttled_writes_wait_and_are_written_once() {
    let sim = ready(PlatformConfig {
        writes_per_sec: 1,
        ..fast()
    })
    .await;
    let client = client_with(&sim, 1000, 50);
    let before = sim.history(A).len();
    let mut got = Vec::new();
    for n in 1..=3 {
        got.push(
            client
                .add_stock(A, &p(P1), &s("1"), n, &format!("w{n}"))
                .await
                .unwrap(),
        );
    }
    assert!(sim.platform_throttled(A) > 0);
    let history = sim.history(A);
    assert_eq!(history.len(), before + 3, "each write once");
    let written: Vec<u64> = history[before..].iter().map(|h| h.id).collect();
    assert_eq!(written, got);
    assert_eq!(sim.stock(A, "1", P1), Some(6));
}

// --- 7. tenants -------------------------------------------------------------

#[tokio::test]
async fn contracts_are_isolated_and_have_their_own_tokens() {
    let sim = ready(fast()).await;
    let client = fast_client(&sim);
    let from = sim.now_jst() - hours(1);
    let a = sim.sale(A, "1", P1, 1).await.unwrap().remove(0);
    let b = sim.sale(B, "2", P2, 1).await.unwrap().remove(0);
    sim.sale(B, "1", P3, 1).await.unwrap();
    let to = sim.now_jst() + hours(1);

    let mut api_calls = 0;
    for _ in 0..2 {
        let pa = client.changed_pairs(A, from, to).await.unwrap();
        assert_eq!(pair_set(&pa), BTreeSet::from([pair(P1, "1")]));
        let pb = client.changed_pairs(B, from, to).await.unwrap();
        assert_eq!(
            pair_set(&pb),
            BTreeSet::from([pair(P2, "2"), pair(P3, "1")])
        );
        let ra = client.pair_changes(A, &p(P1), &s("1"), 0, from).await;
        assert_eq!(ids(&ra.unwrap()), vec![a.id]);
        let rb = client.pair_changes(B, &p(P2), &s("2"), 0, from).await;
        assert_eq!(ids(&rb.unwrap()), vec![b.id]);
        // B has no change of A's pair.
        let cross = client.pair_changes(B, &p(P1), &s("1"), 0, from).await;
        assert!(cross.unwrap().is_empty());
        api_calls += 5;
    }
    // One token each, and every call answered at once: no 401 from sending
    // one contract's token for the other.
    assert_eq!(sim.platform_calls(), (2, api_calls));

    // A contract refused later does not disturb the other's token.
    sim.platform_contract_event(B, "end").await.unwrap();
    let e = client.changed_pairs(B, from, to).await.unwrap_err();
    assert!(matches!(e, SmaregiError::Auth { .. }), "{e:?}");
    client.changed_pairs(A, from, to).await.unwrap();
}
