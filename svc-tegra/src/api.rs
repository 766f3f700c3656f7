//! `POST /sign/tegra`, wire-compatible with upstream digsigserver.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keystore::{KeyFileName, KeyStore, SignType};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{Multipart, OpenApi, Tags};
use servicekit::archive::{extract_tar_gz, pack_tar_gz};
use servicekit::form_fields::{SelectorField, TextField};
use servicekit::tarball_reply::{SignedTarball, REPLY_GZIP_LEVEL, REPLY_NAME};
use servicekit::{ArchiveLimits, ServiceError, WorkDir};

use crate::bsp::{BspInstalls, TegraSoc, ToolSet};
use crate::flashvars::bsp_version_file;
use crate::helper_args::KeyPaths;
use crate::signing::SigningJob;
use crate::tool_setup::prepare_tools;
use crate::upload::prepare_package;

/// The PKC signing key (required).
pub const PKC_KEY: &str = "rsa_priv.pem";
/// The secure boot key (optional).
pub const SBK_KEY: &str = "sbk.txt";
/// The user key (optional; R32 only).
pub const USER_KEY: &str = "user_key.txt";

/// Form fields of a Jetson signing request.
#[derive(Debug, Multipart)]
pub struct SignTegraForm {
    /// Machine name; the keys are `<keyfile-uri>/<machine>/tegrasign/`
    /// `rsa_priv.pem` (required), `sbk.txt` and `user_key.txt` (optional).
    /// A name starting with `-` is refused.
    machine: SelectorField,
    /// The SoC family (tegra194 signs with the tegra186 BSP tree).
    soctype: TegraSoc,
    /// The L4T BSP version, three numbers (e.g. `35.5.0`): one installed as
    /// `<DIGSIGSERVER_L4T_TOOLS_BASE>/L4T-<version>-<soc>/Linux_for_Tegra`;
    /// any other is refused with the list of installed ones.
    bspversion: TextField,
    /// gzip tarball of the flash package (as meta-tegra's tegraflash
    /// package, without the BSP tools) with a `MANIFEST` of `KEY=VALUE`
    /// lines. Accepted keys: `DTBFILE`, `LNXFILE`, `ODMDATA`, `EMMC_BCTS`,
    /// `boardcfg`, `BOARDID`, `FAB`, `BOARDSKU`, `BOARDREV`, `CHIPREV`,
    /// `CHIP_SKU`, `fuselevel`, `localbootfile`, `BUPGENSPECS`, `SIGNFILES`,
    /// `BUPGEN`; any other key is refused (400), because upstream made each
    /// one an environment variable of the signing scripts. File names must
    /// be files inside the package; Python modules, `.func` files and BSP
    /// tools in the package are refused; `flashvars` is read as data.
    artifact: Upload,
}

#[derive(Tags)]
enum ApiTags {
    /// NVIDIA Jetson bootloader signing with the L4T BSP's tools.
    #[oai(rename = "Jetson")]
    Tegra,
}

/// The Jetson signing API.
pub struct TegraApi {
    keystore: KeyStore,
    workdir_base: PathBuf,
    limits: ArchiveLimits,
    bsps: BspInstalls,
    timeout: Duration,
}

impl TegraApi {
    /// An API signing with keys from `keystore` and the BSPs in `bsps`,
    /// working under `workdir_base`; each helper run may take `timeout`.
    pub fn new(
        keystore: KeyStore,
        workdir_base: PathBuf,
        limits: ArchiveLimits,
        bsps: BspInstalls,
        timeout: Duration,
    ) -> Self {
        Self {
            keystore,
            workdir_base,
            limits,
            bsps,
            timeout,
        }
    }
}

#[OpenApi]
impl TegraApi {
    /// Sign a Jetson flash package, bootloader update payloads or files.
    ///
    /// Unpacks the package into a private work dir, checks it (see
    /// `artifact`), copies the BSP's tools beside it and runs, as the
    /// MANIFEST asks:
    /// - `BUPGENSPECS=<spec> ...` (each `fab=..;boardsku=..;boardrev=..;
    ///   boardid=..;chiprev=..;chipsku=..;bup_type=bl|kernel`): one
    ///   `<soctype>-flash-helper --bup` run per spec; returns the
    ///   `payloads*` files;
    /// - `SIGNFILES=<file> ...`: `tegra-signimage-helper --chip 0xNN -u
    ///   rsa_priv.pem <files>`; returns each `<file>.sig`;
    /// - otherwise `<soctype>-flash-helper --no-flash -u rsa_priv.pem
    ///   [-v sbk.txt] [--user_key user_key.txt] flash.xml.in <DTBFILE> <cfg>
    ///   <ODMDATA> [<boardcfg>] <LNXFILE>`; returns what the helper made,
    ///   including `flashcmd.txt` (R35+: and `flash.idx`), without the
    ///   inputs, the tools or any key.
    ///
    /// The reply is `signed-artifact.tar.gz` with `./` names. A MANIFEST or
    /// `flashvars` that is refused, or an unknown `bspversion`, is a 400; a
    /// helper that fails is a 422 with the end of its output; a helper that
    /// exits 0 without its outputs is a 500 naming them. The work dir, and
    /// the key copies (overwritten), are removed afterwards.
    #[oai(path = "/sign/tegra", method = "post", tag = "ApiTags::Tegra")]
    async fn sign_tegra(&self, form: SignTegraForm) -> Result<SignedTarball, ServiceError> {
        self.sign(form).await
    }
}

