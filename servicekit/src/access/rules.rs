//! The access file (`DIGSIGSERVER_ACCESS_FILE`): clients, the SHA-256 of
//! their tokens, and what each may sign. Re-read when it changes (checked at
//! each signing request) or on SIGHUP; a file that no longer parses keeps
//! the rules in force and the log says why.
//!
//! ```toml
//! [[client]]
//! name = "farm-a"
//! token_sha256 = "<hex sha256 of the token>"   # never the token itself
//! allow = ["modules:jetson-*", "tegra:jetson-*", "mender:*"]
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use keystore::access::{AllowRule, Grant};
use serde::Deserialize;

/// Most bytes of an access file.
const MAX_ACCESS_FILE_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLayout {
    #[serde(default)]
    client: Vec<ClientLayout>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientLayout {
    name: String,
    token_sha256: String,
    #[serde(default)]
    allow: Vec<String>,
}

/// One client of the access file.
#[derive(Debug, Clone)]
struct Client {
    token_sha256: [u8; 32],
    grant: Arc<Grant>,
}

/// The clients of one reading of the file.
#[derive(Debug, Clone, Default)]
pub struct Clients(Vec<Client>);

impl Clients {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let layout: FileLayout = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut clients: Vec<Client> = Vec::new();
        for (index, c) in layout.client.into_iter().enumerate() {
            let at = format!("[[client]] {} ({:?})", index + 1, c.name);
            if c.name.is_empty()
                || c.name.len() > 128
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            {
                return Err(format!("{at}: name must be 1-128 of A-Z a-z 0-9 . _ -"));
            }
            if clients.iter().any(|o| o.grant.client == c.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            let hash = decode_sha256(&c.token_sha256).ok_or_else(|| {
                format!("{at}: token_sha256 must be 64 hex digits (sha256sum of the token), never the token itself")
            })?;
            if clients.iter().any(|o| o.token_sha256 == hash) {
                return Err(format!("{at}: token_sha256 is used by another client"));
            }
            let allow = c
                .allow
                .iter()
                .map(|a| AllowRule::parse(a).map_err(|e| format!("{at}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            clients.push(Client {
                token_sha256: hash,
                grant: Arc::new(Grant {
                    client: c.name,
                    allow,
                }),
            });
        }
        Ok(Self(clients))
    }

    /// The grant of the client whose token is `token`. Every client's hash
    /// is compared, each in constant time, so timing tells nothing of which
    /// (or whether one) matched.
    pub fn authenticate(&self, token: &[u8]) -> Option<Arc<Grant>> {
        let presented = openssl::sha::sha256(token);
        let mut found = None;
        for client in &self.0 {
            if openssl::memcmp::eq(&presented, &client.token_sha256) {
                found = Some(Arc::clone(&client.grant));
            }
        }
        found
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

fn read(path: &Path) -> Result<Clients, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ACCESS_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read it: {e}"))?;
    Clients::parse(&text)
}

/// The access file, kept current.
#[derive(Debug)]
pub struct AccessFile {
    path: PathBuf,
    clients: RwLock<Arc<Clients>>,
    stamp: Mutex<Option<Stamp>>,
}

impl AccessFile {
    /// Reads the file at `path`; an error says what is wrong with it.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let stamp = stamp(&path);
        let clients = read(&path)?;
        Ok(Self {
            path,
            clients: RwLock::new(Arc::new(clients)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The clients in force, after re-reading the file if it changed.
    pub fn clients(&self) -> Arc<Clients> {
        let now = stamp(&self.path);
        let changed = {
            let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
            if *last != now {
                *last = now;
                true
            } else {
                false
            }
        };
        if changed {
            self.reload();
        }
        Arc::clone(&self.clients.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the file; a broken one keeps the rules in force.
    pub fn reload(&self) {
        match read(&self.path) {
            Ok(clients) => {
                tracing::info!(
                    file = %self.path.display(),
                    clients = clients.len(),
                    "access file re-read"
                );
                *self.clients.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(clients);
            }
            Err(e) => tracing::error!(
                file = %self.path.display(),
                error = %e,
                "access file not re-read: it is broken; the rules read before stay in force"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn file(token: &str) -> String {
        format!(
            "[[client]]\nname = \"farm-a\"\ntoken_sha256 = \"{}\"\nallow = [\"modules:jetson-*\", \"mender:*\"]\n",
            hex(&openssl::sha::sha256(token.as_bytes()))
        )
    }

    #[test]
    fn a_token_finds_its_client() {
        let clients = Clients::parse(&file("s3cret")).unwrap();
        let grant = clients.authenticate(b"s3cret").unwrap();
        assert_eq!(grant.client, "farm-a");
        assert!(grant.allows("modules", "jetson-nano"));
        assert!(!grant.allows("tegra", "jetson-nano"));
        assert!(clients.authenticate(b"s3cre").is_none());
        assert!(clients.authenticate(b"").is_none());
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        for (text, says) in [
            (
                "[[client]]\nname = \"a\"\ntoken_sha256 = \"abc\"\n",
                "64 hex digits",
            ),
            (
                "[[client]]\nname = \"a b\"\ntoken_sha256 = \"abc\"\n",
                "name must be",
            ),
            ("[[client]]\nname = \"a\"\ntoken = \"x\"\n", "unknown field"),
            ("[[client]\n", "expected"),
        ] {
            let err = Clients::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let twice = format!("{}{}", file("x"), file("y"));
        assert!(Clients::parse(&twice).unwrap_err().contains("used twice"));
        let bad_rule = file("x").replace("mender:*", "kmod:*");
        assert!(Clients::parse(&bad_rule)
            .unwrap_err()
            .contains("is not one of"));
    }

    #[test]
    fn a_changed_file_is_reread_and_a_broken_one_keeps_the_old_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.toml");
        std::fs::write(&path, file("one")).unwrap();
        let access = AccessFile::load(&path).unwrap();
        assert!(access.clients().authenticate(b"one").is_some());
        // A new file (new inode) with another token.
        let next = dir.path().join("next.toml");
        std::fs::write(&next, file("two")).unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(access.clients().authenticate(b"two").is_some());
        assert!(access.clients().authenticate(b"one").is_none());
        // Broken: the rules read before stay.
        std::fs::write(&next, "[[client]\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(access.clients().authenticate(b"two").is_some());
    }
}
