//! Streaming a request to the service that serves its domain, and its reply
//! back.
//!
//! Neither body is buffered: the client's upload is forwarded chunk by chunk
//! as it arrives and the service's reply likewise, so memory stays flat for
//! multi-GB artifacts. If the client goes away, hyper drops this endpoint's
//! future, which drops the upstream request: the service sees its connection
//! close and removes its work dir.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use poem::http::header::{self, HeaderMap, HeaderName};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use reqwest::Url;
use servicekit::ServiceError;

use crate::domain::Domain;

/// How long connecting to a service may take: a service that is down must
/// give the client a 503 at once, not after the signing timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Names a PEM file of CA certificates that routed `https://` services'
/// certificates are checked against, besides the system's.
pub const CA_FILE_VAR: &str = "DIGSIGSERVER_SERVICE_CA_FILE";

/// How the gateway checks routed services' TLS certificates.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// `DIGSIGSERVER_SERVICE_CA_FILE`: extra trusted CAs (PEM).
    pub ca_file: Option<std::path::PathBuf>,
}

/// A domain's service: where it is and how long its requests may take.
#[derive(Debug)]
pub struct Upstream {
    domain: Domain,
    base: Url,
    timeout: Duration,
    client: reqwest::Client,
}

impl Upstream {
    /// The service for `domain` at `base`, sharing `client`'s connections.
    pub fn new(domain: Domain, base: Url, timeout: Duration, client: reqwest::Client) -> Self {
        Self {
            domain,
            base,
            timeout,
            client,
        }
    }

    /// The HTTP client every upstream shares. `https://` services are
    /// checked against the system's CAs plus `tls.ca_file`, if set.
    pub fn client(tls: &UpstreamTls) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &tls.ca_file {
            let bad = |e: &dyn std::fmt::Display| {
                format!(
                    "{CA_FILE_VAR}={}: cannot use it as a CA bundle: {e}",
                    path.display()
                )
            };
            let pem = std::fs::read(path).map_err(|e| bad(&e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"no PEM certificate in it"));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .connect_timeout(CONNECT_TIMEOUT)
            // A restarted service leaves dead pooled connections behind;
            // do not keep idle ones long enough to trip over them.
            .pool_idle_timeout(Duration::from_secs(15))
            // Replies (e.g. gzip tarballs) must reach the client as sent.
            .no_gzip()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for routed services: {e}"))
    }

    /// The domain this service serves.
    pub fn domain(&self) -> Domain {
        self.domain
    }

    /// `base` joined with `path` (and `query`): a base with a path prefix,
    /// e.g. `http://host/digsig/`, keeps it.
    pub fn url(&self, path: &str, query: Option<&str>) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url.set_query(query);
        url
    }

    /// Base URL, as configured.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn unreachable(&self, err: &reqwest::Error) -> ServiceError {
        ServiceError::Unavailable(format!(
            "the {} service at {} is not reachable ({}); check that it is running, or unset {} to serve the domain in the gateway",
            self.domain,
            self.base,
            root_cause(err),
            self.domain.url_var()
        ))
    }
}

/// The endpoint forwarding one domain's requests to its service.
#[derive(Clone)]
pub struct ProxyEndpoint {
    upstream: Arc<Upstream>,
}

impl ProxyEndpoint {
    /// Forwards to `upstream`.
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }

    async fn forward(&self, mut req: Request) -> Result<Response, ServiceError> {
        let up = &self.upstream;
        let url = up.url(req.uri().path(), req.uri().query());
        let body = req.take_body().into_bytes_stream();
        let mut headers = forwardable(req.headers());
        // The caller the access guard authenticated, with the shared secret
        // that makes the service believe it.
        if let Some(identity) = req
            .extensions()
            .get::<servicekit::access::ForwardIdentity>()
        {
            for (name, value) in &identity.0 {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Some(peer) = req.remote_addr().as_socket_addr() {
            if let Ok(value) = peer.ip().to_string().parse() {
                headers.append(HeaderName::from_static("x-forwarded-for"), value);
            }
        }
        let started = std::time::Instant::now();
        let reply = up
            .client
            .request(req.method().clone(), url)
            .headers(headers)
            .body(reqwest::Body::wrap_stream(body))
            .timeout(up.timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    up.unreachable(&e)
                } else if e.is_timeout() {
                    timed_out(up)
                } else {
                    ServiceError::BadGateway(format!(
                        "the {} service at {} failed to answer: {}",
                        up.domain,
                        up.base,
                        root_cause(&e)
                    ))
                }
            })?;
        tracing::debug!(
            domain = %up.domain,
            status = reply.status().as_u16(),
            upstream_ms = started.elapsed().as_millis() as u64,
            "service answered"
        );
        let mut resp = Response::builder().status(reply.status());
        for (name, value) in forwardable(reply.headers()).iter() {
            resp = resp.header(name, value);
        }
        // The reply's body streams on after this returns; reqwest's timeout
        // still covers it, and an error cuts the connection so the client
        // sees a truncated transfer rather than a short "successful" file.
        let domain = up.domain;
        let body = reply.bytes_stream().map_err(move |e| {
            tracing::warn!(domain = %domain, "reply from service broke off: {}", root_cause(&e));
            std::io::Error::other(e)
        });
        Ok(resp.body(Body::from_bytes_stream(body)))
    }
}

impl Endpoint for ProxyEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(match self.forward(req).await {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        })
    }
}

fn timed_out(up: &Upstream) -> ServiceError {
    ServiceError::GatewayTimeout(format!(
        "the {} service took longer than {} s; raise {} if such requests are expected",
        up.domain,
        up.timeout.as_secs(),
        up.domain.timeout_var()
    ))
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus
/// `Host`, which must name the service, not the gateway.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let hop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "host"
        ) || named_by_connection.iter().any(|n| n == name.as_str());
        if !hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The innermost cause ("Connection refused (os error 111)"), which is what
/// an operator needs; reqwest's outer message only says the request failed.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "gateway:9999".parse().unwrap());
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=x".parse().unwrap(),
        );
        h.insert(header::CONTENT_LENGTH, "42".parse().unwrap());
        h.insert("x-request-id", "abc".parse().unwrap());
        let out = forwardable(&h);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-length", "content-type", "x-request-id"]);
    }

    #[test]
    fn a_base_path_prefix_is_kept() {
        let client = Upstream::client(&UpstreamTls::default()).unwrap();
        let up = |base: &str| {
            Upstream::new(
                Domain::Kmod,
                Url::parse(base).unwrap(),
                DEFAULT,
                client.clone(),
            )
        };
        const DEFAULT: Duration = Duration::from_secs(1);
        assert_eq!(
            up("http://svc:8080").url("/sign/modules", None).as_str(),
            "http://svc:8080/sign/modules"
        );
        assert_eq!(
            up("http://svc:8080/digsig/")
                .url("/ready", Some("x=1"))
                .as_str(),
            "http://svc:8080/digsig/ready?x=1"
        );
    }
}
