//! `smaregi-ne demo`: the service, both simulators and a demo tenant in one process.

use crate::wiring::{self, Endpoints};
use anyhow::{Context as _, bail};
use clap::Args;
use sne_service::orders::{OrderImportForm, configure_order_import};
use sne_service::run::{Jobs, run_all};
use sne_service::tenants::{NewTenant, connect_nextengine, create_tenant};
use sne_service::{Context, Core};
use sne_simulators::nextengine::{NeConfig, NeSim, QueueMode, SeedGoods, SeedOrder, SeedOrderRow};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const CONTRACT: &str = "demo-contract";
const SMAREGI_TOKEN: &str = "demo-smaregi-token";
const NE_COMPANY: &str = "demo";
const CLIENT_ID: &str = "demo-client-id";
const CLIENT_SECRET: &str = "demo-client-secret";
const ADMIN_EMAIL: &str = "admin@demo.example";
const ADMIN_PASSWORD: &str = "demo-password";
const NOTIFY_EMAIL: &str = "shop@demo.example";

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8081")]
    nextengine_sim_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8082")]
    smaregi_sim_listen: SocketAddr,
    /// Seconds between scheduled runs while the demo serves.
    #[arg(long, default_value_t = 30)]
    every_seconds: u64,
    /// Play a scripted sale, 棚卸 and resend, print what happened, and exit.
    #[arg(long)]
    scenario: bool,
    /// Which intake the demo tenant's changes come through: `old` (API送信 and
    /// StockHistory) or `platform` (スマレジ・プラットフォームAPI webhooks and backfill).
    #[arg(long, value_enum, default_value_t = DemoIntake::Old)]
    intake: DemoIntake,
    #[command(flatten)]
    realtime: wiring::RealtimeArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoIntake {
    Old,
    Platform,
}

/// The demo's Platform webhook secret (the app's custom header).
const PLATFORM_WEBHOOK_HEADER: &str = "x-smaregi-ne-secret";
const PLATFORM_WEBHOOK_SECRET: &str = "demo-webhook-secret";

pub async fn run(data_dir: &Path, args: DemoArgs) -> anyhow::Result<()> {
    let ne = NeSim::start(
        NeConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            queue_mode: QueueMode::Auto { delay_ms: 1500 },
            auto_login_company: NE_COMPANY.into(),
            ..NeConfig::default()
        },
        args.nextengine_sim_listen,
    )
    .await
    .context("NextEngine simulator")?;
    let smaregi = SmaregiSim::start(SmaregiConfig::default(), args.smaregi_sim_listen)
        .await
        .context("Smaregi simulator")?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let service_url = format!("http://{}", listener.local_addr()?);
    let platform_app = sne_simulators::smaregi::platform::PlatformConfig::default();
    let endpoints = Endpoints {
        nextengine_api_url: ne.base_url(),
        nextengine_signin_url: ne.base_url(),
        nextengine_client_id: CLIENT_ID.into(),
        nextengine_client_secret: CLIENT_SECRET.into(),
        smaregi_api_url: smaregi.access_url(),
        smaregi_platform_client_id: platform_app.client_id.clone(),
        smaregi_platform_client_secret: platform_app.client_secret.clone(),
        smaregi_platform_id_url: smaregi.base_url(),
        smaregi_platform_api_url: smaregi.platform_api_url(),
        smaregi_platform_webhook_header: PLATFORM_WEBHOOK_HEADER.into(),
        smaregi_platform_webhook_secret: PLATFORM_WEBHOOK_SECRET.into(),
        public_url: service_url.clone(),
        mail_from: "smaregi-ne@demo.example".into(),
        api_calls_per_second_per_tenant: sne_ports::RateLimits::DEFAULT
            .per_tenant
            .map_or(0, |n| n.get()),
        api_calls_per_second: sne_ports::RateLimits::DEFAULT
            .per_process
            .map_or(0, |n| n.get()),
    };
    let local = wiring::local_context(data_dir, &endpoints)?;
    let customer_code = seed(&local.admin, &ne, &smaregi, &service_url).await?;
    let ctx = local.jobs;
    let admin = local.admin.clone();
    let app = sne_service::http::router(local.admin);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if args.intake == DemoIntake::Platform {
        let message = seed_platform(&admin, &smaregi, &service_url).await?;
        println!("{message}");
    }

    print_welcome(
        data_dir,
        &service_url,
        &ne,
        &smaregi,
        &endpoints,
        &customer_code,
    );
    if args.scenario {
        let outcome = scenario(&ctx, &ne, &smaregi, data_dir).await;
        server.abort();
        return outcome;
    }
    let dispatch = args
        .realtime
        .dispatch(Duration::from_secs(args.every_seconds.max(1)))?;
    let drift = args
        .realtime
        .drift_hour()
        .map(|hour| sne_service::drift::spawn_daily_drift(ctx.clone(), hour));
    let scheduler = sne_service::dispatch::spawn_dispatcher(ctx, local.requests, dispatch);
    let _ = tokio::signal::ctrl_c().await;
    scheduler.abort();
    if let Some(drift) = drift {
        drift.abort();
    }
    server.abort();
    Ok(())
}

