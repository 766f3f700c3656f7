//! digsig kernel module signing service (`POST /sign/modules`).
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`signer`]: native signatures, byte-identical to the kernel's `sign-file`.
//! - [`sign_tree`]: streaming a module tarball through the signer on every core.
//! - [`demo`]: throwaway demo keys for a first run.
#![deny(missing_docs)]

pub mod api;
pub mod demo;
pub mod sign_tree;
pub mod signer;

use std::future::Future;

use keystore::KeyStore;
use poem::Endpoint;
use servicekit::{Readiness, ServiceConfig};

pub use api::KmodApi;

/// Builds the service's routes: the API, `/health`, `/ready`, `/openapi.json`
/// and Swagger UI at `/docs`.
pub fn app(keystore: KeyStore, config: &ServiceConfig) -> impl Endpoint {
    let readiness = Readiness {
        keystore: Some(keystore.clone()),
        ..Readiness::default()
    };
    let api = KmodApi::new(keystore, config.workdir_base.clone(), config.archive_limits);
    servicekit::openapi_routes(api, readiness, "digsig svc-kmod", env!("CARGO_PKG_VERSION"))
}

/// Serves the kernel module signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::serve(listener, app(keystore, &config), shutdown).await
}
