//! Benchmark of the drift radar (issue 14): one tenant's comparison of
//! `--goods` goods over `--stores` Smaregi stores against both simulators,
//! with `--drifted` of them differing. Prints the wall time and the API calls
//! (Smaregi's counted at a counting front of its simulator, NextEngine's from
//! its simulator's call log), with the default rate limits and without.
//!
//! `cargo run --release -p sne-e2e --bin drift` (`--limits default|off|both`)

use anyhow::ensure;
use axum::extract::Request;
use axum::middleware::{self, Next};
use clap::Parser;
use sne_domain::tenant::SmaregiCredentials;
use sne_ports::RateLimits;
use sne_service::drift::check_drift;
use sne_service::tenants::{NewTenant, create_tenant};
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Wiring};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const CONTRACT: &str = "c-bench";
const TOKEN: &str = "bench-token";
const COMPANY: &str = "bench";

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    goods: usize,
    #[arg(long, default_value_t = 3)]
    stores: usize,
    #[arg(long, default_value_t = 200)]
    drifted: usize,
    /// `default` (5 calls a second per tenant, 20 per process), `off`, or `both`.
    #[arg(long, default_value = "both")]
    limits: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.drifted <= args.goods, "--drifted exceeds --goods");
    let local = || "127.0.0.1:0".parse().expect("loopback");
    let ne = NeSim::start(
        NeConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..NeConfig::default()
        },
        local(),
    )
    .await?;
    let smaregi = SmaregiSim::start(SmaregiConfig::default(), local()).await?;
    let seeding = Instant::now();
    seed(&ne, &smaregi, &args).await?;
    println!(
        "seeded {} goods × {} stores in {:.1} s",
        args.goods,
        args.stores,
        seeding.elapsed().as_secs_f64()
    );

    // The Smaregi client goes through a front that counts its requests.
    let smaregi_calls = Arc::new(AtomicUsize::new(0));
    let counter = smaregi_calls.clone();
    let front = smaregi
        .router()
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let counter = counter.clone();
            async move {
                if request.uri().path().starts_with("/access") {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                next.run(request).await
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let front_url = format!("http://{}/access/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, front).await });

    let modes: Vec<(&str, RateLimits)> = match args.limits.as_str() {
        "default" => vec![("default rate limits", RateLimits::DEFAULT)],
        "off" => vec![("rate limits off", RateLimits::UNLIMITED)],
        _ => vec![
            ("rate limits off", RateLimits::UNLIMITED),
            ("default rate limits", RateLimits::DEFAULT),
        ],
    };
    println!(
        "| Limits | Time | Smaregi calls | NextEngine calls | Rows read | Lines |\n|---|---|---|---|---|---|"
    );
    for (label, rate) in modes {
        let dir = tempfile::tempdir()?;
        let mut wiring = Wiring::new(dir.path()).simulators(&ne, &smaregi);
        wiring.smaregi_url = front_url.clone();
        wiring.rate = rate;
        let ctx = wiring.context();
        let mut tenant = create_tenant(
            &ctx,
            NewTenant {
                name: "計測商店".into(),
                contract_id: CONTRACT.into(),
                admin_email: "bench@shop.example".into(),
                admin_password: "bench-password".into(),
                notify_emails: vec!["bench@shop.example".into()],
                counted_stores: None,
            },
        )
        .await?;
        connect_to_nextengine(&ctx, &tenant.id, &ne, COMPANY).await;
        tenant.smaregi_api = Some(SmaregiCredentials {
            contract_id: CONTRACT.into(),
            access_token: TOKEN.into(),
        });
        let tenant = ctx.storage.update_tenant(&tenant).await?;

        smaregi_calls.store(0, Ordering::Relaxed);
        ne.clear_calls();
        let started = Instant::now();
        let check = check_drift(&ctx, &tenant).await?;
        let took = started.elapsed();
        ensure!(
            check.lines.len() == args.drifted,
            "expected {} drift lines, found {}",
            args.drifted,
            check.lines.len()
        );
        let mut ne_calls: BTreeMap<String, usize> = BTreeMap::new();
        for call in ne.calls() {
            *ne_calls.entry(call.path).or_default() += 1;
        }
        let ne_total: usize = ne_calls.values().sum();
        let ne_detail = ne_calls
            .iter()
            .map(|(path, n)| format!("{n} {path}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {label} | {:.1} s | {} | {ne_total} ({ne_detail}) | {} | {} |",
            took.as_secs_f64(),
            smaregi_calls.load(Ordering::Relaxed),
            args.goods * args.stores,
            check.lines.len()
        );
    }
    Ok(())
}

/// NextEngine holds 10 of every goods, `--drifted` of them one more per
/// hundred; Smaregi holds the 10 spread over its stores.
async fn seed(ne: &NeSim, smaregi: &SmaregiSim, args: &Args) -> anyhow::Result<()> {
    let code = |n: usize| format!("{}", 10_000_000 + n);
    ne.add_company(COMPANY, "計測商店");
    ne.seed_goods(
        COMPANY,
        (0..args.goods)
            .map(|n| SeedGoods {
                goods_id: code(n),
                goods_name: format!("商品{n}"),
                stock_quantity: if n < args.drifted {
                    11 + (n / 100) as i64
                } else {
                    10
                },
                allocation_quantity: 0,
            })
            .collect(),
    );
    smaregi.add_contract(CONTRACT, TOKEN);
    for store in 1..=args.stores {
        smaregi.add_store(CONTRACT, &store.to_string(), &format!("店舗{store}"));
    }
    let stores = i64::try_from(args.stores.max(1))?;
    for n in 0..args.goods {
        smaregi.add_product(CONTRACT, &code(n), &format!("P{n}"), "計測用");
        for store in 1..=stores {
            // 10 over the stores: the first takes what does not divide.
            let share = 10 / stores + if store == 1 { 10 % stores } else { 0 };
            smaregi
                .set_stock(CONTRACT, &store.to_string(), &code(n), share)
                .await?;
        }
    }
    Ok(())
}
