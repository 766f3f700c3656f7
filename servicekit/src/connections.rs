//! Bounding connections: how many the server holds at once, and how long one
//! may sit idle, so half-sent requests cannot use up the process's files.
//!
//! - A connection that sends nothing and receives nothing for
//!   [`IDLE_TIMEOUT`] (a stalled request head, an idle keep-alive) is closed;
//!   a request already being handled still finishes (signing can take
//!   minutes with the client only waiting), and a body that stalls is ended
//!   by [`crate::drain`].
//! - At most [`max_connections`] are open at once; beyond that, new ones wait
//!   in the kernel's accept queue instead of taking file descriptors the
//!   server needs for its work (key files, spooled uploads, tool pipes).
//! - The soft open-file limit is raised to the hard one at start.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may be silent both ways before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// File descriptors kept for the server's own work, beyond one per
/// connection and one more per connection for its request's files or an
/// upstream connection.
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the soft limit
/// in force afterwards.
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        // rlim_t is not u64 on every target.
        #[allow(clippy::unnecessary_cast)]
        let soft = limit.rlim_cur as u64;
        soft
    }
}

/// How many connections to hold at once with `open_files` descriptors: two
/// for each (its socket, and its upload's spool file or the routed
/// service's socket), after a reserve; at least 16.
pub fn max_connections(open_files: u64) -> usize {
    (open_files.saturating_sub(RESERVED_FDS) / 2).clamp(16, 65_536) as usize
}

/// An acceptor that holds at most `max` connections open at once, each of
/// which must deliver a request head within `head_timeout`.
pub struct CappedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    head_timeout: Duration,
}

impl<A> CappedAcceptor<A> {
    /// `inner`, accepting while fewer than `max` of its connections are open.
    pub fn new(inner: A, max: usize, head_timeout: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            head_timeout,
        }
    }
}

impl<A: Acceptor> Acceptor for CappedAcceptor<A> {
    type Io = Counted<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let head_timeout = self.head_timeout;
        Ok((
            Counted {
                io,
                _permit: permit,
                head_timeout,
                deadline: Some(Box::pin(tokio::time::sleep(head_timeout))),
                last: [0; 3],
                http2: false,
            },
            local,
            remote,
            scheme,
        ))
    }
}

/// A connection holding its place under the cap until it closes, and
/// closed if a request head does not arrive in time.
///
/// The deadline runs from the connection's start and from each write of a
/// reply (not an interim `100 Continue`) until the end of a request head
/// (`\r\n\r\n`) is read. Once a head is in, nothing here times out:
/// a handler may sign for minutes while the client waits, and a stalled
/// body is ended by [`crate::drain`]. (Multipart bodies, all our endpoints
/// take, carry `\r\n\r\n` after each part's headers.)
pub struct Counted<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
    head_timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last bytes read, to find a `\r\n\r\n` split across reads.
    last: [u8; 3],
    /// An HTTP/2 connection: no head deadline.
    http2: bool,
}

impl<T> Counted<T> {
    /// Notes bytes read: the end of a head disarms the deadline; an HTTP/2
    /// preface disarms it for good (h2 frames carry no `\r\n\r\n`, and an
    /// h2 connection reads all the time).
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.deadline.is_none() {
            return;
        }
        if bytes.starts_with(b"PRI * HTTP/2.0") {
            self.http2 = true;
            self.deadline = None;
            return;
        }
        let mut joined = self.last.to_vec();
        joined.extend_from_slice(bytes);
        if joined.windows(4).any(|w| w == b"\r\n\r\n") {
            self.deadline = None;
            self.last = [0; 3];
            return;
        }
        let n = joined.len();
        self.last.copy_from_slice(&joined[n - 3..]);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request head within the idle timeout",
                ))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        // After a reply, the next request's head is due in time too; an
        // interim `100 Continue` is not a reply (the body comes next).
        let reply = !self.http2 && !buf.starts_with(b"HTTP/1.1 100");
        if reply && matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            let due = tokio::time::Instant::now() + self.head_timeout;
            self.last = [0; 3];
            match self.deadline.as_mut() {
                Some(deadline) => deadline.as_mut().reset(due),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(due))),
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
