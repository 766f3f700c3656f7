//! Structured logs with a request id on every line.
//!
//! Each request runs inside a `request` span carrying `request_id` (the
//! client's `X-Request-Id` if it sent a sane one, else a fresh UUID), method
//! and path, so every line logged while serving it names the request. The id
//! is echoed back in the `X-Request-Id` response header and set on the request,
//! so the gateway forwards it to the service it routes to. Blocking work must
//! re-enter the span (`Span::current()` captured before `spawn_blocking`).

use std::time::Instant;

use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// Header carrying the request id in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Names the log format: `json` for one JSON object per line, anything else
/// (or unset) for text.
pub const LOG_FORMAT_VAR: &str = "DIGSIGSERVER_LOG_FORMAT";

/// Installs the global log subscriber: `RUST_LOG` if set, else `info`
/// (`debug` with `--debug`); JSON lines with `DIGSIGSERVER_LOG_FORMAT=json`;
/// ANSI colours only when stdout is a terminal (never in a log file or a
/// container's log).
pub fn init(debug: bool) {
    use std::io::IsTerminal;
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var(LOG_FORMAT_VAR).is_ok_and(|v| v.trim().eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

fn acceptable_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Wraps an endpoint so each request gets an id, a span and a closing log line.
pub fn with_request_id<E: Endpoint + 'static>(ep: E) -> impl Endpoint<Output = Response> {
    ep.around(|ep, mut req: Request| async move {
        let id = req
            .header(REQUEST_ID_HEADER)
            .filter(|id| acceptable_id(id))
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let client = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            client = %client,
            method = %req.method(),
            path = %req.uri().path()
        );
        // Put the id on the request itself so a proxy forwards it and the
        // service behind the gateway logs the same id.
        if let Ok(value) = id.parse() {
            req.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        async move {
            let started = Instant::now();
            let mut resp = ep.get_response(req).await.into_response();
            tracing::info!(
                status = resp.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request finished"
            );
            if let Ok(value) = id.parse() {
                resp.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            Ok(resp)
        }
        .instrument(span)
        .await
    })
}
