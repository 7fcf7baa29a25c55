//! The vault's master keys: versioned, from `ONRAMP_MASTER_KEY`, a key file, or (outside
//! production) a development key file generated in the data dir. Key text is one key per entry,
//! `v<version>:<base64 of 32 bytes>`, entries separated by newlines, commas or spaces; a bare
//! base64 key is version 1. The highest version wraps new data keys; older ones still unwrap
//! until `onramp vault rotate-master-key` has rewrapped everything.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;

use crate::domain::envelope::{MasterKey, KEY_LEN};

/// The development key file's name in the data dir.
pub const DEV_KEY_FILE: &str = "master.key";

/// Where the master keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `ONRAMP_MASTER_KEY`.
    Environment,
    /// A key file the operator manages.
    File(PathBuf),
    /// A key file generated in the data dir, for development only.
    Development(PathBuf),
    /// Generated in memory (tests, benchmarks).
    Memory,
}

/// Why the keyring cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The key text is malformed.
    #[error("{source_name}: {message}")]
    Malformed {
        /// Where the text came from.
        source_name: String,
        /// What is wrong (never the key).
        message: String,
    },
    /// Production needs a real key.
    #[error("production mode needs a master key: set ONRAMP_MASTER_KEY or --master-key-file (a development key is never used in production)")]
    NoProductionKey,
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Production needs a real `KEY_HASH_SECRET`.
    #[error("production mode needs KEY_HASH_SECRET (at least 32 random characters) to store integration keys")]
    NoProductionHashSecret,
    /// The keys come from the environment, which Onramp cannot change.
    #[error("the master keys come from ONRAMP_MASTER_KEY: add a new entry with a higher version (v<N>:<base64 of 32 random bytes>) to every process's ONRAMP_MASTER_KEY, restart them, then run rotate-master-key again to rewrap onto it")]
    EnvironmentManaged,
}

/// The master keys, highest version current.
pub struct Keyring {
    keys: RwLock<Arc<Vec<MasterKey>>>,
    source: KeySource,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("source", &self.source)
            .field("versions", &self.versions())
            .finish()
    }
}

fn parse(text: &str, source_name: &str) -> Result<Vec<MasterKey>, KeyringError> {
    let bad = |message: String| KeyringError::Malformed {
        source_name: source_name.to_owned(),
        message,
    };
    let mut keys: Vec<MasterKey> = Vec::new();
    let without_comments: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    for (i, entry) in without_comments
        .join("\n")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let (version, encoded) = match entry.split_once(':') {
            Some((v, k)) => {
                let n = v
                    .strip_prefix('v')
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        bad(format!(
                            "entry {} must be v<version>:<base64 key> with a version of 1 or more",
                            i + 1
                        ))
                    })?;
                (n, k)
            }
            None => (1, entry),
        };
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad(format!("the key of version {version} is not base64")))?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            bad(format!(
                "the key of version {version} must be {KEY_LEN} bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
            ))
        })?;
        if keys.iter().any(|k| k.version == version) {
            return Err(bad(format!("version {version} is listed twice")));
        }
        keys.push(MasterKey::new(version, key));
    }
    if keys.is_empty() {
        return Err(bad("no key in it".into()));
    }
    keys.sort_by_key(|k| k.version);
    Ok(keys)
}

fn format_keys(keys: &[MasterKey]) -> String {
    let mut out = String::from(
        "# Onramp master keys: v<version>:<base64>. Keep this file secret and backed up.\n",
    );
    for k in keys {
        out.push_str(&format!(
            "v{}:{}\n",
            k.version,
            STANDARD.encode(k.expose_bytes())
        ));
    }
    out
}

