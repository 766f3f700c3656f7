//! How this service's own errors become [`ServiceError`]s, and so HTTP
//! statuses: who has to act decides, the client (4xx) or the operator (5xx).

use servicekit::ServiceError;

use crate::artifact_uri::UriError;
use crate::in_place::TransferError;
use crate::mender_tool::MenderToolError;

impl From<UriError> for ServiceError {
    fn from(err: UriError) -> Self {
        let msg = err.to_string();
        match err {
            UriError::Malformed { .. } | UriError::NotAFile { .. } => ServiceError::BadRequest(msg),
            UriError::NoneAllowed | UriError::NotAllowed { .. } => ServiceError::Forbidden(msg),
            UriError::Missing { .. } => ServiceError::NotFound(msg),
            UriError::Io { .. } => ServiceError::Internal(msg),
        }
    }
}

impl From<TransferError> for ServiceError {
    fn from(err: TransferError) -> Self {
        let msg = err.to_string();
        match err {
            TransferError::Missing(_) => ServiceError::NotFound(msg),
            TransferError::Denied { .. } => ServiceError::Misconfigured(msg),
            TransferError::Unreachable { .. } => ServiceError::Unavailable(msg),
            TransferError::DiskFull { .. } => ServiceError::InsufficientStorage(msg),
            TransferError::Failed { .. } => ServiceError::Internal(msg),
        }
    }
}

impl From<MenderToolError> for ServiceError {
    fn from(err: MenderToolError) -> Self {
        let msg = err.to_string();
        match err {
            MenderToolError::AlreadySigned | MenderToolError::Rejected(_) => {
                ServiceError::Unprocessable(msg)
            }
            MenderToolError::NotInstalled | MenderToolError::Failed(_) => {
                ServiceError::Misconfigured(msg)
            }
            MenderToolError::DiskFull(_) => ServiceError::InsufficientStorage(msg),
        }
    }
}
