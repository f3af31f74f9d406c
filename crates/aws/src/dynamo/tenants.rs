//! Tenants (with their unique contract id), NextEngine tokens, product pairs and
//! cursors: small items, each guarded by a condition on the item itself.

use super::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest};
use sne_domain::ProductPair;
use sne_domain::tenant::{NeTokens, Tenant};
use sne_ports::{CursorStore, PairSource, ProductPairStore, TenantStore, TokenStore};

const TENANTS_PK: &str = "TENANTS";

fn contract_pk(contract_id: &str) -> String {
    format!("CONTRACT#{}", esc(contract_id))
}

fn email_pk(email: &str) -> String {
    format!("EMAIL#{}", esc(email))
}

fn pair_source(source: PairSource) -> &'static str {
    match source {
        PairSource::ProductCode => "product_code",
        PairSource::Table => "table",
    }
}

impl DynamoStore {
    fn tenant_item(&self, tenant: &Tenant) -> StoreResult<Item> {
        let mut item = key(&tenant_pk(&tenant.id), "TENANT");
        item.insert("body".into(), s(to_json(tenant)?));
        item.insert("version".into(), n(tenant.version as i64));
        item.insert("contract_id".into(), s(&tenant.contract_id));
        item.insert("admin_email".into(), s(&tenant.admin_email));
        Ok(item)
    }

    async fn tenants_by_id(&self, ids: &[String]) -> StoreResult<Vec<Tenant>> {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (format!("T#{}", esc(id)), "TENANT".to_string()))
            .collect();
        let mut found = self.batch_get(&keys).await?;
        keys.iter()
            .filter_map(|k| found.remove(k))
            .map(|item| body(&item))
            .collect()
    }

    async fn pair_generation(
        &self,
        tenant: &TenantId,
        source: PairSource,
    ) -> StoreResult<Option<String>> {
        let pointer = self
            .get(
                &tenant_pk(tenant),
                &format!("PAIRGEN#{}", pair_source(source)),
            )
            .await?;
        Ok(pointer
            .as_ref()
            .and_then(|i| opt_s(i, "gen"))
            .map(str::to_string))
    }
}

