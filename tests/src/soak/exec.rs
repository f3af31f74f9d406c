//! Executes a scenario against the real jobs, settles, and gathers the facts
//! the invariants are checked on.

use super::check::{self, Facts, OracleInput, OrderFact, SmaregiChange, StoredReport};
use super::ports::{Gate, Timeline, gated};
use super::scenario::{Change, Event, NE_OPENING, PRODUCTS, RunSpec, STORES, Scenario};
use super::{Mix, Violation};
use crate::{COMPANY, CONTRACT, Harness, Options, SMAREGI_TOKEN};
use sne_domain::batch_state::BatchState;
use sne_domain::history_mode::HistorySource;
use sne_domain::tenant::{NeTokens, SmaregiCredentials, Tenant};
use sne_domain::upload_csv::render_upload_csv;
use sne_service::Context;
use sne_service::held::{HeldDecision, resolve_held};
use sne_service::orders::{OrderImportForm, configure_order_import};
use sne_service::run::{Jobs, run_all, run_all_with};
use sne_simulators::nextengine::{Fault, FaultKind, SeedOrder, SeedOrderRow};
use sne_simulators::smaregi::PushShape;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Rounds of the settle phase before a tenant that still has work is a violation.
const SETTLE_ROUNDS: usize = 12;
/// Seconds the clock moves per settle round: past the unknown-outcome grace
/// (600 s) and the build lease (300 s).
const SETTLE_STEP_SECS: i64 = 1000;

struct World {
    h: Harness,
    scenario: Scenario,
    baseline_history_id: u64,
    opening: BTreeMap<String, i64>,
    operator_deltas: Vec<(String, i64)>,
    orders: Vec<String>,
    next_order: i64,
    /// A dropped answer can lose a rotated token pair for good: NextEngine
    /// rotated, the client never saw the new pair. No service can avoid that.
    answers_dropped: bool,
    shape: PushShape,
    /// Whether the service reads stock history now (the last switch that
    /// succeeded), as the pushes it receives are judged by it.
    history_on: bool,
    slow_secs: i64,
}

/// The facts after settling, plus what the settle phase itself found.
pub async fn observe(scenario: &Scenario, mix: &Mix) -> (Facts, Vec<Violation>) {
    let mut world = start(scenario, mix).await;
    for (n, event) in scenario.events.iter().enumerate() {
        tracing::debug!(target: "soak::event", "event {}: {event}", n + 1);
        world.apply(event).await;
        world.h.advance(1);
    }
    tracing::debug!(target: "soak::event", "settle");
    let mut found = world.settle().await;
    let facts = world.facts().await;
    if std::env::var_os("SOAK_DEBUG").is_some() {
        world.dump(&facts).await;
    }
    found.dedup();
    (facts, found)
}

/// Every violation of one scenario. `tamper` changes the facts before they are
/// checked (tests use it to prove each check can fail).
pub async fn run_scenario(
    scenario: &Scenario,
    mix: &Mix,
    tamper: Option<&dyn Fn(&mut Facts)>,
) -> Vec<Violation> {
    let (mut facts, mut found) = observe(scenario, mix).await;
    if let Some(tamper) = tamper {
        tamper(&mut facts);
    }
    found.extend(check::invariants(&facts));
    found
}

async fn fresh_tenant(h: &Harness) -> Tenant {
    h.ctx
        .storage
        .tenant(&h.tenant.id)
        .await
        .expect("storage")
        .expect("tenant")
}

