//! The admin screen through the router: every route, and the security cases.

mod admin_support;

use admin_support::*;
use async_trait::async_trait;
use axum::http::StatusCode;
use sne_ports::{BlobStore, PairSource, StoreResult};
use sne_service::admin::{EPOCH_CURSOR, SESSION_COOKIE};
use sne_service::trigger::RunRequest;
use std::sync::Arc;

const LOCKED: &str = "ログイン試行回数が多すぎます。しばらくしてから再度お試しください。";
const WRONG: &str = "メールアドレスまたはパスワードが正しくありません。";

fn assert_login_redirect(reply: &Reply, what: &str) {
    assert!(
        reply.redirects_to("/login"),
        "{what}: expected a redirect to /login, got {} {:?}",
        reply.status,
        reply.location
    );
}

#[tokio::test]
async fn every_page_needs_a_login() {
    let env = Env::start(true).await;
    let mut anon = Browser::new(&env);
    for path in [
        "/",
        "/settings",
        "/history",
        "/order-import",
        "/history/batches/b1/csv",
        "/nextengine/callback?uid=u&state=s",
        "/drift",
        "/drift/d1/csv",
        "/drift/d1/align",
    ] {
        assert_login_redirect(&anon.get(path).await, path);
    }
    for path in [
        "/logout",
        "/run-now",
        "/settings",
        "/settings/customer-code",
        "/settings/intake",
        "/settings/mapping/confirm",
        "/order-import",
        "/nextengine/reacquire",
        "/drift/check",
        "/drift/d1/align",
    ] {
        assert_login_redirect(&anon.post(path, &[("csrf", "x")]).await, path);
    }
    let login = anon.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    let html = login.text();
    assert!(html.contains("ログイン") && html.contains("name=\"password\""));
    assert!(html.contains("name=\"viewport\""), "usable on a phone");
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_pages_render() {
    let env = Env::start(true).await;
    let mut browser = Browser::new(&env);
    let reply = browser.login(EMAIL_A, PASSWORD).await;
    assert!(reply.redirects_to("/"));
    let set_cookie = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(SESSION_COOKIE))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http locally");
    assert!(!set_cookie.contains(PASSWORD));

    let dashboard = browser.get("/").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    let html = dashboard.text();
    assert!(html.contains("ダッシュボード") && html.contains("A商店"));
    assert!(html.contains("未接続"), "no tokens yet");
    assert!(html.contains("再取得"));
    assert_eq!(dashboard.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(dashboard.headers.get("x-frame-options").unwrap(), "DENY");

    let settings = browser.get("/settings").await.text();
    assert!(
        settings.contains(&env.a.customer_code),
        "the code to copy into Smaregi"
    );
    assert!(!settings.contains(&env.b.customer_code));
    let history = browser.get("/history").await;
    assert_eq!(history.status, StatusCode::OK);
    let import = browser.get("/order-import").await.text();
    for text in [
        "実行する",
        "実行しない",
        "スマレジ契約ID",
        "取り込み先スマレジ側店舗ID",
        "スマレジアクセストークン",
        ">設定</button>",
    ] {
        assert!(import.contains(text), "order import form lacks {text}");
    }
    // Logged in, the login page sends the operator home.
    assert!(browser.get("/login").await.redirects_to("/"));
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_https() {
    let mut env = Env::start(true).await;
    env.ctx.config.public_url = "https://admin.example.jp".into();
    let mut browser = Browser::new(&env);
    let reply = browser.login(EMAIL_A, PASSWORD).await;
    let cookies: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_login_until_the_window_passes() {
    let env = Env::start(true).await;
    let mut browser = Browser::new(&env);
    let unknown = browser.login("nobody@shop.example", "whatever").await;
    assert!(
        unknown.text().contains(WRONG),
        "unknown emails look like wrong passwords"
    );
    for attempt in 1..=4 {
        let reply = browser.login(EMAIL_A, "wrong-password").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.text().contains(WRONG), "attempt {attempt}");
        assert!(!browser.cookies.contains_key(SESSION_COOKIE));
    }
    let fifth = browser.login(EMAIL_A, "wrong-password").await;
    assert!(fifth.text().contains(LOCKED));
    let right = browser.login(EMAIL_A, PASSWORD).await;
    assert!(
        right.text().contains(LOCKED),
        "even the right password is refused"
    );
    assert!(!browser.cookies.contains_key(SESSION_COOKIE));
    // The other tenant is not affected.
    assert!(browser.login(EMAIL_B, PASSWORD).await.redirects_to("/"));

    env.advance(chrono::Duration::minutes(16));
    let mut later = Browser::new(&env);
    assert!(later.login(EMAIL_A, PASSWORD).await.redirects_to("/"));
}

#[tokio::test]
async fn the_login_form_needs_its_csrf_token() {
    let env = Env::start(true).await;
    let mut browser = Browser::new(&env);
    browser.get("/login").await;
    let reply = browser
        .post("/login", &[("email", EMAIL_A), ("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(!browser.cookies.contains_key(SESSION_COOKIE));
}

#[tokio::test]
async fn an_expired_session_goes_back_to_the_login() {
    let env = Env::start(true).await;
    let mut browser = Browser::logged_in(&env, EMAIL_A).await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
    env.advance(chrono::Duration::hours(8) + chrono::Duration::seconds(1));
    assert_login_redirect(&browser.get("/").await, "after 8 hours");
    assert_login_redirect(&browser.get("/settings").await, "after 8 hours");
}

#[tokio::test]
async fn a_tampered_or_foreign_cookie_is_not_a_session() {
    let env = Env::start(true).await;
    let mut browser = Browser::logged_in(&env, EMAIL_A).await;
    let original = browser.cookies[SESSION_COOKIE].clone();
    let (payload, tag) = original.split_once('.').unwrap();

    // Claim tenant B with A's signature.
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let forged = claims.replace(&env.a.id.0, &env.b.id.0);
    assert_ne!(forged, claims);
    let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged));
    // Extend the expiry.
    let longer = claims.replace("\"x\":", "\"x\":9");
    let longer = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(longer));
    for bad in [
        forged,
        longer,
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
        payload.to_string(),
        "garbage".to_string(),
    ] {
        browser.cookies.insert(SESSION_COOKIE.into(), bad.clone());
        assert_login_redirect(&browser.get("/").await, &bad);
    }
    // A cookie signed by another process's key (each default secret is random).
    let fresh = Env::start(true).await;
    let mut elsewhere = Browser::new(&fresh);
    elsewhere.cookies.insert(SESSION_COOKIE.into(), original);
    assert_login_redirect(&elsewhere.get("/").await, "another key");
}

#[tokio::test]
async fn logout_revokes_the_old_cookie_and_every_other_session() {
    let env = Env::start(true).await;
    let mut first = Browser::logged_in(&env, EMAIL_A).await;
    let mut second = Browser::logged_in(&env, EMAIL_A).await;
    let mut other_tenant = Browser::logged_in(&env, EMAIL_B).await;
    let old_cookie = first.cookies[SESSION_COOKIE].clone();
    let csrf = first.csrf("/").await;
    let reply = first.post("/logout", &[("csrf", &csrf)]).await;
    assert!(reply.redirects_to("/login"));
    assert!(
        !first.cookies.contains_key(SESSION_COOKIE),
        "cookie cleared"
    );
    let login_page = first.follow(reply).await;
    assert!(login_page.text().contains("ログアウトしました"));

    first.cookies.insert(SESSION_COOKIE.into(), old_cookie);
    assert_login_redirect(&first.get("/").await, "old cookie after logout");
    assert_login_redirect(&second.get("/").await, "other browser of the tenant");
    assert_eq!(other_tenant.get("/").await.status, StatusCode::OK);
    let epoch = env
        .ctx
        .storage
        .cursor(&env.a.id, EPOCH_CURSOR)
        .await
        .unwrap();
    assert_eq!(epoch.as_deref(), Some("1"));
    // A new login works again.
    assert!(first.login(EMAIL_A, PASSWORD).await.redirects_to("/"));
    assert_eq!(first.get("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let mut env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    let b_token = b.csrf("/").await;
    let before = env.tenant(&env.a.id).await;
    let settings = [
        ("notify_emails", "evil@attacker.example"),
        ("counted_stores", ""),
        ("stock_master", "nextengine"),
        ("mapping_mode", "product_id"),
    ];
    for token in [None, Some("wrong"), Some(b_token.as_str())] {
        let with = |fields: &[(&'static str, &'static str)]| {
            let mut fields: Vec<(&str, &str)> = fields.to_vec();
            if let Some(t) = token {
                fields.push(("csrf", t));
            }
            fields
        };
        for (path, fields) in [
            ("/settings", with(&settings)),
            ("/settings/customer-code", with(&[("confirm", "1")])),
            ("/run-now", with(&[])),
            ("/logout", with(&[])),
            ("/nextengine/reacquire", with(&[])),
            (
                "/order-import",
                with(&[
                    ("enabled", "1"),
                    ("contract_id", CONTRACT_A),
                    ("store_id", "1"),
                    ("access_token", SMAREGI_TOKEN_A),
                ]),
            ),
            (
                "/settings/mapping/confirm",
                with(&[("staged", "0123456789abcdef0123456789abcdef")]),
            ),
        ] {
            let reply = a.post(path, &fields).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} with {token:?}");
            assert!(reply.text().contains("不正な送信"), "{path}");
        }
        let upload = a
            .post_file(
                "/settings/mapping",
                token.unwrap_or(""),
                "m.csv",
                b"product_id,goods_code\n1,A\n",
            )
            .await;
        assert_eq!(upload.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(env.tenant(&env.a.id).await, before, "nothing changed");
    assert_eq!(a.get("/").await.status, StatusCode::OK, "still logged in");
    assert!(env.runs_requested.try_recv().is_err(), "no run requested");
    assert!(!a.cookies.contains_key("sne_ne_bind"));
    assert!(
        env.ctx
            .storage
            .product_pairs(&env.a.id, PairSource::Table)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn run_now_queues_a_run_for_the_tenant() {
    let mut env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/history").await;
    let reply = a
        .post("/run-now", &[("csrf", &csrf), ("back", "/history")])
        .await;
    assert!(reply.redirects_to("/history"));
    let page = a.follow(reply).await.text();
    assert!(page.contains("実行を受け付けました"));
    assert_eq!(
        env.runs_requested.try_recv().unwrap(),
        RunRequest::Now(env.a.id.clone())
    );
    // `back` never leads off the site.
    let reply = a
        .post(
            "/run-now",
            &[("csrf", &csrf), ("back", "https://evil.example/")],
        )
        .await;
    assert!(reply.redirects_to("/"));
}

#[tokio::test]
async fn history_lists_uploads_and_serves_only_the_tenants_own_csv() {
    let env = Env::start(true).await;
    env.connect_a().await;
    let batch_id = env.upload_batch_for_a(17).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let history = a.get("/history").await.text();
    let batch = env
        .ctx
        .storage
        .batch(&env.a.id, &batch_id)
        .await
        .unwrap()
        .unwrap();
    let que_id = batch.que_id.clone().expect("uploaded").to_string();
    assert!(history.contains(&que_id), "queue id shown");
    assert!(history.contains(&format!("/history/batches/{batch_id}/csv")));

    let csv = a.get(&format!("/history/batches/{batch_id}/csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    let disposition = csv
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"zaiko_"),
        "{disposition}"
    );
    let stored = env
        .ctx
        .blobs
        .get_blob(batch.csv_key.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(csv.body, stored);
    assert!(csv.text().starts_with("syohin_code,zaiko_su"));

    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    let denied = b.get(&format!("/history/batches/{batch_id}/csv")).await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);
    assert!(!denied.text().contains("syohin_code"));
    assert!(!b.get("/history").await.text().contains(&batch_id));
    assert_eq!(
        a.get("/history/batches/nope/csv").await.status,
        StatusCode::NOT_FOUND
    );

    // The run's report shows on the dashboard with its three results.
    let dashboard = a.get("/").await.text();
    assert!(dashboard.contains("アップロード:成功"), "{dashboard}");
}

/// A blob store that hands out presigned links, as S3 does, and remembers every
/// link it signed.
struct Presigning {
    inner: Arc<dyn BlobStore>,
    signed: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

impl Presigning {
    fn over(inner: Arc<dyn BlobStore>) -> Arc<Presigning> {
        Arc::new(Presigning {
            inner,
            signed: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn signed(&self) -> Vec<(String, std::time::Duration)> {
        self.signed.lock().unwrap().clone()
    }
}

#[async_trait]
impl BlobStore for Presigning {
    async fn put_blob(&self, key: &str, bytes: &[u8], content_type: &str) -> StoreResult<()> {
        self.inner.put_blob(key, bytes, content_type).await
    }
    async fn get_blob(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.get_blob(key).await
    }
    async fn download_url(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> StoreResult<Option<String>> {
        self.signed
            .lock()
            .unwrap()
            .push((key.to_string(), expires_in));
        Ok(Some(format!(
            "https://bucket.example/{key}?X-Amz-Expires={}&X-Amz-Signature=abc",
            expires_in.as_secs()
        )))
    }
}

#[tokio::test]
async fn downloads_redirect_to_a_presigned_link_where_the_store_has_one() {
    let mut env = Env::start(true).await;
    env.connect_a().await;
    let batch_id = env.upload_batch_for_a(18).await;
    env.ctx.blobs = Presigning::over(env.ctx.blobs.clone());
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let reply = a.get(&format!("/history/batches/{batch_id}/csv")).await;
    assert!(reply.status.is_redirection());
    let location = reply.location.unwrap();
    assert!(
        location.starts_with(&format!("https://bucket.example/tenants/{}/", env.a.id)),
        "{location}"
    );
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    assert_eq!(
        b.get(&format!("/history/batches/{batch_id}/csv"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// Every mail handed to the mailer, kept for the test to read.
#[derive(Default)]
struct Captured(std::sync::Mutex<Vec<sne_ports::Mail>>);

#[async_trait]
impl sne_ports::Mailer for Captured {
    async fn send(&self, mail: &sne_ports::Mail) -> Result<String, sne_ports::mail::MailError> {
        let mut mails = self.0.lock().unwrap();
        mails.push(mail.clone());
        Ok(format!("m-{}", mails.len()))
    }
}

#[tokio::test]
async fn the_report_links_to_the_download_route_never_to_a_presigned_s3_url() {
    let mut env = Env::start(true).await;
    env.connect_a().await;
    // As on AWS: the blob store would presign S3 links, with a Lambda's temporary
    // credentials that die within hours.
    let s3 = Presigning::over(env.ctx.blobs.clone());
    env.ctx.blobs = s3.clone();
    let mailer = Arc::new(Captured::default());
    env.ctx.mailer = mailer.clone();
    env.ctx.config.public_url = format!("{}/", env.url);
    let a_tenant = env.tenant(&env.a.id).await;
    let body = push_body(CONTRACT_A, &a_tenant.customer_code, 19);
    assert_eq!(webhook(&env.router(), body).await.0, StatusCode::OK);
    let run =
        sne_service::run::run_tenant(&env.ctx, &a_tenant, sne_service::run::Jobs::Upload, "r1")
            .await;
    let sne_domain::report::UploadSection::Uploaded { batch_id, .. } = &run.report.upload else {
        panic!("expected an upload: {:?}", run.report.upload);
    };
    assert!(s3.signed().is_empty(), "the report presigned nothing");

    let link = format!("{}/history/batches/{batch_id}/csv", env.url);
    let mails = mailer.0.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "the run's report was sent");
    for body in [run.report.render().body, mails[0].body.clone()] {
        assert!(
            body.contains(&format!(
                "ダウンロード (管理画面へのログインが必要です): {link}\n"
            )),
            "{body}"
        );
        for secret in [
            "X-Amz-",
            "Signature",
            "Credential",
            "bucket.example",
            a_tenant.customer_code.as_str(),
        ] {
            assert!(!body.contains(secret), "{secret} in\n{body}");
        }
    }

    // The link itself: a login first, then a link minted for this click only.
    let path = format!("/history/batches/{batch_id}/csv");
    assert_login_redirect(&Browser::new(&env).get(&path).await, &path);
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    assert_eq!(b.get(&path).await.status, StatusCode::NOT_FOUND);
    assert!(s3.signed().is_empty(), "nothing signed for another tenant");
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let reply = a.get(&path).await;
    assert!(reply.status.is_redirection(), "{}", reply.status);
    let signed = s3.signed();
    assert_eq!(signed.len(), 1, "one link per click");
    let (key, lifetime) = &signed[0];
    assert!(key.starts_with(&format!("tenants/{}/", env.a.id)), "{key}");
    assert!(
        *lifetime <= std::time::Duration::from_secs(15 * 60),
        "short-lived: {lifetime:?}"
    );
    assert!(
        reply
            .location
            .unwrap()
            .starts_with(&format!("https://bucket.example/{key}?"))
    );
}

#[tokio::test]
async fn without_a_public_url_the_report_has_no_link_but_the_attachment() {
    let mut env = Env::start(true).await;
    env.connect_a().await;
    let s3 = Presigning::over(env.ctx.blobs.clone());
    env.ctx.blobs = s3.clone();
    env.ctx.config.public_url = String::new();
    let a_tenant = env.tenant(&env.a.id).await;
    let body = push_body(CONTRACT_A, &a_tenant.customer_code, 20);
    assert_eq!(webhook(&env.router(), body).await.0, StatusCode::OK);
    let run =
        sne_service::run::run_tenant(&env.ctx, &a_tenant, sne_service::run::Jobs::Upload, "r1")
            .await;
    let body = run.report.render().body;
    assert!(body.contains("このメールに添付しています"), "{body}");
    assert!(
        !body.contains("ダウンロード") && !body.contains("X-Amz-"),
        "{body}"
    );
    assert!(s3.signed().is_empty());
}

/// Follows NextEngine's sign-in like a browser would and returns the callback
/// path with `uid` and `state`.
async fn sign_in_at_nextengine(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let reply = client.get(url).send().await.unwrap();
    assert!(
        reply.status().is_redirection(),
        "sign-in: {}",
        reply.status()
    );
    let location = reply.headers()["location"].to_str().unwrap().to_string();
    let at = location.find("/nextengine/callback").expect("our callback");
    location[at..].to_string()
}

#[tokio::test]
async fn reacquiring_the_token_goes_through_nextengine_and_is_bound_to_the_session() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;

    // Without pressing 再取得 first, a callback (e.g. a link someone sent) is refused.
    let stray = sign_in_at_nextengine(&env.ctx.nextengine.sign_in_url()).await;
    let refused = a.get(&stray).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().contains("再取得"));
    assert!(
        env.ctx
            .storage
            .ne_tokens(&env.a.id)
            .await
            .unwrap()
            .is_none()
    );

    let csrf = a.csrf("/").await;
    let reply = a.post("/nextengine/reacquire", &[("csrf", &csrf)]).await;
    assert!(reply.status.is_redirection());
    let sign_in = reply.location.clone().unwrap();
    assert!(sign_in.starts_with(&env.ne.base_url()), "{sign_in}");
    assert!(a.cookies.contains_key("sne_ne_bind"));

    // Another session of the same tenant cannot use this browser's binding.
    let mut other = Browser::logged_in(&env, EMAIL_A).await;
    other
        .cookies
        .insert("sne_ne_bind".into(), a.cookies["sne_ne_bind"].clone());
    let callback = sign_in_at_nextengine(&sign_in).await;
    assert_eq!(other.get(&callback).await.status, StatusCode::FORBIDDEN);

    let done = a.get(&callback).await;
    assert!(done.redirects_to("/"));
    assert!(
        !a.cookies.contains_key("sne_ne_bind"),
        "one sign-in per 再取得"
    );
    let dashboard = a.follow(done).await.text();
    assert!(dashboard.contains("トークンを更新しました"), "{dashboard}");
    assert!(dashboard.contains("有効"));
    let tokens = env.ctx.storage.ne_tokens(&env.a.id).await.unwrap().unwrap();
    assert!(
        dashboard.contains(
            &tokens
                .refresh_token_end
                .format("%Y/%m/%d %H:%M")
                .to_string()
        )
    );
    assert!(
        !dashboard.contains(&tokens.access_token),
        "tokens never on a page"
    );
    // The message is shown once.
    assert!(!a.get("/").await.text().contains("トークンを更新しました"));

    // The same state again (a reload, a replay): NextEngine refuses it, in Japanese.
    let csrf = a.csrf("/").await;
    a.post("/nextengine/reacquire", &[("csrf", &csrf)]).await;
    let replay = a.get(&callback).await;
    assert!(replay.redirects_to("/"));
    let page = a.follow(replay).await.text();
    assert!(
        page.contains("ネクストエンジンのログインの有効期限が切れているか、すでに使用済みです"),
        "{page}"
    );
    assert_eq!(
        env.ctx.storage.ne_tokens(&env.a.id).await.unwrap().unwrap(),
        tokens,
        "a refused callback changes nothing"
    );
    // Tenant B never got tokens.
    assert!(
        env.ctx
            .storage
            .ne_tokens(&env.b.id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_order_import_form_switches_on_and_off_with_the_manuals_messages() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/order-import").await;

    let bad = a
        .post(
            "/order-import",
            &[
                ("csrf", &csrf),
                ("enabled", "1"),
                ("contract_id", CONTRACT_A),
                ("store_id", "1"),
                ("access_token", "wrong-token"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let html = bad.text();
    assert!(html.contains("スマレジアクセストークン"), "{html}");
    assert!(
        !html.contains("wrong-token"),
        "the token is not written back"
    );
    assert!(!env.tenant(&env.a.id).await.order_import.enabled);

    // Pasted with spaces and line breaks, as the manual warns.
    let on = a
        .post(
            "/order-import",
            &[
                ("csrf", &csrf),
                ("enabled", "1"),
                ("contract_id", &format!(" {CONTRACT_A} ")),
                ("store_id", "1\r\n"),
                ("access_token", &format!("  {SMAREGI_TOKEN_A}\r\n")),
            ],
        )
        .await;
    assert!(on.redirects_to("/order-import"), "{}", on.text());
    let page = a.follow(on).await.text();
    assert!(page.contains("受注数取り込みを開始しました"), "{page}");
    assert!(page.contains("実行中"));
    assert!(!page.contains(SMAREGI_TOKEN_A), "secrets never on a page");
    let tenant = env.tenant(&env.a.id).await;
    assert!(tenant.order_import.enabled);
    assert_eq!(tenant.smaregi_api.unwrap().access_token, SMAREGI_TOKEN_A);

    let off = a
        .post(
            "/order-import",
            &[
                ("csrf", &csrf),
                ("enabled", "0"),
                ("contract_id", CONTRACT_A),
                ("store_id", "1"),
                ("access_token", ""),
            ],
        )
        .await;
    let page = a.follow(off).await.text();
    assert!(page.contains("受注数取り込みを停止しました"), "{page}");
    assert!(!env.tenant(&env.a.id).await.order_import.enabled);

    // On again without re-typing the saved token.
    let again = a
        .post(
            "/order-import",
            &[
                ("csrf", &csrf),
                ("enabled", "1"),
                ("contract_id", CONTRACT_A),
                ("store_id", "1"),
                ("access_token", ""),
            ],
        )
        .await;
    assert!(
        a.follow(again)
            .await
            .text()
            .contains("受注数取り込みを開始しました")
    );
}

#[tokio::test]
async fn settings_are_validated_and_saved() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/settings").await;
    let bad = a
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("notify_emails", "shop@example.jp\nnot-an-address"),
                ("counted_stores", ""),
                ("stock_master", "smaregi"),
                ("mapping_mode", "product_id"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("not-an-address"));
    let table_without_pairs = a
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("notify_emails", "shop@example.jp"),
                ("stock_master", "smaregi"),
                ("mapping_mode", "table"),
            ],
        )
        .await;
    assert_eq!(table_without_pairs.status, StatusCode::BAD_REQUEST);
    assert!(
        table_without_pairs
            .text()
            .contains("対応表がまだ登録されていません")
    );
    assert_eq!(
        env.tenant(&env.a.id).await.notify_emails,
        env.a.notify_emails
    );

    let ok = a
        .post(
            "/settings",
            &[
                ("csrf", &csrf),
                ("notify_emails", "shop@example.jp\r\nowner@example.jp"),
                ("counted_stores", "1, 3"),
                ("stock_master", "nextengine"),
                ("mapping_mode", "product_code"),
            ],
        )
        .await;
    assert!(ok.redirects_to("/settings"));
    assert!(a.follow(ok).await.text().contains("設定を保存しました"));
    let t = env.tenant(&env.a.id).await;
    assert_eq!(t.notify_emails, vec!["shop@example.jp", "owner@example.jp"]);
    assert_eq!(
        t.counted_stores,
        Some(vec!["1".to_string(), "3".to_string()])
    );
    assert_eq!(t.stock_master, sne_domain::tenant::StockMaster::NextEngine);
    assert_eq!(t.mapping_mode, sne_domain::tenant::MappingMode::ProductCode);
    assert_eq!(env.tenant(&env.b.id).await, env.b, "B untouched");
}

#[tokio::test]
async fn a_regenerated_customer_code_retires_the_old_one_at_once() {
    let env = Env::start(true).await;
    let old = env.a.customer_code.clone();
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/settings").await;

    let unconfirmed = a.post("/settings/customer-code", &[("csrf", &csrf)]).await;
    assert!(
        a.follow(unconfirmed)
            .await
            .text()
            .contains("確認のチェック")
    );
    assert_eq!(env.tenant(&env.a.id).await.customer_code, old);

    let reply = a
        .post(
            "/settings/customer-code",
            &[("csrf", &csrf), ("confirm", "1")],
        )
        .await;
    let page = a.follow(reply).await.text();
    assert!(page.contains("お客様専用コードを再発行しました"));
    let new = env.tenant(&env.a.id).await.customer_code;
    assert_ne!(new, old);
    assert!(page.contains(&new), "the new code is shown for copying");

    let router = env.router();
    assert_eq!(
        webhook(&router, push_body(CONTRACT_A, &old, 1)).await,
        (StatusCode::BAD_REQUEST, "code_mismatch".to_string())
    );
    assert_eq!(
        webhook(&router, push_body(CONTRACT_A, &new, 1)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        env.tenant(&env.b.id).await.customer_code,
        env.b.customer_code
    );
}

async fn pairs(env: &Env, tenant: &sne_domain::TenantId) -> Vec<(String, String)> {
    let mut pairs = env
        .ctx
        .storage
        .product_pairs(tenant, PairSource::Table)
        .await
        .unwrap()
        .into_iter()
        .map(|pair| (pair.product_id.into(), pair.goods_code.into()))
        .collect::<Vec<(String, String)>>();
    pairs.sort();
    pairs
}

fn staged_id(html: &str) -> String {
    let marker = "name=\"staged\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    html[start..start + 32].to_string()
}

#[tokio::test]
async fn mapping_uploads_are_previewed_then_confirmed_in_utf8_and_shift_jis() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/settings").await;

    // UTF-8 with a BOM, Japanese header.
    let utf8 =
        "\u{feff}商品ID,商品コード\r\n8000001,ABC-001\r\n8000002,ABC-002\r\n8000003,ABC-003\r\n";
    let preview = a
        .post_file("/settings/mapping", &csrf, "対応表.csv", utf8.as_bytes())
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text());
    let html = preview.text();
    assert!(html.contains("UTF-8"));
    assert!(html.contains("id=\"added-count\">3 件"), "{html}");
    assert!(html.contains("ABC-002"));
    assert!(
        pairs(&env, &env.a.id).await.is_empty(),
        "nothing saved before confirming"
    );
    let staged = staged_id(&html);

    // Tenant B cannot confirm A's staged upload.
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    let b_csrf = b.csrf("/settings").await;
    let foreign = b
        .post(
            "/settings/mapping/confirm",
            &[("csrf", &b_csrf), ("staged", &staged)],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert!(pairs(&env, &env.b.id).await.is_empty());

    let confirmed = a
        .post(
            "/settings/mapping/confirm",
            &[("csrf", &csrf), ("staged", &staged)],
        )
        .await;
    assert!(
        a.follow(confirmed)
            .await
            .text()
            .contains("商品コード対応表を保存しました (3 件)")
    );
    assert_eq!(pairs(&env, &env.a.id).await.len(), 3);

    // Shift_JIS (as Excel saves it): one changed, one removed, one added.
    let text = "商品ID,商品コード\r\n8000001,ABC-001\r\n8000002,XYZ-002\r\n8000004,ABC-004\r\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    assert!(std::str::from_utf8(&sjis).is_err(), "really Shift_JIS");
    let html = a
        .post_file("/settings/mapping", &csrf, "taiouhyou.csv", &sjis)
        .await
        .text();
    assert!(html.contains("Shift_JIS"));
    assert!(html.contains("id=\"added-count\">1 件"));
    assert!(html.contains("id=\"changed-count\">1 件"));
    assert!(html.contains("id=\"removed-count\">1 件"));
    assert!(html.contains("XYZ-002") && html.contains("8000003"));
    let staged = staged_id(&html);
    a.post(
        "/settings/mapping/confirm",
        &[("csrf", &csrf), ("staged", &staged)],
    )
    .await;
    assert_eq!(
        pairs(&env, &env.a.id).await,
        vec![
            ("8000001".to_string(), "ABC-001".to_string()),
            ("8000002".to_string(), "XYZ-002".to_string()),
            ("8000004".to_string(), "ABC-004".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_bad_mapping_file_gets_a_clear_error_and_saves_nothing() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let csrf = a.csrf("/settings").await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"product_id,goods_code\n1,A\n1,B\n",
            "3 行目: 商品ID 1 が重複しています",
        ),
        (b"product_id,goods_code\n1\n", "2 行目: 列が足りません"),
        (b"product_id,goods_code\n", "対応表に商品の行がありません"),
        (
            &[0x82, 0xA0, 0xFF, 0xFF, 0x0A],
            "文字コードを判別できませんでした",
        ),
    ];
    for (bytes, expected) in cases {
        let reply = a
            .post_file("/settings/mapping", &csrf, "m.csv", bytes)
            .await;
        assert!(reply.redirects_to("/settings#mapping"));
        let page = a.follow(reply).await.text();
        assert!(page.contains(expected), "{expected}: {page}");
        assert!(page.contains("対応表は保存されていません"));
    }
    assert!(pairs(&env, &env.a.id).await.is_empty());
    let bogus = a
        .post(
            "/settings/mapping/confirm",
            &[("csrf", &csrf), ("staged", "../../etc")],
        )
        .await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_names_what_needs_doing() {
    let env = Env::start(true).await;
    env.connect_a().await;
    // A product NextEngine does not know is parked as 未登録商品.
    let a_tenant = env.tenant(&env.a.id).await;
    let params = r#"{"data":[{"table_name":"Stock","rows":[{"id":"40","storeId":"1","productId":"9999999","amount":"-2","stockAmount":"3","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}]}]}"#;
    let body = serde_urlencoded::to_string([
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", CONTRACT_A),
        ("code", a_tenant.customer_code.as_str()),
    ])
    .unwrap();
    assert_eq!(webhook(&env.router(), body).await.0, StatusCode::OK);
    sne_service::run::run_tenant(&env.ctx, &a_tenant, sne_service::run::Jobs::Upload, "r1").await;

    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let html = a.get("/").await.text();
    assert!(
        html.contains("未登録商品") && html.contains("9999999"),
        "{html}"
    );
    assert!(html.contains("ネクストエンジンに未登録"));
    assert!(
        html.contains("スマレジの在庫変動履歴を読み取っていません"),
        "history access recommended"
    );

    // Tokens past their end: the dashboard says so and points at 再取得.
    env.advance(chrono::Duration::days(4));
    let mut again = Browser::logged_in(&env, EMAIL_A).await;
    let html = again.get("/").await.text();
    assert!(html.contains("トークンの有効期限が切れています"), "{html}");
    assert!(html.contains("期限切れ"));
}

#[tokio::test]
async fn rows_without_id_or_time_are_counted_and_shown_as_needing_a_check() {
    let env = Env::start(true).await;
    env.connect_a().await;
    let a_tenant = env.tenant(&env.a.id).await;
    // Two −1 sales without id or time in a relative push: counted, but nothing
    // tells them from a 再送 of the same rows.
    let params = r#"{"proc_info":{"proc_detail_division":"2"},"data":[{"table_name":"Stock","rows":[
        {"storeId":"1","productId":"8000001","stockAmount":"-1","stockDivision":"02"},
        {"storeId":"1","productId":"8000001","stockAmount":"-1","stockDivision":"02"}]}]}"#;
    let body = serde_urlencoded::to_string([
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", CONTRACT_A),
        ("code", a_tenant.customer_code.as_str()),
    ])
    .unwrap();
    assert_eq!(webhook(&env.router(), body.clone()).await.0, StatusCode::OK);
    assert_eq!(webhook(&env.router(), body).await.0, StatusCode::OK);
    let run =
        sne_service::run::run_tenant(&env.ctx, &a_tenant, sne_service::run::Jobs::Upload, "r1")
            .await;

    assert!(
        matches!(
            run.report.upload,
            sne_domain::report::UploadSection::Uploaded { changes: 2, .. }
        ),
        "both sales counted once each, the resend not: {:?}",
        run.report.upload
    );
    let body = run.report.render().body;
    assert!(
        body.contains("【要確認】再送と区別できない在庫変動 2件")
            && body.contains("在庫変動履歴の読み取り"),
        "{body}"
    );

    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let html = a.get("/").await.text();
    assert!(
        html.contains("再送と区別できない在庫変動を 2 件処理しました (要確認)"),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<dd id="indistinguishable"><span class="badge warn">要確認</span> 2 件</dd>"#
        ),
        "{html}"
    );
}

#[tokio::test]
async fn rows_with_a_time_need_no_check_on_the_dashboard() {
    let env = Env::start(true).await;
    env.connect_a().await;
    env.upload_batch_for_a(41).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let html = a.get("/").await.text();
    assert!(!html.contains("再送と区別できない"), "{html}");
}

async fn history_on(env: &Env) -> bool {
    let tenant = env.tenant(&env.a.id).await;
    sne_service::stock_history::history_mode_since(&env.ctx, &tenant)
        .await
        .is_some()
}

/// Presses the stock-history switch on the settings page; returns the page after it.
async fn switch_stock_history(a: &mut Browser, on: &str) -> String {
    let csrf = a.csrf("/settings").await;
    let reply = a
        .post("/settings/stock-history", &[("csrf", &csrf), ("on", on)])
        .await;
    a.follow(reply).await.text()
}

#[tokio::test]
async fn stock_history_reading_is_switched_in_the_settings() {
    let env = Env::start(true).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    // Without Smaregi credentials the page says what to do first.
    let html = a.get("/settings").await.text();
    assert!(html.contains("未設定") && html.contains("先に"), "{html}");

    let mut tenant = env.tenant(&env.a.id).await;
    tenant.smaregi_api = Some(sne_domain::tenant::SmaregiCredentials {
        contract_id: CONTRACT_A.into(),
        access_token: SMAREGI_TOKEN_A.into(),
    });
    env.ctx.storage.update_tenant(&tenant).await.unwrap();

    // A wrong CSRF token changes nothing.
    let refused = a
        .post(
            "/settings/stock-history",
            &[("csrf", "forged"), ("on", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!history_on(&env).await);

    let html = switch_stock_history(&mut a, "1").await;
    assert!(
        html.contains("在庫変動履歴の読み取りを開始しました"),
        "{html}"
    );
    assert!(html.contains("読み取り中"), "{html}");
    assert!(history_on(&env).await);

    let html = switch_stock_history(&mut a, "0").await;
    assert!(
        html.contains("在庫変動履歴の読み取りを停止しました"),
        "{html}"
    );
    assert!(!history_on(&env).await);

    // Without 在庫情報参照 enabled in Smaregi the switch explains what is missing.
    env.smaregi
        .set_functions(CONTRACT_A, &["shipment_upd", "shipment_ref"]);
    let html = switch_stock_history(&mut a, "1").await;
    assert!(html.contains("在庫情報参照"), "{html}");
    assert!(!history_on(&env).await);
}

/// Holds one upload of tenant A as 要確認, as a run leaves it when NextEngine's
/// queue list cannot prove which queue was ours. Returns its id.
async fn hold_an_upload_of_a(env: &Env) -> String {
    sne_test_support::fixtures::hold_a_batch(
        env.ctx.storage.as_ref(),
        &env.a.id,
        "b_held",
        sne_domain::upload_csv::UploadLine {
            goods_code: "8000001".into(),
            delta: -1,
        },
        vec![sne_ports::QueueCandidate {
            que_id: "77".into(),
            created_at: "2026-12-01 10:00:00".into(),
            upload_name: String::new(),
            client_file_name: String::new(),
        }],
        env.ctx.clock.now(),
    )
    .await
    .batch_id
}

#[tokio::test]
async fn a_held_upload_is_shown_with_its_candidates_and_decided_once_by_its_own_tenant() {
    use sne_domain::batch_state::BatchState;
    let mut env = Env::start(true).await;
    let batch = hold_an_upload_of_a(&env).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let dashboard = a.get("/").await.text();
    assert!(
        dashboard.contains("アップロードが要確認です"),
        "{dashboard}"
    );
    assert!(dashboard.contains("/history#held"));
    let page = a.get("/history").await.text();
    assert!(page.contains("要確認のアップロード"), "{page}");
    assert!(page.contains(&format!("/history/held/{batch}/resolve")));
    assert!(page.contains("77") && page.contains("8000001: -1"));
    assert!(page.contains(&format!("/history/batches/{batch}/csv")));
    let path = format!("/history/held/{batch}/resolve");

    // Another tenant cannot touch it; a missing CSRF token is refused.
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    let b_csrf = b.csrf("/history").await;
    let reply = b
        .post(&path, &[("csrf", &b_csrf), ("action", "reupload")])
        .await;
    assert!(b.follow(reply).await.text().contains("見つかりません"));
    let reply = a.post(&path, &[("action", "reupload")]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let still = env
        .ctx
        .storage
        .batch(&env.a.id, &batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.state, BatchState::NeedsAttention);

    // A queue id that is no number is refused and changes nothing.
    let csrf = a.csrf("/history").await;
    let reply = a
        .post(
            &path,
            &[("csrf", &csrf), ("action", "uploaded"), ("que_id", "abc")],
        )
        .await;
    assert!(a.follow(reply).await.text().contains("半角数字"));

    let reply = a
        .post(&path, &[("csrf", &csrf), ("action", "reupload")])
        .await;
    assert!(reply.redirects_to("/history"));
    assert!(
        a.follow(reply)
            .await
            .text()
            .contains("再アップロードします")
    );
    let decided = env
        .ctx
        .storage
        .batch(&env.a.id, &batch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.state, BatchState::Built);
    assert_eq!(decided.decision.as_ref().unwrap().by, EMAIL_A);
    assert_eq!(
        env.runs_requested.try_recv().unwrap(),
        RunRequest::Now(env.a.id.clone())
    );
    let page = a.get("/history").await.text();
    assert!(!page.contains("要確認のアップロード"), "decided once");
}

/// A failed file of tenant A: one row applied, one refused (unknown goods), one
/// refused for free stock.
async fn fail_an_upload_of_a(env: &Env) -> String {
    use sne_domain::row_application::{RowFate, RowVerdict};
    let verdict = |code: &str, delta, fate, free_stock| RowVerdict {
        goods_code: code.into(),
        delta,
        fate,
        free_stock,
    };
    sne_test_support::fixtures::fail_a_batch(
        env.ctx.storage.as_ref(),
        &env.a.id,
        "b_failed",
        vec![
            verdict("8000001", -1, RowFate::Applied, false),
            verdict("8000002", 2, RowFate::Refused, false),
            verdict("8000003", -4, RowFate::Refused, true),
        ],
        env.ctx.clock.now(),
    )
    .await
    .batch_id
}

#[tokio::test]
async fn unapplied_rows_of_a_failed_file_are_re_sent_once_by_its_own_tenant() {
    use sne_domain::batch_state::BatchState;
    let mut env = Env::start(true).await;
    let batch = fail_an_upload_of_a(&env).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let page = a.get("/history").await.text();
    let path = format!("/history/batches/{batch}/resend-unapplied");
    assert!(page.contains(&path), "{page}");
    assert!(page.contains("未反映の行を再アップロード"), "{page}");
    assert!(page.contains("反映済み 1 行、未反映 2 行"), "{page}");
    assert!(
        page.contains("8000002: +2") && page.contains("8000003: -4"),
        "{page}"
    );
    assert!(page.contains("フリー在庫不足の行も含める (1 行"), "{page}");

    // Another tenant cannot touch it; a missing CSRF token is refused.
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    let b_csrf = b.csrf("/history").await;
    let reply = b.post(&path, &[("csrf", &b_csrf)]).await;
    assert!(b.follow(reply).await.text().contains("見つかりません"));
    let reply = a.post(&path, &[]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let csrf = a.csrf("/history").await;
    let reply = a.post(&path, &[("csrf", &csrf)]).await;
    assert!(reply.redirects_to("/history"));
    let flash = a.follow(reply).await.text();
    assert!(flash.contains("未反映の 1 行をファイル"), "{flash}");
    assert_eq!(
        env.runs_requested.try_recv().unwrap(),
        RunRequest::Now(env.a.id.clone())
    );
    let source = env
        .ctx
        .storage
        .batch(&env.a.id, &batch)
        .await
        .unwrap()
        .unwrap();
    let follow_up = source.follow_up.expect("recorded on the failed file");
    assert_eq!(follow_up.by, EMAIL_A);
    let resend = env
        .ctx
        .storage
        .batch(&env.a.id, &follow_up.batch_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resend.state, BatchState::Built);
    // The free-stock row was not ticked: only the unknown goods' row goes up.
    assert_eq!(
        resend
            .lines
            .iter()
            .map(|l| (l.goods_code.as_str(), l.delta))
            .collect::<Vec<_>>(),
        vec![("8000002", 2)]
    );

    // Pressed again (a second tab, a double click): refused, nothing new.
    let reply = a
        .post(&path, &[("csrf", &csrf), ("include_free_stock", "1")])
        .await;
    let again = a.follow(reply).await.text();
    assert!(again.contains("すでにファイル"), "{again}");
    let built = env
        .ctx
        .storage
        .batches_in_state(&env.a.id, BatchState::Built)
        .await
        .unwrap();
    assert_eq!(built.len(), 1);
    let page = a.get("/history").await.text();
    assert!(page.contains("未反映の行をファイル"), "{page}");
    assert!(!page.contains(&format!("id=\"resend-{batch}\"")), "{page}");
}

#[tokio::test]
async fn the_dashboard_shows_how_long_changes_wait_and_the_last_uploads_lag() {
    let env = Env::start(true).await;
    env.connect_a().await;
    let a_tenant = env.tenant(&env.a.id).await;
    let mut a = Browser::logged_in(&env, EMAIL_A).await;
    let html = a.get("/").await.text();
    assert!(html.contains("0 件</dd>"), "nothing waits: {html}");
    assert!(html.contains("まだありません"), "no upload yet");

    let params = r#"{"data":[{"table_name":"Stock","rows":[{"id":"41","storeId":"1","productId":"8000001","amount":"-1","stockAmount":"9","stockDivision":"02","updDateTime":"2026-11-27 10:00:00"}]}]}"#;
    let body = serde_urlencoded::to_string([
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", CONTRACT_A),
        ("code", a_tenant.customer_code.as_str()),
    ])
    .unwrap();
    assert_eq!(webhook(&env.router(), body).await.0, StatusCode::OK);
    env.advance(chrono::Duration::seconds(75));
    let html = a.get("/").await.text();
    assert!(html.contains("1 件(最も古いもの: 1分15秒前から)"), "{html}");

    let run =
        sne_service::run::run_tenant(&env.ctx, &a_tenant, sne_service::run::Jobs::Upload, "r1")
            .await;
    assert!(matches!(
        run.report.upload,
        sne_domain::report::UploadSection::Uploaded { .. }
    ));
    let html = a.get("/").await.text();
    assert!(html.contains("0 件</dd>"), "{html}");
    assert!(
        html.contains("1分15秒(") && html.contains("の送信)"),
        "{html}"
    );
}

/// Tenant A with Smaregi API access, 8000002 at 6 in Smaregi and 10 in NextEngine.
async fn a_drifted(env: &Env) -> sne_domain::tenant::Tenant {
    env.connect_a().await;
    env.smaregi
        .add_product(CONTRACT_A, "8000002", "CODE-2", "商品2");
    env.smaregi
        .set_stock(CONTRACT_A, "1", "8000002", 6)
        .await
        .unwrap();
    let mut a = env.tenant(&env.a.id).await;
    a.smaregi_api = Some(sne_domain::tenant::SmaregiCredentials {
        contract_id: CONTRACT_A.into(),
        access_token: SMAREGI_TOKEN_A.into(),
    });
    env.ctx.storage.update_tenant(&a).await.unwrap()
}

#[tokio::test]
async fn the_drift_page_asks_for_a_check_shows_its_lines_and_aligns_once() {
    let mut env = Env::start(true).await;
    let a = a_drifted(&env).await;
    let mut browser = Browser::logged_in(&env, EMAIL_A).await;
    let first = browser.get("/drift").await.text();
    assert!(first.contains("初回の在庫合わせ"), "{first}");

    let csrf = browser.csrf("/drift").await;
    let reply = browser.post("/drift/check", &[("csrf", &csrf)]).await;
    assert!(reply.redirects_to("/drift"));
    assert!(
        browser
            .follow(reply)
            .await
            .text()
            .contains("在庫差異の確認を受け付けました")
    );
    assert_eq!(
        env.runs_requested.try_recv().unwrap(),
        RunRequest::Drift(a.id.clone())
    );
    // The request's check, as the dispatcher runs it.
    let run =
        sne_service::drift::run_drift(&env.ctx, &a, "r-test", sne_service::run::Mailing::Send)
            .await;
    assert!(run.report.render().subject.ends_with("在庫差異:1件"));
    let check = sne_service::drift::latest_check(&env.ctx, &a.id)
        .await
        .unwrap()
        .unwrap();

    let page = browser.get("/drift").await.text();
    assert!(page.contains("id=\"drift-lines\""), "{page}");
    assert!(
        page.contains("<td>8000002</td><td>6</td><td>10</td>"),
        "{page}"
    );
    assert!(page.contains("連携開始前からの差異"), "{page}");
    let csv = browser.get(&format!("/drift/{}/csv", check.id)).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.text().contains("8000002,6,10,0,10,0,0,0,6,10,4,-4,"),
        "{}",
        csv.text()
    );

    let preview = browser
        .get(&format!("/drift/{}/align", check.id))
        .await
        .text();
    assert!(preview.contains("id=\"align-preview\""), "{preview}");
    assert!(preview.contains("<td>8000002</td><td>-4</td>"), "{preview}");
    assert!(preview.contains("id=\"align-confirm\""));
    // Only with the page's CSRF token.
    let forged = browser
        .post(&format!("/drift/{}/align", check.id), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let path = format!("/drift/{}/align", check.id);
    let csrf = csrf_of(&preview);
    let done = browser.post(&path, &[("csrf", &csrf)]).await;
    assert!(
        browser
            .follow(done)
            .await
            .text()
            .contains("1件の商品の補正を登録しました")
    );
    let twice = browser.post(&path, &[("csrf", &csrf)]).await;
    assert!(
        browser
            .follow(twice)
            .await
            .text()
            .contains("すでに登録されています")
    );
    let built = env
        .ctx
        .storage
        .batches_in_state(&a.id, sne_domain::batch_state::BatchState::Built)
        .await
        .unwrap();
    assert_eq!(built.len(), 1);
    assert_eq!(built[0].aligns.as_deref(), Some(check.id.as_str()));
    assert_eq!(built[0].lines[0].delta, -4);

    // Tenant B sees none of it.
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    assert_eq!(
        b.get(&format!("/drift/{}/csv", check.id)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.get(&format!("/drift/{}/align", check.id)).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(b.get("/drift").await.text().contains("初回の在庫合わせ"));
    // A tenant without Smaregi API access is told what is missing.
    let csrf = b.csrf("/drift").await;
    let reply = b.post("/drift/check", &[("csrf", &csrf)]).await;
    assert!(b.follow(reply).await.text().contains("スマレジAPIの設定"));
    // The alignment asked for A's run; B's refused check asked for nothing.
    let mut requested = vec![];
    while let Ok(request) = env.runs_requested.try_recv() {
        requested.push(request);
    }
    assert_eq!(requested, [RunRequest::Now(a.id.clone())]);
}

fn push_body_without_id(contract: &str, code: &str) -> String {
    let params = r#"{"data":[{"table_name":"Stock","rows":[{"storeId":"1","productId":"8000001","stockAmount":"4"}]}]}"#;
    serde_urlencoded::to_string([
        ("proc_name", "stock_send"),
        ("params", params),
        ("contract_id", contract),
        ("code", code),
    ])
    .unwrap()
}

#[tokio::test]
async fn the_settings_page_switches_the_intake_at_a_boundary_and_back() {
    let env = Env::start(false).await;
    let mut a = env.tenant(&env.a.id).await;
    a.smaregi_api = Some(sne_domain::tenant::SmaregiCredentials {
        contract_id: CONTRACT_A.into(),
        access_token: SMAREGI_TOKEN_A.into(),
    });
    let a = env.ctx.storage.update_tenant(&a).await.unwrap();
    env.smaregi.add_product(CONTRACT_A, "8000001", "C1", "商品");
    env.smaregi
        .set_stock(CONTRACT_A, "1", "8000001", 5)
        .await
        .unwrap();
    let mut browser = Browser::logged_in(&env, EMAIL_A).await;
    let page = browser.get("/settings").await.text();
    assert!(page.contains("id=\"intake-state\">旧API"), "{page}");

    // A push counted without a history id: no boundary to draw.
    let (status, _) = webhook(
        &env.router(),
        push_body_without_id(CONTRACT_A, &a.customer_code),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/intake", &[("csrf", &csrf), ("to", "platform")])
        .await;
    assert!(reply.redirects_to("/settings"));
    let page = browser.follow(reply).await.text();
    assert!(page.contains("在庫変動履歴IDで決めます"), "{page}");
    assert!(page.contains("id=\"intake-state\">旧API"));

    sne_service::stock_history::set_history_mode(&env.ctx, &a, true)
        .await
        .unwrap();
    // The app is not installed for the contract yet: refused with the reason.
    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/intake", &[("csrf", &csrf), ("to", "platform")])
        .await;
    let page = browser.follow(reply).await.text();
    assert!(page.contains("アプリがこの契約で使えません"), "{page}");

    env.smaregi
        .platform_subscribe(CONTRACT_A, &[])
        .await
        .unwrap();
    let forged = browser
        .post(
            "/settings/intake",
            &[("csrf", "forged"), ("to", "platform")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/intake", &[("csrf", &csrf), ("to", "platform")])
        .await;
    let page = browser.follow(reply).await.text();
    let boundary = env.smaregi.history(CONTRACT_A).last().unwrap().id;
    assert!(
        page.contains(&format!("在庫変動履歴ID {boundary} までは旧API")),
        "{page}"
    );
    assert!(
        page.contains("id=\"intake-state\">プラットフォームAPI"),
        "{page}"
    );
    // History reading cannot be stopped underneath the Platform intake.
    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/stock-history", &[("csrf", &csrf), ("on", "0")])
        .await;
    let page = browser.follow(reply).await.text();
    assert!(
        page.contains("先に取り込み経路を旧APIに戻してください"),
        "{page}"
    );
    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/intake", &[("csrf", &csrf), ("to", "sideways")])
        .await;
    let page = browser.follow(reply).await.text();
    assert!(page.contains("取り込み経路の指定が不正です"), "{page}");

    let csrf = browser.csrf("/settings").await;
    let reply = browser
        .post("/settings/intake", &[("csrf", &csrf), ("to", "old")])
        .await;
    let page = browser.follow(reply).await.text();
    assert!(page.contains("旧APIでの取り込みに戻しました"), "{page}");
    assert!(page.contains("id=\"intake-state\">旧API"), "{page}");
    // B's screen never shows A's intake.
    let mut b = Browser::logged_in(&env, EMAIL_B).await;
    assert!(
        b.get("/settings")
            .await
            .text()
            .contains("id=\"intake-state\">旧API")
    );
}
