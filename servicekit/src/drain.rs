//! Reading a request body to its end even when the handler answered early.
//!
//! A handler that rejects a request before reading all of it (a bad field in
//! front of a large upload) makes hyper close the connection once the reply
//! is sent. A client still sending — the gateway's proxy among them — then
//! fails with "broken pipe" and never sees the 4xx that says what to fix.
//! Feeding the handler through a channel lets a task go on reading, and
//! discarding, what the handler left, so the client finishes its upload and
//! reads the answer.

use std::time::Duration;

use futures_util::StreamExt;
use poem::{Body, Endpoint, EndpointExt, Request};

/// Chunks in flight between the connection and the handler.
const CHANNEL_DEPTH: usize = 8;

/// The longest the rest of an unread body is drained before the connection
/// is given up anyway, so an early-refused endless upload cannot hold a task.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// Wraps `ep` so an unread request body is drained in the background.
pub fn drain_unread_body<E: Endpoint + 'static>(ep: E) -> impl Endpoint<Output = E::Output> {
    ep.before(|mut req: Request| async move {
        let mut incoming = req.take_body().into_bytes_stream();
        let (tx, mut rx) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
        tokio::spawn(async move {
            let forward = async {
                while let Some(chunk) = incoming.next().await {
                    if tx.send(chunk).await.is_err() {
                        break; // the handler dropped the body: drain the rest
                    }
                }
                while let Some(Ok(_)) = incoming.next().await {}
            };
            let _ = tokio::time::timeout(DRAIN_LIMIT, forward).await;
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        req.set_body(Body::from_bytes_stream(body));
        Ok(req)
    })
}
