//! `[auth]`: bearer tokens with scopes, and sign-in sessions for the built-in UI. Without any
//! token configured, the API and the UI are open (fit for loopback and trusted networks only).
//!
//! A browser cannot send `Authorization: Bearer`, so the UI signs in once at `/login` (`ui::login`)
//! with a token and gets a random session id in an `HttpOnly`, `SameSite=Lax` cookie that stands
//! for that token's name and scopes until it expires. Sessions live in memory ([`Sessions`]):
//! a restart signs everyone out.

pub use crate::config::auth::{AuthConfig, Scope, Token, TokenConfig};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anchorwatch_collector::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie that carries a UI session id.
pub const SESSION_COOKIE: &str = "anchorwatch_session";
/// Sessions held at most; signing in beyond that ends the session closest to expiry.
pub const MAX_SESSIONS: usize = 10_000;

/// The running form of `[auth]`: the accepted tokens, the UI sessions signed in with them, the
/// failed attempts of each client, and, in open mode, the hosts the server answers to.
pub struct Auth {
    tokens: Vec<Token>,
    sessions: Sessions,
    attempts: Attempts,
    hosts: Hosts,
}

impl Auth {
    /// Resolves the configured tokens; `server` says where the server listens and which other
    /// host names it answers to in open mode.
    pub fn new(config: &AuthConfig, server: &crate::config::ServerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            tokens: config.resolve()?,
            sessions: Sessions::new(config.session_ttl, MAX_SESSIONS),
            attempts: Attempts::new(MAX_FAILED_ATTEMPTS, ATTEMPTS_WINDOW, MAX_TRACKED_CLIENTS),
            hosts: Hosts { listen: server.listen.ip(), allowed: server.allowed_hosts.clone() },
        })
    }

    /// The failed sign-ins and bearer tokens of each client.
    pub fn attempts(&self) -> &Attempts {
        &self.attempts
    }

    /// Whether no token is configured: then everything is open.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The configured token equal to `presented`, compared in constant time.
    pub fn token(&self, presented: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
    }

    /// The UI sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }
}

/// What a signed-in UI session stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The name of the token signed in with.
    pub name: String,
    /// That token's scopes.
    pub scopes: Vec<Scope>,
    expires: Instant,
}

/// UI sessions by id, in memory, at most `max` of them; each ends `ttl` after its sign-in.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// An empty set.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self { ttl, max: max.max(1), by_id: Mutex::new(HashMap::new()) }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `token` at `now` under `id` (see [`session_id`]). Expired sessions
    /// are dropped first; when the set is still full, the one closest to expiry ends.
    pub fn start(&self, id: String, token: &Token, now: Instant) {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        if by_id.len() >= self.max {
            by_id.retain(|_, s| s.expires > now);
        }
        if by_id.len() >= self.max
            && let Some(oldest) = by_id.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            by_id.remove(&oldest);
        }
        by_id.insert(id, Session { name: token.name.clone(), scopes: token.scopes.clone(), expires: now + self.ttl });
    }

    /// The live session `id` at `now`; an expired one is forgotten.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        match by_id.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                by_id.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id` (sign out).
    pub fn end(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// Sessions held, expired ones included until they are next looked at or pushed out.
    pub fn len(&self) -> usize {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new session id: 32 bytes from a cryptographically secure generator, as 64 hex digits.
pub fn session_id(rng: &mut (impl rand::CryptoRng + ?Sized)) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Put into a request's extensions when a UI session (not a bearer token) authenticated it, so
/// pages can offer Sign out.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The name of the token signed in with.
    pub name: String,
}

/// Whether `scopes` cover `needed` (`admin` covers everything).
pub fn allows(scopes: &[Scope], needed: Scope) -> bool {
    scopes.contains(&Scope::Admin) || scopes.contains(&needed)
}

/// Every request, routed or not: without tokens (open mode), the checks of [`open_mode`];
/// with tokens, nothing here (each route's scope is checked by [`require`]).
pub async fn guard(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if !auth.is_open() {
        return next.run(request).await;
    }
    match open_mode(&auth.hosts, &request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// A route that needs the scope `needed` (the layer the route table puts on each scoped route):
/// with tokens configured, a bearer token first; without one, a UI session cookie. A
/// cookie-authenticated request that changes something must come from a page of this server
/// (see [`same_origin`]). A UI page asked for without credentials is sent to `/login`; the API
/// answers 401. Without tokens, nothing ([`guard`] has checked the request).
pub async fn require(State((auth, needed)): State<(Arc<Auth>, Scope)>, mut request: Request, next: Next) -> Response {
    if auth.is_open() {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(presented) = bearer(headers) {
        let client = client_ip(&request);
        if let Err(e) = auth.attempts.allowed(client, Instant::now()) {
            return e.into_response();
        }
        return match auth.token(presented) {
            None => {
                auth.attempts.failed(client, Instant::now());
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not valid").into_response()
            }
            Some(t) if allows(&t.scopes, needed) => next.run(request).await,
            Some(_) => forbidden(needed),
        };
    }
    let cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(session_cookie);
    let session = cookie.and_then(|id| auth.sessions.get(id, Instant::now()));
    let Some(session) = session else {
        if is_ui_page(request.method(), request.uri().path()) {
            return Redirect::to(&login_url(request.uri())).into_response();
        }
        let message = if cookie.is_some() {
            "the session has ended; sign in again at /login, or send `Authorization: Bearer <token>`"
        } else {
            "send `Authorization: Bearer <token>`"
        };
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    };
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && !same_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a signed-in browser session may change things only from pages of this server (the Origin header does not match the Host)",
        )
        .into_response();
    }
    if !allows(&session.scopes, needed) {
        return forbidden(needed);
    }
    request.extensions_mut().insert(SignedIn { name: session.name });
    next.run(request).await
}

/// In open mode nothing authenticates a request, so what stops a web page the operator happens
/// to open from using the server is checked here: the `Host` must be this server as reached
/// directly ([`Hosts`]: a page that reaches it through a name of its own, by DNS rebinding, is
/// refused), and a request that changes something must not come from another site (its `Origin`
/// must match `Host`, and `Sec-Fetch-Site` must not say `cross-site` or `same-site`).
fn open_mode(hosts: &Hosts, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("\u{fffd}"));
    if let Some(host) = host.filter(|h| !hosts.allows(h)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "Host `{host}` is not this server: without tokens it answers only to localhost, the addresses it listens on and server.allowed_hosts"
            ),
        )
        .field("Host"));
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !safe && (matches!(site, "cross-site" | "same-site") || !same_origin(headers)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "without tokens, a browser may change things only from pages of this server (the Origin header does not match the Host)",
        ));
    }
    Ok(())
}

