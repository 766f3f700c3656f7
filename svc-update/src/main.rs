//! `svc-update`: the update package signing service as its own process:
//! `svc-update [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main::<svc_update::Update>()
}
