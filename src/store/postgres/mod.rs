//! The PostgreSQL backend: the registry in its own schema (`onramp`), so it can share a
//! database with tenant dataset schemas. Several `onramp serve` processes may share it: chain
//! appends lock the chain head row, so events of one chain are sealed one at a time.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use std::str::FromStr;
use std::time::Duration;

mod credentials;
pub mod datasets;
mod keys;
mod runs;

use super::rows::{CustomerJson, CustomerRow, EventRow, IdempotencyRow, TokenRow};
use super::{
    like_contains, AdminTokenRecord, ChainHead, CustomerFilter, DatasetRecord, EventFilter,
    IdempotencyRecord, Page, PageRequest, RunRecord, Store, StoreError,
};
use crate::domain::event::{format_time, group_by_chain, seal_chain, GENESIS_HASH};
use crate::domain::{Customer, Event, NewEvent};
use crate::store::datasets::DatasetSpec;

/// The schema that holds the registry.
pub const REGISTRY_SCHEMA: &str = "onramp";

/// The PostgreSQL registry.
pub struct PgStore {
    pool: PgPool,
    role_prefix: String,
}

impl PgStore {
    /// Connects, creating the registry schema when it is missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let base = PgConnectOptions::from_str(url)?;
        let mut conn = PgConnection::connect_with(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {REGISTRY_SCHEMA}"))
            .execute(&mut conn)
            .await?;
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        let options = base.options([("search_path", REGISTRY_SCHEMA)]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            role_prefix: datasets::role_prefix(&database),
        })
    }
}

