//! The onboarding hot path's writes on PostgreSQL, each folded into one round trip with
//! data-modifying CTEs (which SQLite lacks). The rest of the run store is portable
//! (`store::sql::run_store`).

use sqlx::types::Json;
use sqlx::{PgConnection, QueryBuilder};

use super::push_steps_insert;
use super::{customer_conflict, insert_staged_rows, push_run_insert, push_step_upsert};
use crate::store::{RunRecord, RunUpdate, StoreError};

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

/// Saves a run's progress if `owner` still holds it: its status and lease, its steps' states,
/// and the customer's change when there is one (checking its version).
pub(super) async fn update_run_rows(
    conn: &mut PgConnection,
    customer_id: &str,
    run_id: &str,
    owner: &str,
    u: &RunUpdate<'_>,
) -> Result<(), StoreError> {
    let final_status = u.status.is_some_and(|s| s.is_final());
    let customer_json = u
        .customer
        .map(|(c, _)| crate::store::rows::CustomerJson::of(c));
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
    let (run_rows, customer_rows): (i64, i64) = q.build_query_as().fetch_one(&mut *conn).await?;
    if run_rows == 0 {
        return Err(StoreError::LeaseLost {
            customer_id: customer_id.to_owned(),
            run_id: run_id.to_owned(),
        });
    }
    if let (Some((_, expected)), 0) = (u.customer, customer_rows) {
        return Err(customer_conflict(conn, customer_id, expected).await);
    }
    Ok(())
}
