//! Embedded adapters of the ports: everything the local binary needs lives under one
//! data directory, so `smaregi-ne` runs without any cloud service.
//!
//! * [`SqliteStore`]: every storage trait, in `<data_dir>/smaregi-ne.sqlite3`;
//!   several processes may open the same file at once.
//! * [`FsBlobStore`]: blobs as files, with the same keys as in S3.
//! * [`EmlMailer`]: mails as `.eml` files in an outbox directory.

mod blob;
mod mailer;
mod sqlite;

pub use blob::FsBlobStore;
pub use mailer::EmlMailer;
pub use sqlite::{DB_FILE_NAME, SCHEMA_VERSION, SqliteStore};
