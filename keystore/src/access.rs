//! Who may use which keys: a caller's grant, checked where a key is fetched.
//!
//! The HTTP layer authenticates a caller (a token at the gateway, or the
//! gateway's word at a routed service) and runs the request's handler with
//! the caller's [`Grant`] in scope ([`with_grant`]). A key store that
//! [requires grants](crate::KeyStore::require_grants) then fetches a key only
//! for a caller whose grant allows the endpoint and machine/distro the key
//! belongs to, so in every domain, embedded or routed, no key is read
//! without one, whatever the handler does.

use std::future::Future;
use std::sync::Arc;

use crate::SignType;

/// The endpoints access rules name, by the sign type whose keys they use.
pub const ENDPOINTS: [(&str, SignType); 6] = [
    ("modules", SignType::Kmod),
    ("optee", SignType::Optee),
    ("swupdate", SignType::Swupdate),
    ("mender", SignType::Mender),
    ("imx", SignType::Imx),
    ("tegra", SignType::Tegra),
];

/// The endpoint whose requests use `signtype`'s keys, if rules name one.
pub fn endpoint_of(signtype: SignType) -> Option<&'static str> {
    ENDPOINTS
        .iter()
        .find(|(_, s)| *s == signtype)
        .map(|(e, _)| *e)
}

/// One `allow` entry: `<endpoint>:<glob over machine or distro>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    endpoint: &'static str,
    pattern: String,
}

impl AllowRule {
    /// Parses `modules:jetson-*`. The glob has `*` (any run of characters)
    /// and `?` (one character); other characters match themselves.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (endpoint, pattern) = text
            .split_once(':')
            .ok_or_else(|| format!("allow entry {text:?} is not <endpoint>:<machine glob>"))?;
        let endpoint = ENDPOINTS
            .iter()
            .map(|(e, _)| *e)
            .find(|e| *e == endpoint)
            .ok_or_else(|| {
                format!(
                    "allow entry {text:?}: endpoint {endpoint:?} is not one of {}",
                    ENDPOINTS.map(|(e, _)| e).join(", ")
                )
            })?;
        if pattern.is_empty()
            || !pattern.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-' | '*' | '?')
            })
        {
            return Err(format!(
                "allow entry {text:?}: the machine glob may hold only A-Z a-z 0-9 . _ + - * ?"
            ));
        }
        Ok(Self {
            endpoint,
            pattern: pattern.to_string(),
        })
    }

    /// Whether this rule lets `endpoint` use the keys of `selector`.
    pub fn allows(&self, endpoint: &str, selector: &str) -> bool {
        self.endpoint == endpoint && glob_match(self.pattern.as_bytes(), selector.as_bytes())
    }
}

impl std::fmt::Display for AllowRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.endpoint, self.pattern)
    }
}

/// `*` and `?` globbing, iteratively (no backtracking blow-up).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// What an authenticated caller may do: its name and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client's name (never its token).
    pub client: String,
    /// Its `allow` rules.
    pub allow: Vec<AllowRule>,
}

impl Grant {
    /// Whether the caller may use `endpoint` for `selector`.
    pub fn allows(&self, endpoint: &str, selector: &str) -> bool {
        self.allow.iter().any(|r| r.allows(endpoint, selector))
    }
}

tokio::task_local! {
    static CALLER: Arc<Grant>;
}

/// Runs `fut` (a request's handler) on behalf of the caller `grant`.
pub async fn with_grant<F: Future>(grant: Arc<Grant>, fut: F) -> F::Output {
    CALLER.scope(grant, fut).await
}

/// The grant of the caller whose request is being handled, if any.
pub fn current_grant() -> Option<Arc<Grant>> {
    CALLER.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_machine_names() {
        let rule = AllowRule::parse("modules:jetson-*").unwrap();
        assert!(rule.allows("modules", "jetson-nano"));
        assert!(rule.allows("modules", "jetson-"));
        assert!(!rule.allows("modules", "xjetson-nano"));
        assert!(!rule.allows("tegra", "jetson-nano"));
        let rule = AllowRule::parse("mender:*").unwrap();
        assert!(rule.allows("mender", "anything.at-all"));
        let rule = AllowRule::parse("swupdate:product-?").unwrap();
        assert!(rule.allows("swupdate", "product-b"));
        assert!(!rule.allows("swupdate", "product-bb"));
        let rule = AllowRule::parse("imx:*-evk*").unwrap();
        assert!(rule.allows("imx", "imx8mm-evk"));
        assert!(rule.allows("imx", "a-evk-b"));
        assert!(!rule.allows("imx", "evk"));
        // No exponential backtracking.
        let rule = AllowRule::parse(&format!("optee:{}b", "*a".repeat(20))).unwrap();
        assert!(!rule.allows("optee", &"a".repeat(100)));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (bad, says) in [
            ("modules", "is not <endpoint>"),
            ("kmod:x", "is not one of modules"),
            ("modules:", "may hold only"),
            ("modules:a/b", "may hold only"),
        ] {
            let err = AllowRule::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn every_endpoint_has_its_sign_type() {
        assert_eq!(endpoint_of(SignType::Kmod), Some("modules"));
        assert_eq!(endpoint_of(SignType::Tegra), Some("tegra"));
        assert_eq!(endpoint_of(SignType::FitImage), None);
    }

    #[tokio::test]
    async fn the_grant_is_in_scope_only_inside_the_handler() {
        assert!(current_grant().is_none());
        let grant = Arc::new(Grant {
            client: "farm-a".into(),
            allow: vec![AllowRule::parse("modules:*").unwrap()],
        });
        let seen = with_grant(grant, async { current_grant().map(|g| g.client.clone()) }).await;
        assert_eq!(seen.as_deref(), Some("farm-a"));
        assert!(current_grant().is_none());
    }
}
