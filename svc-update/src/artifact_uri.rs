//! Where a Mender artifact lives, and whether this server may touch it.
//!
//! Upstream reads and overwrites whatever `file://` path or `s3://` object
//! the client names, as far as its process can reach. Here an `artifact-uri`
//! is accepted only inside the locations the operator lists in
//! `DIGSIGSERVER_MENDER_ALLOWED_URIS`; with none listed, Mender signing is off.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The variable listing where artifacts may be signed in place.
pub const ALLOWED_URIS_VAR: &str = "DIGSIGSERVER_MENDER_ALLOWED_URIS";

/// A parsed `artifact-uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactUri {
    /// `file:///absolute/path`
    File(PathBuf),
    /// `s3://bucket/key`
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactUri::File(path) => write!(f, "file://{}", path.display()),
            ArtifactUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Why an `artifact-uri` is refused.
#[derive(Debug, thiserror::Error)]
pub enum UriError {
    /// Not a URI this endpoint understands (400).
    #[error("artifact-uri {uri:?} {reason}")]
    Malformed {
        /// The URI as sent.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Mender signing is not enabled on this server (403).
    #[error("Mender signing is disabled on this server: the operator has to list the file:// directories and s3:// buckets artifacts may be signed in with {ALLOWED_URIS_VAR}")]
    NoneAllowed,
    /// Outside every allowed location, after resolving symbolic links (403).
    #[error("artifact-uri {uri} is outside the locations this server may sign in place ({ALLOWED_URIS_VAR}={allowed})")]
    NotAllowed {
        /// The URI as resolved.
        uri: String,
        /// The allowed locations.
        allowed: String,
    },
    /// Inside an allowed directory, but nothing is there (404).
    #[error("artifact {uri} does not exist; upload the artifact there first")]
    Missing {
        /// The URI as sent.
        uri: String,
    },
    /// Exists but is a directory, device or the like (400).
    #[error("artifact-uri {uri} is not a regular file")]
    NotAFile {
        /// The URI as sent.
        uri: String,
    },
    /// The file system would not say (500).
    #[error("cannot resolve artifact-uri {uri}: {source}")]
    Io {
        /// The URI as sent.
        uri: String,
        /// The failure.
        source: io::Error,
    },
}

impl ArtifactUri {
    /// Parses `file:///path`, `file://localhost/path` or `s3://bucket/key`.
    /// Paths and keys with `..` segments are refused outright.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let malformed = |reason| UriError::Malformed {
            uri: uri.to_string(),
            reason,
        };
        if uri.contains('\0') {
            return Err(malformed("contains a NUL byte"));
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(malformed(
                    "needs an absolute path, e.g. file:///srv/artifacts/image.mender",
                ));
            }
            let path = PathBuf::from(path);
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(malformed("must not contain '..' segments"));
            }
            Ok(ArtifactUri::File(path))
        } else if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(malformed(
                    "needs a bucket and an object key, e.g. s3://bucket/path/image.mender",
                ));
            }
            if key.split('/').any(|segment| segment == "..") {
                return Err(malformed("must not contain '..' segments"));
            }
            Ok(ArtifactUri::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })
        } else {
            Err(malformed(
                "is not supported: artifacts are read from and written back to file:// or s3:// URIs only",
            ))
        }
    }
}

impl fmt::Display for AllowedUris {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One location artifacts may be signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedLocation {
    /// Files anywhere below this directory.
    Dir(PathBuf),
    /// Objects in this bucket whose keys start with `prefix` ("" or ending in '/').
    S3 { bucket: String, prefix: String },
}

/// The operator's list of locations artifacts may be signed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedUris {
    locations: Vec<AllowedLocation>,
    /// As configured, for messages.
    text: String,
}

/// A `DIGSIGSERVER_MENDER_ALLOWED_URIS` entry that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{ALLOWED_URIS_VAR}: entry {entry:?} {reason}")]
pub struct AllowedUrisError {
    entry: String,
    reason: &'static str,
}

