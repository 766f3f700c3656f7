//! Running a vendor tool (`mender-artifact`, NXP's `cst`, NVIDIA's flash
//! scripts) on uploaded data, next to the signing keys, without letting the
//! upload steer it.
//!
//! Every run:
//! - starts in the request's work dir with an environment built from scratch:
//!   nothing of the server's own (no `AWS_*`, no `DIGSIGSERVER_*`, no proxy
//!   settings) reaches the tool, only `PATH`, `HOME` and `TMPDIR` inside the
//!   work dir, `LANG=C.UTF-8` and what the caller names. Variable *names* are
//!   `&'static str`, so a value from an upload can never name a variable
//!   (upstream passes MANIFEST keys into a shell's environment, where
//!   `BASH_ENV=./x.sh` runs the client's code);
//! - reads stdin from `/dev/null` and leads its own process group, so the
//!   whole group (a helper's children too) is signalled together;
//! - is bounded in time: on its timeout the group gets SIGTERM, then SIGKILL
//!   after a grace period; when the caller's future is dropped (client gone,
//!   shutdown) the group gets SIGKILL at once; stragglers left in the group
//!   after the tool itself exits are killed too, so nothing outlives the
//!   request's work dir;
//! - keeps only the last [`ToolRun::output_cap`] bytes of stdout and stderr.
//!
//! The outcome is typed ([`ToolError`]); whether a failure is the client's
//! (4xx) or the operator's (5xx) is the caller's decision.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// `PATH` a tool gets unless the caller adds directories in front.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a tool may run unless the caller says otherwise (upstream allows
/// signing ten minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a tool has to exit after SIGTERM before it gets SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Bytes of stdout and of stderr kept (the tail: errors come last).
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// One run of a vendor tool, built up and then [`run`](ToolRun::run).
#[derive(Debug, Clone)]
pub struct ToolRun {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    path_prepend: Vec<PathBuf>,
    workdir: PathBuf,
    timeout: Duration,
    grace: Duration,
    output_cap: usize,
}

/// What a tool printed (each stream's tail, at most the cap).
#[derive(Debug, Clone, Default)]
pub struct ToolOutput {
    /// The end of what it wrote to stdout.
    pub stdout: Vec<u8>,
    /// The end of what it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ToolOutput {
    /// stderr, or stdout when stderr is empty, as text with the work dir's
    /// path removed: fit for a client's eyes.
    pub fn message(&self, workdir: &Path) -> String {
        let text = if self.stderr.iter().all(u8::is_ascii_whitespace) {
            &self.stdout
        } else {
            &self.stderr
        };
        scrub_paths(String::from_utf8_lossy(text).trim(), workdir)
    }
}

/// Why a tool run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program does not exist (or is not executable).
    #[error("{program} is not installed")]
    NotFound {
        /// The program's name (its file name, not its path).
        program: String,
    },
    /// The program could not be started for another reason.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program's name.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran and exited with a non-zero status.
    #[error("{program} exited with status {code}")]
    Exited {
        /// The program's name.
        program: String,
        /// Its exit status.
        code: i32,
        /// What it printed.
        output: ToolOutput,
    },
    /// It was killed by a signal it did not get from us (a crash: SIGSEGV,
    /// SIGABRT, the OOM killer's SIGKILL).
    #[error("{program} was killed by signal {signal}")]
    Signalled {
        /// The program's name.
        program: String,
        /// The signal number.
        signal: i32,
        /// What it printed.
        output: ToolOutput,
    },
    /// It ran past its timeout and was killed.
    #[error("{program} did not finish within {} s", after.as_secs())]
    TimedOut {
        /// The program's name.
        program: String,
        /// The timeout.
        after: Duration,
        /// What it printed before.
        output: ToolOutput,
    },
}

impl ToolError {
    /// What the tool printed, if it ran.
    pub fn output(&self) -> Option<&ToolOutput> {
        match self {
            ToolError::Exited { output, .. }
            | ToolError::Signalled { output, .. }
            | ToolError::TimedOut { output, .. } => Some(output),
            ToolError::NotFound { .. } | ToolError::Spawn { .. } => None,
        }
    }
}

