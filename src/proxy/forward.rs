//! The request path: every request goes to the upstream and every response back unchanged, except
//! for hop-by-hop headers (RFC 9110 §7.6.1) and the added `x-prediction-id`. On predict routes the
//! request body (up to the capture limit) is read before forwarding, to find the correlation id,
//! and the response body is copied as it streams by; neither is ever held back for capture.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::capture::{Capture, CaptureQueue};
use super::config::ProxyConfig;
use super::metrics::{DropReason, ProxyMetrics};

/// Errors of streamed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the proxy sends, either way.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The header that returns the correlation id to the client.
pub const PREDICTION_ID: HeaderName = HeaderName::from_static("x-prediction-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const CE_ID: HeaderName = HeaderName::from_static("ce-id");
/// Ids longer than this are not taken from the client: batched rows add `-<index>` and the
/// collector stores ids of at most 128 bytes.
const MAX_ID_LEN: usize = 100;

/// Forwards requests; shared by every connection.
pub struct Forwarder {
    client: Client<HttpConnector, ProxyBody>,
    scheme: hyper::http::uri::Scheme,
    authority: hyper::http::uri::Authority,
    prefix: String,
    http2: bool,
    timeout: Duration,
    limit: usize,
    routes: Routes,
    queue: Arc<CaptureQueue>,
    metrics: Arc<ProxyMetrics>,
}

impl Forwarder {
    /// Builds the upstream client from `config`.
    pub fn new(config: &ProxyConfig, queue: Arc<CaptureQueue>, metrics: Arc<ProxyMetrics>) -> anyhow::Result<Self> {
        let uri: Uri = config.upstream.parse().map_err(|e| anyhow::anyhow!("--upstream `{}`: {e}", config.upstream))?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("--upstream `{}`: must be an http:// URL (the sidecar speaks plain HTTP)", config.upstream);
        }
        let Some(authority) = uri.authority().cloned() else {
            anyhow::bail!("--upstream `{}`: no host", config.upstream);
        };
        if authority.as_str().contains('@') {
            anyhow::bail!("--upstream `{}`: credentials in the URL are not supported", config.upstream);
        }
        if uri.query().is_some() {
            anyhow::bail!("--upstream `{}`: a query string is not allowed", config.upstream);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(90)).http2_only(config.upstream_http2);
        Ok(Self {
            client: builder.build(connector),
            scheme: hyper::http::uri::Scheme::HTTP,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            http2: config.upstream_http2,
            timeout: config.upstream_timeout,
            limit: config.capture_max_bytes.min(usize::MAX as u64) as usize,
            routes: Routes::new(&config.predict_paths),
            queue,
            metrics,
        })
    }

    /// Answers one client request. Never fails: upstream trouble becomes 502 or 504.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        let predict = parts.method == Method::POST && self.routes.matches(parts.uri.path());
        let received_us = if predict { chrono::Utc::now().timestamp_micros() } else { 0 };
        let mut id = header_id(&parts.headers);
        let mut captured = None;
        let body = if predict {
            match read_capped(body, declared_length(&parts.headers), self.limit).await {
                Ok(Read::Whole(bytes)) => {
                    if id.is_none() {
                        id = body_id(&bytes);
                    }
                    captured = Some(bytes.clone());
                    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
                }
                Ok(Read::Streamed { frames, rest, reason }) => {
                    self.queue.drop_one(reason, &parts.uri.path());
                    PrefixedBody { frames, rest }.boxed_unsync()
                }
                Err(e) => {
                    let id = id.unwrap_or_else(new_id);
                    self.queue.drop_one(DropReason::Aborted, &id);
                    let message = format!("could not read the request body: {e}");
                    return self.answer(error(StatusCode::BAD_REQUEST, "body_read", &message), &id);
                }
            }
        } else {
            body.map_err(BoxError::from).boxed_unsync()
        };
        let id = id.unwrap_or_else(new_id);
        strip_hop_by_hop(&mut parts.headers, self.http2);
        if !parts.headers.contains_key(REQUEST_ID)
            && let Ok(v) = HeaderValue::from_str(&id)
        {
            parts.headers.insert(REQUEST_ID, v);
        }
        parts.uri = match self.upstream_uri(&parts.uri) {
            Ok(uri) => uri,
            Err(e) => return self.answer(error(StatusCode::BAD_REQUEST, "bad_uri", &e), &id),
        };
        if self.http2 {
            // The upstream learns the authority from the URI; a Host header would contradict it.
            parts.headers.remove(header::HOST);
            parts.version = Version::HTTP_2;
        } else {
            parts.version = Version::HTTP_11;
        }
        let outcome = tokio::time::timeout(self.timeout, self.client.request(Request::from_parts(parts, body))).await;
        self.metrics.upstream_duration.observe(started.elapsed().as_secs_f64());
        let response = match outcome {
            Err(_) => {
                if captured.is_some() {
                    self.queue.drop_one(DropReason::UpstreamError, &"timeout");
                }
                let message = format!("the upstream did not answer within --upstream-timeout ({:?})", self.timeout);
                error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &message)
            }
            Ok(Err(e)) => {
                if captured.is_some() {
                    self.queue.drop_one(DropReason::UpstreamError, &e);
                }
                tracing::debug!(error = ?e, "upstream request failed");
                error(StatusCode::BAD_GATEWAY, "upstream_unavailable", &format!("the upstream failed: {}", cause(&e)))
            }
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers, false);
                parts.version = Version::HTTP_11;
                let body = match captured {
                    None => body.map_err(BoxError::from).boxed_unsync(),
                    Some(request) => {
                        if !parts.status.is_success() {
                            self.queue.drop_one(DropReason::UpstreamError, &parts.status);
                            body.map_err(BoxError::from).boxed_unsync()
                        } else if declared_length(&parts.headers).is_some_and(|n| n > self.limit as u64) {
                            self.queue.drop_one(DropReason::TooLarge, &"response");
                            body.map_err(BoxError::from).boxed_unsync()
                        } else {
                            let pending = Pending { queue: self.queue.clone(), id: id.clone(), received_us, request };
                            TeeBody {
                                inner: body,
                                chunks: Vec::new(),
                                len: 0,
                                limit: self.limit,
                                pending: Some(pending),
                            }
                            .boxed_unsync()
                        }
                    }
                };
                Response::from_parts(parts, body)
            }
        };
        self.answer(response, &id)
    }

    fn answer(&self, mut response: Response<ProxyBody>, id: &str) -> Response<ProxyBody> {
        if let Ok(v) = HeaderValue::from_str(id) {
            response.headers_mut().insert(PREDICTION_ID, v);
        }
        self.metrics.request(response.status().as_u16());
        response
    }

    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, String> {
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let pq = if self.prefix.is_empty() { pq.to_string() } else { format!("{}{pq}", self.prefix) };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| format!("cannot build the upstream URI: {e}"))
    }
}

