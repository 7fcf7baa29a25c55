//! The onboarding hot path's writes on SQLite: one statement each, in the writer's
//! transaction (a local call costs no round trip). The rest of the run store is portable
//! (`store::sql::run_store`).

use sqlx::types::Json;
use sqlx::{QueryBuilder, SqliteConnection};

use super::update_customer_row;
use super::{insert_staged_rows, push_run_insert, push_step_upsert, push_steps_insert};
use crate::store::{RunRecord, RunUpdate, StoreError};

/// Inserts a run, its staged credentials and its steps inside the caller's transaction.
pub(super) async fn insert_run_rows(
    conn: &mut SqliteConnection,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::new("");
    push_run_insert(&mut q, run);
    q.build().execute(&mut *conn).await?;
    insert_staged_rows(conn, run).await?;
    if !run.steps.is_empty() {
        // One statement for every step: a round trip saved per step on the hot path.
        let mut q = QueryBuilder::new("");
        push_steps_insert(&mut q, &run.customer_id, &run.run_id, &run.steps);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Saves a run's progress if `owner` still holds it: its status and lease, its steps' states,
/// and the customer's change when there is one (checking its version).
pub(super) async fn update_run_rows(
    conn: &mut SqliteConnection,
    customer_id: &str,
    run_id: &str,
    owner: &str,
    u: &RunUpdate<'_>,
) -> Result<(), StoreError> {
    let final_status = u.status.is_some_and(|s| s.is_final());
    let updated = sqlx::query(
        "UPDATE onboarding_runs SET lease_expires_ms = CASE WHEN $1 THEN 0 ELSE $2 END, \
         lease_owner = CASE WHEN $3 THEN NULL ELSE lease_owner END, status = COALESCE($4, status), \
         errors = COALESCE($5, errors), updated_at = $6, \
         finished_at = CASE WHEN $7 THEN $8 ELSE finished_at END \
         WHERE customer_id = $9 AND run_id = $10 AND lease_owner = $11",
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
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::LeaseLost {
            customer_id: customer_id.to_owned(),
            run_id: run_id.to_owned(),
        });
    }
    if !u.steps.is_empty() {
        let mut q = QueryBuilder::new("");
        push_step_upsert(&mut q, customer_id, run_id, u.steps);
        q.build().execute(&mut *conn).await?;
    }
    if let Some((c, version)) = u.customer {
        update_customer_row(conn, customer_id, c, version).await?;
    }
    Ok(())
}
