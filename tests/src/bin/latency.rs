//! Latency benchmark of event-driven uploads (issue 13): the service as `serve`
//! runs it, between both simulators, with `--tenants` shops getting `--pushes`
//! sales at random moments over `--seconds`. For every push it measures the
//! time from the webhook's 200 to the NextEngine simulator receiving the file
//! that holds its change, and prints p50/p95/p99 for the debounced runs beside
//! the same figure with the schedule alone.
//!
//! `cargo run -p sne-e2e --bin latency` (`--mode fixed|trailing|schedule-only|all`)

use anyhow::{Context as _, bail};
use clap::Parser;
use rand::{Rng, SeedableRng};
use sne_domain::debounce::DebouncePolicy;
use sne_domain::tenant::Tenant;
use sne_service::dispatch::{DispatchConfig, spawn_dispatcher};
use sne_service::tenants::{NewTenant, create_tenant};
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_simulators::smaregi::{PairsAs, PushConfig, PushShape, SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Contexts, Server, Wiring};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Parser, Debug, Clone)]
struct Args {
    #[arg(long, default_value_t = 200)]
    pushes: usize,
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// The pushes fall at random moments over this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 5.0)]
    quiet_seconds: f64,
    #[arg(long, default_value_t = 30.0)]
    max_wait_seconds: f64,
    /// The schedule of the schedule-only mode (AWS allows 1 minute at least).
    #[arg(long, default_value_t = 60)]
    every_seconds: u64,
    #[arg(long, default_value_t = 4)]
    max_concurrent_runs: usize,
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    #[arg(long, default_value_t = 20261202)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// The default debounce: a fixed quiet window.
    Fixed,
    /// `--trailing-quiet`: every push restarts the window, up to the max wait.
    Trailing,
    ScheduleOnly,
    /// All three, one after another.
    All,
}

/// Each push sells a product of its own, so the file that holds it is known.
const PRODUCTS_PER_TENANT: usize = 60;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.tenants == 0 || args.pushes > args.tenants * PRODUCTS_PER_TENANT {
        bail!("--pushes must be at most {PRODUCTS_PER_TENANT} per tenant");
    }
    println!(
        "{} pushes at random moments over {} s across {} tenants, at most {} runs at once",
        args.pushes, args.seconds, args.tenants, args.max_concurrent_runs
    );
    for trailing in [false, true] {
        let wanted = if trailing {
            Mode::Trailing
        } else {
            Mode::Fixed
        };
        if args.mode != wanted && args.mode != Mode::All {
            continue;
        }
        let debounce = DebouncePolicy {
            quiet: Duration::from_secs_f64(args.quiet_seconds),
            max_wait: Duration::from_secs_f64(args.max_wait_seconds),
            trailing,
        };
        let figures = measure(&args, Some(debounce)).await?;
        let label = if trailing {
            format!(
                "trailing quiet window {} s, max wait {} s",
                args.quiet_seconds, args.max_wait_seconds
            )
        } else {
            format!("fixed quiet window {} s (default)", args.quiet_seconds)
        };
        print(
            &format!("{label}, schedule every {} s", args.every_seconds),
            &figures,
        );
    }
    if matches!(args.mode, Mode::ScheduleOnly | Mode::All) {
        let figures = measure(&args, None).await?;
        print(
            &format!("schedule only (every {} s)", args.every_seconds),
            &figures,
        );
    }
    Ok(())
}

struct Figures {
    latencies: Vec<Duration>,
    files: usize,
    missing: usize,
}

fn print(label: &str, figures: &Figures) {
    let mut sorted = figures.latencies.clone();
    sorted.sort();
    let at = |q: f64| -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64()
    };
    println!(
        "{label}: p50 {:.2} s, p95 {:.2} s, p99 {:.2} s, max {:.2} s; {} files for {} pushes{}",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0),
        figures.files,
        figures.latencies.len(),
        if figures.missing > 0 {
            format!(", {} pushes never arrived", figures.missing)
        } else {
            String::new()
        }
    );
}

fn company(n: usize) -> String {
    format!("shop{n:03}")
}

fn contract(n: usize) -> String {
    format!("c-bench-{n:03}")
}

fn product(n: usize) -> String {
    format!("9{n:06}")
}

