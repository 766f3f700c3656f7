//! Mounting a domain's API in the gateway, in-process or routed, under one
//! OpenAPI description.
//!
//! [`Mount<T>`] is an [`OpenApi`] whose metadata is always `T`'s (so the
//! OpenAPI document is the same in both modes, generated from the service
//! crate's own definitions), while its routes are either `T`'s handlers or a
//! proxy to the service serving `T` elsewhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::OpenApi;
use servicekit::admission::Admission;
use servicekit::ServiceError;

use crate::domain::Domain;
use crate::proxy::{ProxyEndpoint, Upstream};

/// A domain's API, served here or routed to its service.
pub enum Mount<T> {
    /// Served by `api` in this process; a request may run for `timeout`.
    Embedded {
        /// The service crate's API.
        api: T,
        /// Its domain.
        domain: Domain,
        /// How long a request may run before it gets a 504.
        timeout: Duration,
        /// Body limits and job slots, as the domain's own service has them.
        admission: Admission,
    },
    /// Forwarded to the domain's service.
    Routed(Arc<Upstream>),
}

type RouteTable = HashMap<String, HashMap<Method, BoxEndpoint<'static>>>;

impl<T: OpenApi> OpenApi for Mount<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, table: &mut RouteTable) {
        match self {
            Mount::Embedded {
                api,
                domain,
                timeout,
                admission,
            } => {
                let mut own = RouteTable::new();
                api.add_routes(&mut own);
                for (path, methods) in own {
                    let slot = table.entry(path).or_default();
                    for (method, ep) in methods {
                        slot.insert(
                            method,
                            WithTimeout {
                                inner: admission.guard(ep).boxed(),
                                domain,
                                timeout,
                            }
                            .boxed(),
                        );
                    }
                }
            }
            Mount::Routed(upstream) => {
                for path in T::meta().into_iter().flat_map(|api| api.paths) {
                    let slot = table.entry(poem_path(&path.path)).or_default();
                    for op in path.operations {
                        slot.insert(op.method, ProxyEndpoint::new(Arc::clone(&upstream)).boxed());
                    }
                }
            }
        }
    }
}

/// OpenAPI writes path parameters as `{name}`, poem's router as `:name`.
fn poem_path(openapi_path: &str) -> String {
    openapi_path
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// An in-process handler bounded by its domain's timeout. The handler's work
/// dir outlives the cancelled future until its blocking work notices, then
/// goes (it is reference counted).
struct WithTimeout {
    inner: BoxEndpoint<'static>,
    domain: Domain,
    timeout: Duration,
}

impl Endpoint for WithTimeout {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match tokio::time::timeout(self.timeout, self.inner.call(req)).await {
            Ok(result) => result,
            Err(_) => Ok(ServiceError::GatewayTimeout(format!(
                "{} signing took longer than {} s; raise {} if such requests are expected",
                self.domain,
                self.timeout.as_secs(),
                self.domain.timeout_var()
            ))
            .into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_parameters_are_converted() {
        assert_eq!(super::poem_path("/sign/modules"), "/sign/modules");
        assert_eq!(super::poem_path("/a/{id}/b"), "/a/:id/b");
    }
}
