//! The write-ahead log: one writer thread per model appends framed Arrow batches to segment files.
//!
//! A frame is a 16-byte header (`DWF1`, table byte, 3 zero bytes, payload length and CRC-32, both
//! little-endian u32) and the payload, an Arrow IPC stream holding one validated batch. A request
//! is acknowledged only after its frame is written (and, under [`SyncPolicy::Always`], synced).
//! Requests that arrive while a sync is under way share the next one (group commit).
//!
//! Segments are sealed by size, by age, or on request, then handed to the flusher, which turns a
//! sealed segment into Parquet and deletes it. Reading a segment stops at the first torn or corrupt
//! frame: such a frame was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::decode::Table;
use crate::error::Result;

const MAGIC: &[u8; 4] = b"DWF1";
const HEADER: usize = 16;

/// When appended frames are synced to disk before the acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Sync before acknowledging; concurrent requests share one sync. Survives power loss.
    #[default]
    Always,
    /// Acknowledge once written; sync every `sync_interval`. Survives a crash of the process,
    /// may lose the last interval on power loss.
    Interval,
    /// Never sync explicitly; the OS writes back when it likes. For tests and throwaway data.
    Never,
}

/// Encodes one batch as a frame.
pub fn encode_frame(table: Table, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; HEADER];
    {
        let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let len = (buf.len() - HEADER) as u32;
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[..4].copy_from_slice(MAGIC);
    buf[4] = match table {
        Table::Predictions => 0,
        Table::Labels => 1,
    };
    buf[8..12].copy_from_slice(&len.to_le_bytes());
    buf[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Reads every whole, valid frame of a segment, in order. A torn or corrupt tail is logged and
/// ignored; it was never acknowledged.
pub fn read_segment(path: &Path) -> Result<Vec<(Table, RecordBatch)>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(header) = data.get(pos..pos + HEADER) else { break };
        let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        let Some(payload) = data.get(pos + HEADER..pos + HEADER + len) else { break };
        if &header[..4] != MAGIC || header[4] > 1 || crc32fast::hash(payload) != crc {
            break;
        }
        let table = if header[4] == 0 { Table::Predictions } else { Table::Labels };
        for batch in StreamReader::try_new(payload, None)? {
            frames.push((table, batch?));
        }
        pos += HEADER + len;
    }
    if pos < data.len() {
        tracing::warn!(segment = %path.display(), valid_bytes = pos, total_bytes = data.len(), "ignoring a torn or corrupt tail of a WAL segment (never acknowledged)");
    }
    Ok(frames)
}

