//! `svc-imx`: the i.MX HAB signing service as its own process:
//! `svc-imx [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main::<svc_imx::Imx>()
}
