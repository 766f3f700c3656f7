//! digsig NVIDIA Jetson (tegra) bootloader signing (`POST /sign/tegra`).
//!
//! Work in progress (issue 17): not yet served; the gateway still answers
//! 501 for `/sign/tegra`. What exists:
//!
//! - [`manifest`]: the upload's `MANIFEST`, read into typed settings: only
//!   the keys the Yocto classes write are accepted, each value checked, so
//!   nothing from an upload names an environment variable or a path outside
//!   the upload.
//! - [`bsp`]: where an L4T BSP is, and which of its files a run needs, by
//!   BSP version and SoC (upstream's per-version sets).
//! - [`helper_args`]: the flash and signimage helpers' command lines, as
//!   upstream builds them, with its known bugs fixed.
//! - [`tool_setup`]: the BSP's tools copied into a run's work dir, R32's
//!   python2 scripts wrapped, the links made.
//!
//! Still to come: the request pipeline (keys, extraction, the three modes,
//! what comes back), the stand-in BSP tests, the image and compose entry.
#![deny(missing_docs)]

pub mod bsp;
pub mod helper_args;
pub mod manifest;
pub mod tool_setup;