/// Path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// The segments present in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let seq =
            path.extension().filter(|e| *e == "wal").and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
        if let Some(seq) = seq {
            segments.push((seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Syncs a directory so that creations and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A sealed segment for the flusher, or a barrier that completes once everything before it is flushed.
pub struct Sealed {
    /// The segment's number and path; `None` for a barrier.
    pub segment: Option<(u64, PathBuf, u64)>,
    /// Completed once the segment (and all before it) is in the store.
    pub done: Vec<oneshot::Sender<Result<(), String>>>,
}

enum Command {
    Append { frame: Vec<u8>, ack: oneshot::Sender<std::io::Result<()>> },
    Seal { done: oneshot::Sender<Result<(), String>> },
}

/// Settings of one WAL.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When to sync.
    pub sync: SyncPolicy,
    /// Sync period under [`SyncPolicy::Interval`].
    pub sync_interval: Duration,
    /// Seal a segment once it holds this many bytes.
    pub max_segment_bytes: u64,
    /// Seal a non-empty segment once it is this old.
    pub max_segment_age: Duration,
    /// Queue length in front of the writer thread; a full queue answers 429.
    pub queue: usize,
}

/// Handle to a WAL writer thread.
pub struct Wal {
    tx: SyncSender<Command>,
    /// Bytes written to segments that are not yet flushed to the store.
    pub pending: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// The queue in front of the writer is full: the client should retry later.
    Full,
    /// The writer stopped (shutdown) or the disk failed.
    Failed(String),
}

impl Wal {
    /// Starts a writer on `dir`, beginning a new segment after `next_seq - 1`. Sealed segments go
    /// to `sealed`.
    pub fn start(
        dir: PathBuf,
        next_seq: u64,
        options: WalOptions,
        pending: Arc<AtomicU64>,
        sealed: std::sync::mpsc::Sender<Sealed>,
    ) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(options.queue);
        let mut writer = Writer::open(dir, next_seq, options, pending.clone(), sealed)?;
        let thread = std::thread::Builder::new().name("wal-writer".into()).spawn(move || writer.run(rx))?;
        Ok(Self { tx, pending, thread: Some(thread) })
    }

    /// Appends a frame; resolves once it is durable per the sync policy.
    pub async fn append(&self, frame: Vec<u8>) -> Result<(), AppendError> {
        let (ack, acked) = oneshot::channel();
        match self.tx.try_send(Command::Append { frame, ack }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AppendError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(AppendError::Failed("the WAL writer stopped".into())),
        }
        match acked.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AppendError::Failed(e.to_string())),
            Err(_) => Err(AppendError::Failed("the WAL writer stopped".into())),
        }
    }

    /// Seals the current segment; resolves once everything appended before is in the store.
    pub async fn seal(&self) -> Result<(), String> {
        let (done, flushed) = oneshot::channel();
        // A seal waits for room rather than failing: it is rare and must not be lost.
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || tx.send(Command::Seal { done }))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the WAL writer stopped".to_string())?;
        flushed.await.map_err(|_| "the flusher stopped".to_string())?
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Closing the queue makes the writer seal its last segment and exit.
        let (tx, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Writer {
    dir: PathBuf,
    seq: u64,
    file: File,
    bytes: u64,
    opened: Instant,
    last_sync: Instant,
    dirty: bool,
    options: WalOptions,
    pending: Arc<AtomicU64>,
    sealed: std::sync::mpsc::Sender<Sealed>,
}

impl Writer {
    fn open(
        dir: PathBuf,
        seq: u64,
        options: WalOptions,
        pending: Arc<AtomicU64>,
        sealed: std::sync::mpsc::Sender<Sealed>,
    ) -> Result<Self> {
        let file = Self::create(&dir, seq)?;
        Ok(Self {
            dir,
            seq,
            file,
            bytes: 0,
            opened: Instant::now(),
            last_sync: Instant::now(),
            dirty: false,
            options,
            pending,
            sealed,
        })
    }

    fn create(dir: &Path, seq: u64) -> std::io::Result<File> {
        let file = OpenOptions::new().create_new(true).append(true).open(segment_path(dir, seq))?;
        sync_dir(dir)?;
        Ok(file)
    }

    fn run(&mut self, rx: Receiver<Command>) {
        let mut commands = Vec::new();
        loop {
            let timeout = self.next_deadline().saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(c) => commands.push(c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while commands.len() < 1024 {
                match rx.try_recv() {
                    Ok(c) => commands.push(c),
                    Err(_) => break,
                }
            }
            self.handle(&mut commands);
        }
        self.seal(Vec::new());
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let age = if self.bytes > 0 { self.opened + self.options.max_segment_age } else { far };
        let sync = if self.dirty && self.options.sync == SyncPolicy::Interval {
            self.last_sync + self.options.sync_interval
        } else {
            far
        };
        age.min(sync)
    }

    fn handle(&mut self, commands: &mut Vec<Command>) {
        let mut acks = Vec::new();
        let mut seals = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Append { frame, ack } => match self.write(&frame) {
                    Ok(()) => acks.push(ack),
                    Err(e) => {
                        tracing::error!(error = %e, segment = self.seq, "WAL append failed");
                        let _ = ack.send(Err(e));
                    }
                },
                Command::Seal { done } => seals.push(done),
            }
        }
        let must_sync = match self.options.sync {
            SyncPolicy::Always => !acks.is_empty(),
            SyncPolicy::Interval => self.dirty && self.last_sync.elapsed() >= self.options.sync_interval,
            SyncPolicy::Never => false,
        };
        if must_sync {
            if let Err(e) = self.file.sync_data() {
                tracing::error!(error = %e, segment = self.seq, "WAL sync failed");
                for ack in acks.drain(..) {
                    let _ = ack.send(Err(std::io::Error::other(format!("WAL sync failed: {e}"))));
                }
            }
            self.last_sync = Instant::now();
            self.dirty = false;
        }
        for ack in acks {
            let _ = ack.send(Ok(()));
        }
        let aged = self.bytes > 0 && self.opened.elapsed() >= self.options.max_segment_age;
        if !seals.is_empty() || aged || self.bytes >= self.options.max_segment_bytes {
            self.seal(seals);
        }
    }

    fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if let Err(e) = self.file.write_all(frame) {
            // A partial frame would hide every later frame from replay: cut it off.
            self.file.set_len(self.bytes)?;
            return Err(e);
        }
        self.bytes += frame.len() as u64;
        self.dirty = true;
        self.pending.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Hands the current segment to the flusher (if it holds anything) and starts the next.
    fn seal(&mut self, done: Vec<oneshot::Sender<Result<(), String>>>) {
        if self.bytes == 0 {
            let _ = self.sealed.send(Sealed { segment: None, done });
            return;
        }
        if let Err(e) = self.file.sync_data() {
            tracing::error!(error = %e, segment = self.seq, "WAL sync before sealing failed");
        }
        let sealed = Sealed { segment: Some((self.seq, segment_path(&self.dir, self.seq), self.bytes)), done };
        match Self::create(&self.dir, self.seq + 1) {
            Ok(file) => {
                self.file = file;
                self.seq += 1;
                self.bytes = 0;
                self.opened = Instant::now();
                self.dirty = false;
                let _ = self.sealed.send(sealed);
            }
            Err(e) => {
                // Keep appending to the current segment; it is sealed on a later try.
                tracing::error!(error = %e, "cannot start a new WAL segment");
                for d in sealed.done {
                    let _ = d.send(Err(format!("cannot start a new WAL segment: {e}")));
                }
            }
        }
    }
}

/// Reads or creates the id that makes this WAL's Parquet file names unique among writers.
pub fn writer_id(dir: &Path) -> Result<String> {
    let path = dir.join("writer-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid::Uuid::now_v7().simple().to_string();
            let tmp = dir.join("writer-id.tmp");
            std::fs::write(&tmp, &id)?;
            File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(dir)?;
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn torn_tail_is_ignored_and_whole_frames_survive() {
        let dir = tempfile::tempdir().unwrap();
        let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
        let frame = encode_frame(Table::Predictions, &batch).unwrap();
        let path = segment_path(dir.path(), 1);
        let mut bytes = frame.clone();
        bytes.extend_from_slice(&frame);
        bytes.extend_from_slice(&frame[..frame.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();
        let frames = read_segment(&path).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].1, batch);

        // A flipped payload bit ends the readable part there.
        let mut corrupt = frame.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        bytes = [frame.clone(), corrupt, frame].concat();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_segment(&path).unwrap().len(), 1);
    }
}