/// The innermost cause of a client error, which names what went wrong (refused, reset, ...).
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// A UUIDv7: milliseconds since the epoch, then random bits from the thread's userspace generator
/// (uuid's own `now_v7` asks the kernel for every id: a system call per request).
fn new_id() -> String {
    use rand::Rng;
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let random: [u8; 10] = rand::rng().random();
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid().to_string()
}

fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn header_id(headers: &HeaderMap) -> Option<String> {
    [REQUEST_ID, CE_ID]
        .iter()
        .filter_map(|h| headers.get(h)?.to_str().ok())
        .find(|id| usable_id(id))
        .map(str::to_string)
}

/// The Open Inference Protocol's request `id`, when the body has one.
fn body_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    head.id.filter(|id| usable_id(id)).map(|id| id.into_owned())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Removes the headers that describe one connection, not the message: `Connection` and the fields
/// it names, `Keep-Alive`, `Proxy-Connection`, `TE` (except `trailers` towards HTTP/2, which gRPC
/// needs), `Transfer-Encoding` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::UPGRADE);
    let te_trailers = keep_te_trailers && headers.get(header::TE).is_some_and(|v| v.as_bytes() == b"trailers");
    if !te_trailers {
        headers.remove(header::TE);
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"error": {"code": code, "message": message, "details": {}}});
    let mut response =
        Response::new(Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What reading a predict request's body gave.
enum Read {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Over the limit (or with trailers): what was read, then the rest, streamed.
    Streamed { frames: Vec<Frame<Bytes>>, rest: Option<Incoming>, reason: DropReason },
}

async fn read_capped(mut body: Incoming, declared: Option<u64>, limit: usize) -> Result<Read, hyper::Error> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(Read::Streamed { frames: Vec::new(), rest: Some(body), reason: DropReason::TooLarge });
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                len += data.len();
                chunks.push(data);
                if len > limit {
                    let frames = chunks.into_iter().map(Frame::data).collect();
                    return Ok(Read::Streamed { frames, rest: Some(body), reason: DropReason::TooLarge });
                }
            }
            Err(trailers) => {
                let mut frames: Vec<Frame<Bytes>> = chunks.into_iter().map(Frame::data).collect();
                frames.push(trailers);
                return Ok(Read::Streamed { frames, rest: Some(body), reason: DropReason::UnsupportedBody });
            }
        }
    }
    Ok(Read::Whole(concat(chunks, len)))
}

fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = Vec::with_capacity(len);
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            Bytes::from(all)
        }
    }
}

/// Frames already read, then the rest of the body.
struct PrefixedBody {
    frames: Vec<Frame<Bytes>>,
    rest: Option<Incoming>,
}

impl Body for PrefixedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.frames.is_empty() {
            return Poll::Ready(Some(Ok(self.frames.remove(0))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx).map_err(BoxError::from),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }
}

/// A captured request waiting for its response body to end.
struct Pending {
    queue: Arc<CaptureQueue>,
    id: String,
    received_us: i64,
    request: Bytes,
}

/// Passes a response body through frame by frame, keeping a copy (up to the limit) for capture.
struct TeeBody {
    inner: Incoming,
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    pending: Option<Pending>,
}

impl TeeBody {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            let response = concat(std::mem::take(&mut self.chunks), self.len);
            p.queue.submit(Capture { id: p.id, received_us: p.received_us, request: p.request, response });
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let (Some(data), true) = (frame.data_ref(), this.pending.is_some()) {
                    this.len += data.len();
                    if this.len > this.limit {
                        if let Some(p) = this.pending.take() {
                            p.queue.drop_one(DropReason::TooLarge, &p.id);
                        }
                        this.chunks = Vec::new();
                    } else {
                        this.chunks.push(data.clone());
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                if let Some(p) = this.pending.take() {
                    p.queue.drop_one(DropReason::Aborted, &p.id);
                }
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // The server may stop polling once the body reports its end; anything else is a client
        // (or upstream) that went away mid-body.
        if self.inner.is_end_stream() {
            self.finish();
        } else if let Some(p) = self.pending.take() {
            p.queue.drop_one(DropReason::Aborted, &p.id);
        }
    }
}

/// Predict-route patterns: `*` matches within one path segment, `**` across segments.
pub struct Routes(Vec<Vec<u8>>);

impl Routes {
    /// Compiles the patterns.
    pub fn new(patterns: &[String]) -> Self {
        Self(patterns.iter().map(|p| p.as_bytes().to_vec()).collect())
    }

    /// Whether a path is a predict route.
    pub fn matches(&self, path: &str) -> bool {
        self.0.iter().any(|p| glob(p, path.as_bytes()))
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let (across, rest) = match rest.split_first() {
                Some((b'*', r)) => (true, r),
                _ => (false, rest),
            };
            for i in 0..=text.len() {
                if glob(rest, &text[i..]) {
                    return true;
                }
                if i < text.len() && !across && text[i] == b'/' {
                    return false;
                }
            }
            false
        }
        Some((c, rest)) => text.split_first().is_some_and(|(t, text)| t == c && glob(rest, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let routes =
            Routes::new(&super::super::config::DEFAULT_PREDICT_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(routes.matches("/v2/models/credit/infer"));
        assert!(routes.matches("/v2/models/credit/versions/3/infer"));
        assert!(routes.matches("/v1/models/credit:predict"));
        assert!(routes.matches("/predict"));
        assert!(!routes.matches("/v2/models/a/b/infer"));
        assert!(!routes.matches("/predict/x"));
        assert!(!routes.matches("/v2/models/credit/ready"));
        let prefix = Routes::new(&["/api/**".to_string()]);
        assert!(prefix.matches("/api/a/b"));
        assert!(!prefix.matches("/apix"));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        let mut kept: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["te", "x-kept"]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn ids() {
        assert_eq!(body_id(br#"{"id": "abc", "inputs": []}"#).as_deref(), Some("abc"));
        assert_eq!(body_id(br#"{"inputs": []}"#), None);
        assert_eq!(body_id(b"not json"), None);
        assert_eq!(body_id(br#"{"id": "has space"}"#), None);
    }

    #[test]
    fn generated_ids_are_unique_uuid_v7_of_now() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let ids: Vec<String> = (0..10_000).map(|_| new_id()).collect();
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
            let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!((before..=after).contains(&ms), "{id}: {ms} not in {before}..={after}");
        }
    }
}
