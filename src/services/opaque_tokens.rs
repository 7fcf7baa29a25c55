//! Opaque bearer tokens the capabilities hand out (signup resume tokens and verification links,
//! portal sessions, account links): a prefix naming the kind, then 256 random bits in lower-case
//! hex. Only a token's SHA-256 is stored (256 random bits leave nothing to brute-force, so no
//! salt or slow hash is needed), and a token not of its kind's form is refused before any
//! look-up.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new token of the kind `prefix` names.
pub fn mint(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What is stored of `token`: its SHA-256, in hex.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the form [`mint`] gives a token of kind `prefix`.
pub fn well_formed(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_distinct_and_stored_as_digests() {
        let t = mint("onr_x_");
        assert!(well_formed(&t, "onr_x_"));
        assert!(!well_formed(&t, "onr_y_"));
        assert!(!well_formed(&format!("onr_x_{}", "A".repeat(64)), "onr_x_"));
        assert!(!well_formed("onr_x_00", "onr_x_"));
        assert_ne!(t, mint("onr_x_"));
        assert_eq!(digest(&t).len(), 64);
        assert_ne!(digest(&t), t);
    }
}
