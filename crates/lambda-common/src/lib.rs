//! What every smaregi-ne Lambda shares, so that each `main.rs` only wires: the
//! context of each function kind built from the environment (the webhook's,
//! the admin screen's, the jobs', the dispatchers'), JSON logs for CloudWatch,
//! the handlers of the dispatchers and of run messages,
//! and the path filter of the webhook function.

pub mod dispatch;
pub mod env;
pub mod http;
pub mod logging;
pub mod runner;
pub mod scheduled;
pub mod wiring;

pub use dispatch::{DispatchContext, DispatchKind, handle_dispatch};
pub use env::Endpoints;
pub use logging::init_tracing;
pub use runner::handle_run_messages;
pub use wiring::{
    admin_context_from_env, admin_context_with, core_with, dispatch_context_from_env,
    job_context_from_env, job_context_with, webhook_context_from_env,
};
