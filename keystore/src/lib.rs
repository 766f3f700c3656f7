//! Where digsig's signing keys come from.
//!
//! A [`KeyStore`] is configured by one URI (`DIGSIGSERVER_KEYFILE_URI`), either
//! `file:///path` or `s3://bucket/prefix`, and lays keys out as
//! `<uri>/<machine-or-distro>/<signtype>/<file>`, as upstream digsigserver does.
//!
//! Keys are fetched for each request and never retained (unless the operator
//! turns on the [`parsed_cache`] with `DIGSIGSERVER_KEY_CACHE_SECONDS`):
//! callers get
//! [`KeyMaterial`] (bytes in memory, wiped on drop) and, for vendor tools that
//! want a path, a [`TempKeyFile`] (a 0700 directory holding a 0600 file,
//! overwritten and removed on drop, so on every error path too).
//!
//! Everything a request names is validated first ([`Selector`], [`KeyFileName`]):
//! a value of those types cannot climb out of the key store.
#![deny(missing_docs)]

mod error;
mod file_store;
mod material;
mod names;
mod s3_store;
mod signtype;
#[cfg(feature = "test-support")]
pub mod testing;

pub mod access;
pub mod key_trail;
pub mod parsed_cache;
pub use error::KeyStoreError;
pub use material::{KeyMaterial, TempKeyFile};
pub use names::{KeyFileName, Selector};
pub use s3_store::{s3_client, S3Options};
pub use signtype::SignType;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest key object we accept. Key files are a few KB; the i.MX key bundle a
/// few hundred KB. The cap keeps a misconfigured URI from pulling a huge object
/// into memory.
pub const MAX_KEY_OBJECT_BYTES: u64 = 16 * 1024 * 1024;

/// A configured key store.
#[derive(Debug, Clone)]
pub struct KeyStore {
    backend: Backend,
    grants_required: bool,
    parsed: Option<parsed_cache::ParsedCache>,
}

#[derive(Debug, Clone)]
enum Backend {
    File(file_store::FileStore),
    S3(s3_store::S3Store),
}

