//! `GET /health` (liveness) and `GET /ready` (readiness).
//!
//! Liveness only says the process answers. Readiness says it can sign: the key
//! store is reachable and every vendor tool the service needs is present.

use std::path::PathBuf;
use std::sync::Arc;

use keystore::KeyStore;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

/// What a service must have to be ready.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// The key store, if the service uses one.
    pub keystore: Option<KeyStore>,
    /// Vendor tools by name and path, e.g. ("sign-file", "/usr/lib/...").
    pub tools: Vec<(String, PathBuf)>,
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
                detail: match outcome {
                    Ok(()) => store.location(),
                    Err(e) => e.to_string(),
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
        ReadyReport {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
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
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> PlainText<&'static str> {
        PlainText("ok\n")
    }

    /// Readiness: the key store is reachable and the vendor tools are present.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> ReadyResponse {
        let report = self.readiness.report().await;
        if report.ready {
            ReadyResponse::Ready(Json(report))
        } else {
            ReadyResponse::NotReady(Json(report))
        }
    }
}
