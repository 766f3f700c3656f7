//! Command line and environment configuration.
//!
//! The flags are upstream digsigserver's (`--address`, `--port`, `--debug`);
//! everything else comes from `DIGSIGSERVER_*` environment variables, as
//! upstream reads its settings. Values are parsed once here into typed fields.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use crate::archive::ArchiveLimits;

/// The command line every digsig binary accepts.
#[derive(Debug, Clone, Parser)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "DIGSIGSERVER_ADDRESS", default_value = "0.0.0.0")]
    pub address: IpAddr,
    /// TCP port to listen on.
    #[arg(long, env = "DIGSIGSERVER_PORT", default_value_t = 9999)]
    pub port: u16,
    /// Log at debug level (RUST_LOG, if set, still wins).
    #[arg(long, env = "DIGSIGSERVER_DEBUG")]
    pub debug: bool,
}

/// Settings a signing service reads from its environment.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `DIGSIGSERVER_KEYFILE_URI`: where keys live (`file://` or `s3://`).
    pub keyfile_uri: Option<String>,
    /// `DIGSIGSERVER_WORKDIR`: where per-request directories go; size it for
    /// the largest artifact (default: the system temp directory).
    pub workdir_base: PathBuf,
    /// `DIGSIGSERVER_MAX_ARTIFACT_BYTES` and `DIGSIGSERVER_MAX_ARTIFACT_ENTRIES`.
    pub archive_limits: ArchiveLimits,
    /// `DIGSIGSERVER_IDLE_TIMEOUT`: how long a connection may be silent (a
    /// stalled request head, an idle keep-alive, a body that stops coming).
    pub idle_timeout: std::time::Duration,
    /// `DIGSIGSERVER_MAX_JOBS` and `DIGSIGSERVER_MAX_QUEUE`.
    pub jobs: crate::admission::JobLimits,
    /// `DIGSIGSERVER_KEY_CACHE_SECONDS`: how long parsed keys are kept
    /// between requests (zero, the default: not at all).
    pub key_cache_ttl: std::time::Duration,
    /// Every setting, for the ones a domain reads itself (e.g.
    /// `DIGSIGSERVER_MENDER_ALLOWED_URIS`).
    pub settings: Settings,
}

/// Reads one setting by name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where settings come from: the environment (or a map in tests), with
/// overrides set in code on top.
#[derive(Clone)]
pub struct Settings {
    lookup: Arc<Lookup>,
    overrides: BTreeMap<String, String>,
}

impl Settings {
    /// Settings read through `lookup`.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
            overrides: BTreeMap::new(),
        }
    }

    /// Settings read from the process environment.
    pub fn from_env() -> Self {
        Self::new(|name| std::env::var(name).ok())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        match self.overrides.get(name) {
            Some(value) => Some(value.clone()),
            None => (self.lookup)(name),
        }
    }

    /// Sets `name` to `value`, over whatever the environment says.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.overrides.insert(name.to_string(), value.into());
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be credentials' locations: names only.
        f.debug_struct("Settings")
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What it should be.
    pub reason: std::borrow::Cow<'static, str>,
}

/// Names the idle limit for connections and request bodies (seconds).
pub const IDLE_TIMEOUT_VAR: &str = "DIGSIGSERVER_IDLE_TIMEOUT";

/// How long a domain's signing may take unless `DIGSIGSERVER_<DOMAIN>_TIMEOUT`
/// says otherwise: upstream lets signing run ten minutes.
pub const DEFAULT_DOMAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Reads a `DIGSIGSERVER_<DOMAIN>_TIMEOUT` setting (whole seconds above 0;
/// unset or empty means [`DEFAULT_DOMAIN_TIMEOUT`]). The gateway bounds a
/// whole request by it, a service each vendor-tool run.
pub fn timeout_setting(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<std::time::Duration, ConfigError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_DOMAIN_TIMEOUT),
        Some(value) => match value.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(std::time::Duration::from_secs(secs)),
            _ => Err(ConfigError {
                name,
                value,
                reason: "expected a whole number of seconds above 0".into(),
            }),
        },
    }
}

impl ServiceConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_settings(Settings::from_env())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        Self::from_settings(Settings::new(lookup))
    }

    /// Reads the configuration from `settings`.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let lookup = |name: &str| settings.get(name);
        let defaults = ArchiveLimits::default();
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| ConfigError {
                    name,
                    value,
                    reason: "expected a whole number".into(),
                }),
            }
        };
        Ok(Self {
            keyfile_uri: lookup("DIGSIGSERVER_KEYFILE_URI").filter(|v| !v.is_empty()),
            workdir_base: lookup("DIGSIGSERVER_WORKDIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            archive_limits: ArchiveLimits {
                max_bytes: number("DIGSIGSERVER_MAX_ARTIFACT_BYTES", defaults.max_bytes)?,
                max_entries: number("DIGSIGSERVER_MAX_ARTIFACT_ENTRIES", defaults.max_entries)?,
                max_ratio: number("DIGSIGSERVER_MAX_ARTIFACT_RATIO", defaults.max_ratio)?,
            },
            idle_timeout: match lookup(IDLE_TIMEOUT_VAR).filter(|v| !v.trim().is_empty()) {
                None => crate::connections::IDLE_TIMEOUT,
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(secs) if secs > 0 => std::time::Duration::from_secs(secs),
                    _ => {
                        return Err(ConfigError {
                            name: IDLE_TIMEOUT_VAR,
                            value,
                            reason: "expected a whole number of seconds above 0".into(),
                        })
                    }
                },
            },
            jobs: crate::admission::JobLimits::from_lookup(lookup)?,
            key_cache_ttl: std::time::Duration::from_secs(number(
                keystore::parsed_cache::KEY_CACHE_VAR,
                0,
            )?),
            settings: settings.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_overrides() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("DIGSIGSERVER_KEYFILE_URI", "file:///keys"),
            ("DIGSIGSERVER_MAX_ARTIFACT_ENTRIES", "10"),
        ]);
        let config =
            ServiceConfig::from_lookup(move |k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.keyfile_uri.as_deref(), Some("file:///keys"));
        assert_eq!(config.archive_limits.max_entries, 10);
        assert_eq!(
            config.archive_limits.max_bytes,
            ArchiveLimits::default().max_bytes
        );
    }

    #[test]
    fn bad_number_names_the_variable() {
        let err = ServiceConfig::from_lookup(|k| {
            (k == "DIGSIGSERVER_MAX_ARTIFACT_BYTES").then(|| "lots".to_string())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("DIGSIGSERVER_MAX_ARTIFACT_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn upstream_command_line_defaults() {
        let args = ServerArgs::parse_from(["digsigserver"]);
        assert_eq!(args.address.to_string(), "0.0.0.0");
        assert_eq!(args.port, 9999);
        assert!(!args.debug);
        let args = ServerArgs::parse_from([
            "digsigserver",
            "--address",
            "127.0.0.1",
            "--port",
            "8080",
            "--debug",
        ]);
        assert_eq!(
            (args.address.to_string().as_str(), args.port, args.debug),
            ("127.0.0.1", 8080, true)
        );
    }
}
