//! A signing domain as the gateway and a service binary see it: one trait,
//! implemented once per service crate, so adding a domain is that impl, one
//! line in the gateway's list and its compose/Dockerfile entries.

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;

use keystore::KeyStore;
use poem::Endpoint;
use poem_openapi::OpenApi;

use crate::admission::{Admission, JobGate};
use crate::config::ConfigError;
use crate::demo::DemoKeyStore;
use crate::{Readiness, ServiceConfig};

/// One signing domain: its name, its API and what it needs to run.
pub trait SigningDomain: 'static {
    /// Lower-case name, as in `svc-<name>`, `DIGSIGSERVER_<NAME>_URL`,
    /// `/ready` and the logs.
    const NAME: &'static str;

    /// The domain's OpenAPI operations (the service crate's own types).
    type Api: OpenApi + Send + Sync + 'static;

    /// Builds the API, signing with keys from `keystore`; domain settings
    /// come from `config.settings`.
    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<Self::Api, ConfigError>;

    /// Vendor tools the domain runs, by name and path, for `/ready`.
    fn required_tools(config: &ServiceConfig) -> Result<Vec<(String, PathBuf)>, ConfigError> {
        let _ = config;
        Ok(Vec::new())
    }

    /// Adds throwaway keys for machine/distro `demo` (for `--demo`).
    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn Error>>;

    /// The most bytes a request body to `path` may have: by default, the
    /// largest tarball the archive limits let through, plus room for the
    /// form around it.
    fn body_limit(path: &str, config: &ServiceConfig) -> u64 {
        let _ = path;
        config
            .archive_limits
            .max_stream_bytes()
            .saturating_add(FORM_OVERHEAD)
    }
}

/// Room for a form's other fields and multipart framing around its upload.
pub const FORM_OVERHEAD: u64 = 1 << 20;

/// The admission rules of domain `D`'s endpoints: body limits per path, and
/// one job gate for them all.
pub fn admission<D: SigningDomain>(config: &ServiceConfig) -> Admission {
    let body_limits = <D::Api as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| {
            let limit = D::body_limit(&path.path, config);
            (path.path, limit)
        })
        .collect();
    Admission {
        body_limits: std::sync::Arc::new(body_limits),
        jobs: JobGate::new(config.jobs),
    }
}

/// A domain's routes as its own service: the API, `/health`, `/ready`,
/// `/openapi.json` and Swagger UI at `/docs`.
pub fn app<D: SigningDomain>(
    keystore: KeyStore,
    config: &ServiceConfig,
) -> Result<impl Endpoint, ConfigError> {
    let access = crate::access::AccessControl::from_settings(&config.settings)?;
    access.warn_if_open();
    let keystore = access
        .keystore(keystore)
        .with_parsed_key_cache(config.key_cache_ttl);
    let readiness = Readiness {
        keystore: Some(keystore.clone()),
        tools: D::required_tools(config)?,
        ..Readiness::default()
    };
    let api = D::api(keystore, config)?;
    let admission = admission::<D>(config);
    let metrics = crate::metrics::Metrics::new(
        <D::Api as OpenApi>::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .map(|path| path.path),
    );
    metrics.add_job_gate(D::NAME, std::sync::Arc::clone(&admission.jobs));
    let routes = crate::openapi_routes(
        api,
        readiness,
        admission,
        &format!("digsig svc-{}", D::NAME),
        env!("CARGO_PKG_VERSION"),
    )
    .at("/metrics", metrics.endpoint());
    crate::layers::signing_layers(routes, &access, &config.settings, &metrics)
}

/// Serves domain `D` on `listener` until `shutdown`.
pub async fn run<D: SigningDomain>(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = app::<D>(keystore, &config).map_err(std::io::Error::other)?;
    let limits = crate::server::ConnectionLimits::for_this_process(config.idle_timeout);
    crate::server::serve_with(listener, app, shutdown, limits).await
}
