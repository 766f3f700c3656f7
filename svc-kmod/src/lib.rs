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
use servicekit::config::ConfigError;
use servicekit::demo::DemoKeyStore;
use servicekit::{ServiceConfig, SigningDomain};

pub use api::KmodApi;

/// The kernel module signing domain (`kmod`).
pub struct Kmod;

impl SigningDomain for Kmod {
    const NAME: &'static str = "kmod";
    type Api = KmodApi;

    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<KmodApi, ConfigError> {
        Ok(KmodApi::new(
            keystore,
            config.workdir_base.clone(),
            config.archive_limits,
        ))
    }

    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
        demo::add_demo_keys(store)
    }
}

/// Serves the kernel module signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::domain::run::<Kmod>(listener, keystore, config, shutdown).await
}