impl KeyStore {
    /// Opens the key store named by `uri` (`file:///path` or `s3://bucket[/prefix]`).
    ///
    /// For `s3://` this loads the AWS default credential chain and honours
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` (with path-style addressing) so
    /// S3-compatible stores work. Nothing is contacted yet.
    pub async fn open(uri: &str) -> Result<Self, KeyStoreError> {
        Self::open_with(uri, &S3Options::default()).await
    }

    /// Like [`KeyStore::open`], with explicit settings for `s3://` stores.
    pub async fn open_with(uri: &str, s3: &S3Options) -> Result<Self, KeyStoreError> {
        let backend = if let Some(rest) = uri.strip_prefix("file://") {
            // `file:///keys` and `file://localhost/keys` both name /keys.
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(KeyStoreError::BadUri {
                    uri: uri.to_string(),
                    reason:
                        "a file:// key store needs an absolute path, e.g. file:///etc/digsig/keys",
                });
            }
            Backend::File(file_store::FileStore::new(PathBuf::from(path)))
        } else if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(KeyStoreError::BadUri {
                    uri: uri.to_string(),
                    reason: "an s3:// key store needs a bucket name, e.g. s3://my-keys/prefix",
                });
            }
            Backend::S3(s3_store::S3Store::new(bucket, prefix, s3).await)
        } else {
            return Err(KeyStoreError::BadUri {
                uri: uri.to_string(),
                reason: "only file:// and s3:// key stores are supported",
            });
        };
        Ok(Self {
            backend,
            grants_required: false,
            parsed: None,
        })
    }

    /// The store's location, for log lines and error messages.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::File(f) => f.location(),
            Backend::S3(s) => s.location(),
        }
    }

    /// Fetches a required key file.
    ///
    /// Fails with [`KeyStoreError::NoKeys`] when `selector` has no `signtype`
    /// keys at all, and with [`KeyStoreError::MissingFile`] when it has some but
    /// not `file`.
    pub async fn fetch(
        &self,
        selector: &Selector,
        signtype: SignType,
        file: &KeyFileName,
    ) -> Result<KeyMaterial, KeyStoreError> {
        match self.fetch_optional(selector, signtype, file).await? {
            Some(key) => Ok(key),
            None => Err(KeyStoreError::MissingFile {
                selector: selector.to_string(),
                signtype,
                file: file.to_string(),
                location: self.location(),
            }),
        }
    }

    /// This store fetches keys only for a caller whose [`access::Grant`]
    /// (in scope through [`access::with_grant`]) allows the endpoint and
    /// machine/distro: set when access control is configured.
    pub fn require_grants(mut self) -> Self {
        self.grants_required = true;
        self
    }

    /// Whether [`require_grants`](Self::require_grants) is set.
    pub fn grants_required(&self) -> bool {
        self.grants_required
    }

    /// Keeps what [`parsed`](Self::parsed) builds for `ttl` (zero: not at
    /// all, the default). Needs a Tokio runtime (the cache's sweeper).
    pub fn with_parsed_key_cache(mut self, ttl: Duration) -> Self {
        self.parsed = (!ttl.is_zero()).then(|| parsed_cache::ParsedCache::new(ttl));
        self
    }

    /// How long parsed keys are kept, if they are.
    pub fn parsed_key_cache_ttl(&self) -> Option<Duration> {
        self.parsed.as_ref().map(|c| c.ttl())
    }

    /// A domain's parsed signer for `selector`'s `signtype` keys: built by
    /// `load` (which fetches and parses them) for this request, or, with the
    /// parsed-key cache on, the one built within the cache's lifetime.
    /// `what` tells apart what one domain builds from the same keys (e.g.
    /// per hash algorithm). The caller's grant is checked either way.
    pub async fn parsed<T, E, F, Fut>(
        &self,
        selector: &Selector,
        signtype: SignType,
        what: &'static str,
        load: F,
    ) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        E: From<KeyStoreError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.check_grant(selector, signtype)?;
        match &self.parsed {
            None => Ok(Arc::new(load().await?)),
            Some(cache) => {
                cache
                    .get_or_load((selector.to_string(), signtype, what), load)
                    .await
            }
        }
    }

    /// Fails unless the caller may use `selector`'s `signtype` keys (only
    /// when grants are required).
    fn check_grant(&self, selector: &Selector, signtype: SignType) -> Result<(), KeyStoreError> {
        if self.grants_required {
            let endpoint = access::endpoint_of(signtype).unwrap_or("unknown");
            match access::current_grant() {
                None => return Err(KeyStoreError::NoGrant { signtype }),
                Some(grant) if !grant.allows(endpoint, selector.as_str()) => {
                    return Err(KeyStoreError::Forbidden {
                        client: grant.client.clone(),
                        endpoint,
                        selector: selector.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Fetches a key file that may legitimately be absent (e.g. tegra's `sbk.txt`).
    ///
    /// Still fails with [`KeyStoreError::NoKeys`] when `selector` has no
    /// `signtype` keys at all.
    pub async fn fetch_optional(
        &self,
        selector: &Selector,
        signtype: SignType,
        file: &KeyFileName,
    ) -> Result<Option<KeyMaterial>, KeyStoreError> {
        self.check_grant(selector, signtype)?;
        let key = match &self.backend {
            Backend::File(f) => f.fetch(selector, signtype, file).await,
            Backend::S3(s) => s.fetch(selector, signtype, file).await,
        }?;
        if let (Some(trail), Some(key)) = (key_trail::current(), &key) {
            trail.add(key_trail::KeyUse {
                selector: selector.to_string(),
                signtype,
                file: file.to_string(),
                fingerprint: key_trail::fingerprint(key.bytes()),
            });
        }
        Ok(key)
    }

    /// Checks that the store can be reached and read (for readiness probes).
    pub async fn check_reachable(&self) -> Result<(), KeyStoreError> {
        match &self.backend {
            Backend::File(f) => f.check_reachable().await,
            Backend::S3(s) => s.check_reachable().await,
        }
    }
}
