//! `svc-kmod`: the kernel module signing service as its own process:
//! `svc-kmod [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main::<svc_kmod::Kmod>()
}
