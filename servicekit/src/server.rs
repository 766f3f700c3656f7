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

use crate::connections::CappedAcceptor;
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
    let limits = ConnectionLimits::for_this_process(crate::connections::IDLE_TIMEOUT);
    serve_with(listener, app, shutdown, limits).await
}

/// How many connections a server holds and how long they may idle.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once (more wait to be accepted).
    pub max_connections: usize,
    /// A connection silent both ways this long is closed.
    pub idle: Duration,
    /// A request body that stalls this long ends in an error.
    pub body_idle: Duration,
}

impl ConnectionLimits {
    /// Raises the open-file limit and sizes the connection cap under it;
    /// connections and bodies may be silent for `idle`.
    pub fn for_this_process(idle: Duration) -> Self {
        let files = crate::connections::raise_open_file_limit();
        Self {
            max_connections: crate::connections::max_connections(files),
            idle,
            body_idle: idle,
        }
    }
}

/// [`serve`] with explicit connection limits (tests use short ones).
pub async fn serve_with<A>(
    listener: tokio::net::TcpListener,
    app: A,
    shutdown: impl Future<Output = ()> + Send,
    limits: ConnectionLimits,
) -> io::Result<()>
where
    A: IntoEndpoint,
    A::Endpoint: 'static,
{
    serve_tls_with(listener, app, shutdown, limits, None).await
}

/// [`serve_with`], over TLS when `tls` is given.
pub async fn serve_tls_with<A>(
    listener: tokio::net::TcpListener,
    app: A,
    shutdown: impl Future<Output = ()> + Send,
    limits: ConnectionLimits,
    tls: Option<crate::tls::ServerTls>,
) -> io::Result<()>
where
    A: IntoEndpoint,
    A::Endpoint: 'static,
{
    let app = with_request_id(drain_unread_body(
        crate::openapi::docs_at_root(app.into_endpoint().with(CatchPanic::new())),
        limits.body_idle,
    ));
    let acceptor = CappedAcceptor::new(
        TcpAcceptor::from_tokio(listener)?,
        limits.max_connections,
        limits.idle,
    );
    match tls {
        None => {
            Server::new_with_acceptor(acceptor)
                .idle_timeout(limits.idle)
                .run_with_graceful_shutdown(app, shutdown, Some(SHUTDOWN_GRACE))
                .await
        }
        Some(tls) => {
            use poem::listener::AcceptorExt;
            let config = futures_util::stream::once(futures_util::future::ready(tls.config()));
            Server::new_with_acceptor(acceptor.openssl_tls(config))
                .idle_timeout(limits.idle)
                .run_with_graceful_shutdown(app, shutdown, Some(SHUTDOWN_GRACE))
                .await
        }
    }
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
