//! The use cases, one capability type each: [`customers::Customers`] (the registry, legacy
//! import), [`onboarding::Onboarding`] (runs and their steps), [`credentials::Vault`],
//! [`datasets::Datasets`] (with uploads), [`keys::IntegrationKeys`] (with token exchange),
//! [`tokens::AdminTokens`] and [`audit::Audit`]. Each owns only what it needs (its store traits,
//! the product, the clock, the capabilities it works through) and refuses with its own error
//! enum, whose `kind()` and stable `code()` the interfaces map; [`ServiceError`] wraps them all
//! for an interface's one mapping. [`Services`] wires them from one set of parts. Interfaces
//! (HTTP, MCP, CLI) call these and nothing below them. Every mutation checks the actor's role
//! here, so every interface enforces the same rules.

pub mod accounts;
pub mod audit;
pub mod billing;
pub mod clock;
pub mod credentials;
pub mod customers;
pub mod datasets;
pub mod email;
mod error;
pub mod faults;
pub mod keyring;
pub mod keys;
pub mod legacy;
pub mod onboarding;
pub mod opaque_tokens;
pub mod signups;
pub mod steps;
pub mod tenant_tokens;
pub mod tokens;
pub mod uploads;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    invalid_fields_message, store_code, store_kind, ErrorKind, Forbidden, ServiceError,
};

use crate::domain::Role;
use crate::product::Product;
use crate::store::datasets::DataStores;
use crate::store::Store;
use faults::FaultPlan;

/// Who is acting, with what role, in which request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// How the event log names the actor: `token:<id>` or `cli:<user>`.
    pub name: String,
    /// What the actor may do.
    pub role: Role,
    /// The request being served, for the event log.
    pub request_id: Option<String>,
}

impl Actor {
    /// The local operator at the CLI, who owns the data dir and so has every right.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        Self {
            name: format!("cli:{user}"),
            role: Role::Admin,
            request_id: None,
        }
    }

    /// Onramp itself, for the events of work no person asked for (a run's steps and rollback).
    pub fn system() -> Self {
        Self {
            name: "onramp".into(),
            role: Role::Admin,
            request_id: None,
        }
    }

    /// Refuses unless the actor's role includes `required`.
    pub fn may(&self, required: Role) -> Result<(), Forbidden> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(Forbidden {
                required,
                actual: self.role,
            })
        }
    }

    /// [`Actor::may`], for an interface that checks a role before it calls a capability.
    pub fn require(&self, required: Role) -> Result<(), ServiceError> {
        Ok(self.may(required)?)
    }
}

/// How this process works on onboarding runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// This process's name on the leases it takes.
    pub owner: String,
    /// How long a lease lasts without renewal; a run whose process died is resumed after it.
    pub lease: Duration,
    /// Injected faults (tests only).
    pub faults: FaultPlan,
    /// Where dataset exports go unless a caller names a directory.
    pub exports_dir: PathBuf,
}

impl RunnerOptions {
    /// Options with a fresh owner name, a 30-second lease, no faults, and exports under
    /// `data_dir/exports`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            owner: format!(
                "onramp-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            lease: Duration::from_secs(30),
            faults: FaultPlan::default(),
            exports_dir: data_dir.join("exports"),
        }
    }
}

impl Services {
    /// Uses `secret` (loaded from `KEY_HASH_SECRET`) for integration keys and dataset readers'
    /// passwords instead of the in-memory one [`Services::new`] starts with.
    pub fn with_key_hash(self, secret: keyring::HashSecret) -> Self {
        Self::wire(Parts {
            key_hash: Arc::new(secret),
            ..self.parts
        })
    }

    /// Looks up signups' MX records with `mx` (the risk review); without it there are none.
    pub fn with_mx_lookup(self, mx: Arc<dyn signups::dns::MxLookup>) -> Self {
        Self::wire(Parts { mx, ..self.parts })
    }

    /// Allows test clocks (`false` in production, where they are refused).
    pub fn with_test_clocks(self, allowed: bool) -> Self {
        Self::wire(Parts {
            test_clocks: allowed,
            ..self.parts
        })
    }

    /// Sends email with `mail` (the SMTP transport, when configured, and the public URL its
    /// links point at) instead of keeping it queued.
    pub fn with_mail(self, mail: email::MailSettings) -> Self {
        Self::wire(Parts {
            mail: Arc::new(mail),
            ..self.parts
        })
    }
}

/// What the capabilities are wired from.
#[derive(Clone)]
struct Parts {
    store: Arc<dyn Store>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
    stores: DataStores,
    runner: Arc<RunnerOptions>,
    keyring: Arc<keyring::Keyring>,
    key_hash: Arc<keyring::HashSecret>,
    legacy: Arc<legacy::LegacyTenants>,
    steps: Arc<steps::StepRegistry>,
    http: reqwest::Client,
    mail: Arc<email::MailSettings>,
    mx: Arc<dyn signups::dns::MxLookup>,
    test_clocks: bool,
}

