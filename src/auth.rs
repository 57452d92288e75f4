//! `[auth]`: bearer tokens with scopes. Without any token configured, the API is open (fit for
//! loopback and trusted networks only).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use driftwatch_collector::ApiError;
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Post predictions and labels, and ask the built-in predictor for predictions.
    Ingest,
    /// Read results and run queries.
    Read,
    /// Everything, including flush, uploads, promotion and rollback of model versions.
    Admin,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.tokens]]`: accepted bearer tokens. Default: none (the API is open).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One accepted bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs. Example: `"fraud-sidecar"`.
    pub name: String,
    /// Environment variable holding the token (keeps secrets out of the file). Example: `"DW_INGEST_TOKEN"`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The token itself, when it cannot come from the environment. Prefer `token_env`.
    #[serde(default)]
    pub token: Option<String>,
    /// What it may do: any of `ingest`, `read`, `admin`. Example: `["ingest"]`.
    pub scopes: Vec<Scope>,
}

impl AuthConfig {
    /// Checks each token has exactly one source and that its environment variable is set.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.resolve().map(|_| ())
    }

    /// The tokens with their secrets read from the environment.
    pub fn resolve(&self) -> anyhow::Result<Vec<(String, Vec<Scope>)>> {
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}] (`{}`)", t.name);
            let secret = match (&t.token_env, &t.token) {
                (Some(var), None) => std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("{at}.token_env: environment variable {var} is not set"))?,
                (None, Some(token)) => token.clone(),
                _ => anyhow::bail!("{at}: set exactly one of `token_env` or `token`"),
            };
            if secret.len() < 16 {
                anyhow::bail!("{at}: the token is {} characters long; use at least 16", secret.len());
            }
            if t.scopes.is_empty() {
                anyhow::bail!("{at}.scopes: give at least one of ingest, read, admin");
            }
            out.push((secret, t.scopes.clone()));
        }
        Ok(out)
    }
}

/// The scope a request needs; `None` for probes, metrics and the API description.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/v2/health/ready" => None,
        p if method == Method::GET && p.starts_with("/v2/models/") && p.ends_with("/ready") => None,
        p if method == Method::POST && (p.ends_with("/predict") || p.ends_with("/infer")) => Some(Scope::Ingest),
        p if method == Method::POST
            && (p.ends_with("/versions") || p.ends_with("/promote") || p.ends_with("/rollback")) =>
        {
            Some(Scope::Admin)
        }
        p if method == Method::POST && (p.ends_with("/predictions") || p.ends_with("/labels")) => Some(Scope::Ingest),
        "/v1/flush" => Some(Scope::Admin),
        p if method != Method::GET && p.starts_with("/v1/silences") => Some(Scope::Admin),
        p if method == Method::POST
            && (p.ends_with("/reference") || p.ends_with("/analyze") || p.ends_with("/retrain")) =>
        {
            Some(Scope::Admin)
        }
        _ => Some(Scope::Read),
    }
}

/// Checks the bearer token of every request against the configured ones.
pub async fn check(State(tokens): State<Arc<Vec<(String, Vec<Scope>)>>>, request: Request, next: Next) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let Some(needed) = required_scope(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <token>`")
            .into_response();
    };
    let scopes =
        tokens.iter().find(|(secret, _)| constant_time_eq(secret.as_bytes(), presented.as_bytes())).map(|(_, s)| s);
    match scopes {
        None => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not valid").into_response()
        }
        Some(scopes) if scopes.contains(&Scope::Admin) || scopes.contains(&needed) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the token lacks the `{}` scope this request needs", scope_name(needed)),
        )
        .into_response(),
    }
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
