//! What every smaregi-ne Lambda shares, so that each `main.rs` only wires: the
//! [`sne_service::Context`] built from the environment, JSON logs for CloudWatch,
//! the scheduled-event handler, and the path filter of the webhook function.

pub mod env;
pub mod http;
pub mod logging;
pub mod scheduled;
pub mod wiring;

pub use env::{Endpoints, FunctionKind};
pub use logging::init_tracing;
pub use scheduled::{ScheduledJob, handle_scheduled};
pub use wiring::{context_from_env, context_with, webhook_context_from_env};
