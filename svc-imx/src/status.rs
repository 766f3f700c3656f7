//! How this service's own errors become [`ServiceError`]s, and so HTTP
//! statuses: who has to act decides, the client (4xx) or the operator (5xx).

use servicekit::ServiceError;

use crate::csf::CsfError;
use crate::cst::{CstError, CstLookupError};

impl From<CsfError> for ServiceError {
    fn from(err: CsfError) -> Self {
        let msg = err.to_string();
        match err {
            CsfError::TooLarge => ServiceError::TooLarge(msg),
            CsfError::Pkcs11 { .. } => ServiceError::NotImplemented(msg),
            CsfError::Ahab => ServiceError::Unprocessable(msg),
            CsfError::Empty
            | CsfError::NotText
            | CsfError::Unterminated { .. }
            | CsfError::NotAllowed { .. } => ServiceError::BadRequest(msg),
        }
    }
}

impl From<CstLookupError> for ServiceError {
    fn from(err: CstLookupError) -> Self {
        let msg = err.to_string();
        match err {
            CstLookupError::Unknown { .. } => ServiceError::BadRequest(msg),
            CstLookupError::NoneInstalled => ServiceError::Misconfigured(msg),
        }
    }
}

impl From<CstError> for ServiceError {
    fn from(err: CstError) -> Self {
        let msg = err.to_string();
        match err {
            CstError::Rejected(_) => ServiceError::Unprocessable(msg),
            CstError::Failed { .. } => ServiceError::Internal(msg),
        }
    }
}
