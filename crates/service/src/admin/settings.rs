//! `/settings`: notification addresses, counted stores, stock master, mapping mode,
//! and the お客様専用コード.

use super::session::Session;
use super::views::{Layout, SettingsPage};
use super::{AdminError, AdminResult, Flash, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::tenants::new_customer_code;
use crate::wording;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use sne_domain::tenant::{MappingMode, StockMaster, Tenant};
use sne_ports::{PairSource, StoreError};

pub fn mapping_mode_key(mode: MappingMode) -> &'static str {
    match mode {
        MappingMode::ProductId => "product_id",
        MappingMode::ProductCode => "product_code",
        MappingMode::Table => "table",
    }
}

fn stock_master_key(master: StockMaster) -> &'static str {
    match master {
        StockMaster::Smaregi => "smaregi",
        StockMaster::NextEngine => "nextengine",
    }
}

async fn render(
    ctx: &AdminContext,
    session: &Session,
    headers: &HeaderMap,
    draft: Option<(&SettingsForm, String)>,
) -> AdminResult {
    let tenant = &session.tenant;
    let pair_count = ctx
        .storage
        .product_pairs(&tenant.id, PairSource::Table)
        .await?
        .len();
    let (flash, clear) = take_flash(ctx, headers);
    let intake = crate::platform::migration::intake_state(ctx, &tenant.id)
        .await
        .map_err(|e| sne_ports::StoreError::Unavailable(e.to_string()))?;
    let mut view = SettingsPage {
        layout: Layout {
            title: wording::SETTINGS_TITLE,
            active: "settings",
            logged_in: true,
            tenant_name: tenant.name.clone(),
            csrf: session.csrf.clone(),
            flash,
        },
        notify_emails: tenant.notify_emails.join("\n"),
        counted_stores: tenant
            .counted_stores
            .as_ref()
            .map(|s| s.join(","))
            .unwrap_or_default(),
        stock_master: stock_master_key(tenant.stock_master),
        mapping_mode: mapping_mode_key(tenant.mapping_mode),
        contract_id: tenant.contract_id.clone(),
        customer_code: tenant.customer_code.clone(),
        pair_count,
        stock_history_since: crate::stock_history::history_mode_since(ctx, tenant)
            .await
            .map(super::jst),
        has_smaregi_api: tenant.smaregi_api.is_some(),
        on_platform: intake.intake == "platform",
        platform_boundary: intake.boundary_id,
        platform_watermark: intake.watermark,
        platform_contract: intake.platform_contract,
        error: None,
    };
    let mut status = StatusCode::OK;
    // A refused form comes back as typed, with what is wrong.
    if let Some((form, error)) = draft {
        view.notify_emails = form.notify_emails.clone();
        view.counted_stores = form.counted_stores.clone();
        view.error = Some(error);
        status = StatusCode::BAD_REQUEST;
    }
    let mut response = page(ctx, &view, clear)?;
    *response.status_mut() = status;
    Ok(response)
}

