//! Ingest benchmark (issue 4): pushes per second the local server sustains on
//! embedded storage for 1, 10 and 1,000 rows per push, next to a bare axum handler
//! answering 200 (the ceiling of this HTTP stack on this machine), and the time of
//! one upload run over 100,000 pending changes.
//!
//! `cargo bench -p sne-e2e --bench ingest` — loopback only, bounded in count and time.

use sne_e2e::{CONTRACT, Harness, Options};
use sne_service::run::{Jobs, run_all};
use sne_simulators::nextengine::SeedGoods;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;
const MAX_TIME: Duration = Duration::from_secs(8);

fn push_body(first_id: u64, rows: usize, contract: &str, code: &str) -> String {
    let rows: Vec<String> = (0..rows as u64)
        .map(|i| {
            let id = first_id + i;
            format!(
                r#"{{"id":"{id}","storeId":"1","productId":"{}","amount":"-1","stockAmount":"{}","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}}"#,
                8_000_000 + id % 20_000,
                id % 50
            )
        })
        .collect();
    let params = format!(
        r#"{{"data":[{{"table_name":"Stock","rows":[{}]}}]}}"#,
        rows.join(",")
    );
    serde_urlencoded_form(&[
        ("proc_name", "stock_send"),
        ("params", &params),
        ("contract_id", contract),
        ("code", code),
    ])
}

fn serde_urlencoded_form(fields: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://x/", fields)
        .expect("url")
        .query()
        .unwrap_or_default()
        .to_string()
}

/// Sends `total` pushes (at most MAX_TIME) with CONCURRENCY workers; returns pushes/s.
async fn hammer(url: &str, bodies: Arc<Vec<String>>) -> (f64, usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next, bodies, url) = (
            client.clone(),
            next.clone(),
            bodies.clone(),
            url.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || started.elapsed() > MAX_TIME {
                    return done;
                }
                let response = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(bodies[i].clone())
                    .send()
                    .await
                    .expect("loopback request");
                assert!(response.status().is_success(), "{}", response.status());
                done += 1;
            }
        }));
    }
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("worker");
    }
    (done as f64 / started.elapsed().as_secs_f64(), done)
}

#[tokio::main]
async fn main() {
    let h = Harness::start(Options::default()).await;
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/", bare.local_addr().unwrap());
    tokio::spawn(async move {
        // Reads the body like the webhook does, and does nothing else.
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::post(|_body: axum::body::Bytes| async { "OK" }),
            )
            .layer(axum::extract::DefaultBodyLimit::disable());
        axum::serve(bare, app).await.unwrap();
    });
    let webhook = format!("{}/smaregi/webhook", h.service_url);
    let code = h.tenant.customer_code.clone();

    println!("ingest benchmark ({CONCURRENCY} concurrent clients, loopback, SQLite WAL)");
    println!(
        "{:>14} {:>14} {:>14} {:>16}",
        "rows/push", "pushes/s", "rows/s", "bare axum /s"
    );
    let mut next_id = 1_000_000u64;
    for (rows, count) in [(1usize, 3000usize), (10, 2000), (1000, 60)] {
        let bodies: Vec<String> = (0..count)
            .map(|_| {
                let body = push_body(next_id, rows, CONTRACT, &code);
                next_id += rows as u64;
                body
            })
            .collect();
        let bodies = Arc::new(bodies);
        let (bare_rate, _) = hammer(&bare_url, bodies.clone()).await;
        let (rate, done) = hammer(&webhook, bodies).await;
        println!(
            "{rows:>14} {rate:>14.0} {:>14.0} {bare_rate:>16.0}   ({done} pushes)",
            rate * rows as f64
        );
    }

    // One upload run over 100,000 pending changes spread over 20,000 products.
    let pending_before = h.ctx.storage.pending_changes(&h.tenant.id).await.unwrap();
    let missing = 100_000usize.saturating_sub(pending_before);
    let bodies: Vec<String> = (0..missing.div_ceil(1000))
        .map(|_| {
            let body = push_body(next_id, 1000, CONTRACT, &code);
            next_id += 1000;
            body
        })
        .collect();
    hammer(&webhook, Arc::new(bodies)).await;
    let pending = h.ctx.storage.pending_changes(&h.tenant.id).await.unwrap();
    h.ne.seed_goods(
        sne_e2e::COMPANY,
        (0..20_000)
            .map(|i| SeedGoods {
                goods_id: (8_000_000 + i).to_string(),
                goods_name: "bench".into(),
                stock_quantity: 1_000_000,
                allocation_quantity: 0,
            })
            .collect(),
    );
    // The goods check alone, to tell our share of the run from the simulator's.
    let codes: Vec<sne_domain::GoodsCode> = (0..20_000)
        .map(|i| (8_000_000 + i).to_string().into())
        .collect();
    let started = Instant::now();
    let known = h
        .ctx
        .nextengine
        .existing_goods(&h.tenant.id, &codes)
        .await
        .unwrap();
    println!(
        "goods check of {} codes against the simulator: {:.2} s",
        known.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let runs = run_all(&h.ctx, Jobs::Upload).await.unwrap();
    let elapsed = started.elapsed();
    println!(
        "upload run: {pending} pending changes → {} in {:.2} s",
        runs[0].report.render().subject,
        elapsed.as_secs_f64()
    );
}