fn pair_prefix(source: PairSource, generation: Option<&str>) -> String {
    format!(
        "PAIR#{}#{}#",
        pair_source(source),
        esc(generation.unwrap_or("0"))
    )
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let mut contract = key(&contract_pk(&tenant.contract_id), "CONTRACT");
        contract.insert("tenant_id".into(), s(tenant.id.as_str()));
        let mut listed = key(TENANTS_PK, &esc(tenant.id.as_str()));
        listed.insert("tenant_id".into(), s(tenant.id.as_str()));
        let mut email = key(&email_pk(&tenant.admin_email), &esc(tenant.id.as_str()));
        email.insert("tenant_id".into(), s(tenant.id.as_str()));
        let tx = vec![
            self.put(self.tenant_item(tenant)?, Some(Cond::absent())),
            self.put(contract, Some(Cond::absent())),
            self.put(listed, None),
            self.put(email, None),
        ];
        match self.transact(tx).await? {
            Tx::Committed => Ok(()),
            Tx::Cancelled(_) => Err(StoreError::Conflict(format!(
                "tenant {} or contract {} already exists",
                tenant.id, tenant.contract_id
            ))),
        }
    }

    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.get(&tenant_pk(id), "TENANT")
            .await?
            .map(|item| body(&item))
            .transpose()
    }

    async fn tenant_by_contract(&self, contract_id: &str) -> StoreResult<Option<Tenant>> {
        let Some(pointer) = self.get(&contract_pk(contract_id), "CONTRACT").await? else {
            return Ok(None);
        };
        let id = TenantId(attr_s(&pointer, "tenant_id")?.to_string());
        // The pointer and the tenant are written in one transaction, but a reader
        // between an update's commit and this get could see a moved contract: check.
        Ok(self
            .tenant(&id)
            .await?
            .filter(|t| t.contract_id == contract_id))
    }

    async fn tenant_by_admin_email(&self, email: &str) -> StoreResult<Option<Tenant>> {
        let pointers = self.query(&email_pk(email), "", true, None).await?;
        let ids = pointers
            .iter()
            .map(|p| attr_s(p, "tenant_id").map(str::to_string))
            .collect::<StoreResult<Vec<_>>>()?;
        // Admin emails are not unique (the embedded store does not make them so
        // either): the oldest tenant wins, as there.
        Ok(self
            .tenants_by_id(&ids)
            .await?
            .into_iter()
            .filter(|t| t.admin_email == email)
            .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id))))
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let listed = self.query(TENANTS_PK, "", true, None).await?;
        let ids = listed
            .iter()
            .map(|p| attr_s(p, "tenant_id").map(str::to_string))
            .collect::<StoreResult<Vec<_>>>()?;
        self.tenants_by_id(&ids).await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<Tenant> {
        let Some(stored) = self.tenant(&tenant.id).await? else {
            return Err(StoreError::NotFound(format!("tenant {}", tenant.id)));
        };
        if stored.version != tenant.version {
            return Err(StoreError::Conflict(format!(
                "tenant {} changed since version {} (now {})",
                tenant.id, tenant.version, stored.version
            )));
        }
        let mut next = tenant.clone();
        next.version += 1;
        let id = esc(tenant.id.as_str());
        // The version condition also proves that `stored`'s contract and email
        // are still the ones to release: every change of them bumps the version.
        let mut tx = vec![
            self.put(
                self.tenant_item(&next)?,
                Some(
                    Cond::new("#v = :v")
                        .name("#v", "version")
                        .value(":v", n(tenant.version as i64)),
                ),
            ),
        ];
        if stored.contract_id != next.contract_id {
            let mut contract = key(&contract_pk(&next.contract_id), "CONTRACT");
            contract.insert("tenant_id".into(), s(next.id.as_str()));
            tx.push(self.delete(&contract_pk(&stored.contract_id), "CONTRACT", None));
            tx.push(self.put(contract, Some(Cond::absent())));
        }
        if stored.admin_email != next.admin_email {
            let mut email = key(&email_pk(&next.admin_email), &id);
            email.insert("tenant_id".into(), s(next.id.as_str()));
            tx.push(self.delete(&email_pk(&stored.admin_email), &id, None));
            tx.push(self.put(email, None));
        }
        match self.transact(tx).await? {
            Tx::Committed => Ok(next),
            Tx::Cancelled(_) => Err(StoreError::Conflict(format!(
                "tenant {} changed meanwhile, or contract {} belongs to another tenant",
                tenant.id, next.contract_id
            ))),
        }
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn ne_tokens(&self, tenant: &TenantId) -> StoreResult<Option<NeTokens>> {
        self.get(&tenant_pk(tenant), "TOKENS")
            .await?
            .map(|item| body(&item))
            .transpose()
    }

    async fn swap_ne_tokens(
        &self,
        tenant: &TenantId,
        expected: Option<&str>,
        new: &NeTokens,
    ) -> StoreResult<bool> {
        let mut item = key(&tenant_pk(tenant), "TOKENS");
        item.insert("body".into(), s(to_json(new)?));
        item.insert("access_token".into(), s(&new.access_token));
        let cond = match expected {
            None => Cond::absent(),
            Some(token) => Cond::new("#t = :t")
                .name("#t", "access_token")
                .value(":t", s(token)),
        };
        conditional_put(self, item, cond).await
    }
}

/// A single conditional put; `false` when the condition did not hold.
async fn conditional_put(store: &DynamoStore, item: Item, cond: Cond) -> StoreResult<bool> {
    let result = store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(item))
        .condition_expression(cond.expr)
        .set_expression_attribute_names(cond.names)
        .set_expression_attribute_values(cond.values)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_condition_failed(&err) => Ok(false),
        Err(err) => Err(unavailable(err)),
    }
}

