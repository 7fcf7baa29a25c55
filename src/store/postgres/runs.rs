//! Runs, dataset records and the checklist on PostgreSQL.

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::{append, append_all, PgStore};
use crate::domain::{Customer, NewEvent};
use crate::store::rows::{run_record, ChecklistRow, DatasetRow, RunRow, StepRow};
use crate::store::{
    ChecklistRecord, DatasetRecord, RunRecord, RunStore, RunUpdate, StepRecord, StoreError,
};

/// `INSERT INTO onboarding_runs` for `run`, for a statement being built.
pub(super) fn push_run_insert<'a>(q: &mut QueryBuilder<'a, Postgres>, run: &'a RunRecord) {
    q.push(
        "INSERT INTO onboarding_runs (customer_id, run_id, status, errors, started_at, finished_at, \
         updated_at, lease_owner, lease_expires_ms) ",
    );
    q.push_values([run], |mut row, run| {
        row.push_bind(&run.customer_id)
            .push_bind(&run.run_id)
            .push_bind(run.status.as_str())
            .push_bind(Json(&run.errors))
            .push_bind(run.started_at)
            .push_bind(run.finished_at)
            .push_bind(run.updated_at)
            .push_bind(&run.lease_owner)
            .push_bind(run.lease_expires_ms);
    });
}

/// `INSERT INTO onboarding_steps` for `steps` (at least one), for a statement being built.
pub(super) fn push_steps_insert<'a>(
    q: &mut QueryBuilder<'a, Postgres>,
    customer_id: &'a str,
    run_id: &'a str,
    steps: &'a [StepRecord],
) {
    q.push(
        "INSERT INTO onboarding_steps (customer_id, run_id, name, position, status, attempts, started_at, \
         finished_at, error, completed_seq) ",
    );
    q.push_values(steps, |mut row, s| {
        row.push_bind(customer_id)
            .push_bind(run_id)
            .push_bind(&s.name)
            .push_bind(s.position)
            .push_bind(s.status.as_str())
            .push_bind(s.attempts)
            .push_bind(s.started_at)
            .push_bind(s.finished_at)
            .push_bind(&s.error)
            .push_bind(s.completed_seq);
    });
}

