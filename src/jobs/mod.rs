//! The jobs runtime: Onramp's named background jobs and the one dispatcher that runs them.
//!
//! Each job is a [`Job`]: a name, what it does, how often, and `run`. The catalogue
//! ([`Jobs::new`]) lists them all; a new capability adds its job there. Every process that
//! runs jobs (each `onramp serve`, or `onramp jobs run`) claims a due job by taking its lease in
//! the registry, so one job runs in one process at a time however many processes share the
//! database. While a job runs its process renews the lease; when the process dies the lease
//! runs out and another process takes the job over (the dead attempt is recorded abandoned).
//! A failed attempt is retried with exponential backoff; every attempt is recorded with its
//! outcome (`onramp jobs status`).
//!
//! Outbox consumers ([`outbox`]) are jobs too: each keeps a durable cursor over the event log
//! and takes events in log order, at least once, so in order per customer.

pub mod outbox;

use async_trait::async_trait;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::job::{next_run_ms, AttemptOutcome};
use crate::services::{ErrorKind, ServiceError, Services};
use crate::store::jobs::{ClaimWhen, ClaimedJob, JobAttemptRecord, JobFinish, JobRecord};
use crate::store::StoreError;

/// What a job's attempt can fail with, and what the runtime refuses.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job has this name.
    #[error("there is no job '{0}' (onramp jobs list names them)")]
    Unknown(String),
    /// Another process holds the job now.
    #[error("job '{name}' is running in {owner}; try again when it ends")]
    Busy {
        /// The job.
        name: String,
        /// The process that holds it.
        owner: String,
    },
    /// A service the job called failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            JobError::Unknown(_) => ErrorKind::NotFound,
            JobError::Busy { .. } => ErrorKind::Conflict,
            JobError::Service(e) => e.kind(),
            JobError::Store(_) => ErrorKind::Internal,
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Unknown(_) => "job_not_found",
            JobError::Busy { .. } => "job_busy",
            JobError::Service(e) => e.code(),
            JobError::Store(_) => "internal_error",
        }
    }
}

/// One named background job.
#[async_trait]
pub trait Job: Send + Sync {
    /// Its name, stable: it keys the job's row and appears in `onramp jobs`.
    fn name(&self) -> &'static str;
    /// What it does, for people.
    fn description(&self) -> &'static str;
    /// How long after a successful attempt it is due again.
    fn every(&self) -> Duration;
    /// The event log consumer it drives, if it is one.
    fn consumer(&self) -> Option<&'static str> {
        None
    }
    /// Does the work once; the answer says what it did.
    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError>;
}

/// What a running job may use.
pub struct JobContext<'a> {
    /// The services.
    pub services: &'a Services,
    /// The claim it runs under.
    pub claim: &'a ClaimedJob,
}

