//! The HTTP layer in front of every `/sign/*` endpoint: source addresses,
//! then who the caller is, then the handler run on the caller's behalf.

use std::sync::Arc;

use keystore::access::{with_grant, AllowRule, Grant};
use poem::http::header::AUTHORIZATION;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::credentials::presented_token;
use super::sources::client_address;
use crate::ServiceError;

use super::{AccessControl, ForwardIdentity, ALLOW_HEADER, CLIENT_HEADER, INTERNAL_TOKEN_HEADER};

/// An endpoint behind [`AccessControl`].
pub struct Guarded<E> {
    inner: E,
    access: AccessControl,
}

impl<E> Guarded<E> {
    pub(super) fn new(inner: E, access: AccessControl) -> Self {
        Self { inner, access }
    }
}

/// A 401, rendered (with its challenge) where every error is.
fn unauthorized(message: impl Into<String>) -> Response {
    ServiceError::Unauthorized(message.into()).into_response()
}

/// A 403, rendered where every error is.
fn forbidden(message: impl Into<String>) -> Response {
    ServiceError::Forbidden(message.into()).into_response()
}

impl<E: Endpoint> Endpoint for Guarded<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !req.uri().path().starts_with("/sign/") {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        // Identity headers come from the gateway only: a client's are never
        // believed, nor passed on.
        let headers = req.headers_mut();
        let internal = headers.remove(INTERNAL_TOKEN_HEADER);
        let client = headers.remove(CLIENT_HEADER);
        let allow = headers.remove(ALLOW_HEADER);
        let access = &self.access;

        if let Some(sources) = &access.allowed_sources {
            let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
            let addr = peer.map(|p| client_address(p, req.headers(), &access.trusted_proxies));
            if !addr.is_some_and(|a| sources.contains(a)) {
                let shown = addr
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "this address".to_string());
                return Ok(forbidden(format!("requests from {shown} may not ask for signatures here (DIGSIGSERVER_ALLOWED_SOURCES)"),
                ));
            }
        }

        let internal = internal.filter(|_| !access.at_gateway);
        let grant: Option<Arc<Grant>> = match (&access.internal_token, internal) {
            (Some(expected), Some(presented)) => {
                if !openssl::memcmp::eq(
                    &openssl::sha::sha256(expected.as_bytes()),
                    &openssl::sha::sha256(presented.as_bytes()),
                ) {
                    return Ok(unauthorized("the gateway's internal token does not match this service's (DIGSIGSERVER_INTERNAL_TOKEN)",
                    ));
                }
                match gateway_grant(client.as_ref(), allow.as_ref()) {
                    Some(grant) => Some(Arc::new(grant)),
                    None => return Ok(unauthorized("the gateway sent no usable caller")),
                }
            }
            _ => match &access.file {
                Some(file) => {
                    let token = match presented_token(req.headers()) {
                        Ok(token) => token,
                        Err(e) => return Ok(unauthorized(e.to_string())),
                    };
                    match file.clients().authenticate(&token) {
                        Some(grant) => Some(grant),
                        None => return Ok(unauthorized("the token is not one this server knows")),
                    }
                }
                None if access.internal_token.is_some() && !access.at_gateway => {
                    return Ok(unauthorized(
                        "this service takes signing requests only through the digsig gateway",
                    ))
                }
                None => None,
            },
        };
        let Some(grant) = grant else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        // The token stays here: a routed service gets the caller instead.
        req.headers_mut().remove(AUTHORIZATION);
        req.extensions_mut()
            .insert(ForwardIdentity(access.identity_headers(&grant)));
        tracing::info!(client = %grant.client, "caller");
        if let Some(slot) = req.extensions().get::<crate::audit::CallerSlot>() {
            slot.set(&grant.client);
        }
        with_grant(grant, self.inner.call(req))
            .await
            .map(IntoResponse::into_response)
    }
}

/// The caller a gateway named: its name and rules.
fn gateway_grant(
    client: Option<&poem::http::HeaderValue>,
    allow: Option<&poem::http::HeaderValue>,
) -> Option<Grant> {
    let client = client?.to_str().ok()?.to_string();
    if client.is_empty() {
        return None;
    }
    let allow = match allow {
        None => Vec::new(),
        Some(v) => v
            .to_str()
            .ok()?
            .split_whitespace()
            .map(AllowRule::parse)
            .collect::<Result<Vec<_>, _>>()
            .ok()?,
    };
    Some(Grant { client, allow })
}
