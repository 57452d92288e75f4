//! Delivery to a remote anchorwatch: batches are POSTed to `/v1/models/{model}/predictions`;
//! while the central service is down they wait in a bounded spool on disk, oldest first, and a
//! delivery task retries with backoff. The spool outlives the process: what is left at exit is
//! sent at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Mutex, Notify, watch};

use super::capture::{Group, body};
use super::config::ProxyConfig;
use super::metrics::{DropReason, ProxyMetrics};

/// The outcome of one POST.
enum Posted {
    /// 2xx: stored.
    Stored,
    /// A 4xx other than 408 and 429: the rows do not fit; resending cannot help.
    Refused(String),
    /// Down, overloaded or slow: try again later.
    Retry(String),
}

/// The remote collector client and its spool.
pub struct Remote {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    spool: Spool,
    wake: Notify,
    max_backoff: Duration,
    metrics: Arc<ProxyMetrics>,
}

impl Remote {
    /// A client for the collector `config` names, spooling under `spool_dir`.
    pub fn new(config: &ProxyConfig, base: &str, spool_dir: &Path, metrics: Arc<ProxyMetrics>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(config.collector_timeout).build()?;
        let url = format!("{}/v1/models/{}/predictions", base.trim_end_matches('/'), config.model);
        let spool = Spool::open(spool_dir, config.spool_max_bytes, metrics.clone())
            .map_err(|e| anyhow::anyhow!("--spool-dir {}: {e}", spool_dir.display()))?;
        Ok(Self {
            client,
            url,
            token: config.collector_token.clone(),
            spool,
            wake: Notify::new(),
            max_backoff: config.collector_max_backoff,
            metrics,
        })
    }

    /// Sends records now, or spools them when the collector is down or earlier rows still wait
    /// (so rows arrive in order).
    pub async fn send(&self, groups: Vec<Group>) {
        let groups = if self.spool.is_empty() { self.deliver(groups).await } else { groups };
        if groups.is_empty() {
            return;
        }
        let n = groups.len() as u64;
        match self.spool.push(&groups).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => self.metrics.dropped(DropReason::SpoolFull, n, &e),
        }
    }

    /// Posts groups; returns those to retry later. Refused rows are dropped and counted.
    async fn deliver(&self, groups: Vec<Group>) -> Vec<Group> {
        match self.post(&body(&groups)).await {
            Posted::Stored => {
                self.stored(&groups);
                Vec::new()
            }
            Posted::Retry(_) => groups,
            // One exchange that does not fit must not sink the others: resend them one by one.
            Posted::Refused(why) if groups.len() == 1 => {
                tracing::warn!(reason = %why, "the remote collector refused captured rows");
                self.metrics.dropped(DropReason::Rejected, 1, &why);
                Vec::new()
            }
            Posted::Refused(_) => {
                let mut retry = Vec::new();
                for group in groups {
                    match self.post(&body(std::slice::from_ref(&group))).await {
                        Posted::Stored => self.stored(std::slice::from_ref(&group)),
                        Posted::Refused(why) => {
                            tracing::warn!(reason = %why, "the remote collector refused captured rows");
                            self.metrics.dropped(DropReason::Rejected, 1, &why);
                        }
                        Posted::Retry(_) => retry.push(group),
                    }
                }
                retry
            }
        }
    }

    fn stored(&self, groups: &[Group]) {
        self.metrics.capture_rows.inc_by(groups.iter().map(|g| g.len() as u64).sum());
    }

    async fn post(&self, body: &[u8]) -> Posted {
        let mut request = self.client.post(&self.url).header("content-type", "application/json").body(body.to_vec());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => Posted::Stored,
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                let status = r.status();
                Posted::Refused(format!("{status}: {}", r.text().await.unwrap_or_default()))
            }
            Ok(r) => Posted::Retry(format!("status {}", r.status())),
            Err(e) => Posted::Retry(e.to_string()),
        };
        if let Posted::Retry(why) = &outcome {
            self.metrics.collector_errors.inc();
            tracing::debug!(url = %self.url, error = %why, "the remote collector did not take a batch; it waits in the spool");
        }
        outcome
    }

    /// Sends spooled batches, oldest first, until `stop` is set; then tries what is left once and
    /// returns (the rest stays on disk for the next start).
    pub async fn run_delivery(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let stopping = *stop.borrow();
            let Some(path) = self.spool.oldest().await else {
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let groups = match self.spool.read(&path).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable spool file; set aside as .bad");
                    self.spool.set_aside(&path).await;
                    continue;
                }
            };
            let before = groups.len();
            let left = self.deliver(groups).await;
            if left.is_empty() {
                self.spool.remove(&path).await;
                backoff = Duration::from_millis(100);
                continue;
            }
            if left.len() != before {
                self.spool.rewrite(&path, &left).await;
            }
            if stopping {
                let files = self.spool.len().await;
                tracing::warn!(
                    files,
                    "the remote collector is unreachable at shutdown; spooled rows are sent at the next start"
                );
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }
}

