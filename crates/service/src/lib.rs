//! smaregi-ne's application layer: the jobs of design.md §2 written against the ports,
//! and the one axum router that both the local server and the Lambdas serve.

pub mod admin;
pub mod batcher;
pub mod checker;
pub mod context;
pub mod cursors;
pub mod dispatch;
pub mod drift;
pub mod held;
pub mod http;
pub mod orders;
pub mod platform;
pub mod reporter;
pub mod resend;
pub mod run;
pub mod sections;
pub mod stock_history;
pub mod tenants;
pub mod trigger;
pub mod uploader;
pub mod webhook;
pub mod wording;

pub use context::{AdminContext, Context, Core, ServiceConfig, SessionSecret, WebhookSecret};
