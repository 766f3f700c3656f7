//! The domains this build serves, from one list.
//!
//! Adding a domain: implement [`servicekit::SigningDomain`] in its service
//! crate, add the crate to the gateway's `Cargo.toml` and one line to
//! [`BUILT`]. Its API joins the OpenAPI document, it is embedded or routed by
//! `DIGSIGSERVER_<NAME>_URL`, `--demo` makes its keys and `/ready` checks its
//! tools.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use keystore::KeyStore;
use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::OpenApi;
use servicekit::config::ConfigError;
use servicekit::demo::DemoKeyStore;
use servicekit::{Readiness, ServiceConfig, SigningDomain};

use crate::domain::Domain;
use crate::mount::Mount;
use crate::proxy::Upstream;

/// Every domain linked into this build. One line per domain.
pub const BUILT: &[BuiltDomain] = &[
    BuiltDomain::of::<svc_imx::Imx>(),
    BuiltDomain::of::<svc_kmod::Kmod>(),
    BuiltDomain::of::<svc_optee::Optee>(),
    BuiltDomain::of::<svc_tegra::Tegra>(),
    BuiltDomain::of::<svc_update::Update>(),
];

type RouteTable = HashMap<String, HashMap<Method, BoxEndpoint<'static>>>;
type AddRoutes = Box<dyn FnOnce(&mut RouteTable) + Send>;

/// What the gateway knows of one built domain: functions over its
/// [`SigningDomain`] impl, so domains of different types share one list.
pub struct BuiltDomain {
    /// The domain's name ([`SigningDomain::NAME`]).
    pub name: &'static str,
    /// Adds its demo keys.
    pub add_demo_keys: fn(&DemoKeyStore) -> Result<(), Box<dyn Error>>,
    /// Runs it as its own service (`svc-<name>`'s `main`).
    pub service_main: fn() -> std::process::ExitCode,
    meta: fn() -> Vec<MetaApi>,
    register: fn(&mut Registry),
    mount: fn(&mut MountContext<'_>) -> Result<AddRoutes, ConfigError>,
}

impl BuiltDomain {
    /// The entry for domain `D`.
    pub const fn of<D: SigningDomain>() -> Self {
        Self {
            name: D::NAME,
            add_demo_keys: D::add_demo_keys,
            service_main: servicekit::service_main::<D>,
            meta: <Mount<D::Api> as OpenApi>::meta,
            register: <Mount<D::Api> as OpenApi>::register,
            mount: mount::<D>,
        }
    }

    /// Whether `domain` is built.
    pub fn find(domain: Domain) -> Option<&'static BuiltDomain> {
        BUILT.iter().find(|b| b.name == domain.name())
    }
}

/// What mounting a domain needs.
pub struct MountContext<'a> {
    /// The domain being mounted.
    pub domain: Domain,
    /// Its service, when routed.
    pub upstream: Option<Arc<Upstream>>,
    /// How long an embedded request may run.
    pub timeout: Duration,
    /// The key store, for embedded domains.
    pub keystore: Option<KeyStore>,
    /// Shared settings.
    pub config: &'a ServiceConfig,
    /// Embedded domains add their tools here.
    pub readiness: &'a mut Readiness,
    /// Embedded domains report their job slots here.
    pub metrics: &'a servicekit::metrics::Metrics,
}

fn mount<D: SigningDomain>(ctx: &mut MountContext<'_>) -> Result<AddRoutes, ConfigError> {
    let mount: Mount<D::Api> = match ctx.upstream.clone() {
        Some(up) => Mount::Routed(up),
        None => {
            let keystore = ctx
                .keystore
                .clone()
                .expect("the gateway checks embedded domains have a key store");
            ctx.readiness.tools.extend(D::required_tools(ctx.config)?);
            let admission = servicekit::domain::admission::<D>(ctx.config);
            ctx.metrics
                .add_job_gate(D::NAME, Arc::clone(&admission.jobs));
            Mount::Embedded {
                api: D::api(keystore, ctx.config)?,
                domain: ctx.domain,
                timeout: ctx.timeout,
                admission,
            }
        }
    };
    Ok(Box::new(move |table| mount.add_routes(table)))
}

/// Every built domain's API, mounted: one [`OpenApi`] whose metadata is the
/// service crates' own.
pub struct Domains(Vec<AddRoutes>);

impl Domains {
    /// Mounts every built domain, embedded or routed as `context` says.
    pub fn mount(
        mut context: impl FnMut(Domain) -> MountContextParts,
        config: &ServiceConfig,
        keystore: Option<KeyStore>,
        readiness: &mut Readiness,
        metrics: &servicekit::metrics::Metrics,
    ) -> Result<Self, ConfigError> {
        let mut routes = Vec::new();
        for built in BUILT {
            let domain = Domain::from_name(built.name).expect("built domains are known domains");
            let parts = context(domain);
            let mut ctx = MountContext {
                domain,
                upstream: parts.upstream,
                timeout: parts.timeout,
                keystore: keystore.clone(),
                config,
                readiness,
                metrics,
            };
            routes.push((built.mount)(&mut ctx)?);
        }
        Ok(Self(routes))
    }
}

/// A domain's placement, as the gateway's configuration gives it.
pub struct MountContextParts {
    /// Its service, when routed.
    pub upstream: Option<Arc<Upstream>>,
    /// How long a request may run.
    pub timeout: Duration,
}

impl OpenApi for Domains {
    fn meta() -> Vec<MetaApi> {
        BUILT.iter().flat_map(|d| (d.meta)()).collect()
    }

    fn register(registry: &mut Registry) {
        for d in BUILT {
            (d.register)(registry);
        }
    }

    fn add_routes(self, table: &mut RouteTable) {
        for add in self.0 {
            add(table);
        }
    }
}
