//! `[auth]`: the accepted bearer tokens and their scopes (the running side is the `auth` module).

use std::time::Duration;

use anchorwatch_collector::config::units;
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.tokens]]`: accepted bearer tokens. Default: none (the API is open).
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// How long a UI sign-in lasts, counted from the sign-in. Default `"12h"`. Example: `"8h"`.
    #[serde(default = "default_session_ttl", with = "units::duration")]
    pub session_ttl: Duration,
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { tokens: Vec::new(), session_ttl: default_session_ttl() }
    }
}

/// One accepted bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs. Example: `"fraud-sidecar"`.
    pub name: String,
    /// Environment variable holding the token (keeps secrets out of the file). Example: `"ANCHORWATCH_INGEST_TOKEN"`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The token itself, when it cannot come from the environment. Prefer `token_env`.
    #[serde(default)]
    pub token: Option<String>,
    /// What it may do: any of `ingest`, `read`, `admin`. Example: `["ingest"]`.
    pub scopes: Vec<Scope>,
}

/// An accepted token with its secret resolved. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct Token {
    /// Its name, for logs.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    pub(crate) secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// Checks each token has exactly one source and that its environment variable is set.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.session_ttl < Duration::from_secs(1) {
            anyhow::bail!("auth.session_ttl: must be at least 1s");
        }
        self.resolve().map(|_| ())
    }

    /// The tokens with their secrets read from the environment.
    pub fn resolve(&self) -> anyhow::Result<Vec<Token>> {
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
            out.push(Token { name: t.name.clone(), scopes: t.scopes.clone(), secret });
        }
        Ok(out)
    }
}
