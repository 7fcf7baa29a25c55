//! Password hashing: argon2id (RustCrypto's `argon2`, OWASP's parameters: 19 MiB, two passes,
//! one lane) with a random salt, stored as a PHC string. Hashing takes tens of milliseconds on
//! purpose, so it runs on the blocking pool, never on a request's task, and at most two per core
//! at once (each holds 19 MiB): a flood of logins waits its turn, and past 10 s is told to come
//! back, instead of taking every thread and the memory with them.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use zeroize::Zeroizing;

use super::AccountError;

/// How long a hash waits for its turn before the caller is told to retry.
const WAIT: Duration = Duration::from_secs(10);

/// A turn at hashing.
async fn turn() -> Result<SemaphorePermit<'static>, AccountError> {
    static TURNS: OnceLock<Semaphore> = OnceLock::new();
    let turns = TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores * 2)
    });
    match tokio::time::timeout(WAIT, turns.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AccountError::Busy),
    }
}

/// Hashes `password` with a fresh salt.
pub async fn hash(password: Zeroizing<String>) -> Result<String, AccountError> {
    let _turn = turn().await?;
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| AccountError::Internal(format!("cannot encode a salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Internal(format!("cannot hash a password: {e}")))
    })
    .await
    .map_err(|e| AccountError::Internal(format!("the hashing task failed: {e}")))?
}

/// A hash of nothing anyone knows, checked against when there is no account or no password so
/// that a wrong address takes as long to refuse as a wrong password.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let salt = SaltString::encode_b64(&secret[..16]).expect("16 bytes encode");
        Argon2::default()
            .hash_password(&secret, &salt)
            .expect("argon2 hashes")
            .to_string()
    })
}

/// Whether `password` matches `stored` (a PHC string); with no stored hash, the same work is
/// done against a decoy and the answer is no.
pub async fn verify(
    password: Zeroizing<String>,
    stored: Option<String>,
) -> Result<bool, AccountError> {
    let _turn = turn().await?;
    Ok(tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| decoy().to_owned());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            tracing::warn!("a stored password hash does not parse");
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        real && matches
    })
    .await
    .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let h = hash(Zeroizing::new("correct horse battery".into()))
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let check = |p: &str, h: Option<String>| verify(Zeroizing::new(p.into()), h);
        assert!(check("correct horse battery", Some(h.clone()))
            .await
            .unwrap());
        assert!(!check("correct horse batterY", Some(h.clone()))
            .await
            .unwrap());
        assert!(!check("x", None).await.unwrap());
        let again = hash(Zeroizing::new("correct horse battery".into()))
            .await
            .unwrap();
        assert_ne!(h, again, "every hash has its own salt");
    }
}
