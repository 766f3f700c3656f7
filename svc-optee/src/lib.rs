//! digsig OP-TEE trusted application signing service (`POST /sign/optee`).
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`ta_image`]: the signed TA format OP-TEE loads, made natively.
//! - [`ta_names`]: what the file names and version files in a TA tree mean.
//! - [`sign_tree`]: signing every TA in an extracted tree, on every core.
//! - [`status`]: how this service's errors map to HTTP statuses.
//! - [`demo`]: throwaway demo keys for a first run.
#![deny(missing_docs)]

pub mod api;
pub mod demo;
pub mod sign_tree;
pub mod status;
pub mod ta_image;
pub mod ta_names;

use std::future::Future;

use keystore::KeyStore;
use poem::Endpoint;
use servicekit::{Readiness, ServiceConfig};

pub use api::OpteeApi;

/// Builds the service's routes: the API, `/health`, `/ready`, `/openapi.json`
/// and Swagger UI at `/docs`.
pub fn app(keystore: KeyStore, config: &ServiceConfig) -> impl Endpoint {
    let readiness = Readiness {
        keystore: Some(keystore.clone()),
        ..Readiness::default()
    };
    let api = OpteeApi::new(keystore, config.workdir_base.clone(), config.archive_limits);
    servicekit::openapi_routes(
        api,
        readiness,
        "digsig svc-optee",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Serves the OP-TEE TA signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::serve(listener, app(keystore, &config), shutdown).await
}
