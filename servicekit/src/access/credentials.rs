//! The token a request presents: `Authorization: Bearer <token>`, or HTTP
//! Basic with the token as the password (curl sends that by itself for
//! `http://farm-a:TOKEN@host:9999`, so a bbclass user changes only
//! `DIGSIG_SERVER`).

use poem::http::header::AUTHORIZATION;
use poem::http::HeaderMap;
use zeroize::Zeroizing;

/// Why no token could be read (a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// No `Authorization` header.
    #[error("this server signs only for known clients: send a token (Authorization: Bearer <token>, or http://<name>:<token>@host in DIGSIG_SERVER)")]
    Missing,
    /// An `Authorization` header this server does not read.
    #[error("the Authorization header is not Bearer <token> or Basic <base64 of name:token>")]
    Malformed,
}

/// The token presented in `headers`.
pub fn presented_token(headers: &HeaderMap) -> Result<Zeroizing<Vec<u8>>, CredentialsError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(CredentialsError::Missing)?
        .as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], &value[at + 1..]),
        None => return Err(CredentialsError::Malformed),
    };
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") && !rest.is_empty() {
        return Ok(Zeroizing::new(rest.to_vec()));
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let text = std::str::from_utf8(rest).map_err(|_| CredentialsError::Malformed)?;
        let decoded = Zeroizing::new(
            openssl::base64::decode_block(text).map_err(|_| CredentialsError::Malformed)?,
        );
        // user:password; the user name is not checked (the token says who).
        let at = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(CredentialsError::Malformed)?;
        let password = &decoded[at + 1..];
        if password.is_empty() {
            return Err(CredentialsError::Malformed);
        }
        return Ok(Zeroizing::new(password.to_vec()));
    }
    Err(CredentialsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_give_the_token() {
        assert_eq!(
            &presented_token(&headers("Bearer s3cret")).unwrap()[..],
            b"s3cret"
        );
        assert_eq!(
            &presented_token(&headers("bearer  s3cret ")).unwrap()[..],
            b"s3cret"
        );
        // curl -u farm-a:s3cret
        let basic = format!("Basic {}", openssl::base64::encode_block(b"farm-a:s3cret"));
        assert_eq!(&presented_token(&headers(&basic)).unwrap()[..], b"s3cret");
        let colon = format!("Basic {}", openssl::base64::encode_block(b"a:b:c"));
        assert_eq!(&presented_token(&headers(&colon)).unwrap()[..], b"b:c");
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(
            presented_token(&HeaderMap::new()),
            Err(CredentialsError::Missing)
        );
        for bad in ["Bearer", "Bearer ", "Digest x", "Basic !!!", "s3cret"] {
            assert_eq!(
                presented_token(&headers(bad)),
                Err(CredentialsError::Malformed),
                "{bad}"
            );
        }
        let no_password = format!("Basic {}", openssl::base64::encode_block(b"farm-a:"));
        assert_eq!(
            presented_token(&headers(&no_password)),
            Err(CredentialsError::Malformed)
        );
    }
}
