//! One tenant's run, as a message of the run queue (AWS: an SQS FIFO queue;
//! design.md §5). A tenant's messages share a group, so its runs never overlap;
//! messages that ask for the same run share a deduplication id, so a burst of
//! pushes, a retried dispatch or a double click is one run.

use crate::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunReason {
    /// A push's changes are stored: upload them, mail with the next schedule.
    Changes,
    /// The schedule's round: the stock path with its report.
    Schedule,
    /// 「今すぐ実行」.
    Now,
    /// The order importer's schedule: NextEngine orders → Smaregi 出荷.
    Orders,
    /// The queue checker's schedule: the queue check and its report.
    Check,
    /// The daily drift check or 「差異を確認」: in a group of its own beside the
    /// tenant's runs, since it only reads and must never delay an upload.
    Drift,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMessage {
    pub tenant_id: TenantId,
    pub reason: RunReason,
    /// Requests with the same id are one run (SQS: `MessageDeduplicationId`).
    #[serde(skip)]
    pub dedupe_id: String,
}

impl RunMessage {
    /// Every push of the same quiet window asks for the same run: the window is
    /// `at` rounded down to a multiple of `quiet`, and the queue's delay of
    /// `quiet` holds the message back until the window has gathered its burst.
    pub fn changes(tenant_id: TenantId, at: DateTime<Utc>, quiet: Duration) -> Self {
        let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX).max(1);
        let window = at.timestamp_millis().div_euclid(quiet_ms);
        RunMessage {
            dedupe_id: format!("c-{tenant_id}-{window}"),
            tenant_id,
            reason: RunReason::Changes,
        }
    }

    /// One message per tenant and schedule firing, so a retried dispatch of the
    /// same firing adds nothing.
    pub fn schedule(tenant_id: TenantId, fired_at: DateTime<Utc>) -> Self {
        Self::once_a_second(tenant_id, RunReason::Schedule, fired_at)
    }

    /// One order import per tenant and firing of the order importer's schedule.
    pub fn orders(tenant_id: TenantId, fired_at: DateTime<Utc>) -> Self {
        Self::once_a_second(tenant_id, RunReason::Orders, fired_at)
    }

    /// One queue check per tenant and firing of the queue checker's schedule.
    pub fn check(tenant_id: TenantId, fired_at: DateTime<Utc>) -> Self {
        Self::once_a_second(tenant_id, RunReason::Check, fired_at)
    }

    /// One drift check per tenant and second (a schedule firing, a click).
    pub fn drift(tenant_id: TenantId, at: DateTime<Utc>) -> Self {
        Self::once_a_second(tenant_id, RunReason::Drift, at)
    }

    /// The FIFO group: the tenant's, so its runs never overlap; a drift
    /// check's own, so it runs beside them.
    pub fn group_id(&self) -> String {
        match self.reason {
            RunReason::Drift => format!("drift-{}", self.tenant_id),
            _ => self.tenant_id.to_string(),
        }
    }

    /// 「今すぐ実行」 pressed twice within a second is one run.
    pub fn now(tenant_id: TenantId, at: DateTime<Utc>) -> Self {
        Self::once_a_second(tenant_id, RunReason::Now, at)
    }

    /// A run of `reason` for the tenant, one per second of `at`; each reason
    /// has its own prefix, so runs of different kinds never drop each other.
    fn once_a_second(tenant_id: TenantId, reason: RunReason, at: DateTime<Utc>) -> Self {
        let kind = match reason {
            RunReason::Changes => "c",
            RunReason::Schedule => "s",
            RunReason::Now => "n",
            RunReason::Orders => "o",
            RunReason::Check => "k",
            RunReason::Drift => "d",
        };
        RunMessage {
            dedupe_id: format!("{kind}-{tenant_id}-{}", at.timestamp()),
            tenant_id,
            reason,
        }
    }

    /// The message body: the tenant and the reason (the id travels beside it).
    pub fn body(&self) -> String {
        serde_json::json!({ "tenant_id": self.tenant_id.as_str(), "reason": self.reason })
            .to_string()
    }

    /// Reads a message body back; the dedupe id is the queue's business.
    pub fn parse(body: &str) -> Result<RunMessage, String> {
        let request: RunMessage =
            serde_json::from_str(body).map_err(|e| format!("not a run message: {e}"))?;
        if request.tenant_id.as_str().trim().is_empty() {
            return Err("run message without a tenant_id".into());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_800_000_000_000 + ms).unwrap()
    }

    fn t(id: &str) -> TenantId {
        TenantId(id.into())
    }

    #[test]
    fn a_drift_check_has_a_group_beside_its_tenants_runs() {
        let drift = RunMessage::drift(t("a"), at(0));
        assert_eq!(drift.group_id(), "drift-a");
        assert_eq!(RunMessage::now(t("a"), at(0)).group_id(), "a");
        assert_ne!(drift.dedupe_id, RunMessage::now(t("a"), at(0)).dedupe_id);
        assert_eq!(
            RunMessage::parse(&drift.body()).unwrap().reason,
            RunReason::Drift
        );
    }

    #[test]
    fn pushes_of_one_quiet_window_are_one_run_and_the_next_window_another() {
        let quiet = Duration::from_secs(5);
        let first = RunMessage::changes(t("a"), at(0), quiet);
        assert_eq!(first, RunMessage::changes(t("a"), at(4_999), quiet));
        assert_ne!(first, RunMessage::changes(t("a"), at(5_000), quiet));
        assert_ne!(
            first,
            RunMessage::changes(t("b"), at(0), quiet),
            "per tenant"
        );
        assert!(first.dedupe_id.len() <= 128, "SQS limit");
    }

    #[test]
    fn schedule_and_run_now_are_one_run_per_firing_and_per_second() {
        let s = RunMessage::schedule(t("a"), at(0));
        assert_eq!(s, RunMessage::schedule(t("a"), at(0)));
        assert_ne!(s, RunMessage::schedule(t("a"), at(600_000)));
        assert_eq!(
            RunMessage::now(t("a"), at(100)),
            RunMessage::now(t("a"), at(900))
        );
        let same_firing = [
            RunMessage::now(t("a"), at(0)).dedupe_id,
            RunMessage::orders(t("a"), at(0)).dedupe_id,
            RunMessage::check(t("a"), at(0)).dedupe_id,
        ];
        assert!(
            same_firing.iter().all(|id| *id != s.dedupe_id),
            "each kind of run is its own"
        );
        assert_ne!(same_firing[1], same_firing[2]);
    }

    #[test]
    fn the_body_round_trips_and_bad_bodies_are_refused() {
        let request = RunMessage::changes(t("t_1"), at(0), Duration::from_secs(5));
        let back = RunMessage::parse(&request.body()).unwrap();
        assert_eq!(
            (back.tenant_id, back.reason),
            (t("t_1"), RunReason::Changes)
        );
        assert_eq!(
            RunMessage::parse(r#"{"tenant_id":"t_1","reason":"schedule"}"#)
                .unwrap()
                .reason,
            RunReason::Schedule
        );
        for bad in [
            "",
            "{}",
            r#"{"tenant_id":" ","reason":"now"}"#,
            r#"{"tenant_id":"a","reason":"later"}"#,
        ] {
            assert!(RunMessage::parse(bad).is_err(), "{bad}");
        }
    }
}
