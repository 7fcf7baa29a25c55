//! Persistence of onboarding runs, dataset records and the checklist: the shared record types
//! and the [`RunStore`] trait each backend implements.
//!
//! A run is worked on by whoever holds its lease (`lease_owner` until `lease_expires_ms`).
//! Every write to a running run names its owner and fails with [`StoreError::LeaseLost`] when
//! another process has taken the run over, so two processes never drive one run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::run::{RunStatus, StepStatus};
use crate::domain::{Customer, NewEvent};

/// One step of a run, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Its place in the product's list.
    pub position: i64,
    /// Where it is.
    pub status: StepStatus,
    /// How many times it started.
    pub attempts: i64,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error: Option<String>,
    /// The order in which succeeded steps finished, for compensation.
    pub completed_seq: Option<i64>,
}

/// A run with its steps, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The customer.
    pub customer_id: String,
    /// The run.
    pub run_id: String,
    /// Where it is.
    pub status: RunStatus,
    /// What went wrong, in order.
    pub errors: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who works on it.
    pub lease_owner: Option<String>,
    /// Until when (Unix milliseconds).
    pub lease_expires_ms: i64,
    /// The steps, in product order.
    pub steps: Vec<StepRecord>,
}

/// A customer's dataset, as the registry records it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// The customer.
    pub customer_id: String,
    /// The dataset's id (file or schema name).
    pub dataset_id: String,
    /// The product data store it lives on.
    pub data_store: String,
    /// The tier it was provisioned for.
    pub tier: Option<String>,
    /// Starts at 1; each change to its tables adds one.
    pub schema_version: i64,
    /// Its tables.
    pub tables: Vec<String>,
    /// When it was provisioned.
    pub created_at: DateTime<Utc>,
    /// When its tables last changed.
    pub updated_at: DateTime<Utc>,
}

/// A manual checklist item marked done.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistRecord {
    /// The item.
    pub item_id: String,
    /// Who marked it.
    pub done_by: String,
    /// When.
    pub done_at: DateTime<Utc>,
}

/// How a run ends or changes phase, saved in one transaction with an optional customer change
/// and its event.
#[derive(Debug)]
pub struct RunTransition<'a> {
    /// The new run status.
    pub status: RunStatus,
    /// The run's errors after the change.
    pub errors: &'a [String],
    /// When.
    pub at: DateTime<Utc>,
    /// A customer record to save with it, and the version it must still be at.
    pub customer: Option<(&'a Customer, i64)>,
    /// Steps to save with it.
    pub steps: &'a [StepRecord],
    /// The event to append, when the change is one.
    pub event: Option<NewEvent>,
}

/// Runs, datasets and the checklist.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Starts a new run for an existing customer (a retry), saving the customer change (such
    /// as `failed` to `pending`) and its event with it.
    async fn insert_run(
        &self,
        run: &RunRecord,
        customer: Option<(&Customer, i64)>,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// The customer's most recent run, with its steps.
    async fn latest_run(&self, customer_id: &str) -> Result<Option<RunRecord>, StoreError>;

    /// Saves one step of a run the caller holds.
    async fn save_step(
        &self,
        customer_id: &str,
        run_id: &str,
        owner: &str,
        step: &StepRecord,
    ) -> Result<(), StoreError>;

    /// Changes a run's status (and ends its lease when the status is final), with an optional
    /// customer change and event, in one transaction.
    async fn transition_run(
        &self,
        customer_id: &str,
        run_id: &str,
        owner: &str,
        t: RunTransition<'_>,
    ) -> Result<(), StoreError>;

    /// Takes over up to `limit` unfinished runs whose lease ended before `now_ms`; returns
    /// (customer id, run id) of each run claimed.
    async fn claim_runs(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Extends a lease the caller holds; false when it no longer holds it.
    async fn renew_lease(
        &self,
        customer_id: &str,
        run_id: &str,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Records (or updates) a customer's dataset, with its event when given.
    async fn save_dataset(
        &self,
        record: &DatasetRecord,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError>;

    /// The customer's dataset record.
    async fn get_dataset(&self, customer_id: &str) -> Result<Option<DatasetRecord>, StoreError>;

    /// Forgets a customer's dataset record, with its event.
    async fn delete_dataset(&self, customer_id: &str, event: NewEvent) -> Result<(), StoreError>;

    /// Marks a checklist item done with its event; marking it again changes nothing and
    /// returns the first marking.
    async fn mark_checklist(
        &self,
        customer_id: &str,
        item: &ChecklistRecord,
        event: NewEvent,
    ) -> Result<ChecklistRecord, StoreError>;

    /// The customer's checklist items marked done.
    async fn checklist(&self, customer_id: &str) -> Result<Vec<ChecklistRecord>, StoreError>;
}