/// Seeds both simulators and the demo tenant; returns the tenant's お客様専用コード.
async fn seed(
    ctx: &Core,
    ne: &NeSim,
    smaregi: &SmaregiSim,
    service_url: &str,
) -> anyhow::Result<String> {
    ne.add_company(NE_COMPANY, "デモ商店");
    ne.seed_goods(
        NE_COMPANY,
        (1..=3)
            .map(|n| SeedGoods {
                goods_id: format!("800000{n}"),
                goods_name: format!("デモ商品{n}"),
                stock_quantity: 10,
                allocation_quantity: 0,
            })
            .collect(),
    );
    smaregi.add_contract(CONTRACT, SMAREGI_TOKEN);
    smaregi.add_store(CONTRACT, "1", "本店");
    smaregi.add_store(CONTRACT, "2", "倉庫");
    for n in 1..=4 {
        smaregi.add_product(
            CONTRACT,
            &format!("800000{n}"),
            &format!("DEMO-{n}"),
            &format!("デモ商品{n}"),
        );
        // Opening stock is set before pushes are switched on: it is not a change to report.
        smaregi
            .set_stock(CONTRACT, "1", &format!("800000{n}"), 10)
            .await?;
    }

    let tenant = match ctx.storage.tenant_by_contract(CONTRACT).await? {
        Some(existing) => existing,
        None => {
            create_tenant(
                ctx,
                NewTenant {
                    name: "デモ商店".into(),
                    contract_id: CONTRACT.into(),
                    admin_email: ADMIN_EMAIL.into(),
                    admin_password: ADMIN_PASSWORD.into(),
                    notify_emails: vec![NOTIFY_EMAIL.into()],
                    counted_stores: None,
                },
            )
            .await?
        }
    };
    // The NextEngine connection goes through the simulator's real sign-in redirect
    // and `/api_neauth`, as a browser would after pressing 「再取得」.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = http.get(ctx.nextengine.sign_in_url()).send().await?;
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("the sign-in page did not redirect")?;
    let callback = reqwest::Url::parse(location)?;
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(uid), Some(state)) = (param("uid"), param("state")) else {
        bail!("the sign-in redirect carried no uid/state: {location}");
    };
    connect_nextengine(ctx, &tenant.id, &uid, &state).await?;

    // (β版)ネクストエンジン受注数取り込み into 本店, as the admin screen would save it.
    let saved = configure_order_import(
        ctx,
        &tenant.id,
        OrderImportForm {
            enabled: true,
            contract_id: CONTRACT.into(),
            store_id: "1".into(),
            access_token: SMAREGI_TOKEN.into(),
        },
    )
    .await?;
    println!("{}", saved.message);

    smaregi.configure_push(
        CONTRACT,
        Some(PushConfig {
            url: format!("{service_url}/smaregi/webhook"),
            pairs: vec![
                ("contract_id".into(), CONTRACT.into()),
                ("code".into(), tenant.customer_code.clone()),
            ],
            pairs_as: PairsAs::Form,
            shape: PushShape::Full,
            push_api_changes: false,
        }),
    );
    Ok(tenant.customer_code)
}

