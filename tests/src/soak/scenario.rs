//! Scenarios: a tenant setup and a list of events, derived from a seed.

use super::Mix;
use super::ports::Faults;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sne_domain::tenant::StockMaster;
use sne_service::run::{Jobs, Mailing};
use sne_simulators::nextengine::FaultKind;
use sne_simulators::smaregi::platform::WebhookFaults;
use sne_simulators::smaregi::{PairsAs, PushShape};
use std::fmt;

pub const PRODUCTS: [&str; 3] = ["8000001", "8000002", "8000003"];
pub const STORES: [&str; 3] = ["1", "2", "3"];
/// NextEngine's opening stock of every goods: large, so no upload ever fails on
/// free stock and every delta lands.
pub const NE_OPENING: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub master: StockMaster,
    /// Store 3 does not count (stores 1 and 2 do); otherwise all count.
    pub store3_uncounted: bool,
    pub orders: bool,
    pub push_api_changes: bool,
    pub shape: PushShape,
    pub pairs_as: PairsAs,
    /// Opening Smaregi stock of each product in store 1.
    pub opening: [i64; 3],
    /// The tenant starts on the Platform intake (switched over after priming).
    pub on_platform: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub run_index: u64,
    pub setup: Setup,
    pub events: Vec<Event>,
}

/// A Smaregi stock change made through the simulator's control API, which
/// pushes it to the webhook before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Sale {
        store: usize,
        product: usize,
        qty: i64,
    },
    Receive {
        store: usize,
        product: usize,
        qty: i64,
    },
    Stocktake {
        store: usize,
        product: usize,
        counted: i64,
    },
    Loss {
        store: usize,
        product: usize,
        qty: i64,
    },
    Adjust {
        store: usize,
        product: usize,
        delta: i64,
    },
    SetStock {
        store: usize,
        product: usize,
        amount: i64,
    },
    Transfer {
        from: usize,
        to: usize,
        product: usize,
        qty: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub jobs: Jobs,
    pub faults: Faults,
    /// `Defer`: the run of a stored push (event-driven), whose report waits
    /// for the next sending run.
    pub mailing: Mailing,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Change(Change),
    /// Two registers sell the same product in the same second.
    TwoRegisters {
        store: usize,
        product: usize,
    },
    SetShape(PushShape),
    /// 再送 of an earlier send (`pick` chooses which, modulo the log).
    Resend {
        pick: usize,
    },
    /// The same send delivered twice at once.
    DuplicateDelivery {
        pick: usize,
    },
    History(bool),
    /// Switch to the Platform intake (`true`) or back to the old one.
    Intake(bool),
    /// What the next Platform webhook deliveries suffer.
    WebhookFaults(WebhookFaults),
    /// Held webhooks are delivered, newest first.
    ReleaseWebhooks,
    WebOrder {
        product: usize,
        qty: i64,
    },
    NeFault {
        kind: FaultKind,
        path: Option<&'static str>,
        times: u32,
    },
    OperatorUpload {
        product: usize,
        qty: i64,
    },
    StepQueues,
    RunQueues,
    Advance(i64),
    Run(RunSpec),
    /// Two processes on the same data directory run at once.
    TwoRuns(RunSpec, RunSpec),
    /// A change made while a run is paused at one of its calls.
    ChangeDuringRun(RunSpec, Change),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn spec(s: &RunSpec) -> String {
            let f = &s.faults;
            let mut out = format!("{:?}", s.jobs);
            if s.mailing == Mailing::Defer {
                out.push_str(" for a push (mail deferred)");
            }
            if let Some(k) = f.crash_at {
                out.push_str(&format!(
                    " crash@{k}{}",
                    if f.crash_after_effect {
                        "(after effect)"
                    } else {
                        "(before call)"
                    }
                ));
            }
            if let Some(k) = f.slow_ne_call {
                out.push_str(&format!(" slow-ne#{k}"));
            }
            if let Some(k) = f.rotate_before_ne_call {
                out.push_str(&format!(" token-expires-before-ne#{k}"));
            }
            if let Some(k) = f.pause_at {
                out.push_str(&format!(" pause@{k}"));
            }
            out
        }
        match self {
            Event::Run(s) => write!(f, "Run({})", spec(s)),
            Event::TwoRuns(a, b) => write!(f, "TwoRuns({} | {})", spec(a), spec(b)),
            Event::ChangeDuringRun(s, c) => write!(f, "ChangeDuringRun({} ; {c:?})", spec(s)),
            other => write!(f, "{other:?}"),
        }
    }
}

