//! Optional TLS on the listening port (`DIGSIGSERVER_TLS_CERT`,
//! `DIGSIGSERVER_TLS_KEY`), so a small farm needs no proxy in front.
//!
//! OpenSSL serves it (it is linked for signing already; no second TLS
//! stack). Both files are read and checked at start (a chain that does not
//! parse, a key that is encrypted or does not match the certificate stops
//! the server, naming the setting), never prompting for a pass phrase.

use openssl::pkey::PKey;
use openssl::x509::X509;
use poem::listener::OpensslTlsConfig;
use zeroize::Zeroizing;

use crate::config::{ConfigError, Settings};

/// Names the PEM certificate chain (leaf first).
pub const TLS_CERT_VAR: &str = "DIGSIGSERVER_TLS_CERT";
/// Names the PEM private key, unencrypted.
pub const TLS_KEY_VAR: &str = "DIGSIGSERVER_TLS_KEY";

/// A checked certificate chain and key.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: Vec<u8>,
    key_pem: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls { key: <redacted> }")
    }
}

fn bad(name: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl ServerTls {
    /// The TLS settings, if both are set; one without the other is an error.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, ConfigError> {
        let set = |name| settings.get(name).filter(|v: &String| !v.trim().is_empty());
        let (cert_path, key_path) = match (set(TLS_CERT_VAR), set(TLS_KEY_VAR)) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            (Some(c), None) => {
                return Err(bad(
                    TLS_KEY_VAR,
                    "",
                    format!("{TLS_CERT_VAR}={c:?} needs its key"),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    TLS_CERT_VAR,
                    "",
                    format!("{TLS_KEY_VAR} needs its certificate"),
                ))
            }
        };
        let cert_pem = std::fs::read(cert_path.trim())
            .map_err(|e| bad(TLS_CERT_VAR, &cert_path, format!("cannot read it: {e}")))?;
        let key_pem = Zeroizing::new(
            std::fs::read(key_path.trim())
                .map_err(|e| bad(TLS_KEY_VAR, &key_path, format!("cannot read it: {e}")))?,
        );
        let chain = X509::stack_from_pem(&cert_pem).unwrap_or_default();
        let Some(leaf) = chain.first() else {
            return Err(bad(
                TLS_CERT_VAR,
                &cert_path,
                "holds no PEM certificate".into(),
            ));
        };
        let key = PKey::private_key_from_pem_passphrase(&key_pem, b"").map_err(|_| {
            bad(
                TLS_KEY_VAR,
                &key_path,
                "is not an unencrypted PEM private key".into(),
            )
        })?;
        let matches = leaf
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(bad(
                TLS_KEY_VAR,
                &key_path,
                format!("does not match the certificate in {TLS_CERT_VAR}"),
            ));
        }
        Ok(Some(Self { cert_pem, key_pem }))
    }

    /// The configuration poem's OpenSSL acceptor takes.
    pub fn config(&self) -> OpensslTlsConfig {
        OpensslTlsConfig::new()
            .cert_from_data(self.cert_pem.clone())
            .key_from_data(self.key_pem.to_vec())
    }
}