/// Where an open server may be reached: `localhost` and loopback addresses when it listens on
/// one, the address it listens on (any address when that is `0.0.0.0` or `::`), and the
/// configured names.
struct Hosts {
    listen: std::net::IpAddr,
    allowed: Vec<String>,
}

impl Hosts {
    /// Whether a `Host` header value (`name[:port]`, `[v6]:port`) names this server.
    fn allows(&self, host: &str) -> bool {
        if self.allowed.iter().any(|a| a == "*") {
            return true;
        }
        let name = match host.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((ip, _)) => ip,
                None => return false,
            },
            None => host
                .rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host, |(n, _)| n),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
            return true;
        }
        let local = self.listen.is_loopback() || self.listen.is_unspecified();
        match name.parse::<std::net::IpAddr>() {
            Ok(ip) => self.listen.is_unspecified() || ip == self.listen || (ip.is_loopback() && local),
            Err(_) => local && name == "localhost",
        }
    }
}

/// Failed authentication attempts (a wrong bearer token, a wrong token at sign-in) allowed per
/// client address within [`ATTEMPTS_WINDOW`]; more get 429 until the window ends.
pub const MAX_FAILED_ATTEMPTS: u32 = 10;
/// The window of [`MAX_FAILED_ATTEMPTS`].
pub const ATTEMPTS_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses tracked at most; beyond that, the rest share one count.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Failed authentication attempts per client address, in fixed windows, in bounded memory.
pub struct Attempts {
    max: u32,
    window: Duration,
    clients: usize,
    by_ip: Mutex<HashMap<Option<std::net::IpAddr>, (Instant, u32)>>,
}

impl Attempts {
    /// At most `max` failures per `window` for each of at most `clients` addresses.
    pub fn new(max: u32, window: Duration, clients: usize) -> Self {
        Self { max, window, clients: clients.max(1), by_ip: Mutex::new(HashMap::new()) }
    }

