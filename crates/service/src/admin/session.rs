//! Stateless admin sessions: HMAC-signed cookies, no session table.
//!
//! A session cookie carries the tenant id, an expiry, a per-tenant *epoch* and a
//! random nonce. The epoch lives in the tenant's CursorStore; logout bumps it, which
//! revokes every cookie of that tenant at once (a signed cookie cannot be deleted
//! from the browsers that hold it). The CSRF token is an HMAC of the nonce, so it
//! needs no storage either and changes with every login.

use super::AdminError;
use crate::AdminContext;
use crate::cursors::{SESSION_EPOCH, Update};
use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sne_domain::TenantId;
use sne_domain::tenant::Tenant;
use sne_ports::StoreError;

pub const SESSION_COOKIE: &str = "sne_session";
pub const FLASH_COOKIE: &str = "sne_flash";
pub const NE_BIND_COOKIE: &str = "sne_ne_bind";
pub const PRELOGIN_COOKIE: &str = "sne_prelogin";
/// CursorStore name of the per-tenant session epoch.
pub const EPOCH_CURSOR: &str = SESSION_EPOCH.name;

type HmacSha256 = Hmac<Sha256>;

/// Each use of the key signs under its own label, so a value signed for one
/// purpose (say a flash message) can never pass as another (a session).
fn mac(secret: &[u8], purpose: &str, data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"\n");
    mac.update(data);
    mac
}

/// `base64(json).base64(hmac)`.
pub fn sign<T: Serialize>(secret: &[u8], purpose: &str, value: &T) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializable"));
    let tag = mac(secret, purpose, payload.as_bytes())
        .finalize()
        .into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

pub fn verify<T: for<'de> Deserialize<'de>>(secret: &[u8], purpose: &str, text: &str) -> Option<T> {
    let (payload, tag) = text.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(secret, purpose, payload.as_bytes())
        .verify_slice(&tag)
        .ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

pub fn random_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the attributes every admin cookie shares.
pub fn set_cookie(ctx: &AdminContext, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if ctx.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are base64 and ASCII")
}

pub fn clear_cookie(ctx: &AdminContext, name: &str) -> HeaderValue {
    set_cookie(ctx, name, "", 0)
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    /// Tenant id.
    t: String,
    /// Session epoch of the tenant when the session was made.
    e: u64,
    /// Expiry, Unix seconds.
    x: i64,
    /// Nonce: distinguishes sessions and keys the CSRF token.
    n: String,
}

/// A logged-in operator; extracting it is the authentication check.
pub struct Session {
    pub tenant: Tenant,
    pub nonce: String,
    pub csrf: String,
}

pub fn csrf_token(secret: &[u8], tenant: &TenantId, nonce: &str) -> String {
    let data = format!("{tenant}\n{nonce}");
    URL_SAFE_NO_PAD.encode(mac(secret, "csrf", data.as_bytes()).finalize().into_bytes())
}

fn tokens_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Session {
    /// Every state-changing request passes through here first.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), AdminError> {
        match submitted {
            Some(token) if tokens_equal(token, &self.csrf) => Ok(()),
            _ => Err(AdminError::Forbidden(crate::wording::FORM_EXPIRED.into())),
        }
    }
}

pub async fn current_epoch(ctx: &AdminContext, tenant: &TenantId) -> Result<u64, StoreError> {
    Ok(SESSION_EPOCH.read(ctx, tenant).await?.unwrap_or(0))
}

/// Revokes every session of the tenant.
pub async fn bump_epoch(ctx: &AdminContext, tenant: &TenantId) -> Result<(), StoreError> {
    SESSION_EPOCH
        .update(ctx, tenant, |epoch| {
            Update::Set(epoch.copied().unwrap_or(0) + 1)
        })
        .await?;
    Ok(())
}

/// A new session cookie for the tenant (after a successful login).
pub async fn new_session_cookie(
    ctx: &AdminContext,
    tenant: &TenantId,
) -> Result<HeaderValue, StoreError> {
    let ttl = ctx.config.admin_session_ttl.as_secs() as i64;
    let claims = SessionClaims {
        t: tenant.0.clone(),
        e: current_epoch(ctx, tenant).await?,
        x: ctx.clock.now().timestamp() + ttl,
        n: random_nonce(),
    };
    let value = sign(ctx.config.session_secret.as_bytes(), "session", &claims);
    Ok(set_cookie(ctx, SESSION_COOKIE, &value, ttl))
}

pub async fn session_from_headers(
    ctx: &AdminContext,
    headers: &HeaderMap,
) -> Result<Session, AdminError> {
    let secret = ctx.config.session_secret.as_bytes();
    let claims: SessionClaims = cookie(headers, SESSION_COOKIE)
        .and_then(|v| verify(secret, "session", v))
        .ok_or(AdminError::LoginRequired)?;
    if claims.x <= ctx.clock.now().timestamp() {
        return Err(AdminError::LoginRequired);
    }
    let tenant_id = TenantId(claims.t);
    if current_epoch(ctx, &tenant_id).await? != claims.e {
        return Err(AdminError::LoginRequired);
    }
    let tenant = ctx
        .storage
        .tenant(&tenant_id)
        .await?
        .ok_or(AdminError::LoginRequired)?;
    Ok(Session {
        csrf: csrf_token(secret, &tenant.id, &claims.n),
        nonce: claims.n,
        tenant,
    })
}

impl FromRequestParts<AdminContext> for Session {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AdminContext,
    ) -> Result<Self, Self::Rejection> {
        session_from_headers(ctx, &parts.headers).await
    }
}

/// Short-lived proof that this browser session pressed 「再取得」: the NextEngine
/// callback is only accepted together with it.
#[derive(Debug, Serialize, Deserialize)]
pub struct NeBinding {
    pub t: String,
    pub n: String,
    pub x: i64,
}

pub fn ne_binding_cookie(ctx: &AdminContext, session: &Session) -> HeaderValue {
    const TTL: i64 = 15 * 60;
    let claims = NeBinding {
        t: session.tenant.id.0.clone(),
        n: session.nonce.clone(),
        x: ctx.clock.now().timestamp() + TTL,
    };
    let value = sign(ctx.config.session_secret.as_bytes(), "ne-bind", &claims);
    set_cookie(ctx, NE_BIND_COOKIE, &value, TTL)
}

pub fn ne_binding_matches(ctx: &AdminContext, headers: &HeaderMap, session: &Session) -> bool {
    cookie(headers, NE_BIND_COOKIE)
        .and_then(|v| verify::<NeBinding>(ctx.config.session_secret.as_bytes(), "ne-bind", v))
        .is_some_and(|b| {
            b.t == session.tenant.id.0
                && tokens_equal(&b.n, &session.nonce)
                && b.x > ctx.clock.now().timestamp()
        })
}

pub fn add_header(response: &mut Response, value: HeaderValue) {
    response.headers_mut().append(SET_COOKIE, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_value_key_and_purpose() {
        let signed = sign(b"key-one", "session", &vec!["a".to_string()]);
        assert_eq!(
            verify::<Vec<String>>(b"key-one", "session", &signed),
            Some(vec!["a".to_string()])
        );
        assert_eq!(verify::<Vec<String>>(b"key-two", "session", &signed), None);
        assert_eq!(verify::<Vec<String>>(b"key-one", "flash", &signed), None);
        let (payload, tag) = signed.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(br#"["b"]"#);
        assert_eq!(
            verify::<Vec<String>>(b"key-one", "session", &format!("{other}.{tag}")),
            None
        );
        assert_eq!(verify::<Vec<String>>(b"key-one", "session", payload), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; sne_session=xyz"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
