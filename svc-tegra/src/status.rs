//! How this service's own errors become [`ServiceError`]s, and so HTTP
//! statuses: who has to act decides, the client (4xx) or the operator (5xx).

use servicekit::ServiceError;

use crate::bsp::BspLookupError;
use crate::signing::SigningError;
use crate::tool_setup::ToolSetupError;
use crate::upload::UploadError;

impl From<BspLookupError> for ServiceError {
    fn from(err: BspLookupError) -> Self {
        let msg = err.to_string();
        match err {
            BspLookupError::NotInstalled { installed, .. } if installed.is_empty() => {
                ServiceError::Misconfigured(format!(
                    "{msg}: install an L4T BSP as <DIGSIGSERVER_L4T_TOOLS_BASE>/L4T-<version>-<soc>/Linux_for_Tegra"
                ))
            }
            _ => ServiceError::BadRequest(msg),
        }
    }
}

impl From<UploadError> for ServiceError {
    fn from(err: UploadError) -> Self {
        match err {
            UploadError::Io(e) => ServiceError::internal_from("preparing the flash package", e),
            err => ServiceError::BadRequest(err.to_string()),
        }
    }
}

impl From<ToolSetupError> for ServiceError {
    fn from(err: ToolSetupError) -> Self {
        let msg = err.to_string();
        match err {
            ToolSetupError::UploadHasTools => ServiceError::BadRequest(msg),
            ToolSetupError::MissingFromBsp(_) => ServiceError::Misconfigured(msg),
            ToolSetupError::Io(e) => ServiceError::internal_from("setting up the BSP tools", e),
        }
    }
}

impl From<SigningError> for ServiceError {
    fn from(err: SigningError) -> Self {
        let msg = err.to_string();
        match err {
            SigningError::Args(_) | SigningError::NoSignImage(..) => ServiceError::BadRequest(msg),
            SigningError::Refused { .. } => ServiceError::Unprocessable(msg),
            SigningError::Failed { .. } | SigningError::MissingOutput { .. } => {
                ServiceError::Internal(msg)
            }
            SigningError::Io(e) => ServiceError::internal_from("collecting the signed files", e),
        }
    }
}
