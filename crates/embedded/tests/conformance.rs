//! The shared conformance suites on the embedded adapters: storage on
//! `SqliteStore` (the second handle is a second `open` of the same directory, its
//! own connection, as the `serve` and `run upload` processes have) and blobs on
//! `FsBlobStore`.

use sne_conformance::Fresh;
use sne_embedded::SqliteStore;

async fn fresh() -> Fresh<SqliteStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = SqliteStore::open(dir.path()).expect("open");
    let second = SqliteStore::open(dir.path()).expect("open again");
    Fresh::new(first, second).keeping(dir)
}

sne_conformance::storage_tests!(fresh);

/// `run_all` is what an adapter without the macro calls; it must pass as a whole too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    sne_conformance::storage::run_all(fresh).await;
}

mod blobs {
    use sne_conformance::blobs::FreshBlobs;
    use sne_embedded::FsBlobStore;

    async fn fresh() -> FreshBlobs<FsBlobStore> {
        let dir = tempfile::tempdir().expect("temp dir");
        FreshBlobs::new(FsBlobStore::new(dir.path().join("blobs"))).keeping(dir)
    }

    sne_conformance::blob_store_tests!(fresh);
}
