//! The optional `backend` field: which CST back end signs.
//!
//! The document's schema lists only `ssl`, the back end this service has;
//! upstream's `pkcs11` (keys in a YubiHSM) is understood, and answered with
//! 501 saying it is not supported yet, rather than a 400 calling it unknown.

use poem_openapi::registry::MetaSchema;
use poem_openapi::types::{ParseError, ParseFromMultipartField, ParseResult, ToJSON};
use servicekit::form_fields::read_text_field;

/// A CST back end named by the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Keys and certificates from the machine's keys tarball (the default).
    Ssl,
    /// Keys in a PKCS#11 token: not supported yet (501).
    Pkcs11,
}

servicekit::string_field_type!(Backend, "imx-backend", || MetaSchema {
    enum_items: vec!["ssl".into()],
    default: Some("ssl".into()),
    ..MetaSchema::new("string")
});

impl ToJSON for Backend {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Backend::Ssl => "ssl".into(),
            Backend::Pkcs11 => "pkcs11".into(),
        })
    }
}

impl ParseFromMultipartField for Backend {
    async fn parse_from_multipart(field: Option<poem::web::Field>) -> ParseResult<Self> {
        let Some(field) = field else {
            return Ok(Backend::Ssl);
        };
        let text = read_text_field(field).await.map_err(ParseError::custom)?;
        match text.trim() {
            "ssl" | "" => Ok(Backend::Ssl),
            "pkcs11" => Ok(Backend::Pkcs11),
            other => Err(ParseError::custom(format!(
                "'{}' is not a back end: use ssl (upstream's pkcs11 is not supported yet)",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }
}
