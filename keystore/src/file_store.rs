//! `file://` key stores: a directory tree on the server.

use std::io::{ErrorKind, Read};
use std::path::PathBuf;

use crate::{KeyFileName, KeyMaterial, KeyStoreError, Selector, SignType, MAX_KEY_OBJECT_BYTES};

#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub(crate) fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    pub(crate) async fn fetch(
        &self,
        selector: &Selector,
        signtype: SignType,
        file: &KeyFileName,
    ) -> Result<Option<KeyMaterial>, KeyStoreError> {
        let store = self.clone();
        let (selector, file) = (selector.clone(), file.clone());
        tokio::task::spawn_blocking(move || store.fetch_blocking(&selector, signtype, &file))
            .await
            .map_err(|e| KeyStoreError::Read {
                location: self.location(),
                detail: e.to_string(),
            })?
    }

    fn fetch_blocking(
        &self,
        selector: &Selector,
        signtype: SignType,
        file: &KeyFileName,
    ) -> Result<Option<KeyMaterial>, KeyStoreError> {
        if !self.root.is_dir() {
            return Err(KeyStoreError::StoreMissing {
                location: self.location(),
            });
        }
        // Names are validated single components, so these joins stay under root.
        // Symlinks inside the store are followed on purpose: Kubernetes secret
        // volumes are made of them.
        let dir = self.root.join(selector.as_str()).join(signtype.dir_name());
        if !dir.is_dir() {
            return Err(KeyStoreError::NoKeys {
                selector: selector.to_string(),
                signtype,
                location: self.location(),
            });
        }
        let path = dir.join(file.as_str());
        let display = format!("{}/{selector}/{signtype}/{file}", self.location());
        let read_err = |e: std::io::Error| KeyStoreError::Read {
            location: display.clone(),
            detail: e.to_string(),
        };
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        let meta = f.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(KeyStoreError::Read {
                location: display,
                detail: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_KEY_OBJECT_BYTES {
            return Err(KeyStoreError::TooLarge {
                location: display,
                limit: MAX_KEY_OBJECT_BYTES,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.take(MAX_KEY_OBJECT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        Ok(Some(KeyMaterial::new(file.as_str(), bytes)))
    }

    pub(crate) async fn check_reachable(&self) -> Result<(), KeyStoreError> {
        let root = self.root.clone();
        let readable = tokio::task::spawn_blocking(move || std::fs::read_dir(root).is_ok())
            .await
            .unwrap_or(false);
        if readable {
            Ok(())
        } else {
            Err(KeyStoreError::StoreMissing {
                location: self.location(),
            })
        }
    }
}
