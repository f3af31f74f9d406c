//! A whole smaregi-ne (router on a real socket, embedded storage in a temp dir)
//! between a Smaregi simulator and a NextEngine simulator, for end-to-end tests.

pub mod soak;

use sne_domain::tenant::{SmaregiCredentials, Tenant};
use sne_ports::FixedClock;
use sne_service::dispatch::{DispatchConfig, spawn_dispatcher};
use sne_service::run::{Jobs, TenantRun, run_all};
use sne_service::tenants::{NewTenant, create_tenant};
use sne_service::trigger::RunRequest;
use sne_service::{AdminContext, Context, ServiceConfig};
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Contexts, PLATFORM_SECRET, Server, Wiring};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

pub use sne_test_support::{SentMail, mails_in};

pub const CONTRACT: &str = "c-e2e";
pub const SMAREGI_TOKEN: &str = "smaregi-secret-token";
pub const COMPANY: &str = "shop";

pub struct Options {
    pub shape: PushShape,
    pub pairs_as: PairsAs,
    pub push_api_changes: bool,
    /// Smaregi products (id) with their opening stock in store 1.
    pub smaregi_stock: Vec<(&'static str, i64)>,
    /// NextEngine goods with (stock, allocated).
    pub ne_goods: Vec<(&'static str, i64, i64)>,
    /// Smaregi stores beyond 1 (本店) and 2 (二号店): (id, name).
    pub extra_stores: Vec<(&'static str, &'static str)>,
    /// The tenant's counted stores (`None`: all).
    pub counted_stores: Option<Vec<String>>,
    pub config: ServiceConfig,
    /// Whether NextEngine's queue rows tell API uploads from screen uploads
    /// (`NeConfig::queue_upload_names`; the reference cannot tell).
    pub queue_upload_names: bool,
    /// The service is a スマレジ・プラットフォームAPI app (pointed at the
    /// simulator), whose webhooks and contract notifications reach it.
    pub platform: bool,
    pub smaregi_config: SmaregiConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            shape: PushShape::Full,
            pairs_as: PairsAs::Form,
            push_api_changes: false,
            smaregi_stock: vec![("8000001", 10), ("8000002", 10), ("8000003", 10)],
            ne_goods: vec![("8000001", 10, 0), ("8000002", 10, 0), ("8000003", 10, 0)],
            extra_stores: vec![],
            counted_stores: None,
            config: ServiceConfig::default(),
            queue_upload_names: true,
            platform: false,
            smaregi_config: SmaregiConfig::default(),
        }
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ne: NeSim,
    pub smaregi: SmaregiSim,
    /// The jobs' context.
    pub ctx: Context,
    /// The admin screen's and the operator commands' context, over the same core.
    pub admin: AdminContext,
    pub service_url: String,
    pub tenant: Tenant,
    /// The service's clock; [`Harness::advance`] moves it with the simulators'.
    pub clock: Arc<FixedClock>,
    /// The run requests of the webhook and 今すぐ実行, until
    /// [`Harness::dispatch`] takes them; unread, they change nothing.
    pub requests: Option<UnboundedReceiver<RunRequest>>,
    wiring: Wiring,
    _server: Server,
}

fn local() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let ne = NeSim::start(
            NeConfig {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                auto_login_company: COMPANY.into(),
                queue_upload_names: options.queue_upload_names,
                ..NeConfig::default()
            },
            local(),
        )
        .await
        .expect("NextEngine simulator");
        ne.add_company(COMPANY, "テスト商店");
        ne.seed_goods(
            COMPANY,
            options
                .ne_goods
                .iter()
                .map(|(code, stock, allocated)| SeedGoods {
                    goods_id: code.to_string(),
                    goods_name: format!("商品{code}"),
                    stock_quantity: *stock,
                    allocation_quantity: *allocated,
                })
                .collect(),
        );
        let smaregi = SmaregiSim::start(options.smaregi_config.clone(), local())
            .await
            .expect("Smaregi simulator");
        smaregi.add_contract(CONTRACT, SMAREGI_TOKEN);
        smaregi.add_store(CONTRACT, "1", "本店");
        smaregi.add_store(CONTRACT, "2", "二号店");
        for (id, name) in &options.extra_stores {
            smaregi.add_store(CONTRACT, id, name);
        }
        for (product, stock) in &options.smaregi_stock {
            smaregi.add_product(CONTRACT, product, &format!("CODE-{product}"), "商品");
            smaregi
                .set_stock(CONTRACT, "1", product, *stock)
                .await
                .expect("opening stock");
        }

        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::bind().await;
        let service_url = server.url.clone();
        let clock = Arc::new(FixedClock::new(sne_domain::time::from_jst(ne.now_jst())));
        let mut wiring = Wiring::new(dir.path())
            .simulators(&ne, &smaregi)
            .public_url(&service_url)
            .clock(clock.clone())
            .config(ServiceConfig {
                mail_from: "noreply@smaregi-ne.example".into(),
                ..options.config.clone()
            });
        if options.platform {
            wiring = wiring.platform_sim(&smaregi);
            smaregi.configure_platform_webhook(
                Some(&format!("{service_url}/smaregi/platform/webhook")),
                &[PLATFORM_SECRET],
            );
            smaregi.configure_contract_notification(Some(&format!(
                "{service_url}/smaregi/platform/contract"
            )));
        }
        let Contexts {
            jobs: ctx,
            admin,
            requests,
        } = wiring.contexts();
        server.serve(sne_service::http::router(admin.clone()));

