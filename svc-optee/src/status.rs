//! How this service's own errors become [`ServiceError`]s, and so HTTP
//! statuses: who has to act decides, the client (4xx) or the operator (5xx).

use servicekit::ServiceError;

use crate::sign_tree::TreeError;
use crate::ta_image::TaSignError;

impl From<TreeError> for ServiceError {
    fn from(err: TreeError) -> Self {
        let msg = err.to_string();
        match err {
            TreeError::NoImages
            | TreeError::BadUuid { .. }
            | TreeError::BadVersion { .. }
            | TreeError::NotAFile { .. }
            | TreeError::OutputBlocked { .. } => ServiceError::Unprocessable(msg),
            TreeError::Sign {
                source: TaSignError::TooLarge(_),
                ..
            } => ServiceError::TooLarge(msg),
            TreeError::Sign { .. } | TreeError::Io(_) => ServiceError::Internal(msg),
        }
    }
}
