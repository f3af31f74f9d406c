//! The upload batch record and every rule of how it changes. Stores only persist
//! the record and make the write conditional on the revision they read; what a
//! step may do is decided here, once, for SQLite and DynamoDB alike.
//!
//! Every accepted step bumps `revision`. A step names the revision it was planned
//! on, so a runner that slept through someone else's step (a slow upload call, a
//! second Lambda) fails instead of repeating an edge such as
//! `Uploading → Built → Uploading`, which would send the same file twice.

use crate::batch_state::{BatchState, can_transition};
use crate::complete::Mirror;
use crate::report::{ParkedLine, QueueOutcome};
use crate::upload_csv::UploadLine;
use crate::{QueId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadBatch {
    pub tenant_id: TenantId,
    pub batch_id: String,
    pub state: BatchState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// Frozen once `Built`: exactly what is (or was) uploaded.
    pub lines: Vec<UploadLine>,
    pub parked: Vec<ParkedLine>,
    /// Completion fallbacks and other remarks for the report.
    pub notes: Vec<String>,
    pub change_count: usize,
    pub csv_key: Option<String>,
    pub que_id: Option<QueId>,
    /// Start of the latest upload attempt: the unknown-outcome grace runs from here.
    pub upload_started_at: Option<DateTime<Utc>>,
    pub upload_attempts: u32,
    pub outcome: Option<QueueOutcome>,
    pub last_error: Option<BatchError>,
    /// Bumped by every accepted step; records written before it existed read as 0.
    #[serde(default)]
    pub revision: u64,
    /// The queues that could have been this upload when it was held for a person.
    #[serde(default)]
    pub candidates: Vec<QueueCandidate>,
    /// How a person resolved a held batch.
    #[serde(default)]
    pub decision: Option<OperatorDecision>,
    /// The report that told the operator this batch's queue outcome (or decision).
    #[serde(default)]
    pub reported_in: Option<String>,
    /// On a failed file: the batch that re-sends its unapplied rows.
    #[serde(default)]
    pub follow_up: Option<FollowUp>,
    /// On a re-sending batch: the failed file whose unapplied rows it carries.
    #[serde(default)]
    pub follows: Option<String>,
    /// When the oldest change in the file reached the service: with the upload
    /// time, the lag the admin screen shows.
    #[serde(default)]
    pub oldest_change_at: Option<DateTime<Utc>>,
    /// On an alignment file (「揃える」): the drift check whose corrections it
    /// carries. Its batch id is derived from that check, so a check is aligned
    /// at most once.
    #[serde(default)]
    pub aligns: Option<String>,
}

/// Why the latest attempt of a batch did not go through, as the admin screen keys
/// its advice on it; the message is shown as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchError {
    pub kind: BatchErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchErrorKind {
    /// NextEngine refused the tokens: 「再取得」 is the operator's remedy.
    Token,
    /// NextEngine answered the upload with an error envelope: nothing was queued.
    Refused,
    /// The answer was lost and the queue list shows no such file: sent again.
    NotQueued,
    /// The answer was lost and the queue list could not tell which queue was ours.
    Unproven,
}

impl BatchError {
    pub fn new(kind: BatchErrorKind, message: impl Into<String>) -> Self {
        BatchError {
            kind,
            message: message.into(),
        }
    }
}

/// Records written before the kind existed hold the message alone; only a token
/// error's message tells its kind (it starts with the client's `token error`).
impl<'de> Deserialize<'de> for BatchError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Typed {
                kind: BatchErrorKind,
                message: String,
            },
            MessageOnly(String),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Typed { kind, message } => BatchError { kind, message },
            Stored::MessageOnly(message) => BatchError {
                kind: if message.starts_with("token error") {
                    BatchErrorKind::Token
                } else {
                    BatchErrorKind::Refused
                },
                message,
            },
        })
    }
}

/// 「未反映の行を再アップロード」 as recorded on the failed file: once per file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub batch_id: String,
    /// Who asked (the admin's e-mail address or the CLI's `--by`).
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The one batch id an alignment of drift check `drift_id` can have.
pub fn alignment_batch_id(drift_id: &str) -> String {
    format!("b_align_{drift_id}")
}

