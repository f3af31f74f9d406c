//! The conformance suites: what every adapter of a port must do, written once
//! against the port's traits, so the embedded adapters and the AWS ones are held
//! to the same promises (design.md §7: nothing lost, nothing counted twice,
//! tenants isolated). One module per port:
//!
//! * [`storage`] — the `Storage` traits, one file per store;
//! * [`blobs`] — `BlobStore`.
//!
//! An adapter's test file supplies an async function that returns a fresh adapter
//! and expands the port's macro (one `#[tokio::test]` per check), or calls the
//! module's `run_all`:
//!
//! ```text
//! async fn fresh() -> Fresh<SqliteStore> {
//!     let dir = tempfile::tempdir().unwrap();
//!     let first = SqliteStore::open(dir.path()).unwrap();
//!     let second = SqliteStore::open(dir.path()).unwrap();
//!     Fresh::new(first, second).keeping(dir)
//! }
//! sne_conformance::storage_tests!(fresh);
//! ```
//!
//! Every check panics with a message on the first broken promise. Checks use
//! ids of their own, so a backend that cannot be emptied cheaply may hand the
//! same storage to several checks, as long as each gets new tenant ids (use
//! [`Fresh::tenant`] for that).

pub mod blobs;
pub mod storage;

use sne_domain::TenantId;
use std::any::Any;
use std::sync::Arc;

/// An empty storage under test.
pub struct Fresh<S> {
    /// The handle most checks use.
    pub first: Arc<S>,
    /// An independent handle onto the same data (its own connection or client),
    /// for the checks that race two processes.
    pub second: Arc<S>,
    prefix: String,
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

impl<S> Fresh<S> {
    pub fn new(first: S, second: S) -> Self {
        Self::from_arcs(Arc::new(first), Arc::new(second))
    }

    pub fn from_arcs(first: Arc<S>, second: Arc<S>) -> Self {
        Fresh {
            first,
            second,
            prefix: String::new(),
            _keep: None,
        }
    }

    /// Keeps `guard` (a temp dir, a table deleter…) alive as long as the storage.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep = Some(Box::new(guard));
        self
    }

    /// Prefixes every tenant id and contract id the checks create, for backends
    /// whose storage is shared between checks instead of made fresh.
    pub fn with_tenant_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The tenant id a check calls `name`.
    pub fn tenant(&self, name: &str) -> TenantId {
        TenantId(format!("{}{name}", self.prefix))
    }
}
