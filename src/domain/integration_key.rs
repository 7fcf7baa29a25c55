//! Integration keys as customers hold them: `onr_ik_<key id>_<secret>_<checksum>`. The typed
//! prefix lets secret scanners recognise a leaked key; the checksum (the first 8 hex digits of
//! the SHA-256 of everything before it) lets Onramp refuse a mistyped or made-up key without a
//! database look-up. The key id is 16 hex digits, the secret 64 (32 random bytes).

use sha2::{Digest, Sha256};

/// What every integration key starts with.
pub const PREFIX: &str = "onr_ik_";

/// An integration key taken apart.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// The public key id.
    pub key_id: String,
    /// The secret part.
    pub secret: String,
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParsedKey({}, [redacted])", self.key_id)
    }
}

fn checksum(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..4])
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The whole key for an id and a secret.
pub fn format_key(key_id: &str, secret: &str) -> String {
    let body = format!("{PREFIX}{key_id}_{secret}");
    let sum = checksum(&body);
    format!("{body}_{sum}")
}

/// A new random key id and secret.
pub fn generate(rng: &mut impl rand::RngCore) -> (String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    (hex::encode(id), hex::encode(secret))
}

/// Takes a key apart, refusing anything that is not a well-formed key with a good checksum.
pub fn parse(key: &str) -> Option<ParsedKey> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.split('_');
    let (id, secret, sum) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_hex(id, 16) || !is_hex(secret, 64) || !is_hex(sum, 8) {
        return None;
    }
    let body = &key[..key.len() - sum.len() - 1];
    if checksum(body) != sum {
        return None;
    }
    Some(ParsedKey {
        key_id: id.to_owned(),
        secret: secret.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let (id, secret) = generate(&mut rand::rngs::OsRng);
        let key = format_key(&id, &secret);
        assert!(key.starts_with("onr_ik_"));
        let p = parse(&key).unwrap();
        assert_eq!(
            (p.key_id.as_str(), p.secret.as_str()),
            (id.as_str(), secret.as_str())
        );
        assert!(!format!("{p:?}").contains(&secret));
    }

    #[test]
    fn refuses_typos_and_forgeries_without_a_look_up() {
        let (id, secret) = generate(&mut rand::rngs::OsRng);
        let key = format_key(&id, &secret);
        let mut flipped = key.clone().into_bytes();
        let i = PREFIX.len() + 20;
        flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
        for bad in [
            String::from_utf8(flipped).unwrap(),
            key.replace("onr_ik_", "onr_at_"),
            key[..key.len() - 1].to_owned(),
            format!("{key}_x"),
            key.to_uppercase(),
            String::new(),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
