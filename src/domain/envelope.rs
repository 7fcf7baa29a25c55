//! Envelope encryption of stored credentials: each value is encrypted under a fresh random data
//! key, and the data key is wrapped by a versioned master key. Both layers are XChaCha20-Poly1305
//! (random 192-bit nonces), and both bind the ciphertext to its customer, credential type and
//! version as associated data, so a ciphertext copied into another row fails to decrypt. Pure:
//! randomness comes in from the caller.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Bytes in a nonce.
pub const NONCE_LEN: usize = 24;

/// A master key and its version. Never printed.
#[derive(Clone)]
pub struct MasterKey {
    /// Its version; data keys record the version that wrapped them.
    pub version: u32,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(v{}, [redacted])", self.version)
    }
}

impl MasterKey {
    /// A master key from its bytes.
    pub fn new(version: u32, key: [u8; KEY_LEN]) -> Self {
        Self {
            version,
            key: Zeroizing::new(key),
        }
    }

    /// A fresh random master key.
    pub fn generate(version: u32, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut key = [0u8; KEY_LEN];
        rng.fill_bytes(&mut key);
        Self::new(version, key)
    }

    /// The key's bytes, for writing a key file.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.key))
    }
}

/// What a ciphertext belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The customer.
    pub customer_id: &'a str,
    /// The credential type.
    pub credential_type: &'a str,
    /// The credential version.
    pub version: i64,
}

impl Binding<'_> {
    fn aad(&self, layer: &str, master_version: u32) -> Vec<u8> {
        // Lengths first, so no two bindings share an encoding.
        format!(
            "onramp/credential/v1/{layer}/{}:{}/{}:{}/{}/{master_version}",
            self.customer_id.len(),
            self.customer_id,
            self.credential_type.len(),
            self.credential_type,
            self.version
        )
        .into_bytes()
    }
}

/// An encrypted value with its wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The master key version that wrapped the data key.
    pub master_version: u32,
    /// The wrapped data key (with its tag).
    pub wrapped_key: Vec<u8>,
    /// The nonce of the wrapping.
    pub key_nonce: Vec<u8>,
    /// The encrypted value (with its tag).
    pub ciphertext: Vec<u8>,
    /// The nonce of the value's encryption.
    pub nonce: Vec<u8>,
}

/// Why a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The master key version that wrapped the data key is not in the keyring.
    #[error("master key version {0} is not in the keyring")]
    UnknownMasterKey(u32),
    /// The data or its binding was altered, or it belongs to another row.
    #[error("the stored credential failed authentication: it was altered or moved")]
    Tampered,
}

fn random<const N: usize>(rng: &mut (impl RngCore + CryptoRng)) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

fn nonce(bytes: &[u8]) -> Result<XNonce, EnvelopeError> {
    let array: [u8; NONCE_LEN] = bytes.try_into().map_err(|_| EnvelopeError::Tampered)?;
    Ok(XNonce::from(array))
}

