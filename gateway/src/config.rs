//! The gateway's settings: the shared service settings plus, per domain,
//! where it is served and how long a request may take.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Url;
use servicekit::config::ConfigError;
use servicekit::ServiceConfig;

use crate::domain::Domain;
use crate::proxy::{UpstreamTls, CA_FILE_VAR};

/// Upstream digsigserver lets signing run for 10 minutes; so do we by default.
pub const DEFAULT_TIMEOUT: Duration = servicekit::config::DEFAULT_DOMAIN_TIMEOUT;

/// Where a domain's requests are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In the gateway's own process.
    Embedded,
    /// By the service at this base URL.
    Routed(Url),
}

/// One domain's settings.
#[derive(Debug, Clone)]
pub struct DomainConfig {
    /// `DIGSIGSERVER_<DOMAIN>_URL`: unset means embedded.
    pub placement: Placement,
    /// `DIGSIGSERVER_<DOMAIN>_TIMEOUT` (seconds): the most a request to this
    /// domain may take, upload and reply included.
    pub timeout: Duration,
}

/// Everything the gateway reads from its environment.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Settings shared with the services (key store, work dirs, limits), used
    /// by embedded domains.
    pub service: ServiceConfig,
    /// How routed `https://` services are trusted.
    pub tls: UpstreamTls,
    domains: HashMap<Domain, DomainConfig>,
}

impl GatewayConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_lookup(lookup)?;
        let lookup = |name: &str| service.settings.get(name);
        let tls = UpstreamTls {
            ca_file: lookup(CA_FILE_VAR)
                .filter(|v| !v.trim().is_empty())
                .map(std::path::PathBuf::from),
        };
        let mut domains = HashMap::new();
        for domain in Domain::ALL {
            let (url_var, timeout_var) = (domain.url_var(), domain.timeout_var());
            let placement = match lookup(url_var).filter(|v| !v.trim().is_empty()) {
                None => Placement::Embedded,
                Some(value) => Placement::Routed(parse_service_url(url_var, value)?),
            };
            let timeout = servicekit::config::timeout_setting(lookup, timeout_var)?;
            domains.insert(domain, DomainConfig { placement, timeout });
        }
        Ok(Self {
            service,
            tls,
            domains,
        })
    }

    /// The settings of `domain`.
    pub fn domain(&self, domain: Domain) -> &DomainConfig {
        &self.domains[&domain]
    }

    /// Routes `domain` to the service at `url` (tests and embedding programs).
    pub fn route(&mut self, domain: Domain, url: Url) {
        self.domains
            .get_mut(&domain)
            .expect("every domain has settings")
            .placement = Placement::Routed(url);
    }

    /// Sets how long a request to `domain` may take.
    pub fn set_timeout(&mut self, domain: Domain, timeout: Duration) {
        self.domains
            .get_mut(&domain)
            .expect("every domain has settings")
            .timeout = timeout;
    }

    /// Whether any domain this build serves runs in-process (and so needs
    /// the key store).
    pub fn has_embedded_domains(&self) -> bool {
        Domain::ALL
            .into_iter()
            .any(|d| d.is_built() && self.domain(d).placement == Placement::Embedded)
    }
}

fn parse_service_url(name: &'static str, value: String) -> Result<Url, ConfigError> {
    match Url::parse(value.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err(ConfigError {
            name,
            value,
            reason: "expected the service's base URL, e.g. http://svc-kmod:8080".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GatewayConfig::from_lookup(move |k| env.get(k).cloned())
    }

    #[test]
    fn everything_is_embedded_with_upstreams_timeout_by_default() {
        let c = config(&[]).unwrap();
        for d in Domain::ALL {
            assert_eq!(c.domain(d).placement, Placement::Embedded);
            assert_eq!(c.domain(d).timeout, Duration::from_secs(600));
        }
        assert!(c.has_embedded_domains());
    }

    #[test]
    fn a_url_routes_its_domain_and_a_timeout_overrides() {
        let c = config(&[
            ("DIGSIGSERVER_KMOD_URL", "http://svc-kmod:8080"),
            ("DIGSIGSERVER_KMOD_TIMEOUT", "30"),
        ])
        .unwrap();
        assert_eq!(
            c.domain(Domain::Kmod).placement,
            Placement::Routed(Url::parse("http://svc-kmod:8080").unwrap())
        );
        assert_eq!(c.domain(Domain::Kmod).timeout, Duration::from_secs(30));
        assert_eq!(c.domain(Domain::Imx).placement, Placement::Embedded);
        assert!(
            c.has_embedded_domains(),
            "update is built and still embedded"
        );
        let all_routed = config(&[
            ("DIGSIGSERVER_KMOD_URL", "http://svc-kmod:8080"),
            ("DIGSIGSERVER_OPTEE_URL", "http://svc-optee:8080"),
            ("DIGSIGSERVER_UPDATE_URL", "http://svc-update:8080"),
            ("DIGSIGSERVER_IMX_URL", "http://svc-imx:8080"),
            ("DIGSIGSERVER_TEGRA_URL", "http://svc-tegra:8080"),
        ])
        .unwrap();
        assert!(
            !all_routed.has_embedded_domains(),
            "unbuilt domains need no key store"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("DIGSIGSERVER_KMOD_URL", "svc-kmod:8080"),
            ("DIGSIGSERVER_KMOD_URL", "ftp://svc-kmod"),
            ("DIGSIGSERVER_KMOD_TIMEOUT", "ten"),
            ("DIGSIGSERVER_KMOD_TIMEOUT", "0"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.name, var, "{err}");
        }
    }
}
