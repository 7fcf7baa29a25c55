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

mod credentials;
pub mod datasets;
mod keys;
mod runs;
mod tenant_query;

use super::rows::{CustomerJson, CustomerRow, EventRow, IdempotencyRow, TokenRow};
use super::{
    like_contains, AdminTokenRecord, ChainHead, CustomerFilter, EventFilter, IdempotencyRecord,
    Page, PageRequest, RunRecord, Store, StoreError,
};
use crate::domain::event::{format_time, group_by_chain, seal_chain, GENESIS_HASH};
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

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Seals `event` onto its chain and inserts it; the caller's transaction holds the write lock.
async fn append(conn: &mut SqliteConnection, event: NewEvent) -> Result<Event, StoreError> {
    let chain = event.chain().as_str().to_owned();
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM event_chain_heads WHERE chain = ?")
            .bind(&chain)
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
    let sealed = event.seal(seq + 1, prev);
    let row: EventRow = sqlx::query_as(
        "INSERT INTO events (chain, chain_seq, event_type, actor, customer_id, payload, occurred_at, \
         request_id, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(&sealed.chain)
    .bind(sealed.chain_seq)
    .bind(&sealed.event_type)
    .bind(&sealed.actor)
    .bind(&sealed.customer_id)
    .bind(&sealed.payload)
    .bind(&sealed.occurred_at)
    .bind(&sealed.request_id)
    .bind(&sealed.prev_hash)
    .bind(&sealed.hash)
    .fetch_one(&mut *conn)
    .await?;
    // The insert's trigger moves the chain's head (migration 0006).
    Ok(row.into())
}

/// Seals and inserts several events, reading each chain's head once: two statements per chain
/// however many events an update brings.
async fn append_all(conn: &mut SqliteConnection, events: Vec<NewEvent>) -> Result<(), StoreError> {
    for (chain, batch) in group_by_chain(events) {
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM event_chain_heads WHERE chain = ?")
                .bind(&chain)
                .fetch_optional(&mut *conn)
                .await?;
        let (seq, hash) = head.unwrap_or((0, GENESIS_HASH.to_owned()));
        let (sealed, _, _) = seal_chain(batch, seq, hash);
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (chain, chain_seq, event_type, actor, customer_id, payload, occurred_at, \
             request_id, prev_hash, hash) ",
        );
        q.push_values(&sealed, |mut row, e| {
            row.push_bind(&e.chain)
                .push_bind(e.chain_seq)
                .push_bind(&e.event_type)
                .push_bind(&e.actor)
                .push_bind(&e.customer_id)
                .push_bind(&e.payload)
                .push_bind(&e.occurred_at)
                .push_bind(&e.request_id)
                .push_bind(&e.prev_hash)
                .push_bind(&e.hash);
        });
        // The insert's trigger moves the chain's head, row by row in chain order.
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
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

    async fn insert_customer(
        &self,
        c: &Customer,
        event: NewEvent,
        run: Option<&RunRecord>,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Event, StoreError> {
        let mut tx = self.begin().await?;
        let json = CustomerJson::of(c);
        let inserted = sqlx::query(
            "INSERT INTO customers (customer_id, customer_name, name_folded, industry, data_store, status, tags, \
             attributes, contact_email, contact_name, created_by, usage_tier, version, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.as_str())
        .bind(c.name.as_str())
        .bind(&json.name_folded)
        .bind(&c.industry)
        .bind(&c.data_store)
        .bind(c.status.as_str())
        .bind(&json.tags)
        .bind(&json.attributes)
        .bind(c.contact.email.as_ref().map(|e| e.as_str()))
        .bind(&c.contact.name)
        .bind(&c.created_by)
        .bind(&c.usage_tier)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::CustomerExists(c.id.to_string()))
            }
            other => other?,
        };
        if let Some(run) = run {
            runs::insert_run_rows(&mut tx, run).await?;
        }
        if let Some(rec) = idempotency {
            let stored = sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, customer_id, status, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&rec.key)
            .bind(&rec.fingerprint)
            .bind(c.id.as_str())
            .bind(i64::from(rec.status))
            .bind(&rec.body)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await;
            match stored {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::IdempotencyKeyTaken(rec.key.clone()))
                }
                other => other?,
            };
        }
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn get_customer(&self, customer_id: &str) -> Result<Option<Customer>, StoreError> {
        let row: Option<CustomerRow> =
            sqlx::query_as("SELECT * FROM customers WHERE customer_id = ?")
                .bind(customer_id)
                .fetch_optional(&self.reader)
                .await?;
        row.map(Customer::try_from).transpose()
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM customers WHERE 1 = 1");
        if let Some(statuses) = &filter.statuses {
            q.push(" AND status IN (");
            let mut list = q.separated(", ");
            for s in statuses {
                list.push_bind(s.as_str());
            }
            q.push(")");
        }
        if let Some(industry) = &filter.industry {
            q.push(" AND industry = ").push_bind(industry.clone());
        }
        if let Some(tag) = &filter.tag {
            q.push(" AND EXISTS (SELECT 1 FROM json_each(customers.tags) WHERE json_each.value = ")
                .push_bind(tag.clone())
                .push(")");
        }
        if let Some(text) = &filter.name_contains {
            q.push(" AND name_folded LIKE ")
                .push_bind(like_contains(text))
                .push(" ESCAPE '\\'");
        }
        if let Some(after) = &page.after {
            q.push(" AND customer_id > ").push_bind(after.clone());
        }
        q.push(" ORDER BY customer_id LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows: Vec<CustomerRow> = q.build_query_as().fetch_all(&self.reader).await?;
        let items = rows
            .into_iter()
            .map(Customer::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |c| {
            c.id.to_string()
        }))
    }

    async fn update_customer(
        &self,
        customer_id: &str,
        c: &Customer,
        expected_version: i64,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let mut tx = self.begin().await?;
        runs::update_customer_row(&mut tx, customer_id, c, expected_version).await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn count_customers(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<IdempotencyRow> = sqlx::query_as(
            "SELECT key, fingerprint, status, body, created_at FROM idempotency_keys WHERE key = ?",
        )
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn insert_admin_token(
        &self,
        t: &AdminTokenRecord,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO admin_tokens (id, name, role, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.role.as_str())
            .bind(&t.secret_hash)
            .bind(t.created_at)
            .bind(t.revoked_at)
            .execute(&mut *tx)
            .await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn get_admin_token(&self, id: &str) -> Result<Option<AdminTokenRecord>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as("SELECT * FROM admin_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(AdminTokenRecord::try_from).transpose()
    }

    async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError> {
        let mut tx = self.begin().await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM events WHERE 1 = 1");
        if let Some(c) = &f.customer_id {
            q.push(" AND customer_id = ").push_bind(c.clone());
        }
        if let Some(t) = &f.event_type {
            q.push(" AND event_type = ").push_bind(t.clone());
        }
        if let Some(since) = f.since {
            q.push(" AND occurred_at >= ").push_bind(format_time(since));
        }
        if let Some(until) = f.until {
            q.push(" AND occurred_at < ").push_bind(format_time(until));
        }
        if let Some(after) = f.after_id {
            q.push(" AND id > ").push_bind(after);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(f.limit));
        let rows: Vec<EventRow> = q.build_query_as().fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn events_in_chain_order(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let (chain, seq) = after.unwrap_or(("", 0));
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM events WHERE (chain, chain_seq) > (?, ?) ORDER BY chain, chain_seq LIMIT ?",
        )
        .bind(chain)
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT chain, seq, hash FROM event_chain_heads ORDER BY chain")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(chain, seq, hash)| ChainHead { chain, seq, hash })
            .collect())
    }
}
