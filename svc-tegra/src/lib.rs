//! digsig NVIDIA Jetson (tegra) bootloader signing (`POST /sign/tegra`).
//!
//! - [`api`]: the HTTP API, wire-compatible with upstream digsigserver.
//! - [`manifest`]: the upload's `MANIFEST`, read into typed settings: only
//!   the keys the Yocto classes write are accepted, each value checked, so
//!   nothing from an upload names an environment variable or a path outside
//!   the upload.
//! - [`flashvars`]: the package's `flashvars`, read as data and rewritten.
//! - [`upload`]: the unpacked package checked and made safe to run the
//!   tools in (no uploaded code on `PATH` or `sys.path`, nothing sourced).
//! - [`bsp`]: where an L4T BSP is, and which of its files a run needs, by
//!   BSP version and SoC (upstream's per-version sets).
//! - [`tool_setup`]: the BSP's tools copied into a run's work dir, R32's
//!   python2 scripts wrapped, the links made.
//! - [`helper_args`]: the flash and signimage helpers' command lines, as
//!   upstream builds them, with its known bugs fixed.
//! - [`signing`]: the three modes, and what each returns.
//! - [`status`]: how this service's errors map to HTTP statuses.
//! - [`demo`]: a throwaway PKC key for a first run.
//!
//! `DESIGN.md` records what running NVIDIA's tools on an upload takes.
#![deny(missing_docs)]

pub mod api;
pub mod bsp;
pub mod demo;
pub mod flashvars;
pub mod helper_args;
pub mod manifest;
pub mod signing;
pub mod status;
pub mod tool_setup;
pub mod upload;

use std::future::Future;
use std::path::PathBuf;

use keystore::KeyStore;
use servicekit::config::{timeout_setting, ConfigError};
use servicekit::demo::DemoKeyStore;
use servicekit::{ServiceConfig, SigningDomain};

pub use api::TegraApi;
pub use bsp::{BspInstalls, DEFAULT_L4T_TOOLS_BASE, L4T_TOOLS_BASE_VAR};

/// The variable bounding one helper run (and, at the gateway, a request).
pub const TIMEOUT_VAR: &str = "DIGSIGSERVER_TEGRA_TIMEOUT";

/// The Jetson signing domain (`tegra`).
pub struct Tegra;

impl SigningDomain for Tegra {
    const NAME: &'static str = "tegra";
    type Api = TegraApi;

    fn api(keystore: KeyStore, config: &ServiceConfig) -> Result<TegraApi, ConfigError> {
        Ok(TegraApi::new(
            keystore,
            config.workdir_base.clone(),
            config.archive_limits,
            bsp_installs(config),
            timeout_setting(|name| config.settings.get(name), TIMEOUT_VAR)?,
        ))
    }

    /// Every installed BSP's flash helper. With none installed this is one
    /// failing check, when Jetson signing is set up at all:
    /// `DIGSIGSERVER_L4T_TOOLS_BASE` is set, or the default `/opt/nvidia`
    /// exists. (A gateway serving every domain on a host without BSPs stays
    /// ready for the others.)
    fn required_tools(config: &ServiceConfig) -> Result<Vec<(String, PathBuf)>, ConfigError> {
        let bsps = bsp_installs(config);
        let configured = config.settings.get(L4T_TOOLS_BASE_VAR).is_some() || bsps.base().exists();
        if !configured {
            return Ok(Vec::new());
        }
        let installed = bsps.installed();
        if installed.is_empty() {
            return Ok(vec![(
                "L4T BSP".to_string(),
                bsps.base().join("L4T-<version>-<soc>/Linux_for_Tegra"),
            )]);
        }
        Ok(installed
            .into_iter()
            .map(|(version, soc)| {
                let helper = format!("bootloader/{}-flash-helper", soc.name());
                (
                    format!("L4T {version} {}", soc.name()),
                    bsps.tree_of(version, soc).join(helper),
                )
            })
            .collect())
    }

    fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
        demo::add_demo_keys(store)
    }
}

/// The BSP location in `config`: `DIGSIGSERVER_L4T_TOOLS_BASE` (default
/// `/opt/nvidia`).
pub fn bsp_installs(config: &ServiceConfig) -> BspInstalls {
    let base = config
        .settings
        .get(L4T_TOOLS_BASE_VAR)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_L4T_TOOLS_BASE.to_string());
    BspInstalls::new(base)
}

/// Serves the Jetson signing service on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    keystore: KeyStore,
    config: ServiceConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    servicekit::domain::run::<Tegra>(listener, keystore, config, shutdown).await
}
