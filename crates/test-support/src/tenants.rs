//! Tenants as tests need them: connected to the NextEngine simulator, or stored
//! with fixed ids and codes so recorded events can name them.

use sne_domain::TenantId;
use sne_domain::tenant::{MappingMode, NeTokens, OrderImportSettings, StockMaster, Tenant};
use sne_service::Core;
use sne_service::tenants::replace_ne_tokens;
use sne_simulators::nextengine::NeSim;

/// Gives `tenant` a token pair the simulator issued for `company`, as the
/// sign-in flow would.
pub async fn connect_to_nextengine(ctx: &Core, tenant: &TenantId, ne: &NeSim, company: &str) {
    let pair = ne.issue_tokens(company);
    replace_ne_tokens(
        ctx,
        tenant,
        &NeTokens {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            access_token_end: pair.access_token_end_date,
            refresh_token_end: pair.refresh_token_end_date,
        },
    )
    .await
    .expect("tokens");
}

/// Stores a tenant with the given id, contract and お客様専用コード, as recorded
/// events expect them.
pub async fn fixture_tenant(ctx: &Core, id: &str, contract_id: &str, code: &str) -> Tenant {
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
        stock_history: Default::default(),
        created_at: ctx.clock.now(),
        version: 0,
    };
    ctx.storage
        .create_tenant(&tenant)
        .await
        .expect("fixture tenant");
    tenant
}