async fn measure(args: &Args, debounce: Option<DebouncePolicy>) -> anyhow::Result<Figures> {
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
    let dir = tempfile::tempdir()?;
    let mut server = Server::bind().await;
    let mut wiring = Wiring::new(dir.path())
        .simulators(&ne, &smaregi)
        .public_url(&server.url);
    // As `serve` runs by default: 5 calls a second a tenant, 20 for the process.
    wiring.rate = sne_ports::RateLimits::DEFAULT;
    let Contexts {
        jobs,
        admin,
        requests,
    } = wiring.contexts();
    server.serve(sne_service::http::router(admin));

    let mut tenants: Vec<Tenant> = Vec::new();
    for n in 0..args.tenants {
        ne.add_company(&company(n), &format!("店{n}"));
        ne.seed_goods(
            &company(n),
            (0..PRODUCTS_PER_TENANT)
                .map(|p| SeedGoods {
                    goods_id: product(p),
                    goods_name: format!("商品{p}"),
                    stock_quantity: 100,
                    allocation_quantity: 0,
                })
                .collect(),
        );
        smaregi.add_contract(&contract(n), "token");
        smaregi.add_store(&contract(n), "1", "本店");
        for p in 0..PRODUCTS_PER_TENANT {
            smaregi.add_product(&contract(n), &product(p), &product(p), "商品");
        }
        let tenant = create_tenant(
            &jobs,
            NewTenant {
                name: format!("店{n}"),
                contract_id: contract(n),
                admin_email: format!("admin{n}@shop.example"),
                admin_password: "bench-password".into(),
                notify_emails: vec![format!("notify{n}@shop.example")],
                counted_stores: None,
            },
        )
        .await
        .context("tenant")?;
        connect_to_nextengine(&jobs, &tenant.id, &ne, &company(n)).await;
        smaregi.configure_push(
            &contract(n),
            Some(PushConfig {
                url: format!("{}/smaregi/webhook", server.url),
                pairs: vec![
                    ("contract_id".into(), contract(n)),
                    ("code".into(), tenant.customer_code.clone()),
                ],
                pairs_as: PairsAs::Form,
                shape: PushShape::Full,
                push_api_changes: false,
            }),
        );
        tenants.push(tenant);
    }
    let dispatcher = spawn_dispatcher(
        jobs,
        requests,
        DispatchConfig {
            every: Duration::from_secs(args.every_seconds.max(1)),
            debounce,
            max_concurrent_runs: args.max_concurrent_runs,
        },
    );

    // Which (company, goods) each push sold, and when its 200 came.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut used = vec![0usize; args.tenants];
    let pushed: Arc<Mutex<HashMap<(String, String), Instant>>> = Arc::default();
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..args.pushes {
        let n = rng.random_range(0..args.tenants);
        let p = used[n];
        used[n] += 1;
        let at = started + Duration::from_secs_f64(rng.random_range(0.0..args.seconds as f64));
        let (smaregi, pushed) = (smaregi.clone(), pushed.clone());
        sends.spawn(async move {
            tokio::time::sleep_until(at).await;
            smaregi
                .sale(&contract(n), "1", &product(p), 1)
                .await
                .expect("sale");
            pushed
                .lock()
                .expect("lock")
                .insert((company(n), product(p)), Instant::now());
        });
    }

    // Watch the simulator's received files until every push is in one.
    let mut received: HashMap<(String, String), Instant> = HashMap::new();
    let mut seen_files = 0;
    let give_up = started
        + Duration::from_secs(args.seconds)
        + Duration::from_secs(args.every_seconds.max(1))
        + Duration::from_secs_f64(args.max_wait_seconds)
        + Duration::from_secs(60);
    while received.len() < args.pushes && Instant::now() < give_up {
        let uploads = ne.uploads();
        let now = Instant::now();
        for upload in &uploads[seen_files..] {
            for line in upload.csv.lines().skip(1) {
                if let Some((code, _)) = line.split_once(',') {
                    received
                        .entry((upload.company_id.clone(), code.to_string()))
                        .or_insert(now);
                }
            }
        }
        seen_files = uploads.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while sends.join_next().await.is_some() {}
    dispatcher.abort();
    let pushed = pushed.lock().expect("lock").clone();
    let latencies: Vec<Duration> = pushed
        .iter()
        .filter_map(|(key, at)| {
            received
                .get(key)
                .map(|got| got.saturating_duration_since(*at))
        })
        .collect();
    Ok(Figures {
        missing: pushed.len() - latencies.len(),
        latencies,
        files: seen_files,
    })
}
