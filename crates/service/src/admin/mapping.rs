//! Mapping-table upload: decode (UTF-8 or Shift_JIS), parse, stage, preview, and
//! only then — on a second POST naming the staged upload — replace the table.

use super::session::Session;
use super::views::{Layout, MappingPreviewPage, PairRow};
use super::{AdminError, AdminResult, Flash, page, redirect_with};
use crate::AdminContext;
use crate::wording;
use axum::Form;
use axum::extract::{Multipart, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sne_domain::mapping::parse_mapping_table;
use sne_domain::tenant::MappingMode;
use sne_domain::{ProductPair, TenantId};
use sne_ports::PairSource;
use std::collections::HashMap;

/// Rows of each kind listed on the preview; the counts are always complete.
const SHOWN_LIMIT: usize = 200;
/// A preview older than this is refused: the operator should look again.
const STAGED_TTL_SECS: i64 = 3600;

#[derive(Serialize, Deserialize)]
struct Staged {
    created_at: DateTime<Utc>,
    file_name: String,
    pairs: Vec<ProductPair>,
}

/// Staged uploads sit under the tenant's own prefix; the id alone never reaches
/// another tenant's file.
fn staged_key(tenant: &TenantId, id: &str) -> String {
    format!("tenants/{tenant}/staging/mapping-{id}.json")
}

fn valid_staged_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Excel in Japan saves CSV as Shift_JIS; newer tools as UTF-8 (often with a BOM).
/// Valid UTF-8 is taken as such; anything else must decode cleanly as Shift_JIS.
pub fn decode_csv(bytes: &[u8]) -> Result<(String, &'static str), String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.trim_start_matches('\u{feff}').to_string(), "UTF-8"));
    }
    let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(bytes);
    if had_errors {
        return Err(wording::MAPPING_ENCODING_UNKNOWN.into());
    }
    Ok((text.into_owned(), "Shift_JIS"))
}

fn refuse(ctx: &AdminContext, message: String) -> AdminResult {
    let mut flash = Flash::error(message);
    flash.lines.push(wording::MAPPING_NOT_SAVED.into());
    Ok(redirect_with(ctx, "/settings#mapping", flash))
}