/// The demo contract installs the Platform app (its contract notification
/// reaches the service), the app's webhook points at the service, and the
/// tenant switches to the Platform intake at the current history id.
async fn seed_platform(
    ctx: &Core,
    smaregi: &SmaregiSim,
    service_url: &str,
) -> anyhow::Result<String> {
    smaregi.configure_platform_webhook(
        Some(&format!("{service_url}/smaregi/platform/webhook")),
        &[(PLATFORM_WEBHOOK_HEADER, PLATFORM_WEBHOOK_SECRET)],
    );
    smaregi
        .configure_contract_notification(Some(&format!("{service_url}/smaregi/platform/contract")));
    smaregi.platform_subscribe(CONTRACT, &[]).await?;
    let tenant = ctx
        .storage
        .tenant_by_contract(CONTRACT)
        .await?
        .context("the demo tenant is missing")?;
    Ok(sne_service::platform::switch_intake(
        ctx,
        &tenant,
        sne_domain::history_mode::HistorySource::Platform,
    )
    .await?)
}

fn print_welcome(
    data_dir: &Path,
    service_url: &str,
    ne: &NeSim,
    smaregi: &SmaregiSim,
    endpoints: &Endpoints,
    customer_code: &str,
) {
    let sm = smaregi.base_url();
    let nu = ne.base_url();
    let dir = data_dir.display();
    println!(
        r#"
=== スマレジtoネクストエンジン デモ ===
サービス            {service_url}   (Webhook: {service_url}/smaregi/webhook, プラットフォームAPI: {service_url}/smaregi/platform/webhook)
スマレジ(模擬)      {sm}
ネクストエンジン(模擬) {nu}
データ              {dir}  (メール: {dir}/outbox/*.eml, CSV: {dir}/blobs/)
管理者              {ADMIN_EMAIL} / {ADMIN_PASSWORD}
契約ID              {CONTRACT}
お客様専用コード    {customer_code}

# 本店で商品 8000001 を 2 個販売する
curl -XPOST {sm}/_sim/sale -H 'content-type: application/json' -d '{{"contract_id":"{CONTRACT}","store_id":"1","product_id":"8000001","quantity":2}}'
# 商品 8000002 の棚卸(実在庫 7 個)
curl -XPOST {sm}/_sim/stocktake -H 'content-type: application/json' -d '{{"contract_id":"{CONTRACT}","store_id":"1","product_id":"8000002","counted":7}}'
# API送信履歴と再送(ID は履歴の id)
curl {sm}/_sim/sends
curl -XPOST {sm}/_sim/sends/1/resend
# 今すぐ実行(別ターミナルから; 同じデータディレクトリを使います)
SNE_NEXTENGINE_API_URL={api} SNE_NEXTENGINE_CLIENT_ID={CLIENT_ID} SNE_NEXTENGINE_CLIENT_SECRET={CLIENT_SECRET} SNE_SMAREGI_API_URL={sapi} \
  smaregi-ne --data-dir {dir} run all
# ネクストエンジン側の在庫
curl '{nu}/_sim/stock?company_id={NE_COMPANY}&goods_id=8000001'
# プラットフォームAPIの Webhook 送信履歴(--intake platform のとき)
curl {sm}/_sim/platform/deliveries
# 取り込み経路の切り替え(旧API ⇄ プラットフォームAPI)
SNE_SMAREGI_API_URL={sapi} SNE_SMAREGI_PLATFORM_CLIENT_ID={pid} SNE_SMAREGI_PLATFORM_CLIENT_SECRET={psecret} SNE_SMAREGI_PLATFORM_ID_URL={sm} SNE_SMAREGI_PLATFORM_API_URL={sm} \
  smaregi-ne --data-dir {dir} intake --contract-id {CONTRACT} --to platform
# 在庫差異の確認(管理画面の「在庫差異」でも; --apply で「揃える」)
SNE_NEXTENGINE_API_URL={api} SNE_NEXTENGINE_CLIENT_ID={CLIENT_ID} SNE_NEXTENGINE_CLIENT_SECRET={CLIENT_SECRET} SNE_SMAREGI_API_URL={sapi} \
  smaregi-ne --data-dir {dir} drift --contract-id {CONTRACT}
"#,
        api = endpoints.nextengine_api_url,
        sapi = endpoints.smaregi_api_url,
        pid = endpoints.smaregi_platform_client_id,
        psecret = endpoints.smaregi_platform_client_secret,
    );
}

async fn scenario(
    ctx: &Context,
    ne: &NeSim,
    smaregi: &SmaregiSim,
    data_dir: &Path,
) -> anyhow::Result<()> {
    println!("--- シナリオ: 販売 2 個, 棚卸, 未登録商品の入荷, 再送, ネット注文 ---");
    smaregi.sale(CONTRACT, "1", "8000001", 2).await?;
    smaregi.stocktake(CONTRACT, "1", "8000002", 7).await?;
    smaregi.receive(CONTRACT, "1", "8000004", 5).await?;
    let first = smaregi
        .sends()
        .first()
        .map(|s| s.id)
        .context("no push was sent")?;
    let resent = smaregi.resend(first).await?;
    println!("再送: {} {}", resent.status, resent.message);
    for send in smaregi.sends() {
        println!("API送信 #{}: {} {}", send.id, send.status, send.message);
    }
    // A web order NextEngine received: it becomes a 出荷 of 本店 in Smaregi. The
    // 伝票番号 comes from the clock so a rerun on the same data dir is a new order.
    let receive_order_id = chrono::Utc::now().timestamp() % 1_000_000;
    ne.seed_orders(
        NE_COMPANY,
        vec![SeedOrder {
            receive_order_id,
            shop_id: 1,
            shop_cut_form_id: format!("WEB-{receive_order_id}"),
            order_date: None,
            import_date: None,
            cancel_type_id: "0".into(),
            order_status_id: "2".into(),
            send_date: None,
            rows: vec![SeedOrderRow {
                row_no: 1,
                goods_id: "8000003".into(),
                goods_name: "デモ商品3".into(),
                quantity: 2,
                cancel_flag: false,
                deleted_flag: false,
            }],
        }],
    );
    println!("ネット注文: 伝票番号 {receive_order_id} 商品 8000003 × 2");
    let first_run = run_all(ctx, Jobs::All).await?;
    for run in &first_run {
        println!("1回目の実行: {}", run.report.render().subject);
    }
    // The simulator moves a queue one step every 1.5 s (0 → 1 → 2).
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let second_run = run_all(ctx, Jobs::All).await?;
    for run in &second_run {
        println!("2回目の実行: {}", run.report.render().subject);
    }
    for shipment in smaregi.shipments() {
        let field = |k: &str| {
            shipment
                .header
                .get(k)
                .cloned()
                .flatten()
                .unwrap_or_default()
        };
        println!(
            "スマレジの出荷 #{}: 識別番号 {} 受取先 {} 明細 {}件",
            shipment.shipment_id,
            field("identificationNo"),
            field("recipientName"),
            shipment.details.len()
        );
    }
    for run in &first_run {
        if let Some(orders) = &run.report.orders {
            for order in &orders.imported {
                println!(
                    "受注取込: 伝票番号 {} → 出荷ID {}",
                    order.receive_order_id, order.shipment_id
                );
            }
        }
    }
    println!(
        "スマレジ在庫 8000003(本店): {}",
        smaregi
            .stock(CONTRACT, "1", "8000003")
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into())
    );
    for code in ["8000001", "8000002", "8000003"] {
        println!(
            "ネクストエンジン在庫 {code}: {}",
            ne.stock(NE_COMPANY, code)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    let mut mails: Vec<_> = std::fs::read_dir(data_dir.join("outbox"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    mails.sort();
    for mail in mails {
        println!("メール: {}", mail.display());
    }
    Ok(())
}
