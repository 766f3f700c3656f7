//! `digsigserver`: digsig's gateway, a drop-in for upstream's command.
//!
//! Also every domain's service: invoked under a service's name (`svc-kmod`,
//! `svc-imx`, ...: a copy or link of this file), it runs that service, as
//! the service crate's own binary would. The container images carry this
//! one binary under each name, so a release build links once, not once per
//! service.

use std::process::ExitCode;

use clap::Parser;
use gateway::{Domain, GatewayConfig, Placement};
use servicekit::demo::DemoKeyStore;
use servicekit::ServerArgs;

#[derive(Parser)]
#[command(
    name = "digsigserver",
    version,
    about = "digsig signing service: every domain in-process, or routed to its service by DIGSIGSERVER_<DOMAIN>_URL"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Sign with THROWAWAY keys generated at start-up for machine/distro
    /// `demo` (ignores DIGSIGSERVER_KEYFILE_URI). Never for production.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    servicekit::process_memory::init();
    match invoked_as_service() {
        Ok(Some(service)) => service(),
        Ok(None) => gateway_main(),
        Err(name) => {
            let built: Vec<String> = gateway::registry::BUILT
                .iter()
                .map(|d| format!("svc-{}", d.name))
                .collect();
            eprintln!(
                "{name}: no such service in this build (built: {}); run digsigserver for the gateway",
                built.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}

/// The service to run when invoked as `svc-<domain>`, by the file name of
/// `argv[0]`; `Err` with the name for an `svc-` name this build lacks (a
/// service image must not quietly start a gateway instead).
fn invoked_as_service() -> Result<Option<fn() -> ExitCode>, String> {
    let Some(argv0) = std::env::args_os().next() else {
        return Ok(None);
    };
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.starts_with("svc-") {
        return Ok(None);
    }
    gateway::registry::BUILT
        .iter()
        .find(|domain| name == format!("svc-{}", domain.name))
        .map(|domain| Some(domain.service_main))
        .ok_or(name)
}

#[tokio::main]
async fn gateway_main() -> ExitCode {
    let args = Args::parse();
    servicekit::telemetry::init(args.server.debug);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("digsigserver: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = GatewayConfig::from_env()?;
    let demo = if args.demo {
        let keys = DemoKeyStore::create()?;
        for domain in gateway::registry::BUILT {
            (domain.add_demo_keys)(&keys)?;
        }
        eprintln!(
            "\n  DEMO MODE: signing with THROWAWAY keys for machine/distro 'demo' in {}\n  \
             They are generated now and deleted on exit. Never use them for anything you ship.\n",
            keys.uri()
        );
        config.service.keyfile_uri = Some(keys.uri());
        Some(keys)
    } else {
        None
    };
    let keystore = match &config.service.keyfile_uri {
        Some(uri) if config.has_embedded_domains() => Some(keystore::KeyStore::open(uri).await?),
        _ => None,
    };
    // Built before binding: a server that cannot start says why and says
    // nothing about listening.
    let app = gateway::app(&config, keystore.clone())?;
    let tls = servicekit::tls::ServerTls::from_settings(&config.service.settings)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind((args.server.address, args.server.port)).await?;
    for domain in Domain::ALL.into_iter() {
        let where_ = match &config.domain(domain).placement {
            Placement::Routed(url) if domain.is_built() => format!("routed to {url}"),
            Placement::Embedded if domain.is_built() => "in-process".to_string(),
            Placement::Embedded => "not in this build (501)".to_string(),
            Placement::Routed(url) => {
                format!(
                    "not in this build (501); {}={url} is ignored",
                    domain.url_var()
                )
            }
        };
        tracing::info!(domain = %domain, paths = ?domain.paths(), "{where_}");
    }
    tracing::info!(
        address = %listener.local_addr()?,
        keystore = %keystore.as_ref().map(|k| k.location()).unwrap_or_else(|| "none (all routed)".into()),
        scheme,
        "digsigserver listening; Swagger UI at /docs"
    );
    let limits =
        servicekit::server::ConnectionLimits::for_this_process(config.service.idle_timeout);
    servicekit::server::serve_tls_with(listener, app, servicekit::shutdown_signal(), limits, tls)
        .await?;
    drop(demo);
    Ok(())
}
