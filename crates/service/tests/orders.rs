//! The order import against both simulators on embedded storage: paging,
//! exactly-once under crashes and replays, failures, cancellations, token
//! rotation, the settings, and no echo of the shipments to NextEngine.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sne_domain::report::OrderSection;
use sne_domain::tenant::{MappingMode, SmaregiCredentials, Tenant};
use sne_domain::{GoodsCode, ProductId, ProductPair, QueId, TenantId};
use sne_ports::nextengine::{
    NeAuth, NeError, NeOrderRow, NextEngineApi, OrderRowQuery, QueueEntry, StockIoEntry,
};
use sne_ports::smaregi::{NewShipment, ShipmentSummary, SmaregiApi, SmaregiError, SmaregiStore};
use sne_ports::{OrderImportState, PairSource};
use sne_service::Context;
use sne_service::cursors::{ORDER_IMPORT_LEASE, ORDER_ROWS_MODIFIED};
use sne_service::orders::{
    ImportOptions, OrderImportError, OrderImportForm, STARTED_MESSAGE, STOPPED_MESSAGE,
    configure_order_import, import_orders,
};
use sne_service::run::{Jobs, run_all};
use sne_service::tenants::{NewTenant, create_tenant};
use sne_simulators::nextengine::{NeConfig, NeSim, OrderUpdate, SeedOrder, SeedOrderRow};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Server, Wiring};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const CONTRACT: &str = "c-orders";
const TOKEN: &str = "smaregi-token";
const COMPANY: &str = "shop";
const SHOP: &str = "テスト商店";

// ---------------------------------------------------------------- fakes

/// Where the Smaregi wrapper fails once, as a crash or a lost answer would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `shipment_ref` fails before reaching Smaregi.
    LookupFails,
    /// `shipment_ref` answers "none" although a shipment exists (a lagging read).
    LookupMisses,
    /// `shipment_upd` fails before reaching Smaregi (crash after `Started`).
    CreateFailsBefore,
    /// `shipment_upd` is processed, its answer lost (crash before `Imported`).
    CreateAnswerLost,
}

struct FaultySmaregi {
    inner: Arc<dyn SmaregiApi>,
    faults: Mutex<VecDeque<Fault>>,
}

impl FaultySmaregi {
    fn take(&self, fault: Fault) -> bool {
        let mut faults = self.faults.lock().unwrap();
        if faults.front() == Some(&fault) {
            faults.pop_front();
            true
        } else {
            false
        }
    }
}

fn lost() -> SmaregiError {
    SmaregiError::Transport("simulated crash".into())
}

#[async_trait]
impl SmaregiApi for FaultySmaregi {
    async fn stock_history_after(
        &self,
        creds: &SmaregiCredentials,
        after_id: u64,
        max_rows: usize,
    ) -> Result<Vec<sne_domain::ChangeRow>, SmaregiError> {
        self.inner
            .stock_history_after(creds, after_id, max_rows)
            .await
    }
    async fn latest_stock_history_id(
        &self,
        creds: &SmaregiCredentials,
    ) -> Result<Option<u64>, SmaregiError> {
        self.inner.latest_stock_history_id(creds).await
    }
    async fn product_codes(
        &self,
        creds: &SmaregiCredentials,
        product_ids: &[ProductId],
    ) -> Result<Vec<ProductPair>, SmaregiError> {
        self.inner.product_codes(creds, product_ids).await
    }
    async fn stores(&self, creds: &SmaregiCredentials) -> Result<Vec<SmaregiStore>, SmaregiError> {
        self.inner.stores(creds).await
    }
    async fn stock_of_stores(
        &self,
        creds: &SmaregiCredentials,
        store_ids: &[sne_domain::StoreId],
    ) -> Result<Vec<sne_ports::smaregi::StoreStock>, SmaregiError> {
        self.inner.stock_of_stores(creds, store_ids).await
    }
    async fn shipments_by_identification(
        &self,
        creds: &SmaregiCredentials,
        identification_no: &str,
    ) -> Result<Vec<ShipmentSummary>, SmaregiError> {
        if self.take(Fault::LookupFails) {
            return Err(lost());
        }
        if self.take(Fault::LookupMisses) {
            return Ok(Vec::new());
        }
        self.inner
            .shipments_by_identification(creds, identification_no)
            .await
    }
    async fn create_shipment(
        &self,
        creds: &SmaregiCredentials,
        shipment: &NewShipment,
    ) -> Result<Option<String>, SmaregiError> {
        if self.take(Fault::CreateFailsBefore) {
            return Err(lost());
        }
        let result = self.inner.create_shipment(creds, shipment).await;
        if self.take(Fault::CreateAnswerLost) {
            return Err(lost());
        }
        result
    }
}

