//! Onboarding runs: the steps after registration, run by whoever holds the run's lease.
//!
//! A run's steps start as soon as the steps they depend on have succeeded (independent steps
//! run side by side). A transient failure is retried with exponential backoff and jitter up
//! to the product's `max_attempts`; a permanent one compensates every step that did anything,
//! newest first, and leaves the customer `failed`. Every step is idempotent and every state
//! change is persisted before the next begins, so a process that dies anywhere leaves a run
//! that the next holder of its lease resumes (or finishes rolling back).

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;
use utoipa::ToSchema;

use super::faults::Injected;
use super::views::{CustomerView, OnboardingResult, StepResult};
use super::{Actor, ServiceError, Services};
use crate::domain::run::{
    backoff, compensation_order, ready_steps, step_kind, RunStatus, StepStatus,
};
use crate::domain::{Customer, CustomerStatus, NewEvent, Role};
use crate::store::datasets::DatasetError;
use crate::store::{ChecklistRecord, RunRecord, RunTransition, StepRecord, StoreError};

/// Why one attempt of a step failed.
#[derive(Debug)]
struct StepError {
    transient: bool,
    message: String,
}

impl From<DatasetError> for StepError {
    fn from(e: DatasetError) -> Self {
        StepError {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<ServiceError> for StepError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Dataset(d) => d.into(),
            ServiceError::Store(s) => s.into(),
            other => StepError {
                transient: false,
                message: other.to_string(),
            },
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        let transient =
            matches!(&e, StoreError::Database(db) if crate::store::datasets::classify_ref(db));
        StepError {
            transient,
            message: e.to_string(),
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

impl Services {
    /// A new run for `customer_id` with `validate` and `register` already done.
    pub(super) fn new_run(
        &self,
        customer_id: &str,
        started: DateTime<Utc>,
        registered: DateTime<Utc>,
    ) -> RunRecord {
        let steps = self
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

    async fn latest_run_of(&self, customer_id: &str) -> Result<RunRecord, ServiceError> {
        self.store
            .latest_run(customer_id)
            .await?
            .ok_or_else(|| ServiceError::CustomerNotFound(customer_id.to_owned()))
    }

    /// Runs the run's remaining steps (or finishes its rollback) and returns its state after.
    /// Losing the lease to another process is not an error: that process carries on.
    pub(super) async fn drive(&self, run: RunRecord) -> Result<RunRecord, ServiceError> {
        let customer_id = run.customer_id.clone();
        let outcome = match run.status {
            RunStatus::Compensating => {
                let errors = run.errors.clone();
                self.compensate(run, errors).await
            }
            RunStatus::Running => self.advance(run).await,
            _ => return Ok(run),
        };
        match outcome {
            Ok(run) => Ok(run),
            Err(ServiceError::Store(StoreError::LeaseLost { .. })) => {
                self.latest_run_of(&customer_id).await
            }
            Err(e) => Err(e),
        }
    }

    async fn advance(&self, mut run: RunRecord) -> Result<RunRecord, ServiceError> {
        loop {
            let until = now_ms(self.clock.now()) + self.runner.lease.as_millis() as i64;
            if !self
                .store
                .renew_lease(&run.customer_id, &run.run_id, &self.runner.owner, until)
                .await?
            {
                return Err(StoreError::LeaseLost {
                    customer_id: run.customer_id.clone(),
                    run_id: run.run_id.clone(),
                }
                .into());
            }
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
                return self.finish_success(run).await;
            }
            let results = join_all(ready.iter().map(|name| self.execute_step(&run, name))).await;
            let mut failure = None;
            for result in results {
                let (step, error) = match result {
                    Ok(step) => (step, None),
                    Err((step, error)) => (step, Some(error)),
                };
                if let Some(slot) = run.steps.iter_mut().find(|s| s.name == step.name) {
                    *slot = step;
                }
                if let Some(e) = error {
                    failure.get_or_insert_with(Vec::new).push(e);
                }
            }
            if let Some(errors) = failure {
                let mut all = run.errors.clone();
                all.extend(errors);
                return self.compensate(run, all).await;
            }
        }
        if run.steps.iter().all(|s| s.status == StepStatus::Succeeded) {
            return self.finish_success(run).await;
        }
        Ok(run)
    }

    /// Runs one step to success or permanent failure, retrying transient failures.
    async fn execute_step(
        &self,
        run: &RunRecord,
        name: &str,
    ) -> Result<StepRecord, (StepRecord, String)> {
        let mut step = run
            .steps
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .expect("ready steps are the run's");
        let retry = self.product.retry;
        loop {
            step.attempts += 1;
            step.status = StepStatus::Running;
            step.started_at = Some(self.clock.now());
            step.finished_at = None;
            if let Err(e) = self
                .store
                .save_step(&run.customer_id, &run.run_id, &self.runner.owner, &step)
                .await
            {
                return Err((step, format!("{name}: {e}")));
            }
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
                Injected::Permanent => Err(StepError {
                    transient: false,
                    message: "injected permanent fault".into(),
                }),
                Injected::None => self.perform(run, name).await,
            };
            let now = self.clock.now();
            match outcome {
                Ok(()) => {
                    step.status = StepStatus::Succeeded;
                    step.finished_at = Some(now);
                    step.error = None;
                    step.completed_seq = Some(now.timestamp_micros());
                    return match self
                        .store
                        .save_step(&run.customer_id, &run.run_id, &self.runner.owner, &step)
                        .await
                    {
                        Ok(()) => Ok(step),
                        Err(e) => Err((step, format!("{name}: {e}"))),
                    };
                }
                Err(e) if e.transient && (step.attempts as u32) < retry.max_attempts => {
                    step.error = Some(e.message.clone());
                    tracing::warn!(customer_id = %run.customer_id, step = name, attempt = step.attempts, error = %e.message, "step failed; retrying");
                    let wait = backoff(
                        step.attempts as u32,
                        Duration::from_millis(retry.base_ms),
                        Duration::from_millis(retry.max_ms),
                        0.5,
                        rand::thread_rng().gen::<f64>(),
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    step.status = StepStatus::Failed;
                    step.finished_at = Some(now);
                    let message = format!(
                        "{name} failed after {} attempt(s): {}",
                        step.attempts, e.message
                    );
                    step.error = Some(message.clone());
                    let _ = self
                        .store
                        .save_step(&run.customer_id, &run.run_id, &self.runner.owner, &step)
                        .await;
                    tracing::warn!(customer_id = %run.customer_id, step = name, error = %message, "step failed for good");
                    return Err((step, message));
                }
            }
        }
    }

    /// Does one step's work. Every step is idempotent: running it again after a crash is safe.
    async fn perform(&self, run: &RunRecord, name: &str) -> Result<(), StepError> {
        match name {
            "provision_dataset" => {
                let customer = self.customer_record(&run.customer_id).await?;
                Ok(self.provision_dataset_for(&customer).await?)
            }
            "verify_dataset" => self.verify_dataset(&run.customer_id).await,
            // validate and register happen at registration; activate ends the run.
            _ => Ok(()),
        }
    }

    async fn customer_record(&self, customer_id: &str) -> Result<Customer, StepError> {
        self.store
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| StepError {
                transient: false,
                message: format!("customer '{customer_id}' is not in the registry"),
            })
    }

    /// Runs the seed's `SELECT 1 AS test` through the query path and checks every table and
    /// column the tier should have.
    async fn verify_dataset(&self, customer_id: &str) -> Result<(), StepError> {
        let customer = self.customer_record(customer_id).await?;
        let backend = self
            .datasets
            .get(&customer.data_store)
            .ok_or_else(|| StepError {
                transient: false,
                message: format!("data store '{}' is not in the product", customer.data_store),
            })?;
        let dataset_id = self.product.dataset_id(customer_id);
        let permanent = |message: String| StepError {
            transient: false,
            message,
        };
        let result = backend
            .query(&dataset_id, "SELECT 1 AS test", self.product.query)
            .await?;
        if result.rows != vec![vec![json!(1)]] {
            return Err(permanent(format!(
                "SELECT 1 AS test returned {:?}",
                result.rows
            )));
        }
        let tables = backend
            .describe(&dataset_id)
            .await?
            .ok_or_else(|| permanent(format!("dataset '{dataset_id}' does not exist")))?;
        for (table, columns) in self.product.tables_for_tier(customer.usage_tier.as_deref()) {
            let found = tables
                .get(&table)
                .ok_or_else(|| permanent(format!("table '{table}' is missing")))?;
            for c in columns {
                if !found.contains(&c.name) {
                    return Err(permanent(format!(
                        "table '{table}' lacks column '{}'",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The `activate` step: the customer goes live and the run succeeds, in one transaction.
    async fn finish_success(&self, mut run: RunRecord) -> Result<RunRecord, ServiceError> {
        let now = self.clock.now();
        for step in run.steps.iter_mut().filter(|s| s.name == "activate") {
            step.status = StepStatus::Succeeded;
            step.attempts += 1;
            step.started_at = Some(now);
            step.finished_at = Some(now);
            step.completed_seq = Some(now.timestamp_micros());
        }
        let customer = self.current(&run.customer_id).await?;
        let mut next = customer.clone();
        if customer.status == CustomerStatus::Pending {
            next.status = customer.status.transition(CustomerStatus::Active)?;
            next.version += 1;
            next.updated_at = now;
        }
        let changed = next.status != customer.status;
        let activate: Vec<StepRecord> = run
            .steps
            .iter()
            .filter(|s| s.name == "activate")
            .cloned()
            .collect();
        let event = NewEvent {
            event_type: "customer.activated".into(),
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            payload: json!({"run_id": run.run_id, "version": next.version}),
            occurred_at: now,
            request_id: None,
        };
        self.store
            .transition_run(
                &run.customer_id,
                &run.run_id,
                &self.runner.owner,
                RunTransition {
                    status: RunStatus::Succeeded,
                    errors: &run.errors,
                    at: now,
                    customer: changed.then_some((&next, customer.version)),
                    steps: &activate,
                    event: Some(event),
                },
            )
            .await?;
        run.status = RunStatus::Succeeded;
        run.finished_at = Some(now);
        Ok(run)
    }

    /// Undoes every step that did anything, newest first, then marks the run and the customer
    /// failed. Left `compensating` (for a later resume) if an undo keeps failing.
    async fn compensate(
        &self,
        mut run: RunRecord,
        errors: Vec<String>,
    ) -> Result<RunRecord, ServiceError> {
        if run.status != RunStatus::Compensating {
            self.store
                .transition_run(
                    &run.customer_id,
                    &run.run_id,
                    &self.runner.owner,
                    RunTransition {
                        status: RunStatus::Compensating,
                        errors: &errors,
                        at: self.clock.now(),
                        customer: None,
                        steps: &[],
                        event: None,
                    },
                )
                .await?;
            run.status = RunStatus::Compensating;
        }
        run.errors = errors;
        let progress: Vec<_> = run
            .steps
            .iter()
            .map(|s| (s.status, s.attempts, s.completed_seq))
            .collect();
        let order = compensation_order(&progress);
        for i in order {
            let name = run.steps[i].name.clone();
            if step_kind(&name).is_some_and(|k| k.name == "provision_dataset") {
                self.undo_dataset(&run.customer_id, "onboarding rolled back")
                    .await?;
            }
            let step = &mut run.steps[i];
            if step.status == StepStatus::Succeeded {
                step.status = StepStatus::Compensated;
            }
            self.store
                .save_step(&run.customer_id, &run.run_id, &self.runner.owner, step)
                .await?;
        }
        let now = self.clock.now();
        for step in run
            .steps
            .iter_mut()
            .filter(|s| s.status == StepStatus::Pending)
        {
            step.status = StepStatus::Skipped;
        }
        let skipped: Vec<StepRecord> = run
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Skipped)
            .cloned()
            .collect();
        let customer = self.current(&run.customer_id).await?;
        let mut next = customer.clone();
        if let Ok(failed) = customer.status.transition(CustomerStatus::Failed) {
            next.status = failed;
            next.version += 1;
            next.updated_at = now;
        }
        let changed = next.status != customer.status;
        let event = NewEvent {
            event_type: "customer.onboarding_failed".into(),
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            payload: json!({"run_id": run.run_id, "errors": run.errors, "version": next.version}),
            occurred_at: now,
            request_id: None,
        };
        self.store
            .transition_run(
                &run.customer_id,
                &run.run_id,
                &self.runner.owner,
                RunTransition {
                    status: RunStatus::Failed,
                    errors: &run.errors,
                    at: now,
                    customer: changed.then_some((&next, customer.version)),
                    steps: &skipped,
                    event: Some(event),
                },
            )
            .await?;
        run.status = RunStatus::Failed;
        run.finished_at = Some(now);
        Ok(run)
    }

    /// Drops the customer's dataset (retrying transient failures) and forgets its record.
    pub(super) async fn undo_dataset(
        &self,
        customer_id: &str,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let customer = self.current(customer_id).await?;
        let dataset_id = self.product.dataset_id(customer_id);
        if let Some(backend) = self.datasets.get(&customer.data_store) {
            let retry = self.product.retry;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match backend.drop_dataset(&dataset_id).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && attempt < retry.max_attempts => {
                        tokio::time::sleep(Duration::from_millis(retry.base_ms << attempt.min(10)))
                            .await;
                    }
                    Err(e) => return Err(ServiceError::Dataset(e)),
                }
            }
        }
        if self.store.get_dataset(customer_id).await?.is_some() {
            let event = NewEvent {
                event_type: "dataset.dropped".into(),
                actor: "onramp".into(),
                customer_id: Some(customer.id.clone()),
                payload: json!({"dataset_id": dataset_id, "reason": reason}),
                occurred_at: self.clock.now(),
                request_id: None,
            };
            self.store.delete_dataset(customer_id, event).await?;
        }
        Ok(())
    }

    /// Takes over runs whose lease has run out (their process died or hung) and drives each to
    /// its end. Returns how many it took.
    pub async fn recover_runs(&self) -> Result<usize, ServiceError> {
        let now = now_ms(self.clock.now());
        let claimed = self
            .store
            .claim_runs(
                now,
                &self.runner.owner,
                self.runner.lease.as_millis() as i64,
                32,
            )
            .await?;
        for (customer_id, run_id) in &claimed {
            let run = self.latest_run_of(customer_id).await?;
            if &run.run_id != run_id {
                continue;
            }
            tracing::info!(customer_id = %customer_id, run_id = %run_id, status = %run.status, "resuming onboarding run");
            if let Err(e) = self.drive(run).await {
                tracing::error!(customer_id = %customer_id, error = %e, "resumed run failed");
            }
        }
        Ok(claimed.len())
    }

    /// A customer's latest run and checklist.
    pub async fn onboarding_status(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<OnboardingStatus, ServiceError> {
        self.current(customer_id).await?;
        let run = self.latest_run_of(customer_id).await?;
        let marked = self.store.checklist(customer_id).await?;
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
    pub async fn mark_checklist(
        &self,
        actor: &Actor,
        customer_id: &str,
        item_id: &str,
    ) -> Result<OnboardingStatus, ServiceError> {
        actor.require(Role::Operator)?;
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
            event_type: "checklist.completed".into(),
            actor: actor.name.clone(),
            customer_id: Some(customer.id.clone()),
            payload: json!({"item": item_id}),
            occurred_at: record.done_at,
            request_id: actor.request_id.clone(),
        };
        self.store
            .mark_checklist(customer_id, &record, event)
            .await?;
        self.onboarding_status(actor, customer_id).await
    }

    /// Resumes a stuck run, or starts a new run for a customer whose onboarding failed.
    pub async fn retry_onboarding(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<OnboardingResult, ServiceError> {
        actor.require(Role::Operator)?;
        let customer = self.current(customer_id).await?;
        let run = self.latest_run_of(customer_id).await?;
        match run.status {
            RunStatus::Succeeded => Err(ServiceError::RunNotRetryable(format!(
                "the onboarding of '{customer_id}' succeeded; there is nothing to retry"
            ))),
            RunStatus::Running | RunStatus::Compensating => {
                if run.lease_expires_ms > now_ms(self.clock.now()) {
                    return Err(ServiceError::RunInProgress(customer_id.to_owned()));
                }
                self.recover_runs().await?;
                Ok(self.run_view(&self.latest_run_of(customer_id).await?))
            }
            RunStatus::Failed => {
                let now = self.clock.now();
                let mut next = customer.clone();
                next.status = customer.status.transition(CustomerStatus::Pending)?;
                next.version += 1;
                next.updated_at = now;
                let new_run = self.new_run(customer_id, now, now);
                let event = NewEvent {
                    event_type: "onboarding.retried".into(),
                    actor: actor.name.clone(),
                    customer_id: Some(customer.id.clone()),
                    payload: json!({"run_id": new_run.run_id, "previous_run_id": run.run_id, "version": next.version}),
                    occurred_at: now,
                    request_id: actor.request_id.clone(),
                };
                self.store
                    .insert_run(&new_run, Some((&next, customer.version)), event)
                    .await?;
                let done = self.drive(new_run).await?;
                Ok(self.run_view(&done))
            }
        }
    }

    /// The customer as shown with its latest run.
    pub(super) async fn customer_with_run(
        &self,
        customer_id: &str,
    ) -> Result<(CustomerView, OnboardingResult), ServiceError> {
        let customer = self.current(customer_id).await?;
        let run = self.latest_run_of(customer_id).await?;
        Ok((
            CustomerView::of(&customer, &self.product),
            self.run_view(&run),
        ))
    }
}
