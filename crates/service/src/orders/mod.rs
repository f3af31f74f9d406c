//! The order importer (design.md §2, manual 「(β版)ネクストエンジン受注数取り込み」):
//! NextEngine web orders become Smaregi 出荷, exactly once.
//!
//! What keeps it exactly once:
//! 1. a record is written `Started` (CAS on "absent") before `shipment_upd`, so a
//!    crash during the call leaves a trace the next run resolves first;
//! 2. every creation is preceded by a `shipment_ref` lookup by identificationNo
//!    (the NextEngine 伝票番号), so a shipment whose answer was lost is adopted,
//!    not made again;
//! 3. the `token` is derived from tenant and order, so even a replayed request
//!    that slips past the lookup is skipped by Smaregi;
//! 4. the read cursor only advances after every order of the run is settled, and
//!    re-reading an order changes nothing (its record decides).
//!
//! Failed orders are terminal: the report tells the operator to register them by
//! hand, so retrying one later could ship it twice. See `README-orders.md`.

//!
//! The rooms: `settings` (the form, checked against Smaregi with read calls,
//! then saved), `import` (the job, under a per-tenant lease) and `report` (what
//! the run's report tells, marked told once the report is stored). The pure parts
//! (grouping rows into orders, mapping, the token) are `sne_domain::orders`.

mod import;
mod report;
mod settings;

pub use import::{ImportOptions, import_orders};
pub use report::mark_reported;
pub use settings::{
    HISTORY_REQUIRED, OrderImportError, OrderImportForm, OrderImportSaved, STARTED_MESSAGE,
    STOPPED_MESSAGE, configure_order_import,
};
