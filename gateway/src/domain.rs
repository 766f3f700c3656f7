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
}

impl Domain {
    /// Every domain, built or not.
    pub const ALL: [Domain; 5] = [
        Domain::Tegra,
        Domain::Imx,
        Domain::Kmod,
        Domain::Optee,
        Domain::Update,
    ];

    /// Lower-case name, as in logs, `/ready` and `svc-<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Tegra => "tegra",
            Domain::Imx => "imx",
            Domain::Kmod => "kmod",
            Domain::Optee => "optee",
            Domain::Update => "update",
        }
    }

    /// The upper-case part of its `DIGSIGSERVER_<DOMAIN>_URL` variables.
    pub fn env_name(self) -> &'static str {
        match self {
            Domain::Tegra => "TEGRA",
            Domain::Imx => "IMX",
            Domain::Kmod => "KMOD",
            Domain::Optee => "OPTEE",
            Domain::Update => "UPDATE",
        }
    }

    /// Upstream's endpoint paths for this domain.
    pub fn paths(self) -> &'static [&'static str] {
        match self {
            Domain::Tegra => &["/sign/tegra"],
            Domain::Imx => &["/sign/imx"],
            Domain::Kmod => &["/sign/modules"],
            Domain::Optee => &["/sign/optee"],
            Domain::Update => &["/sign/mender", "/sign/swupdate"],
        }
    }

    /// Whether this build of digsig can serve the domain in-process (its
    /// service crate exists and is linked into the gateway). A built domain
    /// may still lack some of upstream's endpoints (see [`Domain::paths`]);
    /// those answer 501.
    pub fn is_built(self) -> bool {
        matches!(self, Domain::Kmod | Domain::Update)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
