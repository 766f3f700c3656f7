//! Text form fields validated where they arrive: a value of these types
//! passed the rules, and the OpenAPI document states the rules (pattern,
//! length, an example Swagger UI's "Try it out" fills in).

use keystore::Selector;
use poem::web::Field;
use poem_openapi::registry::MetaSchema;
use poem_openapi::types::{ParseError, ParseFromMultipartField, ParseFromParameter, ParseResult};
use tokio::io::AsyncReadExt;

/// Most bytes a text field may hold. Names are short; a field is read only
/// this far, so a client sending a 100 MB `machine` costs us nothing.
pub const MAX_TEXT_FIELD_BYTES: usize = 4096;

/// The machine/distro name rule as a JSON Schema pattern (`.` and `..` are
/// refused too, which the pattern does not say).
pub const SELECTOR_PATTERN: &str = "^[A-Za-z0-9._+-]{1,128}$";

/// Reads a text field, refusing it once it passes [`MAX_TEXT_FIELD_BYTES`].
pub async fn read_text_field(field: Field) -> Result<String, String> {
    let mut bytes = Vec::new();
    field
        .into_async_read()
        .take(MAX_TEXT_FIELD_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("reading it failed: {e}"))?;
    if bytes.len() > MAX_TEXT_FIELD_BYTES {
        return Err(format!("it is longer than {MAX_TEXT_FIELD_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())
}

/// Implements poem-openapi's `Type` for a form field that is one string in
/// the document, described by `schema` (a `fn() -> MetaSchema`). Exported
/// for the service crates' own field types (the caller depends on
/// poem-openapi).
#[macro_export]
macro_rules! string_field_type {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl ::poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> ::std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> ::poem_openapi::registry::MetaSchemaRef {
                let schema: fn() -> ::poem_openapi::registry::MetaSchema = $schema;
                ::poem_openapi::registry::MetaSchemaRef::Inline(Box::new(schema()))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }
    };
}

/// A `machine` or `distro` field: the name keys are looked up under.
#[derive(Debug, Clone)]
pub struct SelectorField(pub Selector);

string_field_type!(SelectorField, "machine-or-distro", || MetaSchema {
    pattern: Some(SELECTOR_PATTERN.to_string()),
    min_length: Some(1),
    max_length: Some(128),
    example: Some("demo".into()),
    ..MetaSchema::new("string")
});

impl ParseFromMultipartField for SelectorField {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        let field = field.ok_or_else(ParseError::expected_input)?;
        let text = read_text_field(field).await.map_err(ParseError::custom)?;
        Self::parse_from_parameter(&text)
    }
}

/// The text of a form field read by [`crate::streamed_form`].
impl ParseFromParameter for SelectorField {
    fn parse_from_parameter(text: &str) -> ParseResult<Self> {
        Selector::parse(text)
            .map(SelectorField)
            .map_err(ParseError::custom)
    }
}

impl std::fmt::Display for SelectorField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A free text field (e.g. `artifact-uri`), read at most
/// [`MAX_TEXT_FIELD_BYTES`] far.
#[derive(Debug, Clone)]
pub struct TextField(pub String);

string_field_type!(TextField, "text", || MetaSchema {
    max_length: Some(MAX_TEXT_FIELD_BYTES),
    ..MetaSchema::new("string")
});

impl ParseFromMultipartField for TextField {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        let field = field.ok_or_else(ParseError::expected_input)?;
        read_text_field(field)
            .await
            .map(TextField)
            .map_err(ParseError::custom)
    }
}
