//! The soak's checks can fail, and the binary runs end to end.

use sne_domain::tenant::StockMaster;
use sne_e2e::SentMail;
use sne_e2e::soak::check::{
    Facts, OracleInput, OrderFact, SmaregiChange, StoredReport, expected_ne_stock, invariants,
};
use sne_e2e::soak::exec::run_scenario;
use sne_e2e::soak::ports::{Faults, Gate, Timeline};
use sne_e2e::soak::scenario::{Change, Event, RunSpec, Scenario, Setup};
use sne_e2e::soak::{Mix, Violation};
use sne_service::run::{Jobs, Mailing};
use sne_simulators::smaregi::{PairsAs, PushShape};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

fn change(id: u64, store: &str, division: &str, amount: i64, after: i64) -> SmaregiChange {
    SmaregiChange {
        history_id: id,
        store_id: store.into(),
        product_id: "8000001".into(),
        division: division.into(),
        amount,
        after,
    }
}

fn mail(subject: &str, body: &str) -> SentMail {
    SentMail {
        subject: subject.into(),
        body: body.into(),
        attachments: vec![],
    }
}

/// Facts of a small, healthy world: every check passes on them.
fn healthy() -> Facts {
    let body = "■ 前回の処理結果\nキューID 7: 成功\n";
    Facts {
        oracle: OracleInput {
            master: StockMaster::Smaregi,
            counted_stores: Some(vec!["1".into()]),
            opening: BTreeMap::from([("8000001".to_string(), 100)]),
            changes: vec![
                change(1, "1", "02", -2, 3),  // sale: −2
                change(2, "1", "03", 5, 2),   // 入荷 from −3: +2
                change(3, "1", "10", -1, 1),  // 出荷: never
                change(4, "1", "08", 4, -1),  // 棚卸: as it is
                change(5, "2", "02", -9, -9), // store 2 does not count
            ],
            operator_deltas: vec![("8000001".into(), 3)],
        },
        ne_stock: BTreeMap::from([("8000001".to_string(), 107)]),
        orders: vec![OrderFact {
            receive_order_id: "1001".into(),
            shipments: 1,
        }],
        finished_queues: vec![("b_1".into(), "7".into())],
        mails: vec![mail("s", body)],
        reports: vec![StoredReport {
            id: "r1".into(),
            subject: "s".into(),
            body: body.into(),
            sent: true,
        }],
    }
}

fn classes(found: &[Violation]) -> Vec<&'static str> {
    found.iter().map(|v| v.invariant).collect()
}

#[test]
fn the_oracle_applies_the_manuals_rules_per_change() {
    let facts = healthy();
    assert_eq!(expected_ne_stock(&facts.oracle)["8000001"], 107);
    assert!(invariants(&facts).is_empty(), "{:?}", invariants(&facts));
}

#[test]
fn a_hand_broken_nextengine_stock_is_a_stock_violation() {
    let mut facts = healthy();
    facts.ne_stock.insert("8000001".into(), 106);
    let found = invariants(&facts);
    assert_eq!(classes(&found), ["stock"]);
    assert!(
        found[0].detail.contains("NextEngine has 106"),
        "{}",
        found[0]
    );
    assert!(found[0].detail.contains("= 107"), "{}", found[0]);
}

#[test]
fn a_wrong_oracle_is_a_stock_violation() {
    let mut facts = healthy();
    // As if 出荷 counted: the oracle now demands one less than NextEngine has.
    facts.oracle.changes[2].division = "02".into();
    assert_eq!(classes(&invariants(&facts)), ["stock"]);
}

#[test]
fn an_order_shipped_twice_or_never_is_an_orders_violation() {
    for shipments in [0, 2] {
        let mut facts = healthy();
        facts.orders[0].shipments = shipments;
        assert_eq!(classes(&invariants(&facts)), ["orders"], "{shipments}");
    }
    // A reported failure instead of the shipment is fine.
    let mut facts = healthy();
    facts.orders[0].shipments = 0;
    facts.mails.push(mail(
        "f",
        "  ・伝票番号:1001 受注番号:WEB-1001 原因:スマレジが出荷登録を受け付けませんでした\n",
    ));
    facts.reports.push(StoredReport {
        id: "r2".into(),
        subject: "f".into(),
        body: facts.mails[1].body.clone(),
        sent: true,
    });
    assert!(invariants(&facts).is_empty(), "{:?}", invariants(&facts));
}

#[test]
fn a_finished_queue_reported_never_or_twice_is_a_queue_report_violation() {
    let mut facts = healthy();
    facts.mails.clear();
    assert_eq!(classes(&invariants(&facts)), ["queue-report"]);

    let mut facts = healthy();
    let second = mail("s2", "キューID 7: 成功\n");
    facts.reports.push(StoredReport {
        id: "r2".into(),
        subject: "s2".into(),
        body: second.body.clone(),
        sent: true,
    });
    facts.mails.push(second);
    assert_eq!(classes(&invariants(&facts)), ["queue-report"]);
}

