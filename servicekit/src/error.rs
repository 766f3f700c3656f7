//! The one error type services return, and the one place it maps to HTTP.
//!
//! Client mistakes are 4xx with a message saying what to fix; configuration
//! problems are 5xx with a message telling the operator what is missing.
//! Messages never carry key material: they are built from names and paths.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};

use crate::archive::ArchiveError;
use keystore::KeyStoreError;

/// A failed request, classified by who has to act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request is malformed or names something invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request carries no credentials, or unknown ones (401, with
    /// `WWW-Authenticate`).
    #[error("{0}")]
    Unauthorized(String),
    /// The request names a location this server is not allowed to touch
    /// (403), e.g. an `artifact-uri` outside the operator's allowed list.
    #[error("{0}")]
    Forbidden(String),
    /// The request names a machine/distro or object that has nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// The upload is larger than the server allows (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request is well formed but its content cannot be signed (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The server is misconfigured; the operator must fix it (500).
    #[error("server misconfiguration: {0}")]
    Misconfigured(String),
    /// The request asks for something this server does not do yet (501),
    /// e.g. i.MX signing with `backend=pkcs11`.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// Something the service depends on is unreachable (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A routed service answered with something that is not HTTP, or broke
    /// off its reply (502; the gateway only).
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// A routed service did not finish within its domain's timeout (504; the
    /// gateway only).
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    /// The server's disk is full (507): the work dir or the upload spool
    /// (`TMPDIR`) has no room for this request; the operator must make room
    /// (the request may succeed later, or smaller).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// An unexpected failure (500). The message is logged and returned.
    #[error("internal error: {0}")]
    Internal(String),
    /// An unexpected failure with its cause (500): the client gets the
    /// context and the cause's own message, the log the whole cause chain.
    #[error("internal error: {context}: {source}")]
    InternalCause {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ServiceError {
    /// The HTTP status for this error; the only mapping in the code base.
    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServiceError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Misconfigured(_)
            | ServiceError::Internal(_)
            | ServiceError::InternalCause { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ServiceError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ServiceError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// An internal error caused by `err` (its cause chain is kept for the log).
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::internal_from("unexpected failure", err)
    }

    /// An internal error: `context` says what was being done, `err` why it failed.
    ///
    /// A full disk is told apart here, once for every domain: it is a 507
    /// saying so, not an "internal error".
    pub fn internal_from(
        context: impl Into<String>,
        err: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = err.into();
        let context = context.into();
        if source
            .downcast_ref::<std::io::Error>()
            .is_some_and(is_disk_full)
        {
            return ServiceError::disk_full(&context);
        }
        ServiceError::InternalCause { context, source }
    }

    /// The 507 for a full disk while doing `what`.
    pub fn disk_full(what: &str) -> Self {
        ServiceError::InsufficientStorage(format!(
            "{what}: the server's disk is full (its work dir or upload spool); try again later, or ask the operator to make room"
        ))
    }

    /// The message and every cause below it, for the log.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self).and_then(std::error::Error::source);
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }
}

/// Whether `err` means the file system is out of space (or quota).
pub fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl poem::error::ResponseError for ServiceError {
    fn status(&self) -> StatusCode {
        ServiceError::status(self)
    }

    fn as_response(&self) -> Response {
        let status = ServiceError::status(self);
        // Debug escapes control characters: a field value echoed in a
        // message cannot forge a log line.
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = ?self.chain(), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = ?self.chain(), "request refused");
        }
        let mut resp = format!("{self}\n")
            .with_content_type("text/plain; charset=utf-8")
            .with_status(status)
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                poem::http::header::WWW_AUTHENTICATE,
                poem::http::HeaderValue::from_static(CHALLENGE),
            );
        }
        resp
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

/// The `WWW-Authenticate` challenge every 401 carries.
pub const CHALLENGE: &str = "Bearer realm=\"digsig\", Basic realm=\"digsig\"";