        let tenant = create_tenant(
            &ctx,
            NewTenant {
                name: "テスト商店".into(),
                contract_id: CONTRACT.into(),
                admin_email: "admin@shop.example".into(),
                admin_password: "admin-password".into(),
                notify_emails: vec!["notify@shop.example".into()],
                counted_stores: options.counted_stores.clone(),
            },
        )
        .await
        .expect("tenant");
        connect_to_nextengine(&ctx, &tenant.id, &ne, COMPANY).await;
        smaregi.configure_push(
            CONTRACT,
            Some(PushConfig {
                url: format!("{service_url}/smaregi/webhook"),
                pairs: vec![
                    ("contract_id".into(), CONTRACT.into()),
                    ("code".into(), tenant.customer_code.clone()),
                ],
                pairs_as: options.pairs_as,
                shape: options.shape,
                push_api_changes: options.push_api_changes,
            }),
        );
        Harness {
            dir,
            ne,
            smaregi,
            ctx,
            admin,
            service_url,
            tenant,
            clock,
            requests: Some(requests),
            wiring,
            _server: server,
        }
    }

    /// Runs the process's dispatcher over the harness, as `serve` does.
    pub fn dispatch(&mut self, config: DispatchConfig) -> tokio::task::JoinHandle<()> {
        let requests = self.requests.take().expect("one dispatcher per harness");
        spawn_dispatcher(self.ctx.clone(), requests, config)
    }

    /// Moves time forward for the service and both simulators.
    pub fn advance(&self, secs: i64) {
        self.advancer()(secs);
    }

    /// [`Harness::advance`] as a value that port wrappers can hold.
    pub fn advancer(&self) -> Arc<dyn Fn(i64) + Send + Sync> {
        let (clock, ne, smaregi) = (self.clock.clone(), self.ne.clone(), self.smaregi.clone());
        Arc::new(move |secs| {
            clock.advance(chrono::Duration::seconds(secs));
            ne.advance_clock(secs);
            smaregi.advance_clock(secs);
        })
    }

    /// The push settings the harness started with, with another shape and
    /// `push_api_changes`.
    pub fn configure_push(&self, shape: PushShape, pairs_as: PairsAs, push_api_changes: bool) {
        self.smaregi.configure_push(
            CONTRACT,
            Some(PushConfig {
                url: format!("{}/smaregi/webhook", self.service_url),
                pairs: vec![
                    ("contract_id".into(), CONTRACT.into()),
                    ("code".into(), self.tenant.customer_code.clone()),
                ],
                pairs_as,
                shape,
                push_api_changes,
            }),
        );
    }

    /// An operator's own goods CSV, uploaded through NextEngine's screen into the
    /// same queue list the service's uploads land in.
    pub async fn operator_upload(&self, csv: &str) -> anyhow::Result<Option<String>> {
        self.ne
            .operator_upload(COMPANY, csv, "商品マスタ_手動.csv")
            .map(Some)
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// A second, independent wiring on the same data directory: what a second
    /// `smaregi-ne run` process would have.
    pub fn second_process(&self) -> Context {
        self.wiring.context()
    }

    pub async fn run(&self, jobs: Jobs) -> TenantRun {
        let mut runs = run_all(&self.ctx, jobs).await.expect("run");
        assert_eq!(runs.len(), 1, "one tenant");
        runs.remove(0)
    }

    /// Gives this tenant the old API's credentials (在庫情報参照 and the rest),
    /// without switching history reading on.
    pub async fn give_smaregi_api(&mut self) {
        let mut tenant = self.tenant.clone();
        tenant.smaregi_api = Some(SmaregiCredentials {
            contract_id: CONTRACT.into(),
            access_token: SMAREGI_TOKEN.into(),
        });
        self.tenant = self
            .ctx
            .storage
            .update_tenant(&tenant)
            .await
            .expect("update");
    }

    /// Gives this tenant read access to Smaregi's stock history.
    pub async fn enable_history_access(&mut self) {
        self.give_smaregi_api().await;
        let message = sne_service::stock_history::set_history_mode(&self.ctx, &self.tenant, true)
            .await
            .expect("history mode");
        assert!(message.contains("開始"), "{message}");
    }

    /// The tenant on the Platform intake the way a migrating shop gets there:
    /// old-API history reading on, the app installed for the contract, then
    /// the switch at the current history id. Needs [`Options::platform`].
    pub async fn use_platform_intake(&mut self) -> String {
        self.enable_history_access().await;
        self.smaregi
            .platform_subscribe(CONTRACT, &[])
            .await
            .expect("app installed");
        let message = sne_service::platform::switch_intake(
            &self.admin,
            &self.tenant,
            sne_domain::history_mode::HistorySource::Platform,
        )
        .await
        .expect("switched to the Platform intake");
        // The harness clock stands still; a real one has moved on by the time
        // the next push arrives (a push at the switch instant is judged by the
        // period before it).
        self.advance(1);
        self.tenant = self
            .ctx
            .storage
            .tenant(&self.tenant.id)
            .await
            .expect("tenant")
            .expect("tenant exists");
        message
    }

    pub fn ne_stock(&self, code: &str) -> i64 {
        self.ne
            .stock(COMPANY, code)
            .expect("goods exists in NextEngine")
    }

    /// Every mail in the outbox, oldest first, parsed.
    pub fn mails(&self) -> Vec<SentMail> {
        mails_in(self.dir.path())
    }
}
