//! The `main` of every signing service binary (`svc-kmod`, `svc-update`, …):
//! upstream's flags plus `--demo`, configuration from the environment, the key
//! store opened, serving until SIGINT/SIGTERM.

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use futures_util::future::BoxFuture;
use keystore::KeyStore;

use crate::demo::DemoKeyStore;
use crate::{ServerArgs, ServiceConfig};

/// A service's command line.
#[derive(Parser)]
struct ServiceArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Sign with THROWAWAY keys generated at start-up for machine/distro
    /// `demo` (ignores DIGSIGSERVER_KEYFILE_URI). Never for production.
    #[arg(long)]
    demo: bool,
}

/// Adds a domain's demo keys to a demo key store.
pub type AddDemoKeys = fn(&DemoKeyStore) -> Result<(), Box<dyn Error>>;

/// Runs service `name`: parses the command line, opens the key store (or
/// makes demo keys with `add_demo_keys`), binds, and calls `serve` with a
/// future completing on SIGINT/SIGTERM (for graceful shutdown). Errors are printed and give a failing exit code.
pub fn service_main<F, Fut>(name: &'static str, add_demo_keys: AddDemoKeys, serve: F) -> ExitCode
where
    F: FnOnce(tokio::net::TcpListener, KeyStore, ServiceConfig, BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    let args = ServiceArgs::parse();
    crate::telemetry::init(args.server.debug);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(name, args, add_demo_keys, serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run<F, Fut>(
    name: &'static str,
    args: ServiceArgs,
    add_demo_keys: AddDemoKeys,
    serve: F,
) -> Result<(), Box<dyn Error>>
where
    F: FnOnce(tokio::net::TcpListener, KeyStore, ServiceConfig, BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    let mut config = ServiceConfig::from_env()?;
    let demo = if args.demo {
        let keys = DemoKeyStore::create()?;
        add_demo_keys(&keys)?;
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
    let listener = tokio::net::TcpListener::bind((args.server.address, args.server.port)).await?;
    tracing::info!(address = %listener.local_addr()?, keystore = %keystore.location(), "{name} listening");
    serve(
        listener,
        keystore,
        config,
        Box::pin(crate::shutdown_signal()),
    )
    .await?;
    drop(demo);
    Ok(())
}