#[async_trait]
impl ProductPairStore for DynamoStore {
    async fn product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
    ) -> StoreResult<Vec<ProductPair>> {
        let generation = self.pair_generation(tenant, source).await?;
        let items = self
            .query(
                &tenant_pk(tenant),
                &pair_prefix(source, generation.as_deref()),
                true,
                None,
            )
            .await?;
        items
            .iter()
            .map(|i| {
                Ok(ProductPair::new(
                    attr_s(i, "product_id")?,
                    attr_s(i, "goods_code")?,
                ))
            })
            .collect()
    }

    async fn put_product_pairs(
        &self,
        tenant: &TenantId,
        source: PairSource,
        pairs: &[ProductPair],
        replace_all: bool,
    ) -> StoreResult<()> {
        let pk = tenant_pk(tenant);
        let current = self.pair_generation(tenant, source).await?;
        // A replacement is written under a new generation and switched to with
        // one conditional put, so readers see the old table or the new one,
        // never a mix, however many pairs there are.
        let target = if replace_all {
            Some(format!(
                "{:020}-{}",
                Utc::now().timestamp_micros().max(0),
                uuid::Uuid::new_v4().simple()
            ))
        } else {
            current.clone()
        };
        let prefix = pair_prefix(source, target.as_deref());
        let puts = pairs
            .iter()
            .map(
                |ProductPair {
                     product_id,
                     goods_code,
                 }| {
                    let mut item = key(&pk, &format!("{prefix}{}", esc(product_id)));
                    item.insert("product_id".into(), s(product_id.as_str()));
                    item.insert("goods_code".into(), s(goods_code.as_str()));
                    let request = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(request).build())
                },
            )
            .collect::<StoreResult<Vec<_>>>()?;
        self.batch_write(puts).await?;
        if !replace_all {
            return Ok(());
        }

        let pointer_sk = format!("PAIRGEN#{}", pair_source(source));
        let mut pointer = key(&pk, &pointer_sk);
        pointer.insert("gen".into(), s(target.clone().unwrap_or_default()));
        let mut replaced = current;
        let mut round = 0;
        loop {
            let cond = match &replaced {
                None => Cond::absent(),
                Some(g) => Cond::new("#g = :g").name("#g", "gen").value(":g", s(g)),
            };
            if conditional_put(self, pointer.clone(), cond).await? {
                break;
            }
            // Another replacement switched first; this one is newer, so it wins and
            // cleans up the one it displaces.
            round += 1;
            cas_backoff(round).await?;
            replaced = self.pair_generation(tenant, source).await?;
        }
        let stale = self
            .query(&pk, &pair_prefix(source, replaced.as_deref()), true, None)
            .await?;
        let deletes = stale
            .into_iter()
            .map(|item| {
                let key = key(attr_s(&item, "PK")?, attr_s(&item, "SK")?);
                Ok(WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(key))
                            .build()
                            .map_err(|e| StoreError::Unavailable(e.to_string()))?,
                    )
                    .build())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.batch_write(deletes).await
    }
}

#[async_trait]
impl CursorStore for DynamoStore {
    async fn cursor(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<String>> {
        let item = self
            .get(&tenant_pk(tenant), &format!("CURSOR#{}", esc(name)))
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| opt_s(i, "val"))
            .map(str::to_string))
    }

    async fn set_cursor(
        &self,
        tenant: &TenantId,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> StoreResult<bool> {
        let mut item = key(&tenant_pk(tenant), &format!("CURSOR#{}", esc(name)));
        item.insert("val".into(), s(value));
        let cond = match expected {
            None => Cond::absent(),
            Some(v) => Cond::new("#v = :v").name("#v", "val").value(":v", s(v)),
        };
        conditional_put(self, item, cond).await
    }
}