impl JobContext<'_> {
    /// Waits here when a test's fault plan stalls this job (`job:NAME=stall:MS`), so a test can
    /// stop the process while the job is held mid-run.
    pub async fn fault_point(&self) {
        if let Some(stall) = self.services.runner.faults.job_stall(&self.claim.name) {
            tracing::warn!(job = %self.claim.name, ?stall, "injected fault: job stalls");
            tokio::time::sleep(stall).await;
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobReport {
    /// The job.
    pub name: String,
    /// The attempt.
    pub attempt_id: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What it did, or why it failed.
    pub detail: String,
}

/// A job of the catalogue with its stored state.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// The job's name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its period.
    pub every: Duration,
    /// Its row, once a process has registered it.
    pub record: Option<JobRecord>,
    /// The process that holds it now, while one does (its lease has not run out).
    pub held_by: Option<String>,
    /// The consumer it drives and that consumer's cursor (the last event id it took).
    pub cursor: Option<(&'static str, i64)>,
}

/// The catalogue of jobs and the dispatcher that claims and runs them.
#[derive(Clone)]
pub struct Jobs {
    services: Services,
    catalogue: Arc<Vec<Arc<dyn Job>>>,
    lease: Duration,
    poll: Duration,
}

impl Jobs {
    /// Every job Onramp runs, for `services`, each held under a lease of `lease`.
    pub fn new(services: Services, lease: Duration) -> Self {
        let catalogue: Vec<Arc<dyn Job>> = vec![
            Arc::new(RecoverRuns {
                // Half a run's lease: a run whose process died resumes soon after its lease.
                every: (services.runner.lease / 2)
                    .clamp(Duration::from_millis(200), Duration::from_secs(15)),
            }),
            Arc::new(outbox::OutboxJob::new(outbox::EventCounts)),
            Arc::new(ExpireSignups {
                every: Duration::from_secs(60),
            }),
            Arc::new(outbox::OutboxJob::new(outbox::EmailQueue)),
            Arc::new(DeliverEmail {
                every: Duration::from_secs(1),
            }),
            Arc::new(PurgeAccounts {
                every: Duration::from_secs(600),
            }),
            Arc::new(PurgeSignups {
                every: Duration::from_secs(3600),
            }),
            Arc::new(outbox::OutboxJob::new(outbox::TrialActivations)),
            Arc::new(BillingDue {
                every: Duration::from_secs(10),
            }),
        ];
        let shortest = catalogue
            .iter()
            .map(|j| j.every())
            .min()
            .unwrap_or(Duration::from_secs(1));
        Self {
            services,
            catalogue: Arc::new(catalogue),
            lease,
            poll: (shortest / 2).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        }
    }

    fn find(&self, name: &str) -> Result<&Arc<dyn Job>, JobError> {
        self.catalogue
            .iter()
            .find(|j| j.name() == name)
            .ok_or_else(|| JobError::Unknown(name.to_owned()))
    }

    fn owner(&self) -> &str {
        &self.services.runner.owner
    }

    fn now_ms(&self) -> i64 {
        self.services.clock.now().timestamp_millis()
    }

    /// Stores the catalogue's jobs that are not stored yet, due now.
    pub async fn register(&self) -> Result<(), JobError> {
        let names: Vec<&str> = self.catalogue.iter().map(|j| j.name()).collect();
        let consumers: Vec<&str> = self.catalogue.iter().filter_map(|j| j.consumer()).collect();
        self.services
            .store
            .register_jobs(&names, &consumers, self.services.clock.now())
            .await?;
        Ok(())
    }

    /// Claims the jobs that are due and runs them, each in a task of its own, all at once;
    /// returns how each went.
    pub async fn run_due(&self) -> Result<Vec<JobReport>, JobError> {
        let names: Vec<&str> = self.catalogue.iter().map(|j| j.name()).collect();
        let claimed_at = Instant::now();
        let claims = self
            .services
            .store
            .claim_jobs(
                &names,
                ClaimWhen::Due,
                self.owner(),
                self.services.clock.now(),
                self.lease_ms(),
                u32::try_from(names.len()).unwrap_or(u32::MAX),
            )
            .await?;
        let mut running = tokio::task::JoinSet::new();
        for claim in claims {
            let job = self.find(&claim.name)?.clone();
            let jobs = self.clone();
            running.spawn(async move { jobs.execute(job.as_ref(), claim, claimed_at).await });
        }
        let mut reports = Vec::new();
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(Some(report))) => reports.push(report),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "recording a job's attempt failed"),
                Err(e) => tracing::error!(error = %e, "a job's task panicked"),
            }
        }
        Ok(reports)
    }

    /// Runs `name` now, due or not, unless another process holds it.
    pub async fn run_now(&self, name: &str) -> Result<JobReport, JobError> {
        let job = self.find(name)?;
        self.register().await?;
        let claimed_at = Instant::now();
        let mut claims = self
            .services
            .store
            .claim_jobs(
                &[job.name()],
                ClaimWhen::Now,
                self.owner(),
                self.services.clock.now(),
                self.lease_ms(),
                1,
            )
            .await?;
        let Some(claim) = claims.pop() else {
            let owner = self
                .services
                .store
                .jobs()
                .await?
                .into_iter()
                .find(|r| r.name == name)
                .and_then(|r| r.lease_owner)
                .unwrap_or_else(|| "another process".to_owned());
            return Err(JobError::Busy {
                name: name.to_owned(),
                owner,
            });
        };
        self.execute(job.as_ref(), claim, claimed_at)
            .await?
            .ok_or_else(|| JobError::Store(StoreError::JobLeaseLost(name.to_owned())))
    }

    /// Claims and runs due jobs until the task is dropped: what `onramp serve` runs. A job
    /// running when the task is dropped keeps its lease until it runs out; the process that
    /// takes the job over then records that attempt abandoned.
    pub async fn run_forever(self) {
        let mut registered = false;
        let mut running = tokio::task::JoinSet::new();
        loop {
            if !registered {
                match self.register().await {
                    Ok(()) => registered = true,
                    Err(e) => tracing::error!(error = %e, "cannot register the jobs; retrying"),
                }
            }
            while let Some(done) = running.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a job dispatch panicked");
                }
            }
            let jobs = self.clone();
            running.spawn(async move {
                match jobs.run_due().await {
                    Ok(reports) => {
                        for r in reports.iter().filter(|r| r.outcome != AttemptOutcome::Succeeded)
                        {
                            tracing::warn!(job = %r.name, outcome = %r.outcome, detail = %r.detail, "job attempt did not succeed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "claiming jobs failed"),
                }
            });
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The catalogue with each job's stored state.
    pub async fn status(&self) -> Result<Vec<JobStatus>, JobError> {
        let records = self.services.store.jobs().await?;
        let cursors = self.services.store.outbox_cursors().await?;
        let now_ms = self.now_ms();
        Ok(self
            .catalogue
            .iter()
            .map(|j| {
                let record = records.iter().find(|r| r.name == j.name()).cloned();
                let held_by = record
                    .as_ref()
                    .filter(|r| r.lease_expires_ms > now_ms)
                    .and_then(|r| r.lease_owner.clone());
                JobStatus {
                    name: j.name(),
                    description: j.description(),
                    every: j.every(),
                    record,
                    held_by,
                    cursor: j.consumer().map(|c| {
                        let at = cursors
                            .iter()
                            .find(|(name, _)| name == c)
                            .map_or(0, |(_, id)| *id);
                        (c, at)
                    }),
                }
            })
            .collect())
    }

    /// A job's latest attempts, newest first.
    pub async fn attempts(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<JobAttemptRecord>, JobError> {
        let job = self.find(name)?;
        Ok(self.services.store.job_attempts(job.name(), limit).await?)
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs a claimed job, renewing its lease meanwhile, and records how it ended. `Ok(None)`
    /// when the lease was lost or could not be renewed in time (another process may take the
    /// job over): the attempt stops there, before the lease, counted from `claimed_at` (taken
    /// before the claim), can have run out.
    #[tracing::instrument(skip_all, fields(job = %claim.name, attempt = claim.attempt_id))]
    async fn execute(
        &self,
        job: &dyn Job,
        claim: ClaimedJob,
        claimed_at: Instant,
    ) -> Result<Option<JobReport>, JobError> {
        let ctx = JobContext {
            services: &self.services,
            claim: &claim,
        };
        // Stop a tenth of the lease before it can have run out: a slow or failing renewal must
        // not let the job run on while another process takes it over.
        let margin = self.lease / 10;
        let renew = async {
            let mut held_until = claimed_at + self.lease;
            loop {
                let wake = (Instant::now() + self.lease / 3).min(held_until - margin);
                tokio::time::sleep_until(wake.into()).await;
                if Instant::now() + margin >= held_until {
                    return;
                }
                let started = Instant::now();
                let until = self.now_ms().saturating_add(self.lease_ms());
                let renewal = self
                    .services
                    .store
                    .extend_job_lease(&claim, self.owner(), until);
                match tokio::time::timeout(
                    (held_until - margin).saturating_duration_since(started),
                    renewal,
                )
                .await
                {
                    Ok(Ok(true)) => held_until = started + self.lease,
                    Ok(Ok(false)) => return,
                    Ok(Err(e)) => tracing::warn!(error = %e, "renewing a job's lease failed"),
                    Err(_) => tracing::warn!("renewing a job's lease timed out"),
                }
            }
        };
        let result = tokio::select! {
            r = job.run(&ctx) => r,
            () = renew => {
                tracing::error!("the job's lease was lost or could not be renewed; stopping the attempt");
                return Ok(None);
            }
        };
        let failures = match &result {
            Ok(_) => 0,
            Err(_) => u32::try_from(claim.failures + 1).unwrap_or(u32::MAX),
        };
        let finish = JobFinish {
            at: self.services.clock.now(),
            outcome: if result.is_ok() {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            },
            detail: match &result {
                Ok(detail) => detail.clone(),
                Err(e) => e.to_string(),
            },
            next_run_ms: next_run_ms(
                self.now_ms(),
                job.every(),
                failures,
                rand::thread_rng().gen(),
            ),
        };
        self.services
            .store
            .finish_job(&claim, self.owner(), &finish)
            .await?;
        Ok(Some(JobReport {
            name: claim.name.clone(),
            attempt_id: claim.attempt_id,
            outcome: finish.outcome,
            detail: finish.detail,
        }))
    }
}

/// Records as expired the signup sessions left idle past the product's limit.
struct ExpireSignups {
    every: Duration,
}

/// The most sessions one run of the job expires; the rest wait for the next run.
const EXPIRE_BATCH: i64 = 500;

#[async_trait]
impl Job for ExpireSignups {
    fn name(&self) -> &'static str {
        "signups.expire"
    }

    fn description(&self) -> &'static str {
        "record as expired the signup sessions left idle past the product's session_idle_hours"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        ctx.fault_point().await;
        let n = ctx
            .services
            .signups
            .expire_idle(EXPIRE_BATCH)
            .await
            .map_err(ServiceError::from)?;
        Ok(format!("expired {n} signup session(s)"))
    }
}

/// Does the billing work that has fallen due for the customers on real time: trial reminders,
/// expiries and ends of grace (customers on a test clock get theirs when it is advanced).
struct BillingDue {
    every: Duration,
}

/// The most pieces of billing work one run does; the rest wait for the next run.
const BILLING_BATCH: u32 = 500;

#[async_trait]
impl Job for BillingDue {
    fn name(&self) -> &'static str {
        "billing.due"
    }

    fn description(&self) -> &'static str {
        "do the billing work that has fallen due: trial reminders, expiries and ends of grace"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        ctx.fault_point().await;
        let n = ctx
            .services
            .billing
            .run_due(BILLING_BATCH)
            .await
            .map_err(ServiceError::from)?;
        Ok(format!("did {n} piece(s) of billing work"))
    }
}