/// Moves NextEngine's clock past the access token's life after every order
/// page, so the import rotates tokens in the middle of its paging.
struct AgingNe {
    inner: Arc<dyn NextEngineApi>,
    ne: NeSim,
    age: AtomicBool,
}

#[async_trait]
impl NextEngineApi for AgingNe {
    fn sign_in_url(&self) -> String {
        self.inner.sign_in_url()
    }
    async fn authorize(&self, uid: &str, state: &str) -> Result<NeAuth, NeError> {
        self.inner.authorize(uid, state).await
    }
    async fn existing_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.inner.existing_goods(tenant, codes).await
    }
    async fn upload_stock_csv(&self, tenant: &TenantId, csv: &[u8]) -> Result<QueId, NeError> {
        self.inner.upload_stock_csv(tenant, csv).await
    }
    async fn goods_stock(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<Vec<sne_ports::nextengine::GoodsStock>, NeError> {
        self.inner.goods_stock(tenant, codes).await
    }
    async fn set_goods(
        &self,
        tenant: &TenantId,
        codes: &[GoodsCode],
    ) -> Result<HashSet<GoodsCode>, NeError> {
        self.inner.set_goods(tenant, codes).await
    }
    async fn queues_by_id(
        &self,
        tenant: &TenantId,
        que_ids: &[QueId],
    ) -> Result<Vec<QueueEntry>, NeError> {
        self.inner.queues_by_id(tenant, que_ids).await
    }
    async fn goods_upload_queues_since(
        &self,
        tenant: &TenantId,
        since: NaiveDateTime,
    ) -> Result<Vec<QueueEntry>, NeError> {
        self.inner.goods_upload_queues_since(tenant, since).await
    }
    async fn keep_tokens_alive(&self, tenant: &TenantId) -> Result<(), NeError> {
        self.inner.keep_tokens_alive(tenant).await
    }
    async fn stock_io_history(
        &self,
        tenant: &TenantId,
        goods_codes: &[GoodsCode],
        since: NaiveDateTime,
    ) -> Result<Vec<StockIoEntry>, NeError> {
        self.inner
            .stock_io_history(tenant, goods_codes, since)
            .await
    }
    async fn order_rows(
        &self,
        tenant: &TenantId,
        query: &OrderRowQuery,
    ) -> Result<Vec<NeOrderRow>, NeError> {
        let rows = self.inner.order_rows(tenant, query).await;
        if self.age.load(Ordering::SeqCst) {
            self.ne.advance_clock(86_400 + 1);
        }
        rows
    }
}

// ---------------------------------------------------------------- harness

struct H {
    _dir: tempfile::TempDir,
    ne: NeSim,
    sm: SmaregiSim,
    ctx: Context,
    smaregi: Arc<FaultySmaregi>,
    aging: Arc<AgingNe>,
    tenant: TenantId,
    _server: Server,
}

fn local() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn form(store: &str) -> OrderImportForm {
    OrderImportForm {
        enabled: true,
        contract_id: CONTRACT.into(),
        store_id: store.into(),
        access_token: TOKEN.into(),
    }
}

impl H {
    /// Both simulators, a tenant with NextEngine tokens and pushes to our webhook;
    /// the order import still off.
    async fn start(push_api_changes: bool) -> H {
        H::start_with(PushShape::Full, push_api_changes).await
    }

