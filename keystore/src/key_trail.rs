//! Which keys a request used, for the audit record: each fetched key file
//! by machine/distro, sign type and name, with the SHA-256 fingerprint of its
//! public key (SubjectPublicKeyInfo, DER) or certificate (DER), never of
//! secret bytes. Recorded where keys are fetched, so every domain's record
//! is the same, while a request runs inside [`with_key_trail`].

use std::future::Future;
use std::sync::{Arc, Mutex};

use openssl::pkey::PKey;
use openssl::x509::X509;

use crate::SignType;

/// One key file a request used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// The machine or distro.
    pub selector: String,
    /// Its sign type.
    pub signtype: SignType,
    /// The file's name.
    pub file: String,
    /// Hex SHA-256 of the public key or certificate; `None` for files that
    /// hold neither (an SBK, a keys tarball).
    pub fingerprint: Option<String>,
}

/// The keys one request used.
#[derive(Debug, Default)]
pub struct KeyTrail(Mutex<Vec<KeyUse>>);

impl KeyTrail {
    /// What was used so far.
    pub fn uses(&self) -> Vec<KeyUse> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn add(&self, key: KeyUse) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(key);
    }
}

tokio::task_local! {
    static TRAIL: Arc<KeyTrail>;
}

/// Runs `fut` recording the keys it fetches into `trail`.
pub async fn with_key_trail<F: Future>(trail: Arc<KeyTrail>, fut: F) -> F::Output {
    TRAIL.scope(trail, fut).await
}

/// The trail of the request being handled, if one is recorded.
pub(crate) fn current() -> Option<Arc<KeyTrail>> {
    TRAIL.try_with(Arc::clone).ok()
}

/// The fingerprint of a certificate, or of a private key's public half.
/// Encrypted keys are not opened (no pass phrase prompt, ever).
pub fn fingerprint(bytes: &[u8]) -> Option<String> {
    let hex = |der: Vec<u8>| {
        openssl::sha::sha256(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    if let Ok(cert) = X509::from_pem(bytes).or_else(|_| X509::from_der(bytes)) {
        return cert.to_der().ok().map(hex);
    }
    let key = PKey::private_key_from_pem_passphrase(bytes, b"")
        .or_else(|_| PKey::private_key_from_der(bytes))
        .ok()?;
    key.public_key_to_der().ok().map(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_its_certificate_have_their_own_fingerprints() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa).unwrap();
        let pem = key.private_key_to_pem_pkcs8().unwrap();
        let spki = key.public_key_to_der().unwrap();
        let want: String = openssl::sha::sha256(&spki)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fingerprint(&pem).as_deref(), Some(want.as_str()));
        assert_eq!(
            fingerprint(&key.private_key_to_der().unwrap()).as_deref(),
            Some(want.as_str())
        );
        assert_eq!(fingerprint(b"0x11223344 0x55667788\n"), None);
        // An encrypted key is not opened (and nothing prompts).
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pw")
            .unwrap();
        assert_eq!(fingerprint(&encrypted), None);
    }
}