/// The run's staged credentials (sealed), inside the caller's transaction.
pub(super) async fn insert_staged_rows(
    conn: &mut PgConnection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    for c in &run.staged_credentials {
        sqlx::query(
            "INSERT INTO staged_credentials (customer_id, run_id, credential_type, fingerprint, scopes, \
             master_version, wrapped_key, key_nonce, ciphertext, nonce) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&run.customer_id)
        .bind(&run.run_id)
        .bind(&c.credential_type)
        .bind(&c.fingerprint)
        .bind(c.scopes.as_ref().map(Json))
        .bind(i64::from(c.sealed.master_version))
        .bind(&c.sealed.wrapped_key)
        .bind(&c.sealed.key_nonce)
        .bind(&c.sealed.ciphertext)
        .bind(&c.sealed.nonce)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts a run, its staged credentials and its steps inside the caller's transaction.
pub(super) async fn insert_run_rows(
    conn: &mut PgConnection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::new("");
    if run.steps.is_empty() {
        push_run_insert(&mut q, run);
    } else {
        q.push("WITH run AS (");
        push_run_insert(&mut q, run);
        q.push(") ");
        push_steps_insert(&mut q, &run.customer_id, &run.run_id, &run.steps);
    }
    q.build().execute(&mut *conn).await?;
    insert_staged_rows(conn, run).await
}

/// Saves a customer change inside the caller's transaction, checking its version.
pub(super) async fn update_customer_row(
    conn: &mut PgConnection,
    customer_id: &str,
    c: &Customer,
    expected_version: i64,
) -> Result<(), StoreError> {
    let json = crate::store::rows::CustomerJson::of(c);
    let updated = sqlx::query(
        "UPDATE customers SET customer_name = $1, name_folded = $2, industry = $3, data_store = $4, status = $5, \
         tags = $6, attributes = $7, contact_email = $8, contact_name = $9, created_by = $10, usage_tier = $11, \
         version = $12, updated_at = $13 WHERE customer_id = $14 AND version = $15",
    )
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
    .bind(c.updated_at)
    .bind(customer_id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    Err(customer_conflict(conn, customer_id, expected_version).await)
}

/// Why a customer update that expected `expected_version` changed no row.
async fn customer_conflict(
    conn: &mut PgConnection,
    customer_id: &str,
    expected_version: i64,
) -> StoreError {
    let found: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM customers WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await;
    match found {
        Err(e) => e.into(),
        Ok(None) => StoreError::CustomerNotFound(customer_id.to_owned()),
        Ok(Some(found)) => StoreError::VersionConflict {
            customer_id: customer_id.to_owned(),
            expected: expected_version,
            found,
        },
    }
}

/// The dataset record's upsert, for a statement being built.
pub(super) fn push_dataset_upsert<'a>(q: &mut QueryBuilder<'a, Postgres>, r: &'a DatasetRecord) {
    q.push(
        "INSERT INTO datasets (customer_id, dataset_id, data_store, tier, schema_version, tables, \
         created_at, updated_at) ",
    );
    q.push_values([r], |mut row, r| {
        row.push_bind(&r.customer_id)
            .push_bind(&r.dataset_id)
            .push_bind(&r.data_store)
            .push_bind(&r.tier)
            .push_bind(r.schema_version)
            .push_bind(Json(&r.tables))
            .push_bind(r.created_at)
            .push_bind(r.updated_at);
    });
    q.push(
        " ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier, \
         schema_version = excluded.schema_version, tables = excluded.tables, \
         updated_at = excluded.updated_at",
    );
}

pub(super) async fn upsert_dataset_row(
    conn: &mut PgConnection,
    r: &DatasetRecord,
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::new("");
    push_dataset_upsert(&mut q, r);
    q.build().execute(&mut *conn).await?;
    Ok(())
}

/// The upsert that saves steps' new states (the rows exist; it only updates), for a statement
/// being built.
fn push_step_upsert<'a>(
    q: &mut sqlx::QueryBuilder<'a, sqlx::Postgres>,
    customer_id: &'a str,
    run_id: &'a str,
    steps: &'a [StepRecord],
) {
    push_steps_insert(q, customer_id, run_id, steps);
    q.push(
        " ON CONFLICT (customer_id, run_id, name) DO UPDATE SET status = excluded.status, \
         attempts = excluded.attempts, started_at = excluded.started_at, \
         finished_at = excluded.finished_at, error = excluded.error, \
         completed_seq = excluded.completed_seq",
    );
}

#[async_trait]
impl RunStore for PgStore {
    async fn insert_run(
        &self,
        run: &RunRecord,
        customer: Option<(&Customer, i64)>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some((c, version)) = customer {
            update_customer_row(&mut tx, &run.customer_id, c, version).await?;
        }
        insert_run_rows(&mut tx, run).await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_run(&self, customer_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let run: Option<RunRow> = sqlx::query_as(
            "SELECT * FROM onboarding_runs WHERE customer_id = $1 ORDER BY started_at DESC, run_id DESC LIMIT 1",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(run) = run else { return Ok(None) };
        let steps: Vec<StepRow> = sqlx::query_as(
            "SELECT name, position, status, attempts, started_at, finished_at, error, completed_seq \
             FROM onboarding_steps WHERE customer_id = $1 AND run_id = $2 ORDER BY position",
        )
        .bind(customer_id)
        .bind(&run.run_id)
        .fetch_all(&self.pool)
        .await?;
        run_record(run, steps).map(Some)
    }

    async fn update_run(
        &self,
        customer_id: &str,
        run_id: &str,
        owner: &str,
        u: RunUpdate<'_>,
    ) -> Result<(), StoreError> {
        let final_status = u.status.is_some_and(|s| s.is_final());
        let customer_json = u
            .customer
            .map(|(c, _)| crate::store::rows::CustomerJson::of(c));
        let mut tx = self.pool.begin().await?;
        // The run (if this process still holds it), its steps and the customer's change (if its
        // version still matches) in one statement; a miss rolls everything back.
        let mut q: sqlx::QueryBuilder<sqlx::Postgres> = sqlx::QueryBuilder::new(
            "WITH run AS (UPDATE onboarding_runs SET lease_expires_ms = CASE WHEN ",
        );
        q.push_bind(final_status)
            .push(" THEN 0 ELSE ")
            .push_bind(u.lease_until_ms)
            .push(" END, lease_owner = CASE WHEN ")
            .push_bind(final_status)
            .push(" THEN NULL ELSE lease_owner END, status = COALESCE(")
            .push_bind(u.status.map(|s| s.as_str()))
            .push(", status), errors = COALESCE(")
            .push_bind(u.errors.map(Json))
            .push("::jsonb, errors), updated_at = ")
            .push_bind(u.at)
            .push(", finished_at = CASE WHEN ")
            .push_bind(final_status)
            .push(" THEN ")
            .push_bind(u.at)
            .push(" ELSE finished_at END WHERE customer_id = ")
            .push_bind(customer_id)
            .push(" AND run_id = ")
            .push_bind(run_id)
            .push(" AND lease_owner = ")
            .push_bind(owner)
            .push(" RETURNING 1)");
        if !u.steps.is_empty() {
            q.push(", steps AS (");
            push_step_upsert(&mut q, customer_id, run_id, u.steps);
            q.push(")");
        }
        if let (Some((c, version)), Some(json)) = (u.customer, &customer_json) {
            q.push(", customer AS (UPDATE customers SET customer_name = ")
                .push_bind(c.name.as_str())
                .push(", name_folded = ")
                .push_bind(&json.name_folded)
                .push(", industry = ")
                .push_bind(&c.industry)
                .push(", data_store = ")
                .push_bind(&c.data_store)
                .push(", status = ")
                .push_bind(c.status.as_str())
                .push(", tags = ")
                .push_bind(&json.tags)
                .push(", attributes = ")
                .push_bind(&json.attributes)
                .push(", contact_email = ")
                .push_bind(c.contact.email.as_ref().map(|e| e.as_str()))
                .push(", contact_name = ")
                .push_bind(&c.contact.name)
                .push(", created_by = ")
                .push_bind(&c.created_by)
                .push(", usage_tier = ")
                .push_bind(&c.usage_tier)
                .push(", version = ")
                .push_bind(c.version)
                .push(", updated_at = ")
                .push_bind(c.updated_at)
                .push(" WHERE customer_id = ")
                .push_bind(customer_id)
                .push(" AND version = ")
                .push_bind(version)
                .push(" RETURNING 1)");
            q.push(" SELECT (SELECT count(*) FROM run), (SELECT count(*) FROM customer)");
        } else {
            q.push(" SELECT (SELECT count(*) FROM run), 1::bigint");
        }
        let (run_rows, customer_rows): (i64, i64) = q.build_query_as().fetch_one(&mut *tx).await?;
        if run_rows == 0 {
            return Err(StoreError::LeaseLost {
                customer_id: customer_id.to_owned(),
                run_id: run_id.to_owned(),
            });
        }
        if let (Some((_, expected)), 0) = (u.customer, customer_rows) {
            return Err(customer_conflict(&mut tx, customer_id, expected).await);
        }
        if let Some(d) = u.dataset {
            upsert_dataset_row(&mut tx, d).await?;
        }
        append_all(&mut tx, u.events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_runs(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let candidates: Vec<(String, String)> = sqlx::query_as(
            "SELECT customer_id, run_id FROM onboarding_runs WHERE status IN ('running', 'compensating') \
             AND lease_expires_ms < $1 ORDER BY lease_expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        for (customer_id, run_id) in &candidates {
            sqlx::query("UPDATE onboarding_runs SET lease_owner = $1, lease_expires_ms = $2 WHERE customer_id = $3 AND run_id = $4")
                .bind(owner)
                .bind(now_ms + lease_ms)
                .bind(customer_id)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(candidates)
    }

    async fn save_dataset(
        &self,
        r: &DatasetRecord,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        upsert_dataset_row(&mut tx, r).await?;
        if let Some(event) = event {
            append(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_dataset(&self, customer_id: &str) -> Result<Option<DatasetRecord>, StoreError> {
        let row: Option<DatasetRow> =
            sqlx::query_as("SELECT * FROM datasets WHERE customer_id = $1")
                .bind(customer_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Into::into))
    }

    async fn delete_dataset(&self, customer_id: &str, event: NewEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM datasets WHERE customer_id = $1")
            .bind(customer_id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_checklist(
        &self,
        customer_id: &str,
        item: &ChecklistRecord,
        event: NewEvent,
    ) -> Result<ChecklistRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing: Option<ChecklistRow> = sqlx::query_as(
            "SELECT item_id, done_by, done_at FROM checklist_items WHERE customer_id = $1 AND item_id = $2",
        )
        .bind(customer_id)
        .bind(&item.item_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(row.into());
        }
        sqlx::query("INSERT INTO checklist_items (customer_id, item_id, done_by, done_at) VALUES ($1, $2, $3, $4)")
            .bind(customer_id)
            .bind(&item.item_id)
            .bind(&item.done_by)
            .bind(item.done_at)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(item.clone())
    }

    async fn checklist(&self, customer_id: &str) -> Result<Vec<ChecklistRecord>, StoreError> {
        let rows: Vec<ChecklistRow> = sqlx::query_as(
            "SELECT item_id, done_by, done_at FROM checklist_items WHERE customer_id = $1 ORDER BY done_at, item_id",
        )
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
