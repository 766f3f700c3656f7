//! The signing domains digsig serves, as upstream digsigserver names them.

use std::fmt;

/// A signing domain: one service crate and its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// NVIDIA Jetson bootloaders (`svc-tegra`).
    Tegra,
    /// NXP i.MX HAB (`svc-imx`).
    Imx,
    /// Linux kernel modules (`svc-kmod`).
    Kmod,
    /// OP-TEE trusted applications (`svc-optee`).
    Optee,
    /// Mender artifacts and SWUpdate sw-descriptions (`svc-update`).
    Update,
    /// U-Boot FIT images (upstream 0.16; no service yet).
    Fitimage,
    /// Rockchip bootloaders and OP-TEE (upstream 0.16; no service yet).
    Rockchip,
}

impl Domain {
    /// Every domain, built or not.
    pub const ALL: [Domain; 7] = [
        Domain::Tegra,
        Domain::Imx,
        Domain::Kmod,
        Domain::Optee,
        Domain::Update,
        Domain::Fitimage,
        Domain::Rockchip,
    ];

    /// The domain called `name`.
    pub fn from_name(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Lower-case name, as in logs, `/ready` and `svc-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Tegra => "tegra",
            Domain::Imx => "imx",
            Domain::Kmod => "kmod",
            Domain::Optee => "optee",
            Domain::Update => "update",
            Domain::Fitimage => "fitimage",
            Domain::Rockchip => "rk",
        }
    }

    /// `DIGSIGSERVER_<DOMAIN>_URL`: the base URL of the service to route to.
    pub fn url_var(self) -> &'static str {
        match self {
            Domain::Tegra => "DIGSIGSERVER_TEGRA_URL",
            Domain::Imx => "DIGSIGSERVER_IMX_URL",
            Domain::Kmod => "DIGSIGSERVER_KMOD_URL",
            Domain::Optee => "DIGSIGSERVER_OPTEE_URL",
            Domain::Update => "DIGSIGSERVER_UPDATE_URL",
            Domain::Fitimage => "DIGSIGSERVER_FITIMAGE_URL",
            Domain::Rockchip => "DIGSIGSERVER_RK_URL",
        }
    }

    /// `DIGSIGSERVER_<DOMAIN>_TIMEOUT`: seconds a request may take.
    pub fn timeout_var(self) -> &'static str {
        match self {
            Domain::Tegra => "DIGSIGSERVER_TEGRA_TIMEOUT",
            Domain::Imx => "DIGSIGSERVER_IMX_TIMEOUT",
            Domain::Kmod => "DIGSIGSERVER_KMOD_TIMEOUT",
            Domain::Optee => "DIGSIGSERVER_OPTEE_TIMEOUT",
            Domain::Update => "DIGSIGSERVER_UPDATE_TIMEOUT",
            Domain::Fitimage => "DIGSIGSERVER_FITIMAGE_TIMEOUT",
            Domain::Rockchip => "DIGSIGSERVER_RK_TIMEOUT",
        }
    }

    /// Upstream's endpoint paths for this domain.
    pub fn paths(self) -> &'static [&'static str] {
        match self {
            Domain::Tegra => &[
                "/sign/tegra",
                "/sign/tegra/uefi",
                "/sign/tegra/ueficapsule",
                "/sign/tegra/ekb",
            ],
            Domain::Imx => &["/sign/imx"],
            Domain::Kmod => &["/sign/modules"],
            Domain::Optee => &["/sign/optee"],
            Domain::Update => &["/sign/mender", "/sign/swupdate"],
            Domain::Fitimage => &["/sign/fitimage"],
            Domain::Rockchip => &["/sign/rk", "/sign/rkoptee-tee", "/sign/rkoptee-ta"],
        }
    }

    /// Whether this build of digsig can serve the domain in-process (its
    /// service crate exists and is linked into the gateway). A built domain
    /// may still lack some of upstream's endpoints (see [`Domain::paths`]);
    /// those answer 501.
    pub fn is_built(self) -> bool {
        crate::registry::BuiltDomain::find(self).is_some()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