async fn start(scenario: &Scenario, mix: &Mix) -> World {
    let setup = &scenario.setup;
    let mut h = Harness::start(Options {
        // Absolute pushes while the stock mirror is primed, below.
        shape: PushShape::Absolute,
        pairs_as: setup.pairs_as,
        push_api_changes: setup.push_api_changes,
        smaregi_stock: PRODUCTS.iter().copied().zip(setup.opening).collect(),
        ne_goods: PRODUCTS.iter().map(|p| (*p, NE_OPENING, 0)).collect(),
        extra_stores: vec![("3", "倉庫")],
        counted_stores: setup
            .store3_uncounted
            .then(|| vec!["1".to_string(), "2".to_string()]),
        config: sne_service::ServiceConfig::default(),
        queue_upload_names: true,
        platform: mix.platform,
        ..Options::default()
    })
    .await;
    if mix.platform {
        h.smaregi
            .platform_subscribe(CONTRACT, &[])
            .await
            .expect("the app installed");
    }
    let mut tenant = fresh_tenant(&h).await;
    tenant.stock_master = setup.master;
    tenant.smaregi_api = Some(SmaregiCredentials {
        contract_id: CONTRACT.into(),
        access_token: SMAREGI_TOKEN.into(),
    });
    h.tenant = h.ctx.storage.update_tenant(&tenant).await.expect("tenant");
    if setup.orders {
        configure_order_import(
            &h.ctx,
            &h.tenant.id,
            OrderImportForm {
                enabled: true,
                contract_id: CONTRACT.into(),
                store_id: "1".into(),
                access_token: SMAREGI_TOKEN.into(),
            },
        )
        .await
        .expect("order import");
        h.tenant = fresh_tenant(&h).await;
    }
    // Prime the stock mirror: every store/product's current stock, pushed once
    // as an absolute value (amount 0), so no later push is a "first value".
    for store in STORES {
        for product in PRODUCTS {
            let current = h.smaregi.stock(CONTRACT, store, product).unwrap_or(0);
            h.smaregi
                .set_stock(CONTRACT, store, product, current)
                .await
                .expect("prime");
        }
    }
    h.advance(1);
    run_all(&h.ctx, Jobs::All).await.expect("priming run");
    h.ne.run_queues();
    h.advance(1);
    run_all(&h.ctx, Jobs::All).await.expect("priming run");
    let baseline_history_id = h
        .smaregi
        .history(CONTRACT)
        .iter()
        .map(|r| r.id)
        .max()
        .unwrap_or(0);
    let opening = PRODUCTS
        .iter()
        .map(|p| (p.to_string(), h.ne_stock(p)))
        .collect();
    h.configure_push(setup.shape, setup.pairs_as, setup.push_api_changes);
    if setup.on_platform {
        let tenant = fresh_tenant(&h).await;
        if sne_service::stock_history::history_mode_since(&h.ctx, &tenant)
            .await
            .is_none()
        {
            sne_service::stock_history::set_history_mode(&h.ctx, &tenant, true)
                .await
                .expect("history on");
        }
        let tenant = fresh_tenant(&h).await;
        sne_service::platform::switch_intake(&h.admin, &tenant, HistorySource::Platform)
            .await
            .expect("on the Platform intake");
        h.advance(1);
        h.tenant = fresh_tenant(&h).await;
    }
    let slow_secs = h.ctx.config.unknown_outcome_grace.as_secs() as i64 + 60;
    // The order import switches history reading on when it is configured.
    let history_on = sne_service::stock_history::history_mode_since(&h.ctx, &h.tenant)
        .await
        .is_some();
    World {
        h,
        scenario: scenario.clone(),
        baseline_history_id,
        opening,
        operator_deltas: vec![],
        orders: vec![],
        next_order: 1001,
        answers_dropped: false,
        shape: setup.shape,
        history_on,
        slow_secs,
    }
}