fn read_file(path: &Path) -> Result<Vec<MasterKey>, KeyringError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Writes a key file readable by its owner only, replacing it atomically.
fn write_file(path: &Path, keys: &[MasterKey]) -> Result<(), KeyringError> {
    use std::io::Write;
    let io = |source| KeyringError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    tmp.write_all(format_keys(keys).as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

impl Keyring {
    /// Loads the keys: `env_value` (ONRAMP_MASTER_KEY) first, then `file`; with neither, the
    /// development key in `data_dir` (generated when missing), refused in production.
    pub fn load(
        data_dir: &Path,
        env_value: Option<&str>,
        file: Option<&Path>,
        production: bool,
    ) -> Result<Self, KeyringError> {
        let (keys, source) = match (env_value.filter(|v| !v.trim().is_empty()), file) {
            (Some(text), _) => (parse(text, "ONRAMP_MASTER_KEY")?, KeySource::Environment),
            (None, Some(path)) => (read_file(path)?, KeySource::File(path.to_owned())),
            (None, None) if production => return Err(KeyringError::NoProductionKey),
            (None, None) => {
                let path = data_dir.join(DEV_KEY_FILE);
                let keys = if path.exists() {
                    read_file(&path)?
                } else {
                    let keys = vec![MasterKey::generate(1, &mut OsRng)];
                    write_file(&path, &keys)?;
                    keys
                };
                (keys, KeySource::Development(path))
            }
        };
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            source,
        })
    }

    /// A keyring with one random key that lives only in memory.
    pub fn ephemeral() -> Self {
        Self {
            keys: RwLock::new(Arc::new(vec![MasterKey::generate(1, &mut OsRng)])),
            source: KeySource::Memory,
        }
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Whether this is the generated development key.
    pub fn is_development(&self) -> bool {
        matches!(self.source, KeySource::Development(_))
    }

    fn snapshot(&self) -> Arc<Vec<MasterKey>> {
        self.keys.read().expect("keyring lock").clone()
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Arc<Vec<MasterKey>> {
        self.snapshot()
    }

    /// The versions held, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.snapshot().iter().map(|k| k.version).collect()
    }

    /// The key new data keys are wrapped with.
    pub fn current(&self) -> MasterKey {
        self.snapshot()
            .last()
            .cloned()
            .expect("a keyring always has a key")
    }

    /// The keys, re-read from the key file when it holds a version this process has not seen
    /// (another process rotated it): a rotation needs no restart.
    pub fn keys_with(&self, version: u32) -> Arc<Vec<MasterKey>> {
        let keys = self.snapshot();
        if keys.iter().any(|k| k.version == version) {
            return keys;
        }
        if let KeySource::File(path) | KeySource::Development(path) = &self.source {
            match read_file(path) {
                Ok(fresh) => {
                    let fresh = Arc::new(fresh);
                    *self.keys.write().expect("keyring lock") = fresh.clone();
                    return fresh;
                }
                Err(e) => tracing::error!(error = %e, "re-reading the master key file failed"),
            }
        }
        keys
    }

    /// Adds a new, higher version and makes it current, saving it to the key file first.
    pub fn add_version(&self) -> Result<u32, KeyringError> {
        let path = match &self.source {
            KeySource::Environment => return Err(KeyringError::EnvironmentManaged),
            KeySource::File(p) | KeySource::Development(p) => Some(p.clone()),
            KeySource::Memory => None,
        };
        let mut guard = self.keys.write().expect("keyring lock");
        let mut keys: Vec<MasterKey> = match &path {
            Some(p) => read_file(p)?,
            None => guard.as_ref().clone(),
        };
        let next = keys.last().map_or(1, |k| k.version + 1);
        keys.push(MasterKey::generate(next, &mut OsRng));
        if let Some(p) = &path {
            write_file(p, &keys)?;
        }
        *guard = Arc::new(keys);
        Ok(next)
    }
}

/// The development `KEY_HASH_SECRET` file's name in the data dir.
pub const DEV_HASH_SECRET_FILE: &str = "key-hash.secret";

/// `KEY_HASH_SECRET`: the HMAC key integration key secrets are stored under.
pub struct HashSecret {
    key: zeroize::Zeroizing<Vec<u8>>,
    development: bool,
}

impl std::fmt::Debug for HashSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HashSecret(development: {}, [redacted])",
            self.development
        )
    }
}

impl HashSecret {
    /// From `KEY_HASH_SECRET` (at least 32 characters); without it, a development secret
    /// generated in `data_dir`, refused in production.
    pub fn load(
        data_dir: &Path,
        env_value: Option<&str>,
        production: bool,
    ) -> Result<Self, KeyringError> {
        if let Some(v) = env_value.filter(|v| !v.is_empty()) {
            if v.len() < 32 {
                return Err(KeyringError::Malformed {
                    source_name: "KEY_HASH_SECRET".into(),
                    message: "must be at least 32 characters (e.g. `openssl rand -hex 32`)".into(),
                });
            }
            return Ok(Self {
                key: zeroize::Zeroizing::new(v.as_bytes().to_vec()),
                development: false,
            });
        }
        if production {
            return Err(KeyringError::NoProductionHashSecret);
        }
        let path = data_dir.join(DEV_HASH_SECRET_FILE);
        let io = |source| KeyringError::Io {
            path: path.clone(),
            source,
        };
        let text = if path.exists() {
            std::fs::read_to_string(&path).map_err(io)?
        } else {
            use std::io::Write;
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
            let text = hex::encode(bytes);
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let mut tmp = tempfile::NamedTempFile::new_in(data_dir).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            tmp.write_all(text.as_bytes()).map_err(io)?;
            tmp.persist(&path).map_err(|e| io(e.error))?;
            text
        };
        Ok(Self {
            key: zeroize::Zeroizing::new(text.trim().as_bytes().to_vec()),
            development: true,
        })
    }

