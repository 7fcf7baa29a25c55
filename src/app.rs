//! One way to start Onramp: [`Application::build`] turns [`Settings`] into the wired services
//! and the background jobs. `onramp serve`, the other CLI commands, the benchmarks and the
//! tests all start here, so what runs in the tests is what runs in production.
//!
//! Settings come from defaults, then `ONRAMP_*` environment variables, then flags (the CLI's
//! `Config` gathers them); [`Settings::from_env`] reads the few that are environment-only,
//! holding secrets in types that never print them.

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::jobs::Jobs;
use crate::product::{Product, ProductError};
use crate::services::clock::{Clock, SystemClock};
use crate::services::email::smtp::{Mailer, SmtpSettings};
use crate::services::email::MailSettings;
use crate::services::faults::FaultPlan;
use crate::services::keyring::{HashSecret, KeySource, Keyring, KeyringError};
use crate::services::signups::dns::{self, MxLookup, Resolver};
use crate::services::{RunnerOptions, ServiceError, Services};
use crate::store::datasets::{DataStores, DatasetError};
use crate::store::StoreError;

/// Where the product comes from.
#[derive(Debug, Clone)]
pub enum ProductSource {
    /// The built-in generic product.
    Builtin,
    /// A product file.
    File(PathBuf),
    /// A product already loaded (tests, benchmarks).
    Loaded(Box<Product>),
}

/// Where the vault's master keys come from.
#[derive(Clone, Default)]
pub enum MasterKeys {
    /// `ONRAMP_MASTER_KEY`, then the key file, then a development key in the data dir.
    #[default]
    Configured,
    /// One random key that lives only in memory (tests, benchmarks).
    Ephemeral,
}

/// Everything Onramp needs to start.
#[derive(Clone)]
pub struct Settings {
    /// The data dir (the SQLite registry and datasets, exports, development keys).
    pub data_dir: PathBuf,
    /// PostgreSQL (or `sqlite://`) instead of the embedded registry. It may hold a password.
    pub database_url: Option<SecretString>,
    /// The product.
    pub product: ProductSource,
    /// How long a process holds an onboarding run without renewing it.
    pub run_lease: Duration,
    /// How long a process holds a background job without renewing it.
    pub job_lease: Duration,
    /// The master key file (`v<N>:<base64>` per line).
    pub master_key_file: Option<PathBuf>,
    /// `ONRAMP_MASTER_KEY`: the master keys themselves.
    pub master_key: Option<SecretString>,
    /// How the keyring is made.
    pub master_keys: MasterKeys,
    /// `KEY_HASH_SECRET`: the HMAC key of integration key secrets.
    pub key_hash_secret: Option<SecretString>,
    /// Refuse development keys.
    pub production: bool,
    /// `ONRAMP_FAULTS`: injected faults, for tests only.
    pub faults: Option<String>,
    /// How runs are worked on, given whole (tests name their processes and faults); when set
    /// it stands instead of `run_lease` and `faults`.
    pub runner: Option<RunnerOptions>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// `ONRAMP_SMTP_URL`: where email leaves (`smtp://user:pass@host:port`, `smtps://...`,
    /// `?tls=starttls`). It may hold a password. Without it, email waits queued.
    pub smtp_url: Option<SecretString>,
    /// `ONRAMP_MAIL_FROM`: the sender of Onramp's email (`Name <address>`).
    pub mail_from: Option<String>,
    /// `ONRAMP_PUBLIC_URL`: where people reach this Onramp, for links in email.
    pub public_url: Option<String>,
    /// `ONRAMP_DNS_RESOLVER`: where the signup risk review's MX lookups go (`system`, an
    /// `ip[:port]`, or `off`).
    pub dns_resolver: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[redacted]"),
            )
            .field("product", &self.product)
            .field("run_lease", &self.run_lease)
            .field("job_lease", &self.job_lease)
            .field("master_key_file", &self.master_key_file)
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "key_hash_secret",
                &self.key_hash_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("production", &self.production)
            .field("faults", &self.faults)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "[redacted]"))
            .field("mail_from", &self.mail_from)
            .field("public_url", &self.public_url)
            .field("dns_resolver", &self.dns_resolver)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The defaults: the embedded registry in `data_dir`, the built-in product, 30-second
    /// leases, keys from the data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            product: ProductSource::Builtin,
            run_lease: Duration::from_secs(30),
            job_lease: Duration::from_secs(30),
            master_key_file: None,
            master_key: None,
            master_keys: MasterKeys::Configured,
            key_hash_secret: None,
            production: false,
            faults: None,
            runner: None,
            clock: Arc::new(SystemClock),
            smtp_url: None,
            mail_from: None,
            public_url: None,
            dns_resolver: None,
        }
    }

    /// Reads the settings that only the environment carries: `ONRAMP_MASTER_KEY`,
    /// `KEY_HASH_SECRET`, `ONRAMP_FAULTS`, `ONRAMP_ENV=production`, and email's
    /// `ONRAMP_SMTP_URL`, `ONRAMP_MAIL_FROM` and `ONRAMP_PUBLIC_URL`.
    pub fn from_env(mut self) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.smtp_url = var("ONRAMP_SMTP_URL").map(SecretString::from);
        self.mail_from = var("ONRAMP_MAIL_FROM");
        self.public_url = var("ONRAMP_PUBLIC_URL").or(self.public_url);
        self.dns_resolver = var("ONRAMP_DNS_RESOLVER").or(self.dns_resolver);
        self.master_key = var("ONRAMP_MASTER_KEY").map(SecretString::from);
        self.key_hash_secret = var("KEY_HASH_SECRET").map(SecretString::from);
        self.faults = var("ONRAMP_FAULTS");
        self.production |= var("ONRAMP_ENV").is_some_and(|v| v == "production");
        self
    }
}

