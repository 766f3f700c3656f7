//! Readiness of routed services, as checks in the gateway's `/ready`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use servicekit::health::{Probe, ReadyCheck};

use crate::proxy::{root_cause, Upstream};

/// `/ready` must answer quickly even when a service hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A check asking `upstream`'s `/ready`; it fails, naming the domain, when
/// the service is down, slow, or not ready itself (its report is quoted).
pub fn probe(upstream: Arc<Upstream>, client: reqwest::Client) -> Probe {
    Arc::new(move || {
        let upstream = Arc::clone(&upstream);
        let client = client.clone();
        async move {
            let url = upstream.url("/ready", None);
            let name = format!("service {}", upstream.domain());
            let outcome = async {
                let reply = client
                    .get(url.clone())
                    .timeout(PROBE_TIMEOUT)
                    .send()
                    .await?;
                let status = reply.status();
                let body = reply.text().await.unwrap_or_default();
                Ok::<_, reqwest::Error>((status, body))
            }
            .await;
            let (ok, detail) = match outcome {
                Ok((status, _)) if status.is_success() => (true, format!("{url} is ready")),
                Ok((status, body)) => (
                    false,
                    format!(
                        "{url} answered {status}: {}",
                        body.trim().chars().take(500).collect::<String>()
                    ),
                ),
                Err(e) if e.is_timeout() => (
                    false,
                    format!("{url} did not answer within {} s", PROBE_TIMEOUT.as_secs()),
                ),
                Err(e) => (false, format!("{url} is not reachable: {}", root_cause(&e))),
            };
            ReadyCheck { name, ok, detail }
        }
        .boxed()
    })
}
