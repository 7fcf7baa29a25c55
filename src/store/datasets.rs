//! Tenant datasets: one per customer, behind [`DatasetBackend`], implemented for SQLite (a
//! database file per customer) and PostgreSQL (a schema per customer, read through a role that
//! can see only that schema). Provisioning and dropping are idempotent, so an interrupted step
//! can simply run again.

use async_trait::async_trait;

use crate::domain::upload::Rows;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

pub use crate::domain::dataset::{ExportManifest, ExportedTable};
use crate::domain::query::SqlDialect;
use crate::product::{Column, Product, QueryLimits};

pub use super::postgres::datasets::PgDatasets;
pub use super::sqlite::datasets::SqliteDatasets;

/// Why a dataset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Worth retrying: the database was busy, locked, unreachable or hit a serialization
    /// conflict.
    #[error("transient dataset failure: {0}")]
    Transient(String),
    /// Retrying will not help.
    #[error("dataset failure: {0}")]
    Permanent(String),
    /// The query was refused by the dataset's database (permissions, read-only, errors in it).
    #[error("the query was refused: {0}")]
    QueryRefused(String),
    /// The query ran past its time limit and was stopped.
    #[error("the query ran longer than {0} ms and was stopped")]
    QueryTimeout(u64),
    /// No such dataset.
    #[error("dataset '{0}' does not exist")]
    NotFound(String),
}

impl DatasetError {
    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DatasetError::Transient(_))
    }
}

/// Classifies a database error: connection trouble, busy/locked, serialization and deadlock
/// failures are transient; everything else is permanent.
pub fn classify(e: sqlx::Error) -> DatasetError {
    if classify_ref(&e) {
        DatasetError::Transient(e.to_string())
    } else {
        DatasetError::Permanent(e.to_string())
    }
}

/// A dataset query's failure: past its deadline when the engine answers with `timeout_code`
/// (SQLite's `SQLITE_INTERRUPT`, "9", from the progress handler; PostgreSQL's `query_canceled`,
/// "57014", from `statement_timeout`), the engine's refusal of the statement otherwise, and
/// [`classify`]'s transient or permanent failure when the engine never answered.
pub fn query_refusal(e: sqlx::Error, timeout_ms: u64, timeout_code: &str) -> DatasetError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(timeout_code) => {
            DatasetError::QueryTimeout(timeout_ms)
        }
        sqlx::Error::Database(db) => DatasetError::QueryRefused(db.message().to_owned()),
        _ => classify(e),
    }
}

/// `(table, column)` rows, in column order, as the columns of each table.
pub fn columns_by_table(
    rows: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column) in rows {
        out.entry(table).or_default().push(column);
    }
    out
}

/// Whether a database error is worth retrying (see [`classify`]).
pub fn classify_ref(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: 5 BUSY, 6 LOCKED (and their extended codes). PostgreSQL: serialization
            // failure, deadlock, connection exceptions, too many connections, starting up.
            matches!(
                code.as_ref(),
                "5" | "6" | "261" | "262" | "517" | "40001" | "40P01" | "53300" | "57P03"
            ) || code.starts_with("08")
        }
        _ => false,
    }
}

/// What to provision: the dataset's id, its tables and its reader's password.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// The dataset id (a file or schema name).
    pub dataset_id: String,
    /// Tables and their columns.
    pub tables: Vec<(String, Vec<Column>)>,
    /// The password of the dataset's own database login, where the backend has logins.
    pub reader_password: ReaderPassword,
}

/// The password a dataset's own database login (PostgreSQL) authenticates with. Derived by the
/// services from `KEY_HASH_SECRET`, never stored or shown: the type redacts itself.
#[derive(Clone)]
pub struct ReaderPassword(secrecy::SecretString);

impl ReaderPassword {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Self(secrecy::SecretString::from(password))
    }

    /// The password itself, for the connection that logs in with it.
    pub(crate) fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

impl std::fmt::Debug for ReaderPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderPassword([redacted])")
    }
}

/// The answer to a dataset query.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each a list of values in column order.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How many rows are returned.
    pub row_count: usize,
    /// Whether more rows were cut off at the row limit.
    pub truncated: bool,
}

