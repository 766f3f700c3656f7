//! `s3://` key stores: objects in an S3 (or S3-compatible) bucket.

use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use crate::{KeyFileName, KeyMaterial, KeyStoreError, Selector, SignType, MAX_KEY_OBJECT_BYTES};

/// How an `s3://` store is reached. The defaults suit production: the AWS
/// default credential chain, `AWS_ENDPOINT_URL` if set, and timeouts short
/// enough that an unreachable store fails a request in seconds, not minutes.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Endpoint of an S3-compatible store; overrides `AWS_ENDPOINT_URL`.
    /// Either one switches to path-style addressing.
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the default chain (tests, special setups).
    pub credentials: Option<aws_sdk_s3::config::Credentials>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one whole operation, retries included.
    pub operation_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            credentials: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(30),
        }
    }
}

/// An S3 client configured by `options`: the AWS default credential chain
/// (or fixed credentials), `AWS_ENDPOINT_URL` or `options.endpoint_url` with
/// path-style addressing, and `options`' timeouts. Key stores use it, and so
/// do services moving artifacts to and from S3 (with longer timeouts).
pub async fn s3_client(options: &S3Options) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(RegionProviderChain::default_provider().or_else("us-east-1"))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(options.connect_timeout)
                .operation_attempt_timeout(options.operation_timeout / 2)
                .operation_timeout(options.operation_timeout)
                .build(),
        );
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &options.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    let shared = loader.load().await;
    // S3-compatible stores (MinIO, Ceph, moto) rarely do virtual-host buckets.
    let path_style = shared.endpoint_url().is_some();
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(path_style)
        .build();
    Client::from_conf(config)
}

#[derive(Debug, Clone)]
pub(crate) struct S3Store {
    client: Client,
    bucket: String,
    /// Key prefix without leading or trailing slashes ("" for the bucket root).
    prefix: String,
}

impl S3Store {
    pub(crate) async fn new(bucket: &str, prefix: &str, options: &S3Options) -> Self {
        Self {
            client: s3_client(options).await,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    pub(crate) fn location(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(part);
        }
        key
    }

    pub(crate) async fn fetch(
        &self,
        selector: &Selector,
        signtype: SignType,
        file: &KeyFileName,
    ) -> Result<Option<KeyMaterial>, KeyStoreError> {
        let key = self.key(&[selector.as_str(), signtype.dir_name(), file.as_str()]);
        let location = format!("s3://{}/{key}", self.bucket);
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(err) if err.code() == Some("NoSuchKey") => {
                // Tell "no keys for this machine at all" from "one file missing".
                return if self.has_any(selector, signtype).await? {
                    Ok(None)
                } else {
                    Err(KeyStoreError::NoKeys {
                        selector: selector.to_string(),
                        signtype,
                        location: self.location(),
                    })
                };
            }
            Err(err) => return Err(self.classify(err, &location)),
        };
        if object.content_length().unwrap_or(0) as u64 > MAX_KEY_OBJECT_BYTES {
            return Err(KeyStoreError::TooLarge {
                location,
                limit: MAX_KEY_OBJECT_BYTES,
            });
        }
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| KeyStoreError::Unreachable {
                location: location.clone(),
                detail: e.to_string(),
            })?;
        Ok(Some(KeyMaterial::new(file.as_str(), body.to_vec())))
    }

    async fn has_any(
        &self,
        selector: &Selector,
        signtype: SignType,
    ) -> Result<bool, KeyStoreError> {
        let prefix = self.key(&[selector.as_str(), signtype.dir_name(), ""]);
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.classify(e, &format!("s3://{}/{prefix}", self.bucket)))?;
        Ok(listed.key_count().unwrap_or(0) > 0 || !listed.contents().is_empty())
    }

    pub(crate) async fn check_reachable(&self) -> Result<(), KeyStoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify(e, &self.location()))
    }

    fn classify<E>(&self, err: SdkError<E, HttpResponse>, location: &str) -> KeyStoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let location = location.to_string();
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                KeyStoreError::Unreachable {
                    location,
                    detail: DisplayErrorContext(&err).to_string(),
                }
            }
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("");
                let status = service.raw().status().as_u16();
                match code {
                    "NoSuchBucket" | "NotFound" => KeyStoreError::StoreMissing {
                        location: format!("s3://{}", self.bucket),
                    },
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "InvalidClientTokenId" => KeyStoreError::AccessDenied {
                        location,
                        detail: code.to_string(),
                    },
                    // HEAD responses carry no error code, only a status.
                    "" if status == 404 => KeyStoreError::StoreMissing {
                        location: format!("s3://{}", self.bucket),
                    },
                    "" if status == 403 => KeyStoreError::AccessDenied {
                        location,
                        detail: "HTTP 403".into(),
                    },
                    _ => KeyStoreError::Read {
                        location,
                        detail: DisplayErrorContext(&err).to_string(),
                    },
                }
            }
            _ => KeyStoreError::Read {
                location,
                detail: DisplayErrorContext(&err).to_string(),
            },
        }
    }
}
