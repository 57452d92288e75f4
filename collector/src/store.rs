//! The store: every file of a model's dataset is read and written through `object_store`, so a
//! local folder and object storage (`s3://bucket/prefix`, docs/store.md) behave alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// How long [`Store::connect`] waits for an object store to answer. The client retries connection
/// failures for minutes; a server that cannot reach its store should say so at start instead.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `store.root` names, parsed but not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder, from a path or a `file://` URL.
    Local(PathBuf),
    /// An S3 bucket and the key prefix everything is stored under (empty for the bucket's root).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix without leading or trailing `/`, e.g. `anchorwatch/prod`.
        prefix: String,
    },
}

impl Location {
    /// Parses a store root: a folder, `file:///folder`, or `s3://bucket[/prefix]`. The error names
    /// `store.root`, what it holds and what was expected.
    pub fn parse(root: &str) -> Result<Self> {
        let bad = |why: String| Error::Config(format!("store.root `{root}`: {why}"));
        let Some((scheme, rest)) = root.split_once("://") else {
            if root.trim().is_empty() {
                return Err(bad("is empty; expected a folder, a file:// URL or s3://bucket/prefix".into()));
            }
            return Ok(Self::Local(PathBuf::from(root)));
        };
        match scheme {
            "file" => Ok(Self::Local(PathBuf::from(rest))),
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket; expected s3://bucket or s3://bucket/prefix".into()));
                }
                if !is_bucket_name(bucket) {
                    return Err(bad(format!(
                        "`{bucket}` is not a valid bucket name (3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit)"
                    )));
                }
                let prefix = prefix.trim_end_matches('/');
                if prefix.contains(['?', '#']) {
                    return Err(bad("query strings and fragments are not allowed; expected s3://bucket/prefix".into()));
                }
                if !prefix.is_empty() {
                    Path::parse(prefix)
                        .map_err(|e| bad(format!("the prefix `{prefix}` is not a valid key prefix: {e}")))?;
                }
                Ok(Self::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
            }
            other => Err(bad(format!(
                "`{other}://` stores are not supported; use a local folder, a file:// URL or s3://bucket/prefix (docs/store.md)"
            ))),
        }
    }
}

/// S3's bucket naming rules (the ones every S3-compatible service shares).
fn is_bucket_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
}

/// An opened store root.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    url: String,
    /// For messages: where an object store's requests go.
    endpoint: Option<String>,
}

