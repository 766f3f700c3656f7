//! The layers every server (the gateway, each service) puts around its
//! routes, in one order: metrics outermost (every outcome is counted), then
//! the audit log when `DIGSIGSERVER_AUDIT_LOG` is set (refusals are
//! recorded too), then access control next to the routes.

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::{Endpoint, EndpointExt, Response};

use crate::access::AccessControl;
use crate::audit::AuditLog;
use crate::config::{ConfigError, Settings};
use crate::metrics::{Metrics, Observed};

/// `routes` behind `access`, the audit log `settings` name, and `metrics`.
pub fn signing_layers<E>(
    routes: E,
    access: &AccessControl,
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> Result<Observed<BoxEndpoint<'static, Response>>, ConfigError>
where
    E: Endpoint + 'static,
{
    let guarded = access.guard(routes);
    let audited = match AuditLog::from_settings(settings)? {
        Some(log) => {
            metrics.set_audit_log(Arc::clone(&log));
            log.guard(guarded).boxed()
        }
        None => guarded.boxed(),
    };
    Ok(metrics.observe(audited))
}