/// Why Onramp could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The product file is unusable.
    #[error(transparent)]
    Product(#[from] ProductError),
    /// The registry cannot be opened or migrated.
    #[error("cannot open the registry: {0}")]
    Store(#[from] StoreError),
    /// The product's data stores cannot be opened.
    #[error("cannot open the product's data stores: {0}")]
    Datasets(#[from] DatasetError),
    /// The master keys or `KEY_HASH_SECRET` are unusable.
    #[error(transparent)]
    Keys(#[from] KeyringError),
    /// `ONRAMP_FAULTS` does not parse.
    #[error("ONRAMP_FAULTS: {0}")]
    Faults(String),
    /// The services refused the configuration.
    #[error(transparent)]
    Services(#[from] ServiceError),
    /// The email or DNS settings are unusable.
    #[error("{0}")]
    Email(String),
}

/// Onramp, wired.
#[derive(Clone)]
pub struct Application {
    /// The services every interface calls.
    pub services: Services,
    /// The background jobs.
    pub jobs: Jobs,
}

impl Application {
    /// Opens the registry (applying its migrations), loads the product, its data stores and
    /// the keys, and wires the services and the jobs.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        // A data dir made before Onramp kept its files private is closed to others at start.
        #[cfg(unix)]
        if settings.data_dir.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                &settings.data_dir,
                std::fs::Permissions::from_mode(0o700),
            );
        }
        let product = match settings.product {
            ProductSource::Builtin => Product::builtin(),
            ProductSource::File(path) => Product::load(&path)?,
            ProductSource::Loaded(p) => *p,
        };
        let url = settings
            .database_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned());
        let store = crate::store::open(&settings.data_dir, url.as_deref()).await?;
        store.migrate().await?;
        let datasets = DataStores::open(&product, &settings.data_dir, url.as_deref()).await?;
        let runner = match settings.runner {
            Some(runner) => runner,
            None => {
                let mut runner = RunnerOptions::new(&settings.data_dir);
                runner.lease = settings.run_lease;
                if let Some(spec) = &settings.faults {
                    runner.faults = FaultPlan::parse(spec).map_err(StartError::Faults)?;
                }
                runner
            }
        };
        let (keyring, key_hash) = match settings.master_keys {
            MasterKeys::Ephemeral => (Keyring::ephemeral(), HashSecret::ephemeral()),
            MasterKeys::Configured => {
                let keyring = Keyring::load(
                    &settings.data_dir,
                    settings.master_key.as_ref().map(|k| k.expose_secret()),
                    settings.master_key_file.as_deref(),
                    settings.production,
                )?;
                if let KeySource::Development(path) = keyring.source() {
                    tracing::warn!(
                        key_file = %path.display(),
                        "USING A DEVELOPMENT MASTER KEY: credentials are encrypted with a key stored next to them. Set ONRAMP_MASTER_KEY or --master-key-file for real use; --production refuses to start without one"
                    );
                }
                let key_hash = HashSecret::load(
                    &settings.data_dir,
                    settings.key_hash_secret.as_ref().map(|k| k.expose_secret()),
                    settings.production,
                )?;
                if key_hash.is_development() {
                    tracing::warn!("USING A DEVELOPMENT KEY_HASH_SECRET from the data dir: set KEY_HASH_SECRET for real use; --production refuses to start without it");
                }
                (keyring, key_hash)
            }
        };
        let services = Services::new(
            store,
            product,
            settings.clock.clone(),
            datasets,
            runner,
            Arc::new(keyring),
        )?
        .with_key_hash(key_hash)
        .with_mail(mail_settings(
            settings.smtp_url.as_ref(),
            settings.mail_from.as_deref(),
            settings.public_url.as_deref(),
        )?)
        .with_mx_lookup(mx_lookup(settings.dns_resolver.as_deref())?)
        .with_test_clocks(!settings.production);
        let jobs = Jobs::new(services.clone(), settings.job_lease);
        Ok(Self { services, jobs })
    }
}

