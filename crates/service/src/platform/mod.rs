//! The スマレジ・プラットフォームAPI as a tenant's second intake (README
//! "Platform API"): `pos:stock` webhooks stored as unresolved changes and read
//! by the batcher (`intake`), a backfill every run because Smaregi does not
//! retry webhooks (`intake`), the endpoints (`webhook`), and the switch between
//! the two intakes at a history-id boundary (`migration`).
//!
//! Both intakes key a change by its history id (`h:<id>`): a change seen
//! through both is one ledger entry, which is what makes the switch exact.

pub mod intake;
pub mod migration;
pub mod webhook;

pub use intake::{backfill, resolve_unresolved, write_stock};
pub use migration::{IntakeError, switch_intake};