/// Writes rows as JSON Lines and returns the table's manifest entry.
pub fn write_table_export(
    dir: &Path,
    table: &str,
    rows: &[serde_json::Value],
) -> std::io::Result<ExportedTable> {
    let file = format!("{table}.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(&file))?);
    let mut hasher = Sha256::new();
    for row in rows {
        let mut line = serde_json::to_vec(row)?;
        line.push(b'\n');
        hasher.update(&line);
        out.write_all(&line)?;
    }
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(ExportedTable {
        name: table.to_owned(),
        file,
        rows: rows.len() as u64,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Maps a product column type to a backend's SQL type.
pub fn sql_type(column_type: &str, dialect: SqlDialect) -> &'static str {
    match (column_type, dialect) {
        ("integer", SqlDialect::Sqlite) => "INTEGER",
        ("integer", SqlDialect::Postgres) => "BIGINT",
        ("real", SqlDialect::Sqlite) => "REAL",
        ("real", SqlDialect::Postgres) => "DOUBLE PRECISION",
        ("numeric", _) => "NUMERIC",
        ("boolean", SqlDialect::Sqlite) => "INTEGER",
        ("boolean", SqlDialect::Postgres) => "BOOLEAN",
        ("date", SqlDialect::Postgres) => "DATE",
        ("timestamp", SqlDialect::Postgres) => "TIMESTAMPTZ",
        ("json", SqlDialect::Postgres) => "JSONB",
        _ => "TEXT",
    }
}

/// `CREATE TABLE IF NOT EXISTS` for one of a spec's tables, named `qualified` (already
/// quoted, with its schema where the backend has one).
pub fn create_table_sql(
    qualified: &str,
    columns: &[crate::product::Column],
    dialect: SqlDialect,
) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), sql_type(&c.column_type, dialect)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified} ({})",
        cols.join(", ")
    )
}

/// Collects a query's rows within its bounds: at most `max_rows` rows and `max_bytes` bytes of
/// JSON. A row that would pass either bound is not taken, and the result says `truncated`.
#[derive(Debug)]
pub struct ResultCollector {
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
    truncated: bool,
}

impl ResultCollector {
    /// A collector for rows of `columns` within `limits`.
    pub fn new(columns: Vec<String>, limits: crate::product::QueryLimits) -> Self {
        Self {
            columns,
            rows: Vec::new(),
            bytes: 0,
            max_rows: usize::try_from(limits.max_rows).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(limits.max_bytes).unwrap_or(usize::MAX),
            truncated: false,
        }
    }

    /// How many columns each row has.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Whether another row of `size` bytes fits; when it does not, the result is truncated
    /// and the caller stops reading.
    pub fn admits(&mut self, size: usize) -> bool {
        let fits =
            self.rows.len() < self.max_rows && self.bytes.saturating_add(size) <= self.max_bytes;
        self.truncated |= !fits;
        fits
    }

    /// Bytes still free under the byte bound.
    pub fn bytes_left(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes)
    }

    /// Marks the result truncated (the caller stopped for a reason of its own).
    pub fn truncate(&mut self) {
        self.truncated = true;
    }

    /// Takes a row of `size` bytes that [`ResultCollector::admits`] let in.
    pub fn push(&mut self, row: Vec<serde_json::Value>, size: usize) {
        self.bytes += size;
        self.rows.push(row);
    }

    /// The answer.
    pub fn finish(self) -> QueryResult {
        QueryResult {
            row_count: self.rows.len(),
            columns: self.columns,
            rows: self.rows,
            truncated: self.truncated,
        }
    }
}

/// Quotes an identifier. Dataset, table and column names are checked identifiers (letters,
/// digits, `_`, `-`), so doubling quotes is only a second line of defence.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A customer's dataset storage.
#[async_trait]
pub trait DatasetBackend: Send + Sync {
    /// The SQL dialect queries are written in.
    fn dialect(&self) -> SqlDialect;

    /// Creates the dataset and any missing tables, in one transaction. Safe to repeat.
    async fn provision(&self, spec: &DatasetSpec) -> Result<(), DatasetError>;

    /// Removes the dataset and everything in it. Safe to repeat.
    async fn drop_dataset(&self, dataset_id: &str) -> Result<(), DatasetError>;

