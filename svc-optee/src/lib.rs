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
use servicekit::config::ConfigError;
use servicekit::demo::DemoKeyStore;
use servicekit::{ServiceConfig, SigningDomain};

pub use api::OpteeApi;

/// The OP-TEE trusted application signing domain (`optee`).
pub struct Optee;

impl SigningDomain for Optee {
    const NAME: &'static str = "optee";
    type Api = OpteeApi;

    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<OpteeApi, ConfigError> {
        Ok(OpteeApi::new(
            keystore,
            config.workdir_base.clone(),
            config.archive_limits,
        ))
    }

    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
        demo::add_demo_keys(store)
    }
}

/// Serves the OP-TEE TA signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::domain::run::<Optee>(listener, keystore, config, shutdown).await
}
