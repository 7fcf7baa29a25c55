//! Runs, dataset records and the checklist on SQLite.

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::SqliteConnection;

use super::{append, append_all, SqliteStore};
use crate::domain::{Customer, NewEvent};
use crate::store::rows::{run_record, ChecklistRow, DatasetRow, RunRow, StepRow};
use crate::store::{
    ChecklistRecord, DatasetRecord, RunRecord, RunStore, RunUpdate, StepRecord, StoreError,
};

/// Inserts a run and its steps inside the caller's transaction.
pub(super) async fn insert_run_rows(
    conn: &mut SqliteConnection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO onboarding_runs (customer_id, run_id, status, errors, started_at, finished_at, updated_at, \
         lease_owner, lease_expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.customer_id)
    .bind(&run.run_id)
    .bind(run.status.as_str())
    .bind(Json(&run.errors))
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.updated_at)
    .bind(&run.lease_owner)
    .bind(run.lease_expires_ms)
    .execute(&mut *conn)
    .await?;
    for c in &run.staged_credentials {
        sqlx::query(
            "INSERT INTO staged_credentials (customer_id, run_id, credential_type, fingerprint, scopes, \
             master_version, wrapped_key, key_nonce, ciphertext, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    // One statement for every step: a round trip saved per step on the hot path.
    write_steps(conn, &run.customer_id, &run.run_id, &run.steps, false).await
}

/// Inserts `steps` in one statement, or with `update` saves their new states (the rows exist;
/// the upsert only updates).
async fn write_steps(
    conn: &mut SqliteConnection,
    customer_id: &str,
    run_id: &str,
    steps: &[StepRecord],
    update: bool,
) -> Result<(), StoreError> {
    if steps.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::QueryBuilder::new(
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
    if update {
        q.push(
            " ON CONFLICT (customer_id, run_id, name) DO UPDATE SET status = excluded.status, \
             attempts = excluded.attempts, started_at = excluded.started_at, \
             finished_at = excluded.finished_at, error = excluded.error, \
             completed_seq = excluded.completed_seq",
        );
    }
    q.build().execute(&mut *conn).await?;
    Ok(())
}

/// Saves a customer change inside the caller's transaction, checking its version.
pub(super) async fn update_customer_row(
    conn: &mut SqliteConnection,
    customer_id: &str,
    c: &Customer,
    expected_version: i64,
) -> Result<(), StoreError> {
    let json = crate::store::rows::CustomerJson::of(c);
    let updated = sqlx::query(
        "UPDATE customers SET customer_name = ?, name_folded = ?, industry = ?, data_store = ?, status = ?, \
         tags = ?, attributes = ?, contact_email = ?, contact_name = ?, created_by = ?, usage_tier = ?, \
         version = ?, updated_at = ? WHERE customer_id = ? AND version = ?",
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
    let found: Option<i64> =
        sqlx::query_scalar("SELECT version FROM customers WHERE customer_id = ?")
            .bind(customer_id)
            .fetch_optional(&mut *conn)
            .await?;
    Err(match found {
        None => StoreError::CustomerNotFound(customer_id.to_owned()),
        Some(found) => StoreError::VersionConflict {
            customer_id: customer_id.to_owned(),
            expected: expected_version,
            found,
        },
    })
}

async fn upsert_dataset_row(
    conn: &mut SqliteConnection,
    r: &DatasetRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO datasets (customer_id, dataset_id, data_store, tier, schema_version, tables, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier, \
             schema_version = excluded.schema_version, tables = excluded.tables, updated_at = excluded.updated_at",
    )
    .bind(&r.customer_id)
    .bind(&r.dataset_id)
    .bind(&r.data_store)
    .bind(&r.tier)
    .bind(r.schema_version)
    .bind(Json(&r.tables))
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn insert_run(
        &self,
        run: &RunRecord,
        customer: Option<(&Customer, i64)>,
        event: NewEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
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
            "SELECT * FROM onboarding_runs WHERE customer_id = ? ORDER BY started_at DESC, run_id DESC LIMIT 1",
        )
        .bind(customer_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(run) = run else { return Ok(None) };
        let steps: Vec<StepRow> = sqlx::query_as(
            "SELECT name, position, status, attempts, started_at, finished_at, error, completed_seq \
             FROM onboarding_steps WHERE customer_id = ? AND run_id = ? ORDER BY position",
        )
        .bind(customer_id)
        .bind(&run.run_id)
        .fetch_all(&self.reader)
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
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE onboarding_runs SET lease_expires_ms = CASE WHEN ? THEN 0 ELSE ? END, \
             lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, status = COALESCE(?, status), \
             errors = COALESCE(?, errors), updated_at = ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END \
             WHERE customer_id = ? AND run_id = ? AND lease_owner = ?",
        )
        .bind(final_status)
        .bind(u.lease_until_ms)
        .bind(final_status)
        .bind(u.status.map(|s| s.as_str()))
        .bind(u.errors.map(Json))
        .bind(u.at)
        .bind(final_status)
        .bind(u.at)
        .bind(customer_id)
        .bind(run_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::LeaseLost {
                customer_id: customer_id.to_owned(),
                run_id: run_id.to_owned(),
            });
        }
        write_steps(&mut tx, customer_id, run_id, u.steps, true).await?;
        if let Some((c, version)) = u.customer {
            update_customer_row(&mut tx, customer_id, c, version).await?;
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
        let mut tx = self.begin().await?;
        let candidates: Vec<(String, String)> = sqlx::query_as(
            "SELECT customer_id, run_id FROM onboarding_runs WHERE status IN ('running', 'compensating') \
             AND lease_expires_ms < ? ORDER BY lease_expires_ms LIMIT ?",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        for (customer_id, run_id) in &candidates {
            sqlx::query("UPDATE onboarding_runs SET lease_owner = ?, lease_expires_ms = ? WHERE customer_id = ? AND run_id = ?")
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
        let mut tx = self.begin().await?;
        upsert_dataset_row(&mut tx, r).await?;
        if let Some(event) = event {
            append(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_dataset(&self, customer_id: &str) -> Result<Option<DatasetRecord>, StoreError> {
        let row: Option<DatasetRow> =
            sqlx::query_as("SELECT * FROM datasets WHERE customer_id = ?")
                .bind(customer_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(Into::into))
    }

    async fn delete_dataset(&self, customer_id: &str, event: NewEvent) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM datasets WHERE customer_id = ?")
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
        let mut tx = self.begin().await?;
        let existing: Option<ChecklistRow> = sqlx::query_as(
            "SELECT item_id, done_by, done_at FROM checklist_items WHERE customer_id = ? AND item_id = ?",
        )
        .bind(customer_id)
        .bind(&item.item_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(row.into());
        }
        sqlx::query("INSERT INTO checklist_items (customer_id, item_id, done_by, done_at) VALUES (?, ?, ?, ?)")
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
            "SELECT item_id, done_by, done_at FROM checklist_items WHERE customer_id = ? ORDER BY done_at, item_id",
        )
        .bind(customer_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
