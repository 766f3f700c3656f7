//! Rewording the HTTP layer's own refusals so they tell a user what to fix:
//! a bad enum value lists the valid ones (poem-openapi only says "failed to
//! parse \"HashAlg\""), a wrong method gets `405` with an `Allow` header, and
//! every refusal is plain text ending in a newline, as ours are.

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::header::ALLOW;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::error::ParseMultipartError;
use poem_openapi::registry::Registry;
use poem_openapi::OpenApi;

/// What the API's own description says about valid input.
#[derive(Debug, Default)]
struct ApiFacts {
    /// Enum type name (as poem-openapi names it in errors) → its values.
    enums: HashMap<String, Vec<String>>,
    /// Path → the methods it serves.
    methods: HashMap<String, Vec<Method>>,
}

impl ApiFacts {
    fn of<T: OpenApi>() -> Self {
        let mut registry = Registry::new();
        T::register(&mut registry);
        let enums = registry
            .schemas
            .iter()
            .filter(|(_, schema)| !schema.enum_items.is_empty())
            .map(|(name, schema)| {
                let values = schema
                    .enum_items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect();
                (name.clone(), values)
            })
            .collect();
        let mut methods: HashMap<String, Vec<Method>> = HashMap::new();
        for path in T::meta().into_iter().flat_map(|api| api.paths) {
            methods
                .entry(path.path)
                .or_default()
                .extend(path.operations.into_iter().map(|op| op.method));
        }
        Self { enums, methods }
    }

    /// A multipart parse failure, reworded.
    fn reword(&self, reason: &str) -> String {
        // "failed to parse field `hashalg`: failed to parse \"HashAlg\": Expect a valid enumeration value."
        for (name, values) in &self.enums {
            if reason.contains(&format!("failed to parse \"{name}\"")) {
                let field = reason
                    .split('`')
                    .nth(1)
                    .map(|f| format!("field `{f}`"))
                    .unwrap_or_else(|| "a field".into());
                return format!("{field} must be one of: {}", values.join(", "));
            }
        }
        // Our own field types' messages are complete already; drop the
        // type name poem-openapi puts in front.
        let mut text = reason.to_string();
        if let Some(start) = text.find("failed to parse \"") {
            if let Some(end) = text[start + 17..].find("\": ") {
                text.replace_range(start..start + 17 + end + 3, "");
            }
        }
        text.replace("failed to parse field", "field")
    }
}

/// `inner` with its refusals reworded from `T`'s API description.
pub fn friendly_errors<T: OpenApi, E: Endpoint>(inner: E) -> FriendlyErrors<E> {
    FriendlyErrors {
        inner,
        facts: Arc::new(ApiFacts::of::<T>()),
    }
}

/// See [`friendly_errors`].
pub struct FriendlyErrors<E> {
    inner: E,
    facts: Arc<ApiFacts>,
}

fn text(status: StatusCode, message: String) -> Response {
    format!("{message}\n")
        .with_content_type("text/plain; charset=utf-8")
        .with_status(status)
        .into_response()
}

impl<E: Endpoint> Endpoint for FriendlyErrors<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                if let Some(parse) = err.downcast_ref::<ParseMultipartError>() {
                    // Spooling the upload to TMPDIR failed for lack of room:
                    // the server's problem, not a malformed form.
                    if parse
                        .reason
                        .contains(&format!("(os error {})", libc::ENOSPC))
                    {
                        return Ok(
                            crate::ServiceError::disk_full("receiving the upload").into_response()
                        );
                    }
                    let message = self.facts.reword(&parse.reason);
                    tracing::info!(status = 400, error = ?message, "request refused");
                    return Ok(text(StatusCode::BAD_REQUEST, message));
                }
                err.into_response()
            }
        };
        if response.status() != StatusCode::METHOD_NOT_ALLOWED {
            return Ok(response);
        }
        let Some(allowed) = self.facts.methods.get(&path) else {
            return Ok(response);
        };
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut reply = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; use {list}"),
        );
        if let Ok(value) = HeaderValue::from_str(&list) {
            reply.headers_mut().insert(ALLOW, value);
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_errors_list_the_values_and_type_names_go() {
        let facts = ApiFacts {
            enums: HashMap::from([(
                "HashAlg".to_string(),
                vec!["sha256".into(), "sha384".into(), "sha512".into()],
            )]),
            methods: HashMap::new(),
        };
        assert_eq!(
            facts.reword("failed to parse field `hashalg`: failed to parse \"HashAlg\": Expect a valid enumeration value."),
            "field `hashalg` must be one of: sha256, sha384, sha512"
        );
        assert_eq!(
            facts.reword("failed to parse field `machine`: failed to parse \"machine-or-distro\": invalid machine/distro name '..': '.' and '..' are not names"),
            "field `machine`: invalid machine/distro name '..': '.' and '..' are not names"
        );
    }
}
