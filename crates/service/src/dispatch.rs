//! The local process's runs (design.md §5): the schedule, 「今すぐ実行」 and stored
//! pushes all become requests for one tenant's run, which the debounce of
//! [`sne_domain::debounce`] starts — at most one run per tenant at a time, and
//! at most `max_concurrent_runs` tenants at once.
//!
//! A scheduled round asks for every tenant's run at once, so one slow tenant
//! never delays the others by more than a concurrency slot. On AWS the same
//! shape is the dispatcher, the run queue and the runner (infra/README.md).

use crate::Context;
use crate::run::{Jobs, Mailing, new_run_id, run_tenant_with};
use crate::trigger::RunRequest;
use sne_domain::TenantId;
use sne_domain::debounce::{DebouncePolicy, Debouncer};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchConfig {
    /// Between scheduled rounds (every job for every tenant).
    pub every: Duration,
    /// The debounce of runs for stored changes; `None` leaves changes to the
    /// schedule (the behaviour before event-driven runs, kept for comparison).
    pub debounce: Option<DebouncePolicy>,
    /// Most tenants running at once, which bounds the calls against both APIs.
    pub max_concurrent_runs: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            every: Duration::from_secs(600),
            debounce: Some(DebouncePolicy::default()),
            max_concurrent_runs: 4,
        }
    }
}

/// What a stored change's run does: the upload, with its report left in the
/// outbox for the next scheduled run to mail. The queue check and the order
/// import keep the schedule's pace, which bounds their calls.
pub const JOBS_FOR_CHANGES: Jobs = Jobs::Upload;

pub fn spawn_dispatcher(
    ctx: Context,
    requests: UnboundedReceiver<RunRequest>,
    config: DispatchConfig,
) -> JoinHandle<()> {
    tokio::spawn(Dispatcher::new(ctx, config).serve(requests))
}

struct Dispatcher {
    ctx: Context,
    config: DispatchConfig,
    debouncer: Debouncer<TenantId, Instant>,
    /// The jobs each waiting tenant's next run does: every request's, merged.
    wanted: HashMap<TenantId, Jobs>,
    runs: JoinSet<TenantId>,
    /// Which tenant each run task is, so a run that panicked still ends its turn.
    running: HashMap<tokio::task::Id, TenantId>,
    /// Tenants whose drift check is running: a second request meanwhile is the same check.
    checking: Arc<Mutex<HashSet<TenantId>>>,
}

struct CheckDone(Arc<Mutex<HashSet<TenantId>>>, TenantId);

impl Drop for CheckDone {
    fn drop(&mut self) {
        if let Ok(mut checking) = self.0.lock() {
            checking.remove(&self.1);
        }
    }
}

impl Dispatcher {
    fn new(ctx: Context, config: DispatchConfig) -> Self {
        Dispatcher {
            ctx,
            config,
            debouncer: Debouncer::new(config.debounce.unwrap_or_default()),
            wanted: HashMap::new(),
            runs: JoinSet::new(),
            running: HashMap::new(),
            checking: Arc::default(),
        }
    }