/// Batches on disk: one file per batch, `<seq>.ndjson`, one line per exchange (its records as a
/// JSON array). Files appear whole (written, synced, renamed).
struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    bytes: AtomicU64,
    state: Mutex<SpoolState>,
    metrics: Arc<ProxyMetrics>,
}

struct SpoolState {
    next_seq: u64,
    files: std::collections::BTreeMap<u64, u64>,
}

impl Spool {
    fn open(dir: &Path, max_bytes: u64, metrics: Arc<ProxyMetrics>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut files = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(seq) = name.strip_suffix(".ndjson").and_then(|s| s.parse::<u64>().ok()) {
                files.insert(seq, entry.metadata()?.len());
            } else if name.ends_with(".tmp") {
                // A batch half-written when the process died was never acknowledged as spooled.
                let _ = std::fs::remove_file(&path);
            }
        }
        let bytes: u64 = files.values().sum();
        if !files.is_empty() {
            tracing::info!(files = files.len(), bytes, dir = %dir.display(), "rows spooled by an earlier run will be sent");
        }
        metrics.spool_bytes.set(bytes as i64);
        let next_seq = files.keys().next_back().map_or(1, |s| s + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            bytes: AtomicU64::new(bytes),
            state: Mutex::new(SpoolState { next_seq, files }),
            metrics,
        })
    }

    fn is_empty(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) == 0
    }

    async fn len(&self) -> usize {
        self.state.lock().await.files.len()
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.ndjson"))
    }

    fn encode(groups: &[Group]) -> Vec<u8> {
        let mut out = Vec::new();
        for g in groups {
            if serde_json::to_writer(&mut out, g).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }

    async fn push(&self, groups: &[Group]) -> Result<(), String> {
        let data = Self::encode(groups);
        let len = data.len() as u64;
        let mut state = self.state.lock().await;
        let used = self.bytes.load(Ordering::Relaxed);
        if used + len > self.max_bytes {
            return Err(format!("the spool holds {used} bytes; --spool-max-bytes is {}", self.max_bytes));
        }
        let seq = state.next_seq;
        let path = self.path(seq);
        write_whole(&path, data).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        state.next_seq += 1;
        state.files.insert(seq, len);
        self.add(len as i64);
        Ok(())
    }

    fn add(&self, delta: i64) {
        let now = if delta >= 0 {
            self.bytes.fetch_add(delta as u64, Ordering::Relaxed) + delta as u64
        } else {
            self.bytes.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed) - delta.unsigned_abs()
        };
        self.metrics.spool_bytes.set(now as i64);
    }

    async fn oldest(&self) -> Option<PathBuf> {
        self.state.lock().await.files.keys().next().map(|s| self.path(*s))
    }

    async fn read(&self, path: &Path) -> std::io::Result<Vec<Group>> {
        let data = tokio::fs::read(path).await?;
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Vec<Value>>(l).map_err(std::io::Error::other))
            .collect()
    }

    fn seq_of(path: &Path) -> Option<u64> {
        path.file_name()?.to_str()?.strip_suffix(".ndjson")?.parse().ok()
    }

    async fn forget(&self, path: &Path) {
        let Some(seq) = Self::seq_of(path) else { return };
        if let Some(len) = self.state.lock().await.files.remove(&seq) {
            self.add(-(len as i64));
        }
    }

    async fn remove(&self, path: &Path) {
        if let Err(e) = tokio::fs::remove_file(path).await {
            tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered spool file");
        }
        self.forget(path).await;
    }

    async fn set_aside(&self, path: &Path) {
        let _ = tokio::fs::rename(path, path.with_extension("bad")).await;
        self.forget(path).await;
    }

    async fn rewrite(&self, path: &Path, groups: &[Group]) {
        let Some(seq) = Self::seq_of(path) else { return };
        let data = Self::encode(groups);
        let len = data.len() as u64;
        if let Err(e) = write_whole(path, data).await {
            tracing::error!(file = %path.display(), error = %e, "cannot rewrite a spool file; rows may be sent twice");
            return;
        }
        let mut state = self.state.lock().await;
        if let Some(old) = state.files.insert(seq, len) {
            self.add(len as i64 - old as i64);
        }
    }
}

/// Writes a file so that it appears whole: to a temporary name, synced, then renamed.
async fn write_whole(path: &Path, data: Vec<u8>) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(std::io::Error::other)?
}
