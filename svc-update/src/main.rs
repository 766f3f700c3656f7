//! `svc-update`: the update package signing service as its own process:
//! `svc-update [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main(
        "svc-update",
        svc_update::demo::add_demo_keys,
        |listener, keystore, _config, shutdown| svc_update::run(listener, keystore, shutdown),
    )
}
