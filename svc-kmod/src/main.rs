//! `svc-kmod`: the kernel module signing service as its own process:
//! `svc-kmod [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main("svc-kmod", svc_kmod::demo::add_demo_keys, svc_kmod::run)
}
