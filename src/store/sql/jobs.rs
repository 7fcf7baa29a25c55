//! The jobs runtime: job rows, their leases and attempts, and the event log's consumer cursors.
//! Claiming ends its `SELECT` with the backend's `FOR_UPDATE_SKIP_LOCKED`.

/// Implements [`JobStore`](crate::store::jobs::JobStore) for a backend store type (see
/// [`crate::store::sql`] for what the backend provides).
macro_rules! job_store {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use crate::domain::job::AttemptOutcome;
            use crate::store::jobs::{
                ClaimWhen, ClaimedJob, JobAttemptRecord, JobFinish, JobRecord, JobStore,
                ATTEMPTS_KEPT,
            };
            use crate::store::rows::{JobAttemptRow, JobRow};
            use crate::store::StoreError;

            #[async_trait::async_trait]
            impl JobStore for $store {
                async fn register_jobs(
                    &self,
                    jobs: &[&str],
                    consumers: &[&str],
                    now: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    for name in jobs {
                        sqlx::query(
                            "INSERT INTO jobs (name, next_run_ms) VALUES ($1, $2) \
                             ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(name)
                        .bind(now.timestamp_millis())
                        .execute(&mut *tx)
                        .await?;
                    }
                    for consumer in consumers {
                        sqlx::query(
                            "INSERT INTO outbox_cursors (consumer, last_event_id, updated_at) \
                             VALUES ($1, 0, $2) ON CONFLICT (consumer) DO NOTHING",
                        )
                        .bind(consumer)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn claim_jobs(
                    &self,
                    names: &[&str],
                    when: ClaimWhen,
                    owner: &str,
                    now: DateTime<Utc>,
                    lease_ms: i64,
                    limit: u32,
                ) -> Result<Vec<ClaimedJob>, StoreError> {
                    if names.is_empty() || limit == 0 {
                        return Ok(Vec::new());
                    }
                    let now_ms = now.timestamp_millis();
                    let candidates = |lock: &'static str| {
                        let mut q = sqlx::QueryBuilder::new(
                            "SELECT name, failures, attempt_id FROM jobs WHERE lease_expires_ms < ",
                        );
                        q.push_bind(now_ms).push(" AND name IN (");
                        let mut list = q.separated(", ");
                        for name in names {
                            list.push_bind(*name);
                        }
                        q.push(")");
                        if when == ClaimWhen::Due {
                            q.push(" AND next_run_ms <= ").push_bind(now_ms);
                        }
                        q.push(" ORDER BY next_run_ms LIMIT ")
                            .push_bind(i64::from(limit))
                            .push(lock);
                        q
                    };
                    // Most polls find nothing due: they look first without a write
                    // transaction (which SQLite would serialise with every other write).
                    let seen: Vec<(String, i64, Option<i64>)> = candidates("")
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await?;
                    if seen.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.write().await?;
                    let free: Vec<(String, i64, Option<i64>)> = candidates(FOR_UPDATE_SKIP_LOCKED)
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut claimed = Vec::with_capacity(free.len());
                    for (name, failures, stale) in free {
                        if let Some(stale) = stale {
                            sqlx::query(
                                "UPDATE job_attempts SET outcome = $1, finished_at = $2, \
                                 detail = $3 WHERE id = $4 AND outcome = $5",
                            )
                            .bind(AttemptOutcome::Abandoned.as_str())
                            .bind(now)
                            .bind("its process stopped holding the job before the attempt ended")
                            .bind(stale)
                            .bind(AttemptOutcome::Running.as_str())
                            .execute(&mut *tx)
                            .await?;
                        }
                        let attempt_id: i64 = sqlx::query_scalar(
                            "INSERT INTO job_attempts (job, owner, started_at, outcome) \
                             VALUES ($1, $2, $3, $4) RETURNING id",
                        )
                        .bind(&name)
                        .bind(owner)
                        .bind(now)
                        .bind(AttemptOutcome::Running.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                        sqlx::query(
                            "UPDATE jobs SET lease_owner = $1, lease_expires_ms = $2, \
                             attempt_id = $3 WHERE name = $4",
                        )
                        .bind(owner)
                        .bind(now_ms.saturating_add(lease_ms))
                        .bind(attempt_id)
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                        claimed.push(ClaimedJob {
                            name,
                            attempt_id,
                            failures,
                        });
                    }
                    tx.commit().await?;
                    Ok(claimed)
                }

                async fn extend_job_lease(
                    &self,
                    job: &ClaimedJob,
                    owner: &str,
                    until_ms: i64,
                ) -> Result<bool, StoreError> {
                    let updated = sqlx::query(
                        "UPDATE jobs SET lease_expires_ms = $1 \
                         WHERE name = $2 AND lease_owner = $3 AND attempt_id = $4",
                    )
                    .bind(until_ms)
                    .bind(&job.name)
                    .bind(owner)
                    .bind(job.attempt_id)
                    .execute(self.writes())
                    .await?;
                    Ok(updated.rows_affected() == 1)
                }

                async fn finish_job(
                    &self,
                    job: &ClaimedJob,
                    owner: &str,
                    finish: &JobFinish,
                ) -> Result<(), StoreError> {
                    let succeeded = finish.outcome == AttemptOutcome::Succeeded;
                    let mut tx = self.write().await?;
                    // The job's row first (claims lock it first too), and only if this attempt
                    // still holds it: a process that lost the job records nothing.
                    let released = sqlx::query(
                        "UPDATE jobs SET lease_owner = NULL, lease_expires_ms = 0, \
                         attempt_id = NULL, next_run_ms = $1, \
                         failures = CASE WHEN $2 THEN 0 ELSE failures + 1 END, \
                         runs = CASE WHEN $3 THEN runs + 1 ELSE runs END, \
                         last_finished_at = $4, last_outcome = $5, \
                         last_error = CASE WHEN $6 THEN NULL ELSE $7 END \
                         WHERE name = $8 AND lease_owner = $9 AND attempt_id = $10",
                    )
                    .bind(finish.next_run_ms)
                    .bind(succeeded)
                    .bind(succeeded)
                    .bind(finish.at)
                    .bind(finish.outcome.as_str())
                    .bind(succeeded)
                    .bind(&finish.detail)
                    .bind(&job.name)
                    .bind(owner)
                    .bind(job.attempt_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if released == 0 {
                        tx.rollback().await?;
                        return Err(StoreError::JobLeaseLost(job.name.clone()));
                    }
                    sqlx::query(
                        "UPDATE job_attempts SET outcome = $1, finished_at = $2, detail = $3 \
                         WHERE id = $4 AND outcome = $5",
                    )
                    .bind(finish.outcome.as_str())
                    .bind(finish.at)
                    .bind(&finish.detail)
                    .bind(job.attempt_id)
                    .bind(AttemptOutcome::Running.as_str())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM job_attempts WHERE job = $1 AND id < \
                         (SELECT min(id) FROM (SELECT id FROM job_attempts WHERE job = $2 \
                         ORDER BY id DESC LIMIT $3) AS kept)",
                    )
                    .bind(&job.name)
                    .bind(&job.name)
                    .bind(ATTEMPTS_KEPT)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
                    let rows: Vec<JobRow> = sqlx::query_as(
                        "SELECT name, next_run_ms, lease_owner, lease_expires_ms, attempt_id, \
                         failures, runs, last_finished_at, last_outcome, last_error \
                         FROM jobs ORDER BY name",
                    )
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(JobRecord::try_from).collect()
                }

                async fn job_attempts(
                    &self,
                    job: &str,
                    limit: u32,
                ) -> Result<Vec<JobAttemptRecord>, StoreError> {
                    let rows: Vec<JobAttemptRow> = sqlx::query_as(
                        "SELECT id, job, owner, started_at, finished_at, outcome, detail \
                         FROM job_attempts WHERE job = $1 ORDER BY id DESC LIMIT $2",
                    )
                    .bind(job)
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(JobAttemptRecord::try_from).collect()
                }

                async fn outbox_cursors(&self) -> Result<Vec<(String, i64)>, StoreError> {
                    Ok(sqlx::query_as(
                        "SELECT consumer, last_event_id FROM outbox_cursors ORDER BY consumer",
                    )
                    .fetch_all(self.reads())
                    .await?)
                }

                async fn add_event_counts(
                    &self,
                    consumer: &str,
                    from: i64,
                    to: i64,
                    counts: &[(String, String, i64)],
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    move_cursor(&mut tx, consumer, from, to, at).await?;
                    if !counts.is_empty() {
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO event_counts (day, event_type, events) ",
                        );
                        q.push_values(counts, |mut row, (day, event_type, n)| {
                            row.push_bind(day).push_bind(event_type).push_bind(*n);
                        });
                        q.push(
                            " ON CONFLICT (day, event_type) \
                             DO UPDATE SET events = event_counts.events + excluded.events",
                        );
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn move_outbox_cursor(
                    &self,
                    consumer: &str,
                    from: i64,
                    to: i64,
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    move_cursor(&mut tx, consumer, from, to, at).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn event_counts(
                    &self,
                    since_day: Option<&str>,
                ) -> Result<Vec<(String, String, i64)>, StoreError> {
                    Ok(sqlx::query_as(
                        "SELECT day, event_type, events FROM event_counts WHERE day >= $1 \
                         ORDER BY day, event_type",
                    )
                    .bind(since_day.unwrap_or(""))
                    .fetch_all(self.reads())
                    .await?)
                }
            }
        };
    };
}

pub(crate) use job_store;

/// The outbox cursor's move, for a consumer whose effect is a registry table: the backend
/// module gets `move_cursor(conn, consumer, from, to, at)`, which moves `consumer`'s cursor from
/// `from` to `to` inside the caller's transaction, or refuses with
/// [`crate::store::StoreError::CursorMoved`] when another attempt moved it first.
macro_rules! cursor_writes {
    ($conn:ty) => {
        async fn move_cursor(
            conn: &mut $conn,
            consumer: &str,
            from: i64,
            to: i64,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), crate::store::StoreError> {
            let moved = sqlx::query(
                "UPDATE outbox_cursors SET last_event_id = $1, updated_at = $2 \
                 WHERE consumer = $3 AND last_event_id = $4",
            )
            .bind(to)
            .bind(at)
            .bind(consumer)
            .bind(from)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if moved != 1 {
                return Err(crate::store::StoreError::CursorMoved(consumer.to_owned()));
            }
            Ok(())
        }
    };
}

pub(crate) use cursor_writes;