impl ToolRun {
    /// A run of `program` in `workdir` (which must exist and be private to
    /// the request).
    pub fn new(program: impl Into<PathBuf>, workdir: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            path_prepend: Vec::new(),
            workdir: workdir.into(),
            timeout: DEFAULT_TIMEOUT,
            grace: DEFAULT_GRACE,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// Appends one argument. Callers put values from an upload only after a
    /// `--` or as plain file names they have checked, never as a flag.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable. The name is a compile-time constant on
    /// purpose: no upload can choose it.
    pub fn env(mut self, name: &'static str, value: impl AsRef<OsStr>) -> Self {
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.as_ref().to_owned()));
        self
    }

    /// Puts `dir` in front of the default `PATH`.
    pub fn path_prepend(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path_prepend.push(dir.into());
        self
    }

    /// How long the tool may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long it has between SIGTERM and SIGKILL.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Bytes of each output stream kept.
    pub fn output_cap(mut self, cap: usize) -> Self {
        self.output_cap = cap;
        self
    }

    /// The program's file name, as messages show it.
    fn program_name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }

    /// The environment the tool gets, and nothing else.
    fn environment(&self) -> std::io::Result<Vec<(&'static str, OsString)>> {
        let home = self.workdir.join(".home");
        let tmp = self.workdir.join(".tmp");
        for dir in [&home, &tmp] {
            match std::fs::create_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let mut path = OsString::new();
        for dir in &self.path_prepend {
            path.push(dir.as_os_str());
            path.push(":");
        }
        path.push(DEFAULT_PATH);
        let mut env = vec![
            ("PATH", path),
            ("HOME", home.into_os_string()),
            ("TMPDIR", tmp.into_os_string()),
            ("LANG", "C.UTF-8".into()),
        ];
        for (name, value) in &self.env {
            env.retain(|(n, _)| n != name);
            env.push((name, value.clone()));
        }
        Ok(env)
    }

    /// Runs the tool to completion (or its timeout). Dropping the returned
    /// future kills the tool's whole process group.
    pub async fn run(self) -> Result<ToolOutput, ToolError> {
        let program = self.program_name();
        let env = self.environment().map_err(|source| ToolError::Spawn {
            program: program.clone(),
            source,
        })?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .envs(env)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(ToolError::NotFound { program })
            }
            Err(source) => return Err(ToolError::Spawn { program, source }),
        };
        let group = ProcessGroup(child.id().map(|pid| pid as libc::pid_t));
        let (stdout, stderr) = (Tail::new(self.output_cap), Tail::new(self.output_cap));
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        let readers = async { tokio::join!(stdout.fill(out_pipe), stderr.fill(err_pipe)) };
        let status = async {
            let status = match tokio::time::timeout(self.timeout, child.wait()).await {
                Ok(status) => Ok(status),
                Err(_) => {
                    group.signal(libc::SIGTERM);
                    if tokio::time::timeout(self.grace, child.wait())
                        .await
                        .is_err()
                    {
                        group.signal(libc::SIGKILL);
                        let _ = child.wait().await;
                    }
                    Err(())
                }
            };
            // Whatever the tool left running in its group (a background
            // helper holding the output pipes open) goes with it.
            group.signal(libc::SIGKILL);
            status
        };
        tokio::pin!(readers, status);
        // Output is read while the tool runs (a full pipe would stall it);
        // once it has exited, the pipes get `grace` to close: a helper that
        // left the group (setsid) and kept them open does not hold the run.
        let status = tokio::select! {
            status = &mut status => {
                let _ = tokio::time::timeout(self.grace, &mut readers).await;
                status
            }
            _ = &mut readers => status.await,
        };
        let (stdout, stderr) = (stdout.take(), stderr.take());
        let output = ToolOutput { stdout, stderr };
        match status {
            Err(()) => Err(ToolError::TimedOut {
                program,
                after: self.timeout,
                output,
            }),
            Ok(Err(source)) => Err(ToolError::Spawn { program, source }),
            Ok(Ok(status)) => classify(program, status, output),
        }
    }
}

fn classify(
    program: String,
    status: ExitStatus,
    output: ToolOutput,
) -> Result<ToolOutput, ToolError> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        Ok(output)
    } else if let Some(code) = status.code() {
        Err(ToolError::Exited {
            program,
            code,
            output,
        })
    } else {
        Err(ToolError::Signalled {
            program,
            signal: status.signal().unwrap_or(0),
            output,
        })
    }
}

/// A tool's process group, killed whole when the run is dropped.
struct ProcessGroup(Option<libc::pid_t>);

impl ProcessGroup {
    fn signal(&self, signal: libc::c_int) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the group; no memory
            // is involved. ESRCH (group already gone) is the usual outcome.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// The last `cap` bytes of a stream, filled as it is read.
struct Tail {
    cap: usize,
    kept: std::sync::Mutex<std::collections::VecDeque<u8>>,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Reads `stream` to its end (or until dropped), keeping its tail.
    async fn fill<R: AsyncRead + Unpin>(&self, stream: Option<R>) {
        let Some(mut stream) = stream else { return };
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut kept = self.kept.lock().expect("not poisoned");
                    kept.extend(&buf[..n]);
                    let excess = kept.len().saturating_sub(self.cap);
                    kept.drain(..excess);
                }
            }
        }
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.kept.lock().expect("not poisoned")).into()
    }
}

/// Replaces `workdir` in `text` so a message shows paths relative to the
/// request's own directory and nothing of the server's layout.
pub fn scrub_paths(text: &str, workdir: &Path) -> String {
    let dir = workdir.to_string_lossy();
    if dir.is_empty() || dir == "/" {
        return text.to_string();
    }
    text.replace(&format!("{dir}/"), "")
        .replace(dir.as_ref(), ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_messages_are_relative_to_the_work_dir() {
        let dir = Path::new("/var/tmp/digsig-x1");
        assert_eq!(
            scrub_paths(
                "cannot open /var/tmp/digsig-x1/csf.txt in /var/tmp/digsig-x1",
                dir
            ),
            "cannot open csf.txt in ."
        );
    }
}
