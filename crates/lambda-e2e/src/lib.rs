//! A fake Lambda runtime API — the part of the Lambda service a `bootstrap` talks to
//! (`lambda_runtime` only needs these routes) — so tests run the real binaries:
//! queue an event, the binary fetches it with `next`, its answer is recorded.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How one invocation ended, as the binary reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// `/error`: the handler failed; the body is Lambda's error document.
    Error(Value),
}

#[derive(Default)]
struct State_ {
    queue: VecDeque<(String, Value)>,
    results: HashMap<String, Outcome>,
    init_error: Option<String>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct FakeRuntime {
    state: Arc<Mutex<State_>>,
    queued: Arc<Notify>,
    answered: Arc<Notify>,
}

const PREFIX: &str = "/2018-06-01/runtime";

impl FakeRuntime {
    /// Serves on an ephemeral loopback port; the value for `AWS_LAMBDA_RUNTIME_API`
    /// (`host:port`, no scheme) is returned with the runtime.
    pub async fn start() -> anyhow::Result<(FakeRuntime, String)> {
        let runtime = FakeRuntime::default();
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((runtime, addr.to_string()))
    }

    /// Queues `event` and waits for the binary's answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> anyhow::Result<Outcome> {
        let id = {
            let mut state = self.state.lock().unwrap();
            state.next_id += 1;
            let id = format!("00000000-0000-4000-8000-{:012}", state.next_id);
            state.queue.push_back((id.clone(), event));
            id
        };
        self.queued.notify_waiters();
        let wait = async {
            loop {
                let answered = self.answered.notified();
                {
                    let state = self.state.lock().unwrap();
                    if let Some(outcome) = state.results.get(&id) {
                        return Ok(outcome.clone());
                    }
                    if let Some(e) = &state.init_error {
                        anyhow::bail!("the function failed to start: {e}");
                    }
                }
                answered.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| anyhow::anyhow!("no answer to invocation {id} within {timeout:?}"))?
    }
}

/// Long-polls like the real API: a binary with nothing to do waits here.
async fn next(State(rt): State<FakeRuntime>) -> Response {
    loop {
        let queued = rt.queued.notified();
        if let Some((id, event)) = rt.state.lock().unwrap().queue.pop_front() {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 300_000;
            let mut headers = HeaderMap::new();
            let mut set = |name: &'static str, value: String| {
                headers.insert(name, HeaderValue::from_str(&value).unwrap());
            };
            set("lambda-runtime-aws-request-id", id);
            set("lambda-runtime-deadline-ms", deadline.to_string());
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:ap-northeast-1:123456789012:function:under-test".into(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-67466a10-2d5f4a7c1b3e9a0f6c8d7e21;Parent=53995c3f42cd8ad8;Sampled=0".into(),
            );
            set("content-type", "application/json".into());
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        queued.await;
    }
}

fn record(rt: &FakeRuntime, id: String, outcome: Outcome) -> StatusCode {
    rt.state.lock().unwrap().results.insert(id, outcome);
    rt.answered.notify_waiters();
    StatusCode::ACCEPTED
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(rt): State<FakeRuntime>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(&rt, id, Outcome::Response(json(&body)))
}

async fn error(State(rt): State<FakeRuntime>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&rt, id, Outcome::Error(json(&body)))
}

async fn init_error(State(rt): State<FakeRuntime>, body: Bytes) -> StatusCode {
    rt.state.lock().unwrap().init_error = Some(String::from_utf8_lossy(&body).into_owned());
    rt.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// An SQS message as Lambda's SQS event source puts it in an event's
/// `Records` (the system attributes, `MessageGroupId` among them, by name).
pub fn sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_string(), Value::from(v.as_str())))
        .collect();
    serde_json::json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "ap-northeast-1",
    })
}
