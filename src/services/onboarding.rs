//! Onboarding runs: the steps after registration, run by whoever holds the run's lease.
//!
//! A run's steps start as soon as the steps they depend on have succeeded (independent steps
//! run side by side). A transient failure is retried with exponential backoff and jitter up
//! to the product's `max_attempts`; a permanent one compensates every step that did anything,
//! newest first, and leaves the customer `failed`. Every step is idempotent and every state
//! change is persisted before the next begins, so a process that dies anywhere leaves a run
//! that the next holder of its lease resumes (or finishes rolling back).
//!
//! The capability is [`Onboarding`]: it owns the run and customer stores, the product, the
//! clock, this process's lease options and the step registry, and holds the capabilities its
//! steps work through (the vault, datasets, integration keys); it refuses with a [`RunError`].

use crate::domain::events::{
    ChecklistCompleted, EventBody, OnboardingFailed, OnboardingRetried, RunFinished,
};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use rand::Rng;
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

use std::sync::Arc;

use super::credentials::{Vault, VaultError};
use super::datasets::{DataError, Datasets};
use super::faults::Injected;
use super::keys::{IntegrationKeys, KeyError};
use super::steps::{StepContext, StepError, StepRegistry};
use super::views::{CustomerView, OnboardingResult, StepResult};
use super::{invalid_fields_message, Actor, Clock, ErrorKind, Forbidden, RunnerOptions};
use crate::domain::run::{
    backoff, compensation_order, ready_steps, step_kind, InvalidRunTransition, RunStatus,
    StepStatus,
};
use crate::domain::{
    Customer, CustomerId, CustomerStatus, FieldError, InvalidTransition, NewEvent, Role,
};
use crate::product::Product;
use crate::store::{
    ChecklistRecord, CustomerStore, DatasetRecord, RunRecord, RunStore, RunUpdate, StepRecord,
    StoreError,
};

/// Progress on a run not yet saved: step records, and the dataset record with its event.
#[derive(Debug, Default, Clone)]
struct Progress {
    steps: Vec<StepRecord>,
    dataset: Option<DatasetRecord>,
    events: Vec<NewEvent>,
}

impl Progress {
    /// Notes a step's latest state, replacing an earlier note of the same step.
    fn record(&mut self, step: &StepRecord) {
        match self.steps.iter_mut().find(|s| s.name == step.name) {
            Some(slot) => *slot = step.clone(),
            None => self.steps.push(step.clone()),
        }
    }
}

/// One checklist entry: an automatic step or a manual item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChecklistEntry {
    /// Step name or item id.
    pub id: String,
    /// What it is.
    pub title: String,
    /// `automatic` (an onboarding step) or `manual`.
    pub kind: String,
    /// Whether it is done.
    pub done: bool,
    /// Who did it: `onramp` for steps, the actor for manual items.
    pub done_by: Option<String>,
    /// When.
    pub done_at: Option<DateTime<Utc>>,
}

/// A customer's onboarding: its latest run and its checklist.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OnboardingStatus {
    /// The latest run.
    pub run: OnboardingResult,
    /// Automatic steps, then the product's manual items.
    pub checklist: Vec<ChecklistEntry>,
}

fn now_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Why an onboarding-run operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such customer (or it has no run).
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// The customer's status machine refused the run's change.
    #[error("{0}")]
    InvalidTransition(#[from] InvalidTransition),
    /// The customer changed under the run (a concurrent update won twice).
    #[error("Customer '{customer_id}' changed: it is at version {found}, not {expected}. Read it again and retry")]
    VersionMismatch {
        /// The customer.
        customer_id: String,
        /// The version the run read.
        expected: i64,
        /// The current version.
        found: i64,
    },
    /// The run already succeeded.
    #[error("{0}")]
    NotRetryable(String),
    /// Another process is working on the run.
    #[error("the onboarding of '{0}' is in progress; retry when it has finished or its lease has run out")]
    InProgress(String),
    /// A run or step status changed in a way its machine forbids: a defect.
    #[error("{0}")]
    Internal(String),
    /// Undoing a step in the vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Undoing a step on a dataset failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Revoking the customer's keys on rollback failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store failed (or this process lost the run's lease).
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CustomerNotFound(id) => RunError::CustomerNotFound(id),
            StoreError::VersionConflict {
                customer_id,
                expected,
                found,
            } => RunError::VersionMismatch {
                customer_id,
                expected,
                found,
            },
            other => RunError::Store(other),
        }
    }
}

