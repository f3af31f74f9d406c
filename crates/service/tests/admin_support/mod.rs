//! Shared by the admin screen tests: the service on a real socket with both
//! simulators (as in `tests/src/lib.rs`), two tenants, and a cookie-keeping
//! client that drives the router in-process.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sne_domain::TenantId;
use sne_domain::tenant::Tenant;
use sne_ports::FixedClock;
use sne_ports::RunTrigger;
use sne_service::run::{Jobs, run_tenant};
use sne_service::tenants::{NewTenant, create_tenant};
use sne_service::{AdminContext, Context};
use sne_simulators::nextengine::{NeConfig, NeSim, SeedGoods};
use sne_simulators::smaregi::{SmaregiConfig, SmaregiSim};
use sne_test_support::tenants::connect_to_nextengine;
use sne_test_support::{CLIENT_ID, CLIENT_SECRET, Contexts, Server, Wiring};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tower::ServiceExt;

pub const COMPANY: &str = "shop";
pub const CONTRACT_A: &str = "c-a";
pub const CONTRACT_B: &str = "c-b";
pub const SMAREGI_TOKEN_A: &str = "smaregi-token-a";
pub const EMAIL_A: &str = "a@shop.example";
pub const EMAIL_B: &str = "b@shop.example";
pub const PASSWORD: &str = "correct-password";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ne: NeSim,
    pub smaregi: SmaregiSim,
    /// The jobs' context; a test may swap its ports, and [`Env::admin`] follows.
    pub ctx: Context,
    /// The admin screen's 今すぐ実行; its requests arrive in `runs_requested`.
    pub trigger: Arc<dyn RunTrigger>,
    /// Present when the env runs on a clock the test moves.
    pub clock: Option<Arc<FixedClock>>,
    pub url: String,
    pub a: Tenant,
    pub b: Tenant,
    pub runs_requested: mpsc::UnboundedReceiver<sne_service::trigger::RunRequest>,
    _server: Server,
}

fn local() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl Env {
    /// `fixed_clock`: the service's clock is a `FixedClock` the test can move.
    pub async fn start(fixed_clock: bool) -> Env {
        let ne = NeSim::start(
            NeConfig {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                auto_login_company: COMPANY.into(),
                ..NeConfig::default()
            },
            local(),
        )
        .await
        .unwrap();
        ne.add_company(COMPANY, "テスト商店");
        ne.seed_goods(
            COMPANY,
            ["8000001", "8000002"]
                .iter()
                .map(|code| SeedGoods {
                    goods_id: code.to_string(),
                    goods_name: format!("商品{code}"),
                    stock_quantity: 10,
                    allocation_quantity: 0,
                })
                .collect(),
        );
        let smaregi = SmaregiSim::start(SmaregiConfig::default(), local())
            .await
            .unwrap();
        smaregi.add_contract(CONTRACT_A, SMAREGI_TOKEN_A);
        smaregi.add_store(CONTRACT_A, "1", "本店");

        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::bind().await;
        let url = server.url.clone();
        let fixed = fixed_clock.then(|| Arc::new(FixedClock::new(chrono::Utc::now())));
        let mut wiring = Wiring::new(dir.path())
            .simulators(&ne, &smaregi)
            .platform_sim(&smaregi)
            .public_url(&url)
            .ne_attempts(2);
        if let Some(clock) = &fixed {
            wiring = wiring.clock(clock.clone());
        }
        let Contexts {
            jobs: ctx,
            admin,
            requests: runs_requested,
        } = wiring.contexts();
        server.serve(sne_service::http::router(admin.clone()));
        let new = |name: &str, contract: &str, email: &str| NewTenant {
            name: name.into(),
            contract_id: contract.into(),
            admin_email: email.into(),
            admin_password: PASSWORD.into(),
            notify_emails: vec![format!("notify-{email}")],
            counted_stores: None,
        };
        let a = create_tenant(&ctx, new("A商店", CONTRACT_A, EMAIL_A))
            .await
            .unwrap();
        let b = create_tenant(&ctx, new("B商店", CONTRACT_B, EMAIL_B))
            .await
            .unwrap();
        Env {
            dir,
            ne,
            smaregi,
            ctx,
            trigger: admin.trigger,
            clock: fixed,
            url,
            a,
            b,
            runs_requested,
            _server: server,
        }
    }

    /// The admin screen over the jobs' core as it is now.
    pub fn admin(&self) -> AdminContext {
        AdminContext {
            core: self.ctx.core.clone(),
            trigger: self.trigger.clone(),
        }
    }

    pub fn router(&self) -> Router {
        sne_service::http::router(self.admin())
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.as_ref().expect("fixed clock").advance(by);
    }

    pub async fn tenant(&self, id: &TenantId) -> Tenant {
        self.ctx.storage.tenant(id).await.unwrap().unwrap()
    }

    /// Gives tenant A working NextEngine tokens.
    pub async fn connect_a(&self) {
        connect_to_nextengine(&self.ctx, &self.a.id, &self.ne, COMPANY).await;
    }

    /// One stock change for tenant A pushed through the webhook, then a run, so
    /// an uploaded batch with a CSV exists. Returns its id.
    pub async fn upload_batch_for_a(&self, history_id: u32) -> String {
        let a = self.tenant(&self.a.id).await;
        let body = push_body(CONTRACT_A, &a.customer_code, history_id);
        let (status, _) = webhook(&self.router(), body).await;
        assert_eq!(status, StatusCode::OK);
        let run = run_tenant(&self.ctx, &a, Jobs::Upload, "test-run").await;
        let batches = self.ctx.storage.recent_batches(&a.id, 10).await.unwrap();
        let batch = batches
            .into_iter()
            .find(|b| b.csv_key.is_some())
            .unwrap_or_else(|| panic!("no batch with a CSV; report: {:?}", run.report));
        batch.batch_id
    }
}