#[test]
fn one_report_mailed_twice_is_a_duplicate_mail_violation() {
    let mut facts = healthy();
    facts.mails.push(facts.mails[0].clone());
    let found = invariants(&facts);
    assert!(classes(&found).contains(&"duplicate-mail"), "{found:?}");
    assert!(found.iter().any(|v| v.detail.contains("r1")), "{found:?}");
}

fn quiet_setup() -> Setup {
    Setup {
        master: StockMaster::Smaregi,
        store3_uncounted: false,
        orders: false,
        push_api_changes: false,
        shape: PushShape::Full,
        pairs_as: PairsAs::Form,
        opening: [5, 5, 5],
        on_platform: false,
    }
}

fn run(jobs: Jobs) -> Event {
    Event::Run(RunSpec {
        jobs,
        faults: Default::default(),
        mailing: Mailing::Send,
    })
}

/// What a stored push asks for: the upload, its mail left to the next run.
fn push_run() -> Event {
    Event::Run(RunSpec {
        jobs: Jobs::Upload,
        faults: Default::default(),
        mailing: Mailing::Defer,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn a_calm_scenario_end_to_end_has_no_violation_and_a_tampered_one_has() {
    let scenario = Scenario {
        seed: 0,
        run_index: 0,
        setup: quiet_setup(),
        events: vec![
            Event::Change(Change::Sale {
                store: 0,
                product: 0,
                qty: 2,
            }),
            Event::Change(Change::Receive {
                store: 1,
                product: 1,
                qty: 3,
            }),
            run(Jobs::All),
            Event::RunQueues,
            run(Jobs::All),
        ],
    };
    let mix = Mix::default();
    let found = run_scenario(&scenario, &mix, None).await;
    assert!(found.is_empty(), "{found:?}");

    // The same world with NextEngine's stock broken by hand after the fact.
    let break_stock = |facts: &mut Facts| {
        *facts.ne_stock.get_mut("8000001").unwrap() += 1;
    };
    let found = run_scenario(&scenario, &mix, Some(&break_stock)).await;
    assert_eq!(classes(&found), ["stock"], "{found:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn runs_for_pushes_between_scheduled_runs_keep_every_invariant() {
    let sale = |product| {
        Event::Change(Change::Sale {
            store: 0,
            product,
            qty: 1,
        })
    };
    let scenario = Scenario {
        seed: 0,
        run_index: 0,
        setup: quiet_setup(),
        events: vec![
            sale(0),
            push_run(),
            sale(1),
            push_run(),
            Event::RunQueues,
            sale(2),
            push_run(),
            run(Jobs::All),
            Event::RunQueues,
            run(Jobs::All),
        ],
    };
    let found = run_scenario(&scenario, &Mix::default(), None).await;
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn two_sales_in_one_second_are_found_lost_with_relative_pushes() {
    // Issue 10 item 7: relative rows with a time but no id leave `after` out of
    // their dedupe key. This pins that the soak sees it; it passes once fixed
    // only if the assertion is flipped, which is the point of a finding.
    let scenario = Scenario {
        seed: 0,
        run_index: 0,
        setup: Setup {
            shape: PushShape::Relative,
            ..quiet_setup()
        },
        events: vec![Event::TwoRegisters {
            store: 0,
            product: 0,
        }],
    };
    let found = run_scenario(&scenario, &Mix::default(), None).await;
    let today = classes(&found);
    assert!(
        today.is_empty() || today == ["stock"],
        "only a stock violation can come of it: {found:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn time_moves_only_while_every_run_of_an_event_spends_it() {
    let clock = Arc::new(AtomicI64::new(0));
    let now = || clock.load(Ordering::SeqCst);
    let moved = clock.clone();
    let timeline = Timeline::new(Arc::new(move |secs| {
        moved.fetch_add(secs, Ordering::SeqCst);
    }));
    let gate = || {
        Gate::new(
            Faults::default(),
            timeline.clone(),
            Arc::new(|| {}),
            660,
            240,
        )
    };
    let (a, b) = (gate(), gate());
    // Run A's call takes 600 s; run B goes on meanwhile and sees no time pass
    // until its own call of 100 s: then both spend time and the clock moves to
    // the earlier end (100 s), never to the sum.
    let slow = async {
        timeline.spend(600).await;
        now()
    };
    let other = async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
            assert_eq!(now(), 0, "time moved while run B was working");
        }
        timeline.spend(100).await;
        let seen = now();
        for _ in 0..20 {
            tokio::task::yield_now().await;
            assert_eq!(now(), 100, "time moved while run B was working");
        }
        drop(b); // run B is over
        seen
    };
    let (a_saw, b_saw) = tokio::join!(slow, other);
    assert_eq!((a_saw, b_saw), (600, 100));
    drop(a);

    // A run alone spends its time at once.
    let alone = Timeline::new(Arc::new(|_| {}));
    let _only = Gate::new(Faults::default(), alone.clone(), Arc::new(|| {}), 660, 240);
    tokio::time::timeout(std::time::Duration::from_secs(5), alone.spend(86_401))
        .await
        .expect("a single run never waits");
}

#[tokio::test(flavor = "current_thread")]
async fn time_never_jumps_under_the_other_runs_upload() {
    // Two shrunk runs where the clock jumped under the other run's upload: it
    // found its own batch `Uploading` past the grace with no queue, sent the
    // file again, and the first attempt landed too (stock counted twice).
    // 9006/359: run B's token expired (the clock moved a day) while run A's
    // upload was being retried; failed about one replay in five.
    // 7003/139 with the time line but the token's day still spent on it: run B
    // spent the day between its `Uploading` mark and its upload call, run A's
    // slow call ended meanwhile; failed every replay.
    let cases: [(u64, u64, &[usize]); 2] = [
        (9006, 359, &[1, 2, 3, 5, 26, 27, 28, 33, 34]),
        (7003, 139, &[3, 6, 8]),
    ];
    // Shrunk before the Platform intake joined the mix, which changes what a
    // seed generates; without it the generator is the one they came from.
    let mix = Mix {
        platform: false,
        ..Mix::default()
    };
    for (seed, run_index, keep) in cases {
        let generated = Scenario::generate(seed, run_index, &mix);
        let scenario = Scenario {
            events: keep
                .iter()
                .map(|&p| generated.events[p - 1].clone())
                .collect(),
            ..generated
        };
        assert!(
            matches!(scenario.events.last(), Some(Event::TwoRuns(..))),
            "the generator changed; shrink seed {seed} run {run_index} again"
        );
        for _ in 0..8 {
            let found = run_scenario(&scenario, &mix, None).await;
            assert!(found.is_empty(), "seed {seed} run {run_index}: {found:?}");
        }
    }
}

#[test]
fn a_handful_of_seeds_run_end_to_end_and_the_last_line_has_the_format() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_soak"))
        .args([
            "--runs",
            "3",
            "--seed",
            "7",
            "--events",
            "15",
            "--shrink-budget",
            "4",
        ])
        .output()
        .expect("soak runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let (runs, violations) = last
        .strip_suffix(" violations")
        .and_then(|rest| rest.split_once(" runs, "))
        .unwrap_or_else(|| panic!("last line is not `N runs, M violations`: {stdout}"));
    assert_eq!(runs, "3", "{stdout}");
    let violations: usize = violations.parse().expect("a count");
    assert_eq!(output.status.success(), violations == 0, "{stdout}");
    assert!(stdout.contains("runs/second:"), "{stdout}");
    if violations > 0 {
        assert!(stdout.contains("VIOLATION seed=7 run="), "{stdout}");
        assert!(stdout.contains("SHORTEST seed=7"), "{stdout}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_platform_intake_with_lost_duplicated_and_late_webhooks_and_both_switches_keeps_every_invariant()
 {
    use sne_simulators::smaregi::platform::WebhookFaults;
    let sale = |store, product, qty| {
        Event::Change(Change::Sale {
            store,
            product,
            qty,
        })
    };
    let scenario = Scenario {
        seed: 0,
        run_index: 0,
        setup: Setup {
            on_platform: true,
            shape: PushShape::Absolute,
            ..quiet_setup()
        },
        events: vec![
            Event::WebhookFaults(WebhookFaults {
                drop_next: 1,
                ..WebhookFaults::default()
            }),
            sale(0, 0, 1),
            Event::WebhookFaults(WebhookFaults {
                duplicate_next: 1,
                redeliver_next: 1,
                ..WebhookFaults::default()
            }),
            sale(1, 1, 2),
            push_run(),
            Event::WebhookFaults(WebhookFaults {
                hold: true,
                ..WebhookFaults::default()
            }),
            Event::Change(Change::Receive {
                store: 0,
                product: 2,
                qty: 4,
            }),
            Event::Intake(false),
            sale(0, 2, 1),
            Event::ReleaseWebhooks,
            run(Jobs::All),
            Event::RunQueues,
            Event::Intake(true),
            Event::Change(Change::Transfer {
                from: 0,
                to: 1,
                product: 0,
                qty: 1,
            }),
            sale(1, 0, 1),
            run(Jobs::All),
            Event::RunQueues,
            run(Jobs::All),
        ],
    };
    let found = run_scenario(&scenario, &Mix::default(), None).await;
    assert!(found.is_empty(), "{found:?}");
}
