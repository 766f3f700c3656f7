//! `GET /metrics` in Prometheus' text format, for the gateway and every
//! service: signing requests by endpoint and status, their latency, bytes in
//! and out (counted as they stream), requests in flight, and each domain's
//! running and waiting jobs.
//!
//! Only `/sign/*` requests are counted, under the endpoint paths the server
//! knows (anything else is `other`), so a client cannot grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use crate::admission::JobGate;

/// Upper bounds (seconds) of the latency histogram's buckets: signing takes
/// milliseconds (a signature) to minutes (NVIDIA's tools).
const BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct PerEndpoint {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
}

/// One server's metrics.
pub struct Metrics {
    endpoints: Vec<String>,
    state: Mutex<BTreeMap<String, PerEndpoint>>,
    in_flight: AtomicI64,
    gates: Mutex<Vec<(String, Arc<JobGate>)>>,
    audit: Mutex<Option<Arc<crate::audit::AuditLog>>>,
}

impl Metrics {
    /// Reports the audit log's write failures.
    pub fn set_audit_log(&self, log: Arc<crate::audit::AuditLog>) {
        *self.audit.lock().unwrap_or_else(|e| e.into_inner()) = Some(log);
    }

    /// Metrics for a server whose signing endpoints are `endpoints`.
    pub fn new(endpoints: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(Self {
            endpoints: endpoints.into_iter().collect(),
            state: Mutex::new(BTreeMap::new()),
            in_flight: AtomicI64::new(0),
            gates: Mutex::new(Vec::new()),
            audit: Mutex::new(None),
        })
    }

    /// Reports `domain`'s job slots.
    pub fn add_job_gate(&self, domain: &str, gate: Arc<JobGate>) {
        self.lock_gates().push((domain.to_string(), gate));
    }

