//! Throwaway demo keys, so a first run can sign with no setup: an RSA-2048
//! PKC key as `demo/tegrasign/rsa_priv.pem` (no SBK: PKC-only signing).

use keystore::SignType;
use servicekit::demo::{self_signed_rsa, DemoKeyStore};

use crate::api::PKC_KEY;

/// Adds a fresh PKC key for machine `demo`.
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    let (key, _cert) = self_signed_rsa("digsig THROWAWAY demo Jetson PKC key")?;
    store.add(SignType::Tegra, PKC_KEY, &key)?;
    Ok(())
}
