//! The PostgreSQL backend: the registry in its own schema (`onramp`), so it can share a
//! database with tenant dataset schemas. Several `onramp serve` processes may share it: chain
//! appends lock the chain head row, so events of one chain are sealed one at a time.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};
use std::str::FromStr;
use std::time::Duration;

pub mod datasets;
mod runs;

use super::rows::{CustomerJson, EventRow};
use super::{DatasetRecord, IdempotencyRecord, RunRecord, Store, StoreError};
use crate::domain::event::{group_by_chain, seal_chain, GENESIS_HASH};
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

    /// A write transaction.
    pub(super) async fn write(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Where reads go.
    pub(super) fn reads(&self) -> &PgPool {
        &self.pool
    }

    /// Where a single-statement write goes.
    pub(super) fn writes(&self) -> &PgPool {
        &self.pool
    }
}

/// What a claiming `SELECT` ends with, so that two claimers never take one row.
const FOR_UPDATE_SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

crate::store::sql::portable_store!(PgStore, PgConnection, Postgres);

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

/// Seals `event` onto its chain and inserts it, holding the chain head's row lock until the
/// caller's transaction ends.
async fn append(conn: &mut PgConnection, event: NewEvent) -> Result<Event, StoreError> {
    let chain = event.chain().as_str().to_owned();
    let (seq, prev) = lock_head(conn, &chain).await?;
    let sealed = [event.seal(seq + 1, prev)];
    // The event and the chain's new head in one statement.
    let mut q = QueryBuilder::new("WITH head AS (UPDATE event_chain_heads SET seq = ");
    q.push_bind(sealed[0].chain_seq)
        .push(", hash = ")
        .push_bind(&sealed[0].hash)
        .push(" WHERE chain = ")
        .push_bind(&chain)
        .push(") ");
    push_events_insert(&mut q, &sealed);
    q.push(" RETURNING *");
    let row: EventRow = q.build_query_as().fetch_one(&mut *conn).await?;
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
            .push(") ");
        push_events_insert(&mut q, &sealed);
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
) -> Result<(), StoreError> {
    insert_customer_and_dataset_rows(conn, c, run, idempotency, None).await
}

/// Inserts a customer, its run, its idempotency record and, when given, its dataset's record
/// inside the caller's transaction.
async fn insert_customer_and_dataset_rows(
    conn: &mut PgConnection,
    c: &Customer,
    run: Option<&RunRecord>,
    idempotency: Option<&IdempotencyRecord>,
    dataset: Option<&DatasetRecord>,
) -> Result<(), StoreError> {
    let json = CustomerJson::of(c);
    // The customer, its dataset's record, its run and the run's steps in one statement.
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("WITH customer AS (");
    push_customer_insert(&mut q, c, &json);
    q.push(")");
    if let Some(d) = dataset {
        q.push(", dataset AS (");
        push_dataset_upsert(&mut q, d);
        q.push(")");
    }
    if let Some(run) = run {
        q.push(", run AS (");
        push_run_insert(&mut q, run);
        q.push(")");
        if !run.steps.is_empty() {
            q.push(" ");
            push_steps_insert(&mut q, &run.customer_id, &run.run_id, &run.steps);
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
        insert_staged_rows(conn, run).await?;
    }
    if let Some(rec) = idempotency {
        insert_idempotency_row(conn, rec, c.id.as_str()).await?;
    }
    Ok(())
}

/// Customers with `tag` among their tags, for a listing being built.
fn push_tag_filter(q: &mut QueryBuilder<'_, Postgres>, tag: String) {
    q.push(" AND tags @> ")
        .push_bind(sqlx::types::Json(vec![tag]));
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
        let rows = insert_customer_and_dataset_rows(
            &mut tx,
            customer,
            Some(run),
            idempotency,
            Some(dataset),
        )
        .await;
        if let Err(StoreError::Database(sqlx::Error::Database(db))) = &rows {
            // The dataset's name index is not the upsert's arbiter, so a concurrent registration
            // of the same customer that passed ON CONFLICT's pre-check can clash there first.
            // It is that customer when the name's owner is this customer; anything else is not.
            if db.is_unique_violation() && db.table() == Some("datasets") {
                tx.rollback().await?;
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT customer_id FROM datasets WHERE dataset_id = $1")
                        .bind(&dataset.dataset_id)
                        .fetch_optional(&self.pool)
                        .await?;
                return Err(if owner.as_deref() == Some(customer.id.as_str()) {
                    StoreError::CustomerExists(customer.id.to_string())
                } else {
                    rows.expect_err("a clash")
                });
            }
        }
        rows?;
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
}
