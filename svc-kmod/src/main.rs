//! `svc-kmod`: the kernel module signing service as its own process.

use std::process::ExitCode;

use clap::Parser;
use servicekit::{ServerArgs, ServiceConfig};
use servicekit::demo::DemoKeyStore;

#[derive(Parser)]
#[command(name = "svc-kmod", about = "digsig kernel module signing service")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Sign with throwaway keys generated at start-up for machine `demo`
    /// (ignores DIGSIGSERVER_KEYFILE_URI). Never for production.
    #[arg(long)]
    demo: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    servicekit::telemetry::init(args.server.debug);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("svc-kmod: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServiceConfig::from_env()?;
    let demo = if args.demo {
        let keys = DemoKeyStore::create()?;
        svc_kmod::demo::add_demo_keys(&keys)?;
        tracing::warn!("DEMO MODE: signing with THROWAWAY keys for machine 'demo' in {}; they vanish on exit", keys.uri());
        config.keyfile_uri = Some(keys.uri());
        Some(keys)
    } else {
        None
    };
    let uri = config.keyfile_uri.clone().ok_or(
        "DIGSIGSERVER_KEYFILE_URI is not set: set it to file:///path/to/keys or s3://bucket/prefix, or pass --demo for throwaway keys",
    )?;
    let keystore = keystore::KeyStore::open(&uri).await?;
    let listener = tokio::net::TcpListener::bind((args.server.address, args.server.port)).await?;
    tracing::info!(address = %listener.local_addr()?, keystore = %keystore.location(), "svc-kmod listening");
    svc_kmod::run(listener, keystore, config, servicekit::shutdown_signal()).await?;
    drop(demo);
    Ok(())
}
