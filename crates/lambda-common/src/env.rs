//! Configuration the template passes as environment variables.

use anyhow::bail;

pub const NEXTENGINE_API_URL: &str = "SNE_NEXTENGINE_API_URL";
pub const NEXTENGINE_SIGNIN_URL: &str = "SNE_NEXTENGINE_SIGNIN_URL";
pub const NEXTENGINE_CLIENT_ID: &str = "SNE_NEXTENGINE_CLIENT_ID";
pub const NEXTENGINE_CLIENT_SECRET_PARAM: &str = "SNE_NEXTENGINE_CLIENT_SECRET_PARAM";
/// Local and test override only: the template never sets it, so on AWS the secret
/// lives in SSM Parameter Store and nowhere in the function configuration.
pub const NEXTENGINE_CLIENT_SECRET: &str = "SNE_NEXTENGINE_CLIENT_SECRET";
pub const SESSION_SECRET_PARAM: &str = "SNE_SESSION_SECRET_PARAM";
/// Local and test override of the session key, like the client secret's.
pub const SESSION_SECRET: &str = "SNE_SESSION_SECRET";
pub const SMAREGI_API_URL: &str = "SNE_SMAREGI_API_URL";
/// The スマレジ・プラットフォームAPI app (empty client id: no Platform intake).
pub const SMAREGI_PLATFORM_CLIENT_ID: &str = "SNE_SMAREGI_PLATFORM_CLIENT_ID";
pub const SMAREGI_PLATFORM_CLIENT_SECRET_PARAM: &str = "SNE_SMAREGI_PLATFORM_CLIENT_SECRET_PARAM";
/// Local and test override only, like the NextEngine client secret's.
pub const SMAREGI_PLATFORM_CLIENT_SECRET: &str = "SNE_SMAREGI_PLATFORM_CLIENT_SECRET";
pub const SMAREGI_PLATFORM_ID_URL: &str = "SNE_SMAREGI_PLATFORM_ID_URL";
pub const SMAREGI_PLATFORM_API_URL: &str = "SNE_SMAREGI_PLATFORM_API_URL";
/// The header the app's webhook settings add (default `x-smaregi-ne-secret`).
pub const SMAREGI_PLATFORM_WEBHOOK_HEADER: &str = "SNE_SMAREGI_PLATFORM_WEBHOOK_HEADER";
pub const SMAREGI_PLATFORM_WEBHOOK_SECRET_PARAM: &str = "SNE_SMAREGI_PLATFORM_WEBHOOK_SECRET_PARAM";
/// Local and test override only.
pub const SMAREGI_PLATFORM_WEBHOOK_SECRET: &str = "SNE_SMAREGI_PLATFORM_WEBHOOK_SECRET";
pub const PUBLIC_URL: &str = "SNE_PUBLIC_URL";
pub const MAIL_FROM: &str = "SNE_MAIL_FROM";
/// The run queue (SQS FIFO) the webhook and the dispatcher send to.
pub const RUN_QUEUE_URL: &str = "SNE_RUN_QUEUE_URL";
/// The quiet window in seconds: the run queue's delay, and the span within
/// which the webhook's messages for one tenant are one (default 5).
pub const RUN_QUIET_SECONDS: &str = "SNE_RUN_QUIET_SECONDS";

/// The run queue's URL and quiet window from the environment.
pub fn run_queue() -> anyhow::Result<(String, std::time::Duration)> {
    run_queue_from(|name| std::env::var(name).ok())
}

pub fn run_queue_from(
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(String, std::time::Duration)> {
    let value = |name: &str| {
        get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(url) = value(RUN_QUEUE_URL) else {
        bail!("environment variable {RUN_QUEUE_URL} is not set");
    };
    let quiet = match value(RUN_QUIET_SECONDS) {
        None => 5,
        Some(text) => match text.parse::<u64>() {
            // The queue's delay may be 0 to 900 seconds.
            Ok(secs) if (1..=900).contains(&secs) => secs,
            _ => bail!("{RUN_QUIET_SECONDS} must be whole seconds from 1 to 900, not {text:?}"),
        },
    };
    Ok((url, std::time::Duration::from_secs(quiet)))
}

/// External endpoints and identities; the real services are the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub nextengine_api_url: String,
    pub nextengine_signin_url: String,
    pub nextengine_client_id: String,
    pub smaregi_api_url: String,
    /// Base URL browsers reach the admin screen at, without a trailing `/`.
    pub public_url: String,
    pub mail_from: String,
    /// `SNE_API_CALLS_PER_SECOND_PER_TENANT` / `SNE_API_CALLS_PER_SECOND`: per
    /// function instance, so the stack's global rate is the process rate times
    /// the runner's maximum concurrency.
    pub rate: sne_ports::RateLimits,
}

impl Endpoints {
    pub fn from_env() -> anyhow::Result<Endpoints> {
        Endpoints::from_lookup(|name| std::env::var(name).ok())
    }

    /// Empty values count as unset: CloudFormation cannot omit a variable whose
    /// parameter was left blank, it passes `""`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Endpoints> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let mail_from = or(MAIL_FROM, "");
        if mail_from.is_empty() {
            bail!("{MAIL_FROM} is not set: reports need a verified SES sender");
        }
        Ok(Endpoints {
            nextengine_api_url: or(NEXTENGINE_API_URL, sne_nextengine::DEFAULT_API_BASE_URL),
            nextengine_signin_url: or(
                NEXTENGINE_SIGNIN_URL,
                sne_nextengine::DEFAULT_SIGN_IN_BASE_URL,
            ),
            nextengine_client_id: or(NEXTENGINE_CLIENT_ID, ""),
            smaregi_api_url: or(SMAREGI_API_URL, sne_smaregi::DEFAULT_API_URL),
            public_url: or(PUBLIC_URL, "").trim_end_matches('/').to_string(),
            mail_from,
            rate: sne_ports::ApiRateLimit::limits_from(&lookup).map_err(anyhow::Error::msg)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn blank_values_fall_back_to_the_real_services() {
        let e = Endpoints::from_lookup(lookup(&[
            (MAIL_FROM, "noreply@shop.example"),
            (NEXTENGINE_API_URL, "  "),
            (PUBLIC_URL, "https://abc.lambda-url.ap-northeast-1.on.aws/"),
        ]))
        .unwrap();
        assert_eq!(e.nextengine_api_url, sne_nextengine::DEFAULT_API_BASE_URL);
        assert_eq!(e.smaregi_api_url, sne_smaregi::DEFAULT_API_URL);
        assert_eq!(e.public_url, "https://abc.lambda-url.ap-northeast-1.on.aws");
    }

    #[test]
    fn a_missing_sender_stops_the_cold_start() {
        let err = Endpoints::from_lookup(lookup(&[])).unwrap_err();
        assert!(err.to_string().contains(MAIL_FROM));
    }
}
