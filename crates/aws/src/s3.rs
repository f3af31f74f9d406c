//! Blobs (the uploaded CSVs) in one S3 bucket, keys as the jobs name them.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use sne_ports::{BlobStore, StoreError, StoreResult};
use std::time::Duration;

/// S3's own ceiling for a SigV4 presigned URL.
pub const MAX_URL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    max_url_expiry: Duration,
}

impl S3BlobStore {
    /// `client` decides path-style addressing (see [`crate::s3_client`]).
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
            max_url_expiry: MAX_URL_EXPIRY,
        }
    }

    /// Caps the lifetime of download links whatever the caller asks for.
    pub fn with_max_url_expiry(mut self, max: Duration) -> Self {
        self.max_url_expiry = max.min(MAX_URL_EXPIRY);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket in the client's region (for tests and local setup;
    /// the SAM template owns the real one).
    pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), String> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let mut request = client.create_bucket().bucket(bucket);
        // us-east-1 is the one region that refuses an explicit constraint.
        if let Some(region) = client.config().region().map(|r| r.as_ref().to_string())
            && region != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DisplayErrorContext(e).to_string())
    }
}

fn unavailable(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_blob(&self, key: &str, bytes: &[u8], content_type: &str) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(unavailable(err)),
        };
        let bytes = out.body.collect().await.map_err(unavailable)?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn download_url(&self, key: &str, expires_in: Duration) -> StoreResult<Option<String>> {
        let config = PresigningConfig::expires_in(expires_in.min(self.max_url_expiry))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(unavailable)?;
        Ok(Some(request.uri().to_string()))
    }
}