/// Deletes the signups that ended without a customer, past their retention.
struct PurgeSignups {
    every: Duration,
}

#[async_trait]
impl Job for PurgeSignups {
    fn name(&self) -> &'static str {
        "signups.purge"
    }

    fn description(&self) -> &'static str {
        "delete signups abandoned, expired or rejected more than 30 days ago, with their answers and delivery log rows"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        ctx.fault_point().await;
        let n = ctx
            .services
            .signups
            .purge_finished(PURGE_BATCH)
            .await
            .map_err(ServiceError::from)?;
        Ok(format!(
            "deleted {n} finished signup(s) past their retention"
        ))
    }
}

/// Deletes ended portal sessions and stale failed-login records.
struct PurgeAccounts {
    every: Duration,
}

/// The most rows of each kind one run deletes.
const PURGE_BATCH: i64 = 5000;

#[async_trait]
impl Job for PurgeAccounts {
    fn name(&self) -> &'static str {
        "accounts.purge"
    }

    fn description(&self) -> &'static str {
        "delete ended portal sessions, and failed-login records a day old that lock nothing"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        ctx.fault_point().await;
        let n = ctx
            .services
            .accounts
            .purge(PURGE_BATCH)
            .await
            .map_err(ServiceError::from)?;
        Ok(format!(
            "deleted {n} ended session(s) and stale login record(s)"
        ))
    }
}

