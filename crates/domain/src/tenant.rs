use crate::history_mode::HistoryMode;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Our own identifier of a customer. Never derived from anything the customer
/// sends, so a tenant id in a URL or key cannot be guessed from a contract id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantId(pub String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which system holds the truth for stock (design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StockMaster {
    /// Default: every Smaregi change except 出荷 is reported with the rules table.
    #[default]
    Smaregi,
    /// Only sales-driven changes (売上, 返品) are reported.
    NextEngine,
}

/// How a Smaregi product becomes a NextEngine goods code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MappingMode {
    #[default]
    ProductId,
    ProductCode,
    Table,
}

/// Credentials of the tenant's Smaregi API受信 (old API). Debug never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmaregiCredentials {
    pub contract_id: String,
    pub access_token: String,
}

impl fmt::Debug for SmaregiCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmaregiCredentials")
            .field("contract_id", &self.contract_id)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OrderImportSettings {
    pub enabled: bool,
    /// 取り込み先スマレジ側店舗ID.
    pub store_id: Option<String>,
    /// Orders NextEngine received before this instant are never imported.
    pub enabled_at: Option<DateTime<Utc>>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Shop name, used in report subjects and as the shipment recipient name.
    pub name: String,
    /// Smaregi 契約ID: how a push finds its tenant.
    pub contract_id: String,
    /// お客様専用コード: the shared secret Smaregi sends with every push.
    pub customer_code: String,
    pub admin_email: String,
    pub admin_password_hash: String,
    pub notify_emails: Vec<String>,
    pub stock_master: StockMaster,
    /// Smaregi stores whose changes count; `None` = all stores.
    pub counted_stores: Option<Vec<String>>,
    pub mapping_mode: MappingMode,
    pub smaregi_api: Option<SmaregiCredentials>,
    pub order_import: OrderImportSettings,
    /// Every period the tenant's changes were read from Smaregi's `StockHistory`
    /// (its 在庫変動履歴 setting). Empty in records written before the setting
    /// moved here; those read it from the legacy cursor until the next switch.
    #[serde(default)]
    pub stock_history: HistoryMode,
    pub created_at: DateTime<Utc>,
    /// Bumped by every settings write; stores refuse writes based on an older version.
    pub version: u64,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("contract_id", &self.contract_id)
            .field("customer_code", &"<redacted>")
            .field("admin_email", &self.admin_email)
            .field("notify_emails", &self.notify_emails)
            .field("stock_master", &self.stock_master)
            .field("counted_stores", &self.counted_stores)
            .field("mapping_mode", &self.mapping_mode)
            .field("smaregi_api", &self.smaregi_api)
            .field("order_import", &self.order_import)
            .field("stock_history", &self.stock_history)
            .field("version", &self.version)
            .finish()
    }
}

/// NextEngine token pair with its expiry dates as NextEngine gives them (Japan time).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub access_token_end: NaiveDateTime,
    pub refresh_token_end: NaiveDateTime,
}

impl fmt::Debug for NeTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("access_token_end", &self.access_token_end)
            .field("refresh_token_end", &self.refresh_token_end)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let creds = SmaregiCredentials {
            contract_id: "sb_abc".into(),
            access_token: "very-secret".into(),
        };
        let text = format!("{creds:?}");
        assert!(text.contains("sb_abc"));
        assert!(!text.contains("very-secret"));
        let tokens = NeTokens {
            access_token: "acc-secret".into(),
            refresh_token: "ref-secret".into(),
            access_token_end: chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            refresh_token_end: chrono::NaiveDate::from_ymd_opt(2026, 1, 3)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        };
        let text = format!("{tokens:?}");
        assert!(!text.contains("acc-secret") && !text.contains("ref-secret"));
    }
}
