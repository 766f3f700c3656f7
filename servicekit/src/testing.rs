//! A server on a loopback port in its own runtime thread, for tests of any
//! digsig service or the gateway (feature `test-support`).

use std::future::Future;
use std::pin::Pin;

/// The shutdown future a test server's run function is handed.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server serving real HTTP on `127.0.0.1:<free port>`, stopped on drop.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Binds a loopback port and runs `serve(listener, shutdown)` on it.
    pub fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                ready_tx
                    .send(listener.local_addr().expect("bound").port())
                    .expect("test waits");
                let shutdown: Shutdown = Box::pin(async {
                    let _ = stopped.await;
                });
                serve(listener, shutdown).await.expect("server failed");
            });
        });
        let port = ready_rx.recv().expect("server did not start");
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