impl TegraApi {
    async fn sign(&self, form: SignTegraForm) -> Result<SignedTarball, ServiceError> {
        let started = std::time::Instant::now();
        let machine = form.machine.0;
        let (soc, version, bsp) = self
            .bsps
            .locate(form.soctype.name(), form.bspversion.0.trim())?;
        let tools = ToolSet::for_bsp(soc, version);
        if form.artifact.size() == 0 {
            return Err(servicekit::ArchiveError::Empty.into());
        }

        let pkc = self
            .keystore
            .fetch(&machine, SignType::Tegra, &KeyFileName::parse(PKC_KEY)?)
            .await?;
        let sbk = self
            .keystore
            .fetch_optional(&machine, SignType::Tegra, &KeyFileName::parse(SBK_KEY)?)
            .await?;
        let user_key = self
            .keystore
            .fetch_optional(&machine, SignType::Tegra, &KeyFileName::parse(USER_KEY)?)
            .await?;

        let work = WorkDir::for_request(&self.workdir_base)?;
        let package = work.path().join("package");
        // The keys sit beside the package, never in it: nothing the helper
        // leaves in the package can be a key. Dropping them overwrites them.
        let key_file = |key: &keystore::KeyMaterial| {
            key.to_temp_file(work.path())
                .map_err(|e| ServiceError::internal_from("writing the key files", e))
        };
        let pkc_file = key_file(&pkc)?;
        let sbk_file = sbk.as_ref().map(key_file).transpose()?;
        let user_key_file = user_key.as_ref().map(key_file).transpose()?;
        drop((pkc, sbk, user_key));
        let path_text = |f: &keystore::TempKeyFile| f.path().display().to_string();
        let keys = KeyPaths {
            pkc: path_text(&pkc_file),
            sbk: sbk_file.as_ref().map(path_text),
            user_key: user_key_file.as_ref().map(path_text),
        };

        let mut input = form.artifact.into_file().into_std().await;
        let audit = servicekit::audit::current_trail();
        let manifest = {
            let (work, package, bsp, tools) = (
                Arc::clone(&work),
                package.clone(),
                bsp.clone(),
                tools.clone(),
            );
            let limits = self.limits;
            tokio::task::spawn_blocking(move || {
                let _held = work;
                if let Some(trail) = audit {
                    trail.add_file("artifact", &mut input).map_err(|e| {
                        ServiceError::internal_from("reading the upload for the audit log", e)
                    })?;
                }
                std::fs::create_dir(&package).map_err(|e| {
                    ServiceError::internal_from("creating the package directory", e)
                })?;
                extract_tar_gz(input, &package, &limits)?;
                let manifest = prepare_package(&package, soc, version, &tools)?;
                prepare_tools(&bsp, &package, &tools)?;
                std::fs::write(
                    package.join("_tools/bootloader/bsp_version"),
                    bsp_version_file(version),
                )
                .map_err(|e| ServiceError::internal_from("writing bsp_version", e))?;
                Ok::<_, ServiceError>(manifest)
            })
            .await
            .map_err(ServiceError::internal)??
        };

        let job = SigningJob {
            soc,
            version,
            bsp,
            tools,
            machine: machine.to_string(),
            package: package.clone(),
            keys,
            timeout: self.timeout,
            workdir: work.path().to_path_buf(),
        };
        let mode = job.run(&manifest).await?;
        drop((pkc_file, sbk_file, user_key_file));

        {
            let (work, package) = (Arc::clone(&work), package.clone());
            tokio::task::spawn_blocking(move || {
                let out = File::create(work.path().join(REPLY_NAME))
                    .map_err(|e| ServiceError::internal_from("creating the reply file", e))?;
                pack_tar_gz(
                    &package,
                    BufWriter::with_capacity(256 * 1024, out),
                    REPLY_GZIP_LEVEL,
                )
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .map_err(|e| ServiceError::internal_from("writing the signed tarball", e))?;
                Ok::<_, ServiceError>(())
            })
            .await
            .map_err(ServiceError::internal)??;
        }
        let body = servicekit::workdir::stream_file(work, REPLY_NAME)
            .await
            .map_err(|e| ServiceError::internal_from("reading the reply file", e))?;
        tracing::info!(
            machine = %machine,
            soctype = soc.name(),
            bspversion = %version,
            mode = mode.name(),
            signing_ms = started.elapsed().as_millis() as u64,
            "signed tegra package"
        );
        Ok(SignedTarball::Signed(
            Binary(body),
            format!("attachment; filename=\"{REPLY_NAME}\""),
        ))
    }
}