/// Sends the email that is due.
struct DeliverEmail {
    every: Duration,
}

/// Messages one pass takes from the queue.
const DELIVER_BATCH: i64 = 200;
/// Passes one run makes at most before it lets the next run go on.
const DELIVER_PASSES: usize = 25;

#[async_trait]
impl Job for DeliverEmail {
    fn name(&self) -> &'static str {
        "email.deliver"
    }

    fn description(&self) -> &'static str {
        "send the queued email that is due over SMTP (ONRAMP_SMTP_URL), retrying transient failures with backoff"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        let email = &ctx.services.email;
        if !email.configured() {
            let health = email.health().await.map_err(ServiceError::from)?;
            return Ok(format!(
                "email is not configured (ONRAMP_SMTP_URL); {} message(s) wait",
                health.queued
            ));
        }
        ctx.fault_point().await;
        let mut total = crate::services::email::DeliveryReport::default();
        for _ in 0..DELIVER_PASSES {
            let r = email
                .deliver_due(DELIVER_BATCH)
                .await
                .map_err(ServiceError::from)?;
            let taken = r.sent + r.retrying + r.failed + r.skipped;
            total.sent += r.sent;
            total.retrying += r.retrying;
            total.failed += r.failed;
            total.skipped += r.skipped;
            if taken < DELIVER_BATCH as usize {
                break;
            }
        }
        Ok(format!(
            "sent {}, retrying {}, failed {}, skipped {}",
            total.sent, total.retrying, total.failed, total.skipped
        ))
    }
}

/// Resumes onboarding runs whose process died (their lease ran out).
struct RecoverRuns {
    every: Duration,
}

#[async_trait]
impl Job for RecoverRuns {
    fn name(&self) -> &'static str {
        "recover_runs"
    }

    fn description(&self) -> &'static str {
        "resume onboarding runs whose process stopped, once their lease has run out"
    }

    fn every(&self) -> Duration {
        self.every
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        ctx.fault_point().await;
        let n = ctx
            .services
            .onboarding
            .recover()
            .await
            .map_err(ServiceError::from)?;
        Ok(format!("resumed {n} run(s)"))
    }
}
