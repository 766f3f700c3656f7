//! The kinds of signing keys, each a directory under a machine or distro.

use std::fmt;

/// A signing domain's key directory name, as upstream digsigserver lays keys out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignType {
    /// NVIDIA Jetson bootloader keys (`rsa_priv.pem`, optional `sbk.txt`).
    Tegra,
    /// NXP i.MX HAB keys (`imx-cst-keys.tar.gz`).
    Imx,
    /// Linux kernel module keys (`kernel-signkey.priv`, `kernel-signkey.x509`).
    Kmod,
    /// OP-TEE trusted application key (`optee-signing-key.pem`).
    Optee,
    /// Mender artifact key (`private.key`).
    Mender,
    /// SWUpdate sw-description keys (`rsa-private.key`, or `cms.cert` + `cms-private.key`).
    Swupdate,
    /// FIT image signing keys (later upstream).
    FitImage,
    /// UEFI binary signing keys (later upstream).
    Uefi,
    /// UEFI capsule signing keys (later upstream).
    UefiCapsule,
    /// Tegra encrypted key blob keys (later upstream).
    Ekb,
    /// Rockchip boot signing keys (later upstream).
    Rk,
    /// Rockchip OP-TEE signing keys (later upstream).
    RkOptee,
}

impl SignType {
    /// Every sign type, in upstream's order.
    pub const ALL: [SignType; 12] = [
        SignType::Tegra,
        SignType::Imx,
        SignType::Kmod,
        SignType::Optee,
        SignType::Mender,
        SignType::Swupdate,
        SignType::FitImage,
        SignType::Uefi,
        SignType::UefiCapsule,
        SignType::Ekb,
        SignType::Rk,
        SignType::RkOptee,
    ];

    /// The directory name under `<uri>/<machine-or-distro>/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            SignType::Tegra => "tegrasign",
            SignType::Imx => "imxsign",
            SignType::Kmod => "kmodsign",
            SignType::Optee => "opteesign",
            SignType::Mender => "mender",
            SignType::Swupdate => "swupdate",
            SignType::FitImage => "fitimagesign",
            SignType::Uefi => "uefisign",
            SignType::UefiCapsule => "ueficapsulesign",
            SignType::Ekb => "ekbsign",
            SignType::Rk => "rksign",
            SignType::RkOptee => "rkopteesign",
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}