impl World {
    async fn change(&self, change: &Change) {
        let sm = &self.h.smaregi;
        let _ = match *change {
            Change::Sale {
                store,
                product,
                qty,
            } => {
                sm.sale(CONTRACT, STORES[store], PRODUCTS[product], qty)
                    .await
            }
            Change::Receive {
                store,
                product,
                qty,
            } => {
                sm.receive(CONTRACT, STORES[store], PRODUCTS[product], qty)
                    .await
            }
            Change::Stocktake {
                store,
                product,
                counted,
            } => {
                sm.stocktake(CONTRACT, STORES[store], PRODUCTS[product], counted)
                    .await
            }
            Change::Loss {
                store,
                product,
                qty,
            } => {
                sm.loss(CONTRACT, STORES[store], PRODUCTS[product], qty)
                    .await
            }
            Change::Adjust {
                store,
                product,
                delta,
            } => {
                sm.adjust(CONTRACT, STORES[store], PRODUCTS[product], delta)
                    .await
            }
            Change::SetStock {
                store,
                product,
                amount,
            } => {
                sm.set_stock(CONTRACT, STORES[store], PRODUCTS[product], amount)
                    .await
            }
            Change::Transfer {
                from,
                to,
                product,
                qty,
            } => {
                sm.transfer(CONTRACT, STORES[from], STORES[to], PRODUCTS[product], qty)
                    .await
            }
        };
    }

    /// Whether two equal changes of one second make different rows in the
    /// current push shape: every shape but `Relative` carries the stock after
    /// the change, which differs between the two.
    fn shape_tells_equal_changes_apart(&self) -> bool {
        self.shape != PushShape::Relative
    }

    fn pick_send(&self, pick: usize) -> Option<u64> {
        let sends = self.h.smaregi.sends();
        (!sends.is_empty()).then(|| sends[pick % sends.len()].id)
    }

    /// The time line of one event's runs (see [`Timeline`]).
    fn timeline(&self) -> Arc<Timeline> {
        Timeline::new(self.h.advancer())
    }

    fn gate(&self, spec: &RunSpec, timeline: &Arc<Timeline>) -> Arc<Gate> {
        Arc::new(Gate::new(
            spec.faults.clone(),
            timeline.clone(),
            {
                let ne = self.h.ne.clone();
                Arc::new(move || ne.expire_access_token(COMPANY))
            },
            self.slow_secs,
            self.h.ctx.config.upload_deadline().as_secs() as i64,
        ))
    }

    /// One run of the jobs whose future is dropped when its crash point is hit.
    async fn run(&self, base: &Context, spec: &RunSpec, gate: Arc<Gate>) {
        let ctx = gated(base, gate.clone());
        tokio::select! {
            biased;
            _ = gate.crashed() => {}
            _ = run_all_with(&ctx, spec.jobs, spec.mailing) => {}
        }
    }