    async fn start_with(shape: PushShape, push_api_changes: bool) -> H {
        let ne = NeSim::start(
            NeConfig {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                auto_login_company: COMPANY.into(),
                ..NeConfig::default()
            },
            local(),
        )
        .await
        .unwrap();
        ne.add_company(COMPANY, SHOP);
        ne.seed_goods(
            COMPANY,
            ["8000001", "8000002", "8000003"]
                .iter()
                .map(|code| sne_simulators::nextengine::SeedGoods {
                    goods_id: code.to_string(),
                    goods_name: code.to_string(),
                    stock_quantity: 50,
                    allocation_quantity: 0,
                })
                .collect(),
        );
        // Lenient about what it accepts, so a test write of the settings check
        // would become a real shipment and fail "the checks register nothing".
        let sm = SmaregiSim::start(
            SmaregiConfig {
                lenient_shipments: true,
                ..SmaregiConfig::default()
            },
            local(),
        )
        .await
        .unwrap();
        sm.add_contract(CONTRACT, TOKEN);
        sm.add_store(CONTRACT, "1", "本店");
        sm.add_store(CONTRACT, "2", "倉庫");
        for product in ["8000001", "8000002", "8000003"] {
            sm.add_product(CONTRACT, product, &format!("CODE-{product}"), "商品");
            sm.set_stock(CONTRACT, "1", product, 50).await.unwrap();
        }

        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::bind().await;
        let url = server.url.clone();
        let mut ctx = Wiring::new(dir.path())
            .simulators(&ne, &sm)
            .public_url(&url)
            .ne_attempts(2)
            .context();
        let aging = Arc::new(AgingNe {
            inner: ctx.nextengine.clone(),
            ne: ne.clone(),
            age: AtomicBool::new(false),
        });
        let smaregi = Arc::new(FaultySmaregi {
            inner: ctx.smaregi.clone(),
            faults: Mutex::new(VecDeque::new()),
        });
        ctx.nextengine = aging.clone();
        ctx.smaregi = smaregi.clone();
        server.serve(sne_service::http::router(sne_test_support::admin_of(&ctx)));
        let tenant = create_tenant(
            &ctx,
            NewTenant {
                name: SHOP.into(),
                contract_id: CONTRACT.into(),
                admin_email: "admin@shop.example".into(),
                admin_password: "admin-password".into(),
                notify_emails: vec!["notify@shop.example".into()],
                counted_stores: None,
            },
        )
        .await
        .unwrap();
        connect_to_nextengine(&ctx, &tenant.id, &ne, COMPANY).await;
        sm.configure_push(
            CONTRACT,
            Some(PushConfig {
                url: format!("{url}/smaregi/webhook"),
                pairs: vec![
                    ("contract_id".into(), CONTRACT.into()),
                    ("code".into(), tenant.customer_code.clone()),
                ],
                pairs_as: PairsAs::Form,
                shape,
                push_api_changes,
            }),
        );
        H {
            _dir: dir,
            ne,
            sm,
            ctx,
            smaregi,
            aging,
            tenant: tenant.id,
            _server: server,
        }
    }

    async fn enable(&self) {
        let saved = configure_order_import(&self.ctx, &self.tenant, form("1"))
            .await
            .unwrap();
        assert_eq!(saved.message, STARTED_MESSAGE);
    }

    async fn tenant(&self) -> Tenant {
        self.ctx
            .storage
            .tenant(&self.tenant)
            .await
            .unwrap()
            .unwrap()
    }

    async fn import(&self, page_size: usize) -> OrderSection {
        let tenant = self.tenant().await;
        import_orders(&self.ctx, &tenant, &ImportOptions { page_size })
            .await
            .expect("import is on")
    }

    fn seed(&self, id: i64, rows: &[(&str, i64)]) {
        self.ne.seed_orders(COMPANY, vec![order(id, rows)]);
    }

    fn fault(&self, fault: Fault) {
        self.smaregi.faults.lock().unwrap().push_back(fault);
    }

    fn shipments_of(&self, receive_order_id: &str) -> usize {
        self.sm
            .shipments()
            .iter()
            .filter(|s| {
                s.header
                    .get("identificationNo")
                    .cloned()
                    .flatten()
                    .as_deref()
                    == Some(receive_order_id)
            })
            .count()
    }

    async fn state(&self, receive_order_id: &str) -> Option<OrderImportState> {
        self.ctx
            .storage
            .order_record(&self.tenant, receive_order_id)
            .await
            .unwrap()
            .map(|r| r.state)
    }
}

fn order(id: i64, rows: &[(&str, i64)]) -> SeedOrder {
    SeedOrder {
        receive_order_id: id,
        shop_id: 1,
        shop_cut_form_id: format!("WEB-{id}"),
        order_date: None,
        import_date: None,
        cancel_type_id: "0".into(),
        order_status_id: "2".into(),
        send_date: None,
        rows: rows
            .iter()
            .enumerate()
            .map(|(n, (goods, quantity))| SeedOrderRow {
                row_no: n as i64 + 1,
                goods_id: goods.to_string(),
                goods_name: String::new(),
                quantity: *quantity,
                cancel_flag: false,
                deleted_flag: false,
            })
            .collect(),
    }
}

