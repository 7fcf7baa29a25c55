//! Persistence: one trait, [`Store`], and one implementation per backend ([`sqlite`] and
//! [`postgres`]), each with its own SQL and its own embedded migrations. SQL lives only here.
//!
//! Every mutation appends its event in the same transaction as the change, sealed into the
//! customer's hash chain (or the operator chain) while the chain head is locked.

pub mod credentials;
pub mod datasets;
pub mod keys;
pub mod postgres;
mod rows;
pub mod runs;
pub mod sqlite;

pub use runs::{ChecklistRecord, DatasetRecord, RunRecord, RunStore, RunUpdate, StepRecord};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;

use crate::domain::{Customer, CustomerStatus, Event, NewEvent, Role};

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

/// Which customers a listing returns.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Only these statuses; `None` for every status.
    pub statuses: Option<Vec<CustomerStatus>>,
    /// Only this industry.
    pub industry: Option<String>,
    /// Only customers with this tag.
    pub tag: Option<String>,
    /// Only customers whose folded name (`domain::text::fold_name`) contains this text, which
    /// the caller folds the same way; `%` and `_` in it are literal.
    pub name_contains: Option<String>,
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

/// Which events an audit listing returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about this customer.
    pub customer_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events with a larger id (the cursor).
    pub after_id: Option<i64>,
    /// How many at most.
    pub limit: u32,
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// The client's key.
    pub key: String,
    /// SHA-256 of the request it was first used with.
    pub fingerprint: String,
    /// The HTTP status of the first response.
    pub status: u16,
    /// The first response's body.
    pub body: String,
    /// When it was first used.
    pub created_at: DateTime<Utc>,
}

/// An admin API token, as stored: the secret only as a hash.
#[derive(Debug, Clone)]
pub struct AdminTokenRecord {
    /// Public id, part of the token.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The last event of one chain.
#[derive(Debug, Clone)]
pub struct ChainHead {
    /// Chain name.
    pub chain: String,
    /// Its length.
    pub seq: i64,
    /// Its last hash.
    pub hash: String,
}

/// The registry's persistence, implemented once per backend.
#[async_trait]
pub trait Store:
    RunStore + credentials::CredentialStore + keys::IntegrationKeyStore + Send + Sync + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations; safe to run again.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Registers a new customer with its event and, when given, its onboarding run and the
    /// idempotency record of the request that created it, all in one transaction.
    async fn insert_customer(
        &self,
        customer: &Customer,
        event: NewEvent,
        run: Option<&RunRecord>,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Event, StoreError>;

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

    /// One customer by id.
    async fn get_customer(&self, customer_id: &str) -> Result<Option<Customer>, StoreError>;

    /// A page of customers ordered by id.
    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>, StoreError>;

    /// Saves a changed customer if the stored version is still `expected_version`, with its event.
    async fn update_customer(
        &self,
        customer_id: &str,
        customer: &Customer,
        expected_version: i64,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// How many customers are registered, in every status.
    async fn count_customers(&self) -> Result<i64, StoreError>;

    /// The record stored for an idempotency key.
    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Stores a new admin token with its event.
    async fn insert_admin_token(
        &self,
        token: &AdminTokenRecord,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// One admin token by id.
    async fn get_admin_token(&self, id: &str) -> Result<Option<AdminTokenRecord>, StoreError>;

    /// Appends an event that goes with no other change.
    async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError>;

    /// Events matching a filter, oldest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError>;

    /// Events ordered by chain, then position, after the given place: for verification.
    async fn events_in_chain_order(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Every chain's head.
    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError>;
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
