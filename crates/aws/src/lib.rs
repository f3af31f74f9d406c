//! AWS adapters of smaregi-ne's ports: every storage port on one DynamoDB table,
//! blobs in S3, mail through SES v2, 「今すぐ実行」 as EventBridge events and the
//! run queue on SQS FIFO.
//! See `README.md` beside this crate for the table design.

mod config;
mod dynamo;
mod events;
mod s3;
mod ses;
mod sqs;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{AwsSettings, DEFAULT_REGION, SettingsError, aws_sdk_config, s3_client};
pub use dynamo::{DynamoStore, MAX_TRANSACTION_ITEMS};
pub use events::{DRIFT_CHECK_REQUESTED, EVENT_SOURCE, EventBridgeTrigger, RUN_REQUESTED};
pub use s3::{MAX_URL_EXPIRY, S3BlobStore};
pub use ses::SesMailer;
pub use sqs::{SQS_BATCH_LIMIT, SqsRunQueue};

// Re-exported so callers build clients without naming the SDK crates themselves.
pub use aws_config::SdkConfig;
pub use {aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_s3, aws_sdk_sesv2, aws_sdk_sqs};