/// Creates an empty database named `name` on the server of `server_url` and returns its URL.
/// Used for scratch registries (benchmarks); `name` must be a plain identifier.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    assert!(name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url = url::Url::parse(server_url).map_err(|e| {
        StoreError::Database(sqlx::Error::Configuration(
            format!("bad database URL: {e}").into(),
        ))
    })?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Drops a database made by [`create_database`], disconnecting its sessions.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    assert!(name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Seals `event` onto its chain and inserts it, holding the chain head's row lock until the
/// caller's transaction ends.
/// The chain's head (sequence and hash), locked for this transaction; a new chain starts at
/// the genesis hash. One round trip: the upsert creates the head or locks the existing one.
async fn lock_head(conn: &mut PgConnection, chain: &str) -> Result<(i64, String), StoreError> {
    Ok(sqlx::query_as(
        "INSERT INTO event_chain_heads (chain, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (chain) DO UPDATE SET chain = excluded.chain RETURNING seq, hash",
    )
    .bind(chain)
    .bind(GENESIS_HASH)
    .fetch_one(&mut *conn)
    .await?)
}

async fn append(conn: &mut PgConnection, event: NewEvent) -> Result<Event, StoreError> {
    let chain = event.chain().as_str().to_owned();
    let (seq, prev) = lock_head(conn, &chain).await?;
    let sealed = event.seal(seq + 1, prev);
    // The event and the chain's new head in one statement.
    let row: EventRow = sqlx::query_as(
        "WITH head AS (UPDATE event_chain_heads SET seq = $2, hash = $10 WHERE chain = $1) \
         INSERT INTO events (chain, chain_seq, event_type, actor, customer_id, payload, occurred_at, \
         request_id, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *",
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
    Ok(row.into())
}

/// Seals and inserts several events, reading and writing each chain's head once: two
/// statements per chain however many events an update brings.
async fn append_all(conn: &mut PgConnection, events: Vec<NewEvent>) -> Result<(), StoreError> {
    for (chain, batch) in group_by_chain(events) {
        let (seq, hash) = lock_head(conn, &chain).await?;
        let (sealed, seq, hash) = seal_chain(batch, seq, hash);
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new("WITH head AS (UPDATE event_chain_heads SET seq = ");
        q.push_bind(seq)
            .push(", hash = ")
            .push_bind(hash)
            .push(" WHERE chain = ")
            .push_bind(chain)
            .push(
                ") INSERT INTO events (chain, chain_seq, event_type, actor, customer_id, payload, \
                 occurred_at, request_id, prev_hash, hash) ",
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
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts a customer, its run and its idempotency record inside the caller's transaction.
async fn insert_customer_rows(
    conn: &mut PgConnection,
    c: &Customer,
    run: Option<&RunRecord>,
    idempotency: Option<&IdempotencyRecord>,
    dataset: Option<&DatasetRecord>,
) -> Result<(), StoreError> {
    let json = CustomerJson::of(c);
    // The customer, its run and the run's steps in one statement.
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "WITH customer AS (INSERT INTO customers (customer_id, customer_name, name_folded, industry, \
         data_store, status, tags, attributes, contact_email, contact_name, created_by, usage_tier, \
         version, created_at, updated_at) ",
    );
    q.push_values([c], |mut row, c| {
        row.push_bind(c.id.as_str())
            .push_bind(c.name.as_str())
            .push_bind(&json.name_folded)
            .push_bind(&c.industry)
            .push_bind(&c.data_store)
            .push_bind(c.status.as_str())
            .push_bind(&json.tags)
            .push_bind(&json.attributes)
            .push_bind(c.contact.email.as_ref().map(|e| e.as_str()))
            .push_bind(&c.contact.name)
            .push_bind(&c.created_by)
            .push_bind(&c.usage_tier)
            .push_bind(c.version)
            .push_bind(c.created_at)
            .push_bind(c.updated_at);
    });
    q.push(")");
    if let Some(d) = dataset {
        q.push(", dataset AS (");
        runs::push_dataset_upsert(&mut q, d);
        q.push(")");
    }
    if let Some(run) = run {
        q.push(", run AS (");
        runs::push_run_insert(&mut q, run);
        q.push(")");
        if !run.steps.is_empty() {
            q.push(" ");
            runs::push_steps_insert(&mut q, &run.customer_id, &run.run_id, &run.steps);
        } else {
            q.push(" SELECT 1");
        }
    } else {
        q.push(" SELECT 1");
    }
    let inserted = q.build().execute(&mut *conn).await;
    match inserted {
        Err(sqlx::Error::Database(db))
            if db.is_unique_violation() && db.table() == Some("customers") =>
        {
            return Err(StoreError::CustomerExists(c.id.to_string()))
        }
        other => other?,
    };
    if let Some(run) = run {
        runs::insert_staged_rows(conn, run).await?;
    }
    if let Some(rec) = idempotency {
        let stored = sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, customer_id, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&rec.key)
        .bind(&rec.fingerprint)
        .bind(c.id.as_str())
        .bind(i64::from(rec.status))
        .bind(&rec.body)
        .bind(rec.created_at)
        .execute(&mut *conn)
        .await;
        match stored {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::IdempotencyKeyTaken(rec.key.clone()))
            }
            other => other?,
        };
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn provisions_datasets_in_registry(&self) -> bool {
        true
    }

    async fn insert_customer_with_dataset(
        &self,
        customer: &Customer,
        events: Vec<NewEvent>,
        run: &RunRecord,
        idempotency: Option<&IdempotencyRecord>,
        spec: &DatasetSpec,
        dataset: &DatasetRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_customer_rows(&mut tx, customer, Some(run), idempotency, Some(dataset)).await?;
        let role = datasets::role_name(&self.role_prefix, &spec.dataset_id);
        datasets::provision_in(&mut tx, spec, &role).await?;
        append_all(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        // Once after the migration that changed how names fold (0006): recompute them, by
        // one process (the marker row is locked and deleted in the same transaction).
        let mut tx = self.pool.begin().await?;
        let pending: Option<i32> =
            sqlx::query_scalar("DELETE FROM name_refold_pending RETURNING pending")
                .fetch_optional(&mut *tx)
                .await?;
        if pending.is_some() {
            let names: Vec<(String, String)> =
                sqlx::query_as("SELECT customer_id, customer_name FROM customers")
                    .fetch_all(&mut *tx)
                    .await?;
            let (ids, folded): (Vec<String>, Vec<String>) = names
                .into_iter()
                .map(|(id, name)| (id, crate::domain::text::fold_name(&name)))
                .unzip();
            sqlx::query(
                "UPDATE customers SET name_folded = f.folded \
                 FROM unnest($1::text[], $2::text[]) AS f(id, folded) WHERE customer_id = f.id",
            )
            .bind(ids)
            .bind(folded)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_customer(
        &self,
        c: &Customer,
        event: NewEvent,
        run: Option<&RunRecord>,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Event, StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_customer_rows(&mut tx, c, run, idempotency, None).await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn get_customer(&self, customer_id: &str) -> Result<Option<Customer>, StoreError> {
        let row: Option<CustomerRow> =
            sqlx::query_as("SELECT * FROM customers WHERE customer_id = $1")
                .bind(customer_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(Customer::try_from).transpose()
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT * FROM customers WHERE TRUE");
        match filter.statuses.as_deref() {
            // Equality lets the (status, industry, customer_id) index return rows in key order;
            // `= ANY(array)` would make PostgreSQL sort the whole match first.
            Some([one]) => {
                q.push(" AND status = ").push_bind(one.as_str());
            }
            Some(many) => {
                let names: Vec<String> = many.iter().map(|s| s.as_str().to_owned()).collect();
                q.push(" AND status = ANY(").push_bind(names).push(")");
            }
            None => {}
        }
        if let Some(industry) = &filter.industry {
            q.push(" AND industry = ").push_bind(industry.clone());
        }
        if let Some(tag) = &filter.tag {
            q.push(" AND tags @> ")
                .push_bind(sqlx::types::Json(vec![tag.clone()]));
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
        let rows: Vec<CustomerRow> = q.build_query_as().fetch_all(&self.pool).await?;
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
        let mut tx = self.pool.begin().await?;
        runs::update_customer_row(&mut tx, customer_id, c, expected_version).await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn count_customers(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<IdempotencyRow> = sqlx::query_as(
            "SELECT key, fingerprint, status, body, created_at FROM idempotency_keys WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    async fn insert_admin_token(
        &self,
        t: &AdminTokenRecord,
        event: NewEvent,
    ) -> Result<Event, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, role, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
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
        let row: Option<TokenRow> = sqlx::query_as("SELECT * FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(AdminTokenRecord::try_from).transpose()
    }

    async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError> {
        let mut tx = self.pool.begin().await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT * FROM events WHERE TRUE");
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
        let rows: Vec<EventRow> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn events_in_chain_order(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let (chain, seq) = after.unwrap_or(("", 0));
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM events WHERE (chain, chain_seq) > ($1, $2) ORDER BY chain, chain_seq LIMIT $3",
        )
        .bind(chain)
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT chain, seq, hash FROM event_chain_heads WHERE seq > 0 ORDER BY chain",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(chain, seq, hash)| ChainHead { chain, seq, hash })
            .collect())
    }
}
