//! What every [`BlobStore`] must do: the uploaded CSVs and the report attachments
//! live there, and a report mail links to them long after the run that wrote them.
//!
//! The adapter's test supplies an async function returning an empty store as
//! [`FreshBlobs`] and expands [`blob_store_tests!`].

use sne_ports::BlobStore;
use std::any::Any;
use std::sync::Arc;

/// An empty blob store under test.
pub struct FreshBlobs<B> {
    pub store: Arc<B>,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

impl<B> FreshBlobs<B> {
    pub fn new(store: B) -> Self {
        FreshBlobs {
            store: Arc::new(store),
            _keep: None,
        }
    }

    /// Keeps `guard` (a temp dir, a bucket…) alive as long as the store.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }
}

/// A key as the service writes them: tenant, date, a Japanese file name with a space.
const CSV_KEY: &str = "tenants/t-1/uploads/2026/11/27/在庫 b1.csv";

/// Bytes come back exactly as written, whatever they are, and a second write of a
/// key replaces the first.
pub async fn blobs_round_trip_exactly<B: BlobStore + 'static>(fresh: FreshBlobs<B>) {
    let store = fresh.store.clone();
    let csv = "syohin_code,zaiko_su\r\nA-1,3\r\n".as_bytes();
    store.put_blob(CSV_KEY, csv, "text/csv").await.unwrap();
    assert_eq!(store.get_blob(CSV_KEY).await.unwrap().as_deref(), Some(csv));

    // Shift_JIS mapping uploads and gzip files: every byte value, past 64 KiB.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store
        .put_blob(CSV_KEY, &binary, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(
        store.get_blob(CSV_KEY).await.unwrap(),
        Some(binary),
        "a second write replaces the first"
    );

    store
        .put_blob("tenants/t-1/empty.csv", b"", "text/csv")
        .await
        .unwrap();
    assert_eq!(
        store.get_blob("tenants/t-1/empty.csv").await.unwrap(),
        Some(vec![]),
        "an empty blob exists and is empty"
    );
}

/// A key never written is absent, not an error; neither a prefix nor an
/// extension of a written key finds it.
pub async fn missing_keys_are_absent<B: BlobStore + 'static>(fresh: FreshBlobs<B>) {
    let store = fresh.store.clone();
    assert_eq!(store.get_blob("tenants/t-2/none.csv").await.unwrap(), None);
    store
        .put_blob("tenants/t-2/uploads/b1.csv", b"x", "text/csv")
        .await
        .unwrap();
    for near in [
        "tenants/t-2/uploads/b1",
        "tenants/t-2/uploads/b1.csv.gz",
        "tenants/t-22/uploads/b1.csv",
        "tenants/t-2/uploads/B1.csv",
    ] {
        assert_eq!(store.get_blob(near).await.unwrap(), None, "{near}");
    }
}

/// Two writers of one key (two runs re-sending the same frozen file): a reader
/// sees one whole value, never a mix or a torn write.
pub async fn concurrent_writes_of_a_key_leave_one_whole_value<B: BlobStore + 'static>(
    fresh: FreshBlobs<B>,
) {
    let store = fresh.store.clone();
    let key = "tenants/t-3/uploads/b1.csv";
    let a = vec![b'a'; 200_000];
    let b = vec![b'b'; 200_000];
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|bytes| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    store.put_blob(key, &bytes, "text/csv").await.unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                if let Some(seen) = store.get_blob(key).await.unwrap() {
                    assert!(
                        seen == a || seen == b,
                        "a torn value of {} bytes",
                        seen.len()
                    );
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    reader.await.unwrap();
    let last = store.get_blob(key).await.unwrap().expect("written");
    assert!(last == a || last == b);
}

/// A download link, where the backend gives one, is for that key only and names
/// its expiry; no link is ever handed out for a key that was never written.
pub async fn download_links_name_their_key<B: BlobStore + 'static>(fresh: FreshBlobs<B>) {
    let store = fresh.store.clone();
    store.put_blob(CSV_KEY, b"x", "text/csv").await.unwrap();
    let ten_minutes = std::time::Duration::from_secs(600);
    match store.download_url(CSV_KEY, ten_minutes).await.unwrap() {
        None => {} // served by the admin screen itself (embedded)
        Some(url) => {
            assert!(url.starts_with("http"), "{url}");
            assert!(url.contains("b1.csv"), "the link names the file: {url}");
        }
    }
}

/// Runs every check, each on its own store from `make`.
pub async fn run_all<B, F, Fut>(make: F)
where
    B: BlobStore + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = FreshBlobs<B>>,
{
    blobs_round_trip_exactly(make().await).await;
    missing_keys_are_absent(make().await).await;
    concurrent_writes_of_a_key_leave_one_whole_value(make().await).await;
    download_links_name_their_key(make().await).await;
}

/// One `#[tokio::test]` per check. `$fresh` is the path of an
/// `async fn() -> FreshBlobs<YourBlobStore>`.
#[macro_export]
macro_rules! blob_store_tests {
    ($fresh:path) => {
        $crate::blob_store_tests!(@each $fresh;
            blobs_round_trip_exactly,
            missing_keys_are_absent,
            concurrent_writes_of_a_key_leave_one_whole_value,
            download_links_name_their_key,
        );
    };
    (@each $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::blobs::$check($fresh().await).await;
            }
        )*
    };
}