const FAULT_PATHS: [Option<&str>; 5] = [
    Some("/api_v1_master_goods/upload"),
    Some("/api_v1_system_que/search"),
    Some("/api_v1_master_goods/search"),
    Some("/api_v1_receiveorder_row/search"),
    None,
];

fn fault_kind(rng: &mut StdRng) -> FaultKind {
    match rng.random_range(0..8) {
        0 => FaultKind::Overload,
        1 => FaultKind::OverloadWaitTimeout,
        2 => FaultKind::Maintenance002007,
        3 => FaultKind::Maintenance003004,
        4 => FaultKind::SystemError999999,
        5 => FaultKind::Http5xx(503),
        6 => FaultKind::DropConnection,
        _ => FaultKind::DropAfterProcessing,
    }
}

fn change(rng: &mut StdRng, setup: &Setup) -> Change {
    let store = if setup.store3_uncounted || rng.random_bool(0.7) {
        // Mostly the stores that count; store 3 now and then.
        if rng.random_bool(0.85) {
            rng.random_range(0..2)
        } else {
            2
        }
    } else {
        rng.random_range(0..3)
    };
    let product = rng.random_range(0..PRODUCTS.len());
    match rng.random_range(0..10) {
        0..=2 => Change::Sale {
            store,
            product,
            qty: rng.random_range(1..=3),
        },
        3 | 4 => Change::Receive {
            store,
            product,
            qty: rng.random_range(1..=5),
        },
        5 => Change::Stocktake {
            store,
            product,
            counted: rng.random_range(0..=8),
        },
        6 => Change::Loss {
            store,
            product,
            qty: rng.random_range(1..=2),
        },
        7 => Change::Adjust {
            store,
            product,
            delta: rng.random_range(-2..=3),
        },
        8 => Change::SetStock {
            store,
            product,
            amount: rng.random_range(-2..=8),
        },
        _ => {
            let from = rng.random_range(0..3);
            let to = (from + rng.random_range(1..3)) % 3;
            Change::Transfer {
                from,
                to,
                product,
                qty: rng.random_range(1..=3),
            }
        }
    }
}

fn run_spec(rng: &mut StdRng, mix: &Mix, setup: &Setup, pause: bool) -> RunSpec {
    let jobs = match rng.random_range(0..10) {
        0 => Jobs::Upload,
        1 => Jobs::CheckQueue,
        2 if setup.orders => Jobs::ImportOrders,
        _ => Jobs::All,
    };
    let mut faults = Faults::default();
    if mix.crash && rng.random_bool(0.35) {
        faults.crash_at = Some(rng.random_range(0..45));
        faults.crash_after_effect = rng.random_bool(0.5);
        faults.mail_crash_after_effect = mix.mail_crash_after_effect;
    }
    if mix.slow && rng.random_bool(0.12) {
        faults.slow_ne_call = Some(rng.random_range(0..6));
    }
    if mix.rotation && rng.random_bool(0.12) {
        faults.rotate_before_ne_call = Some(rng.random_range(0..6));
    }
    if pause {
        faults.pause_at = Some(rng.random_range(0..30));
    }
    RunSpec {
        jobs,
        faults,
        mailing: Mailing::Send,
    }
}

/// Half the upload-only runs become what a stored push asks for (issue 13):
/// the upload, its report left in the outbox for the next sending run. Drawn
/// from a stream of its own, so the events (and every shrunk case pinned in
/// the tests) stay what the main stream made them.
fn some_runs_for_pushes(events: &mut [Event], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5055_5348_5255_4e53);
    let mut mark = |spec: &mut RunSpec| {
        if spec.jobs == Jobs::Upload && rng.random_bool(0.5) {
            spec.mailing = Mailing::Defer;
        }
    };
    for event in events {
        match event {
            Event::Run(spec) | Event::ChangeDuringRun(spec, _) => mark(spec),
            Event::TwoRuns(a, b) => {
                mark(a);
                mark(b);
            }
            _ => {}
        }
    }
}