pub async fn upload(
    State(ctx): State<AdminContext>,
    session: Session,
    mut multipart: Multipart,
) -> AdminResult {
    let mut csrf = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    let unreadable = |_| AdminError::Forbidden(wording::MAPPING_FORM_UNREADABLE.into());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(unreadable)?),
            Some("file") => {
                // Nothing of the file is looked at before the token is checked.
                session.check_csrf(csrf.as_deref())?;
                let name = field.file_name().unwrap_or("mapping.csv").to_string();
                let bytes = field.bytes().await.map_err(unreadable)?;
                file = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    session.check_csrf(csrf.as_deref())?;
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return refuse(&ctx, wording::MAPPING_FILE_MISSING.into());
    };
    let (text, encoding) = match decode_csv(&bytes) {
        Ok(decoded) => decoded,
        Err(message) => return refuse(&ctx, message),
    };
    let pairs = match parse_mapping_table(&text) {
        Ok(pairs) => pairs,
        Err(e) => return refuse(&ctx, wording::mapping_unreadable(e)),
    };
    if pairs.is_empty() {
        return refuse(&ctx, wording::MAPPING_EMPTY.into());
    }

    let tenant = &session.tenant;
    let current: HashMap<String, String> = ctx
        .storage
        .product_pairs(&tenant.id, PairSource::Table)
        .await?
        .into_iter()
        .map(|pair| (pair.product_id.into(), pair.goods_code.into()))
        .collect();
    let incoming: HashMap<&str, &str> = pairs
        .iter()
        .map(|pair| (pair.product_id.as_str(), pair.goods_code.as_str()))
        .collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for ProductPair {
        product_id,
        goods_code,
    } in &pairs
    {
        match current.get(product_id.as_str()) {
            None => added.push(PairRow {
                product_id: product_id.to_string(),
                goods_code: goods_code.to_string(),
                old_code: String::new(),
            }),
            Some(old) if old != goods_code => changed.push(PairRow {
                product_id: product_id.to_string(),
                goods_code: goods_code.to_string(),
                old_code: old.clone(),
            }),
            Some(_) => unchanged += 1,
        }
    }
    let mut removed: Vec<PairRow> = current
        .iter()
        .filter(|(p, _)| !incoming.contains_key(p.as_str()))
        .map(|(p, c)| PairRow {
            product_id: p.clone(),
            goods_code: c.clone(),
            old_code: String::new(),
        })
        .collect();
    removed.sort_by(|a, b| a.product_id.cmp(&b.product_id));

    let id = uuid::Uuid::new_v4().simple().to_string();
    let staged = Staged {
        created_at: ctx.clock.now(),
        file_name: file_name.clone(),
        pairs,
    };
    ctx.blobs
        .put_blob(
            &staged_key(&tenant.id, &id),
            &serde_json::to_vec(&staged).map_err(|e| AdminError::Internal(e.to_string()))?,
            "application/json",
        )
        .await?;

    let (added_count, changed_count, removed_count) = (added.len(), changed.len(), removed.len());
    added.truncate(SHOWN_LIMIT);
    changed.truncate(SHOWN_LIMIT);
    removed.truncate(SHOWN_LIMIT);
    let view = MappingPreviewPage {
        layout: Layout {
            title: wording::MAPPING_PREVIEW_TITLE,
            active: "settings",
            logged_in: true,
            tenant_name: tenant.name.clone(),
            csrf: session.csrf.clone(),
            flash: None,
        },
        file_name,
        encoding,
        staged_id: id,
        total: staged.pairs.len(),
        added_count,
        changed_count,
        removed_count,
        unchanged_count: unchanged,
        added,
        changed,
        removed,
        shown_limit: SHOWN_LIMIT,
        mode_is_table: tenant.mapping_mode == MappingMode::Table,
    };
    page(&ctx, &view, false)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    csrf: Option<String>,
    staged: String,
}

pub async fn confirm(
    State(ctx): State<AdminContext>,
    session: Session,
    Form(form): Form<ConfirmForm>,
) -> AdminResult {
    session.check_csrf(form.csrf.as_deref())?;
    if !valid_staged_id(&form.staged) {
        return Err(AdminError::NotFound);
    }
    let tenant = &session.tenant;
    let Some(bytes) = ctx
        .blobs
        .get_blob(&staged_key(&tenant.id, &form.staged))
        .await?
    else {
        return Err(AdminError::NotFound);
    };
    let staged: Staged =
        serde_json::from_slice(&bytes).map_err(|e| AdminError::Internal(e.to_string()))?;
    if (ctx.clock.now() - staged.created_at).num_seconds() > STAGED_TTL_SECS {
        return refuse(&ctx, wording::MAPPING_PREVIEW_EXPIRED.into());
    }
    ctx.storage
        .put_product_pairs(&tenant.id, PairSource::Table, &staged.pairs, true)
        .await?;
    tracing::info!(tenant = %tenant.id, pairs = staged.pairs.len(), "mapping table replaced");
    let mut flash = Flash::ok(wording::mapping_saved(staged.pairs.len()));
    if tenant.mapping_mode != MappingMode::Table {
        flash.lines.push(wording::MAPPING_MODE_NOT_TABLE.into());
    }
    Ok(redirect_with(&ctx, "/settings", flash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_bom_and_shift_jis_both_decode() {
        let (text, enc) = decode_csv("\u{feff}商品ID,商品コード\n".as_bytes()).unwrap();
        assert_eq!((text.as_str(), enc), ("商品ID,商品コード\n", "UTF-8"));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("商品ID,商品コード\n1,A\n");
        let (text, enc) = decode_csv(&sjis).unwrap();
        assert_eq!(
            (text.as_str(), enc),
            ("商品ID,商品コード\n1,A\n", "Shift_JIS")
        );
        assert!(decode_csv(&[0x82, 0xff, 0xff, 0x00]).is_err());
    }
}