impl From<InvalidRunTransition> for RunError {
    fn from(e: InvalidRunTransition) -> Self {
        RunError::Internal(e.to_string())
    }
}

impl From<FieldError> for RunError {
    fn from(e: FieldError) -> Self {
        RunError::Invalid(vec![e])
    }
}

impl RunError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Invalid(_) => ErrorKind::Invalid,
            RunError::Forbidden(_) => ErrorKind::Forbidden,
            RunError::CustomerNotFound(_) => ErrorKind::NotFound,
            RunError::InvalidTransition(_)
            | RunError::NotRetryable(_)
            | RunError::InProgress(_) => ErrorKind::Conflict,
            RunError::VersionMismatch { .. } => ErrorKind::Stale,
            RunError::Internal(_) => ErrorKind::Internal,
            RunError::Vault(e) => e.kind(),
            RunError::Data(e) => e.kind(),
            RunError::Keys(e) => e.kind(),
            RunError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Invalid(_) => "validation_failed",
            RunError::Forbidden(_) => "forbidden",
            RunError::CustomerNotFound(_) => "customer_not_found",
            RunError::InvalidTransition(_) => "invalid_transition",
            RunError::VersionMismatch { .. } => "version_mismatch",
            RunError::NotRetryable(_) => "run_not_retryable",
            RunError::InProgress(_) => "run_in_progress",
            RunError::Internal(_) => "internal_error",
            RunError::Vault(e) => e.code(),
            RunError::Data(e) => e.code(),
            RunError::Keys(e) => e.code(),
            RunError::Store(e) => super::store_code(e),
        }
    }
}

/// The customer a run belongs to: a run's customer id is the registry's own (the run was read
/// from the registry, or made for a customer just validated).
pub(super) fn run_customer(run: &RunRecord) -> CustomerId {
    CustomerId::from_trusted(run.customer_id.clone())
}

/// The onboarding-run capability.
#[derive(Clone)]
pub struct Onboarding {
    runs: Arc<dyn RunStore>,
    customers: Arc<dyn CustomerStore>,
    pub(super) product: Arc<Product>,
    clock: Arc<dyn Clock>,
    pub(super) runner: Arc<RunnerOptions>,
    steps: Arc<StepRegistry>,
    pub(super) vault: Vault,
    pub(super) datasets: Datasets,
    keys: IntegrationKeys,
}

