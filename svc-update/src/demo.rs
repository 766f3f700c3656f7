//! Throwaway demo keys, so a first run signs something with no setup.

use keystore::SignType;
use servicekit::demo::{self_signed_rsa, DemoKeyStore};

/// Adds `demo/swupdate/rsa-private.key`, `cms-private.key` and a self-signed
/// `cms.cert`, and `demo/mender/private.key`, all for one fresh RSA-2048 key.
/// (Mender signing still needs `DIGSIGSERVER_MENDER_ALLOWED_URIS`.)
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    let (key, cert) = self_signed_rsa("digsig THROWAWAY demo swupdate signing key")?;
    store.add(SignType::Swupdate, "rsa-private.key", &key)?;
    store.add(SignType::Swupdate, "cms-private.key", &key)?;
    store.add(SignType::Swupdate, "cms.cert", &cert)?;
    store.add(SignType::Mender, "private.key", &key)?;
    Ok(())
}
