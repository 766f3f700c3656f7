//! Key bytes in memory and on disk, both wiped when dropped.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

/// The bytes of one key file, zeroed on drop.
///
/// Deliberately not `Debug`/`Display` with contents: only the file name can be
/// printed.
pub struct KeyMaterial {
    name: String,
    bytes: Zeroizing<Vec<u8>>,
}

impl KeyMaterial {
    /// Wraps bytes read from the store; `name` is the key file name, for messages.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The key file name (not its contents).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes the key to a private temporary file inside `parent` for a vendor
    /// tool that wants a path. The file lives in its own 0700 directory, is
    /// 0600, and is overwritten and removed when the returned value drops.
    pub fn to_temp_file(&self, parent: &Path) -> io::Result<TempKeyFile> {
        let dir = tempfile::Builder::new()
            .prefix(".key-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        let path = dir.path().join(&self.name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&self.bytes)?;
        file.sync_all()?;
        Ok(TempKeyFile {
            len: self.bytes.len(),
            path,
            dir,
        })
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("name", &self.name)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// A key written to disk for a vendor tool. Dropping it overwrites the file
/// with zeros and removes its private directory.
pub struct TempKeyFile {
    path: PathBuf,
    len: usize,
    dir: tempfile::TempDir,
}

impl TempKeyFile {
    /// Where the key file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempKeyFile {
    fn drop(&mut self) {
        // Best effort: overwrite before unlinking so the bytes do not linger in
        // free blocks of a tmpfs or page cache. The TempDir removes the rest.
        if let Ok(mut f) = OpenOptions::new().write(true).open(&self.path) {
            let mut zeros = vec![0u8; self.len];
            let _ = f.write_all(&zeros);
            let _ = f.sync_all();
            zeros.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn temp_key_file_is_private_and_removed_on_drop() {
        let work = tempfile::tempdir().unwrap();
        let key = KeyMaterial::new("rsa_priv.pem", b"-----BEGIN PRIVATE KEY-----".to_vec());
        let tmp = key.to_temp_file(work.path()).unwrap();
        let (path, dir) = (tmp.path().to_path_buf(), tmp.dir().to_path_buf());
        assert_eq!(fs::read(&path).unwrap(), key.bytes());
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert!(dir.starts_with(work.path()));
        drop(tmp);
        assert!(!path.exists());
        assert!(!dir.exists());
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn temp_key_file_is_removed_when_the_caller_fails_after_writing_it() {
        fn use_key_then_fail(key: &KeyMaterial, work: &Path) -> Result<(), String> {
            let tmp = key.to_temp_file(work).map_err(|e| e.to_string())?;
            let _ = tmp.path();
            Err("vendor tool failed".into())
        }
        let work = tempfile::tempdir().unwrap();
        let key = KeyMaterial::new("k.pem", vec![1, 2, 3]);
        assert!(use_key_then_fail(&key, work.path()).is_err());
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = KeyMaterial::new("k.pem", b"SECRET-KEY-BYTES".to_vec());
        let shown = format!("{key:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("k.pem"));
    }
}
