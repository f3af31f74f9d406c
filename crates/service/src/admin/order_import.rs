//! 「(β版)ネクストエンジン受注数取り込み」: the manual's form over
//! `orders::configure_order_import`, which trims, checks with Smaregi and saves.

use super::session::Session;
use super::views::{Layout, OrderImportPage};
use super::{AdminError, AdminResult, Flash, jst, page, redirect_with, take_flash};
use crate::AdminContext;
use crate::orders::{OrderImportError, OrderImportForm, configure_order_import};
use crate::wording;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

fn render(
    ctx: &AdminContext,
    session: &Session,
    headers: &HeaderMap,
    draft: Option<(&ImportForm, String)>,
) -> AdminResult {
    let tenant = &session.tenant;
    let (flash, clear) = take_flash(ctx, headers);
    let mut view = OrderImportPage {
        layout: Layout {
            title: wording::ORDER_IMPORT_TITLE,
            active: "order-import",
            logged_in: true,
            tenant_name: tenant.name.clone(),
            csrf: session.csrf.clone(),
            flash,
        },
        enabled: tenant.order_import.enabled,
        contract_id: tenant
            .smaregi_api
            .as_ref()
            .map(|c| c.contract_id.clone())
            .unwrap_or_default(),
        store_id: tenant.order_import.store_id.clone().unwrap_or_default(),
        token_saved: tenant.smaregi_api.is_some(),
        enabled_since: tenant
            .order_import
            .enabled
            .then_some(tenant.order_import.enabled_at)
            .flatten()
            .map(jst),
        error: None,
    };
    let mut status = StatusCode::OK;
    // The refused input comes back for correction, except the token: secrets are
    // never written into a page.
    if let Some((form, error)) = draft {
        view.enabled = form.enabled == "1";
        view.contract_id = form.contract_id.clone();
        view.store_id = form.store_id.clone();
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
    render(&ctx, &session, &headers, None)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ImportForm {
    csrf: Option<String>,
    enabled: String,
    contract_id: String,
    store_id: String,
    access_token: String,
}

pub async fn save(
    State(ctx): State<AdminContext>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<ImportForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    let enabled = match form.enabled.as_str() {
        "1" => true,
        "0" => false,
        _ => {
            return render(
                &ctx,
                &session,
                &headers,
                Some((&form, wording::ORDER_IMPORT_CHOOSE.into())),
            );
        }
    };
    // Re-saving (e.g. another store) should not force the operator to paste the
    // token again; an empty field means "keep the saved one".
    let access_token = match (&session.tenant.smaregi_api, form.access_token.trim()) {
        (Some(saved), "") => saved.access_token.clone(),
        _ => form.access_token.clone(),
    };
    let result = configure_order_import(
        &ctx,
        &session.tenant.id,
        OrderImportForm {
            enabled,
            contract_id: form.contract_id.clone(),
            store_id: form.store_id.clone(),
            access_token,
        },
    )
    .await;
    match result {
        Ok(saved) => {
            let mut flash = Flash::ok(saved.message);
            flash.lines.extend(saved.warnings);
            Ok(redirect_with(&ctx, "/order-import", flash))
        }
        Err(OrderImportError::Invalid(message)) => {
            render(&ctx, &session, &headers, Some((&form, message)))
        }
        Err(OrderImportError::UnknownTenant) => Err(AdminError::LoginRequired),
        Err(OrderImportError::Store(e)) => Err(e.into()),
    }
}
