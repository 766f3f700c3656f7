//! `svc-optee`: the OP-TEE TA signing service as its own process:
//! `svc-optee [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main("svc-optee", svc_optee::demo::add_demo_keys, svc_optee::run)
}
