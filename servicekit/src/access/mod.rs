//! Who may ask for signatures, for the gateway and every service.
//!
//! - [`rules`]: the access file (`DIGSIGSERVER_ACCESS_FILE`): clients, the
//!   SHA-256 of their tokens, and their `allow` rules.
//! - [`credentials`]: the token a request presents (Bearer, or Basic with
//!   the token as the password).
//! - [`sources`]: `DIGSIGSERVER_ALLOWED_SOURCES` and
//!   `DIGSIGSERVER_TRUSTED_PROXIES`.
//! - [`guard`]: the HTTP layer that authenticates every `/sign/*` request
//!   and runs its handler on behalf of the caller.
//!
//! Authentication happens at the door (the gateway, or a service run on its
//! own); authorization where a key is fetched ([`keystore::access`]): a key
//! store that requires grants fetches a key only for a caller allowed the
//! endpoint and machine/distro. The gateway streams multipart bodies to
//! routed services unparsed, so it passes the caller on to them in headers
//! that a service believes only with the shared `DIGSIGSERVER_INTERNAL_TOKEN`.

pub mod credentials;
pub mod guard;
pub mod rules;
pub mod sources;

use std::sync::Arc;

use keystore::access::Grant;
use keystore::KeyStore;
use poem::http::{HeaderName, HeaderValue};
use zeroize::Zeroizing;

use crate::config::{ConfigError, Settings};
pub use guard::Guarded;
use rules::AccessFile;
use sources::Networks;

/// Names the access file.
pub const ACCESS_FILE_VAR: &str = "DIGSIGSERVER_ACCESS_FILE";
/// Names the secret the gateway and routed services share.
pub const INTERNAL_TOKEN_VAR: &str = "DIGSIGSERVER_INTERNAL_TOKEN";
/// Names the networks signing requests may come from.
pub const ALLOWED_SOURCES_VAR: &str = "DIGSIGSERVER_ALLOWED_SOURCES";
/// Names the proxies whose `X-Forwarded-For` is believed.
pub const TRUSTED_PROXIES_VAR: &str = "DIGSIGSERVER_TRUSTED_PROXIES";

/// The gateway's word to a routed service: the shared secret.
pub const INTERNAL_TOKEN_HEADER: &str = "x-digsig-internal-token";
/// The gateway's word to a routed service: the client's name.
pub const CLIENT_HEADER: &str = "x-digsig-client";
/// The gateway's word to a routed service: the client's rules.
pub const ALLOW_HEADER: &str = "x-digsig-allow";

/// The access settings of one server.
#[derive(Clone, Default)]
pub struct AccessControl {
    file: Option<Arc<AccessFile>>,
    internal_token: Option<Arc<Zeroizing<String>>>,
    allowed_sources: Option<Networks>,
    trusted_proxies: Networks,
    at_gateway: bool,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("file", &self.file.is_some())
            .field(
                "internal_token",
                &self.internal_token.as_ref().map(|_| "<set>"),
            )
            .field("allowed_sources", &self.allowed_sources)
            .finish()
    }
}

fn config_error(name: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl AccessControl {
    /// Reads the access settings. A broken access file stops the server at
    /// start, saying what is wrong; later, a broken file keeps the rules.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let set = |name| settings.get(name).filter(|v: &String| !v.trim().is_empty());
        let file = match set(ACCESS_FILE_VAR) {
            None => None,
            Some(path) => {
                let file = AccessFile::load(path.trim())
                    .map_err(|e| config_error(ACCESS_FILE_VAR, &path, e))?;
                Some(Arc::new(file))
            }
        };
        let internal_token = match set(INTERNAL_TOKEN_VAR) {
            None => None,
            Some(token) if token.len() < 16 => {
                return Err(config_error(
                    INTERNAL_TOKEN_VAR,
                    "<hidden>",
                    "use at least 16 characters (e.g. openssl rand -hex 32)".into(),
                ))
            }
            Some(token) => Some(Arc::new(Zeroizing::new(token))),
        };
        let networks = |name: &'static str| -> Result<Option<Networks>, ConfigError> {
            set(name)
                .map(|v| Networks::parse(&v).map_err(|e| config_error(name, &v, e)))
                .transpose()
        };
        let access = Self {
            file,
            internal_token,
            allowed_sources: networks(ALLOWED_SOURCES_VAR)?,
            trusted_proxies: networks(TRUSTED_PROXIES_VAR)?.unwrap_or_default(),
            at_gateway: false,
        };
        access.reload_on_sighup();
        Ok(access)
    }

    /// For the gateway, the front door: it authenticates clients by token
    /// only, and never believes identity headers (it sends them).
    pub fn at_gateway(mut self) -> Self {
        self.at_gateway = true;
        self
    }

    /// Whether signing needs an authenticated caller here.
    pub fn requires_grants(&self) -> bool {
        self.file.is_some() || self.internal_token.is_some()
    }

    /// Whether an access file is configured.
    pub fn has_access_file(&self) -> bool {
        self.file.is_some()
    }

    /// Whether the internal token is configured.
    pub fn has_internal_token(&self) -> bool {
        self.internal_token.is_some()
    }

    /// `keystore`, fetching keys only for callers with a grant when access
    /// control is on.
    pub fn keystore(&self, keystore: KeyStore) -> KeyStore {
        if self.requires_grants() {
            keystore.require_grants()
        } else {
            keystore
        }
    }

    /// Logs, once at start, that signing is open when it is.
    pub fn warn_if_open(&self) {
        if !self.requires_grants() {
            tracing::warn!(
                "signing is open to anyone who can connect: set {ACCESS_FILE_VAR} to require tokens (see the README, Securing digsig)"
            );
        }
    }

    /// `ep`, behind this access control.
    pub fn guard<E: poem::Endpoint>(&self, ep: E) -> Guarded<E> {
        Guarded::new(ep, self.clone())
    }

    /// Headers telling a routed service who the caller is, with the shared
    /// secret that makes it believe them (none without the secret).
    fn identity_headers(&self, grant: &Grant) -> Vec<(HeaderName, HeaderValue)> {
        let Some(token) = &self.internal_token else {
            return Vec::new();
        };
        let allow = grant
            .allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        [
            (INTERNAL_TOKEN_HEADER, token.as_str()),
            (CLIENT_HEADER, grant.client.as_str()),
            (ALLOW_HEADER, allow.as_str()),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            let mut value = HeaderValue::from_str(value).ok()?;
            value.set_sensitive(true);
            Some((HeaderName::from_static(name), value))
        })
        .collect()
    }

    fn reload_on_sighup(&self) {
        let (Some(file), Ok(runtime)) = (&self.file, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let file = Arc::downgrade(file);
        runtime.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                return;
            };
            while hangups.recv().await.is_some() {
                match file.upgrade() {
                    Some(file) => file.reload(),
                    None => return,
                }
            }
        });
    }
}

/// What the guard leaves in a request's extensions for the gateway's
/// proxy: the headers that carry the caller to a routed service.
#[derive(Debug, Clone, Default)]
pub struct ForwardIdentity(pub Vec<(HeaderName, HeaderValue)>);
