//! The opt-in parsed-key cache (`DIGSIGSERVER_KEY_CACHE_SECONDS`, default 0:
//! off).
//!
//! Off, every request fetches its keys and drops them when it ends, as
//! upstream promises. Most of a small request's CPU is then key set-up, not
//! signing: reading and parsing the key, and for RSA the first signature's
//! Montgomery and blinding set-up (issue 20 measured ~0.55 ms of ~1.7 ms per
//! SWUpdate request). An operator who accepts keys staying in the server's
//! memory for a while can turn the cache on:
//!
//! - What is kept is the domain's parsed signer (an OpenSSL key, a module
//!   signer), never the key file's bytes, which are wiped once parsed.
//! - OpenSSL's secure heap is set up when the cache is on, so the private
//!   numbers it parses live in locked memory (not swapped, not in core
//!   dumps), cleared when freed.
//! - An entry is dropped, and its key freed and cleared, `ttl` after it was
//!   fetched (a sweeper runs even when no request comes), so a rotated key
//!   is picked up within `ttl`.
//! - Access control is checked on every request, hit or miss, and the audit
//!   record names the keys used on a hit exactly as on a fetch.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::key_trail::{self, KeyTrail, KeyUse};
use crate::SignType;

/// The setting that turns the cache on: whole seconds, 0 (the default) off.
pub const KEY_CACHE_VAR: &str = "DIGSIGSERVER_KEY_CACHE_SECONDS";

/// Which parsed signer an entry holds: the machine or distro, the sign type,
/// and the domain's name for what it built (e.g. `modules/sha512`).
type EntryId = (String, SignType, &'static str);

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    uses: Vec<KeyUse>,
    expires: Instant,
}

/// Parsed signers shared by the requests of one key store.
#[derive(Clone)]
pub(crate) struct ParsedCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<EntryId, Entry>>>,
}

impl std::fmt::Debug for ParsedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the entries: only how long they live.
        f.debug_struct("ParsedCache")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ParsedCache {
    /// A cache keeping entries for `ttl`; sets up OpenSSL's secure heap and
    /// starts the sweeper (inside a Tokio runtime).
    pub(crate) fn new(ttl: Duration) -> Self {
        secure_heap::init();
        let cache = Self {
            ttl,
            entries: Arc::default(),
        };
        let weak = Arc::downgrade(&cache.entries);
        let period = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(sweep(weak, period));
        cache
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The entry's value if it is cached and fresh (its key uses go on the
    /// request's trail), else what `load` builds, cached.
    pub(crate) async fn get_or_load<T, E, F, Fut>(&self, id: EntryId, load: F) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let hit = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&id) {
                Some(entry) if entry.expires > Instant::now() => {
                    Some((Arc::clone(&entry.value), entry.uses.clone()))
                }
                Some(_) => {
                    entries.remove(&id);
                    None
                }
                None => None,
            }
        };
        if let Some((value, uses)) = hit {
            if let Ok(value) = value.downcast::<T>() {
                replay(uses);
                return Ok(value);
            }
        }
        // Record what `load` fetches on a trail of its own, to replay on hits.
        let trail = Arc::new(KeyTrail::default());
        let loaded = key_trail::with_key_trail(Arc::clone(&trail), load()).await;
        let uses = trail.uses();
        // Keys fetched before a failure are on the request's record too.
        replay(uses.clone());
        let value = Arc::new(loaded?);
        let entry = Entry {
            value: Arc::clone(&value) as Arc<dyn Any + Send + Sync>,
            uses,
            expires: Instant::now() + self.ttl,
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry);
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// Puts key uses on the current request's trail, if it has one.
fn replay(uses: Vec<KeyUse>) {
    if let Some(trail) = key_trail::current() {
        for key in uses {
            trail.add(key);
        }
    }
}

/// Drops expired entries every `period` until the cache is gone.
async fn sweep(entries: Weak<Mutex<HashMap<EntryId, Entry>>>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(entries) = entries.upgrade() else {
            return;
        };
        let now = Instant::now();
        // Dropped outside the lock: freeing a key clears its memory.
        let expired: Vec<Entry> = {
            let mut entries = entries.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<EntryId> = entries
                .iter()
                .filter(|(_, e)| e.expires <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| entries.remove(id)).collect()
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "parsed keys expired");
        }
    }
}

/// OpenSSL's secure heap: private key numbers that OpenSSL parses go there
/// (locked in memory, excluded from core dumps, cleared when freed).
pub(crate) mod secure_heap {
    use std::os::raw::c_int;
    use std::sync::Once;

    extern "C" {
        // libcrypto's public API, not bound by openssl-sys.
        fn CRYPTO_secure_malloc_init(size: usize, minsize: usize) -> c_int;
    }

    /// At least 4 MiB; more on large hosts, where every signing thread of
    /// every concurrent job may hold a copy of a key (about 16 KiB for an
    /// RSA-4096 key with OpenSSL's own copies). A power of two, as OpenSSL
    /// needs. A full secure heap fails the allocation (a 500), it does not
    /// fall back to ordinary memory.
    fn size() -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cores * cores * 16 * 1024).next_power_of_two().max(4 << 20)
    }

    static INIT: Once = Once::new();

    /// Sets the secure heap up once per process. Where the memory cannot be
    /// locked (RLIMIT_MEMLOCK too low), OpenSSL still uses it, unlocked:
    /// that is logged, with what to change.
    pub fn init() {
        INIT.call_once(|| {
            openssl::init();
            // SAFETY: called once, before any secure allocation is made by us.
            let size = size();
            match unsafe { CRYPTO_secure_malloc_init(size, 32) } {
                1 => tracing::info!("parsed keys are kept in locked memory"),
                2 => tracing::warn!(
                    "parsed keys are kept in memory that could not be locked; raise the memlock limit (ulimit -l, or the container's) to at least {} KiB",
                    size / 1024
                ),
                _ => tracing::warn!("OpenSSL's secure heap could not be set up; parsed keys are kept in ordinary memory"),
            }
        });
    }

    /// Bytes of the secure heap in use.
    #[cfg(test)]
    pub fn used() -> usize {
        extern "C" {
            fn CRYPTO_secure_used() -> usize;
        }
        // SAFETY: a plain query.
        unsafe { CRYPTO_secure_used() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_reused_until_they_expire_and_then_swept() {
        let cache = ParsedCache::new(Duration::from_millis(300));
        let id = || ("m".to_string(), SignType::Kmod, "test");
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, ()>(42u32)
        };
        assert_eq!(*cache.get_or_load(id(), load).await.unwrap(), 42);
        assert_eq!(*cache.get_or_load(id(), load).await.unwrap(), 42);
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A failed load is not cached.
        let other = ("n".to_string(), SignType::Kmod, "test");
        assert!(cache
            .get_or_load(other, || async { Err::<u32, _>(()) })
            .await
            .is_err());
        assert_eq!(cache.len(), 1);
        // The sweeper drops the entry once it expires, with no request.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(cache.len(), 0);
        assert_eq!(*cache.get_or_load(id(), load).await.unwrap(), 42);
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn private_key_numbers_parsed_after_init_live_in_the_secure_heap() {
        secure_heap::init();
        let der = openssl::rsa::Rsa::generate(2048)
            .unwrap()
            .private_key_to_der()
            .unwrap();
        let before = secure_heap::used();
        let key = openssl::rsa::Rsa::private_key_from_der(&der).unwrap();
        let during = secure_heap::used();
        assert!(
            during > before,
            "parsing an RSA key took no secure memory ({before} -> {during})"
        );
        drop(key);
        assert!(secure_heap::used() < during);
    }
}
