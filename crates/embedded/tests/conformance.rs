//! The shared storage conformance suite, run against `SqliteStore`. The second
//! handle is a second `open` of the same directory: its own connection, as the
//! `serve` and `run upload` processes have.

use sne_embedded::SqliteStore;
use sne_ports::conformance::{self, Fresh};

async fn fresh() -> Fresh<SqliteStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = SqliteStore::open(dir.path()).expect("open");
    let second = SqliteStore::open(dir.path()).expect("open again");
    Fresh::new(first, second).keeping(dir)
}

sne_ports::storage_conformance_tests!(fresh);

/// `run_all` is what an adapter without the macro calls; it must pass as a whole too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    conformance::run_all(fresh).await;
}