    fn lock_gates(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<JobGate>)>> {
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PerEndpoint>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn label(&self, path: &str) -> String {
        if self.endpoints.iter().any(|e| e == path) {
            path.to_string()
        } else {
            "other".to_string()
        }
    }

    /// `ep`, its `/sign/*` requests counted.
    pub fn observe<E: Endpoint>(self: &Arc<Self>, ep: E) -> Observed<E> {
        Observed {
            inner: ep,
            metrics: Arc::clone(self),
        }
    }

    /// The `/metrics` endpoint.
    pub fn endpoint(self: &Arc<Self>) -> impl Endpoint<Output = Response> {
        let metrics = Arc::clone(self);
        poem::endpoint::make_sync(move |_| {
            metrics
                .render()
                .with_content_type("text/plain; version=0.0.4; charset=utf-8")
                .into_response()
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let state = self.lock_state();
        let _ = writeln!(
            out,
            "# HELP digsig_requests_total Signing requests answered, by endpoint and HTTP status."
        );
        let _ = writeln!(out, "# TYPE digsig_requests_total counter");
        for (endpoint, per) in state.iter() {
            for (status, n) in &per.statuses {
                let _ = writeln!(
                    out,
                    "digsig_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP digsig_request_duration_seconds Time to the reply's head, by endpoint."
        );
        let _ = writeln!(out, "# TYPE digsig_request_duration_seconds histogram");
        for (endpoint, per) in state.iter() {
            let h = &per.latency;
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "digsig_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "digsig_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "digsig_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "digsig_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count
            );
        }
        for (name, help, pick) in [
            (
                "digsig_request_bytes_total",
                "Request body bytes received, by endpoint.",
                (|p: &PerEndpoint| p.bytes_in.load(Ordering::Relaxed)) as fn(&PerEndpoint) -> u64,
            ),
            (
                "digsig_response_bytes_total",
                "Response body bytes sent, by endpoint.",
                |p: &PerEndpoint| p.bytes_out.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (endpoint, per) in state.iter() {
                let _ = writeln!(out, "{name}{{endpoint=\"{endpoint}\"}} {}", pick(per));
            }
        }
        drop(state);
        let _ = writeln!(
            out,
            "# HELP digsig_requests_in_flight Signing requests being served."
        );
        let _ = writeln!(out, "# TYPE digsig_requests_in_flight gauge");
        let _ = writeln!(
            out,
            "digsig_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let gates = self.lock_gates();
        for (name, help, running) in [
            (
                "digsig_jobs_running",
                "Signing jobs holding a slot (DIGSIGSERVER_MAX_JOBS), by domain.",
                true,
            ),
            (
                "digsig_jobs_waiting",
                "Signing jobs waiting for a slot (DIGSIGSERVER_MAX_QUEUE), by domain.",
                false,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (domain, gate) in gates.iter() {
                let value = if running {
                    gate.running()
                } else {
                    gate.waiting()
                };
                let _ = writeln!(out, "{name}{{domain=\"{domain}\"}} {value}");
            }
        }
        drop(gates);
        if let Some(log) = self
            .audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = writeln!(out, "# HELP digsig_audit_write_failures_total Audit records that could not be written (their replies were withheld).");
            let _ = writeln!(out, "# TYPE digsig_audit_write_failures_total counter");
            let _ = writeln!(out, "digsig_audit_write_failures_total {}", log.failures());
        }
        out
    }
}

/// See [`Metrics::observe`].
pub struct Observed<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

/// Decrements the in-flight gauge however the request ends.
struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Adds a body's bytes to `counter` as they stream.
fn counted(body: Body, counter: Arc<AtomicU64>) -> Body {
    Body::from_bytes_stream(body.into_bytes_stream().map(move |chunk| {
        if let Ok(bytes) = &chunk {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        chunk
    }))
}

impl<E: Endpoint> Endpoint for Observed<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !req.uri().path().starts_with("/sign/") {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let metrics = &self.metrics;
        let label = metrics.label(req.uri().path());
        let (bytes_in, bytes_out) = {
            let mut state = metrics.lock_state();
            let per = state.entry(label.clone()).or_default();
            (Arc::clone(&per.bytes_in), Arc::clone(&per.bytes_out))
        };
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&metrics.in_flight);
        let started = Instant::now();
        let body = req.take_body();
        req.set_body(counted(body, bytes_in));
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let status = match &result {
            Ok(resp) => resp.status().as_u16(),
            Err(err) => err.status().as_u16(),
        };
        let elapsed = started.elapsed().as_secs_f64();
        {
            let mut state = metrics.lock_state();
            let per = state.entry(label).or_default();
            *per.statuses.entry(status).or_default() += 1;
            let h = &mut per.latency;
            if let Some(i) = BUCKETS.iter().position(|b| elapsed <= *b) {
                h.counts[i] += 1;
            }
            h.count += 1;
            h.sum += elapsed;
        }
        result.map(|mut resp| {
            let body = resp.take_body();
            resp.set_body(counted(body, bytes_out));
            resp
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new(["/sign/modules".to_string()]);
        {
            let mut state = m.lock_state();
            let per = state.entry("/sign/modules".into()).or_default();
            per.statuses.insert(200, 2);
            per.latency.counts[1] = 2;
            per.latency.count = 2;
            per.latency.sum = 0.08;
            per.bytes_in.store(1000, Ordering::Relaxed);
        }
        let text = m.render();
        assert!(
            text.contains("digsig_requests_total{endpoint=\"/sign/modules\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "digsig_request_duration_seconds_bucket{endpoint=\"/sign/modules\",le=\"0.01\"} 0"
        ));
        assert!(text.contains(
            "digsig_request_duration_seconds_bucket{endpoint=\"/sign/modules\",le=\"0.05\"} 2"
        ));
        assert!(text.contains(
            "digsig_request_duration_seconds_bucket{endpoint=\"/sign/modules\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("digsig_request_bytes_total{endpoint=\"/sign/modules\"} 1000"));
        assert!(text.contains("digsig_requests_in_flight 0"));
        assert_eq!(m.label("/sign/../x"), "other");
    }
}