fn header(s: &sne_simulators::smaregi::ShipmentRecord, key: &str) -> String {
    s.header.get(key).cloned().flatten().unwrap_or_default()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn many_pages_of_orders_become_one_shipment_each() {
    let h = H::start(false).await;
    h.enable().await;
    for id in 1..=23 {
        // Two rows of one goods are one detail row with the summed quantity.
        h.seed(id, &[("8000001", 1), ("8000002", 2), ("8000001", 1)]);
    }
    let section = h.import(10).await;
    assert_eq!(section.imported.len(), 23, "{section:?}");
    assert!(section.failed.is_empty() && section.error.is_none());
    let shipments = h.sm.shipments();
    assert_eq!(shipments.len(), 23);
    let first = shipments
        .iter()
        .find(|s| header(s, "identificationNo") == "1")
        .unwrap();
    assert_eq!(header(first, "shipmentDivision"), "0");
    assert_eq!(header(first, "status"), "2");
    assert_eq!(header(first, "recipientType"), "3");
    assert_eq!(header(first, "recipientName"), SHOP);
    assert_eq!(header(first, "shipmentStoreId"), "1");
    let details: Vec<(String, String)> = first
        .details
        .iter()
        .map(|d| {
            (
                d.get("productId").cloned().flatten().unwrap(),
                d.get("quantity").cloned().flatten().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        details,
        vec![
            ("8000001".into(), "2".into()),
            ("8000002".into(), "2".into())
        ]
    );
    assert!(
        first.details[0]
            .get("memo")
            .cloned()
            .flatten()
            .unwrap()
            .contains("WEB-1")
    );
    // 23 orders × 2 units of 8000001 left 本店 as 出荷 (division 10).
    assert_eq!(h.sm.stock(CONTRACT, "1", "8000001"), Some(50 - 46));
    assert!(
        h.sm.history(CONTRACT)
            .iter()
            .filter(|r| r.amount < 0)
            .all(|r| r.stock_division == "10")
    );

    // Replays: the same run again, and again with the cursor moved back.
    h.import(10).await;
    let cursor = h
        .ctx
        .storage
        .cursor(&h.tenant, ORDER_ROWS_MODIFIED.name)
        .await
        .unwrap();
    assert!(cursor.is_some());
    h.ctx
        .storage
        .set_cursor(
            &h.tenant,
            ORDER_ROWS_MODIFIED.name,
            cursor.as_deref(),
            "2000-01-01 00:00:00",
        )
        .await
        .unwrap();
    h.import(7).await;
    assert_eq!(h.sm.shipments().len(), 23);
}

#[tokio::test]
async fn a_crash_at_every_step_never_ships_twice() {
    let h = H::start(false).await;
    h.enable().await;
    for (n, fault) in [
        Fault::LookupFails,
        Fault::CreateFailsBefore,
        Fault::CreateAnswerLost,
    ]
    .into_iter()
    .enumerate()
    {
        let id = 100 + n as i64;
        h.seed(id, &[("8000001", 1)]);
        h.fault(fault);
        let section = h.import(50).await;
        assert!(section.error.is_some(), "{fault:?}: the run stops");
        let after_crash = h.shipments_of(&id.to_string());
        let expected = usize::from(fault == Fault::CreateAnswerLost);
        assert_eq!(after_crash, expected, "{fault:?}");
        if fault != Fault::LookupFails {
            assert_eq!(
                h.state(&id.to_string()).await,
                Some(OrderImportState::Started)
            );
        }
        // The next run resolves it: adopts the shipment or makes the only one.
        let section = h.import(50).await;
        assert!(section.error.is_none(), "{fault:?}: {section:?}");
        assert_eq!(h.shipments_of(&id.to_string()), 1, "{fault:?}");
        assert!(matches!(
            h.state(&id.to_string()).await,
            Some(OrderImportState::Imported { .. })
        ));
    }
    // A second process running concurrently on the same data changes nothing:
    // one of them holds the tenant's import lease, the other leaves it alone.
    let tenant = h.tenant().await;
    let options = ImportOptions { page_size: 50 };
    let (a, b) = tokio::join!(
        import_orders(&h.ctx, &tenant, &options),
        import_orders(&h.ctx, &tenant, &options)
    );
    assert!(
        a.iter().chain(b.iter()).all(|s| s.error.is_none()),
        "{a:?} {b:?}"
    );
    assert_eq!(h.sm.shipments().len(), 3);
}

#[tokio::test]
async fn a_replayed_token_is_skipped_by_smaregi_and_adopted() {
    let h = H::start(false).await;
    h.enable().await;
    h.seed(7, &[("8000003", 4)]);
    // The answer is lost, and on the next run the lookup misses the shipment:
    // the request goes out again with the same token, Smaregi skips it, and
    // the lookup after the skip adopts the one shipment.
    h.fault(Fault::CreateAnswerLost);
    h.import(50).await;
    assert_eq!(h.shipments_of("7"), 1);
    h.fault(Fault::LookupMisses);
    let section = h.import(50).await;
    assert!(section.error.is_none(), "{section:?}");
    assert_eq!(h.shipments_of("7"), 1);
    assert!(matches!(
        h.state("7").await,
        Some(OrderImportState::Imported { .. })
    ));
    assert_eq!(h.sm.stock(CONTRACT, "1", "8000003"), Some(46));
}

#[tokio::test]
async fn unmappable_goods_fail_are_reported_once_and_never_retried() {
    let h = H::start(false).await;
    h.enable().await;
    let mut tenant = h.tenant().await;
    tenant.mapping_mode = MappingMode::Table;
    h.ctx.storage.update_tenant(&tenant).await.unwrap();
    h.ctx
        .storage
        .put_product_pairs(
            &h.tenant,
            PairSource::Table,
            &[ProductPair::new("8000001", "ABC-1")],
            true,
        )
        .await
        .unwrap();
    h.seed(1, &[("ABC-1", 2)]);
    h.seed(2, &[("ABC-1", 1), ("NOPE-9", 3)]);
    let runs = run_all(&h.ctx, Jobs::ImportOrders).await.unwrap();
    let orders = runs[0].report.orders.clone().unwrap();
    assert_eq!(orders.imported.len(), 1);
    assert_eq!(orders.failed.len(), 1);
    let failed = &orders.failed[0];
    assert_eq!(failed.receive_order_id, "2");
    assert!(failed.reason.contains("NOPE-9"), "{}", failed.reason);
    assert_eq!(
        failed.lines,
        vec![("ABC-1".to_string(), 1), ("NOPE-9".to_string(), 3)]
    );
    let rendered = runs[0].report.render();
    assert!(
        rendered.subject.contains("受注取込:エラー発生"),
        "{}",
        rendered.subject
    );
    assert!(rendered.body.contains("手動で登録"), "{}", rendered.body);
    assert_eq!(h.sm.shipments().len(), 1);

    // Told once; a change of the order in NextEngine does not retry it either,
    // since the operator may have registered it by hand.
    h.ne.advance_clock(5);
    h.ne.update_order(
        COMPANY,
        2,
        OrderUpdate {
            order_status_id: Some("20".into()),
            ..OrderUpdate::default()
        },
    );
    let runs = run_all(&h.ctx, Jobs::ImportOrders).await.unwrap();
    let orders = runs[0].report.orders.clone().unwrap();
    assert!(
        orders.failed.is_empty() && orders.imported.is_empty(),
        "{orders:?}"
    );
    assert_eq!(h.sm.shipments().len(), 1);
}

#[tokio::test]
async fn each_smaregi_rejection_is_recorded_with_its_reason() {
    let h = H::start(false).await;
    h.enable().await;
    h.seed(1, &[("9999999", 1)]); // no such Smaregi product
    h.seed(2, &[("8000001", 100_000)]); // more than 5 digits
    let section = h.import(50).await;
    assert!(section.error.is_none(), "{section:?}");
    let reason = |id: &str| {
        section
            .failed
            .iter()
            .find(|f| f.receive_order_id == id)
            .map(|f| f.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason("1").contains("9999999"), "{}", reason("1"));
    assert!(reason("2").contains("quantity"), "{}", reason("2"));

    // Failed is final: the next run does not send them again.
    h.import(50).await;
    assert!(h.sm.shipments().is_empty());

    // The store disappears from Smaregi's view (here: the setting points
    // elsewhere). That is the setting, not the order: the run stops and says
    // what to check, and the order is never marked failed.
    let mut tenant = h.tenant().await;
    tenant.order_import.store_id = Some("99".into());
    let tenant = h.ctx.storage.update_tenant(&tenant).await.unwrap();
    h.seed(3, &[("8000001", 1)]);
    let section = h.import(50).await;
    let error = section.error.clone().unwrap_or_default();
    assert!(
        error.contains("shipmentStoreId") && error.contains("店舗ID"),
        "{section:?}"
    );
    assert!(section.failed.iter().all(|f| f.receive_order_id != "3"));
    assert_eq!(h.state("3").await, Some(OrderImportState::Started));
    assert!(h.sm.shipments().is_empty());
    // Mended, the same order goes through once.
    let mut tenant = tenant;
    tenant.order_import.store_id = Some("1".into());
    h.ctx.storage.update_tenant(&tenant).await.unwrap();
    let section = h.import(50).await;
    assert!(section.error.is_none(), "{section:?}");
    assert_eq!(h.shipments_of("3"), 1);
}

#[tokio::test]
async fn cancelled_orders_are_skipped_or_reported_once_after_import() {
    let h = H::start(false).await;
    h.enable().await;
    let mut cancelled = order(1, &[("8000001", 1)]);
    cancelled.cancel_type_id = "5".into();
    h.ne.seed_orders(COMPANY, vec![cancelled]);
    let mut rows = order(2, &[("8000001", 1), ("8000002", 5)]);
    rows.rows[1].cancel_flag = true;
    let mut deleted = order(3, &[("8000003", 1)]);
    deleted.rows[0].deleted_flag = true;
    h.ne.seed_orders(COMPANY, vec![rows, deleted]);
    h.seed(4, &[("8000003", 2)]);
    let runs = run_all(&h.ctx, Jobs::ImportOrders).await.unwrap();
    let orders = runs[0].report.orders.clone().unwrap();
    let ids: Vec<_> = orders
        .imported
        .iter()
        .map(|o| o.receive_order_id.as_str())
        .collect();
    assert_eq!(ids, ["2", "4"]);
    assert_eq!(h.shipments_of("1") + h.shipments_of("3"), 0);
    let two =
        h.sm.shipments()
            .into_iter()
            .find(|s| header(s, "identificationNo") == "2")
            .unwrap();
    assert_eq!(two.details.len(), 1, "the cancelled row is not shipped");

    h.ne.advance_clock(5);
    h.ne.update_order(
        COMPANY,
        4,
        OrderUpdate {
            cancel_type_id: Some("5".into()),
            ..OrderUpdate::default()
        },
    );
    let runs = run_all(&h.ctx, Jobs::ImportOrders).await.unwrap();
    let orders = runs[0].report.orders.clone().unwrap();
    assert_eq!(orders.cancelled_after_import.len(), 1);
    assert_eq!(orders.cancelled_after_import[0].receive_order_id, "4");
    assert!(runs[0].report.render().body.contains("キャンセル"));
    assert!(matches!(
        h.state("4").await,
        Some(OrderImportState::CancelledAfterImport { .. })
    ));
    // Reported once, not reversed.
    let runs = run_all(&h.ctx, Jobs::ImportOrders).await.unwrap();
    assert!(
        runs[0]
            .report
            .orders
            .as_ref()
            .unwrap()
            .cancelled_after_import
            .is_empty()
    );
    assert_eq!(h.sm.shipments().len(), 2);
}

#[tokio::test]
async fn tokens_rotate_during_a_long_import() {
    let h = H::start(false).await;
    h.enable().await;
    for id in 1..=25 {
        h.seed(id, &[("8000002", 1)]);
    }
    let before = h.ctx.storage.ne_tokens(&h.tenant).await.unwrap().unwrap();
    h.aging.age.store(true, Ordering::SeqCst);
    let section = h.import(10).await;
    h.aging.age.store(false, Ordering::SeqCst);
    assert!(section.error.is_none(), "{section:?}");
    assert_eq!(section.imported.len(), 25);
    let after = h.ctx.storage.ne_tokens(&h.tenant).await.unwrap().unwrap();
    assert_ne!(before.access_token, after.access_token);
    assert_eq!(
        h.ne.tokens_of(COMPANY).unwrap().0,
        after.access_token,
        "the newest pair is the stored one"
    );
    assert_eq!(h.sm.shipments().len(), 25);
}

#[tokio::test]
async fn settings_are_cleaned_checked_and_answered_with_the_manuals_messages() {
    let h = H::start(false).await;
    // An order NextEngine received before the switch-on is never imported.
    let mut old = order(1, &[("8000001", 1)]);
    old.import_date = Some(h.ne.now_jst() - chrono::Duration::hours(1));
    h.ne.seed_orders(COMPANY, vec![old]);

    let invalid = |r: Result<_, OrderImportError>| match r {
        Err(OrderImportError::Invalid(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut f = form("1");
    f.store_id = " ".into();
    assert!(invalid(configure_order_import(&h.ctx, &h.tenant, f).await).contains("店舗ID"));
    let mut f = form("1");
    f.contract_id = "someone-else".into();
    assert!(invalid(configure_order_import(&h.ctx, &h.tenant, f).await).contains("一致しません"));
    let mut f = form("1");
    f.access_token = "wrong".into();
    assert!(
        invalid(configure_order_import(&h.ctx, &h.tenant, f).await).contains("アクセストークン")
    );
    assert!(
        invalid(configure_order_import(&h.ctx, &h.tenant, form("99")).await).contains("店舗ID 99")
    );
    h.sm.set_functions(CONTRACT, &["shipment_upd", "store_ref", "stock_ref"]);
    assert!(
        invalid(configure_order_import(&h.ctx, &h.tenant, form("1")).await)
            .contains("24.出荷情報取得")
    );
    // The manual's two functions plus 在庫情報参照, which the import needs for
    // reading stock history. Without 店舗情報参照 the store cannot be checked by a
    // read call: saved with a warning (a test write could become a real shipment).
    h.sm.set_functions(CONTRACT, &["shipment_upd", "shipment_ref", "stock_ref"]);
    let unchecked = configure_order_import(&h.ctx, &h.tenant, form("99"))
        .await
        .unwrap();
    assert!(
        unchecked.warnings.iter().any(|w| w.contains("店舗ID 99")),
        "{unchecked:?}"
    );
    // Saving it switched stock-history reading on, and said so.
    assert!(
        unchecked
            .warnings
            .iter()
            .any(|w| w.contains("在庫変動履歴")),
        "{unchecked:?}"
    );
    assert!(
        sne_service::stock_history::history_mode_since(&h.ctx, &h.tenant().await)
            .await
            .is_some()
    );
    configure_order_import(
        &h.ctx,
        &h.tenant,
        OrderImportForm {
            enabled: false,
            ..OrderImportForm::default()
        },
    )
    .await
    .unwrap();
    // Without 在庫情報参照 the import would upload its own shipments with
    // absolute pushes: refused, nothing saved.
    h.sm.set_functions(CONTRACT, &["shipment_upd", "shipment_ref"]);
    assert!(
        invalid(configure_order_import(&h.ctx, &h.tenant, form("1")).await)
            .contains("在庫情報参照")
    );
    assert!(!h.tenant().await.order_import.enabled, "nothing saved");
    h.sm.set_functions(
        CONTRACT,
        &["shipment_upd", "shipment_ref", "stock_ref", "store_ref"],
    );

    // Pasted with spaces and line breaks.
    let pasted = OrderImportForm {
        enabled: true,
        contract_id: format!(" {CONTRACT}\n"),
        store_id: "1 \r\n".into(),
        access_token: format!("\n {TOKEN} \r\n"),
    };
    let saved = configure_order_import(&h.ctx, &h.tenant, pasted)
        .await
        .unwrap();
    assert_eq!(saved.message, "受注数取り込みを開始しました");
    assert_eq!(saved.message, STARTED_MESSAGE);
    assert!(
        saved.warnings.is_empty(),
        "history is on already: {saved:?}"
    );
    let tenant = h.tenant().await;
    assert!(tenant.order_import.enabled);
    assert_eq!(tenant.order_import.store_id.as_deref(), Some("1"));
    assert_eq!(tenant.smaregi_api.as_ref().unwrap().access_token, TOKEN);
    let enabled_at = tenant.order_import.enabled_at.unwrap();
    assert!(h.sm.shipments().is_empty(), "the checks register nothing");

    // Re-saving while on keeps the moment it was switched on.
    h.sm.set_functions(CONTRACT, sne_simulators::smaregi::ALL_FUNCTIONS);
    let saved = configure_order_import(&h.ctx, &h.tenant, form("1"))
        .await
        .unwrap();
    assert!(saved.warnings.is_empty());
    assert_eq!(h.tenant().await.order_import.enabled_at, Some(enabled_at));
    let section = h.import(50).await;
    assert!(section.imported.is_empty(), "{section:?}");

    let off = OrderImportForm {
        enabled: false,
        ..OrderImportForm::default()
    };
    let saved = configure_order_import(&h.ctx, &h.tenant, off)
        .await
        .unwrap();
    assert_eq!(saved.message, "受注数取り込みを停止しました");
    assert_eq!(saved.message, STOPPED_MESSAGE);
    let tenant = h.tenant().await;
    assert!(!tenant.order_import.enabled);
    h.seed(2, &[("8000001", 1)]);
    assert!(
        import_orders(&h.ctx, &tenant, &ImportOptions::default())
            .await
            .is_none()
    );
    let runs = run_all(&h.ctx, Jobs::All).await.unwrap();
    assert!(runs[0].report.orders.is_none());
    assert!(h.sm.shipments().is_empty());
}

/// The shipments' stock changes (出荷, division 10) never go back to NextEngine,
/// whatever the push carries: a push with only the stock after the change
/// (`productId`, `storeId`, `stockAmount`) includes the shipment in that figure.
async fn no_echo(shape: PushShape, push_api_changes: bool) {
    let h = H::start_with(shape, push_api_changes).await;
    h.enable().await;
    // A store sale, so the pipeline has something to upload.
    h.sm.sale(CONTRACT, "1", "8000001", 2).await.unwrap();
    h.seed(1, &[("8000002", 3), ("8000003", 1)]);
    let runs = run_all(&h.ctx, Jobs::All).await.unwrap();
    assert_eq!(runs[0].report.orders.as_ref().unwrap().imported.len(), 1);
    assert_eq!(h.sm.stock(CONTRACT, "1", "8000002"), Some(47));
    // After the shipment, a store sale of the same goods: its push carries the
    // stock after both (50 − 1 − 1 = 48 for 8000003).
    h.sm.sale(CONTRACT, "1", "8000003", 1).await.unwrap();
    if push_api_changes {
        let shipped_push =
            h.sm.sends()
                .iter()
                .any(|s| s.body.contains("8000002") && s.status == "成功");
        assert!(shipped_push, "the 出荷 push reached our webhook");
    }
    h.ne.run_queues();
    for _ in 0..2 {
        run_all(&h.ctx, Jobs::All).await.unwrap();
        h.ne.run_queues();
    }
    let uploads = h.ne.uploads();
    assert!(!uploads.is_empty());
    assert!(uploads.iter().any(|u| u.csv.contains("8000001")));
    assert!(
        uploads.iter().all(|u| !u.csv.contains("8000002")),
        "{uploads:?}"
    );
    assert_eq!(h.ne.stock(COMPANY, "8000002"), Some(50));
    assert_eq!(h.ne.stock(COMPANY, "8000001"), Some(48));
    assert_eq!(
        h.ne.stock(COMPANY, "8000003"),
        Some(49),
        "only the store sale, not the web order NextEngine already counted: {uploads:?}"
    );
}

#[tokio::test]
async fn shipments_are_not_echoed_to_nextengine() {
    for shape in [
        PushShape::Full,
        PushShape::Minimal,
        PushShape::Absolute,
        PushShape::Relative,
    ] {
        no_echo(shape, false).await;
    }
}

#[tokio::test]
async fn pushed_shipments_are_not_echoed_to_nextengine() {
    for shape in [
        PushShape::Full,
        PushShape::Minimal,
        PushShape::Absolute,
        PushShape::Relative,
    ] {
        no_echo(shape, true).await;
    }
}

#[tokio::test]
async fn an_import_in_progress_elsewhere_is_left_alone_until_its_lease_runs_out() {
    let h = H::start(false).await;
    h.enable().await;
    h.seed(7, &[("8000001", 1)]);
    // Another process (the other Lambda) holds the tenant's import right now.
    let now = chrono::Utc::now();
    let held = format!(
        "import-other|{}",
        (now + chrono::Duration::minutes(10)).to_rfc3339()
    );
    assert!(
        h.ctx
            .storage
            .set_cursor(&h.tenant, ORDER_IMPORT_LEASE.name, None, &held)
            .await
            .unwrap()
    );
    let tenant = h.tenant().await;
    let options = ImportOptions { page_size: 50 };
    assert!(
        import_orders(&h.ctx, &tenant, &options).await.is_none(),
        "no section: the holder reports"
    );
    assert_eq!(h.shipments_of("7"), 0, "nothing shipped beside the holder");
    assert_eq!(h.state("7").await, None);

    // The holder died: once its lease ran out, the next run imports, once.
    let expired = format!(
        "import-other|{}",
        (now - chrono::Duration::seconds(1)).to_rfc3339()
    );
    h.ctx
        .storage
        .set_cursor(&h.tenant, ORDER_IMPORT_LEASE.name, Some(&held), &expired)
        .await
        .unwrap();
    let section = import_orders(&h.ctx, &tenant, &options).await.unwrap();
    assert!(section.error.is_none(), "{section:?}");
    assert_eq!(h.shipments_of("7"), 1);
    assert!(matches!(
        h.state("7").await,
        Some(OrderImportState::Imported { .. })
    ));
    // The lease was handed back: the next run starts at once.
    let again = import_orders(&h.ctx, &tenant, &options).await.unwrap();
    assert!(again.error.is_none());
    assert_eq!(h.shipments_of("7"), 1);
}

#[tokio::test]
async fn the_import_stops_while_stock_history_is_not_read() {
    let h = H::start(false).await;
    h.enable().await;
    // Switching history off is refused while the import is on…
    let tenant = h.tenant().await;
    let refused = sne_service::stock_history::set_history_mode(&h.ctx, &tenant, false).await;
    assert!(refused.is_err(), "{refused:?}");
    // …and an import found without it (e.g. a mode lost by hand) ships nothing.
    let mut lost = h.tenant().await;
    lost.stock_history = Default::default();
    h.ctx.storage.update_tenant(&lost).await.unwrap();
    h.seed(8, &[("8000001", 1)]);
    let section = h.import(50).await;
    assert_eq!(
        section.error.as_deref(),
        Some(sne_service::orders::HISTORY_REQUIRED)
    );
    assert_eq!(h.shipments_of("8"), 0);
}
