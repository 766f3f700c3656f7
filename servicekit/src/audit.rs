//! The audit log (`DIGSIGSERVER_AUDIT_LOG`): one JSON line per signing
//! request, written and fsynced before the reply goes out.
//!
//! Every domain's record is made at the same point, this layer around the
//! endpoints: who asked (the client the access guard authenticated, the
//! source address), what for (the endpoint; the machine or distro whose keys
//! were fetched), with what (each key file used, by the SHA-256 fingerprint
//! of its public key or certificate, recorded where keys are fetched; never
//! key bytes), on what (the SHA-256 of each uploaded artifact, which the
//! domains report through [`record_bytes`] / [`record_file`]), and how it
//! ended (status, duration). If the record cannot be written, the signed
//! result is not returned: the client gets a 503, as Vault does when its
//! audit device fails.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use keystore::key_trail::{with_key_trail, KeyTrail};
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::config::{ConfigError, Settings};

/// Names the audit log file.
pub const AUDIT_LOG_VAR: &str = "DIGSIGSERVER_AUDIT_LOG";

/// The audit log of one server.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    failures: AtomicU64,
}

impl AuditLog {
    /// The log `DIGSIGSERVER_AUDIT_LOG` names, opened for appending (created
    /// 0600); none when it is unset. A log that cannot be opened stops the
    /// server at start.
    pub fn from_settings(settings: &Settings) -> Result<Option<Arc<Self>>, ConfigError> {
        let Some(path) = settings.get(AUDIT_LOG_VAR).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        Self::open(path.trim())
            .map(|log| Some(Arc::new(log)))
            .map_err(|e| ConfigError {
                name: AUDIT_LOG_VAR,
                value: path.clone(),
                reason: format!("cannot open it for appending: {e}").into(),
            })
    }

    /// Opens `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
            failures: AtomicU64::new(0),
        })
    }

    /// Records that could not be written since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn append(&self, record: &serde_json::Value) -> io::Result<()> {
        let mut line = record.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }

    /// `ep`, each `/sign/*` request recorded.
    pub fn guard<E: Endpoint>(self: &Arc<Self>, ep: E) -> Audited<E> {
        Audited {
            inner: ep,
            log: Arc::clone(self),
        }
    }
}

/// Where the access guard leaves the caller's name for the record.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<Option<String>>>);

impl CallerSlot {
    /// Sets the caller's name.
    pub fn set(&self, name: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The uploads of the request being handled, by field, as hex SHA-256.
#[derive(Debug, Default)]
pub struct ArtifactTrail(Mutex<Vec<(String, String)>>);

impl ArtifactTrail {
    /// Records `bytes` as field `field`.
    pub fn add_bytes(&self, field: &str, bytes: &[u8]) {
        self.add_sha256(field, openssl::sha::sha256(bytes));
    }

    /// Records the content of `file` (read from its start, and left at its
    /// start) as field `field`.
    pub fn add_file(&self, field: &str, file: &mut (impl Read + Seek)) -> io::Result<()> {
        file.rewind()?;
        let mut hasher = openssl::sha::Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        file.rewind()?;
        self.add_sha256(field, hasher.finish());
        Ok(())
    }

    /// Records an upload by its SHA-256 (one hashed as it was read).
    pub fn add_sha256(&self, field: &str, digest: [u8; 32]) {
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((field.to_string(), hex));
    }

    fn entries(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

tokio::task_local! {
    static ARTIFACTS: Arc<ArtifactTrail>;
}

/// The artifact trail of the request being handled, when it is audited (to
/// take into a blocking task).
pub fn current_trail() -> Option<Arc<ArtifactTrail>> {
    ARTIFACTS.try_with(Arc::clone).ok()
}

/// Records an upload held in memory (nothing when not audited).
pub fn record_bytes(field: &str, bytes: &[u8]) {
    if let Some(trail) = current_trail() {
        trail.add_bytes(field, bytes);
    }
}

/// Records the file at `path` (nothing when not audited).
pub async fn record_file(field: &str, path: &Path) -> io::Result<()> {
    let Some(trail) = current_trail() else {
        return Ok(());
    };
    let (field, path) = (field.to_string(), path.to_path_buf());
    tokio::task::spawn_blocking(move || trail.add_file(&field, &mut File::open(path)?))
        .await
        .map_err(io::Error::other)?
}

/// See [`AuditLog::guard`].
pub struct Audited<E> {
    inner: E,
    log: Arc<AuditLog>,
}

impl<E: Endpoint> Endpoint for Audited<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !req.uri().path().starts_with("/sign/") {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let started = Instant::now();
        let time = SystemTime::now();
        let header = |name: &str| {
            req.header(name)
                .map(|v| v.chars().take(256).collect::<String>())
        };
        let request_id = header(crate::telemetry::REQUEST_ID_HEADER);
        let forwarded_for = header("x-forwarded-for");
        let source = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string());
        let endpoint: String = req.uri().path().chars().take(128).collect();
        let caller = CallerSlot::default();
        req.extensions_mut().insert(caller.clone());
        let artifacts = Arc::new(ArtifactTrail::default());
        let keys = Arc::new(KeyTrail::default());
        let result = with_key_trail(
            Arc::clone(&keys),
            ARTIFACTS.scope(Arc::clone(&artifacts), self.inner.call(req)),
        )
        .await
        .map(IntoResponse::into_response);
        let status = match &result {
            Ok(resp) => resp.status().as_u16(),
            Err(err) => err.status().as_u16(),
        };
        let keys = keys.uses();
        let selector = keys.first().map(|k| k.selector.clone());
        let record = serde_json::json!({
            "time": rfc3339(time),
            "request_id": request_id,
            "client": caller.get(),
            "source": source,
            "forwarded_for": forwarded_for,
            "endpoint": endpoint,
            "machine_or_distro": selector,
            "artifacts": artifacts.entries().into_iter().map(|(field, sha256)| {
                serde_json::json!({"field": field, "sha256": sha256})
            }).collect::<Vec<_>>(),
            "keys": keys.iter().map(|k| serde_json::json!({
                "machine_or_distro": k.selector,
                "signtype": k.signtype.dir_name(),
                "file": k.file,
                "fingerprint_sha256": k.fingerprint,
            })).collect::<Vec<_>>(),
            "status": status,
            "duration_ms": started.elapsed().as_millis() as u64,
        });
        match self.log.append(&record) {
            Ok(()) => result,
            Err(e) => {
                self.log.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %self.log.path.display(), error = %e, "audit record not written: the reply is withheld");
                Ok(
                    "the audit record of this request could not be written, so its result is withheld; the operator must fix the audit log (DIGSIGSERVER_AUDIT_LOG)\n"
                        .with_content_type("text/plain; charset=utf-8")
                        .with_status(StatusCode::SERVICE_UNAVAILABLE)
                        .into_response(),
                )
            }
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_996_800_123);
        assert_eq!(rfc3339(t), "2026-11-30T00:00:00.123Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_file_is_hashed_and_left_at_its_start() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"abc").unwrap();
        let trail = ArtifactTrail::default();
        trail.add_file("artifact", &mut file).unwrap();
        assert_eq!(
            trail.entries()[0].1,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "abc");
    }
}
