//! Throwaway demo keys, so a first run signs something with no setup.

use keystore::SignType;
use servicekit::demo::{self_signed_rsa, DemoKeyStore};

/// Adds a fresh RSA-2048 key as `demo/opteesign/optee-signing-key.pem`.
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    let (key, _cert) = self_signed_rsa("digsig THROWAWAY demo OP-TEE TA signing key")?;
    store.add(SignType::Optee, "optee-signing-key.pem", &key)?;
    Ok(())
}