/// The signup risk review's MX lookups, as `ONRAMP_DNS_RESOLVER` says.
fn mx_lookup(setting: Option<&str>) -> Result<Arc<dyn MxLookup>, StartError> {
    let resolver = Resolver::parse(setting.unwrap_or("system")).map_err(StartError::Email)?;
    dns::lookups(resolver).map_err(StartError::Email)
}

/// The email settings: the transport when `ONRAMP_SMTP_URL` is set (it needs
/// `ONRAMP_MAIL_FROM`), and the public URL links point at.
fn mail_settings(
    smtp_url: Option<&SecretString>,
    mail_from: Option<&str>,
    public_url: Option<&str>,
) -> Result<MailSettings, StartError> {
    let mut mail = MailSettings::default();
    if let Some(url) = public_url {
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if parsed.is_none() {
            return Err(StartError::Email(
                "ONRAMP_PUBLIC_URL must be an http:// or https:// URL like https://onboarding.example.com".into(),
            ));
        }
        mail.public_url = url.trim_end_matches('/').to_owned();
    }
    match (smtp_url, mail_from) {
        (None, _) => {
            tracing::info!("email is not configured (ONRAMP_SMTP_URL): messages wait queued");
        }
        (Some(_), None) => {
            return Err(StartError::Email(
                "ONRAMP_MAIL_FROM is required with ONRAMP_SMTP_URL (the sender, e.g. 'Onramp <onboarding@example.com>')".into(),
            ))
        }
        (Some(url), Some(from)) => {
            let settings = SmtpSettings::parse(url.expose_secret()).map_err(StartError::Email)?;
            let mailer = Mailer::new(settings, from).map_err(StartError::Email)?;
            tracing::info!(server = %mailer.describe(), from = %mailer.from(), "email goes out through SMTP");
            mail.mailer = Some(Arc::new(mailer));
        }
    }
    Ok(mail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_never_print_their_secrets() {
        let mut s = Settings::new("/tmp/onramp-test");
        s.database_url = Some(
            "postgres://onramp:hunter2hunter2@db/onramp"
                .to_owned()
                .into(),
        );
        s.master_key = Some(
            "v1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
                .to_owned()
                .into(),
        );
        s.key_hash_secret = Some("0123456789abcdef0123456789abcdef-secret".to_owned().into());
        s.smtp_url = Some(
            "smtp://mailer:correcthorse@mail.example.com"
                .to_owned()
                .into(),
        );
        let shown = format!("{s:?}");
        for secret in ["hunter2", "c2VjcmV0", "0123456789abcdef", "correcthorse"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("[redacted]"));
    }

    #[tokio::test]
    async fn a_bad_fault_plan_stops_the_start_and_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::new(dir.path());
        s.master_keys = MasterKeys::Ephemeral;
        s.faults = Some("teleport=permanent".into());
        let Err(e) = Application::build(s).await else {
            panic!("a bad fault plan must stop the start");
        };
        assert!(matches!(e, StartError::Faults(_)));
        assert!(e.to_string().starts_with("ONRAMP_FAULTS: "), "{e}");
    }
}