impl Scenario {
    pub fn generate(seed: u64, run_index: u64, mix: &Mix) -> Scenario {
        let mut rng = StdRng::seed_from_u64(super::run_seed(seed, run_index));
        let setup = Setup {
            master: if rng.random_bool(0.2) {
                StockMaster::NextEngine
            } else {
                StockMaster::Smaregi
            },
            store3_uncounted: rng.random_bool(0.5),
            orders: mix.orders && rng.random_bool(0.5),
            push_api_changes: rng.random_bool(0.5),
            shape: mix.shapes[rng.random_range(0..mix.shapes.len())],
            pairs_as: if rng.random_bool(0.5) {
                PairsAs::Form
            } else {
                PairsAs::Headers
            },
            opening: [
                rng.random_range(0..6),
                rng.random_range(0..6),
                rng.random_range(0..6),
            ],
            on_platform: mix.platform && mix.history && rng.random_bool(0.5),
        };
        let mut events = Vec::with_capacity(mix.events);
        while events.len() < mix.events {
            let roll = rng.random_range(0..100);
            let event = match roll {
                0..=27 => Event::Change(change(&mut rng, &setup)),
                28..=30 => Event::TwoRegisters {
                    store: rng.random_range(0..2),
                    product: rng.random_range(0..PRODUCTS.len()),
                },
                31..=34 if mix.shapes.len() > 1 => {
                    Event::SetShape(mix.shapes[rng.random_range(0..mix.shapes.len())])
                }
                35..=39 if mix.platform && rng.random_bool(0.4) => match rng.random_range(0..5) {
                    0 => Event::ReleaseWebhooks,
                    n => Event::WebhookFaults(WebhookFaults {
                        drop_next: u32::from(n == 1) * rng.random_range(1..=3),
                        duplicate_next: u32::from(n == 2) * rng.random_range(1..=3),
                        redeliver_next: u32::from(n == 3) * rng.random_range(1..=3),
                        hold: n == 4,
                    }),
                },
                35..=39 if mix.resends => Event::Resend {
                    pick: rng.random_range(0..1000),
                },
                40..=42 if mix.resends => Event::DuplicateDelivery {
                    pick: rng.random_range(0..1000),
                },
                43..=45 if mix.history && mix.platform && rng.random_bool(0.5) => {
                    Event::Intake(rng.random_bool(0.6))
                }
                43..=45 if mix.history => Event::History(rng.random_bool(0.6)),
                46..=50 if setup.orders => Event::WebOrder {
                    product: rng.random_range(0..PRODUCTS.len()),
                    qty: rng.random_range(1..=2),
                },
                51..=55 if mix.ne_faults => Event::NeFault {
                    kind: fault_kind(&mut rng),
                    path: FAULT_PATHS[rng.random_range(0..FAULT_PATHS.len())],
                    times: rng.random_range(1..=4),
                },
                56..=58 if mix.operator_uploads => Event::OperatorUpload {
                    product: rng.random_range(0..PRODUCTS.len()),
                    qty: rng.random_range(1..=4),
                },
                59..=62 => Event::StepQueues,
                63..=66 => Event::RunQueues,
                67..=69 => Event::Advance(match rng.random_range(0..4) {
                    0 if mix.rotation => 86_401,
                    1 => rng.random_range(300..1200),
                    _ => rng.random_range(1..120),
                }),
                70..=88 => Event::Run(run_spec(&mut rng, mix, &setup, false)),
                89..=94 if mix.concurrent => Event::TwoRuns(
                    run_spec(&mut rng, mix, &setup, false),
                    run_spec(&mut rng, mix, &setup, false),
                ),
                95..=99 if mix.concurrent => Event::ChangeDuringRun(
                    run_spec(&mut rng, mix, &setup, true),
                    change(&mut rng, &setup),
                ),
                _ => continue,
            };
            events.push(event);
        }
        some_runs_for_pushes(&mut events, super::run_seed(seed, run_index));
        Scenario {
            seed,
            run_index,
            setup,
            events,
        }
    }
}