impl AllowedUrisError {
    /// The entry that does not parse.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl AllowedUris {
    /// Parses a comma- or space-separated list of `file:///dir` and
    /// `s3://bucket[/prefix]` entries. An empty list allows nothing.
    pub fn parse(list: &str) -> Result<Self, AllowedUrisError> {
        let mut locations = Vec::new();
        let mut entries = Vec::new();
        for entry in list.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()) {
            let bad = |reason| AllowedUrisError {
                entry: entry.to_string(),
                reason,
            };
            let location = if entry.starts_with("file://") {
                match ArtifactUri::parse(entry) {
                    Ok(ArtifactUri::File(dir)) if dir != Path::new("/") => {
                        AllowedLocation::Dir(dir)
                    }
                    Ok(_) => return Err(bad("allows the whole file system; name a directory")),
                    Err(_) => return Err(bad("is not an absolute file:// directory without '..'")),
                }
            } else if let Some(rest) = entry.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("needs a bucket name, e.g. s3://bucket/prefix"));
                }
                let prefix = prefix.trim_matches('/');
                if prefix.split('/').any(|segment| segment == "..") {
                    return Err(bad("must not contain '..' segments"));
                }
                AllowedLocation::S3 {
                    bucket: bucket.to_string(),
                    prefix: if prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{prefix}/")
                    },
                }
            } else {
                return Err(bad("is neither file:///dir nor s3://bucket[/prefix]"));
            };
            locations.push(location);
            entries.push(entry);
        }
        Ok(Self {
            locations,
            text: entries.join(","),
        })
    }

    /// Whether nothing is allowed (Mender signing off).
    pub fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// Checks `uri` against the list. A file must exist, be a regular file
    /// and stay inside an allowed directory after symbolic links are
    /// resolved; the resolved path is returned so the caller works on what
    /// was checked. Paths outside every directory are refused before the file
    /// system is asked anything, so the reply says nothing about them.
    pub async fn authorize(&self, uri: &ArtifactUri) -> Result<ArtifactUri, UriError> {
        if self.is_empty() {
            return Err(UriError::NoneAllowed);
        }
        let not_allowed = |shown: &ArtifactUri| UriError::NotAllowed {
            uri: shown.to_string(),
            allowed: self.text.clone(),
        };
        match uri {
            ArtifactUri::S3 { bucket, key } => {
                let inside = self.locations.iter().any(|l| {
                    matches!(l, AllowedLocation::S3 { bucket: b, prefix } if b == bucket && key.starts_with(prefix.as_str()))
                });
                if inside {
                    Ok(uri.clone())
                } else {
                    Err(not_allowed(uri))
                }
            }
            ArtifactUri::File(path) => {
                let dirs: Vec<&PathBuf> = self
                    .locations
                    .iter()
                    .filter_map(|l| match l {
                        AllowedLocation::Dir(dir) => Some(dir),
                        AllowedLocation::S3 { .. } => None,
                    })
                    .collect();
                if !dirs.iter().any(|dir| path.starts_with(dir)) {
                    return Err(not_allowed(uri));
                }
                let resolved = match tokio::fs::canonicalize(path).await {
                    Ok(p) => p,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(UriError::Missing {
                            uri: uri.to_string(),
                        })
                    }
                    Err(source) => {
                        return Err(UriError::Io {
                            uri: uri.to_string(),
                            source,
                        })
                    }
                };
                let mut inside = false;
                for dir in dirs {
                    if let Ok(real_dir) = tokio::fs::canonicalize(dir).await {
                        inside |= resolved.starts_with(&real_dir) && resolved != real_dir;
                    }
                }
                let resolved_uri = ArtifactUri::File(resolved);
                if !inside {
                    return Err(not_allowed(&resolved_uri));
                }
                let ArtifactUri::File(resolved) = &resolved_uri else {
                    unreachable!()
                };
                match tokio::fs::metadata(resolved).await {
                    Ok(meta) if meta.is_file() => Ok(resolved_uri),
                    Ok(_) => Err(UriError::NotAFile {
                        uri: uri.to_string(),
                    }),
                    Err(source) => Err(UriError::Io {
                        uri: uri.to_string(),
                        source,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_schemes_and_refuses_the_rest() {
        assert_eq!(
            ArtifactUri::parse("file:///srv/a/x.mender").unwrap(),
            ArtifactUri::File("/srv/a/x.mender".into())
        );
        assert_eq!(
            ArtifactUri::parse("file://localhost/srv/x.mender").unwrap(),
            ArtifactUri::File("/srv/x.mender".into())
        );
        assert_eq!(
            ArtifactUri::parse("s3://b/d/uuid").unwrap(),
            ArtifactUri::S3 {
                bucket: "b".into(),
                key: "d/uuid".into()
            }
        );
        for bad in [
            "http://host/x.mender",
            "ftp://host/x.mender",
            "/srv/x.mender",
            "file://relative/x",
            "file:///srv/a/../../etc/passwd",
            "s3://bucket",
            "s3:///key",
            "s3://b/a/../x",
            "file:///srv/\0x",
        ] {
            let err = ArtifactUri::parse(bad).unwrap_err();
            assert!(matches!(err, UriError::Malformed { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn allowed_list_parses_and_refuses_bad_entries() {
        let list = AllowedUris::parse("file:///srv/artifacts/, s3://tmp/digsig").unwrap();
        assert_eq!(
            list.locations,
            vec![
                AllowedLocation::Dir("/srv/artifacts".into()),
                AllowedLocation::S3 {
                    bucket: "tmp".into(),
                    prefix: "digsig/".into()
                }
            ]
        );
        assert!(AllowedUris::parse("").unwrap().is_empty());
        for bad in ["file:///", "file://rel", "http://x", "s3://", "/srv"] {
            assert!(AllowedUris::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn s3_keys_must_be_in_an_allowed_bucket_and_prefix() {
        let list = AllowedUris::parse("s3://tmp/digsig").unwrap();
        let ok = ArtifactUri::parse("s3://tmp/digsig/d/x").unwrap();
        assert_eq!(list.authorize(&ok).await.unwrap(), ok);
        for bad in [
            "s3://tmp/digsigx/y",
            "s3://tmp/other",
            "s3://other/digsig/x",
        ] {
            let uri = ArtifactUri::parse(bad).unwrap();
            let err = list.authorize(&uri).await.unwrap_err();
            assert!(matches!(err, UriError::NotAllowed { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(ALLOWED_URIS_VAR));
        }
    }

    #[tokio::test]
    async fn files_must_stay_inside_after_resolving_links() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("a.mender"), b"x").unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), allowed.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), allowed.join("dirlink")).unwrap();
        std::fs::create_dir(allowed.join("sub")).unwrap();
        let list = AllowedUris::parse(&format!("file://{}", allowed.display())).unwrap();
        let file = |p: &Path| ArtifactUri::File(p.to_path_buf());

        let good = list
            .authorize(&file(&allowed.join("a.mender")))
            .await
            .unwrap();
        assert_eq!(
            good,
            file(&allowed.canonicalize().unwrap().join("a.mender"))
        );
        for escaped in [allowed.join("link"), allowed.join("dirlink/secret")] {
            let err = list.authorize(&file(&escaped)).await.unwrap_err();
            assert!(matches!(err, UriError::NotAllowed { .. }), "{err}");
        }
        let err = list
            .authorize(&file(&outside.path().join("secret")))
            .await
            .unwrap_err();
        assert!(matches!(err, UriError::NotAllowed { .. }), "{err}");
        let err = list
            .authorize(&file(&allowed.join("nope")))
            .await
            .unwrap_err();
        assert!(matches!(err, UriError::Missing { .. }), "{err}");
        let err = list
            .authorize(&file(&allowed.join("sub")))
            .await
            .unwrap_err();
        assert!(matches!(err, UriError::NotAFile { .. }), "{err}");
        let err = AllowedUris::default()
            .authorize(&file(&allowed.join("a.mender")))
            .await
            .unwrap_err();
        assert!(matches!(err, UriError::NoneAllowed), "{err}");
    }
}