/// What re-sending a failed file's unapplied rows writes.
#[derive(Debug, Clone)]
pub struct FollowUpRequest {
    /// The failed file's revision the request was planned on.
    pub expected_revision: u64,
    pub new_batch_id: String,
    pub lines: Vec<UploadLine>,
    pub csv_key: Option<String>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A queue of NextEngine's list that appeared while an upload's answer was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCandidate {
    pub que_id: QueId,
    /// `que_creation_date` as NextEngine gave it (Japan time).
    pub created_at: String,
    pub upload_name: String,
    pub client_file_name: String,
}

/// `que_upload_name` of uploads made through the API (reference: nextengine-api.md,
/// Update "Queue names", single source). Screen uploads carry other names.
pub const API_UPLOAD_NAMES: &[&str] = &["NE_API"];

/// What the queue list says about an upload whose answer was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostUpload {
    /// Exactly one upload came through the API in the window, and nothing that
    /// could not be told apart: it is ours.
    Adopt(QueueCandidate),
    /// Nothing but uploads proven not to be ours (an operator's screen upload).
    NotFound,
    /// Several API uploads, or uploads whose kind NextEngine did not say: a
    /// person decides, since adopting the wrong one loses our file and sending
    /// again after the right one counts it twice.
    Ambiguous(Vec<QueueCandidate>),
}

impl QueueCandidate {
    fn came_through_api(&self) -> Option<bool> {
        let name = self.upload_name.trim();
        (!name.is_empty()).then(|| API_UPLOAD_NAMES.contains(&name))
    }
}

