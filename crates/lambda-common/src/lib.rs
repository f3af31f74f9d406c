//! What every smaregi-ne Lambda shares, so that each `main.rs` only wires: the
//! context of each function kind built from the environment (the webhook's,
//! the admin screen's, the jobs', the dispatcher's), JSON logs for CloudWatch,
//! the handlers of scheduled events, of the dispatcher and of run messages,
//! and the path filter of the webhook function.

pub mod dispatch;
pub mod env;
pub mod http;
pub mod logging;
pub mod runner;
pub mod scheduled;
pub mod wiring;

pub use dispatch::{DispatchContext, handle_dispatch};
pub use env::Endpoints;
pub use logging::init_tracing;
pub use runner::handle_run_messages;
pub use scheduled::{ScheduledJob, handle_scheduled};
pub use wiring::{
    admin_context_from_env, admin_context_with, core_with, dispatch_context_from_env,
    job_context_from_env, job_context_with, webhook_context_from_env,
};
