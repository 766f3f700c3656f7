//! Running an app on a listener until told to stop.
//!
//! The listener and the shutdown signal are passed in, so tests start a real
//! server on `127.0.0.1:0` and binaries bind the configured address.

use std::future::Future;
use std::io;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::middleware::CatchPanic;
use poem::{EndpointExt, IntoEndpoint, Server};

use crate::drain::drain_unread_body;
use crate::telemetry::with_request_id;

/// How long in-flight requests may run after shutdown is signalled. Signing
/// can take minutes; orchestrators should allow this much grace too.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (up to [`SHUTDOWN_GRACE`]). Every request gets a request id,
/// a panic becomes a 500 (its work directory is still removed), and a body the
/// handler did not read is drained so the client gets to read the reply.
pub async fn serve<A>(
    listener: tokio::net::TcpListener,
    app: A,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()>
where
    A: IntoEndpoint,
    A::Endpoint: 'static,
{
    let app = with_request_id(drain_unread_body(crate::openapi::docs_at_root(
        app.into_endpoint().with(CatchPanic::new()),
    )));
    Server::new_with_acceptor(TcpAcceptor::from_tokio(listener)?)
        .run_with_graceful_shutdown(app, shutdown, Some(SHUTDOWN_GRACE))
        .await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
