//! The report outbox across processes: runs that overlap send a report once, and
//! the report of a sender that died mid-send still goes out (design.md §5).

mod admin_support;

use admin_support::*;
use async_trait::async_trait;
use sne_domain::TenantId;
use sne_embedded::{EmlMailer, SqliteStore};
use sne_ports::mail::MailError;
use sne_ports::{Mail, Mailer, OutboxReport};
use sne_service::reporter::{SendOutcome, send_pending};
use sne_service::{Context, Core};
use std::sync::Arc;
use tokio::sync::Notify;

/// Holds every mail until the test lets it go, so another run can overlap the send.
struct HeldMailer {
    inner: EmlMailer,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl Mailer for HeldMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        self.entered.notify_one();
        self.release.notified().await;
        self.inner.send(mail).await
    }
}

fn report(env: &Env, tenant: &TenantId, id: &str) -> OutboxReport {
    OutboxReport {
        id: id.into(),
        tenant_id: tenant.clone(),
        created_at: env.ctx.clock.now(),
        to: vec!["notify@shop.example".into()],
        subject: "【スマレジtoネクストエンジン】アップロード:成功".into(),
        body: "本文".into(),
        attachments: vec![],
        sent_at: None,
        attempts: 0,
        last_error: None,
        reported_batches: vec![],
        claim: None,
    }
}

fn mails(env: &Env) -> usize {
    std::fs::read_dir(env.dir.path().join("outbox"))
        .map(|dir| {
            dir.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sending_at_once_send_one_mail() {
    let env = Env::start(true).await;
    let tenant = env.a.clone();
    assert!(
        env.ctx
            .storage
            .enqueue_report(&report(&env, &tenant.id, "run-1"))
            .await
            .unwrap()
    );
    // A second process: its own connection to the same data directory.
    let held = Arc::new(HeldMailer {
        inner: EmlMailer::new(env.dir.path().join("outbox")),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let other = Context {
        core: Core {
            storage: Arc::new(SqliteStore::open(env.dir.path()).unwrap()),
            ..env.ctx.core.clone()
        },
        mailer: held.clone(),
    };
    let first = tokio::spawn({
        let tenant = tenant.clone();
        async move { send_pending(&other, &tenant).await }
    });
    // The other process is in the middle of sending the report...
    held.entered.notified().await;
    let overlapping = send_pending(&env.ctx, &tenant).await;
    held.release.notify_one();
    let first = first.await.unwrap();

    assert_eq!(
        overlapping,
        SendOutcome {
            sent: 0,
            failed: 0,
            skipped: 1
        },
        "...so this run leaves it alone"
    );
    assert_eq!(first.sent, 1);
    assert_eq!(mails(&env), 1, "one mail in the outbox");
    assert!(
        env.ctx
            .storage
            .pending_reports(&tenant.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        send_pending(&env.ctx, &tenant).await,
        SendOutcome::default()
    );
    assert_eq!(mails(&env), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_sender_died_goes_out_after_the_lease() {
    let env = Env::start(true).await;
    let tenant = env.a.clone();
    env.ctx
        .storage
        .enqueue_report(&report(&env, &tenant.id, "run-1"))
        .await
        .unwrap();
    let lease = chrono::Duration::from_std(env.ctx.config.report_send_lease).unwrap();
    assert!(
        lease >= chrono::Duration::minutes(5),
        "longer than one send"
    );
    // A run claimed the report and died before sending it.
    let now = env.ctx.clock.now();
    assert!(
        env.ctx
            .storage
            .claim_report(&tenant.id, "run-1", "crashed-run", now, now + lease)
            .await
            .unwrap()
    );

    env.advance(lease - chrono::Duration::seconds(1));
    let during = send_pending(&env.ctx, &tenant).await;
    assert_eq!(
        (during.sent, during.skipped),
        (0, 1),
        "the lease still runs"
    );
    assert_eq!(mails(&env), 0);

    env.advance(chrono::Duration::seconds(1));
    let after = send_pending(&env.ctx, &tenant).await;
    assert_eq!((after.sent, after.skipped), (1, 0), "taken over and sent");
    assert_eq!(mails(&env), 1);
    let sent = &env.ctx.storage.recent_reports(&tenant.id, 1).await.unwrap()[0];
    assert_eq!(sent.sent_at, Some(env.ctx.clock.now()));
    assert_eq!(
        send_pending(&env.ctx, &tenant).await,
        SendOutcome::default()
    );
    assert_eq!(mails(&env), 1);
}
