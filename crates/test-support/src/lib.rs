//! What the tests of every crate share, so each set-up is written once:
//!
//! * [`wiring`]: a [`Context`](sne_service::Context) over SQLite, files and the two
//!   API clients, pointed at the simulators (or nowhere), on a clock of the test's;
//! * [`serve`]: the service's router on a real loopback socket;
//! * [`tenants`]: tenants connected to the NextEngine simulator, and fixture
//!   tenants with fixed ids for recorded events;
//! * [`mail`]: the outbox's mails, parsed;
//! * [`cli`]: the operator binaries, offline, their output checked;
//! * [`fixtures`]: batches in the states operators act on, made through the
//!   store's own steps.

pub mod cli;
pub mod fixtures;
pub mod mail;
pub mod serve;
pub mod tenants;
pub mod wiring;

pub use mail::{SentMail, mails_in};
pub use serve::Server;
pub use wiring::{CLIENT_ID, CLIENT_SECRET, Contexts, PLATFORM_SECRET, Wiring, admin_of};
