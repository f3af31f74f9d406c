//! Pieces shared by both simulators: the HTTP server loop (which can drop a
//! connection on purpose), the simulated clock, form parsing and value
//! comparison.

use std::cmp::Ordering;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use chrono::{Duration, NaiveDateTime, Utc};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

pub const DATETIME_FMT: &str = "%Y-%m-%d %H:%M:%S";

pub fn fmt_dt(dt: NaiveDateTime) -> String {
    dt.format(DATETIME_FMT).to_string()
}

/// Request extension that lets a handler close its own TCP connection
/// without writing a response. axum has no API for this, so the simulators
/// run their own accept loop and race every connection against this signal.
#[derive(Clone)]
pub struct ConnKill(Arc<Notify>);

impl ConnKill {
    pub fn kill(&self) {
        self.0.notify_one();
    }
}

pub async fn bind_and_serve(router: Router, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let router = router.clone();
            tokio::spawn(async move {
                let kill = Arc::new(Notify::new());
                let handle = ConnKill(kill.clone());
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(handle.clone());
                    router.clone().oneshot(req.map(Body::new))
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = kill.notified() => {}
                }
            });
        }
    });
    Ok(local)
}

/// Closes the connection the request came on (if served by
/// [`bind_and_serve`]) and never returns; when embedded via `router()` there
/// is no connection handle, so a bare 502 stands in for the drop.
pub async fn drop_connection(kill: Option<ConnKill>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match kill {
        Some(k) => {
            k.kill();
            std::future::pending::<()>().await;
            unreachable!()
        }
        None => (axum::http::StatusCode::BAD_GATEWAY, "").into_response(),
    }
}

pub fn conn_kill(req: &Request) -> Option<ConnKill> {
    req.extensions().get::<ConnKill>().cloned()
}

/// Japan time (UTC+9) plus a manual offset, so tests can expire tokens and
/// states without waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimClock {
    offset_secs: i64,
}

impl SimClock {
    pub fn now_jst(&self) -> NaiveDateTime {
        let now = Utc::now().naive_utc() + Duration::hours(9) + Duration::seconds(self.offset_secs);
        // Whole seconds only: the APIs print seconds, and comparisons against
        // printed values must agree with the internal ones.
        now.with_nanosecond_zero()
    }
    pub fn advance(&mut self, secs: i64) {
        self.offset_secs += secs;
    }
}

trait TruncNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl TruncNanos for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// Parses an `application/x-www-form-urlencoded` body keeping values as raw
/// bytes, because NE's `data_type=gz` upload puts gzip bytes straight into a
/// form field and a UTF-8 decoder would corrupt them.
pub fn parse_form_bytes(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for part in body.split(|b| *b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let key = String::from_utf8_lossy(&percent_decode(k)).into_owned();
        out.push((key, percent_decode(v)));
    }
    out
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(input[i + 1]), hex(input[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Both APIs return every value as a string; filters and sorts compare two
/// values numerically when both parse as numbers and as strings otherwise
/// (which orders `YYYY-MM-DD HH:MM:SS` dates correctly).
pub fn compare_values(a: &str, b: &str) -> Ordering {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

pub fn compare_opt(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_values(x, y),
    }
}

/// SQL-style LIKE with `%` (any run) and `_` (one character).
pub fn like_match(value: &str, pattern: &str) -> bool {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut vi, mut pi) = (0usize, 0usize);
    let (mut star_p, mut star_v) = (None::<usize>, 0usize);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == v[vi])) {
            vi += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star_p = Some(pi);
            star_v = vi;
            pi += 1;
        } else if let Some(sp) = star_p {
            pi = sp + 1;
            star_v += 1;
            vi = star_v;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_works() {
        assert!(like_match("ABC-001", "ABC%"));
        assert!(like_match("ABC-001", "%001"));
        assert!(like_match("ABC-001", "A_C%"));
        assert!(!like_match("ABC-001", "B%"));
    }

    #[test]
    fn form_bytes_keep_binary() {
        let f = parse_form_bytes(b"a=%1F%8B%00&b=x+y&c");
        assert_eq!(f[0].1, vec![0x1f, 0x8b, 0]);
        assert_eq!(f[1].1, b"x y".to_vec());
        assert_eq!(f[2].1, Vec::<u8>::new());
    }

    #[test]
    fn numeric_compare() {
        assert_eq!(compare_values("10", "9"), Ordering::Greater);
        assert_eq!(compare_values("b", "a"), Ordering::Greater);
    }
}