impl Onboarding {
    /// The capability over its stores, the product, the clock, this process's run options, the
    /// step registry and the capabilities its steps work through.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runs: Arc<dyn RunStore>,
        customers: Arc<dyn CustomerStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        runner: Arc<RunnerOptions>,
        steps: Arc<StepRegistry>,
        vault: Vault,
        datasets: Datasets,
        keys: IntegrationKeys,
    ) -> Self {
        Self {
            runs,
            customers,
            product,
            clock,
            runner,
            steps,
            vault,
            datasets,
            keys,
        }
    }

    async fn current(&self, customer_id: &str) -> Result<Customer, RunError> {
        self.customers
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| RunError::CustomerNotFound(customer_id.to_owned()))
    }

    /// A new run for `customer_id` with `validate` and `register` already done.
    pub(super) fn new_run(
        &self,
        customer_id: &str,
        started: DateTime<Utc>,
        registered: DateTime<Utc>,
    ) -> RunRecord {
        let steps: Vec<StepRecord> = self
            .product
            .steps
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let done = matches!(name.as_str(), "validate" | "register");
                StepRecord {
                    name: name.clone(),
                    position: i as i64,
                    status: if done {
                        StepStatus::Succeeded
                    } else {
                        StepStatus::Pending
                    },
                    attempts: i64::from(done),
                    started_at: done.then_some(started),
                    finished_at: done.then_some(registered),
                    error: None,
                    completed_seq: done.then_some(i as i64),
                }
            })
            .collect();
        let mut steps: Vec<StepRecord> = steps;
        // The steps that can start at once are marked running in the registering transaction,
        // which saves a write before the first of them runs.
        let states: Vec<(String, StepStatus)> =
            steps.iter().map(|s| (s.name.clone(), s.status)).collect();
        let ready: Vec<String> = ready_steps(&states)
            .into_iter()
            .filter(|n| *n != "activate")
            .map(str::to_owned)
            .collect();
        for step in steps.iter_mut().filter(|s| ready.contains(&s.name)) {
            step.status = step
                .status
                .transition(StepStatus::Running)
                .expect("a new run's steps are pending");
            step.attempts = 1;
            step.started_at = Some(registered);
        }
        RunRecord {
            customer_id: customer_id.to_owned(),
            run_id: uuid::Uuid::now_v7().to_string(),
            status: RunStatus::Running,
            errors: vec![],
            started_at: started,
            finished_at: None,
            updated_at: registered,
            lease_owner: Some(self.runner.owner.clone()),
            lease_expires_ms: now_ms(registered) + self.runner.lease.as_millis() as i64,
            steps,
            staged_credentials: vec![],
        }
    }

    /// The run as every interface shows it.
    pub(super) fn run_view(&self, run: &RunRecord) -> OnboardingResult {
        let end = run.finished_at.unwrap_or_else(|| self.clock.now());
        OnboardingResult {
            run_id: run.run_id.clone(),
            status: run.status,
            is_success: run.status == RunStatus::Succeeded,
            customer_id: run.customer_id.clone(),
            dataset_id: self
                .product
                .provisions_datasets()
                .then(|| self.product.dataset_id(&run.customer_id)),
            duration_seconds: (end - run.started_at).num_microseconds().unwrap_or(0) as f64 / 1e6,
            errors: run.errors.clone(),
            steps: run
                .steps
                .iter()
                .map(|s| StepResult {
                    name: s.name.clone(),
                    status: s.status,
                    attempts: s.attempts as u32,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    error: s.error.clone(),
                })
                .collect(),
        }
    }

    async fn latest_run_of(&self, customer: &CustomerId) -> Result<RunRecord, RunError> {
        self.runs
            .latest_run(customer)
            .await?
            .ok_or_else(|| RunError::CustomerNotFound(customer.to_string()))
    }

    /// Runs the run's remaining steps (or finishes its rollback) and returns its state after.
    /// `resumed` says the run was taken over from a process that stopped: its running steps
    /// run again as new attempts. Losing the lease to another process is not an error: that
    /// process carries on.
    pub(super) async fn drive(&self, run: RunRecord, resumed: bool) -> Result<RunRecord, RunError> {
        Ok(self.drive_with(run, resumed, None).await?.0)
    }

    /// [`Onboarding::drive`] for a run just registered with `customer`, which the run need not
    /// read again; returns the customer as the run left it when the run saved it.
    pub(super) async fn drive_registered(
        &self,
        run: RunRecord,
        customer: Customer,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        self.drive_with(run, false, Some(customer)).await
    }

    async fn drive_with(
        &self,
        run: RunRecord,
        resumed: bool,
        known: Option<Customer>,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        let customer_id = run.customer_id.clone();
        let outcome = match run.status {
            RunStatus::Compensating => {
                let errors = run.errors.clone();
                self.compensate(run, errors, Progress::default())
                    .await
                    .map(|run| (run, None))
            }
            RunStatus::Running => self.advance(run, resumed, known).await,
            _ => return Ok((run, None)),
        };
        match outcome {
            Ok(done) => Ok(done),
            Err(RunError::Store(StoreError::LeaseLost { .. })) => Ok((
                self.latest_run_of(&CustomerId::from_trusted(customer_id))
                    .await?,
                None,
            )),
            Err(e) => Err(e),
        }
    }

    /// Saves the progress gathered so far, with any run status and customer change, renewing
    /// the lease.
    async fn save_progress(
        &self,
        run: &RunRecord,
        progress: &mut Progress,
        status: Option<RunStatus>,
        customer: Option<(&Customer, i64)>,
    ) -> Result<DateTime<Utc>, RunError> {
        let now = self.clock.now();
        let update = RunUpdate {
            steps: &progress.steps,
            lease_until_ms: now_ms(now) + self.runner.lease.as_millis() as i64,
            status,
            errors: status.map(|_| run.errors.as_slice()),
            at: now,
            customer,
            dataset: progress.dataset.as_ref(),
            events: std::mem::take(&mut progress.events),
        };
        self.runs
            .update_run(&run_customer(run), &run.run_id, &self.runner.owner, update)
            .await?;
        progress.steps.clear();
        progress.dataset = None;
        Ok(now)
    }

    async fn advance(
        &self,
        mut run: RunRecord,
        resumed: bool,
        known: Option<Customer>,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        // A customer registered by this very call has no dataset record yet: provisioning
        // need not look for one.
        let fresh = known.is_some() && !resumed;
        let customer = match known {
            Some(c) => c,
            None => self.current(&run.customer_id).await?,
        };
        let mut progress = Progress::default();
        if resumed {
            let now = self.clock.now();
            for step in run
                .steps
                .iter_mut()
                .filter(|s| s.status == StepStatus::Running)
            {
                step.attempts += 1;
                step.started_at = Some(now);
                progress.record(step);
            }
        }
        loop {
            let states: Vec<(String, StepStatus)> = run
                .steps
                .iter()
                .map(|s| (s.name.clone(), s.status))
                .collect();
            let ready: Vec<String> = ready_steps(&states)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if ready.is_empty() {
                break;
            }
            if ready.iter().any(|s| s == "activate") {
                let (run, customer) = self.finish_success(run, progress, customer).await?;
                return Ok((run, Some(customer)));
            }
            let now = self.clock.now();
            let mut writes = false;
            for step in run
                .steps
                .iter_mut()
                .filter(|s| ready.contains(&s.name) && s.status == StepStatus::Pending)
            {
                step.status = step.status.transition(StepStatus::Running)?;
                step.attempts += 1;
                step.started_at = Some(now);
                step.finished_at = None;
                progress.record(step);
                writes |= !step_kind(&step.name).is_some_and(|k| k.read_only);
            }
            // A step that may change something is marked running before it starts, so a crash
            // leaves a record of what to undo or run again; read-only steps are recorded with
            // the next write.
            if writes {
                self.save_progress(&run, &mut progress, None, None).await?;
            }
            let results = join_all(
                ready
                    .iter()
                    .map(|name| self.execute_step(&run, &customer, name, fresh)),
            )
            .await;
            let mut failures = Vec::new();
            for result in results {
                let step = match result {
                    Ok((step, dataset)) => {
                        if let Some((record, event)) = dataset {
                            progress.dataset = Some(record);
                            progress.events.push(event);
                        }
                        step
                    }
                    Err((step, error)) => {
                        failures.push(error);
                        step
                    }
                };
                progress.record(&step);
                if let Some(slot) = run.steps.iter_mut().find(|s| s.name == step.name) {
                    *slot = step;
                }
            }
            if !failures.is_empty() {
                let mut errors = run.errors.clone();
                errors.extend(failures);
                return Ok((self.compensate(run, errors, progress).await?, None));
            }
        }
        if run.steps.iter().all(|s| s.status == StepStatus::Succeeded) {
            let (run, customer) = self.finish_success(run, progress, customer).await?;
            return Ok((run, Some(customer)));
        }
        if !progress.steps.is_empty() {
            self.save_progress(&run, &mut progress, None, None).await?;
        }
        Ok((run, None))
    }

    /// Runs one step (already marked running) to success or permanent failure, retrying
    /// transient failures; each retry is saved, so attempts count across restarts.
    async fn execute_step(
        &self,
        run: &RunRecord,
        customer: &Customer,
        name: &str,
        fresh: bool,
    ) -> Result<(StepRecord, Option<(DatasetRecord, NewEvent)>), (StepRecord, String)> {
        let mut step = run
            .steps
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .expect("ready steps are the run's");
        let retry = self.product.retry;
        loop {
            let outcome = match self
                .runner
                .faults
                .apply(name, &run.customer_id, step.attempts)
                .await
            {
                Injected::Transient => Err(StepError {
                    transient: true,
                    message: "injected transient fault".into(),
                }),
                Injected::Permanent => Err(StepError::permanent("injected permanent fault")),
                Injected::None => match self.steps.get(name) {
                    Some(step) => {
                        let cx = StepContext {
                            onboarding: self,
                            run,
                            customer,
                            fresh,
                        };
                        step.perform(&cx).await
                    }
                    // The services refuse to start with a product step that has no
                    // implementation, so a run never names one.
                    None => Err(StepError::permanent(format!(
                        "no step '{name}' is registered"
                    ))),
                },
            };
            let now = self.clock.now();
            match outcome {
                Ok(dataset) => {
                    step.status = match step.status.transition(StepStatus::Succeeded) {
                        Ok(next) => next,
                        Err(e) => return Err((step, e.to_string())),
                    };
                    step.finished_at = Some(now);
                    step.error = None;
                    step.completed_seq = Some(now.timestamp_micros());
                    return Ok((step, dataset));
                }
                Err(e) if e.transient && (step.attempts as u32) < retry.max_attempts => {
                    tracing::warn!(customer_id = %run.customer_id, step = name, attempt = step.attempts, error = %e.message, "step failed; retrying");
                    let wait = backoff(
                        step.attempts as u32,
                        Duration::from_millis(retry.base_ms),
                        Duration::from_millis(retry.max_ms),
                        0.5,
                        rand::thread_rng().gen::<f64>(),
                    );
                    tokio::time::sleep(wait).await;
                    step.attempts += 1;
                    step.started_at = Some(self.clock.now());
                    step.error = Some(e.message);
                    let mut progress = Progress::default();
                    progress.record(&step);
                    if let Err(e) = self.save_progress(run, &mut progress, None, None).await {
                        return Err((step, format!("{name}: {e}")));
                    }
                }
                Err(e) => {
                    step.status = match step.status.transition(StepStatus::Failed) {
                        Ok(next) => next,
                        Err(e) => return Err((step, e.to_string())),
                    };
                    step.finished_at = Some(now);
                    let message = format!(
                        "{name} failed after {} attempt(s): {}",
                        step.attempts, e.message
                    );
                    step.error = Some(message.clone());
                    tracing::warn!(customer_id = %run.customer_id, step = name, error = %message, "step failed for good");
                    return Err((step, message));
                }
            }
        }
    }

    /// The `activate` step: the customer goes live and the run succeeds, in one transaction
    /// with the progress not yet saved. `customer` is the record as the run read it at its
    /// start; if it changed since (an update during the run), it is read again and the
    /// transaction repeated once. Returns the customer as saved.
    async fn finish_success(
        &self,
        mut run: RunRecord,
        mut progress: Progress,
        customer: Customer,
    ) -> Result<(RunRecord, Customer), RunError> {
        let now = self.clock.now();
        for step in run.steps.iter_mut().filter(|s| s.name == "activate") {
            step.status = step.status.transition(StepStatus::Succeeded)?;
            step.attempts += 1;
            step.started_at = Some(now);
            step.finished_at = Some(now);
            step.completed_seq = Some(now.timestamp_micros());
            progress.record(step);
        }
        run.status = run.status.transition(RunStatus::Succeeded)?;
        let mut customer = customer;
        let mut reread = false;
        loop {
            if reread {
                customer = self.current(&run.customer_id).await?;
            }
            let mut next = customer.clone();
            if customer.status == CustomerStatus::Pending {
                next.status = customer.status.transition(CustomerStatus::Active)?;
                next.version += 1;
                next.updated_at = now;
            }
            let mut attempt_progress = progress.clone();
            attempt_progress.events.push(NewEvent {
                body: EventBody::CustomerActivated(RunFinished {
                    run_id: run.run_id.clone(),
                    version: next.version,
                }),
                actor: "onramp".into(),
                customer_id: Some(customer.id.clone()),
                occurred_at: now,
                request_id: None,
            });
            let change = (next.status != customer.status).then_some((&next, customer.version));
            match self
                .save_progress(
                    &run,
                    &mut attempt_progress,
                    Some(RunStatus::Succeeded),
                    change,
                )
                .await
            {
                Ok(saved) => {
                    run.finished_at = Some(saved);
                    return Ok((run, next));
                }
                Err(RunError::VersionMismatch { .. }) if !reread => reread = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Undoes every step that did anything, newest first, then marks the run and the customer
    /// failed. Left `compensating` (for a later resume) if an undo keeps failing.
    async fn compensate(
        &self,
        mut run: RunRecord,
        errors: Vec<String>,
        mut progress: Progress,
    ) -> Result<RunRecord, RunError> {
        run.errors = errors;
        if run.status != RunStatus::Compensating {
            run.status = run.status.transition(RunStatus::Compensating)?;
            // Whatever the failed round produced is undone below; only its step records stay.
            progress.dataset = None;
            progress.events.clear();
            self.save_progress(&run, &mut progress, Some(RunStatus::Compensating), None)
                .await?;
        }
        let states: Vec<_> = run
            .steps
            .iter()
            .map(|s| (s.status, s.attempts, s.completed_seq))
            .collect();
        for i in compensation_order(&states) {
            if let Some(step) = self.steps.get(&run.steps[i].name) {
                step.compensate(self, &run_customer(&run), "onboarding rolled back")
                    .await?;
            }
            let step = &mut run.steps[i];
            if step.status == StepStatus::Succeeded {
                step.status = step.status.transition(StepStatus::Compensated)?;
                progress.record(step);
            }
        }
        // Credentials staged for a step that never ran must not outlive the run, and no key
        // issued meanwhile outlives it either.
        self.vault.forget_staged(&run_customer(&run)).await?;
        self.keys
            .revoke_all(
                &super::Actor::system(),
                &run_customer(&run),
                "onboarding rolled back",
            )
            .await?;
        let now = self.clock.now();
        for step in run
            .steps
            .iter_mut()
            .filter(|s| s.status == StepStatus::Pending)
        {
            step.status = step.status.transition(StepStatus::Skipped)?;
            progress.record(step);
        }
        let customer = self.current(&run.customer_id).await?;
        let mut next = customer.clone();
        if let Ok(failed) = customer.status.transition(CustomerStatus::Failed) {
            next.status = failed;
            next.version += 1;
            next.updated_at = now;
        }
        progress.events.push(NewEvent {
            body: EventBody::CustomerOnboardingFailed(OnboardingFailed {
                run_id: run.run_id.clone(),
                errors: run.errors.clone(),
                version: next.version,
            }),
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            occurred_at: now,
            request_id: None,
        });
        run.status = run.status.transition(RunStatus::Failed)?;
        let change = (next.status != customer.status).then_some((&next, customer.version));
        let saved = self
            .save_progress(&run, &mut progress, Some(RunStatus::Failed), change)
            .await?;
        run.finished_at = Some(saved);
        Ok(run)
    }

    /// Takes over runs whose lease has run out (their process died or hung) and drives each to
    /// its end. Returns how many it took.
    #[tracing::instrument(skip_all)]
    pub async fn recover(&self) -> Result<usize, RunError> {
        let now = now_ms(self.clock.now());
        let claimed = self
            .runs
            .claim_runs(
                now,
                &self.runner.owner,
                self.runner.lease.as_millis() as i64,
                32,
            )
            .await?;
        for (customer_id, run_id) in &claimed {
            // The claimed runs' customer ids are the registry's own.
            let customer = CustomerId::from_trusted(customer_id.clone());
            let run = self.latest_run_of(&customer).await?;
            if &run.run_id != run_id {
                continue;
            }
            tracing::info!(customer_id = %customer_id, run_id = %run_id, status = %run.status, "resuming onboarding run");
            if let Err(e) = self.drive(run, true).await {
                tracing::error!(customer_id = %customer_id, error = %e, "resumed run failed");
            }
        }
        Ok(claimed.len())
    }

    /// A customer's latest run and checklist.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn status(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<OnboardingStatus, RunError> {
        let customer = self.current(customer_id).await?;
        let run = self.latest_run_of(&customer.id).await?;
        let marked = self.runs.checklist(&customer.id).await?;
        let mut checklist: Vec<ChecklistEntry> = run
            .steps
            .iter()
            .map(|s| ChecklistEntry {
                id: s.name.clone(),
                title: step_kind(&s.name).map_or("", |k| k.description).to_owned(),
                kind: "automatic".into(),
                done: s.status == StepStatus::Succeeded,
                done_by: (s.status == StepStatus::Succeeded).then(|| "onramp".to_owned()),
                done_at: (s.status == StepStatus::Succeeded)
                    .then_some(s.finished_at)
                    .flatten(),
            })
            .collect();
        for item in &self.product.checklist {
            let mark = marked.iter().find(|m| m.item_id == item.id);
            checklist.push(ChecklistEntry {
                id: item.id.clone(),
                title: item.title.clone(),
                kind: "manual".into(),
                done: mark.is_some(),
                done_by: mark.map(|m| m.done_by.clone()),
                done_at: mark.map(|m| m.done_at),
            });
        }
        Ok(OnboardingStatus {
            run: self.run_view(&run),
            checklist,
        })
    }

    /// Marks a manual checklist item done (again is a no-op that keeps the first marking).
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn mark_checklist(
        &self,
        actor: &Actor,
        customer_id: &str,
        item_id: &str,
    ) -> Result<OnboardingStatus, RunError> {
        actor.may(Role::Operator)?;
        let customer = self.current(customer_id).await?;
        if !self.product.checklist.iter().any(|i| i.id == item_id) {
            let known: Vec<_> = self
                .product
                .checklist
                .iter()
                .map(|i| i.id.as_str())
                .collect();
            return Err(crate::domain::Invalid::new(
                "unknown_checklist_item",
                format!(
                    "unknown checklist item '{item_id}': this product's items are {}",
                    known.join(", ")
                ),
            )
            .at("item")
            .into());
        }
        let record = ChecklistRecord {
            item_id: item_id.to_owned(),
            done_by: actor.name.clone(),
            done_at: self.clock.now(),
        };
        let event = NewEvent {
            body: EventBody::ChecklistCompleted(ChecklistCompleted {
                item: item_id.to_owned(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(customer.id.clone()),
            occurred_at: record.done_at,
            request_id: actor.request_id.clone(),
        };
        self.runs
            .mark_checklist(&customer.id, &record, event)
            .await?;
        self.status(actor, customer_id).await
    }

    /// Resumes a stuck run, or starts a new run for a customer whose onboarding failed.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn retry(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<OnboardingResult, RunError> {
        actor.may(Role::Operator)?;
        let customer = self.current(customer_id).await?;
        let run = self.latest_run_of(&customer.id).await?;
        match run.status {
            RunStatus::Succeeded => Err(RunError::NotRetryable(format!(
                "the onboarding of '{customer_id}' succeeded; there is nothing to retry"
            ))),
            RunStatus::Running | RunStatus::Compensating => {
                if run.lease_expires_ms > now_ms(self.clock.now()) {
                    return Err(RunError::InProgress(customer_id.to_owned()));
                }
                self.recover().await?;
                Ok(self.run_view(&self.latest_run_of(&customer.id).await?))
            }
            RunStatus::Failed => {
                let now = self.clock.now();
                let mut next = customer.clone();
                next.status = customer.status.transition(CustomerStatus::Pending)?;
                next.version += 1;
                next.updated_at = now;
                let new_run = self.new_run(customer_id, now, now);
                let event = NewEvent {
                    body: EventBody::OnboardingRetried(OnboardingRetried {
                        run_id: new_run.run_id.clone(),
                        previous_run_id: run.run_id.clone(),
                        version: next.version,
                    }),
                    actor: actor.name.clone(),
                    customer_id: Some(customer.id.clone()),
                    occurred_at: now,
                    request_id: actor.request_id.clone(),
                };
                self.runs
                    .insert_run(&new_run, Some((&next, customer.version)), event)
                    .await?;
                let done = self.drive(new_run, false).await?;
                Ok(self.run_view(&done))
            }
        }
    }

    /// The customer as shown with its latest run.
    pub(super) async fn customer_with_run(
        &self,
        customer_id: &str,
    ) -> Result<(CustomerView, OnboardingResult), RunError> {
        let customer = self.current(customer_id).await?;
        let run = self.latest_run_of(&customer.id).await?;
        Ok((
            CustomerView::of(&customer, &self.product),
            self.run_view(&run),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceError;

    #[test]
    fn run_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        let cases = [
            (
                RunError::from(
                    crate::domain::Invalid::new("unknown_checklist_item", "unknown item")
                        .at("item"),
                ),
                K::Invalid,
                "validation_failed",
            ),
            (
                RunError::from(StoreError::CustomerNotFound("acme".into())),
                K::NotFound,
                "customer_not_found",
            ),
            (
                RunError::from(StoreError::VersionConflict {
                    customer_id: "acme".into(),
                    expected: 2,
                    found: 3,
                }),
                K::Stale,
                "version_mismatch",
            ),
            (
                RunError::NotRetryable("nothing to retry".into()),
                K::Conflict,
                "run_not_retryable",
            ),
            (
                RunError::InProgress("acme".into()),
                K::Conflict,
                "run_in_progress",
            ),
            (
                RunError::from(KeyError::Changed("k1".into())),
                K::Conflict,
                "key_changed",
            ),
            (
                RunError::from(StoreError::Database(sqlx::Error::PoolTimedOut)),
                K::Unavailable,
                "unavailable",
            ),
        ];
        for (e, kind, code) in cases {
            let message = e.to_string();
            let s = ServiceError::from(e);
            assert_eq!((s.kind(), s.code(), s.to_string()), (kind, code, message));
        }
    }
}