    /// A random secret that lives only in memory.
    pub fn ephemeral() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut OsRng, &mut bytes);
        Self {
            key: zeroize::Zeroizing::new(bytes),
            development: false,
        }
    }

    /// Whether this is the generated development secret.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// HMAC-SHA256 of `secret`, hex.
    pub fn hash(&self, secret: &str) -> String {
        use hmac::{Mac, SimpleHmac};
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A key for another purpose, derived from this secret and `label` (HMAC of the label).
    pub fn derive(&self, label: &str) -> zeroize::Zeroizing<Vec<u8>> {
        use hmac::{Mac, SimpleHmac};
        let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        zeroize::Zeroizing::new(mac.finalize().into_bytes().to_vec())
    }

    /// Whether `secret` hashes to `stored`, compared in constant time.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.hash(secret).as_bytes().ct_eq(stored.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_b64(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn parses_versions_and_bare_keys() {
        let ring = parse(&format!("v2:{}, v1:{}", key_b64(2), key_b64(1)), "t").unwrap();
        assert_eq!(
            ring.iter().map(|k| k.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let ring = parse(&key_b64(7), "t").unwrap();
        assert_eq!(ring[0].version, 1);
    }

    #[test]
    fn refuses_bad_keys_without_printing_them() {
        for text in [
            "",
            "v0:abc",
            "v1:not base64!",
            &format!("v1:{}", STANDARD.encode([1u8; 16])),
            &format!("v1:{k}\nv1:{k}", k = key_b64(1)),
        ] {
            let e = parse(text, "ONRAMP_MASTER_KEY").unwrap_err().to_string();
            assert!(e.starts_with("ONRAMP_MASTER_KEY: "), "{e}");
            assert!(!e.contains(&key_b64(1)), "{e}");
        }
    }

    #[test]
    fn development_key_is_generated_once_and_refused_in_production() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Keyring::load(dir.path(), None, None, true),
            Err(KeyringError::NoProductionKey)
        ));
        assert!(!dir.path().join(DEV_KEY_FILE).exists());
        let a = Keyring::load(dir.path(), None, None, false).unwrap();
        assert!(a.is_development());
        let b = Keyring::load(dir.path(), None, None, false).unwrap();
        assert_eq!(a.current().expose_bytes(), b.current().expose_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEV_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_new_version_is_saved_and_seen_by_other_processes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        write_file(&file, &[MasterKey::new(1, [1; 32])]).unwrap();
        let a = Keyring::load(dir.path(), None, Some(&file), true).unwrap();
        let b = Keyring::load(dir.path(), None, Some(&file), true).unwrap();
        assert_eq!(a.add_version().unwrap(), 2);
        assert_eq!(a.current().version, 2);
        assert_eq!(b.current().version, 1);
        assert!(b.keys_with(2).iter().any(|k| k.version == 2));
        assert_eq!(b.current().version, 2);
        let env = Keyring::load(dir.path(), Some(&key_b64(3)), None, true).unwrap();
        assert!(matches!(
            env.add_version(),
            Err(KeyringError::EnvironmentManaged)
        ));
    }

    #[test]
    fn hash_secret_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            HashSecret::load(dir.path(), None, true),
            Err(KeyringError::NoProductionHashSecret)
        ));
        let short = HashSecret::load(dir.path(), Some("too-short"), true).unwrap_err();
        assert!(!short.to_string().contains("too-short"), "{short}");
        let a = HashSecret::load(dir.path(), Some(&"a".repeat(32)), true).unwrap();
        let b = HashSecret::load(dir.path(), Some(&"b".repeat(32)), true).unwrap();
        assert_ne!(a.hash("s3cret"), b.hash("s3cret"));
        assert!(a.verify("s3cret", &a.hash("s3cret")));
        assert!(!a.verify("s3cret", &b.hash("s3cret")));
        let dev1 = HashSecret::load(dir.path(), None, false).unwrap();
        let dev2 = HashSecret::load(dir.path(), None, false).unwrap();
        assert!(dev1.is_development());
        assert_eq!(dev1.hash("x"), dev2.hash("x"));
    }
}