/// The error statuses a signing endpoint documents in the OpenAPI document.
/// Each is plain text saying what to fix (4xx) or what the operator must
/// fix (5xx).
const DOCUMENTED: [(u16, &str); 11] = [
    (400, "Bad request: a field is missing or invalid, or the artifact is not what this endpoint takes. The message says what to fix."),
    (401, "Access control is on (DIGSIGSERVER_ACCESS_FILE) and the request has no token, or one the server does not know: send Authorization: Bearer <token>, or HTTP Basic with the token as the password."),
    (403, "The caller's rules do not allow this endpoint for this machine/distro (the message names the client and the endpoint:machine), the source address is not allowed (DIGSIGSERVER_ALLOWED_SOURCES), or the request names a location the server is not configured to allow (an artifact-uri outside DIGSIGSERVER_MENDER_ALLOWED_URIS)."),
    (404, "The machine or distro has no keys of this endpoint's sign type on this server."),
    (413, "The artifact is larger, or has more entries, than the server allows."),
    (415, "The body is not multipart/form-data: send the fields as `curl -F name=value -F artifact=@file` does."),
    (422, "The request is well formed but there is nothing in it this endpoint can sign."),
    (500, "Server misconfiguration (e.g. a key file missing or not matching its certificate) or an internal error; the message tells the operator what to fix. Never contains key material."),
    (501, "The request asks for an option this server does not support yet (e.g. i.MX `backend=pkcs11`); the message says which."),
    (503, "The key store (or another service this one depends on) is unreachable, the server is busy (then with Retry-After), or the audit record could not be written (the result is withheld)."),
    (507, "The server's disk is full (its work dir or upload spool); retry later."),
];

/// Lets handlers return `Result<Reply, ServiceError>` so the error statuses
/// appear in the OpenAPI document next to the success reply.
impl poem_openapi::ApiResponse for ServiceError {
    fn meta() -> poem_openapi::registry::MetaResponses {
        use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses};
        use poem_openapi::types::Type;
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "text/plain; charset=utf-8",
                        schema: String::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(_registry: &mut poem_openapi::registry::Registry) {}
}

impl From<KeyStoreError> for ServiceError {
    fn from(err: KeyStoreError) -> Self {
        // The full message names the store's location: the log gets it, the
        // client only what to fix.
        let msg = err.client_message();
        if !err.is_client_error() {
            tracing::error!(error = %err, "key store");
        } else {
            tracing::info!(error = %err, "key store");
        }
        match err {
            KeyStoreError::InvalidName { .. } => ServiceError::BadRequest(msg),
            KeyStoreError::NoGrant { .. } => ServiceError::Unauthorized(msg),
            KeyStoreError::Forbidden { .. } => ServiceError::Forbidden(msg),
            KeyStoreError::NoKeys { .. } => ServiceError::NotFound(msg),
            KeyStoreError::Unreachable { .. } => ServiceError::Unavailable(msg),
            _ => ServiceError::Misconfigured(msg),
        }
    }
}

impl From<crate::private_key::UnusableKey> for ServiceError {
    fn from(err: crate::private_key::UnusableKey) -> Self {
        ServiceError::Misconfigured(format!("key file {err}"))
    }
}

impl From<ArchiveError> for ServiceError {
    fn from(err: ArchiveError) -> Self {
        let msg = format!("artifact: {err}");
        match err {
            ArchiveError::TooLarge { .. }
            | ArchiveError::TooManyEntries { .. }
            | ArchiveError::TooCompressed { .. } => ServiceError::TooLarge(msg),
            // A name the file system cannot hold is the client's (a very
            // deep tree); any other write failure is the server's.
            ArchiveError::Io(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                ServiceError::BadRequest(
                    "artifact: a member's path is longer than the file system allows".into(),
                )
            }
            ArchiveError::Io(e) if is_disk_full(&e) => {
                ServiceError::disk_full("extracting the artifact")
            }
            ArchiveError::Io(_) => ServiceError::Internal(msg),
            _ => ServiceError::BadRequest(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::{Selector, SignType};

    #[test]
    fn key_store_errors_map_to_who_must_act() {
        let bad = ServiceError::from(Selector::parse("..").unwrap_err());
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let none = ServiceError::from(KeyStoreError::NoKeys {
            selector: "m".into(),
            signtype: SignType::Kmod,
            location: "file:///k".into(),
        });
        assert_eq!(none.status(), StatusCode::NOT_FOUND);
        let missing = ServiceError::from(KeyStoreError::MissingFile {
            selector: "m".into(),
            signtype: SignType::Kmod,
            file: "f".into(),
            location: "file:///k".into(),
        });
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(missing.to_string().starts_with("server misconfiguration"));
        let down = ServiceError::from(KeyStoreError::Unreachable {
            location: "s3://b".into(),
            detail: "refused".into(),
        });
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn archive_limits_are_413_and_bad_archives_400() {
        let big = ServiceError::from(ArchiveError::TooLarge { limit: 1 });
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bad = ServiceError::from(ArchiveError::NotGzip);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }
}
