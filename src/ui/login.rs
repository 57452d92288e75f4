//! `GET /login`, `POST /login` and `POST /logout`: the UI's sign-in with an access token. A
//! token with the `read` or `admin` scope starts a [`Session`](super::Session) whose id the
//! browser keeps in the `anchorwatch_session` cookie. Without tokens configured, both just send the
//! browser on: the UI is open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anchorwatch_dashboards::ui::{LoginError, LoginPage, render_login};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::api::Api;

use crate::auth::{Auth, SESSION_COOKIE, Scope, query_value, safe_next, session_cookie, session_id};

/// The sign-in routes, public: the sign-in itself checks the token.
pub fn api() -> Api<Arc<Auth>> {
    Api::new().get(None, "/login", page).post(None, "/login", sign_in).post(None, "/logout", sign_out)
}

/// `?next=&error=`: where to go after signing in, and why the last try failed.
#[derive(Deserialize)]
struct PageQuery {
    next: Option<String>,
    error: Option<String>,
}

async fn page(State(auth): State<Arc<Auth>>, Query(q): Query<PageQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if auth.is_open() {
        return see_other(&next, None);
    }
    let error = match q.error.as_deref() {
        None => None,
        Some("scope") => Some(LoginError::Scope),
        Some(_) => Some(LoginError::Invalid),
    };
    ([(header::CACHE_CONTROL, "no-store")], Html(render_login(&LoginPage { next, error }))).into_response()
}

async fn sign_in(
    State(auth): State<Arc<Auth>>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_fields(&body);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let next = safe_next(field("next"));
    if auth.is_open() {
        return see_other(&next, None);
    }
    let client = client.map(|c| c.0.0.ip());
    if let Err(e) = auth.attempts().allowed(client, Instant::now()) {
        tracing::warn!("UI sign-in refused: too many failed attempts from this address");
        return e.into_response();
    }
    let refused = |error: &str| see_other(&format!("/login?error={error}&next={}", query_value(&next)), None);
    let Some(token) = auth.token(field("token").unwrap_or("").trim()) else {
        tracing::warn!("UI sign-in refused: the token matches none configured");
        auth.attempts().failed(client, Instant::now());
        return refused("invalid");
    };
    if !token.scopes.iter().any(|s| matches!(s, Scope::Read | Scope::Admin)) {
        tracing::warn!(token = %token.name, "UI sign-in refused: the token has neither the read nor the admin scope");
        return refused("scope");
    }
    let id = session_id(&mut rand::rng());
    auth.sessions().start(id.clone(), token, Instant::now());
    tracing::info!(token = %token.name, "UI sign-in");
    // Behind a TLS-terminating proxy the cookie must not travel over plain HTTP.
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        auth.sessions().ttl().as_secs(),
        if https { "; Secure" } else { "" }
    );
    see_other(&next, Some(cookie))
}

async fn sign_out(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    let ids = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).filter_map(session_cookie);
    for id in ids {
        if let Some(s) = auth.sessions().get(id, Instant::now()) {
            tracing::info!(token = %s.name, "UI sign-out");
        }
        auth.sessions().end(id);
    }
    let to = if auth.is_open() { "/" } else { "/login" };
    see_other(to, Some(format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")))
}

/// 303 to `location` (a path checked by [`safe_next`] or built here, so a valid header value).
fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = Redirect::to(location).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The fields of an `application/x-www-form-urlencoded` body, in order (`+` is a space, `%XX`
/// a byte, malformed escapes stay as they are).
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode_as_browsers_encode_them() {
        let fields = form_fields(b"token=a%2Bb+c%3D%26&next=%2Fmodels%2Fcredit%3Fwindow%3D1&empty=&flag");
        let expected = [("token", "a+b c=&"), ("next", "/models/credit?window=1"), ("empty", ""), ("flag", "")];
        let expected: Vec<(String, String)> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(fields, expected);
        let value = |body: &[u8]| form_fields(body).remove(0).1;
        assert_eq!(value(b"a=100%"), "100%");
        assert_eq!(value(b"a=%zz%4"), "%zz%4");
        assert_eq!(value(b"a=%C3%A9"), "\u{e9}");
        assert!(form_fields(b"").is_empty());
    }
}
