//! The admin screen in a real browser: headless Debian Chromium driven over
//! WebDriver (ChromeDriver) against the service on 127.0.0.1 with both simulators.
//!
//! `scripts/test` installs `chromium` and `chromium-driver`; without them this
//! test fails and says so, because a skipped browser test proves nothing.
//! The dashboard screenshot lands in `target/admin-dashboard.png`.

mod admin_support;

use admin_support::*;
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn require(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: the admin browser test needs Debian's chromium and chromium-driver. \
             Run `scripts/test` (it installs them) or `apt-get install -y --no-install-recommends chromium chromium-driver`."
        )
    })
}

/// ChromeDriver for the length of the test.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(chromedriver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(reply) = client.get(format!("{}/status", driver.base)).send().await
            && let Ok(body) = reply.json::<Value>().await
            && body["value"]["ready"] == json!(true)
        {
            return driver;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The few WebDriver commands the test needs, over plain HTTP.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn new(driver: &Driver, chromium: &Path, profile: &Path) -> Session {
        let http = reqwest::Client::new();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            "--lang=ja",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let reply: Value = http
            .post(format!("{}/session", driver.base))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {reply}"));
        Session {
            http,
            url: format!("{}/session/{id}", driver.base),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = reply["value"].get("error") {
            panic!("WebDriver {path}: {error} {}", reply["value"]["message"]);
        }
        reply["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        value[ELEMENT_KEY].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{id}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits for a flash message of the page a form leads to. The form pages quote
    /// the same messages in their explanations (the manual's wording), so plain text
    /// would match the page still on screen.
    async fn wait_for_flash(&self, message: &str) -> String {
        self.wait_for_text(&format!("<p>{message}</p>")).await
    }

    /// Waits until the page shows `needle` (navigation after a click is async).
    async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.source().await;
            if source.contains(needle) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "page {} never showed {needle:?}:\n{source}",
                self.current_url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cookie_header(&self) -> String {
        self.call(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap(),
                    c["value"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn set_window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn screenshot(&self, path: &Path) {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }

    async fn close(&self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uses_the_admin_screen_in_chromium() {
    let chromium = require("chromium");
    let chromedriver = require("chromedriver");
    let mut env = Env::start(false).await;
    let driver = start_driver(&chromedriver).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Session::new(&driver, &chromium, profile.path()).await;

    // Log in.
    browser.goto(&format!("{}/", env.url)).await;
    browser.wait_for_text("ログイン").await;
    assert!(browser.current_url().await.ends_with("/login"));
    browser.type_into("#email", EMAIL_A).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("#login").await;
    browser.wait_for_text("ダッシュボード").await;
    assert_eq!(browser.text("#ne-state").await, "未接続");

    // 再取得 → NextEngine's sign-in (simulator) → callback → 「トークンを更新しました」.
    browser.click("#reacquire").await;
    browser.wait_for_flash("トークンを更新しました").await;
    assert!(
        browser
            .text("#flash")
            .await
            .contains("トークンを更新しました")
    );
    assert_eq!(browser.text("#ne-state").await, "有効");
    assert!(
        env.ctx
            .storage
            .ne_tokens(&env.a.id)
            .await
            .unwrap()
            .is_some()
    );

    // The order import on, then off.
    browser.goto(&format!("{}/order-import", env.url)).await;
    browser.wait_for_text("受注数取り込み").await;
    browser.click("#enabled-on").await;
    browser.type_into("#contract_id", CONTRACT_A).await;
    browser.type_into("#store_id", "1").await;
    // Pasted with spaces around it. (A typed line break would press Enter and submit
    // the form by itself; the handler tests cover pasted line breaks.)
    browser
        .type_into("#access_token", &format!("  {SMAREGI_TOKEN_A} "))
        .await;
    browser.click("#order-import-submit").await;
    browser.wait_for_flash("受注数取り込みを開始しました").await;
    assert_eq!(browser.text("#order-import-state").await, "実行中");
    browser.click("#enabled-off").await;
    browser.click("#order-import-submit").await;
    browser.wait_for_flash("受注数取り込みを停止しました").await;
    assert_eq!(browser.text("#order-import-state").await, "停止中");
    assert!(!env.tenant(&env.a.id).await.order_import.enabled);

    // A stock change goes through the pipeline; its CSV downloads with this session.
    let batch_id = env.upload_batch_for_a(51).await;
    browser.goto(&format!("{}/history", env.url)).await;
    browser.wait_for_text(&batch_id).await;
    let href = browser.attribute("a.csv-link", "href").await;
    assert!(
        href.contains(&format!("/history/batches/{batch_id}/csv")),
        "{href}"
    );
    let link = if href.starts_with("http") {
        href
    } else {
        format!("{}{href}", env.url)
    };
    let cookies = browser.cookie_header().await;
    let download = reqwest::Client::new()
        .get(&link)
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let bytes = download.bytes().await.unwrap();
    let batch = env
        .ctx
        .storage
        .batch(&env.a.id, &batch_id)
        .await
        .unwrap()
        .unwrap();
    let stored = env
        .ctx
        .blobs
        .get_blob(batch.csv_key.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes.to_vec(), stored);
    assert!(String::from_utf8_lossy(&bytes).contains("8000001,-1"));
    // Without the session the same link is no download.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&link)
        .send()
        .await
        .unwrap();
    assert!(anonymous.status().is_redirection());

    // 在庫差異: Smaregi counted 6 of 8000002 (NextEngine has 10); 差異を確認,
    // the lines, 「揃える」's preview, the confirmation.
    env.smaregi
        .add_product(CONTRACT_A, "8000002", "CODE-2", "商品2");
    env.smaregi
        .set_stock(CONTRACT_A, "1", "8000002", 6)
        .await
        .unwrap();
    browser.goto(&format!("{}/drift", env.url)).await;
    browser.wait_for_text("初回の在庫合わせ").await;
    browser.click("#drift-check").await;
    browser
        .wait_for_text("在庫差異の確認を受け付けました")
        .await;
    // The process's dispatcher would run the requested check; here the test does.
    loop {
        match env.runs_requested.recv().await.expect("the drift request") {
            sne_service::trigger::RunRequest::Drift(tenant) => {
                let tenant = env.tenant(&tenant).await;
                sne_service::drift::run_drift(
                    &env.ctx,
                    &tenant,
                    "r-browser",
                    sne_service::run::Mailing::Send,
                )
                .await;
                break;
            }
            _ => continue,
        }
    }
    browser.goto(&format!("{}/drift", env.url)).await;
    browser.wait_for_text("id=\"drift-lines\"").await;
    assert_eq!(browser.text("#drift-count").await, "1");
    let lines = browser.text("#drift-lines").await;
    assert!(lines.contains("8000002"), "{lines}");
    // History reading is on (the order import switched it on), so the 01 マスタ
    // row is pending: the correction is what is left once it has gone up too.
    let check = sne_service::drift::latest_check(&env.ctx, &env.a.id)
        .await
        .unwrap()
        .unwrap();
    let line = &check.lines[0];
    let correction = line.correction.expect("a correction");
    assert_eq!(10 + line.pending + correction, 6, "{line:?}");
    browser.click("#drift-align").await;
    browser.wait_for_text("id=\"align-preview\"").await;
    assert!(
        browser
            .text("#align-preview")
            .await
            .contains(&format!("{correction:+}"))
    );
    browser.click("#align-confirm").await;
    browser.wait_for_text("1件の商品の補正を登録しました").await;
    let built = env
        .ctx
        .storage
        .batches_in_state(&env.a.id, sne_domain::batch_state::BatchState::Built)
        .await
        .unwrap();
    assert!(
        built
            .iter()
            .any(|b| b.aligns.as_deref() == Some(check.id.as_str())
                && b.lines[0].delta == correction),
        "{built:?}"
    );

    // The dashboard, as the operator sees it, on a desktop and on a phone.
    browser.goto(&format!("{}/", env.url)).await;
    browser.wait_for_text("最近の実行結果").await;
    // The file that went up above: its lag from the oldest change to the upload.
    let lag = browser.text("#upload-lag").await;
    assert!(lag.contains("秒") && lag.ends_with("の送信)"), "{lag}");
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    browser
        .screenshot(&target.join("admin-dashboard.png"))
        .await;
    browser.set_window(400, 1400).await;
    browser
        .screenshot(&target.join("admin-dashboard-phone.png"))
        .await;
    browser.close().await;
    drop(driver);
}
