//! `GET /health` (liveness) and `GET /ready` (readiness).
//!
//! Liveness only says the process answers. Readiness says it can sign: the key
//! store is reachable and every vendor tool the service needs is present.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use keystore::KeyStore;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

/// A readiness check of something beyond the key store and local tools
/// (the gateway asks each routed service's `/ready` this way).
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, ReadyCheck> + Send + Sync>;

/// What a service must have to be ready.
#[derive(Clone, Default)]
pub struct Readiness {
    /// The key store, if the service uses one.
    pub keystore: Option<KeyStore>,
    /// Vendor tools by name and path, e.g. ("sign-file", "/usr/lib/...").
    pub tools: Vec<(String, PathBuf)>,
    /// Further checks, run concurrently.
    pub probes: Vec<Probe>,
}

/// One readiness check's outcome.
#[derive(Debug, Clone, Object)]
pub struct ReadyCheck {
    /// What was checked ("keystore", a tool name).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed, or what was found.
    pub detail: String,
}

/// All readiness checks.
#[derive(Debug, Clone, Object)]
pub struct ReadyReport {
    /// True when every check passed.
    pub ready: bool,
    /// The individual checks.
    pub checks: Vec<ReadyCheck>,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Every check passed.
    #[oai(status = 200)]
    Ready(Json<ReadyReport>),
    /// At least one check failed; the body says which.
    #[oai(status = 503)]
    NotReady(Json<ReadyReport>),
}

impl Readiness {
    /// Runs every check.
    pub async fn report(&self) -> ReadyReport {
        let mut checks = Vec::new();
        if let Some(store) = &self.keystore {
            let outcome = store.check_reachable().await;
            checks.push(ReadyCheck {
                name: "keystore".into(),
                ok: outcome.is_ok(),
                // Where the keys are is not for anyone who can reach the port.
                detail: match outcome {
                    Ok(()) => "reachable".to_string(),
                    Err(e) => {
                        tracing::warn!(error = %e, "readiness: key store");
                        e.client_message()
                    }
                },
            });
        }
        for (name, path) in &self.tools {
            let ok = path.is_file();
            checks.push(ReadyCheck {
                name: name.clone(),
                ok,
                detail: if ok {
                    path.display().to_string()
                } else {
                    format!("{} not found", path.display())
                },
            });
        }
        checks
            .extend(futures_util::future::join_all(self.probes.iter().map(|probe| probe())).await);
        ReadyReport {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

#[derive(Tags)]
enum HealthTags {
    /// Liveness and readiness, for orchestrators and load balancers.
    #[oai(rename = "health")]
    Health,
}

/// The health endpoints, to be combined with a service's own API.
pub struct HealthApi {
    readiness: Arc<Readiness>,
}

impl HealthApi {
    /// Health endpoints answering readiness from `readiness`.
    pub fn new(readiness: Readiness) -> Self {
        Self {
            readiness: Arc::new(readiness),
        }
    }
}

#[OpenApi]
impl HealthApi {
    /// Liveness: the process is up and answering.
    #[oai(path = "/health", method = "get", tag = "HealthTags::Health")]
    async fn health(&self) -> PlainText<&'static str> {
        PlainText("ok\n")
    }

    /// Readiness: the key store is reachable, the vendor tools are present and
    /// (on the gateway) every routed service is ready. 503 names what is not.
    #[oai(path = "/ready", method = "get", tag = "HealthTags::Health")]
    async fn ready(&self) -> ReadyResponse {
        let report = self.readiness.report().await;
        if report.ready {
            ReadyResponse::Ready(Json(report))
        } else {
            ReadyResponse::NotReady(Json(report))
        }
    }
}
