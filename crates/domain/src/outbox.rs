//! The report outbox's record: a composed run report waiting to be sent, and the
//! rules of its send claim, which both stores apply and then only compare and
//! swap (design.md §5: a report that cannot be sent goes with a later run).

use crate::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    pub file_name: String,
    pub content_type: String,
    pub blob_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxReport {
    /// Unique per tenant; enqueueing the same id twice keeps the first.
    pub id: String,
    pub tenant_id: TenantId,
    pub created_at: DateTime<Utc>,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<StoredAttachment>,
    pub sent_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Batches whose queue outcome this report tells: enqueueing the report marks
    /// them reported in the same atomic step, so no outcome is told twice or lost.
    #[serde(default)]
    pub reported_batches: Vec<String>,
    /// The sender that is sending it right now, if any (see [`OutboxReport::claim`]).
    #[serde(default)]
    pub claim: Option<ReportClaim>,
}

/// A sender's hold on an unsent report. It has a lease so that a sender that
/// died mid-send does not keep the report from ever going out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportClaim {
    pub owner: String,
    pub until: DateTime<Utc>,
}

impl OutboxReport {
    /// Unsent, and not held by another owner's claim that runs past `now`.
    pub fn claimable_by(&self, owner: &str, now: DateTime<Utc>) -> bool {
        self.sent_at.is_none()
            && self
                .claim
                .as_ref()
                .is_none_or(|c| c.owner == owner || c.until <= now)
    }

    /// Unsent and claimed by `owner` (whether or not the lease has run out: as
    /// long as nobody took it over, the claim is still the owner's).
    pub fn claimed_by(&self, owner: &str) -> bool {
        self.sent_at.is_none() && self.claim.as_ref().is_some_and(|c| c.owner == owner)
    }

    /// Takes the report for sending until `until`. False, and nothing changed,
    /// when it is sent or another owner's claim runs past `now`: a sender sends
    /// only what it claimed, so two runs never send one report twice.
    pub fn claim(&mut self, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        if !self.claimable_by(owner, now) {
            return false;
        }
        self.claim = Some(ReportClaim {
            owner: owner.to_string(),
            until,
        });
        true
    }

    /// Sent at `at`, ending `owner`'s claim. False, and nothing changed, unless
    /// `owner` holds it.
    pub fn mark_sent(&mut self, owner: &str, at: DateTime<Utc>) -> bool {
        if !self.claimed_by(owner) {
            return false;
        }
        self.sent_at = Some(at);
        self.claim = None;
        true
    }

    /// A failed send: counted, and `owner`'s claim released so the next run
    /// retries at once. False, and nothing changed, unless `owner` holds it.
    pub fn record_failure(&mut self, owner: &str, error: &str) -> bool {
        if !self.claimed_by(owner) {
            return false;
        }
        self.attempts += 1;
        self.last_error = Some(error.to_string());
        self.claim = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 1, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn report() -> OutboxReport {
        OutboxReport {
            id: "r1".into(),
            tenant_id: TenantId("t".into()),
            created_at: t(0),
            to: vec!["shop@example.com".into()],
            subject: "件名".into(),
            body: "本文".into(),
            attachments: vec![],
            sent_at: None,
            attempts: 0,
            last_error: None,
            reported_batches: vec![],
            claim: None,
        }
    }

    #[test]
    fn a_live_claim_keeps_others_out_until_it_runs_out() {
        let mut r = report();
        assert!(r.claim("a", t(0), t(5)));
        let before = r.clone();
        assert!(!r.claim("b", t(4), t(9)), "a's lease runs until 5");
        assert_eq!(r, before, "a refused claim changes nothing");
        assert!(r.claim("a", t(4), t(9)), "the owner renews its own claim");
        assert!(r.claim("b", t(9), t(14)), "an expired claim is taken over");
        assert_eq!(r.claim.as_ref().map(|c| c.owner.as_str()), Some("b"));
    }

    #[test]
    fn only_the_claim_holder_marks_sent_or_failed() {
        let mut r = report();
        assert!(!r.mark_sent("a", t(1)), "nobody claimed it");
        assert!(r.claim("a", t(0), t(5)));
        assert!(!r.record_failure("b", "x"));
        assert!(r.record_failure("a", "SMTP 451"));
        assert_eq!((r.attempts, r.last_error.as_deref()), (1, Some("SMTP 451")));
        assert_eq!(r.claim, None, "a failure releases the claim at once");
        assert!(r.claim("b", t(1), t(6)));
        assert!(!r.mark_sent("a", t(2)), "a's claim was released");
        assert!(r.mark_sent("b", t(2)));
        assert_eq!(r.sent_at, Some(t(2)));
        assert!(
            !r.claim("c", t(20), t(25)),
            "a sent report is never claimed again"
        );
    }
}