impl Store {
    /// Opens a store root without talking to it: a local folder (created if missing), given as a
    /// path or `file://` URL, or `s3://bucket[/prefix]`, configured from the usual `AWS_*`
    /// environment variables (docs/store.md). Servers and commands use [`Store::connect`], which
    /// also checks that an object store answers.
    pub fn open(root: &str) -> Result<Self> {
        match Location::parse(root)? {
            Location::Local(path) => {
                std::fs::create_dir_all(&path).map_err(|e| {
                    Error::Config(format!("store.root `{root}`: cannot create the folder {}: {e}", path.display()))
                })?;
                let path = path.canonicalize()?;
                let inner = LocalFileSystem::new_with_prefix(&path)?;
                let url = format!("file://{}", path.display());
                Ok(Self { inner: Arc::new(inner), local_root: Some(path), url, endpoint: None })
            }
            Location::S3 { bucket, prefix } => {
                let builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                let endpoint = builder
                    .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                    .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint))
                    .unwrap_or_else(|| {
                        let region = builder.get_config_value(&AmazonS3ConfigKey::Region);
                        format!("AWS S3 in {}", region.as_deref().unwrap_or("us-east-1"))
                    });
                let allow_http = builder
                    .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                    .map(|v| v.to_ascii_lowercase());
                if endpoint.starts_with("http://")
                    && !matches!(allow_http.as_deref(), Some("1" | "true" | "on" | "yes" | "y"))
                {
                    return Err(Error::Config(format!(
                        "store.root `{root}`: the endpoint {endpoint} (AWS_ENDPOINT_URL) is plain HTTP; set \
                         AWS_ALLOW_HTTP=true to allow it, or use an https:// endpoint"
                    )));
                }
                let s3 = builder.build().map_err(|e| {
                    Error::Config(format!(
                        "store.root `{root}`: cannot set up the S3 client from the AWS_* environment variables: {e}"
                    ))
                })?;
                let inner: Arc<dyn ObjectStore> =
                    if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) };
                let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
                Ok(Self { inner, local_root: None, url, endpoint: Some(endpoint) })
            }
        }
    }

    /// Opens a store root as [`Store::open`] does, then checks that an object store answers and
    /// lets this process list the bucket, so a server refuses to start with a clear message
    /// rather than failing at its first flush.
    pub async fn connect(root: &str) -> Result<Self> {
        let store = Self::open(root)?;
        store.check().await?;
        Ok(store)
    }

    /// Lists the root once (one request to an object store). The error names `store.root`, the
    /// endpoint, the cause, and the settings that usually fix it.
    pub async fn check(&self) -> Result<()> {
        let Some(endpoint) = &self.endpoint else { return Ok(()) };
        let hint = "check that the bucket exists, the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
                    AWS_SESSION_TOKEN), the region (AWS_REGION) and, for a service other than AWS, AWS_ENDPOINT_URL \
                    (with AWS_ALLOW_HTTP=true for an http:// endpoint); see docs/store.md";
        match tokio::time::timeout(CONNECT_TIMEOUT, self.inner.list_with_delimiter(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::Config(format!(
                "store.root `{}`: cannot list the bucket at {endpoint}: {e}; {hint}",
                self.url
            ))),
            Err(_) => Err(Error::Config(format!(
                "store.root `{}`: no answer from {endpoint} within {} s; {hint}",
                self.url,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The object store, for readers such as DataFusion.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// The object store as readers of tables should see it: listings leave out the sources of
    /// compacted files ([`crate::compact::LiveStore`]).
    pub fn live_object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(crate::compact::LiveStore::new(self.inner.clone()))
    }

    /// The local folder behind the store, when it is one (`None` for object storage).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The root as a URL: `file:///abs/folder` or `s3://bucket/prefix`. An object at `path` is at
    /// `{url}/{path}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes an object atomically (readers see all of it or nothing), and durably on local disk.
    /// On object storage this is one PUT, which is atomic and durable once answered.
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

    /// The rows of the Parquet file at `path`, from its footer (the file is read whole: for the
    /// rare file that is counted, not analysed).
    pub async fn parquet_rows(&self, path: &Path) -> Result<u64> {
        let data = self.inner.get(path).await?.bytes().await?;
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&data)?;
        Ok(metadata.file_metadata().num_rows().max(0) as u64)
    }

    /// Deletes an object; one that is already gone is no error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(root: &str) -> String {
        Location::parse(root).unwrap_err().to_string()
    }

    #[test]
    fn parses_roots() {
        assert_eq!(Location::parse("data").unwrap(), Location::Local("data".into()));
        assert_eq!(Location::parse("file:///var/lib/x").unwrap(), Location::Local("/var/lib/x".into()));
        assert_eq!(
            Location::parse("s3://bucket").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "".into() }
        );
        assert_eq!(
            Location::parse("s3://my.bucket-1/a/b/").unwrap(),
            Location::S3 { bucket: "my.bucket-1".into(), prefix: "a/b".into() }
        );
    }

    #[test]
    fn malformed_roots_say_what_was_expected() {
        assert!(err("s3://").contains("no bucket; expected s3://bucket"));
        assert!(err("s3:///x").contains("no bucket"));
        assert!(err("s3://My_Bucket/x").contains("`My_Bucket` is not a valid bucket name"));
        assert!(err("s3://ab").contains("not a valid bucket name"));
        assert!(err("s3://b-1/a//c").contains("the prefix `a//c` is not a valid key prefix"));
        assert!(err("s3://b-1/a?x=1").contains("query strings"));
        assert!(err("gs://b/p").contains("`gs://` stores are not supported"));
        assert!(err("").contains("store.root ``: is empty"));
    }

    #[test]
    fn s3_store_has_no_local_root() {
        let store = Store::open("s3://bucket-a/some/prefix").unwrap();
        assert_eq!(store.local_root(), None);
        assert_eq!(store.url(), "s3://bucket-a/some/prefix");
    }

    #[test]
    fn local_store_url() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(store.local_root(), Some(dir.path().canonicalize().unwrap().as_path()));
        assert!(store.url().starts_with("file:///"));
    }
}
