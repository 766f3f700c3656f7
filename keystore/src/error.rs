//! What can go wrong finding a key. Messages name the machine, the sign type,
//! the file and the store location, never key contents.

use crate::SignType;

/// A key store failure. Callers branch on the variant to pick an HTTP status:
/// `InvalidName` and `NoKeys` are the requester's to fix; the rest are the
/// operator's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// A name from the request is not a safe path component.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidName {
        /// Which field ("machine/distro name", "key file name").
        what: &'static str,
        /// The rejected value, shortened and escaped.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Access control is on and the request has no authenticated caller.
    #[error("signing with {signtype} keys needs credentials: send a token (Authorization: Bearer <token>, or HTTP Basic with the token as the password)")]
    NoGrant {
        /// The sign type asked for.
        signtype: SignType,
    },
    /// The caller's rules do not allow this endpoint and machine/distro.
    #[error("client '{client}' may not sign {endpoint}:{selector} (no allow rule of its matches)")]
    Forbidden {
        /// The client's name.
        client: String,
        /// The endpoint.
        endpoint: &'static str,
        /// The machine or distro.
        selector: String,
    },
    /// The machine/distro has no directory for this sign type.
    #[error(
        "no {signtype} keys for '{selector}': {location}/{selector}/{signtype}/ does not exist"
    )]
    NoKeys {
        /// The machine or distro.
        selector: String,
        /// The sign type asked for.
        signtype: SignType,
        /// The key store location.
        location: String,
    },
    /// The sign type directory exists but a required file is not in it.
    #[error("key store is missing {location}/{selector}/{signtype}/{file} ('{selector}' has {signtype} keys, but not this file)")]
    MissingFile {
        /// The machine or distro.
        selector: String,
        /// The sign type asked for.
        signtype: SignType,
        /// The missing file name.
        file: String,
        /// The key store location.
        location: String,
    },
    /// `DIGSIGSERVER_KEYFILE_URI` cannot name a key store.
    #[error("DIGSIGSERVER_KEYFILE_URI={uri:?} is not usable: {reason}")]
    BadUri {
        /// The configured URI.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The store could not be reached in time (network down, endpoint refused).
    #[error("key store {location} is unreachable: {detail}")]
    Unreachable {
        /// The key store location.
        location: String,
        /// The transport's explanation.
        detail: String,
    },
    /// The store refused our credentials.
    #[error("key store {location} refused access ({detail}): check the server's AWS credentials and the bucket policy")]
    AccessDenied {
        /// The key store location.
        location: String,
        /// The store's error code and message.
        detail: String,
    },
    /// The configured bucket or directory does not exist.
    #[error("key store {location} does not exist: check DIGSIGSERVER_KEYFILE_URI")]
    StoreMissing {
        /// The key store location.
        location: String,
    },
    /// A key object is larger than [`crate::MAX_KEY_OBJECT_BYTES`].
    #[error("key file {location} is larger than {limit} bytes; is DIGSIGSERVER_KEYFILE_URI pointing at the right place?")]
    TooLarge {
        /// Where the object is.
        location: String,
        /// The limit.
        limit: u64,
    },
    /// Any other failure reading the store.
    #[error("reading key store {location} failed: {detail}")]
    Read {
        /// Where the failure happened.
        location: String,
        /// What failed.
        detail: String,
    },
}

impl KeyStoreError {
    /// The message for a client: what is missing or wrong, by machine, sign
    /// type and file name, but never where the store is (a bucket, a
    /// prefix, a server path). The full message ([`Display`](std::fmt::Display))
    /// is for the operator's log.
    pub fn client_message(&self) -> String {
        match self {
            KeyStoreError::InvalidName { .. }
            | KeyStoreError::NoGrant { .. }
            | KeyStoreError::Forbidden { .. } => self.to_string(),
            KeyStoreError::NoKeys { selector, signtype, .. } => format!(
                "no {signtype} keys for '{selector}' on this server: check the machine/distro name, or ask the operator to add <keyfile-uri>/{selector}/{signtype}/"
            ),
            KeyStoreError::MissingFile {
                selector,
                signtype,
                file,
                ..
            } => format!(
                "the key store is missing {selector}/{signtype}/{file} ('{selector}' has {signtype} keys, but not this file)"
            ),
            KeyStoreError::BadUri { .. } => {
                "DIGSIGSERVER_KEYFILE_URI is not usable (the server's log says why)".into()
            }
            KeyStoreError::Unreachable { .. } => {
                "the key store is unreachable (the server's log has the details)".into()
            }
            KeyStoreError::AccessDenied { .. } => {
                "the key store refused the server's credentials: check the server's AWS credentials and the bucket policy".into()
            }
            KeyStoreError::StoreMissing { .. } => {
                "the key store does not exist: check DIGSIGSERVER_KEYFILE_URI".into()
            }
            KeyStoreError::TooLarge { limit, .. } => format!(
                "a key file is larger than {limit} bytes; is DIGSIGSERVER_KEYFILE_URI pointing at the right place?"
            ),
            KeyStoreError::Read { .. } => {
                "reading the key store failed (the server's log has the details)".into()
            }
        }
    }

    /// Whether the requester (not the operator) must fix this.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            KeyStoreError::InvalidName { .. }
                | KeyStoreError::NoKeys { .. }
                | KeyStoreError::NoGrant { .. }
                | KeyStoreError::Forbidden { .. }
        )
    }
}
