//! The two paths whose cost grows with the shop: reading a large push at the
//! webhook (Smaregi waits for the answer) and turning a day of changes into the
//! upload file.

use criterion::{Criterion, criterion_group, criterion_main};
use sne_domain::StockDivision;
use sne_domain::batch::plan_batch;
use sne_domain::change::CompletedChange;
use sne_domain::mapping::ProductMap;
use sne_domain::push::parse_stock_send;
use sne_domain::tenant::StockMaster;
use sne_domain::upload_csv::render_upload_csv;
use std::fmt::Write;
use std::hint::black_box;

const PUSH_ROWS: usize = 10_000;
const CHANGES: usize = 100_000;
const PRODUCTS: usize = 20_000;
const STORES: usize = 5;

/// History-shaped rows with every value string-typed, the most expensive shape to read.
fn large_push() -> String {
    let mut params = String::from(
        r#"{"proc_info":{"proc_detail_division":"1"},"data":[{"table_name":"Stock","rows":["#,
    );
    for i in 0..PUSH_ROWS {
        if i > 0 {
            params.push(',');
        }
        write!(
            params,
            r#"{{"id":"{id}","storeId":"{store}","productId":"{product}","amount":"-1","stockAmount":"{after}","stockDivision":"02","updDateTime":"2026-11-27 {hour:02}:{minute:02}:{second:02}","fromStoreId":null,"toStoreId":null}}"#,
            id = 1_000_000 + i,
            store = i % STORES + 1,
            product = 8_000_000 + i % PRODUCTS,
            after = (i % 50) as i64 - 10,
            hour = i / 3600 % 24,
            minute = i / 60 % 60,
            second = i % 60,
        )
        .expect("write to String");
    }
    params.push_str("]}]}");
    params
}

/// A mix of reasons, signs and stocks so every branch of the rules is taken.
fn day_of_changes() -> Vec<CompletedChange> {
    let divisions =
        ["02", "02", "02", "03", "04", "05", "08", "10", "12", "14"].map(StockDivision::from_code);
    (0..CHANGES)
        .map(|i| {
            let amount = if i % 3 == 0 { 2 } else { -1 };
            CompletedChange {
                store_id: (i % STORES + 1).to_string().into(),
                product_id: format!("P-{:05}", i % PRODUCTS).into(),
                division: Some(divisions[i % divisions.len()].clone()),
                amount,
                after: Some((i % 7) as i64 - 3),
                changed_at: None,
                history_id: Some(i as u64),
            }
        })
        .collect()
}

fn parse_push(c: &mut Criterion) {
    let params = large_push();
    assert_eq!(
        parse_stock_send("stock_send", &params)
            .expect("valid push")
            .rows
            .len(),
        PUSH_ROWS
    );
    c.bench_function("parse_stock_send 10k history rows", |b| {
        b.iter(|| parse_stock_send("stock_send", black_box(&params)))
    });
}

fn plan_and_render(c: &mut Criterion) {
    let changes = day_of_changes();
    let counted_stores: Vec<String> = (1..STORES).map(|s| s.to_string()).collect();
    let map = ProductMap::Identity;
    c.bench_function(
        "plan_batch + render_upload_csv 100k changes / 20k products",
        |b| {
            b.iter(|| {
                let plan = plan_batch(
                    StockMaster::Smaregi,
                    Some(&counted_stores),
                    &map,
                    black_box(&changes),
                );
                render_upload_csv(&plan.lines)
            })
        },
    );
}

criterion_group!(benches, parse_push, plan_and_render);
criterion_main!(benches);
