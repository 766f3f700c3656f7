//! `svc-update`: the update package signing service as its own process:
//! `svc-update [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main(
        "svc-update",
        svc_update::demo::add_demo_keys,
        |listener, keystore, config, shutdown| async move {
            let mender = svc_update::MenderConfig::from_env(config.workdir_base)
                .map_err(std::io::Error::other)?;
            svc_update::run(listener, keystore, mender, shutdown).await
        },
    )
}