    async fn serve(mut self, mut requests: UnboundedReceiver<RunRequest>) {
        let mut tick = tokio::time::interval(self.config.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut open = true;
        loop {
            self.start_due();
            let deadline = self.debouncer.next_deadline();
            let has_runs = !self.runs.is_empty();
            let has_capacity = self.runs.len() < self.config.max_concurrent_runs.max(1);
            tokio::select! {
                _ = tick.tick() => self.schedule_round().await,
                request = requests.recv(), if open => match request {
                    Some(request) => self.request(request),
                    // Every sender is gone (the admin screen stopped): the
                    // schedule still runs.
                    None => open = false,
                },
                Some(done) = self.runs.join_next_with_id(), if has_runs => self.finished(done),
                _ = sleep_until(deadline), if deadline.is_some() && has_capacity => {}
            }
        }
    }

    fn request(&mut self, request: RunRequest) {
        let now = Instant::now();
        match request {
            RunRequest::Changes(tenant) => {
                if self.config.debounce.is_none() {
                    return;
                }
                self.debouncer.request(&tenant, now);
                self.want(tenant, JOBS_FOR_CHANGES);
            }
            RunRequest::Now(tenant) => {
                self.debouncer.request_now(&tenant, now);
                self.want(tenant, Jobs::All);
            }
            RunRequest::Drift(tenant) => self.check_drift(tenant),
        }
    }

    /// A drift check only reads and holds no lease, so it runs beside the
    /// tenant's runs rather than in their turn: it never delays an upload.
    fn check_drift(&self, tenant: TenantId) {
        if !self
            .checking
            .lock()
            .expect("drift set lock")
            .insert(tenant.clone())
        {
            return;
        }
        let ctx = self.ctx.clone();
        // Dropped when the task ends, even by a panic, so the tenant can be checked again.
        let done = CheckDone(self.checking.clone(), tenant.clone());
        tokio::spawn(async move {
            let _done = done;
            match ctx.storage.tenant(&tenant).await {
                Ok(Some(found)) => {
                    let run_id = new_run_id(&ctx);
                    crate::drift::run_drift(&ctx, &found, &run_id, Mailing::Send).await;
                }
                Ok(None) => tracing::warn!(%tenant, "drift check for an unknown tenant"),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "tenant unreadable for its drift check")
                }
            }
        });
    }

    fn want(&mut self, tenant: TenantId, jobs: Jobs) {
        let merged = match self.wanted.get(&tenant) {
            Some(before) => before.with(jobs),
            None => jobs,
        };
        self.wanted.insert(tenant, merged);
    }

    async fn schedule_round(&mut self) {
        match self.ctx.storage.list_tenants().await {
            Ok(tenants) => {
                tracing::info!(tenants = tenants.len(), "scheduled round");
                let now = Instant::now();
                for tenant in tenants {
                    self.debouncer.request_now(&tenant.id, now);
                    self.want(tenant.id, Jobs::All);
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduled round: tenants unreadable"),
        }
    }

    fn start_due(&mut self) {
        let slots = self.config.max_concurrent_runs.max(1);
        for tenant in self.debouncer.due(Instant::now()) {
            if self.runs.len() >= slots {
                return;
            }
            if !self.debouncer.start(&tenant) {
                continue;
            }
            let jobs = self.wanted.remove(&tenant).unwrap_or(JOBS_FOR_CHANGES);
            let ctx = self.ctx.clone();
            let id = tenant.clone();
            let handle = self.runs.spawn(async move {
                run_one(&ctx, &id, jobs).await;
                id
            });
            self.running.insert(handle.id(), tenant);
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, TenantId), tokio::task::JoinError>) {
        let (task, tenant) = match done {
            Ok((task, tenant)) => (task, tenant),
            Err(e) => {
                tracing::error!(error = %e, "run task failed");
                let task = e.id();
                match self.running.get(&task) {
                    Some(tenant) => (task, tenant.clone()),
                    None => return,
                }
            }
        };
        self.running.remove(&task);
        self.debouncer.finish(&tenant);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

async fn run_one(ctx: &Context, tenant_id: &TenantId, jobs: Jobs) {
    match ctx.storage.tenant(tenant_id).await {
        Ok(Some(tenant)) => {
            let run_id = new_run_id(ctx);
            // A run only for stored changes leaves its mail to the schedule.
            let mailing = if jobs == JOBS_FOR_CHANGES {
                Mailing::Defer
            } else {
                Mailing::Send
            };
            run_tenant_with(ctx, &tenant, jobs, &run_id, mailing).await;
            tracing::info!(tenant = %tenant_id, ?jobs, "run finished");
        }
        Ok(None) => tracing::warn!(tenant = %tenant_id, "run requested for unknown tenant"),
        Err(e) => {
            tracing::error!(tenant = %tenant_id, error = %e, "run not started: tenant unreadable")
        }
    }
}
