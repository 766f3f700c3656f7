//! digsig NXP i.MX HAB signing service (`POST /sign/imx`).
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`soc`]: the `soctype` values, the HAB4 SoC families.
//! - [`csf`]: the CSF description, checked before `cst` reads it.
//! - [`artifact_name`]: the artifact's file name, a plain name only.
//! - [`backend`]: the `backend` field (`ssl`; `pkcs11` is a 501).
//! - [`cst`]: the installed CST versions, and one run of `cst`.
//! - [`srk_table`]: the HAB4 SRK table (for the demo keys).
//! - [`status`]: how this service's errors map to HTTP statuses.
//! - [`demo`]: a throwaway HAB4 PKI for a first run.
//!
//! `cst` itself is NXP's, or Debian's with our key back end
//! (`svc-imx/cst/`), installed as `<base>/cst-<version>/linux64/bin/cst`.
#![deny(missing_docs)]

pub mod api;
pub mod artifact_name;
pub mod backend;
pub mod csf;
pub mod cst;
pub mod demo;
pub mod soc;
pub mod srk_table;
pub mod status;

use std::future::Future;
use std::path::PathBuf;

use keystore::KeyStore;
use servicekit::config::{timeout_setting, ConfigError};
use servicekit::demo::DemoKeyStore;
use servicekit::{ServiceConfig, SigningDomain};

pub use api::ImxApi;
pub use cst::{CstInstalls, CST_BASE_VAR, DEFAULT_CST_BASE};

/// The variable bounding one `cst` run (and, at the gateway, a request).
pub const TIMEOUT_VAR: &str = "DIGSIGSERVER_IMX_TIMEOUT";

/// The i.MX HAB signing domain (`imx`).
pub struct Imx;

impl SigningDomain for Imx {
    const NAME: &'static str = "imx";
    type Api = ImxApi;

    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<ImxApi, ConfigError> {
        Ok(ImxApi::new(
            keystore,
            config.workdir_base.clone(),
            cst_installs(config)?,
        ))
    }

    /// Every installed `cst`. With none installed this is one failing
    /// check, when i.MX signing is set up at all: `DIGSIGSERVER_IMX_CST_BASE`
    /// is set, or the default `/opt/NXP` exists. (A gateway serving every
    /// domain on a host without CST stays ready for the others.)
    fn required_tools(config: &ServiceConfig) -> Result<Vec<(String, PathBuf)>, ConfigError> {
        let installs = cst_installs(config)?;
        let configured = config.settings.get(CST_BASE_VAR).is_some() || installs.base().exists();
        if !configured {
            return Ok(Vec::new());
        }
        let versions = installs.versions();
        if versions.is_empty() {
            return Ok(vec![(
                "cst".to_string(),
                installs.base().join("cst-<version>/linux64/bin/cst"),
            )]);
        }
        Ok(versions
            .into_iter()
            .map(|v| {
                let path = installs.program(&v).unwrap_or_default();
                (format!("cst {v}"), path)
            })
            .collect())
    }

    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
        demo::add_demo_keys(store)
    }

    /// A CSF, an image and the form around them.
    fn body_limit(_path: &str, _config: &ServiceConfig) -> u64 {
        api::MAX_ARTIFACT_BYTES + csf::MAX_CSF_BYTES as u64 + servicekit::domain::FORM_OVERHEAD
    }
}

/// The CST settings in `config`: `DIGSIGSERVER_IMX_CST_BASE` (default
/// `/opt/NXP`) and `DIGSIGSERVER_IMX_TIMEOUT`.
pub fn cst_installs(config: &ServiceConfig) -> Result<CstInstalls, ConfigError> {
    let base = config
        .settings
        .get(CST_BASE_VAR)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CST_BASE.to_string());
    let timeout = timeout_setting(|name| config.settings.get(name), TIMEOUT_VAR)?;
    Ok(CstInstalls::new(base, timeout))
}

/// Serves the i.MX signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::domain::run::<Imx>(listener, keystore, config, shutdown).await
}
