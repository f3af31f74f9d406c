//! Clients of Smaregi: `platform` for the スマレジ・プラットフォームAPI, and
//! of the old スマレジAPI (`POST …/access/`, headers `X_contract_id` and
//! `X_access_token`, form fields `proc_name` + `params`): the HTTP
//! implementation of [`sne_ports::smaregi::SmaregiApi`].
//!
//! Reference calls are retried after transport failures; `shipment_upd` is
//! not, because an unanswered insert may have happened (the caller resolves
//! it by `identificationNo`, and the shipment `token` makes a deliberate
//! resend harmless).
//!
//! Reads assume the strictest public reading of the old API: `StockHistory`
//! only in narrowed lookups (id windows of 100,000, dates within 31 days),
//! one condition object per lookup (several are no OR), and pages that may
//! hold fewer rows than `limit` asked for.

mod client;
pub mod platform;

pub use client::{
    DEFAULT_API_URL, DEFAULT_AUTH_ERROR_CODES, DEFAULT_HISTORY_LOOKBACK_WINDOWS, DEFAULT_PAGE_SIZE,
    SmaregiClient,
};
pub use sne_ports::RetryPolicy;
