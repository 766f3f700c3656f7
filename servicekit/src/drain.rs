//! Reading a request body to its end even when the handler answered early.
//!
//! A handler that rejects a request before reading all of it (a bad field in
//! front of a large upload) makes hyper close the connection once the reply
//! is sent. A client still sending — the gateway's proxy among them — then
//! fails with "broken pipe" and never sees the 4xx that says what to fix.
//! Feeding the handler through a channel lets a task go on reading, and
//! discarding, what the handler left, so the client finishes its upload and
//! reads the answer. The same task ends a body whose client goes silent.

use std::time::Duration;

use futures_util::StreamExt;
use poem::{Body, Endpoint, EndpointExt, Request};

/// Chunks in flight between the connection and the handler.
const CHANNEL_DEPTH: usize = 8;

/// The longest the rest of an unread body is drained before the connection
/// is given up anyway, so an early-refused endless upload cannot hold a task.
/// As long as the default domain timeout: uploads are read as they arrive
/// now, so a refusal (no keys for the machine) can come before most of a
/// large upload, which a client on a slow link may still be sending (750 MB
/// at 10 Mbit/s). A client that goes silent is given up after `idle`.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// Wraps `ep` so an unread request body is drained in the background, and a
/// body whose client sends nothing for `idle` ends in an error. Only silence
/// counts: an upload that keeps progressing is never cut off, however long
/// it takes (a 1 GB flash package over 50 Mbit/s takes minutes).
pub fn drain_unread_body<E: Endpoint + 'static>(
    ep: E,
    idle: Duration,
) -> impl Endpoint<Output = E::Output> {
    ep.before(move |mut req: Request| async move {
        let mut incoming = req.take_body().into_bytes_stream();
        let (tx, mut rx) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
        let forward = async move {
            // Only waiting for the client counts as idle; waiting for the
            // handler to take a chunk (it may be busy signing) does not.
            loop {
                match tokio::time::timeout(idle, incoming.next()).await {
                    Ok(Some(chunk)) => {
                        if tx.send(chunk).await.is_err() {
                            break; // the handler dropped the body: drain the rest
                        }
                    }
                    Ok(None) => return,
                    Err(_) => {
                        let stalled = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the client sent nothing for {} s", idle.as_secs()),
                        );
                        let _ = tx.send(Err(stalled)).await;
                        return;
                    }
                }
            }
            let drain = async {
                while let Ok(Some(Ok(_))) = tokio::time::timeout(idle, incoming.next()).await {}
            };
            let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        };
        // Started when the handler first reads the body: a request refused
        // before that (a Content-Length over the limit, a wrong method) is
        // not read at all, so a client waiting for `100 Continue` never
        // sends it.
        let mut unstarted = Some(forward);
        let body = futures_util::stream::poll_fn(move |cx| {
            if let Some(forward) = unstarted.take() {
                tokio::spawn(forward);
            }
            rx.poll_recv(cx)
        });
        req.set_body(Body::from_bytes_stream(body));
        Ok(req)
    })
}
