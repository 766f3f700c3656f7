//! A throwaway key store for `--demo`, so a first run signs something with no
//! setup. Each service crate adds the keys its domain needs for the machine or
//! distro called [`DEMO_SELECTOR`].

use std::fs;
use std::os::unix::fs::PermissionsExt;

use keystore::SignType;

/// The machine/distro name demo keys are stored under.
pub const DEMO_SELECTOR: &str = "demo";

/// A private (0700) temp directory laid out as a `file://` key store, deleted
/// when dropped.
pub struct DemoKeyStore {
    dir: tempfile::TempDir,
}

impl DemoKeyStore {
    /// An empty demo key store.
    pub fn create() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("digsig-demo-keys-").tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    /// Writes `<demo>/<signtype>/<file>` (mode 0600).
    pub fn add(&self, signtype: SignType, file: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self.dir.path().join(DEMO_SELECTOR).join(signtype.dir_name());
        fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        fs::write(&path, bytes)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
    }

    /// The `file://` URI of the demo key store.
    pub fn uri(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }
}