fn wrap(
    master: &MasterKey,
    binding: Binding<'_>,
    data_key: &[u8; KEY_LEN],
    rng: &mut (impl RngCore + CryptoRng),
) -> (Vec<u8>, Vec<u8>) {
    let key_nonce = random::<NONCE_LEN>(rng);
    let aad = binding.aad("key", master.version);
    let wrapped = master
        .cipher()
        .encrypt(
            &XNonce::from(key_nonce),
            Payload {
                msg: data_key,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any 32-byte key");
    (wrapped, key_nonce.to_vec())
}

fn unwrap(
    master: &MasterKey,
    binding: Binding<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<[u8; KEY_LEN]>, EnvelopeError> {
    let aad = binding.aad("key", master.version);
    let bytes = Zeroizing::new(
        master
            .cipher()
            .decrypt(
                &nonce(&sealed.key_nonce)?,
                Payload {
                    msg: &sealed.wrapped_key,
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::Tampered)?,
    );
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::Tampered)?;
    Ok(Zeroizing::new(key))
}

/// Encrypts `plaintext` under a fresh data key wrapped by `master`.
pub fn seal(
    master: &MasterKey,
    binding: Binding<'_>,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Sealed {
    let data_key = Zeroizing::new(random::<KEY_LEN>(rng));
    let value_nonce = random::<NONCE_LEN>(rng);
    let aad = binding.aad("value", 0);
    let ciphertext = XChaCha20Poly1305::new(&Key::from(*data_key))
        .encrypt(
            &XNonce::from(value_nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any value that fits in memory");
    let (wrapped_key, key_nonce) = wrap(master, binding, &data_key, rng);
    Sealed {
        master_version: master.version,
        wrapped_key,
        key_nonce,
        ciphertext,
        nonce: value_nonce.to_vec(),
    }
}

/// Decrypts a sealed value, finding its master key with `master`.
pub fn open<'k>(
    master: impl Fn(u32) -> Option<&'k MasterKey>,
    binding: Binding<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mk = master(sealed.master_version)
        .ok_or(EnvelopeError::UnknownMasterKey(sealed.master_version))?;
    if mk.version != sealed.master_version {
        return Err(EnvelopeError::UnknownMasterKey(sealed.master_version));
    }
    let data_key = unwrap(mk, binding, sealed)?;
    let aad = binding.aad("value", 0);
    XChaCha20Poly1305::new(&Key::from(*data_key))
        .decrypt(
            &nonce(&sealed.nonce)?,
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Tampered)
}

/// Re-wraps a sealed value's data key under `to`, leaving the value's ciphertext as it is.
pub fn rewrap<'k>(
    master: impl Fn(u32) -> Option<&'k MasterKey>,
    to: &MasterKey,
    binding: Binding<'_>,
    sealed: &Sealed,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Sealed, EnvelopeError> {
    let from = master(sealed.master_version)
        .ok_or(EnvelopeError::UnknownMasterKey(sealed.master_version))?;
    let data_key = unwrap(from, binding, sealed)?;
    let (wrapped_key, key_nonce) = wrap(to, binding, &data_key, rng);
    Ok(Sealed {
        master_version: to.version,
        wrapped_key,
        key_nonce,
        ciphertext: sealed.ciphertext.clone(),
        nonce: sealed.nonce.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn b(customer: &str, t: &str, v: i64) -> Binding<'static> {
        Binding {
            customer_id: Box::leak(customer.to_owned().into_boxed_str()),
            credential_type: Box::leak(t.to_owned().into_boxed_str()),
            version: v,
        }
    }

    #[test]
    fn round_trips_and_hides_the_value() {
        let mk = MasterKey::generate(1, &mut OsRng);
        let s = seal(&mk, b("acme", "meta", 1), b"EAAG-secret", &mut OsRng);
        assert!(!s
            .ciphertext
            .windows(11)
            .any(|w| w == b"EAAG-secret".as_slice()));
        let v = open(|_| Some(&mk), b("acme", "meta", 1), &s).unwrap();
        assert_eq!(v.as_slice(), b"EAAG-secret");
    }

    #[test]
    fn a_moved_ciphertext_does_not_open() {
        let mk = MasterKey::generate(1, &mut OsRng);
        let s = seal(&mk, b("acme", "meta", 1), b"secret", &mut OsRng);
        for other in [
            b("beta", "meta", 1),
            b("acme", "google", 1),
            b("acme", "meta", 2),
        ] {
            assert_eq!(
                open(|_| Some(&mk), other, &s).unwrap_err(),
                EnvelopeError::Tampered
            );
        }
    }

    #[test]
    fn tampering_is_detected() {
        let mk = MasterKey::generate(1, &mut OsRng);
        let s = seal(&mk, b("acme", "meta", 1), b"secret", &mut OsRng);
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(|_| Some(&mk), b("acme", "meta", 1), &t).is_err());
        let mut t = s.clone();
        t.wrapped_key[3] ^= 1;
        assert!(open(|_| Some(&mk), b("acme", "meta", 1), &t).is_err());
        let other = MasterKey::generate(1, &mut OsRng);
        assert!(open(|_| Some(&other), b("acme", "meta", 1), &s).is_err());
        assert_eq!(
            open(|_| None, b("acme", "meta", 1), &s).unwrap_err(),
            EnvelopeError::UnknownMasterKey(1)
        );
    }

    #[test]
    fn rewrap_moves_to_the_new_master_key() {
        let v1 = MasterKey::generate(1, &mut OsRng);
        let v2 = MasterKey::generate(2, &mut OsRng);
        let s = seal(&v1, b("acme", "meta", 3), b"secret", &mut OsRng);
        let r = rewrap(|_| Some(&v1), &v2, b("acme", "meta", 3), &s, &mut OsRng).unwrap();
        assert_eq!(r.master_version, 2);
        assert_eq!(r.ciphertext, s.ciphertext);
        let ring = |v: u32| [&v1, &v2].into_iter().find(|k| k.version == v);
        assert_eq!(
            open(ring, b("acme", "meta", 3), &r).unwrap().as_slice(),
            b"secret"
        );
        assert!(open(|_| Some(&v1), b("acme", "meta", 3), &r).is_err());
    }
}
