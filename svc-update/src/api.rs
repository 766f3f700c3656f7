//! `POST /sign/swupdate` and `POST /sign/mender`, wire-compatible with
//! upstream digsigserver.

use keystore::{KeyFileName, KeyMaterial, KeyStore, Selector, SignType};
use poem_openapi::payload::{Binary, PlainText};
use poem_openapi::{ApiResponse, Enum, Multipart, OpenApi, Tags};
use servicekit::form_fields::{SelectorField, TextField};
use servicekit::upload::SpooledUpload;
use servicekit::ServiceError;

use crate::artifact_uri::ALLOWED_URIS_VAR;
use crate::mender::{MenderConfig, MenderSigner};
use crate::swupdate::{CmsSigner, RsaSigner};

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
    distro: SelectorField,
    /// `RSA` (default) or `CMS`.
    #[oai(default = "default_method")]
    method: SwupdateMethod,
    /// The `sw-description` file to sign.
    #[oai(rename = "sw-description")]
    sw_description: SpooledUpload,
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

/// Form fields of a Mender artifact signing request. The artifact itself is
/// not uploaded: it is read from, and written back to, `artifact-uri`.
#[derive(Debug, Multipart)]
pub struct SignMenderForm {
    /// Distro name; the key is `<keyfile-uri>/<distro>/mender/private.key`.
    distro: SelectorField,
    /// `file:///path/to/image.mender` or `s3://bucket/key`, inside one of
    /// the locations the server allows (`DIGSIGSERVER_MENDER_ALLOWED_URIS`).
    #[oai(rename = "artifact-uri")]
    artifact_uri: TextField,
}

/// Replies of `POST /sign/mender`.
#[derive(ApiResponse)]
pub enum SignMenderResponse {
    /// The artifact at `artifact-uri` has been replaced by its signed copy.
    #[oai(status = 200)]
    Signed(PlainText<&'static str>),
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
    mender: MenderSigner,
}

impl UpdateApi {
    /// An API signing with keys from `keystore`, Mender artifacts as
    /// `mender` allows.
    pub fn new(keystore: KeyStore, mender: MenderConfig) -> Self {
        if mender.allowed.is_empty() {
            tracing::info!(
                "Mender signing is off (403) until {ALLOWED_URIS_VAR} lists the file:// directories and s3:// buckets artifacts may be signed in"
            );
        } else {
            tracing::info!(allowed = %mender.allowed, tool = %mender.tool.path().display(), "Mender signing enabled");
        }
        Self {
            keystore,
            mender: MenderSigner::new(mender),
        }
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
        let distro = form.distro.0;
        if form.sw_description.size() > MAX_SW_DESCRIPTION as u64 {
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
        servicekit::audit::record_bytes("sw-description", &data);
        let misconfigured = |e: servicekit::private_key::UnusableKey| e.of(&distro);
        let signature = match form.method {
            SwupdateMethod::Rsa => {
                let signer = self
                    .keystore
                    .parsed(&distro, SignType::Swupdate, "swupdate/rsa", || async {
                        let key = self
                            .key(&distro, SignType::Swupdate, "rsa-private.key")
                            .await?;
                        RsaSigner::new(key.bytes())
                            .map_err(|e| ServiceError::from(misconfigured(e)))
                    })
                    .await?;
                signer
                    .sign(&data)
                    .map_err(|e| ServiceError::internal_from("RSA signing failed", e))?
            }
            SwupdateMethod::Cms => {
                let signer = self
                    .keystore
                    .parsed(&distro, SignType::Swupdate, "swupdate/cms", || async {
                        let cert = self.key(&distro, SignType::Swupdate, "cms.cert").await?;
                        let key = self
                            .key(&distro, SignType::Swupdate, "cms-private.key")
                            .await?;
                        CmsSigner::new(cert.bytes(), key.bytes())
                            .map_err(|e| ServiceError::from(misconfigured(e)))
                    })
                    .await?;
                signer.sign(&data).map_err(misconfigured)?
            }
        };
        tracing::info!(distro = %distro, method = ?form.method, bytes = data.len(), "signed sw-description");
        Ok(SignSwupdateResponse::Signed(
            Binary(signature),
            "attachment; filename=\"sw-description.sig\"".into(),
        ))
    }

    /// Sign a Mender artifact in place.
    ///
    /// The server reads the artifact at `artifact-uri`, signs it as
    /// `mender-artifact sign` does (natively for artifacts shaped as that
    /// tool writes them, byte for byte with RSA keys; with the tool itself
    /// for any other file) with the distro's
    /// `mender/private.key` (RSA or ECDSA P-256; PKCS#8 keys are accepted
    /// too), and replaces it with the signed
    /// copy, atomically: a rename beside the file for `file://`, one complete
    /// upload for `s3://`. On any error the original is left as it was.
    /// Only URIs inside `DIGSIGSERVER_MENDER_ALLOWED_URIS` are accepted (403
    /// otherwise); an artifact that is already signed, or is not a Mender
    /// artifact, is a 422 (with `mender-artifact`'s message for the latter).
    #[oai(
        path = "/sign/mender",
        method = "post",
        tag = "ApiTags::UpdatePackages"
    )]
    async fn sign_mender(&self, form: SignMenderForm) -> Result<SignMenderResponse, ServiceError> {
        let distro = form.distro.0;
        let target = self.mender.authorize(&form.artifact_uri.0).await?;
        let key = self.key(&distro, SignType::Mender, "private.key").await?;
        self.mender.sign(&target, &key).await?;
        Ok(SignMenderResponse::Signed(PlainText("Signing successful")))
    }
}

impl UpdateApi {
    /// One of the distro's key files of `signtype`, fetched for this request.
    async fn key(
        &self,
        distro: &Selector,
        signtype: SignType,
        file: &'static str,
    ) -> Result<KeyMaterial, ServiceError> {
        let name = KeyFileName::parse(file).expect("a valid constant name");
        Ok(self.keystore.fetch(distro, signtype, &name).await?)
    }
}
