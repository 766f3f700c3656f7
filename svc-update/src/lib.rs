//! digsig update package signing service: `POST /sign/swupdate` (SWUpdate
//! sw-description, RSA or CMS, natively) and `POST /sign/mender` (Mender
//! artifacts signed in place with `mender-artifact`).
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`swupdate`]: native signatures, as upstream's `openssl` calls make them;
//!   RSA ones through [`blinded_rsa`] (blinding that outlives the key object).
//! - [`mender`]: signing an artifact where it lives; built on
//!   [`artifact_uri`] (which locations are allowed), [`mender_native`]
//!   (signing the artifacts `mender-artifact` writes, without it, and the
//!   Mender key in both forms),
//!   [`mender_tool`] (the vendor tool, for the rest) and
//!   [`in_place`] (atomic replacement, streaming S3 transfers).
//! - [`status`]: how this service's errors map to HTTP statuses.
//! - [`demo`]: throwaway demo keys for a first run.
#![deny(missing_docs)]

pub mod api;
pub mod artifact_uri;
pub mod blinded_rsa;
pub mod demo;
pub mod in_place;
pub mod mender;
pub mod mender_native;
pub mod mender_tool;
pub mod status;
pub mod swupdate;

use std::future::Future;
use std::path::PathBuf;

use keystore::KeyStore;
use poem::Endpoint;
use servicekit::config::ConfigError;
use servicekit::demo::DemoKeyStore;
use servicekit::{Readiness, ServiceConfig, SigningDomain};

pub use api::UpdateApi;
pub use mender::MenderConfig;

/// The update package signing domain (`update`: SWUpdate and Mender).
pub struct Update;

impl SigningDomain for Update {
    const NAME: &'static str = "update";
    type Api = UpdateApi;

    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<UpdateApi, ConfigError> {
        Ok(UpdateApi::new(keystore, mender_config(config)?))
    }

    fn required_tools(config: &ServiceConfig) -> Result<Vec<(String, PathBuf)>, ConfigError> {
        Ok(required_tools(&mender_config(config)?))
    }

    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
        demo::add_demo_keys(store)
    }

    /// A sw-description is small, and Mender's form has no upload at all.
    fn body_limit(path: &str, _config: &ServiceConfig) -> u64 {
        match path {
            "/sign/swupdate" => api::MAX_SW_DESCRIPTION as u64 + servicekit::domain::FORM_OVERHEAD,
            _ => MENDER_FORM_LIMIT,
        }
    }
}

/// Most bytes of a `/sign/mender` form: two short text fields.
pub const MENDER_FORM_LIMIT: u64 = 64 * 1024;

/// The Mender settings in `config` (`DIGSIGSERVER_MENDER_*`).
pub fn mender_config(config: &ServiceConfig) -> Result<MenderConfig, ConfigError> {
    MenderConfig::from_lookup(
        |name| config.settings.get(name),
        config.workdir_base.clone(),
    )
}

/// Builds the service's routes with Mender settings given in code (tests
/// replace the tool or the upload policy), and otherwise default settings:
/// the API, `/health`, `/ready`, `/openapi.json` and Swagger UI at `/docs`.
/// (`svc-update` itself is built by [`servicekit::service_main`] from
/// [`Update`], with every setting from its environment.)
pub fn app(keystore: KeyStore, mender: MenderConfig) -> impl Endpoint {
    let readiness = Readiness {
        keystore: Some(keystore.clone()),
        tools: required_tools(&mender),
        ..Readiness::default()
    };
    let defaults = ServiceConfig::from_lookup(|_| None).expect("defaults parse");
    servicekit::openapi_routes(
        UpdateApi::new(keystore, mender),
        readiness,
        servicekit::domain::admission::<Update>(&defaults),
        "digsig svc-update",
        env!("CARGO_PKG_VERSION"),
    )
}

/// The vendor tools this service runs, for readiness: `mender-artifact`,
/// when Mender signing is enabled at all.
pub fn required_tools(mender: &MenderConfig) -> Vec<(String, PathBuf)> {
    if mender.allowed.is_empty() {
        Vec::new()
    } else {
        vec![("mender-artifact".to_string(), mender.tool.path())]
    }
}

/// Serves the update package signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    mender: MenderConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::serve(listener, app(keystore, mender), shutdown).await
}
