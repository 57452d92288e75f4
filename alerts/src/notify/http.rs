//! The JSON POST every HTTP receiver makes: one client per receiver with its timeout, the optional
//! HMAC signature, and the reading of the answer into delivered / retryable / permanent.

use hmac::{KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::DeliveryError;
use crate::config::ReceiverConfig;

/// Header carrying the notification id, the same across retries (receivers deduplicate on it).
pub(super) const ID_HEADER: &str = "X-Anchorwatch-Notification-Id";
/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub(super) const SIGNATURE_HEADER: &str = "X-Anchorwatch-Signature";
/// How much of a refusing receiver's body goes into the error.
const ANSWER_BYTES: usize = 500;

/// Where one receiver POSTs, and how.
pub(super) struct Endpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The HMAC key, when the receiver signs its requests.
    secret: Option<Vec<u8>>,
}

impl Endpoint {
    /// Resolves the URL (from `url` or the `url_env` variable) and, when `signed`, the secret
    /// from `secret_env`. Errors name the receiver and the variable, never their values.
    pub(super) fn new(config: &ReceiverConfig, signed: bool) -> Result<Self, String> {
        let at = format!("receiver `{}`", config.name);
        let url = match (&config.url, &config.url_env) {
            (Some(url), _) => {
                reqwest::Url::parse(url).map_err(|e| format!("{at}: url `{url}` is not a valid URL: {e}"))?
            }
            (None, Some(var)) => {
                let url = env(var).ok_or_else(|| format!("{at}: environment variable `{var}` (url_env) is not set"))?;
                reqwest::Url::parse(&url)
                    .map_err(|e| format!("{at}: environment variable `{var}` (url_env) is not a valid URL: {e}"))?
            }
            (None, None) => return Err(format!("{at}: `url` or `url_env` is required")),
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{at}: the URL must be http or https, not `{}`", url.scheme()));
        }
        let secret = match (&config.secret_env, signed) {
            (Some(var), true) => Some(
                env(var)
                    .ok_or_else(|| format!("{at}: environment variable `{var}` (secret_env) is not set"))?
                    .into_bytes(),
            ),
            _ => None,
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("anchorwatch/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would lose its body or its signature's meaning; a 3xx is reported as is.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("{at}: cannot build the HTTP client: {}", chain(&e)))?;
        Ok(Self { client, url, secret })
    }

    /// Appends `path` to the URL's path, whether or not that ends with a slash.
    pub(super) fn join_path(&mut self, path: &str) -> Result<(), String> {
        if !self.url.path().ends_with('/') {
            let with_slash = format!("{}/", self.url.path());
            self.url.set_path(&with_slash);
        }
        self.url = self.url.join(path).map_err(|e| format!("cannot append `{path}` to the URL: {e}"))?;
        Ok(())
    }

    /// POSTs `body` as JSON. 2xx is delivered; 5xx, 408, 429 and transport failures are
    /// retryable; any other status is permanent.
    pub(super) async fn post(&self, body: &serde_json::Value, id: &str) -> Result<(), DeliveryError> {
        let bytes = serde_json::to_vec(body).map_err(|e| DeliveryError::permanent(format!("cannot encode: {e}")))?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ID_HEADER, id);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &bytes));
        }
        let response = request.body(bytes).send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = first_bytes(response).await;
        let message = format!("HTTP {status}: {answer}");
        let retryable = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT;
        Err(DeliveryError { message, retryable })
    }
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub(super) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 2 * digest.len());
    out.push_str("sha256=");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A transport failure, without the URL (it may be a secret).
fn transport_error(e: reqwest::Error) -> DeliveryError {
    let e = e.without_url();
    let what = if e.is_timeout() { "timed out" } else { "request failed" };
    let message = format!("{what}: {}", chain(&e));
    if e.is_builder() { DeliveryError::permanent(message) } else { DeliveryError::retryable(message) }
}

/// The first [`ANSWER_BYTES`] of the answer's body, as text; reading stops there.
async fn first_bytes(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                buf.extend_from_slice(format!(" [body unreadable: {}]", chain(&e.without_url())).as_bytes());
                break;
            }
        }
    }
    let truncated = buf.len() > ANSWER_BYTES;
    buf.truncate(ANSWER_BYTES);
    let mut text = String::from_utf8_lossy(&buf).trim().to_string();
    if text.is_empty() {
        text.push_str("(empty body)");
    } else if truncated {
        text.push('…');
    }
    text
}

/// An error and its sources, `a: b: c`.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