    async fn apply(&mut self, event: &Event) {
        let h = &self.h;
        match event {
            Event::Change(change) => self.change(change).await,
            Event::TwoRegisters { store, product } => {
                let _ = h
                    .smaregi
                    .sale(CONTRACT, STORES[*store], PRODUCTS[*product], 1)
                    .await;
                if !self.history_on && !self.shape_tells_equal_changes_apart() {
                    // Two relative pushes (no `after`, no id) of one second are
                    // byte for byte a 再送 of each other: without history no
                    // service can tell them apart, so the registers sell a
                    // second apart (the same rows but for the time).
                    h.advance(1);
                }
                let _ = h
                    .smaregi
                    .sale(CONTRACT, STORES[*store], PRODUCTS[*product], 1)
                    .await;
            }
            Event::SetShape(shape) => {
                self.shape = *shape;
                h.configure_push(
                    *shape,
                    self.scenario.setup.pairs_as,
                    self.scenario.setup.push_api_changes,
                );
            }
            Event::Resend { pick } => {
                if let Some(id) = self.pick_send(*pick) {
                    let _ = h.smaregi.resend(id).await;
                }
            }
            Event::DuplicateDelivery { pick } => {
                if let Some(id) = self.pick_send(*pick) {
                    let _ = tokio::join!(h.smaregi.resend(id), h.smaregi.resend(id));
                }
            }
            Event::Intake(to_platform) => {
                let tenant = fresh_tenant(h).await;
                let to = if *to_platform {
                    HistorySource::Platform
                } else {
                    HistorySource::OldApi
                };
                // Refused without history ids (history off): nothing changes.
                let outcome = sne_service::platform::switch_intake(&h.admin, &tenant, to).await;
                tracing::debug!(target: "soak::intake", "switch to {to:?}: {outcome:?}");
                // A real clock moves on before the next push.
                h.advance(1);
            }
            Event::WebhookFaults(faults) => h.smaregi.set_webhook_faults(faults.clone()),
            Event::ReleaseWebhooks => h.smaregi.release_webhooks().await,
            Event::History(on) => {
                let tenant = fresh_tenant(h).await;
                if sne_service::stock_history::set_history_mode(&h.ctx, &tenant, *on)
                    .await
                    .is_ok()
                {
                    self.history_on = *on;
                }
            }
            Event::WebOrder { product, qty } => {
                let id = self.next_order;
                self.next_order += 1;
                h.ne.seed_orders(
                    COMPANY,
                    vec![SeedOrder {
                        receive_order_id: id,
                        shop_id: 1,
                        shop_cut_form_id: format!("WEB-{id}"),
                        order_date: None,
                        import_date: None,
                        cancel_type_id: "0".into(),
                        order_status_id: "2".into(),
                        send_date: None,
                        rows: vec![SeedOrderRow {
                            row_no: 1,
                            goods_id: PRODUCTS[*product].into(),
                            goods_name: String::new(),
                            quantity: *qty,
                            cancel_flag: false,
                            deleted_flag: false,
                        }],
                    }],
                );
                if self.scenario.setup.orders {
                    self.orders.push(id.to_string());
                }
            }
            Event::NeFault { kind, path, times } => {
                if *kind == FaultKind::DropAfterProcessing {
                    self.answers_dropped = true;
                }
                h.ne.inject_fault(Fault {
                    kind: kind.clone(),
                    path: path.map(str::to_string),
                    remaining: Some(*times),
                    probability: None,
                });
            }
            Event::OperatorUpload { product, qty } => {
                let code = PRODUCTS[*product];
                let csv = format!("syohin_code,zaiko_su\r\n{code},{qty}\r\n");
                if let Ok(Some(_)) = h.operator_upload(&csv).await {
                    self.operator_deltas.push((code.to_string(), *qty));
                }
            }
            Event::StepQueues => h.ne.step_queues(),
            Event::RunQueues => h.ne.run_queues(),
            Event::Advance(secs) => h.advance(*secs),
            Event::Run(spec) => {
                let gate = self.gate(spec, &self.timeline());
                self.run(&h.ctx, spec, gate).await
            }
            Event::TwoRuns(a, b) => {
                let other = h.second_process();
                // Both join the time line before either starts.
                let timeline = self.timeline();
                let (gate_a, gate_b) = (self.gate(a, &timeline), self.gate(b, &timeline));
                tokio::join!(self.run(&h.ctx, a, gate_a), self.run(&other, b, gate_b));
            }
            Event::ChangeDuringRun(spec, change) => {
                let gate = self.gate(spec, &self.timeline());
                let ctx = gated(&h.ctx, gate.clone());
                let run = async {
                    tokio::select! {
                        biased;
                        _ = gate.crashed() => {}
                        _ = run_all_with(&ctx, spec.jobs, spec.mailing) => {}
                    }
                };
                let during = async {
                    gate.paused.notified().await;
                    self.change(change).await;
                    gate.resume.notify_one();
                };
                tokio::pin!(run);
                tokio::select! {
                    _ = &mut run => self.change(change).await,
                    _ = during => run.await,
                }
            }
        }
    }