pub async fn webhook(router: &Router, body: String) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(
            Request::post("/smaregi/webhook")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A push of one change for `contract` authenticated with `code`.
pub fn push_body(contract: &str, code: &str, history_id: u32) -> String {
    let params = format!(
        r#"{{"data":[{{"table_name":"Stock","rows":[{{"id":"{history_id}","storeId":"1","productId":"8000001","amount":"-1","stockAmount":"4","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}}]}}]}}"#
    );
    serde_urlencoded::to_string([
        ("proc_name", "stock_send"),
        ("params", params.as_str()),
        ("contract_id", contract),
        ("code", code),
    ])
    .unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn redirects_to(&self, path: &str) -> bool {
        self.status.is_redirection() && self.location.as_deref() == Some(path)
    }
}

/// A browser as far as the router can tell: keeps cookies, follows nothing.
pub struct Browser {
    pub router: Router,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(env: &Env) -> Browser {
        Browser {
            router: env.router(),
            cookies: BTreeMap::new(),
        }
    }

    pub async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Reply {
        let mut request = request;
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, jar);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, attrs) = value.split_once(';').unwrap_or((value, ""));
            let (name, val) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), val.to_string());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path), Body::empty()).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(
            Request::post(path).header("content-type", "application/x-www-form-urlencoded"),
            Body::from(serde_urlencoded::to_string(fields).unwrap()),
        )
        .await
    }

    pub async fn post_file(
        &mut self,
        path: &str,
        csrf: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Reply {
        let boundary = "----sne-test-boundary";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post(path).header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            ),
            Body::from(body),
        )
        .await
    }

    /// Follows one redirect within the admin screen (PRG), returning the page.
    pub async fn follow(&mut self, reply: Reply) -> Reply {
        assert!(
            reply.status.is_redirection(),
            "expected a redirect, got {} {}",
            reply.status,
            reply.text()
        );
        let to = reply.location.clone().unwrap();
        self.get(&to).await
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text());
        csrf_of(&page.text())
    }

    pub async fn login(&mut self, email: &str, password: &str) -> Reply {
        let csrf = self.csrf("/login").await;
        self.post(
            "/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    pub async fn logged_in(env: &Env, email: &str) -> Browser {
        let mut browser = Browser::new(env);
        let reply = browser.login(email, PASSWORD).await;
        assert!(
            reply.redirects_to("/"),
            "login: {} {}",
            reply.status,
            reply.text()
        );
        browser
    }
}

pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_string()
}
