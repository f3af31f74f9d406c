//! The seeded fault simulation (issue 10): `soak --runs N --seed S [flags]`.
//!
//! Prints every violation with its seed and run index, the invariant and the
//! figures, and the shortest event list that reproduces it (delta debugging);
//! then the runs per second, and `N runs, M violations` as the last line. Exits
//! non-zero when M > 0.
//!
//! Flags isolate a failure by switching parts of the fault mix off:
//! `--no-crash --no-orders --no-history --no-faults --no-concurrent
//! --no-operator --no-slow --no-rotation --no-resends --no-platform`, `--shapes full,minimal,absolute,relative`,
//! `--events N` (per run), `--first-run K` (the campaign's runs K.. instead of
//! 0..: one campaign split over processes), `--run-index I` (replay one run of the campaign),
//! `--shrink-budget N` (re-executions per violation, 0 = no shrinking),
//! `--keep 3,7,12` (with `--run-index`: only those events of the run, by the
//! positions a SHORTEST block prints; `--repeat N` runs it N times, as runs
//! with two processes at once depend on real time and may not fail every time),
//! `--mail-crash-after` (a crashing mail send may go out first).
//! `SOAK_LOG=soak=debug,sne_service=info` traces every gated call and the
//! service's log; `SOAK_DEBUG=1` dumps the simulators and the store at the end.

use sne_e2e::soak::scenario::Scenario;
use sne_e2e::soak::{Mix, Violation, execute, shrink};
use sne_simulators::smaregi::PushShape;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    runs: u64,
    first_run: u64,
    seed: u64,
    run_index: Option<u64>,
    shrink_budget: usize,
    keep: Option<Vec<usize>>,
    repeat: u64,
    mix: Mix,
}

fn usage(message: &str) -> ! {
    eprintln!("soak: {message}");
    eprintln!(
        "usage: soak --runs N --seed S [--first-run K] [--events N] [--run-index I] [--shrink-budget N] [--keep P,Q,…] [--repeat N] [--shapes full,minimal,absolute,relative] [--no-crash] [--no-orders] [--no-history] [--no-faults] [--no-concurrent] [--no-operator] [--no-slow] [--no-rotation] [--no-resends] [--no-platform] [--mail-crash-after]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut args = Args {
        runs: 100,
        first_run: 0,
        seed: 1,
        run_index: None,
        shrink_budget: 120,
        keep: None,
        repeat: 1,
        mix: Mix::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |text: String| -> u64 {
            text.parse()
                .unwrap_or_else(|_| usage(&format!("not a number: {text}")))
        };
        match flag.as_str() {
            "--runs" => args.runs = number(value("--runs")),
            "--seed" => args.seed = number(value("--seed")),
            "--first-run" => args.first_run = number(value("--first-run")),
            "--events" => args.mix.events = number(value("--events")) as usize,
            "--run-index" => args.run_index = Some(number(value("--run-index"))),
            "--shrink-budget" => args.shrink_budget = number(value("--shrink-budget")) as usize,
            "--keep" => {
                args.keep = Some(
                    value("--keep")
                        .split(',')
                        .map(|p| number(p.trim().to_string()) as usize)
                        .collect(),
                )
            }
            "--repeat" => args.repeat = number(value("--repeat")).max(1),
            "--shapes" => {
                args.mix.shapes = value("--shapes")
                    .split(',')
                    .map(|s| match s.trim() {
                        "full" => PushShape::Full,
                        "minimal" => PushShape::Minimal,
                        "absolute" => PushShape::Absolute,
                        "relative" => PushShape::Relative,
                        other => usage(&format!("unknown shape {other}")),
                    })
                    .collect();
                if args.mix.shapes.is_empty() {
                    usage("--shapes needs at least one shape");
                }
            }
            "--no-crash" => args.mix.crash = false,
            "--no-orders" => args.mix.orders = false,
            "--no-history" => args.mix.history = false,
            "--no-faults" => args.mix.ne_faults = false,
            "--no-concurrent" => args.mix.concurrent = false,
            "--no-operator" => args.mix.operator_uploads = false,
            "--no-slow" => args.mix.slow = false,
            "--no-rotation" => args.mix.rotation = false,
            "--no-resends" => args.mix.resends = false,
            "--no-platform" => args.mix.platform = false,
            "--mail-crash-after" => args.mix.mail_crash_after_effect = true,
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    args
}

/// A panic inside a run is a violation too (e.g. a mail that is not 7-bit).
fn checked(scenario: &Scenario, mix: &Mix) -> Vec<Violation> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| execute(scenario, mix))) {
        Ok(found) => found,
        Err(panic) => vec![Violation {
            invariant: "panic",
            detail: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a run panicked".into()),
        }],
    }
}

fn main() -> ExitCode {
    // `SOAK_LOG=soak=debug,sne_service=info`: every gated call of every run and
    // the service's own log, to stderr.
    if let Ok(filter) = std::env::var("SOAK_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let args = parse();
    if args.keep.is_some() && args.run_index.is_none() {
        usage("--keep needs --run-index");
    }
    let indices: Vec<u64> = match args.run_index {
        Some(i) => std::iter::repeat_n(i, args.repeat as usize).collect(),
        None => (args.first_run..args.first_run.saturating_add(args.runs)).collect(),
    };
    let started = Instant::now();
    let mut violations = 0usize;
    let mut failing: Vec<(Scenario, Vec<Violation>)> = Vec::new();
    for &index in &indices {
        let mut scenario = Scenario::generate(args.seed, index, &args.mix);
        if let Some(keep) = &args.keep {
            scenario.events = keep
                .iter()
                .filter_map(|&p| scenario.events.get(p.wrapping_sub(1)).cloned())
                .collect();
        }
        let found = checked(&scenario, &args.mix);
        for v in &found {
            println!("VIOLATION seed={} run={index} {v}", args.seed);
        }
        violations += found.len();
        if !found.is_empty() {
            failing.push((scenario, found));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let runs = indices.len();

    if args.shrink_budget > 0 {
        for (scenario, found) in &failing {
            let mut classes: Vec<&'static str> = found.iter().map(|v| v.invariant).collect();
            classes.dedup();
            for class in classes {
                let (shortest, positions, tries) =
                    shrink(scenario, &args.mix, class, args.shrink_budget);
                println!(
                    "SHORTEST seed={} run={} invariant={class}: {} of {} events ({tries} re-executions)",
                    scenario.seed,
                    scenario.run_index,
                    shortest.events.len(),
                    scenario.events.len()
                );
                println!("  setup: {:?}", shortest.setup);
                for (event, position) in shortest.events.iter().zip(&positions) {
                    println!("  {position:>3}. {event}");
                }
                if args.keep.is_none() {
                    println!(
                        "  replay: --seed {} --run-index {} --keep {}",
                        scenario.seed,
                        scenario.run_index,
                        positions
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                }
                for v in checked(&shortest, &args.mix)
                    .iter()
                    .filter(|v| v.invariant == class)
                {
                    println!("  -> {v}");
                }
            }
        }
    }
    println!(
        "runs/second: {:.2} ({runs} runs in {elapsed:.1} s, shrinking not counted)",
        runs as f64 / elapsed.max(1e-9)
    );
    println!("{runs} runs, {violations} violations");
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
