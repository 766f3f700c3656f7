//! Plumbing every digsig service and the gateway share.
//!
//! - [`access`]: who may ask for signatures: tokens, rules, sources.
//! - [`audit`]: the audit log, one fsynced JSON line per signing request.
//! - [`admission`]: body size limits and job slots, before a handler runs.
//! - [`config`]: the upstream-compatible command line (`--address`, `--port`,
//!   `--debug`) and `DIGSIGSERVER_*` environment settings.
//! - [`error`]: one error type, [`ServiceError`], and the one place it becomes
//!   an HTTP status.
//! - [`form_fields`]: text fields validated as they arrive, with their rules in the document.
//! - [`friendly_errors`]: the HTTP layer's refusals reworded to say what to fix.
//! - [`workdir`]: a private per-request working directory, removed on every path.
//! - [`archive`]: safe streaming extraction and repacking of gzip tarballs.
//! - [`tarball_reply`]: the tarball-in, tarball-out request shape.
//! - [`telemetry`]: structured logs with a request id on every line.
//! - [`health`]: `GET /health` and `GET /ready`.
//! - [`layers`]: metrics, audit log and access control around a server's routes.
//! - [`metrics`]: `GET /metrics` (Prometheus text format).
//! - [`connections`]: how many connections, and how long they may idle.
//! - [`demo`]: a throwaway key store for `--demo`.
//! - [`domain`]: [`SigningDomain`], what each service crate implements once.
//! - [`private_key`]: reading private keys, fast for RSA, never prompting.
//! - [`drain`]: reading unread request bodies so early replies reach clients.
//! - [`service_main()`]: the `main` of every service binary.
//! - [`openapi`]: a service's API, OpenAPI document and Swagger UI routes.
//! - [`server`]: run an app on a listener until a shutdown signal.
//! - [`tls`]: optional TLS on the listening port.
//! - [`vendor_tool`]: running a vendor tool on uploaded data, fenced in.
#![deny(missing_docs)]

pub mod access;
pub mod admission;
pub mod archive;
pub mod audit;
pub mod config;
pub mod connections;
pub mod demo;
pub mod domain;
pub mod drain;
pub mod error;
pub mod form_fields;
pub mod friendly_errors;
pub mod health;
pub mod layers;
pub mod metrics;
pub mod openapi;
pub mod private_key;
pub mod process_memory;
pub mod server;
pub mod service_main;
pub mod streamed_form;
pub mod tarball_reply;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
pub mod upload;
pub mod vendor_tool;
pub mod workdir;

pub use archive::{ArchiveError, ArchiveLimits};
pub use config::{ServerArgs, ServiceConfig, Settings};
pub use domain::SigningDomain;
pub use error::ServiceError;
pub use health::{HealthApi, Readiness};
pub use openapi::openapi_routes;
pub use server::{serve, shutdown_signal};
pub use service_main::service_main;
pub use vendor_tool::{ToolError, ToolOutput, ToolRun};
pub use workdir::WorkDir;
