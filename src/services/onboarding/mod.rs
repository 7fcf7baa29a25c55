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

mod drive;
mod error;

pub use error::RunError;

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
        crate::services::error::assert_classified(cases);
    }
}
