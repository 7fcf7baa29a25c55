//! Persistence: one trait per capability (customers, runs, vault, integration keys, audit log,
//! admin tokens, jobs, signups, email), gathered by [`Store`], implemented for each backend
//! ([`sqlite`] and [`postgres`]) with its own embedded migrations. Statements both engines
//! accept are written once (`sql`); the backends hold what differs. SQL lives only here.
//!
//! Every mutation appends its event in the same transaction as the change, sealed into the
//! customer's hash chain (or the operator chain) while the chain head is locked.

pub mod accounts;
pub mod audit;
pub mod billing;
pub mod credentials;
pub mod customers;
pub mod datasets;
pub mod emails;
pub mod jobs;
pub mod keys;
pub mod postgres;
mod rows;
pub mod runs;
pub mod signups;
mod sql;
pub mod sqlite;
pub mod tokens;

pub use audit::{ChainHead, EventFilter, EventStore};
pub use customers::{CustomerFilter, CustomerStore, IdempotencyRecord};
pub use runs::{ChecklistRecord, DatasetRecord, RunRecord, RunStore, RunUpdate, StepRecord};
pub use signups::{SignupRecord, SignupStore};
pub use tokens::{AdminTokenRecord, AdminTokenStore};

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

use crate::domain::{Customer, NewEvent};

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A customer with this id is already registered.
    #[error("customer '{0}' already exists")]
    CustomerExists(String),
    /// The record changed since the caller read it.
    #[error("customer '{customer_id}' is at version {found}, not {expected}")]
    VersionConflict {
        /// The customer.
        customer_id: String,
        /// The version the caller had.
        expected: i64,
        /// The version in the store.
        found: i64,
    },
    /// The record to change does not exist.
    #[error("customer '{0}' not found")]
    CustomerNotFound(String),
    /// Another process took over the run.
    #[error("run {run_id} of customer '{customer_id}' is now worked on by another process")]
    LeaseLost {
        /// The customer.
        customer_id: String,
        /// The run.
        run_id: String,
    },
    /// Another request holds this idempotency key.
    #[error("idempotency key '{0}' is already in use")]
    IdempotencyKeyTaken(String),
    /// A credential version with this number exists (a concurrent write took it).
    #[error(
        "version {version} of credential '{credential_type}' of '{customer_id}' already exists"
    )]
    CredentialVersionTaken {
        /// The customer.
        customer_id: String,
        /// The credential type.
        credential_type: String,
        /// The version.
        version: i64,
    },
    /// The integration key was rotated or revoked since the caller read it.
    #[error("integration key '{0}' changed since it was read")]
    KeyChanged(String),
    /// The customer has had a trial.
    #[error("customer '{0}' already has a trial")]
    TrialExists(String),
    /// The trial changed since the caller read it.
    #[error("the trial of customer '{0}' changed since it was read")]
    TrialChanged(String),
    /// The customer has a live subscription.
    #[error("customer '{0}' already has a subscription")]
    SubscriptionExists(String),
    /// The subscription changed since the caller read it.
    #[error("subscription '{0}' changed since it was read")]
    SubscriptionChanged(String),
    /// The test clock moved since the caller read it.
    #[error("test clock '{0}' changed since it was read")]
    TestClockChanged(String),
    /// The signup changed since the caller read it.
    #[error("signup '{0}' changed since it was read")]
    SignupChanged(String),
    /// A user with this email exists (the email, in lower case).
    #[error("a user with email '{0}' already exists")]
    UserEmailTaken(String),
    /// The user changed since the caller read them.
    #[error("user '{0}' changed since they were read")]
    UserChanged(String),
    /// The user is their customer's last active owner.
    #[error("user '{0}' is the last owner")]
    LastOwner(String),
    /// Another process took over the job (its lease ran out).
    #[error("job '{0}' is now held by another process")]
    JobLeaseLost(String),
    /// An event log consumer's cursor moved since the caller read it.
    #[error("the cursor of consumer '{0}' moved since it was read")]
    CursorMoved(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be read back into the domain.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A keyset page request: items after `after`, at most `limit`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// How many items at most.
    pub limit: u32,
    /// The last key of the previous page.
    pub after: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The key to pass as `after` for the next page, when there is one.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched up to `limit + 1` rows: the extra row only
    /// tells that there is a next page, whose `after` key is that of the last row kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next }
    }
}

/// The registry's persistence, implemented once per backend.
#[async_trait]
pub trait Store:
    CustomerStore
    + RunStore
    + credentials::CredentialStore
    + keys::IntegrationKeyStore
    + EventStore
    + AdminTokenStore
    + jobs::JobStore
    + SignupStore
    + emails::EmailStore
    + accounts::AccountStore
    + billing::BillingStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations; safe to run again.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether this registry can create the datasets of a data store that lives in its own
    /// database (`registry` on PostgreSQL) inside its transactions.
    fn provisions_datasets_in_registry(&self) -> bool {
        false
    }

    /// Registers a customer with its events, run and idempotency record, and creates its
    /// dataset and records it, all in one transaction: the customer and its dataset exist
    /// together or not at all. Only where [`Store::provisions_datasets_in_registry`].
    async fn insert_customer_with_dataset(
        &self,
        customer: &Customer,
        events: Vec<NewEvent>,
        run: &RunRecord,
        idempotency: Option<&IdempotencyRecord>,
        spec: &datasets::DatasetSpec,
        dataset: &DatasetRecord,
    ) -> Result<(), StoreError> {
        let _ = (customer, events, run, idempotency, spec, dataset);
        Err(StoreError::Database(sqlx::Error::Configuration(
            "this registry cannot create datasets inside its own transactions".into(),
        )))
    }
}

/// Opens the registry: PostgreSQL when `database_url` is given, else SQLite in `data_dir`.
pub async fn open(
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<Arc<dyn Store>, StoreError> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PgStore::connect(url).await?))
        }
        Some(url) if url.starts_with("sqlite://") => {
            let path = Path::new(url.trim_start_matches("sqlite://"));
            Ok(Arc::new(sqlite::SqliteStore::open_file(path).await?))
        }
        Some(other) => Err(StoreError::Database(sqlx::Error::Configuration(
            format!(
                "database URL must start with postgres:// or sqlite:// (got '{}')",
                other.split(':').next().unwrap_or_default()
            )
            .into(),
        ))),
        None => Ok(Arc::new(sqlite::SqliteStore::open(data_dir).await?)),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}
