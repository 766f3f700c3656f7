//! `svc-tegra`: the Jetson signing service as its own process:
//! `svc-tegra [--address A] [--port P] [--debug] [--demo]`.

fn main() -> std::process::ExitCode {
    servicekit::service_main::<svc_tegra::Tegra>()
}
