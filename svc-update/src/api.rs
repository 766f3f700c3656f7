//! `POST /sign/swupdate`, wire-compatible with upstream digsigserver.

use keystore::{KeyFileName, KeyMaterial, KeyStore, Selector, SignType};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Enum, Multipart, OpenApi, Tags};
use servicekit::ServiceError;

use crate::swupdate::{sign_cms, sign_rsa};

/// A sw-description is a small text file; anything near this is a mistake.
pub const MAX_SW_DESCRIPTION: usize = 16 << 20;

/// How to sign, as SWUpdate's `CONFIG_SIGALG_*` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SwupdateMethod {
    /// RSA PKCS#1 v1.5 over SHA-256 (`rsa-private.key`).
    #[oai(rename = "RSA")]
    Rsa,
    /// CMS detached SignedData in DER (`cms.cert`, `cms-private.key`).
    #[oai(rename = "CMS")]
    Cms,
}

fn default_method() -> SwupdateMethod {
    SwupdateMethod::Rsa
}

/// Form fields of an sw-description signing request.
#[derive(Debug, Multipart)]
pub struct SignSwupdateForm {
    /// Distro name; keys come from `<keyfile-uri>/<distro>/swupdate/`.
    distro: String,
    /// `RSA` (default) or `CMS`.
    #[oai(default = "default_method")]
    method: SwupdateMethod,
    /// The `sw-description` file to sign.
    #[oai(rename = "sw-description")]
    sw_description: Upload,
}

/// Replies of `POST /sign/swupdate`.
#[derive(ApiResponse)]
pub enum SignSwupdateResponse {
    /// The signature (`sw-description.sig`): raw RSA, or DER CMS.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Signed(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

#[derive(Tags)]
enum ApiTags {
    /// SWUpdate and Mender update packages (`swupdate-sign` and `mendersign` classes).
    #[oai(rename = "update packages")]
    UpdatePackages,
}

/// The update package signing API.
pub struct UpdateApi {
    keystore: KeyStore,
}

impl UpdateApi {
    /// An API signing with keys from `keystore`.
    pub fn new(keystore: KeyStore) -> Self {
        Self { keystore }
    }
}

#[OpenApi]
impl UpdateApi {
    /// Sign an SWUpdate sw-description.
    ///
    /// `RSA` signs with the distro's `swupdate/rsa-private.key` exactly as
    /// `openssl dgst -sha256 -sign` does (byte-identical); `CMS` makes a
    /// detached DER CMS signature with `swupdate/cms.cert` and
    /// `cms-private.key` as `openssl cms -sign -binary -nosmimecap -outform DER`
    /// does. The reply is the signature, to ship as `sw-description.sig`.
    #[oai(
        path = "/sign/swupdate",
        method = "post",
        tag = "ApiTags::UpdatePackages"
    )]
    async fn sign_swupdate(
        &self,
        form: SignSwupdateForm,
    ) -> Result<SignSwupdateResponse, ServiceError> {
        let distro = Selector::parse(&form.distro)?;
        if form.sw_description.size() > MAX_SW_DESCRIPTION {
            return Err(ServiceError::TooLarge(format!(
                "sw-description is {} bytes; the limit is {MAX_SW_DESCRIPTION} (send the sw-description file, not the .swu)",
                form.sw_description.size()
            )));
        }
        let data = form.sw_description.into_vec().await.map_err(|e| {
            ServiceError::BadRequest(format!("sw-description could not be read: {e}"))
        })?;
        if data.is_empty() {
            return Err(ServiceError::BadRequest(
                "sw-description is empty; send the file's contents".into(),
            ));
        }
        let misconfigured = |e: crate::swupdate::KeyError| {
            ServiceError::Misconfigured(format!("distro '{distro}' swupdate keys: {e}"))
        };
        let signature = match form.method {
            SwupdateMethod::Rsa => {
                let key = self.key(&distro, "rsa-private.key").await?;
                sign_rsa(key.bytes(), &data).map_err(misconfigured)?
            }
            SwupdateMethod::Cms => {
                let cert = self.key(&distro, "cms.cert").await?;
                let key = self.key(&distro, "cms-private.key").await?;
                sign_cms(cert.bytes(), key.bytes(), &data).map_err(misconfigured)?
            }
        };
        tracing::info!(distro = %distro, method = ?form.method, bytes = data.len(), "signed sw-description");
        Ok(SignSwupdateResponse::Signed(
            Binary(signature),
            "attachment; filename=\"sw-description.sig\"".into(),
        ))
    }
}

impl UpdateApi {
    /// One of the distro's `swupdate` key files, fetched for this request.
    async fn key(
        &self,
        distro: &Selector,
        file: &'static str,
    ) -> Result<KeyMaterial, ServiceError> {
        let name = KeyFileName::parse(file).expect("a valid constant name");
        Ok(self
            .keystore
            .fetch(distro, SignType::Swupdate, &name)
            .await?)
    }
}
