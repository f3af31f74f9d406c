//! Tenant lifecycle: creation (with its お客様専用コード) and NextEngine tokens.

use crate::Core;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rand::Rng;
use rand::distr::Alphanumeric;
use sne_domain::TenantId;
use sne_domain::tenant::{MappingMode, NeTokens, OrderImportSettings, StockMaster, Tenant};
use sne_ports::StoreError;

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub contract_id: String,
    pub admin_email: String,
    pub admin_password: String,
    pub notify_emails: Vec<String>,
    pub counted_stores: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{0}")]
    Invalid(String),
    #[error("{}", crate::wording::tenant_contract_taken(.0))]
    DuplicateContract(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh お客様専用コード: long enough that guessing is hopeless, only characters
/// that survive copy and paste into Smaregi's 個別設定.
pub fn new_customer_code() -> String {
    random_token(32)
}

pub fn hash_password(password: &str) -> String {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn looks_like_email(address: &str) -> bool {
    let mut parts = address.split('@');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace))
}

pub async fn create_tenant(ctx: &Core, new: NewTenant) -> Result<Tenant, TenantError> {
    let contract_id = new.contract_id.trim().to_string();
    if contract_id.is_empty() || !contract_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(TenantError::Invalid(
            crate::wording::TENANT_CONTRACT_ID_INVALID.into(),
        ));
    }
    if !looks_like_email(new.admin_email.trim()) {
        return Err(TenantError::Invalid(
            crate::wording::TENANT_ADMIN_EMAIL_INVALID.into(),
        ));
    }
    if new.notify_emails.is_empty() || !new.notify_emails.iter().all(|e| looks_like_email(e.trim()))
    {
        return Err(TenantError::Invalid(
            crate::wording::TENANT_NOTIFY_EMAILS_INVALID.into(),
        ));
    }
    if new.admin_password.chars().count() < 8 {
        return Err(TenantError::Invalid(
            crate::wording::TENANT_PASSWORD_TOO_SHORT.into(),
        ));
    }
    let tenant = Tenant {
        id: TenantId(format!("t_{}", random_token(12).to_lowercase())),
        name: if new.name.trim().is_empty() {
            contract_id.clone()
        } else {
            new.name.trim().to_string()
        },
        contract_id: contract_id.clone(),
        customer_code: new_customer_code(),
        admin_email: new.admin_email.trim().to_string(),
        admin_password_hash: hash_password(&new.admin_password),
        notify_emails: new
            .notify_emails
            .iter()
            .map(|e| e.trim().to_string())
            .collect(),
        stock_master: StockMaster::Smaregi,
        counted_stores: new.counted_stores,
        mapping_mode: MappingMode::ProductId,
        smaregi_api: None,
        order_import: OrderImportSettings::default(),
        stock_history: Default::default(),
        created_at: ctx.clock.now(),
        version: 0,
    };
    match ctx.storage.create_tenant(&tenant).await {
        Ok(()) => Ok(tenant),
        Err(StoreError::Conflict(_)) => Err(TenantError::DuplicateContract(contract_id)),
        Err(e) => Err(e.into()),
    }
}

/// Stores tokens an operator already holds (or that `/api_neauth` just gave),
/// replacing whatever was there.
pub async fn replace_ne_tokens(
    ctx: &Core,
    tenant: &TenantId,
    tokens: &NeTokens,
) -> Result<(), TenantError> {
    // A concurrent rotation may slip in between read and swap; retry until our
    // write lands on what we read, since a fresh sign-in must win.
    for _ in 0..5 {
        let current = ctx.storage.ne_tokens(tenant).await?;
        let expected = current.as_ref().map(|t| t.access_token.as_str());
        if ctx.storage.swap_ne_tokens(tenant, expected, tokens).await? {
            return Ok(());
        }
    }
    Err(TenantError::Store(StoreError::Conflict(
        "tokens kept changing while being replaced".into(),
    )))
}

/// The end of NextEngine's sign-in: exchanges the callback's `uid` and `state`
/// for tokens and stores them for the tenant.
pub async fn connect_nextengine(
    ctx: &Core,
    tenant: &TenantId,
    uid: &str,
    state: &str,
) -> Result<sne_ports::nextengine::NeAuth, ConnectError> {
    let auth = ctx.nextengine.authorize(uid, state).await?;
    replace_ne_tokens(ctx, tenant, &auth.tokens).await?;
    Ok(auth)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{}", crate::wording::nextengine_auth_failed(.0))]
    NextEngine(#[from] sne_ports::nextengine::NeError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn customer_codes_are_long_and_distinct() {
        let a = new_customer_code();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_customer_code());
    }

    #[test]
    fn email_shape_check() {
        assert!(looks_like_email("shop@example.com"));
        assert!(!looks_like_email("shop@example"));
        assert!(!looks_like_email("shop example@x.com"));
        assert!(!looks_like_email("a@b@c.com"));
    }
}