/// Decides among the queues created since the attempt that no batch of ours
/// already owns. A queue is adopted only when it is proven to be an API upload
/// and the only one that could be ours; screen uploads (named otherwise) are
/// never ours; a queue without a name proves nothing either way.
pub fn find_lost_upload(candidates: Vec<QueueCandidate>) -> LostUpload {
    let possible: Vec<QueueCandidate> = candidates
        .into_iter()
        .filter(|q| q.came_through_api() != Some(false))
        .collect();
    match possible.as_slice() {
        [] => LostUpload::NotFound,
        [only] if only.came_through_api() == Some(true) => LostUpload::Adopt(only.clone()),
        _ => LostUpload::Ambiguous(possible),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    /// 「アップロード済みとして扱う」: NextEngine has the file (under `que_id`).
    TreatAsUploaded,
    /// 「再アップロードする」: NextEngine never got the file; send the same bytes.
    Reupload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorDecision {
    pub action: DecisionAction,
    /// Who decided (the admin's e-mail address or the CLI's `--by`).
    pub by: String,
    pub at: DateTime<Utc>,
    pub que_id: Option<QueId>,
}

/// What `finish_build` freezes.
#[derive(Debug, Clone, Default)]
pub struct BuiltContent {
    pub lines: Vec<UploadLine>,
    pub parked: Vec<ParkedLine>,
    pub notes: Vec<String>,
    pub change_count: usize,
    pub csv_key: Option<String>,
    /// Written in the same atomic step, so a crash never leaves the mirror ahead
    /// of (or behind) the batch that used it.
    pub mirror_updates: Mirror,
    /// When the build finished, by the service's clock.
    pub at: DateTime<Utc>,
    /// When the oldest of the batch's changes reached the service.
    pub oldest_change_at: Option<DateTime<Utc>>,
}

/// One planned step of a batch.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: BatchState,
    pub to: BatchState,
    pub at: DateTime<Utc>,
    /// The revision the step was planned on.
    pub expected_revision: u64,
    /// Required for `→ Uploaded`.
    pub que_id: Option<QueId>,
    /// Required for `→ Succeeded | Failed`.
    pub outcome: Option<QueueOutcome>,
    pub error: Option<BatchError>,
    /// Recorded with `→ NeedsAttention`.
    pub candidates: Vec<QueueCandidate>,
    /// Required for every step out of `NeedsAttention`.
    pub decision: Option<OperatorDecision>,
}

impl Transition {
    /// A step from the state and revision `batch` was read at.
    pub fn of(batch: &UploadBatch, to: BatchState, at: DateTime<Utc>) -> Self {
        Transition {
            from: batch.state,
            to,
            at,
            expected_revision: batch.revision,
            que_id: None,
            outcome: None,
            error: None,
            candidates: Vec::new(),
            decision: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchRuleError {
    #[error("batch {batch_id} is {actual}, not {expected}")]
    WrongState {
        batch_id: String,
        actual: BatchState,
        expected: BatchState,
    },
    #[error("batch {batch_id} changed since it was read (revision {actual}, expected {expected})")]
    Stale {
        batch_id: String,
        actual: u64,
        expected: u64,
    },
    #[error("batch {batch_id} cannot go from {from} to {to}")]
    NotAllowed {
        batch_id: String,
        from: BatchState,
        to: BatchState,
    },
    #[error("batch {batch_id}: {what}")]
    Missing {
        batch_id: String,
        what: &'static str,
    },
    #[error("batch {batch_id} is held by another run")]
    HeldByOther { batch_id: String },
    #[error("batch {batch_id} was already reported in {report_id}")]
    AlreadyReported { batch_id: String, report_id: String },
    #[error("batch {batch_id} was already re-sent as {follow_up}")]
    AlreadyFollowedUp { batch_id: String, follow_up: String },
}

impl UploadBatch {
    /// A fresh `Building` batch under `owner`'s lease.
    pub fn building(
        tenant_id: TenantId,
        batch_id: String,
        owner: String,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Self {
        UploadBatch {
            tenant_id,
            batch_id,
            state: BatchState::Building,
            created_at: now,
            updated_at: now,
            owner: Some(owner),
            lease_until: Some(lease_until),
            lines: vec![],
            parked: vec![],
            notes: vec![],
            change_count: 0,
            csv_key: None,
            que_id: None,
            upload_started_at: None,
            upload_attempts: 0,
            outcome: None,
            last_error: None,
            revision: 1,
            candidates: vec![],
            decision: None,
            reported_in: None,
            follow_up: None,
            follows: None,
            oldest_change_at: None,
            aligns: None,
        }
    }

    /// The failed file marked as re-sent, and the new `Built` batch that re-sends
    /// `request.lines`. Once per failed file, and only on the revision read.
    pub fn start_follow_up(
        &self,
        request: &FollowUpRequest,
    ) -> Result<(UploadBatch, UploadBatch), BatchRuleError> {
        let batch_id = || self.batch_id.clone();
        if self.state != BatchState::Failed {
            return Err(BatchRuleError::WrongState {
                batch_id: batch_id(),
                actual: self.state,
                expected: BatchState::Failed,
            });
        }
        if let Some(done) = &self.follow_up {
            return Err(BatchRuleError::AlreadyFollowedUp {
                batch_id: batch_id(),
                follow_up: done.batch_id.clone(),
            });
        }
        if self.revision != request.expected_revision {
            return Err(BatchRuleError::Stale {
                batch_id: batch_id(),
                actual: self.revision,
                expected: request.expected_revision,
            });
        }
        if request.lines.is_empty() {
            return Err(BatchRuleError::Missing {
                batch_id: batch_id(),
                what: "no unapplied row is left to send",
            });
        }
        let mut source = self.clone();
        source.follow_up = Some(FollowUp {
            batch_id: request.new_batch_id.clone(),
            by: request.by.clone(),
            at: request.at,
        });
        source.revision += 1;
        let mut resend = UploadBatch::building(
            self.tenant_id.clone(),
            request.new_batch_id.clone(),
            request.by.clone(),
            request.at,
            request.at,
        );
        resend.state = BatchState::Built;
        resend.owner = None;
        resend.lease_until = None;
        resend.lines = request.lines.clone();
        // One row per goods code re-sent: the report's 変動数 counts those.
        resend.change_count = request.lines.len();
        resend.csv_key = request.csv_key.clone();
        resend.follows = Some(self.batch_id.clone());
        Ok((source, resend))
    }

    /// A frozen file of drift corrections (「揃える」): `Built`, carrying `lines`
    /// as they are, the same as any other file from here on.
    pub fn alignment(
        tenant_id: TenantId,
        drift_id: &str,
        lines: Vec<UploadLine>,
        by: &str,
        at: DateTime<Utc>,
        csv_key: String,
    ) -> Self {
        let mut batch = UploadBatch::building(
            tenant_id,
            alignment_batch_id(drift_id),
            by.to_string(),
            at,
            at,
        );
        batch.state = BatchState::Built;
        batch.owner = None;
        batch.lease_until = None;
        batch.change_count = lines.len();
        batch.lines = lines;
        batch.csv_key = Some(csv_key);
        batch.aligns = Some(drift_id.to_string());
        batch
    }

    /// What a store checks before it keeps a batch frozen outside the ledger
    /// ([`UploadBatch::alignment`]): the tenant's, `Built`, with lines.
    pub fn check_freezable(&self, tenant: &TenantId) -> Result<(), BatchRuleError> {
        let batch_id = || self.batch_id.clone();
        if self.tenant_id != *tenant {
            return Err(BatchRuleError::Missing {
                batch_id: batch_id(),
                what: "belongs to another tenant",
            });
        }
        if self.state != BatchState::Built {
            return Err(BatchRuleError::WrongState {
                batch_id: batch_id(),
                actual: self.state,
                expected: BatchState::Built,
            });
        }
        if self.lines.is_empty() {
            return Err(BatchRuleError::Missing {
                batch_id: batch_id(),
                what: "a frozen file needs lines",
            });
        }
        Ok(())
    }

    /// Whether `owner` may (re)claim this `Building` batch at `now`: its own
    /// lease, or anyone's that ran out.
    pub fn claimable_by(&self, owner: &str, now: DateTime<Utc>) -> bool {
        self.state == BatchState::Building
            && (self.owner.as_deref() == Some(owner)
                || self.lease_until.is_none_or(|until| until <= now))
    }

    /// `owner` takes (or renews) the build lease.
    pub fn take_over(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<UploadBatch, BatchRuleError> {
        if !self.claimable_by(owner, now) {
            return Err(self.held_or_wrong(BatchState::Building));
        }
        let mut next = self.clone();
        next.owner = Some(owner.to_string());
        next.lease_until = Some(lease_until);
        next.updated_at = now.max(self.updated_at);
        next.revision += 1;
        Ok(next)
    }

    /// `Building` → `Built` (or `Empty` when no line is left), by the lease holder.
    pub fn freeze(
        &self,
        owner: &str,
        content: &BuiltContent,
    ) -> Result<UploadBatch, BatchRuleError> {
        if self.state != BatchState::Building || self.owner.as_deref() != Some(owner) {
            return Err(self.held_or_wrong(BatchState::Building));
        }
        let mut next = self.clone();
        next.state = if content.lines.is_empty() {
            BatchState::Empty
        } else {
            BatchState::Built
        };
        next.lines = content.lines.clone();
        next.parked = content.parked.clone();
        next.notes = content.notes.clone();
        next.change_count = content.change_count;
        next.oldest_change_at = content.oldest_change_at;
        next.csv_key = content.csv_key.clone();
        next.lease_until = None;
        next.updated_at = content.at.max(self.updated_at);
        next.revision += 1;
        Ok(next)
    }

    fn held_or_wrong(&self, expected: BatchState) -> BatchRuleError {
        if self.state == expected {
            BatchRuleError::HeldByOther {
                batch_id: self.batch_id.clone(),
            }
        } else {
            BatchRuleError::WrongState {
                batch_id: self.batch_id.clone(),
                actual: self.state,
                expected,
            }
        }
    }

    /// The record after step `t`, or why the step is refused.
    pub fn apply(&self, t: &Transition) -> Result<UploadBatch, BatchRuleError> {
        let batch_id = || self.batch_id.clone();
        if self.state != t.from {
            return Err(BatchRuleError::WrongState {
                batch_id: batch_id(),
                actual: self.state,
                expected: t.from,
            });
        }
        if self.revision != t.expected_revision {
            return Err(BatchRuleError::Stale {
                batch_id: batch_id(),
                actual: self.revision,
                expected: t.expected_revision,
            });
        }
        if !can_transition(t.from, t.to) {
            return Err(BatchRuleError::NotAllowed {
                batch_id: batch_id(),
                from: t.from,
                to: t.to,
            });
        }
        let missing = |what| BatchRuleError::Missing {
            batch_id: batch_id(),
            what,
        };
        let mut next = self.clone();
        if t.from == BatchState::NeedsAttention {
            next.decision = Some(
                t.decision
                    .clone()
                    .ok_or(missing("a held batch needs a person's decision"))?,
            );
        }
        match t.to {
            BatchState::Uploading => {
                next.upload_started_at = Some(t.at);
                next.upload_attempts += 1;
            }
            BatchState::Uploaded => {
                next.que_id = Some(
                    t.que_id
                        .clone()
                        .ok_or(missing("uploaded needs a queue id"))?,
                );
            }
            BatchState::Succeeded | BatchState::Failed => {
                next.outcome = Some(
                    t.outcome
                        .clone()
                        .ok_or(missing("a finished queue needs its outcome"))?,
                );
            }
            BatchState::NeedsAttention => next.candidates = t.candidates.clone(),
            _ => {}
        }
        if t.from == BatchState::Building {
            next.lease_until = None;
        }
        // A step without an error keeps the last one: the history then still
        // shows why an earlier attempt was retried.
        if let Some(error) = &t.error {
            next.last_error = Some(error.clone());
        }
        next.state = t.to;
        next.updated_at = t.at;
        next.revision += 1;
        Ok(next)
    }

    /// Whether a report still has to tell the operator how this batch ended.
    pub fn awaits_report(&self) -> bool {
        self.reported_in.is_none()
            && matches!(self.state, BatchState::Succeeded | BatchState::Failed)
    }

    /// The record once report `report_id` carries its outcome. Only once: a second
    /// report of the same outcome is refused, so no queue is reported twice.
    pub fn mark_reported(&self, report_id: &str) -> Result<UploadBatch, BatchRuleError> {
        if let Some(done) = &self.reported_in {
            return Err(BatchRuleError::AlreadyReported {
                batch_id: self.batch_id.clone(),
                report_id: done.clone(),
            });
        }
        if !self.awaits_report() {
            return Err(BatchRuleError::WrongState {
                batch_id: self.batch_id.clone(),
                actual: self.state,
                expected: BatchState::Succeeded,
            });
        }
        let mut next = self.clone();
        next.reported_in = Some(report_id.to_string());
        next.revision += 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BatchState::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn batch_errors_read_typed_and_from_records_that_hold_only_the_message() {
        let typed = BatchError::new(BatchErrorKind::Unproven, "候補のキュー: 1,2");
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(serde_json::from_str::<BatchError>(&json).unwrap(), typed);

        let legacy_token: BatchError =
            serde_json::from_str(r#""token error (002004): expired""#).unwrap();
        assert_eq!(legacy_token.kind, BatchErrorKind::Token);
        assert_eq!(legacy_token.message, "token error (002004): expired");
        let legacy_other: BatchError = serde_json::from_str(r#""upload refused""#).unwrap();
        assert_eq!(legacy_other.kind, BatchErrorKind::Refused);
    }

    fn built() -> UploadBatch {
        let b = UploadBatch::building(
            TenantId("t".into()),
            "b1".into(),
            "r1".into(),
            at(0),
            at(300),
        );
        b.freeze(
            "r1",
            &BuiltContent {
                lines: vec![UploadLine {
                    goods_code: "A".into(),
                    delta: -1,
                }],
                at: at(1),
                oldest_change_at: None,
                ..BuiltContent::default()
            },
        )
        .unwrap()
    }

    fn failed() -> UploadBatch {
        let b = built();
        let b = b.apply(&Transition::of(&b, Uploading, at(2))).unwrap();
        let mut t = Transition::of(&b, Uploaded, at(3));
        t.que_id = Some("7".into());
        let b = b.apply(&t).unwrap();
        let mut t = Transition::of(&b, Failed, at(4));
        t.outcome = Some(QueueOutcome::Failed {
            row_errors: vec![],
            raw_message: String::new(),
            rows: vec![],
        });
        b.apply(&t).unwrap()
    }

    fn resend_request(of: &UploadBatch, id: &str) -> FollowUpRequest {
        FollowUpRequest {
            expected_revision: of.revision,
            new_batch_id: id.into(),
            lines: of.lines.clone(),
            csv_key: None,
            by: "op@example.test".into(),
            at: at(10),
        }
    }

    #[test]
    fn a_failed_file_is_re_sent_once_on_the_revision_read() {
        let source = failed();
        let (marked, resend) = source
            .start_follow_up(&resend_request(&source, "b2"))
            .unwrap();
        assert_eq!(marked.follow_up.as_ref().unwrap().batch_id, "b2");
        assert_eq!(marked.revision, source.revision + 1);
        assert_eq!(
            (resend.state, resend.follows.as_deref()),
            (Built, Some("b1"))
        );
        assert_eq!(resend.lines, source.lines);
        // A second request, on the old or the new revision, is refused.
        let err = marked
            .start_follow_up(&resend_request(&marked, "b3"))
            .unwrap_err();
        assert!(
            matches!(err, BatchRuleError::AlreadyFollowedUp { .. }),
            "{err}"
        );
        let mut stale = source.clone();
        stale.revision += 5;
        let err = stale
            .start_follow_up(&resend_request(&source, "b3"))
            .unwrap_err();
        assert!(matches!(err, BatchRuleError::Stale { .. }), "{err}");
        // Only failed files, and only with something to send.
        assert!(
            built()
                .start_follow_up(&resend_request(&built(), "b4"))
                .is_err()
        );
        let mut empty = resend_request(&source, "b5");
        empty.lines.clear();
        assert!(matches!(
            source.start_follow_up(&empty),
            Err(BatchRuleError::Missing { .. })
        ));
    }

    #[test]
    fn a_stale_runner_cannot_repeat_uploading_built_uploading() {
        let uploading = built()
            .apply(&Transition::of(&built(), Uploading, at(2)))
            .unwrap();
        // Two runners both read `uploading` (answer lost) and both decide to send again.
        let seen_by_a = uploading.clone();
        let seen_by_b = uploading.clone();
        let back = uploading
            .apply(&Transition::of(&seen_by_a, Built, at(700)))
            .unwrap();
        let again = back
            .apply(&Transition::of(&back, Uploading, at(701)))
            .unwrap();
        assert_eq!(again.upload_attempts, 2);
        assert_eq!(
            again.upload_started_at,
            Some(at(701)),
            "grace runs from the latest attempt"
        );
        // B's step was planned on the revision both read: refused, although the state matches.
        let err = again
            .apply(&Transition::of(&seen_by_b, Built, at(702)))
            .unwrap_err();
        assert!(matches!(err, BatchRuleError::Stale { .. }), "{err}");
    }

    #[test]
    fn every_step_bumps_the_revision_and_checks_its_fields() {
        let b = built();
        assert_eq!(b.revision, 2);
        let up = b.apply(&Transition::of(&b, Uploading, at(2))).unwrap();
        assert_eq!(up.revision, 3);
        let err = up.apply(&Transition::of(&up, Uploaded, at(3))).unwrap_err();
        assert!(matches!(err, BatchRuleError::Missing { .. }));
        let mut t = Transition::of(&up, Uploaded, at(3));
        t.que_id = Some("9".into());
        let done = up.apply(&t).unwrap();
        assert_eq!((done.state, done.que_id.as_deref()), (Uploaded, Some("9")));
        let err = done
            .apply(&Transition::of(&done, Built, at(4)))
            .unwrap_err();
        assert!(matches!(err, BatchRuleError::NotAllowed { .. }));
    }

    #[test]
    fn a_held_batch_moves_only_with_a_decision() {
        let b = built();
        let up = b.apply(&Transition::of(&b, Uploading, at(2))).unwrap();
        let mut hold = Transition::of(&up, NeedsAttention, at(3));
        hold.candidates = vec![QueueCandidate {
            que_id: "7".into(),
            created_at: "2027-01-15 17:00:00".into(),
            upload_name: String::new(),
            client_file_name: "在庫.csv".into(),
        }];
        let held = up.apply(&hold).unwrap();
        assert_eq!(held.candidates.len(), 1);
        assert!(held.apply(&Transition::of(&held, Built, at(4))).is_err());
        let mut t = Transition::of(&held, Built, at(4));
        t.decision = Some(OperatorDecision {
            action: DecisionAction::Reupload,
            by: "admin@shop.example".into(),
            at: at(4),
            que_id: None,
        });
        let again = held.apply(&t).unwrap();
        assert_eq!(
            again.decision.as_ref().map(|d| d.by.as_str()),
            Some("admin@shop.example")
        );
    }

    #[test]
    fn leases_and_freezing() {
        let b = UploadBatch::building(
            TenantId("t".into()),
            "b1".into(),
            "r1".into(),
            at(0),
            at(300),
        );
        assert!(
            b.take_over("r2", at(10), at(310)).is_err(),
            "lease still runs"
        );
        let taken = b.take_over("r2", at(300), at(600)).unwrap();
        assert_eq!(taken.owner.as_deref(), Some("r2"));
        assert!(
            taken.freeze("r1", &BuiltContent::default()).is_err(),
            "r1 lost its lease"
        );
        let empty = taken
            .freeze(
                "r2",
                &BuiltContent {
                    at: at(301),
                    oldest_change_at: None,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((empty.state, empty.updated_at), (Empty, at(301)));
    }

    fn queue(id: &str, upload_name: &str) -> QueueCandidate {
        QueueCandidate {
            que_id: id.into(),
            created_at: "2027-01-15 17:00:00".into(),
            upload_name: upload_name.into(),
            client_file_name: String::new(),
        }
    }

    #[test]
    fn only_a_queue_proven_ours_is_adopted() {
        // An operator's screen upload in the window is not ours: adopt the API one.
        assert_eq!(
            find_lost_upload(vec![queue("1", "商品マスタ一括登録"), queue("2", "NE_API")]),
            LostUpload::Adopt(queue("2", "NE_API"))
        );
        // Only the operator's upload: ours never arrived.
        assert_eq!(
            find_lost_upload(vec![queue("1", "商品マスタ一括登録")]),
            LostUpload::NotFound
        );
        assert_eq!(find_lost_upload(vec![]), LostUpload::NotFound);
        // NextEngine gives no names: a lone queue proves nothing, so it is held.
        assert_eq!(
            find_lost_upload(vec![queue("3", "")]),
            LostUpload::Ambiguous(vec![queue("3", "")])
        );
        // Two API uploads, or an API upload beside an unnamed one: held.
        assert!(matches!(
            find_lost_upload(vec![queue("4", "NE_API"), queue("5", "NE_API")]),
            LostUpload::Ambiguous(q) if q.len() == 2
        ));
        assert!(matches!(
            find_lost_upload(vec![queue("4", "NE_API"), queue("6", ""), queue("7", "x")]),
            LostUpload::Ambiguous(q) if q.len() == 2
        ));
    }

    #[test]
    fn an_outcome_is_reported_once() {
        let b = built();
        let up = b.apply(&Transition::of(&b, Uploading, at(2))).unwrap();
        let mut t = Transition::of(&up, Uploaded, at(3));
        t.que_id = Some("9".into());
        let uploaded = up.apply(&t).unwrap();
        assert!(!uploaded.awaits_report());
        assert!(uploaded.mark_reported("rep1").is_err());
        let mut t = Transition::of(&uploaded, Succeeded, at(4));
        t.outcome = Some(QueueOutcome::Succeeded);
        let done = uploaded.apply(&t).unwrap();
        assert!(done.awaits_report());
        let told = done.mark_reported("rep1").unwrap();
        assert!(!told.awaits_report());
        assert!(matches!(
            told.mark_reported("rep2"),
            Err(BatchRuleError::AlreadyReported { .. })
        ));
    }
}
