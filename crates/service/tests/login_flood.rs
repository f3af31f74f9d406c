//! A flood of parallel logins gets no more password checks than the rate limit
//! allows. Its own test binary: it counts the handler's log lines through a
//! process-wide subscriber, which no other test may write to.

mod admin_support;

use admin_support::*;
use axum::http::StatusCode;
use sne_service::admin::SESSION_COOKIE;
use std::sync::{Arc, Mutex};

const LOCKED: &str = "ログイン試行回数が多すぎます。しばらくしてから再度お試しください。";
const WRONG: &str = "メールアドレスまたはパスワードが正しくありません。";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_wrong_passwords_get_five_checks_then_the_login_is_locked() {
    let log = Captured::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let env = Env::start(true).await;
    let mut browser = Browser::new(&env);
    let csrf = browser.csrf("/login").await;

    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let mut guesser = Browser {
                router: browser.router.clone(),
                cookies: browser.cookies.clone(),
            };
            let csrf = csrf.clone();
            tokio::spawn(async move {
                let password = format!("guess-{i}");
                guesser
                    .post(
                        "/login",
                        &[("csrf", &csrf), ("email", EMAIL_A), ("password", &password)],
                    )
                    .await
            })
        })
        .collect();
    let (mut wrong, mut locked) = (0, 0);
    for guess in guesses {
        let reply = guess.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        match (reply.text().contains(WRONG), reply.text().contains(LOCKED)) {
            (true, false) => wrong += 1,
            (false, true) => locked += 1,
            _ => panic!("neither refusal: {}", reply.text()),
        }
    }
    // Every checked password that failed is logged once, with the tenant.
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let checked = text
        .lines()
        .filter(|l| l.contains("admin login failed") && l.contains(env.a.id.as_str()))
        .count();
    assert_eq!(
        checked, 5,
        "only the limit's five guesses were checked:\n{text}"
    );
    assert_eq!(
        (wrong, locked),
        (4, 16),
        "four plain refusals; the fifth failure and the rest say locked"
    );

    let right = browser.login(EMAIL_A, PASSWORD).await;
    assert!(
        right.text().contains(LOCKED),
        "the right password is refused while locked"
    );
    assert!(!browser.cookies.contains_key(SESSION_COOKIE));
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("admin login refused: too many failures"),
        "{text}"
    );
}