    /// Faults off, time past every grace and lease, runs until nothing is
    /// pending; held batches are resolved by the operator. Returns what the
    /// settle phase itself found wrong.
    async fn settle(&mut self) -> Vec<Violation> {
        let mut found = Vec::new();
        self.h.ne.clear_faults();
        // Webhooks still held arrive late, out of order; later ones go through.
        self.h.smaregi.release_webhooks().await;
        self.h
            .smaregi
            .set_webhook_faults(sne_simulators::smaregi::platform::WebhookFaults::default());
        let mut quiet = 0;
        for _ in 0..SETTLE_ROUNDS {
            self.h.advance(SETTLE_STEP_SECS);
            if let Some(v) = self.tokens_reacquired_if_dead().await {
                found.push(v);
            }
            self.h.ne.run_queues();
            let _ = run_all(&self.h.ctx, Jobs::All).await;
            self.h.ne.run_queues();
            operator_resolves_held_batches(&self.h).await;
            if self.unsettled().await.is_none() {
                quiet += 1;
                if quiet >= 2 {
                    break;
                }
            } else {
                quiet = 0;
            }
        }
        if let Some(what) = self.unsettled().await {
            found.push(Violation {
                invariant: "settle",
                detail: format!(
                    "still not settled after {SETTLE_ROUNDS} clean runs past every grace and lease: {what}"
                ),
            });
        }
        found
    }

    /// The operator's 再取得 when the tokens the service holds no longer work.
    /// Tokens that merely expired are no fault of the service; tokens NextEngine
    /// superseded without the service knowing the new pair are (design.md §7
    /// "Tokens rotate safely"), unless a dropped answer carried the new pair.
    async fn tokens_reacquired_if_dead(&self) -> Option<Violation> {
        let h = &self.h;
        let current = h.ne.token_pair_of(COMPANY)?;
        let stored = h.ctx.storage.ne_tokens(&h.tenant.id).await.ok()??;
        let lost = stored.access_token != current.access_token;
        let expired = current.refresh_token_end_date <= h.ne.now_jst();
        if !lost && !expired {
            return None;
        }
        let pair = h.ne.issue_tokens(COMPANY);
        let _ = sne_service::tenants::replace_ne_tokens(
            &h.ctx,
            &h.tenant.id,
            &NeTokens {
                access_token: pair.access_token,
                refresh_token: pair.refresh_token,
                access_token_end: pair.access_token_end_date,
                refresh_token_end: pair.refresh_token_end_date,
            },
        )
        .await;
        (lost && !self.answers_dropped).then(|| Violation {
            invariant: "tokens",
            detail: "the service's stored NextEngine tokens were superseded by a pair it never saved (a false token error until 再取得)".into(),
        })
    }

    /// What is still in flight, if anything.
    async fn unsettled(&self) -> Option<String> {
        let h = &self.h;
        let store = &h.ctx.storage;
        let tenant = &h.tenant.id;
        let mut open = Vec::new();
        for state in [
            BatchState::Building,
            BatchState::Built,
            BatchState::Uploading,
            BatchState::Uploaded,
            BatchState::NeedsAttention,
        ] {
            let n = store.batches_in_state(tenant, state).await.ok()?.len();
            if n > 0 {
                open.push(format!("{n} batch(es) {state}"));
            }
        }
        let pending = store.pending_changes(tenant).await.ok()?;
        if pending > 0 {
            open.push(format!("{pending} pending change(s)"));
        }
        let reports = store.pending_reports(tenant).await.ok()?.len();
        if reports > 0 {
            open.push(format!("{reports} unsent report(s)"));
        }
        let started = store
            .order_records(tenant, 10_000)
            .await
            .ok()?
            .iter()
            .filter(|r| r.state == sne_ports::OrderImportState::Started)
            .count();
        if started > 0 {
            open.push(format!("{started} order(s) Started"));
        }
        let queues =
            h.ne.uploads()
                .iter()
                .filter(|u| u.status == "0" || u.status == "1")
                .count();
        if queues > 0 {
            open.push(format!("{queues} NextEngine queue(s) open"));
        }
        (!open.is_empty()).then(|| open.join(", "))
    }