    /// Ok while `client` may try again at `now`; else 429 `too_many_attempts` with Retry-After.
    pub fn allowed(&self, client: Option<std::net::IpAddr>, now: Instant) -> Result<(), ApiError> {
        let by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        match by_ip.get(&self.key(&by_ip, client)) {
            Some((start, n)) if *n >= self.max && now < *start + self.window => {
                let wait = (*start + self.window - now).as_secs() + 1;
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many failed attempts from this address; try again in {wait} s"),
                );
                e.retry_after = Some(wait);
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt of `client` at `now`.
    pub fn failed(&self, client: Option<std::net::IpAddr>, now: Instant) {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if by_ip.len() >= self.clients && !by_ip.contains_key(&client) {
            by_ip.retain(|_, (start, _)| now < *start + self.window);
        }
        let key = self.key(&by_ip, client);
        let entry = by_ip.entry(key).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// `client`, or the shared overflow key (`None`) when too many addresses are tracked.
    fn key(
        &self,
        by_ip: &HashMap<Option<std::net::IpAddr>, (Instant, u32)>,
        client: Option<std::net::IpAddr>,
    ) -> Option<std::net::IpAddr> {
        if by_ip.contains_key(&client) || by_ip.len() < self.clients { client } else { None }
    }
}

/// The address the request came from, when the server knows it.
pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

fn forbidden(needed: Scope) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the token lacks the `{}` scope this request needs", scope_name(needed)),
    )
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The pages of the UI, which a browser without a session is sent to sign in for.
fn is_ui_page(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && (path == "/" || path.starts_with("/models/"))
}

/// `/login?next=<this path and query>`.
fn login_url(uri: &Uri) -> String {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("/login?next={}", query_value(here))
}

/// `anchorwatch_session`'s value in one `Cookie` header (`a=1; anchorwatch_session=…; b=2`).
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Whether the request's `Origin`, when it sends one, is this server as the browser reached it:
/// its host and port equal `Host` (or `X-Forwarded-Host`, set by a proxy in front). Browsers
/// send `Origin` with every cross-site POST, so a page elsewhere cannot act with the session
/// even where `SameSite` falls short (an older browser, a sibling subdomain).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let hosts = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|h| headers.get(h)?.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or("").trim());
    origin_matches(origin, hosts)
}

/// `Origin` (`scheme://host[:port]`, or `null`) against the hosts the request was sent to.
fn origin_matches<'a>(origin: &str, mut hosts: impl Iterator<Item = &'a str>) -> bool {
    let Some(authority) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@'])
        && hosts.any(|h| !h.is_empty() && h.eq_ignore_ascii_case(authority))
}

/// Where to go after signing in: `next` when it is a path on this server, else `/`. Rejects
/// anything a browser could read as another site (`//host`, `/\host`, `https://…`), control
/// characters and whitespace (which browsers strip, turning `/\t/host` into `//host`), and the
/// sign-in pages themselves.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next else { return "/".into() };
    let ok = next.len() <= 2048
        && next.starts_with('/')
        && !matches!(next.as_bytes().get(1), Some(b'/' | b'\\'))
        && next.bytes().all(|b| b.is_ascii_graphic())
        && !next.contains('\\')
        && !(next.starts_with("/login") || next.starts_with("/logout"));
    if ok { next.to_string() } else { "/".into() }
}