    /// The dataset's tables and their columns, or `None` when it does not exist.
    async fn describe(
        &self,
        dataset_id: &str,
    ) -> Result<Option<BTreeMap<String, Vec<String>>>, DatasetError>;

    /// Runs a checked read-only query inside the dataset, bounded by `limits`, as the
    /// dataset's own reader (logging in with `reader_password` where the backend has logins).
    /// Nothing the query does outlives it.
    async fn query(
        &self,
        dataset_id: &str,
        reader_password: &ReaderPassword,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, DatasetError>;

    /// Runs `SELECT 1 AS test` through the query path and returns the dataset's tables (at
    /// least those of `expected` that exist; a backend may read only those), in one go where
    /// the backend can; `None` when the dataset does not exist.
    async fn verify(
        &self,
        dataset_id: &str,
        limits: QueryLimits,
        expected: &[String],
    ) -> Result<(QueryResult, Option<BTreeMap<String, Vec<String>>>), DatasetError>;

    /// Every row of a table, as JSON objects.
    async fn table_rows(
        &self,
        dataset_id: &str,
        table: &str,
    ) -> Result<Vec<serde_json::Value>, DatasetError>;

    /// Every dataset that exists on this backend.
    async fn list(&self) -> Result<Vec<String>, DatasetError>;

    /// Appends `rows` to `table`, all in one transaction: every row or none. Returns the rows
    /// written.
    async fn insert_rows(
        &self,
        dataset_id: &str,
        table: &str,
        rows: &Rows,
    ) -> Result<u64, DatasetError>;
}

/// Rows per `INSERT` statement for `columns` columns, under both backends' limit on
/// placeholders per statement.
pub fn rows_per_insert(columns: usize) -> usize {
    (30_000 / columns.max(1)).clamp(1, 1_000)
}

/// `INSERT INTO <target> (<columns>) VALUES` and, for `n` rows, the placeholder groups made
/// by `placeholder(index from 1, column)`.
pub fn insert_sql(
    target: &str,
    columns: &[String],
    n: usize,
    placeholder: impl Fn(usize, usize) -> String,
) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let mut sql = format!("INSERT INTO {target} ({}) VALUES ", cols.join(", "));
    let mut i = 0;
    for r in 0..n {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            i += 1;
            sql.push_str(&placeholder(i, c));
        }
        sql.push(')');
    }
    sql
}

/// The product's data stores, opened.
#[derive(Clone)]
pub struct DataStores {
    stores: BTreeMap<String, Arc<dyn DatasetBackend>>,
    in_registry: Vec<String>,
}

impl DataStores {
    /// Opens every data store the product names. `registry` means the registry's own backend.
    pub async fn open(
        product: &Product,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Result<Self, DatasetError> {
        let mut stores: BTreeMap<String, Arc<dyn DatasetBackend>> = BTreeMap::new();
        let mut in_registry = Vec::new();
        for (name, store) in &product.data_stores {
            if store.url == "registry" && database_url.is_some() {
                in_registry.push(name.clone());
            }
            let url = match (store.url.as_str(), database_url) {
                ("registry", Some(db)) => db.to_owned(),
                ("registry", None) => "sqlite://datasets".to_owned(),
                (other, _) => other.to_owned(),
            };
            let backend: Arc<dyn DatasetBackend> = match url.strip_prefix("sqlite://") {
                Some(dir) => Arc::new(SqliteDatasets::new(resolve(data_dir, dir))),
                None => Arc::new(PgDatasets::connect(&url).await?),
            };
            stores.insert(name.clone(), backend);
        }
        Ok(Self {
            stores,
            in_registry,
        })
    }

    /// The backend of a data store the product names.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DatasetBackend>> {
        self.stores.get(name)
    }

    /// Whether the data store's datasets live in the registry's own PostgreSQL database, where
    /// the registry can create them inside its transactions.
    pub fn in_registry(&self, name: &str) -> bool {
        self.in_registry.iter().any(|n| n == name)
    }

    /// Every data store, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<dyn DatasetBackend>)> {
        self.stores.iter()
    }
}

fn resolve(data_dir: &Path, dir: &str) -> PathBuf {
    let p = Path::new(dir);
    if p.is_absolute() {
        p.to_owned()
    } else {
        data_dir.join(p)
    }
}