pub async fn show(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
) -> AdminResult {
    render(&ctx, &session, &headers, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SettingsForm {
    csrf: Option<String>,
    notify_emails: String,
    counted_stores: String,
    stock_master: String,
    mapping_mode: String,
}

fn looks_like_email(address: &str) -> bool {
    let mut parts = address.split('@');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
                && address.chars().all(|c| c.is_ascii_graphic()))
}

struct Validated {
    notify_emails: Vec<String>,
    counted_stores: Option<Vec<String>>,
    stock_master: StockMaster,
    mapping_mode: MappingMode,
}

fn validate(form: &SettingsForm) -> Result<Validated, String> {
    let separators = |c: char| c == ',' || c == '、' || c == ';' || c.is_whitespace();
    let notify_emails: Vec<String> = form
        .notify_emails
        .split(separators)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if notify_emails.is_empty() {
        return Err(wording::NOTIFY_EMAILS_MISSING.into());
    }
    if let Some(bad) = notify_emails.iter().find(|e| !looks_like_email(e)) {
        return Err(wording::notify_email_malformed(bad));
    }
    if notify_emails.len() > 20 {
        return Err(wording::NOTIFY_EMAILS_TOO_MANY.into());
    }
    let stores: Vec<String> = form
        .counted_stores
        .split(separators)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = stores
        .iter()
        .find(|s| !s.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(wording::counted_store_not_digits(bad));
    }
    let stock_master = match form.stock_master.as_str() {
        "smaregi" => StockMaster::Smaregi,
        "nextengine" => StockMaster::NextEngine,
        _ => return Err(wording::STOCK_MASTER_MISSING.into()),
    };
    let mapping_mode = match form.mapping_mode.as_str() {
        "product_id" => MappingMode::ProductId,
        "product_code" => MappingMode::ProductCode,
        "table" => MappingMode::Table,
        _ => return Err(wording::MAPPING_MODE_MISSING.into()),
    };
    Ok(Validated {
        notify_emails,
        counted_stores: (!stores.is_empty()).then_some(stores),
        stock_master,
        mapping_mode,
    })
}

/// Applies `change` to the freshest tenant, retrying when another writer (the order
/// import form, a second browser tab) bumped the version in between.
pub async fn update_tenant(
    ctx: &AdminContext,
    session: &Session,
    change: impl Fn(&mut Tenant),
) -> Result<Tenant, AdminError> {
    for _ in 0..5 {
        let mut tenant = ctx
            .storage
            .tenant(&session.tenant.id)
            .await?
            .ok_or(AdminError::LoginRequired)?;
        change(&mut tenant);
        match ctx.storage.update_tenant(&tenant).await {
            Ok(saved) => return Ok(saved),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::Internal(
        "tenant kept changing while saving".into(),
    ))
}

pub async fn save(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let valid = match validate(&form) {
        Ok(v) => v,
        Err(error) => return render(&ctx, &session, &headers, Some((&form, error))).await,
    };
    let pairs = ctx
        .storage
        .product_pairs(&session.tenant.id, PairSource::Table)
        .await?;
    if valid.mapping_mode == MappingMode::Table && pairs.is_empty() {
        return render(
            &ctx,
            &session,
            &headers,
            Some((&form, wording::MAPPING_TABLE_MISSING.into())),
        )
        .await;
    }
    let saved = update_tenant(&ctx, &session, |t| {
        t.notify_emails = valid.notify_emails.clone();
        t.counted_stores = valid.counted_stores.clone();
        t.stock_master = valid.stock_master;
        t.mapping_mode = valid.mapping_mode;
    })
    .await?;
    tracing::info!(tenant = %saved.id, "admin settings saved");
    let mut flash = Flash::ok(wording::SETTINGS_SAVED);
    if saved.mapping_mode == MappingMode::ProductCode && saved.smaregi_api.is_none() {
        flash
            .lines
            .push(wording::PRODUCT_CODE_NEEDS_SMAREGI_API.into());
    }
    Ok(redirect_with(&ctx, "/settings", flash))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RegenerateForm {
    csrf: Option<String>,
    confirm: String,
}

/// The old code stops working with this write: the webhook compares against the
/// stored tenant on every push.
pub async fn regenerate_code(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<RegenerateForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    if form.confirm != "1" {
        return Ok(redirect_with(
            &ctx,
            "/settings",
            Flash::error(wording::CUSTOMER_CODE_NOT_CONFIRMED),
        ));
    }
    let code = new_customer_code();
    let saved = update_tenant(&ctx, &session, |t| t.customer_code = code.clone()).await?;
    tracing::info!(tenant = %saved.id, "customer code regenerated");
    let mut flash = Flash::ok(wording::CUSTOMER_CODE_REGENERATED);
    flash
        .lines
        .push(wording::CUSTOMER_CODE_CHANGE_IN_SMAREGI.into());
    Ok(redirect_with(&ctx, "/settings", flash))
}

#[derive(Deserialize)]
pub struct StockHistoryForm {
    csrf: Option<String>,
    on: String,
}

/// Switches reading Smaregi's StockHistory on or off (design.md §3's preferred path).
pub async fn stock_history(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<StockHistoryForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let flash =
        match crate::stock_history::set_history_mode(&ctx, &session.tenant, form.on == "1").await {
            Ok(message) => Flash::ok(message),
            Err(e) => Flash::error(e.to_string()),
        };
    Ok(redirect_with(&ctx, "/settings", flash))
}

#[derive(Deserialize)]
pub struct IntakeForm {
    csrf: Option<String>,
    to: String,
}

/// 取り込み経路: the old API or the スマレジ・プラットフォームAPI, switched at a
/// history-id boundary (`platform::migration`).
pub async fn intake(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<IntakeForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let to = match form.to.as_str() {
        "platform" => sne_domain::history_mode::HistorySource::Platform,
        "old" => sne_domain::history_mode::HistorySource::OldApi,
        _ => {
            return Ok(redirect_with(
                &ctx,
                "/settings",
                Flash::error(wording::INTAKE_UNKNOWN_CHOICE.to_string()),
            ));
        }
    };
    let flash = match crate::platform::switch_intake(&ctx, &session.tenant, to).await {
        Ok(message) => Flash::ok(message),
        Err(e) => Flash::error(e.to_string()),
    };
    Ok(redirect_with(&ctx, "/settings", flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(emails: &str, stores: &str) -> SettingsForm {
        SettingsForm {
            csrf: None,
            notify_emails: emails.into(),
            counted_stores: stores.into(),
            stock_master: "smaregi".into(),
            mapping_mode: "product_id".into(),
        }
    }

    #[test]
    fn addresses_and_stores_are_split_and_checked() {
        let v = validate(&form("a@x.jp\r\n b@y.jp ", "1, 2\n3")).unwrap();
        assert_eq!(v.notify_emails, vec!["a@x.jp", "b@y.jp"]);
        assert_eq!(
            v.counted_stores,
            Some(vec!["1".into(), "2".into(), "3".into()])
        );
        assert_eq!(validate(&form("a@x.jp", "")).unwrap().counted_stores, None);
        assert!(validate(&form("", "")).is_err());
        assert!(validate(&form("not-an-address", "")).is_err());
        assert!(validate(&form("a@x.jp", "本店")).is_err());
    }
}