/// Everything the use cases need, cheap to clone: each capability, and what they share.
#[derive(Clone)]
pub struct Services {
    /// The registry.
    pub store: Arc<dyn Store>,
    /// The product being onboarded to.
    pub product: Arc<Product>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// How runs are worked on.
    pub runner: Arc<RunnerOptions>,
    /// The vault's master keys.
    pub keyring: Arc<keyring::Keyring>,
    /// `KEY_HASH_SECRET`, under which integration key secrets are stored.
    pub key_hash: Arc<keyring::HashSecret>,
    /// Admin API tokens.
    pub admin_tokens: tokens::AdminTokens,
    /// The audit log.
    pub audit: audit::Audit,
    /// Integration keys and the access tokens they buy.
    pub keys: keys::IntegrationKeys,
    /// The credentials vault.
    pub vault: credentials::Vault,
    /// Customer datasets: provisioning, queries, uploads, exports.
    pub datasets: datasets::Datasets,
    /// Onboarding runs: their steps, rollback, recovery, status and checklist.
    pub onboarding: onboarding::Onboarding,
    /// The customer registry: onboard, read, list, update, offboard, legacy import.
    pub customers: customers::Customers,
    /// Self-serve signup sessions.
    pub signups: signups::Signups,
    /// Transactional email: the outbox's messages, their delivery and its log.
    pub email: email::Email,
    /// Customer accounts: users, portal sessions, passwords, invitations.
    pub accounts: accounts::Accounts,
    /// Plans, trials, subscriptions, usage and entitlements.
    pub billing: billing::Billing,
    parts: Parts,
}

impl Services {
    /// Wires the services over a store, a product and its data stores, loading the product's
    /// legacy tenants.
    pub fn new(
        store: Arc<dyn Store>,
        product: Product,
        clock: Arc<dyn Clock>,
        datasets: DataStores,
        runner: RunnerOptions,
        keyring: Arc<keyring::Keyring>,
    ) -> Result<Self, ServiceError> {
        let legacy = legacy::LegacyTenants::load(&product)?;
        let steps = steps::StepRegistry::builtin();
        let missing = steps.missing(&product.steps);
        if !missing.is_empty() {
            return Err(ServiceError::Product(
                crate::product::ProductError::Invalid {
                    source_name: product.source.clone(),
                    problems: missing
                        .into_iter()
                        .map(|name| crate::product::Problem {
                            line: None,
                            message: format!("onboarding step '{name}' has no implementation"),
                        })
                        .collect(),
                },
            ));
        }
        if runner.faults.is_active() {
            tracing::warn!(faults = ?runner.faults, "FAULT INJECTION IS ON: onboarding steps will fail on purpose");
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ServiceError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self::wire(Parts {
            store,
            product: Arc::new(product),
            clock,
            stores: datasets,
            runner: Arc::new(runner),
            keyring,
            key_hash: Arc::new(keyring::HashSecret::ephemeral()),
            legacy: Arc::new(legacy),
            steps: Arc::new(steps),
            http,
            mail: Arc::new(email::MailSettings::default()),
            mx: Arc::new(signups::dns::NoLookups),
            test_clocks: true,
        }))
    }

    /// Builds every capability from the shared parts; each takes only what it needs.
    fn wire(parts: Parts) -> Self {
        let Parts {
            store,
            product,
            clock,
            stores,
            runner,
            keyring,
            key_hash,
            legacy,
            steps,
            http,
            mail,
            mx,
            test_clocks,
        } = parts.clone();
        let vault = credentials::Vault::new(
            store.clone(),
            store.clone(),
            store.clone(),
            product.clone(),
            keyring.clone(),
            clock.clone(),
            http,
        );
        let datasets = datasets::Datasets::new(
            stores,
            store.clone(),
            store.clone(),
            store.clone(),
            product.clone(),
            clock.clone(),
            key_hash.clone(),
        );
        let keys = keys::IntegrationKeys::new(
            store.clone(),
            store.clone(),
            product.clone(),
            clock.clone(),
            key_hash.clone(),
        );
        let onboarding = onboarding::Onboarding::new(
            store.clone(),
            store.clone(),
            product.clone(),
            clock.clone(),
            runner.clone(),
            steps,
            vault.clone(),
            datasets.clone(),
            keys.clone(),
        );
        let accounts = accounts::Accounts::new(
            store.clone(),
            store.clone(),
            store.clone(),
            product.clone(),
            clock.clone(),
        );
        let billing = billing::Billing::new(
            store.clone(),
            product.clone(),
            clock.clone(),
            vault.clone(),
            test_clocks,
        );
        let customers = customers::Customers::new(
            store.clone(),
            product.clone(),
            clock.clone(),
            runner.clone(),
            legacy,
            onboarding.clone(),
            vault.clone(),
            datasets.clone(),
            keys.clone(),
            accounts.clone(),
            billing.clone(),
        );
        let signups = signups::Signups::new(
            store.clone(),
            store.clone(),
            product.clone(),
            clock.clone(),
            key_hash.clone(),
        )
        .with_review(mx, customers.clone(), accounts.clone());
        Self {
            email: email::Email::new(
                store.clone(),
                store.clone(),
                store.clone(),
                product.clone(),
                clock.clone(),
                mail,
                signups.clone(),
                accounts.clone(),
                billing.clone(),
            ),
            accounts,
            signups,
            billing,
            admin_tokens: tokens::AdminTokens::new(store.clone(), clock.clone()),
            audit: audit::Audit::new(store.clone(), store.clone()),
            keys,
            vault,
            datasets,
            onboarding,
            customers,
            store,
            product,
            clock,
            runner,
            keyring,
            key_hash,
            parts,
        }
    }
}
