//! The admin login throttle: one `LOGIN` item per tenant with the attempt count
//! `n` and the window start `start` (µs). Every attempt is counted by an
//! `UpdateItem` whose condition is the limit itself, so parallel logins can never
//! be allowed more attempts than the limit, whatever the interleaving.

use super::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use sne_ports::{LoginAttempt, LoginThrottle};

const LOGIN_SK: &str = "LOGIN";

#[async_trait]
impl LoginThrottle for DynamoStore {
    async fn reserve_login_attempt(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> StoreResult<LoginAttempt> {
        let pk = tenant_pk(tenant);
        // A window that started after `floor` is still running.
        let floor = (now - window).timestamp_micros();
        let mut round = 0;
        loop {
            // The common case: one more attempt in the running window.
            let counted = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(&pk))
                .key("SK", s(LOGIN_SK))
                .update_expression("SET #n = #n + :one")
                .condition_expression("attribute_exists(#n) AND #s > :floor AND #n < :limit")
                .expression_attribute_names("#n", "n")
                .expression_attribute_names("#s", "start")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":floor", n(floor))
                .expression_attribute_values(":limit", n(i64::from(limit)))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match counted {
                Ok(out) => {
                    let nth = out
                        .attributes
                        .as_ref()
                        .map(|a| attr_n(a, "n"))
                        .transpose()?
                        .ok_or_else(|| corrupt(LOGIN_SK, "no count returned"))?;
                    return Ok(LoginAttempt::Allowed {
                        nth: u32::try_from(nth).unwrap_or(u32::MAX),
                    });
                }
                Err(err) if is_condition_failed(&err) => {}
                Err(err) => return Err(unavailable(err)),
            }
            // Refused: the window is used up, over, or was never started.
            if let Some(item) = self.get(&pk, LOGIN_SK).await? {
                let (count, start) = (attr_n(&item, "n")?, attr_n(&item, "start")?);
                if start > floor && count >= i64::from(limit) {
                    let until = DateTime::from_timestamp_micros(start)
                        .map(|s| s + window)
                        .unwrap_or(now);
                    return Ok(LoginAttempt::Locked { until });
                }
            }
            // Start a new window, unless another attempt started one meanwhile.
            let started = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("PK", s(&pk))
                .key("SK", s(LOGIN_SK))
                .update_expression("SET #n = :one, #s = :now")
                .condition_expression("attribute_not_exists(#n) OR #s <= :floor")
                .expression_attribute_names("#n", "n")
                .expression_attribute_names("#s", "start")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now.timestamp_micros()))
                .expression_attribute_values(":floor", n(floor))
                .send()
                .await;
            match started {
                Ok(_) => return Ok(LoginAttempt::Allowed { nth: 1 }),
                Err(err) if is_condition_failed(&err) => {
                    round += 1;
                    cas_backoff(round).await?;
                }
                Err(err) => return Err(unavailable(err)),
            }
        }
    }

    async fn reset_login_attempts(&self, tenant: &TenantId) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("PK", s(tenant_pk(tenant)))
            .key("SK", s(LOGIN_SK))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
