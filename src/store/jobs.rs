//! Persistence of the jobs runtime: each named job's row (its schedule, its lease, its last
//! outcome), the attempts it made, and the durable cursors of the event log's consumers, with
//! the event-count projection the analytics consumer keeps.
//!
//! A job is claimed by taking its lease in a write transaction that skips rows another
//! claimer holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's one writer serialises
//! claims), so one job runs in one process at a time. The claimer keeps the lease while it
//! works; when its process dies the lease runs out and another process takes the job over,
//! marking the dead attempt abandoned.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::job::AttemptOutcome;

/// A job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Its name in the job catalogue.
    pub name: String,
    /// When it is due next (Unix milliseconds).
    pub next_run_ms: i64,
    /// The process that holds it, while one does.
    pub lease_owner: Option<String>,
    /// Until when (Unix milliseconds).
    pub lease_expires_ms: i64,
    /// The attempt under way, while one is.
    pub attempt_id: Option<i64>,
    /// Failed attempts since its last success.
    pub failures: i64,
    /// Attempts that succeeded, ever.
    pub runs: i64,
    /// When its last attempt ended.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// How its last attempt ended.
    pub last_outcome: Option<AttemptOutcome>,
    /// Its last error, while it is failing.
    pub last_error: Option<String>,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobAttemptRecord {
    /// Its id.
    pub id: i64,
    /// The job.
    pub job: String,
    /// The process that made it.
    pub owner: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What it did, or why it failed.
    pub detail: Option<String>,
}

/// A job this process now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job.
    pub name: String,
    /// The attempt this claim started.
    pub attempt_id: i64,
    /// Failed attempts before this one, since the last success.
    pub failures: i64,
}

/// How an attempt ended, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFinish {
    /// When.
    pub at: DateTime<Utc>,
    /// Succeeded or failed.
    pub outcome: AttemptOutcome,
    /// What it did, or the error.
    pub detail: String,
    /// When the job is due next (Unix milliseconds).
    pub next_run_ms: i64,
}

/// Which jobs a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimWhen {
    /// Only jobs that are due.
    Due,
    /// Due or not (running a job by hand).
    Now,
}

/// Attempts kept per job; older ones are deleted as new ones end.
pub const ATTEMPTS_KEPT: i64 = 200;

/// The jobs runtime's tables.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Adds the named jobs that are not stored yet, due at `now`, and a cursor at the log's
    /// start for each consumer that has none.
    async fn register_jobs(
        &self,
        jobs: &[&str],
        consumers: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` of `names` that no live lease holds (and, with
    /// [`ClaimWhen::Due`], that are due), for `owner` until `now_ms + lease_ms`; an attempt
    /// whose lease ran out is recorded abandoned. Returns what it took.
    async fn claim_jobs(
        &self,
        names: &[&str],
        when: ClaimWhen,
        owner: &str,
        now: DateTime<Utc>,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, StoreError>;

    /// Extends a held job's lease to `until_ms`; false when `owner` no longer holds it.
    async fn extend_job_lease(
        &self,
        job: &ClaimedJob,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Ends a held attempt and releases the job; [`StoreError::JobLeaseLost`] (and nothing
    /// recorded: the process that took the job over has recorded the attempt abandoned) when
    /// `owner` no longer holds it.
    async fn finish_job(
        &self,
        job: &ClaimedJob,
        owner: &str,
        finish: &JobFinish,
    ) -> Result<(), StoreError>;

    /// Every stored job, by name.
    async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// A job's latest attempts, newest first.
    async fn job_attempts(
        &self,
        job: &str,
        limit: u32,
    ) -> Result<Vec<JobAttemptRecord>, StoreError>;

    /// Every consumer's cursor: the id of the last event it has taken.
    async fn outbox_cursors(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Adds `counts` (UTC day, event type, events) to the event-count projection and moves the
    /// `consumer`'s cursor from `from` to `to`, in one transaction:
    /// [`StoreError::CursorMoved`] (and nothing changed) when the cursor is no longer at
    /// `from`.
    async fn add_event_counts(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        counts: &[(String, String, i64)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Moves `consumer`'s cursor from `from` to `to`, for a consumer whose effects are
    /// idempotent and already made: [`StoreError::CursorMoved`] when it is no longer at `from`.
    async fn move_outbox_cursor(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The event-count projection from `since_day` (`YYYY-MM-DD`) on, by day and type.
    async fn event_counts(
        &self,
        since_day: Option<&str>,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;
}