/// A query parameter value, percent-encoded; `/` is kept for readability.
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Ingest => "ingest",
        Scope::Read => "read",
        Scope::Admin => "admin",
    }
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, scopes: &[Scope]) -> Token {
        Token { name: name.into(), scopes: scopes.to_vec(), secret: "secret-0123456789".into() }
    }

    #[test]
    fn an_open_server_answers_to_its_own_hosts_only() {
        let hosts = |listen: &str, allowed: &[&str]| Hosts {
            listen: listen.parse().unwrap(),
            allowed: allowed.iter().map(|a| a.to_string()).collect(),
        };
        let loopback = hosts("127.0.0.1", &[]);
        for good in ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST.", "[::1]:8080", "127.0.0.2:1"] {
            assert!(loopback.allows(good), "{good}");
        }
        for bad in ["evil.example", "evil.example:8080", "10.0.0.5:8080", "localhost.evil.example", "", "[::1"] {
            assert!(!loopback.allows(bad), "{bad}");
        }
        let any = hosts("0.0.0.0", &["anchorwatch.monitoring.svc"]);
        for good in [
            "10.0.0.5:8080",
            "[fd00::1]:8080",
            "localhost",
            "anchorwatch.monitoring.svc:8080",
            "Anchorwatch.Monitoring.Svc",
        ] {
            assert!(any.allows(good), "{good}");
        }
        assert!(!any.allows("evil.example"));
        let one = hosts("10.0.0.5", &[]);
        assert!(one.allows("10.0.0.5:8080"));
        assert!(!one.allows("localhost:8080") && !one.allows("10.0.0.6:8080"));
        assert!(hosts("10.0.0.5", &["*"]).allows("evil.example"));
    }

    #[test]
    fn failed_attempts_are_limited_per_address_within_a_window() {
        let attempts = Attempts::new(3, Duration::from_secs(60), 2);
        let (a, b, c) =
            (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()), Some("10.0.0.3".parse().unwrap()));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(attempts.allowed(a, t0).is_ok());
            attempts.failed(a, t0);
        }
        let refused = attempts.allowed(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", Some(51))
        );
        assert!(attempts.allowed(b, t0).is_ok(), "another address is not affected");
        assert!(attempts.allowed(a, t0 + Duration::from_secs(60)).is_ok(), "the window ended");
        // Past the tracked addresses, the rest share one count.
        attempts.failed(b, t0);
        for _ in 0..3 {
            attempts.failed(c, t0);
        }
        assert!(attempts.allowed(c, t0).is_err());
        assert!(attempts.allowed(Some("10.0.0.4".parse().unwrap()), t0).is_err());
        assert!(attempts.allowed(b, t0).is_ok());
    }

    #[test]
    fn next_is_a_path_on_this_server_or_home() {
        for good in ["/", "/models/credit", "/models/credit?feature=age&window=2", "/models/a%2Fb#versions"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "",
            "models/credit",
            "//evil.example",
            "//evil.example/models",
            "/\\evil.example",
            "/models\\..\\x",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/models/a b",
            "/models/\u{e9}",
            "/login?next=/",
            "/logout",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(session_cookie("anchorwatch_session=abc"), Some("abc"));
        assert_eq!(session_cookie("a=1; anchorwatch_session=abc; b=2"), Some("abc"));
        assert_eq!(session_cookie("a=1;anchorwatch_session=\"abc\""), Some("abc"));
        assert_eq!(session_cookie("xdw_session=abc; dw_sessionx=def"), None);
        assert_eq!(session_cookie("anchorwatch_session="), None);
        assert_eq!(session_cookie("a=1; b"), None);
        assert_eq!(session_cookie(""), None);
    }

    #[test]
    fn origin_must_name_the_host_asked() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])), "no Origin: a non-browser client");
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[("host", "DW.example.com"), ("origin", "https://dw.example.com")])));
        assert!(same_origin(&headers(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "dw.example.com"),
            ("origin", "https://dw.example.com")
        ])));
        for origin in [
            "http://evil.example",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "null",
            "file://",
            "http://127.0.0.1:8080/",
            "http://user@127.0.0.1:8080",
        ] {
            assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", origin)])), "{origin}");
        }
        assert!(!same_origin(&headers(&[("origin", "http://127.0.0.1:8080")])), "no Host to match");
    }

    #[test]
    fn sessions_expire_after_their_ttl() {
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        sessions.start("a".into(), &token("viewer", &[Scope::Read]), t0);
        let s = sessions.get("a", t0 + Duration::from_secs(59)).expect("live");
        assert_eq!((s.name.as_str(), s.scopes.as_slice()), ("viewer", &[Scope::Read][..]));
        assert_eq!(sessions.get("b", t0), None);
        assert_eq!(sessions.get("a", t0 + Duration::from_secs(60)), None, "ended at its ttl");
        assert!(sessions.is_empty(), "an expired session is forgotten once seen");
        sessions.start("c".into(), &token("viewer", &[Scope::Read]), t0);
        sessions.end("c");
        assert_eq!(sessions.get("c", t0), None, "signed out");
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let t = token("ops", &[Scope::Admin]);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            sessions.start(id.into(), &t, t0 + Duration::from_secs(i as u64));
        }
        // Full of live sessions: the one closest to expiry makes room.
        sessions.start("d".into(), &t, t0 + Duration::from_secs(3));
        assert_eq!(sessions.len(), 3);
        assert!(sessions.get("a", t0 + Duration::from_secs(3)).is_none());
        assert!(sessions.get("b", t0 + Duration::from_secs(3)).is_some());
        // Expired ones go first, all of them.
        sessions.start("e".into(), &t, t0 + Duration::from_secs(62));
        assert_eq!(sessions.len(), 2, "b and c expired; d and e remain");
        assert!(sessions.get("d", t0 + Duration::from_secs(62)).is_some());
    }

    #[test]
    fn session_ids_are_32_random_bytes_in_hex() {
        let mut rng = rand::rng();
        let (a, b) = (session_id(&mut rng), session_id(&mut rng));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn ui_pages_without_credentials_go_to_login() {
        assert!(is_ui_page(&Method::GET, "/") && is_ui_page(&Method::GET, "/models/credit"));
        assert!(!is_ui_page(&Method::POST, "/models/credit") && !is_ui_page(&Method::GET, "/v1/models"));
        let uri: Uri = "/models/credit?feature=age&window=2".parse().unwrap();
        assert_eq!(login_url(&uri), "/login?next=/models/credit%3Ffeature%3Dage%26window%3D2");
    }

    #[test]
    fn tokens_need_read_or_admin_for_pages_and_admin_for_changes() {
        assert!(allows(&[Scope::Read], Scope::Read) && allows(&[Scope::Admin], Scope::Read));
        assert!(!allows(&[Scope::Ingest], Scope::Read));
        assert!(!allows(&[Scope::Read], Scope::Admin) && !allows(&[Scope::Ingest], Scope::Admin));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
