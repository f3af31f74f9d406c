//! SDK configuration and the environment the Lambdas are given.

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where the service runs when nothing else says: the shops are in Japan.
pub const DEFAULT_REGION: &str = "ap-northeast-1";

/// The SDK's standard chain (credentials, `AWS_REGION`, `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`, so a moto endpoint needs no code), with
/// [`DEFAULT_REGION`] when no region is configured.
pub async fn aws_sdk_config() -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

/// An S3 client; path-style addressing is what moto (and any endpoint without
/// wildcard DNS) needs.
pub fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Names of the AWS resources, from the environment the SAM template sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// `SNE_TABLE_NAME` (required).
    pub table_name: String,
    /// `SNE_BUCKET_NAME` (required).
    pub bucket_name: String,
    /// `SNE_EVENT_BUS_NAME`; EventBridge's `default` bus when unset.
    pub event_bus_name: String,
    /// `SNE_S3_FORCE_PATH_STYLE` = `1`/`true`/`yes`; off when unset.
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl AwsSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`AwsSettings::from_env`], reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| {
            value(name)
                .ok_or_else(|| SettingsError(format!("environment variable {name} is not set")))
        };
        let force_path_style = match value("SNE_S3_FORCE_PATH_STYLE").as_deref() {
            None => false,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                other => {
                    return Err(SettingsError(format!(
                        "SNE_S3_FORCE_PATH_STYLE must be true or false, not {other:?}"
                    )));
                }
            },
        };
        Ok(AwsSettings {
            table_name: required("SNE_TABLE_NAME")?,
            bucket_name: required("SNE_BUCKET_NAME")?,
            event_bus_name: value("SNE_EVENT_BUS_NAME").unwrap_or_else(|| "default".into()),
            s3_force_path_style: force_path_style,
        })
    }

    pub fn s3_client(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        s3_client(sdk, self.s3_force_path_style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<AwsSettings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AwsSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn required_names_and_defaults() {
        let s = settings(&[("SNE_TABLE_NAME", "t"), ("SNE_BUCKET_NAME", "b")]).unwrap();
        assert_eq!(s.event_bus_name, "default");
        assert!(!s.s3_force_path_style);
        let err = settings(&[("SNE_BUCKET_NAME", "b")]).unwrap_err();
        assert!(err.0.contains("SNE_TABLE_NAME"), "{err}");
    }

    #[test]
    fn path_style_flag_is_parsed_strictly() {
        let base = [("SNE_TABLE_NAME", "t"), ("SNE_BUCKET_NAME", "b")];
        let with = |v: &'static str| {
            let mut vars = base.to_vec();
            vars.push(("SNE_S3_FORCE_PATH_STYLE", v));
            settings(&vars)
        };
        assert!(with("true").unwrap().s3_force_path_style);
        assert!(with("1").unwrap().s3_force_path_style);
        assert!(!with("false").unwrap().s3_force_path_style);
        assert!(with("maybe").is_err());
    }
}
