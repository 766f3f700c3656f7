//! digsig's gateway: the `digsigserver` binary.
//!
//! One OpenAPI service (Swagger UI at `/docs`, the document at
//! `/openapi.json`) made from the service crates' own API definitions. Each
//! domain is served in-process unless `DIGSIGSERVER_<DOMAIN>_URL` routes it to
//! its service; the document is the same either way.
//!
//! - [`domain`]: the signing domains and their upstream paths.
//! - [`registry`]: the domains this build serves, from one list.
//! - [`config`]: per-domain placement and timeouts.
//! - [`mount`]: a domain's API, embedded or routed, under one description.
//! - [`proxy`]: streaming a request to a service and its reply back.
//! - [`readiness`]: routed services' readiness in the gateway's `/ready`.
//! - [`not_built`]: 501 for upstream endpoints this build lacks.
#![deny(missing_docs)]

pub mod config;
pub mod domain;
pub mod mount;
pub mod not_built;
pub mod proxy;
pub mod readiness;
pub mod registry;

use std::future::Future;
use std::sync::Arc;

use keystore::KeyStore;
use poem::{Endpoint, Route};
use poem_openapi::OpenApiService;
use servicekit::{HealthApi, Readiness};

pub use config::{GatewayConfig, Placement};
pub use domain::Domain;

use not_built::NotBuilt;
use proxy::Upstream;
use registry::{Domains, MountContextParts};
use servicekit::access::AccessControl;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A domain is served in-process but no key store is configured.
    #[error("DIGSIGSERVER_KEYFILE_URI is not set: set it to file:///path/to/keys or s3://bucket/prefix (keys under <machine-or-distro>/<signtype>/), route every domain to its service with DIGSIGSERVER_<DOMAIN>_URL, or pass --demo for throwaway keys")]
    NoKeyStore,
    /// A domain's own setting does not parse.
    #[error(transparent)]
    Config(servicekit::config::ConfigError),
    /// The CA bundle for routed `https://` services cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The access settings do not fit together.
    #[error("{0}")]
    Access(String),
}

const DESCRIPTION: &str = "\
Signing service for embedded-Linux build farms, wire-compatible with \
[digsigserver](https://github.com/madisongh/digsigserver): POST an artifact as \
multipart/form-data, get it back signed. Keys are looked up per request as \
`<keyfile-uri>/<machine-or-distro>/<signtype>/<file>` and never leave the server.

Errors are plain text saying what to fix. Besides the statuses listed per \
endpoint, the gateway answers 501 for an upstream endpoint this build does not \
include, 502 when a routed service breaks off, 503 when a routed service is \
down and 504 when a request outlives its domain's timeout \
(`DIGSIGSERVER_<DOMAIN>_TIMEOUT`, default 600 s).";

/// Builds the gateway's routes from `config`. `keystore` serves the embedded
/// domains; it may be `None` only when every built domain is routed.
pub fn app(
    config: &GatewayConfig,
    keystore: Option<KeyStore>,
) -> Result<impl Endpoint, StartError> {
    if config.has_embedded_domains() && keystore.is_none() {
        return Err(StartError::NoKeyStore);
    }
    let access = AccessControl::from_settings(&config.service.settings)
        .map_err(StartError::Config)?
        .at_gateway();
    let routes_any = Domain::ALL
        .into_iter()
        .any(|d| matches!(config.domain(d).placement, Placement::Routed(_)));
    if access.has_access_file() && routes_any && !access.has_internal_token() {
        return Err(StartError::Access(
            "DIGSIGSERVER_ACCESS_FILE is set and domains are routed to services: set DIGSIGSERVER_INTERNAL_TOKEN (one secret, the same in the gateway and every service) so the services can tell the gateway's requests from anyone else's".into(),
        ));
    }
    access.warn_if_open();
    let keystore = keystore.map(|k| {
        access
            .keystore(k)
            .with_parsed_key_cache(config.service.key_cache_ttl)
    });
    let client = Upstream::client(&config.tls).map_err(StartError::Tls)?;
    let mut readiness = Readiness {
        keystore: keystore.clone().filter(|_| config.has_embedded_domains()),
        ..Readiness::default()
    };
    let mut probes = Vec::new();
    let placement = |domain: Domain| {
        let settings = config.domain(domain);
        let upstream = match &settings.placement {
            Placement::Embedded => None,
            Placement::Routed(url) => {
                let up = Arc::new(Upstream::new(
                    domain,
                    url.clone(),
                    settings.timeout,
                    client.clone(),
                ));
                probes.push(readiness::probe(Arc::clone(&up), client.clone()));
                Some(up)
            }
        };
        MountContextParts {
            upstream,
            timeout: settings.timeout,
        }
    };
    let metrics = servicekit::metrics::Metrics::new(
        Domain::ALL
            .into_iter()
            .flat_map(|d| d.paths().iter().map(|p| p.to_string())),
    );
    let domains = Domains::mount(
        placement,
        &config.service,
        keystore,
        &mut readiness,
        &metrics,
    )
    .map_err(StartError::Config)?;
    readiness.probes.extend(probes);

    let served: Vec<String> = <Domains as poem_openapi::OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| path.path)
        .collect();
    let api = OpenApiService::new(
        (domains, HealthApi::new(readiness)),
        "digsig",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(poem_openapi::LicenseObject::new("MIT"));
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let mut route = Route::new();
    // Upstream endpoints no service crate here provides yet.
    for domain in Domain::ALL {
        for path in domain
            .paths()
            .iter()
            .filter(|p| !served.iter().any(|s| s == *p))
        {
            route = route.at(*path, NotBuilt(domain));
        }
    }
    let routes = route
        .at("/metrics", metrics.endpoint())
        .at(
            "/",
            poem::endpoint::make_sync(|_| poem::web::Redirect::see_other("/docs")),
        )
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest(
            "/",
            servicekit::friendly_errors::friendly_errors::<(Domains, HealthApi), _>(
                poem::IntoEndpoint::into_endpoint(api),
            ),
        );
    servicekit::layers::signing_layers(routes, &access, &config.service.settings, &metrics)
        .map_err(StartError::Config)
}

/// Serves the gateway on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: GatewayConfig,
    keystore: Option<KeyStore>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = app(&config, keystore).map_err(std::io::Error::other)?;
    let tls = servicekit::tls::ServerTls::from_settings(&config.service.settings)
        .map_err(std::io::Error::other)?;
    let limits =
        servicekit::server::ConnectionLimits::for_this_process(config.service.idle_timeout);
    servicekit::server::serve_tls_with(listener, app, shutdown, limits, tls).await
}
