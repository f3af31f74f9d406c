//! Blobs as files under a root directory, one file per key, so the keys are the
//! same as in S3 and an operator can look at the CSVs with any tool.

use async_trait::async_trait;
use sne_ports::{BlobStore, StoreError, StoreResult};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// The directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBlobStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`. Keys are built from tenant ids and dates, but they
    /// also arrive from download links, so anything that could leave the root (or
    /// alias another key) is refused rather than normalised.
    pub fn path_of(&self, key: &str) -> StoreResult<PathBuf> {
        let bad = |why: &str| StoreError::Unavailable(format!("invalid blob key {key:?}: {why}"));
        if key.is_empty() {
            return Err(bad("empty"));
        }
        if key.contains('\\') {
            return Err(bad("backslash"));
        }
        if key.starts_with('/') {
            return Err(bad("absolute"));
        }
        if key.chars().any(char::is_control) {
            return Err(bad("control character"));
        }
        let mut path = self.root.clone();
        for segment in key.split('/') {
            match segment {
                "" => return Err(bad("empty segment")),
                "." | ".." => return Err(bad("relative segment")),
                // A leading dot is how the temp files of unfinished writes are named.
                s if s.starts_with('.') => return Err(bad("hidden segment")),
                // `C:` would make the path absolute on Windows.
                s if s.contains(':') => return Err(bad("colon")),
                s => path.push(s),
            }
        }
        Ok(path)
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// Temp file in the target directory, then rename: a reader sees the old file or
/// the whole new one, never a half-written CSV, even across processes.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Unavailable(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let (temp_path, mut file) = tempfile_in(dir)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    written
        .and_then(|()| std::fs::rename(&temp_path, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp_path);
            io("writing", path, e)
        })
}

fn tempfile_in(dir: &Path) -> StoreResult<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io("creating", &path, e))?;
    Ok((path, file))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("file task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put_blob(&self, key: &str, bytes: &[u8], _content_type: &str) -> StoreResult<()> {
        let path = self.path_of(key)?;
        let bytes = bytes.to_vec();
        blocking(move || write_atomically(&path, &bytes)).await
    }

    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let path = self.path_of(key)?;
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path, e)),
        })
        .await
    }

    async fn download_url(
        &self,
        key: &str,
        _expires_in: std::time::Duration,
    ) -> StoreResult<Option<String>> {
        self.path_of(key)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_under_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path().join("blobs"));
        let key = "tenants/t1/uploads/2026/11/27/b1.csv";
        assert_eq!(store.get_blob(key).await.unwrap(), None);
        store
            .put_blob(key, b"syohin_code,zaiko_su\r\n", "text/csv")
            .await
            .unwrap();
        assert_eq!(
            store.get_blob(key).await.unwrap().as_deref(),
            Some(&b"syohin_code,zaiko_su\r\n"[..])
        );
        assert!(dir.path().join("blobs").join(key).is_file());
        store.put_blob(key, b"new", "text/csv").await.unwrap();
        assert_eq!(store.get_blob(key).await.unwrap(), Some(b"new".to_vec()));
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path().join("blobs/tenants/t1/uploads/2026/11/27"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("b1.csv")]);
        assert_eq!(
            store
                .download_url(key, std::time::Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn keys_that_could_leave_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path().join("blobs"));
        for key in [
            "",
            "/etc/passwd",
            "../outside.csv",
            "tenants/../../outside.csv",
            "tenants/./t1.csv",
            "tenants//t1.csv",
            "tenants/t1/",
            "tenants\\t1.csv",
            "tenants/.tmp-x",
            "C:/x.csv",
            "tenants/t1\n.csv",
        ] {
            assert!(
                matches!(
                    store.put_blob(key, b"x", "text/csv").await,
                    Err(StoreError::Unavailable(_))
                ),
                "put {key:?} must be refused"
            );
            assert!(store.get_blob(key).await.is_err(), "get {key:?}");
            assert!(
                store
                    .download_url(key, std::time::Duration::from_secs(1))
                    .await
                    .is_err(),
                "url {key:?}"
            );
        }
        assert!(!dir.path().join("outside.csv").exists());
    }
}
