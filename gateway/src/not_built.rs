//! Upstream endpoints of domains this build does not include yet.
//!
//! A client of upstream digsigserver calling one of them gets a 501 saying
//! so, rather than a bare 404 that looks like a wrong URL.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::domain::Domain;

/// Answers 501 for an upstream endpoint no service crate here provides.
#[derive(Clone, Copy)]
pub struct NotBuilt(pub Domain);

impl Endpoint for NotBuilt {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(format!(
            "{} is not implemented: this build of digsig does not serve it yet (upstream's endpoint in the {} domain, svc-{})\n",
            req.uri().path(),
            self.0,
            self.0
        )
        .with_content_type("text/plain; charset=utf-8")
        .with_status(StatusCode::NOT_IMPLEMENTED)
        .into_response())
    }
}
