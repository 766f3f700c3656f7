//! What a request passes before a signing handler runs: its body's size and
//! a slot among the jobs the service runs at once.
//!
//! - **Size.** Each endpoint has a most-bytes for its whole body. A declared
//!   `Content-Length` above it is a 413 at once, before a byte of the body is
//!   read (curl waits for `100 Continue` before sending a large body, so it
//!   sends nothing); a body without one is counted as it streams and cut off
//!   at the limit, also a 413. Nothing larger is spooled to disk.
//! - **Jobs.** At most `DIGSIGSERVER_MAX_JOBS` signing requests run at once
//!   (default: the number of cores) and `DIGSIGSERVER_MAX_QUEUE` more wait
//!   (default: four per job); beyond that a request gets 503 with
//!   `Retry-After`, which the Yocto classes' `curl --retry` honours.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use poem::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use poem::http::StatusCode;
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::sync::Semaphore;

use crate::config::ConfigError;

/// Seconds a client is asked to wait before retrying a refused job.
pub const RETRY_AFTER_SECS: u64 = 10;

/// How many signing requests run at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// `DIGSIGSERVER_MAX_JOBS`.
    pub max_jobs: usize,
    /// `DIGSIGSERVER_MAX_QUEUE`.
    pub max_queue: usize,
}

impl JobLimits {
    /// Reads the limits through `lookup`; defaults follow the core count.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let number = |name: &'static str, default: usize| match lookup(name)
            .filter(|v| !v.trim().is_empty())
        {
            None => Ok(default),
            Some(value) => match value.trim().parse::<usize>() {
                Ok(n) if n > 0 || name.ends_with("QUEUE") => Ok(n),
                _ => Err(ConfigError {
                    name,
                    value,
                    reason: "expected a whole number (jobs: above 0)".into(),
                }),
            },
        };
        let max_jobs = number("DIGSIGSERVER_MAX_JOBS", cores)?;
        Ok(Self {
            max_jobs,
            max_queue: number("DIGSIGSERVER_MAX_QUEUE", max_jobs * 4)?,
        })
    }
}

/// The jobs of one service (or of one embedded domain in the gateway).
#[derive(Debug)]
pub struct JobGate {
    running: Arc<Semaphore>,
    /// Running plus waiting.
    admitted: AtomicUsize,
    limits: JobLimits,
}

impl JobGate {
    /// Jobs holding a slot now.
    pub fn running(&self) -> usize {
        self.limits
            .max_jobs
            .saturating_sub(self.running.available_permits())
    }

    /// Jobs waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.admitted
            .load(Ordering::Acquire)
            .saturating_sub(self.running())
    }

    /// A gate with `limits`.
    pub fn new(limits: JobLimits) -> Arc<Self> {
        Arc::new(Self {
            running: Arc::new(Semaphore::new(limits.max_jobs)),
            admitted: AtomicUsize::new(0),
            limits,
        })
    }
}

/// Admission rules for the endpoints of one API.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Path → most bytes its request body may have.
    pub body_limits: Arc<HashMap<String, u64>>,
    /// Shared job slots.
    pub jobs: Arc<JobGate>,
}

impl Admission {
    /// `inner` behind these rules (for requests to a path with a limit).
    pub fn guard<E: Endpoint>(&self, inner: E) -> Guarded<E> {
        Guarded {
            inner,
            admission: self.clone(),
        }
    }
}

/// See [`Admission::guard`].
pub struct Guarded<E> {
    inner: E,
    admission: Admission,
}

fn refuse(status: StatusCode, message: String) -> Response {
    tracing::info!(status = status.as_u16(), error = ?message, "request refused");
    format!("{message}\n")
        .with_content_type("text/plain; charset=utf-8")
        .with_status(status)
        .into_response()
}

fn too_large(max: u64) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request is larger than this endpoint's limit of {max} bytes"),
    )
}

/// Releases a job slot (and its place in line) when the request ends.
struct Admitted<'a>(&'a JobGate);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<E: Endpoint> Endpoint for Guarded<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let Some(&max) = self.admission.body_limits.get(req.uri().path()) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Ok(too_large(max));
        }

        let gate = &self.admission.jobs;
        let capacity = gate.limits.max_jobs + gate.limits.max_queue;
        if gate.admitted.fetch_add(1, Ordering::AcqRel) >= capacity {
            gate.admitted.fetch_sub(1, Ordering::AcqRel);
            let mut reply = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server is busy ({} signing, {} waiting); retry in {RETRY_AFTER_SECS} s",
                    gate.limits.max_jobs, gate.limits.max_queue
                ),
            );
            reply
                .headers_mut()
                .insert(RETRY_AFTER, RETRY_AFTER_SECS.into());
            return Ok(reply);
        }
        let _admitted = Admitted(gate);
        let _running = gate
            .running
            .acquire()
            .await
            .map_err(|_| poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE))?;

        // Count what actually arrives: a body without Content-Length, or one
        // longer than it said, stops at the limit.
        let tripped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&tripped);
        let mut seen = 0u64;
        let counted = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > max {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("request body over the limit"));
            }
            Ok(chunk)
        });
        req.set_body(Body::from_bytes_stream(counted));
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        if tripped.load(Ordering::Relaxed) {
            return Ok(too_large(max));
        }
        result
    }
}