    /// `SOAK_DEBUG=1`: what the simulators and the store hold after settling.
    async fn dump(&self, facts: &Facts) {
        let h = &self.h;
        eprintln!("--- setup {:?}", self.scenario.setup);
        for s in h.smaregi.sends() {
            eprintln!("send {} {} {} {}", s.id, s.status, s.message, s.body);
        }
        for u in h.ne.uploads() {
            eprintln!(
                "upload {} {} {:?} {:?}",
                u.que_id, u.status, u.csv, u.message
            );
        }
        for b in h
            .ctx
            .storage
            .recent_batches(&h.tenant.id, 1000)
            .await
            .unwrap_or_default()
        {
            eprintln!(
                "batch {} {} que={:?} lines={:?} notes={:?} err={:?}",
                b.batch_id, b.state, b.que_id, b.lines, b.notes, b.last_error
            );
        }
        for c in &facts.oracle.changes {
            eprintln!("change {c:?}");
        }
        for m in &facts.mails {
            eprintln!("mail {}\n{}", m.subject, m.body);
        }
    }

    async fn facts(&self) -> Facts {
        let h = &self.h;
        let setup = &self.scenario.setup;
        let changes = h
            .smaregi
            .history(CONTRACT)
            .into_iter()
            .filter(|r| r.id > self.baseline_history_id)
            .map(|r| SmaregiChange {
                history_id: r.id,
                store_id: r.store_id,
                product_id: r.product_id,
                division: r.stock_division,
                amount: r.amount,
                after: r.stock_amount,
            })
            .collect();
        let shipments = h.smaregi.shipments();
        let orders = self
            .orders
            .iter()
            .map(|id| OrderFact {
                receive_order_id: id.clone(),
                shipments: shipments
                    .iter()
                    .filter(|s| {
                        s.header
                            .get("identificationNo")
                            .is_some_and(|v| v.as_deref() == Some(id.as_str()))
                    })
                    .count(),
            })
            .collect();
        let store = &h.ctx.storage;
        let finished_queues = store
            .recent_batches(&h.tenant.id, 100_000)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|b| matches!(b.state, BatchState::Succeeded | BatchState::Failed))
            .map(|b| (b.batch_id, b.que_id.unwrap_or_default().into()))
            .collect();
        let reports = store
            .recent_reports(&h.tenant.id, 100_000)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| StoredReport {
                id: r.id,
                subject: r.subject,
                body: r.body,
                sent: r.sent_at.is_some(),
            })
            .collect();
        Facts {
            oracle: OracleInput {
                master: setup.master,
                counted_stores: h.tenant.counted_stores.clone(),
                opening: self.opening.clone(),
                changes,
                operator_deltas: self.operator_deltas.clone(),
            },
            ne_stock: PRODUCTS
                .iter()
                .map(|p| (p.to_string(), h.ne_stock(p)))
                .collect(),
            orders,
            finished_queues,
            mails: h.mails(),
            reports,
        }
    }
}

/// Acts as the operator for every batch the service holds for a person to
/// decide (`BatchState::NeedsAttention`), with the truth only the simulator
/// knows: if NextEngine received exactly this file through the API under a
/// queue id no other batch claims, the batch is that queue ("treat as uploaded"); otherwise
/// NextEngine never got it ("upload again"), decided through the service's own
/// resolution ([`resolve_held`]), as the admin screen and the CLI do.
pub async fn operator_resolves_held_batches(h: &Harness) {
    let store = &h.ctx.storage;
    let tenant = &h.tenant.id;
    let Ok(held) = store
        .batches_in_state(tenant, BatchState::NeedsAttention)
        .await
    else {
        return;
    };
    for batch in held {
        let Ok(known) = store.known_que_ids(tenant).await else {
            return;
        };
        let known: HashSet<String> = known.into_iter().map(String::from).collect();
        let csv = String::from_utf8(render_upload_csv(&batch.lines)).unwrap_or_default();
        // Only the API's uploads: an operator's own CSV of the same rows, uploaded
        // through the screen, is not this file (and the operator knows it).
        let received =
            h.ne.uploads()
                .into_iter()
                .find(|u| !u.by_operator && u.csv == csv && !known.contains(&u.que_id));
        let decision = match received {
            Some(upload) => HeldDecision::TreatAsUploaded {
                que_id: upload.que_id.into(),
            },
            None => HeldDecision::Reupload,
        };
        let _ = resolve_held(&h.admin, tenant, &batch.batch_id, decision, "soak-operator").await;
    }
}
