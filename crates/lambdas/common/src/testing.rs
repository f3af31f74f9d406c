//! Test support: the same Context shape on embedded storage, and tenants with
//! fixed ids and codes so recorded events can name them.

use sne_domain::TenantId;
use sne_domain::tenant::{MappingMode, OrderImportSettings, StockMaster, Tenant};
use sne_embedded::{EmlMailer, FsBlobStore, SqliteStore};
use sne_nextengine::{NeClient, NeClientConfig};
use sne_ports::SystemClock;
use sne_service::trigger::queued_trigger;
use sne_service::{Context, ServiceConfig};
use sne_smaregi::SmaregiClient;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Nothing listens there: handler tests that reach an external API fail loudly.
const UNREACHABLE: &str = "http://127.0.0.1:9";

/// A Context on SQLite in `dir`, with both API clients pointed at `ne_url` /
/// `smaregi_url` (or nowhere).
pub fn embedded_context(dir: &Path, ne_url: Option<&str>, smaregi_url: Option<&str>) -> Context {
    let store = Arc::new(SqliteStore::open(dir).expect("embedded store"));
    let mut ne_config = NeClientConfig::new(
        "test-client",
        "test-secret",
        "http://127.0.0.1/nextengine/callback",
    );
    ne_config.api_base_url = ne_url.unwrap_or(UNREACHABLE).to_string();
    ne_config.sign_in_base_url = ne_config.api_base_url.clone();
    let (trigger, _requests) = queued_trigger();
    Context {
        storage: store.clone(),
        blobs: Arc::new(FsBlobStore::new(dir.join("blobs"))),
        mailer: Arc::new(EmlMailer::new(dir.join("outbox"))),
        clock: Arc::new(SystemClock),
        nextengine: Arc::new(NeClient::new(ne_config, store)),
        smaregi: Arc::new(SmaregiClient::new(
            smaregi_url.unwrap_or(UNREACHABLE),
            sne_smaregi::RetryPolicy::default(),
            Duration::from_secs(5),
        )),
        trigger: Arc::new(trigger),
        config: ServiceConfig::default(),
    }
}

/// Stores a tenant with the given id, contract and お客様専用コード, as recorded
/// events expect them.
pub async fn fixture_tenant(ctx: &Context, id: &str, contract_id: &str, code: &str) -> Tenant {
    let tenant = Tenant {
        id: TenantId(id.to_string()),
        name: format!("テスト商店 {contract_id}"),
        contract_id: contract_id.to_string(),
        customer_code: code.to_string(),
        admin_email: format!("admin@{contract_id}.example.com"),
        admin_password_hash: sne_service::tenants::hash_password("admin-password"),
        notify_emails: vec![format!("notify@{contract_id}.example.com")],
        stock_master: StockMaster::Smaregi,
        counted_stores: None,
        mapping_mode: MappingMode::ProductId,
        smaregi_api: None,
        order_import: OrderImportSettings::default(),
        created_at: chrono::Utc::now(),
        version: 0,
    };
    ctx.storage
        .create_tenant(&tenant)
        .await
        .expect("fixture tenant");
    tenant
}
