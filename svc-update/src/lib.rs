//! digsig update package signing service: `POST /sign/swupdate` (SWUpdate
//! sw-description, RSA or CMS). Mender artifact signing (`POST /sign/mender`)
//! is still to come.
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`swupdate`]: native signatures, as upstream's `openssl` calls make them.
//! - [`demo`]: throwaway demo keys for a first run.
#![deny(missing_docs)]

pub mod api;
pub mod demo;
pub mod swupdate;

use std::future::Future;

use keystore::KeyStore;
use poem::Endpoint;
use servicekit::Readiness;

pub use api::UpdateApi;

/// Builds the service's routes: the API, `/health`, `/ready`, `/openapi.json`
/// and Swagger UI at `/docs`.
pub fn app(keystore: KeyStore) -> impl Endpoint {
    let readiness = Readiness {
        keystore: Some(keystore.clone()),
        ..Readiness::default()
    };
    servicekit::openapi_routes(
        UpdateApi::new(keystore),
        readiness,
        "digsig svc-update",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Serves the update package signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::serve(listener, app(keystore), shutdown).await
}
