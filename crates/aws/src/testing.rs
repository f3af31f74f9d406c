//! A moto server for tests (feature `testing`), so the adapters run against the
//! real AWS SDK without AWS or Docker. moto comes from the repository's `.venv`,
//! which `scripts/test-env.sh` creates; without it the tests fail, never skip.
//!
//! One server per test binary ([`MotoServer::shared`]) with a unique table,
//! bucket or bus per test ([`unique_name`]) keeps parallel tests apart; a
//! server of one's own ([`MotoServer::start`]) is there for tests that must
//! [`MotoServer::reset`].

use crate::DynamoStore;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The region every test client uses.
pub const TEST_REGION: &str = "ap-northeast-1";

pub struct MotoServer {
    child: Child,
    endpoint: String,
}

/// One mail as moto recorded it (`/moto-api/data.json` → `ses` → `RawMessage`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SentEmail {
    pub id: String,
    pub source: String,
    #[serde(default)]
    pub destinations: Vec<String>,
    /// The whole MIME message as sent.
    pub raw_data: String,
}

static SHARED: OnceCell<MotoServer> = OnceCell::const_new();
const MOTO_SERIAL: &str = include_str!("moto_serial.py");

/// The repository root: two levels above this crate's manifest.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A name no other test of any binary running now uses (table, bucket, bus…):
/// lower case, digits and dashes, valid for all of them.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl MotoServer {
    /// Starts moto from `<repo>/.venv` on a free port and waits until it answers.
    /// Panics with what to do when the venv is missing.
    ///
    /// moto runs through `moto_serial.py` (moto's own server with requests
    /// handled one at a time, see the script for why) rather than the
    /// `moto_server` entry point; the same package, the same API.
    pub async fn start() -> MotoServer {
        let venv = repo_root().join(".venv");
        let python = venv.join("bin/python");
        assert!(
            venv.join("bin/moto_server").exists() && python.exists(),
            "moto is missing from {}: run scripts/test-env.sh once (it creates the venv)",
            venv.display()
        );
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&python)
                .args(["-c", MOTO_SERIAL, "127.0.0.1", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
            let endpoint = format!("http://127.0.0.1:{port}");
            match wait_until_up(&endpoint, &mut child).await {
                Ok(()) => return MotoServer { child, endpoint },
                Err(e) => {
                    last_error = e;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("moto did not come up: {last_error}");
    }

    /// One server for the whole test binary, started on first use. It lives in a
    /// static, which is never dropped: the server exits by itself with the binary.
    pub async fn shared() -> &'static MotoServer {
        SHARED.get_or_init(MotoServer::start).await
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration aimed at this server, with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(TEST_REGION))
            .test_credentials()
            .load()
            .await
    }

    /// A fresh table named `table` and a store on it.
    pub async fn dynamo_store(&self, table: &str) -> DynamoStore {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config().await);
        DynamoStore::create_table(&client, table)
            .await
            .unwrap_or_else(|e| panic!("create table {table}: {e}"));
        DynamoStore::new(client, table)
    }

    /// An S3 client with the path-style addressing moto needs.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        crate::s3_client(&self.sdk_config().await, true)
    }

    /// Forgets every resource of every service (all tests on this server).
    pub async fn reset(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .expect("moto reset");
        assert!(
            response.status().is_success(),
            "moto reset: {}",
            response.status()
        );
    }

    /// Every raw mail sent through this server so far, oldest first.
    pub async fn sent_emails(&self) -> Vec<SentEmail> {
        let data: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/moto-api/data.json", self.endpoint))
            .send()
            .await
            .expect("moto data.json")
            .json()
            .await
            .expect("moto data.json is JSON");
        let raw = data
            .get("ses")
            .and_then(|ses| ses.get("RawMessage"))
            .cloned()
            .unwrap_or(serde_json::Value::Array(vec![]));
        serde_json::from_value(raw).expect("moto RawMessage records")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_until_up(endpoint: &str, child: &mut Child) -> Result<(), String> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto_server exited with {status}"));
        }
        if let Ok(response) = client
            .get(format!("{endpoint}/moto-api/data.json"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no answer from {endpoint} within a minute"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
