//! The `main` of every signing service binary (`svc-kmod`, `svc-update`, …):
//! upstream's flags plus `--demo`, configuration from the environment, the key
//! store opened, serving until SIGINT/SIGTERM.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use keystore::KeyStore;

use crate::demo::DemoKeyStore;
use crate::domain::SigningDomain;
use crate::{ServerArgs, ServiceConfig};

/// A service's command line.
#[derive(Parser)]
#[command(version)]
struct ServiceArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Sign with THROWAWAY keys generated at start-up for machine/distro
    /// `demo` (ignores DIGSIGSERVER_KEYFILE_URI). Never for production.
    #[arg(long)]
    demo: bool,
}

/// Runs domain `D` as its own service, `svc-<name>`: parses the command
/// line, opens the key store (or makes demo keys), binds, and serves until
/// SIGINT/SIGTERM (then finishes in-flight requests). Errors are printed and
/// give a failing exit code.
pub fn service_main<D: SigningDomain>() -> ExitCode {
    let name = format!("svc-{}", D::NAME);
    crate::process_memory::init();
    let args = ServiceArgs::parse();
    crate::telemetry::init(args.server.debug);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::<D>(&name, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run<D: SigningDomain>(name: &str, args: ServiceArgs) -> Result<(), Box<dyn Error>> {
    let mut config = ServiceConfig::from_env()?;
    let demo = if args.demo {
        let keys = DemoKeyStore::create()?;
        D::add_demo_keys(&keys)?;
        tracing::warn!(
            "DEMO MODE: signing with THROWAWAY keys for machine/distro 'demo' in {}; they vanish on exit",
            keys.uri()
        );
        config.keyfile_uri = Some(keys.uri());
        Some(keys)
    } else {
        None
    };
    let uri = config.keyfile_uri.clone().ok_or(
        "DIGSIGSERVER_KEYFILE_URI is not set: set it to file:///path/to/keys or s3://bucket/prefix, or pass --demo for throwaway keys",
    )?;
    let keystore = KeyStore::open(&uri).await?;
    // Built before binding, so a bad setting stops the start with its reason.
    let app = crate::domain::app::<D>(keystore.clone(), &config)?;
    let tls = crate::tls::ServerTls::from_settings(&config.settings)?;
    let listener = tokio::net::TcpListener::bind((args.server.address, args.server.port)).await?;
    tracing::info!(address = %listener.local_addr()?, keystore = %keystore.location(), "{name} listening");
    let limits = crate::server::ConnectionLimits::for_this_process(config.idle_timeout);
    crate::server::serve_tls_with(listener, app, crate::shutdown_signal(), limits, tls).await?;
    drop(demo);
    Ok(())
}
