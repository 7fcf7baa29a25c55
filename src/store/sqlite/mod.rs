//! The embedded backend: the registry in one SQLite file (WAL mode) in the data dir.
//!
//! Writes go through a pool of one connection and start with `BEGIN IMMEDIATE`, so a
//! read-then-write transaction (reading a chain head, then appending) never fails to upgrade its
//! lock, and writers queue in the pool instead of spinning in SQLite's busy handler. Reads use
//! their own pool and run beside the writer, as WAL allows.

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub mod datasets;
mod runs;
mod tenant_query;

use super::rows::{CustomerJson, EventRow};
use super::{IdempotencyRecord, RunRecord, Store, StoreError};
use crate::domain::event::{group_by_chain, seal_chain, GENESIS_HASH};
use crate::domain::{Customer, Event, NewEvent};

/// The file name of the registry inside the data dir.
pub const REGISTRY_FILE: &str = "onramp.db";

/// The SQLite registry.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `onramp.db` in `data_dir`, creating the directory too.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create data dir {}: {e}", data_dir.display()).into(),
            ))
        })?;
        Self::open_file(&data_dir.join(REGISTRY_FILE)).await
    }

    /// Opens (creating if needed) the registry at `path`.
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-4000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    /// A write transaction: `BEGIN IMMEDIATE` on the one writer connection.
    pub(super) async fn write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where reads go: the read-only pool.
    pub(super) fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    /// Where a single-statement write goes: the one writer connection.
    pub(super) fn writes(&self) -> &SqlitePool {
        &self.writer
    }
}

/// What a claiming `SELECT` ends with, so that two claimers never take one row.
const FOR_UPDATE_SKIP_LOCKED: &str = "";

crate::store::sql::portable_store!(SqliteStore, SqliteConnection, Sqlite);

/// The head (sequence and hash) of `chain`; a new chain starts at the genesis hash. The
/// caller's transaction holds the one write lock, so the head cannot move under it.
async fn chain_head(conn: &mut SqliteConnection, chain: &str) -> Result<(i64, String), StoreError> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM event_chain_heads WHERE chain = $1")
            .bind(chain)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(head.unwrap_or((0, GENESIS_HASH.to_owned())))
}

/// Seals `event` onto its chain and inserts it; the insert's trigger moves the chain's head
/// (migration 0006).
async fn append(conn: &mut SqliteConnection, event: NewEvent) -> Result<Event, StoreError> {
    let (seq, prev) = chain_head(conn, event.chain().as_str()).await?;
    let sealed = [event.seal(seq + 1, prev)];
    let mut q = QueryBuilder::new("");
    push_events_insert(&mut q, &sealed);
    q.push(" RETURNING *");
    let row: EventRow = q.build_query_as().fetch_one(&mut *conn).await?;
    Ok(row.into())
}

/// Seals and inserts several events, reading each chain's head once: two statements per chain
/// however many events an update brings. The trigger moves each head row by row, in chain
/// order.
async fn append_all(conn: &mut SqliteConnection, events: Vec<NewEvent>) -> Result<(), StoreError> {
    for (chain, batch) in group_by_chain(events) {
        let (seq, hash) = chain_head(conn, &chain).await?;
        let (sealed, _, _) = seal_chain(batch, seq, hash);
        let mut q = QueryBuilder::new("");
        push_events_insert(&mut q, &sealed);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts a customer, its run and its idempotency record inside the caller's transaction.
async fn insert_customer_rows(
    conn: &mut SqliteConnection,
    c: &Customer,
    run: Option<&RunRecord>,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<(), StoreError> {
    let json = CustomerJson::of(c);
    let mut q = QueryBuilder::new("");
    push_customer_insert(&mut q, c, &json);
    match q.build().execute(&mut *conn).await {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::CustomerExists(c.id.to_string()))
        }
        other => other?,
    };
    if let Some(run) = run {
        runs::insert_run_rows(conn, run).await?;
    }
    if let Some(rec) = idempotency {
        insert_idempotency_row(conn, rec, c.id.as_str()).await?;
    }
    Ok(())
}

/// Customers with `tag` among their tags, for a listing being built.
fn push_tag_filter(q: &mut QueryBuilder<'_, Sqlite>, tag: String) {
    q.push(" AND EXISTS (SELECT 1 FROM json_each(customers.tags) WHERE json_each.value = ")
        .push_bind(tag)
        .push(")");
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await?;
        // Once after the migration that changed how names fold (0007): recompute them.
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM name_refold_pending")
            .fetch_one(&self.writer)
            .await?;
        if pending > 0 {
            let mut tx = self.writer.begin().await?;
            let names: Vec<(String, String)> =
                sqlx::query_as("SELECT customer_id, customer_name FROM customers")
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, name) in names {
                sqlx::query("UPDATE customers SET name_folded = $1 WHERE customer_id = $2")
                    .bind(crate::domain::text::fold_name(&name))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM name_refold_pending")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}
