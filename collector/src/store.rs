//! The store: every file of a model's dataset is read and written through `object_store`, so a
//! local folder and object storage behave alike.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// An opened store root.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl Store {
    /// Opens a store root: a local folder (created if missing), given as a path or `file://` URL.
    pub fn open(root: &str) -> Result<Self> {
        if let Some(scheme) = root.split_once("://").map(|(s, _)| s).filter(|s| *s != "file") {
            return Err(Error::Schema(format!(
                "store.root: `{scheme}://` stores are not supported by this build yet; use a local folder"
            )));
        }
        let path = PathBuf::from(root.strip_prefix("file://").unwrap_or(root));
        std::fs::create_dir_all(&path)?;
        let path = path.canonicalize()?;
        let inner = LocalFileSystem::new_with_prefix(&path)?;
        Ok(Self { inner: Arc::new(inner), local_root: Some(path) })
    }

    /// The object store, for readers such as DataFusion.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// The local folder behind the store, when it is one.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Writes an object atomically (readers see all of it or nothing), and durably on local disk.
    pub async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        self.inner.put(path, data.into()).await?;
        if let Some(root) = &self.local_root {
            // object_store renames a staged file into place but does not fsync; the WAL segment
            // behind this file is deleted next, so the file must be on disk first.
            let full = root.join(path.as_ref());
            std::fs::File::open(&full)?.sync_all()?;
            if let Some(dir) = full.parent() {
                crate::wal::sync_dir(dir)?;
            }
        }
        Ok(())
    }
}
