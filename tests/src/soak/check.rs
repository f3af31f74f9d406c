//! The invariants, checked on facts gathered after the settle phase. The oracle
//! is computed here from the simulators' own records (Smaregi's stock history,
//! the operator's uploads) and the manual's rules, never from what the service
//! stored.

use super::Violation;
use crate::SentMail;
use sne_domain::StockDivision;
use sne_domain::rules::reported_delta;
use sne_domain::tenant::StockMaster;
use std::collections::BTreeMap;

/// One Smaregi stock change as the simulator recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmaregiChange {
    pub history_id: u64,
    pub store_id: String,
    pub product_id: String,
    pub division: String,
    pub amount: i64,
    pub after: i64,
}

/// What the oracle needs to know about the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleInput {
    pub master: StockMaster,
    pub counted_stores: Option<Vec<String>>,
    /// NextEngine stock per goods when the simulation started.
    pub opening: BTreeMap<String, i64>,
    /// Smaregi changes made since the opening.
    pub changes: Vec<SmaregiChange>,
    /// What operators uploaded to NextEngine by hand and NextEngine applied.
    pub operator_deltas: Vec<(String, i64)>,
}

/// NextEngine stock per goods that the manual's rules demand.
pub fn expected_ne_stock(input: &OracleInput) -> BTreeMap<String, i64> {
    let mut expected = input.opening.clone();
    for change in &input.changes {
        if let Some(stores) = &input.counted_stores
            && !stores.contains(&change.store_id)
        {
            continue;
        }
        let division = StockDivision::from_code(&change.division);
        let delta = reported_delta(input.master, Some(&division), change.amount, change.after);
        // Goods identity: the Smaregi product id (the default mapping).
        *expected.entry(change.product_id.clone()).or_default() += delta;
    }
    for (code, delta) in &input.operator_deltas {
        *expected.entry(code.clone()).or_default() += delta;
    }
    expected
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    pub receive_order_id: String,
    /// Smaregi shipments whose identificationNo is the order.
    pub shipments: usize,
}

/// A report as the outbox stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub id: String,
    pub subject: String,
    pub body: String,
    pub sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub oracle: OracleInput,
    /// NextEngine stock per goods after settling.
    pub ne_stock: BTreeMap<String, i64>,
    pub orders: Vec<OrderFact>,
    /// Queue ids of batches that finished (succeeded or failed).
    pub finished_queues: Vec<(String, String)>,
    pub mails: Vec<SentMail>,
    pub reports: Vec<StoredReport>,
}

pub fn invariants(facts: &Facts) -> Vec<Violation> {
    let mut out = Vec::new();
    stock(facts, &mut out);
    orders(facts, &mut out);
    queue_reports(facts, &mut out);
    duplicate_mails(facts, &mut out);
    out
}

/// (1) NextEngine stock == opening + the rules' deltas of every change.
fn stock(facts: &Facts, out: &mut Vec<Violation>) {
    let expected = expected_ne_stock(&facts.oracle);
    for (code, want) in &expected {
        let got = facts.ne_stock.get(code).copied();
        if got != Some(*want) {
            let opening = facts.oracle.opening.get(code).copied().unwrap_or_default();
            out.push(Violation {
                invariant: "stock",
                detail: format!(
                    "goods {code}: NextEngine has {} but opening {opening} + rules' deltas {:+} = {want} (difference {:+})",
                    got.map_or("nothing".to_string(), |g| g.to_string()),
                    want - opening,
                    got.unwrap_or_default() - want
                ),
            });
        }
    }
}

fn failure_lines(mails: &[SentMail], receive_order_id: &str) -> usize {
    let needle = format!("伝票番号:{receive_order_id} ");
    mails
        .iter()
        .flat_map(|m| m.body.lines())
        .filter(|l| l.contains(&needle) && l.contains("原因:"))
        .count()
}

/// (2) Every web order is one shipment or one reported failure.
fn orders(facts: &Facts, out: &mut Vec<Violation>) {
    for order in &facts.orders {
        let failures = failure_lines(&facts.mails, &order.receive_order_id);
        let ok = matches!((order.shipments, failures), (1, 0) | (0, 1));
        if !ok {
            out.push(Violation {
                invariant: "orders",
                detail: format!(
                    "web order {}: {} Smaregi shipment(s) and {} reported failure(s); exactly one of either expected",
                    order.receive_order_id, order.shipments, failures
                ),
            });
        }
    }
}

/// (3) Every finished queue is reported in exactly one sent mail.
fn queue_reports(facts: &Facts, out: &mut Vec<Violation>) {
    for (batch_id, que_id) in &facts.finished_queues {
        let lines = [
            format!("キューID {que_id}: 成功"),
            format!("キューID {que_id}: 失敗"),
        ];
        let mails = facts
            .mails
            .iter()
            .filter(|m| m.body.lines().any(|l| lines.iter().any(|x| l == x)))
            .count();
        if mails != 1 {
            out.push(Violation {
                invariant: "queue-report",
                detail: format!(
                    "queue {que_id} (batch {batch_id}) finished but its result is in {mails} sent mails, not 1"
                ),
            });
        }
    }
}

/// (4) No report is mailed twice: mails with one stored report's subject and
/// body are at most as many as the stored reports with that content.
fn duplicate_mails(facts: &Facts, out: &mut Vec<Violation>) {
    let mut mailed: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for mail in &facts.mails {
        *mailed
            .entry((mail.subject.as_str(), mail.body.as_str()))
            .or_default() += 1;
    }
    for ((subject, body), count) in mailed {
        let reports: Vec<&StoredReport> = facts
            .reports
            .iter()
            .filter(|r| r.subject == subject && normalise(&r.body) == normalise(body))
            .collect();
        if count > reports.len().max(1) {
            out.push(Violation {
                invariant: "duplicate-mail",
                detail: format!(
                    "the report {} ({subject}) was mailed {count} times",
                    reports
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            });
        }
    }
}

/// Line endings as the MIME round trip may have changed them.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_string()
}
