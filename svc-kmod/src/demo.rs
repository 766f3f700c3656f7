//! Throwaway demo keys, so a first run signs something with no setup.

use keystore::SignType;
use servicekit::demo::{self_signed_rsa, DemoKeyStore};

/// Adds a fresh RSA-2048 key and self-signed certificate as
/// `demo/kmodsign/kernel-signkey.{priv,x509}`.
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    let (key, cert) = self_signed_rsa("digsig THROWAWAY demo module signing key")?;
    store.add(SignType::Kmod, "kernel-signkey.priv", &key)?;
    store.add(SignType::Kmod, "kernel-signkey.x509", &cert)?;
    Ok(())
}
