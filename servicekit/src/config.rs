//! Command line and environment configuration.
//!
//! The flags are upstream digsigserver's (`--address`, `--port`, `--debug`);
//! everything else comes from `DIGSIGSERVER_*` environment variables, as
//! upstream reads its settings. Values are parsed once here into typed fields.

use std::net::IpAddr;
use std::path::PathBuf;

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
    pub reason: &'static str,
}

impl ServiceConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = ArchiveLimits::default();
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| ConfigError {
                    name,
                    value,
                    reason: "expected a whole number",
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
            },
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
        let config = ServiceConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
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
