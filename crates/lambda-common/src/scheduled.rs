//! The EventBridge events the dispatchers take (a schedule firing, a
//! 「今すぐ実行」 request), and the summary of one tenant's run the runner logs.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sne_domain::TenantId;
use sne_domain::report::UploadSection;
use sne_service::run::TenantRun;

pub type ScheduledEvent = EventBridgeEvent<Value>;

/// Source and detail-type of 「今すぐ実行」 requests, as the admin screen's
/// [`sne_aws::EventBridgeTrigger`] puts them on the bus.
pub use sne_aws::{
    DRIFT_CHECK_REQUESTED, EVENT_SOURCE as RUN_REQUEST_SOURCE,
    RUN_REQUESTED as RUN_REQUEST_DETAIL_TYPE,
};
const SCHEDULE_SOURCE: &str = "aws.events";
const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    AllTenants,
    Tenant(TenantId),
}

#[derive(Debug, Deserialize)]
struct RunRequested {
    tenant_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("unexpected event: source {event_source:?}, detail-type {detail_type:?}")]
    Unexpected {
        event_source: String,
        detail_type: String,
    },
    #[error("RunRequested without a tenant_id: {0}")]
    BadRunRequest(String),
    #[error("run requested for unknown tenant {0}")]
    UnknownTenant(String),
}

/// Rejects what a dispatcher was not subscribed to, so that a mis-routed rule
/// shows up as an error (and in the alarm) instead of as an unexpected run:
/// the order importer's and the queue checker's dispatchers take their
/// schedule only.
pub fn classify_schedule(event: &ScheduledEvent) -> Result<Invocation, EventError> {
    classify_event(event, None)
}

/// The stock dispatcher's events: its schedule and 「今すぐ実行」.
pub fn classify_dispatch(event: &ScheduledEvent) -> Result<Invocation, EventError> {
    classify_event(event, Some(RUN_REQUEST_DETAIL_TYPE))
}

/// The drift checker's events: its daily schedule and 「差異を確認」.
pub fn classify_drift(event: &ScheduledEvent) -> Result<Invocation, EventError> {
    classify_event(event, Some(DRIFT_CHECK_REQUESTED))
}

fn classify_event(
    event: &ScheduledEvent,
    accepted_request: Option<&str>,
) -> Result<Invocation, EventError> {
    let source = event.source.as_str();
    let detail_type = event.detail_type.as_str();
    match (source, detail_type) {
        (SCHEDULE_SOURCE, SCHEDULE_DETAIL_TYPE) => Ok(Invocation::AllTenants),
        (RUN_REQUEST_SOURCE, requested) if accepted_request == Some(requested) => {
            let request: RunRequested = serde_json::from_value(event.detail.clone())
                .map_err(|e| EventError::BadRunRequest(e.to_string()))?;
            let tenant = request.tenant_id.trim();
            if tenant.is_empty() {
                return Err(EventError::BadRunRequest("tenant_id is empty".into()));
            }
            Ok(Invocation::Tenant(TenantId(tenant.to_string())))
        }
        _ => Err(EventError::Unexpected {
            event_source: source.to_string(),
            detail_type: detail_type.to_string(),
        }),
    }
}

/// One tenant's run as the runner logs it: free of secrets and presigned links.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantSummary {
    pub tenant_id: String,
    /// `nothing`, `uploaded`, `token_error`, `suspended`, `failed` or `unresolved`.
    pub upload: String,
    pub que_id: Option<String>,
    pub mails_sent: usize,
    pub mails_failed: usize,
}

impl From<&TenantRun> for TenantSummary {
    fn from(run: &TenantRun) -> Self {
        let (upload, que_id) = match &run.report.upload {
            UploadSection::Nothing { .. } => ("nothing", None),
            UploadSection::Uploaded { que_id, .. } => ("uploaded", Some(que_id.to_string())),
            UploadSection::TokenError { .. } => ("token_error", None),
            UploadSection::Suspended { .. } => ("suspended", None),
            UploadSection::Failed { .. } => ("failed", None),
            UploadSection::Unresolved { .. } => ("unresolved", None),
        };
        TenantSummary {
            tenant_id: run.tenant.id.0.clone(),
            upload: upload.to_string(),
            que_id,
            mails_sent: run.mail.sent,
            mails_failed: run.mail.failed,
        }
    }
}
