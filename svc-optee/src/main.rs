//! `svc-optee`: the OP-TEE trusted application signing service as its own
//! process: `svc-optee [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main::<svc_optee::Optee>()
}
