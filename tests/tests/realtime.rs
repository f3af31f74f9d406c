//! Event-driven runs: a stored push asks for its tenant's run, which the
//! process's dispatcher starts after the debounce (design.md §5). The service
//! runs as `serve` runs it, between both simulators.
//!
//! The quiet windows here are short so the tests stay quick; what they assert
//! is which files go up, never how fast.

use sne_domain::debounce::DebouncePolicy;
use sne_e2e::{CONTRACT, Harness, Options};
use sne_service::dispatch::DispatchConfig;
use sne_simulators::nextengine::{Fault, FaultKind, ReceivedUpload};
use std::time::Duration;

const UPLOAD: &str = "/api_v1_master_goods/upload";
const NO_SCHEDULE: Duration = Duration::from_secs(3600);

fn debounced(quiet_ms: u64) -> DispatchConfig {
    DispatchConfig {
        every: NO_SCHEDULE,
        debounce: Some(DebouncePolicy {
            quiet: Duration::from_millis(quiet_ms),
            max_wait: Duration::from_secs(20),
            trailing: false,
        }),
        max_concurrent_runs: 4,
    }
}

/// The files NextEngine has received, once there are `n` (or after a minute).
async fn uploads(h: &Harness, n: usize) -> Vec<ReceivedUpload> {
    for _ in 0..600 {
        let uploads = h.ne.uploads();
        if uploads.len() >= n {
            return uploads;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.ne.uploads()
}

fn lines_of(upload: &ReceivedUpload) -> Vec<String> {
    upload.csv.lines().skip(1).map(str::to_string).collect()
}

#[tokio::test]
async fn a_burst_of_pushes_goes_up_as_one_file_without_any_schedule() {
    let mut h = Harness::start(Options::default()).await;
    // Wide enough for three pushes on a loaded machine.
    let _dispatcher = h.dispatch(debounced(3_000));
    for product in ["8000001", "8000002", "8000003"] {
        h.smaregi.sale(CONTRACT, "1", product, 1).await.unwrap();
    }
    let got = uploads(&h, 1).await;
    assert_eq!(got.len(), 1, "the burst's file went up");
    let lines = lines_of(&got[0]);
    assert_eq!(
        lines.len(),
        3,
        "every push of the burst in one file: {lines:?}"
    );
    // Longer than the quiet window: no second file for the same changes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(h.ne.uploads().len(), 1);
    assert_eq!(
        h.ctx.storage.pending_changes(&h.tenant.id).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_push_during_a_run_goes_up_in_one_more_run_after_it() {
    let mut h = Harness::start(Options::default()).await;
    h.ne.inject_fault(Fault::new(FaultKind::Slow(2_000)).on(UPLOAD).times(1));
    let _dispatcher = h.dispatch(debounced(200));
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    // The run has taken the first change and is uploading it (slowly).
    let mut in_flight = false;
    for _ in 0..300 {
        if h.ctx.storage.pending_changes(&h.tenant.id).await.unwrap() == 0
            && h.ne.uploads().is_empty()
        {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_flight, "the first run took its change");
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    let got = uploads(&h, 2).await;
    assert_eq!(got.len(), 2, "one more run after the first");
    let (first, second) = (lines_of(&got[0]), lines_of(&got[1]));
    assert!(
        first.len() == 1 && first[0].starts_with("8000001,"),
        "{first:?}"
    );
    assert!(
        second.len() == 1 && second[0].starts_with("8000002,"),
        "{second:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.ne.uploads().len(), 2, "nothing went up twice");
}

#[tokio::test]
async fn schedule_only_leaves_pushes_to_the_schedule_and_run_now_still_runs_at_once() {
    let mut h = Harness::start(Options::default()).await;
    let _dispatcher = h.dispatch(DispatchConfig {
        debounce: None,
        ..debounced(100)
    });
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.ne.uploads().is_empty(), "the push waits for the schedule");
    h.admin.trigger.request_run(&h.tenant.id).await.unwrap();
    assert_eq!(uploads(&h, 1).await.len(), 1, "今すぐ実行 ran the tenant");
}

#[tokio::test]
async fn a_scheduled_round_runs_every_tenant_through_the_dispatcher() {
    let mut h = Harness::start(Options::default()).await;
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    let _dispatcher = h.dispatch(DispatchConfig {
        every: Duration::from_millis(500),
        debounce: None,
        max_concurrent_runs: 1,
    });
    let got = uploads(&h, 1).await;
    assert_eq!(got.len(), 1, "the round uploaded the pending change");
    assert!(lines_of(&got[0])[0].starts_with("8000001,"));
}

#[tokio::test]
async fn runs_for_pushes_leave_their_reports_to_the_next_sending_run_which_mails_them_as_one() {
    let mut h = Harness::start(Options::default()).await;
    let _dispatcher = h.dispatch(debounced(200));
    h.smaregi.sale(CONTRACT, "1", "8000001", 1).await.unwrap();
    assert_eq!(uploads(&h, 1).await.len(), 1);
    h.smaregi.sale(CONTRACT, "1", "8000002", 1).await.unwrap();
    assert_eq!(uploads(&h, 2).await.len(), 2);
    assert!(
        h.mails().is_empty(),
        "a file every few seconds is not a mail each"
    );

    h.admin.trigger.request_run(&h.tenant.id).await.unwrap();
    let mut mails = h.mails();
    for _ in 0..300 {
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        mails = h.mails();
    }
    assert_eq!(mails.len(), 1, "every waiting report in one mail");
    let mail = &mails[0];
    assert!(mail.subject.ends_with("ほか1件"), "{}", mail.subject);
    let csvs: Vec<&str> = mail
        .attachments
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.ends_with(".csv"))
        .collect();
    assert_eq!(
        csvs.len(),
        2,
        "each file's CSV, as the manual's procedure needs: {csvs:?}"
    );
    assert_eq!(
        h.ne.uploads().len(),
        2,
        "今すぐ実行 found nothing more to upload"
    );
}
