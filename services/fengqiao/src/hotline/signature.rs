//! Request signatures, both ways: HMAC-SHA256 over `"{timestamp}.{body}"` with a shared secret
//! named by a key id, sent in three headers. The hotline signs what it posts to Fengqiao with an
//! inbound key; Fengqiao signs its callbacks with the outbound key. A timestamp outside the replay
//! window is refused even when the signature is right, so a captured request cannot be replayed
//! later. `docs/hotline.md` has a worked example.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::settings::HmacKey;

/// Header naming the key that signed the request.
pub const KEY_ID: &str = "x-fengqiao-key-id";
/// Header carrying the signing time, in whole seconds since the Unix epoch.
pub const TIMESTAMP: &str = "x-fengqiao-timestamp";
/// Header carrying `v1=` and the lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub const SIGNATURE: &str = "x-fengqiao-signature";

/// Why a request's signature was refused. Each is answered 401 with its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is not valid text")]
    Unreadable(&'static str),
    #[error("key id {0:?} is not a key Fengqiao knows")]
    UnknownKey(String),
    #[error("the timestamp is not a whole number of seconds since the Unix epoch")]
    BadTimestamp,
    #[error("the timestamp is {skew} s away from Fengqiao's clock; at most {window} s are accepted (replay window)")]
    Stale { skew: i64, window: u64 },
    #[error("the signature is not in the form v1=<64 hex digits>")]
    BadFormat,
    #[error("the signature does not match the body and timestamp for this key")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for `body` signed at `timestamp` (seconds) with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let mut hex = String::with_capacity(3 + 2 * digest.len());
    hex.push_str("v1=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The three headers signing `body` with `key` at `timestamp` (seconds).
pub fn headers(key: &HmacKey, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    [(KEY_ID, key.kid.clone()), (TIMESTAMP, timestamp.to_string()), (SIGNATURE, sign(&key.secret, timestamp, body))]
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Checks a request: its key id names one of `keys`, its timestamp lies within `window_secs` of
/// `now_secs`, and its signature matches `body`. Returns the key id that signed it.
///
/// `header` reads a header by (lowercase) name.
///
/// # Errors
/// The first thing wrong, as a [`SignatureError`].
pub fn verify<'k>(
    keys: &'k [HmacKey],
    header: impl Fn(&'static str) -> Option<Result<String, ()>>,
    body: &[u8],
    now_secs: i64,
    window_secs: u64,
) -> Result<&'k str, SignatureError> {
    let read = |name: &'static str| match header(name) {
        None => Err(SignatureError::Missing(name)),
        Some(Err(())) => Err(SignatureError::Unreadable(name)),
        Some(Ok(value)) => Ok(value),
    };
    let kid = read(KEY_ID)?;
    let timestamp = read(TIMESTAMP)?;
    let signature = read(SIGNATURE)?;
    let key = keys.iter().find(|k| k.kid == kid.trim()).ok_or_else(|| SignatureError::UnknownKey(kid.clone()))?;
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now_secs.saturating_sub(timestamp);
    if skew.unsigned_abs() > window_secs {
        return Err(SignatureError::Stale { skew, window: window_secs });
    }
    let given = signature.trim().strip_prefix("v1=").and_then(unhex).ok_or(SignatureError::BadFormat)?;
    if given.len() != 32 {
        return Err(SignatureError::BadFormat);
    }
    // Constant-time comparison.
    mac(&key.secret, timestamp, body).verify_slice(&given).map_err(|_| SignatureError::Mismatch)?;
    Ok(&key.kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<HmacKey> {
        vec![HmacKey { kid: "k1".to_owned(), secret: "s3cret".to_owned() }]
    }

    fn check(headers: &[(&'static str, String)], body: &[u8], now: i64) -> Result<String, SignatureError> {
        let keys = key();
        let lookup = |name: &'static str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| Ok(v.clone()));
        verify(&keys, lookup, body, now, 300).map(str::to_owned)
    }

    #[test]
    fn worked_example_of_the_docs() {
        // docs/hotline.md shows this computation; keep the two in step.
        let body = br#"{"order_number":"GD20261123001"}"#;
        assert_eq!(
            sign("s3cret", 1_795_420_800, body),
            "v1=24e9f54e74e3fdb53f2cb68bf9506f2d6767e243b8284359ad4ef199acb21ca8"
        );
    }

    #[test]
    fn accepts_its_own_signature_and_refuses_every_alteration() {
        let body = b"{\"a\":1}";
        let signed = headers(&key()[0], 1000, body).to_vec();
        assert_eq!(check(&signed, body, 1100), Ok("k1".to_owned()));
        assert_eq!(check(&signed, b"{\"a\":2}", 1100), Err(SignatureError::Mismatch));
        assert!(matches!(check(&signed, body, 1400), Err(SignatureError::Stale { skew: 400, window: 300 })));
        assert!(matches!(check(&signed, body, 600), Err(SignatureError::Stale { skew: -400, .. })));
        let wrong = headers(&HmacKey { kid: "k1".to_owned(), secret: "other".to_owned() }, 1000, body).to_vec();
        assert_eq!(check(&wrong, body, 1000), Err(SignatureError::Mismatch));
        let unknown = headers(&HmacKey { kid: "k9".to_owned(), secret: "s3cret".to_owned() }, 1000, body).to_vec();
        assert_eq!(check(&unknown, body, 1000), Err(SignatureError::UnknownKey("k9".to_owned())));
        assert_eq!(check(&signed[..2], body, 1000), Err(SignatureError::Missing(SIGNATURE)));
        let mut garbled = signed.clone();
        garbled[2].1 = "v1=zz".to_owned();
        assert_eq!(check(&garbled, body, 1000), Err(SignatureError::BadFormat));
    }
}
