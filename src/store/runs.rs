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
use crate::domain::{Customer, CustomerId, NewEvent};

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
    /// Credentials the onboarding request carried, saved sealed with the run when it is
    /// inserted; never read back here (see `CredentialStore::staged_credentials`).
    pub staged_credentials: Vec<super::credentials::StagedCredential>,
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

/// Everything one step of progress on a run changes, saved in one transaction by the holder
/// of its lease: step records, the lease's renewal, and, when the progress brings them, a new
/// run status, a customer change, the dataset record, and events.
#[derive(Debug)]
pub struct RunUpdate<'a> {
    /// Steps to save.
    pub steps: &'a [StepRecord],
    /// The lease's new end (Unix milliseconds); ignored when the new status is final.
    pub lease_until_ms: i64,
    /// A new run status; a final one ends the lease.
    pub status: Option<RunStatus>,
    /// The run's errors, when they change.
    pub errors: Option<&'a [String]>,
    /// When.
    pub at: DateTime<Utc>,
    /// A customer record to save, and the version it must still be at.
    pub customer: Option<(&'a Customer, i64)>,
    /// The customer's dataset record to save.
    pub dataset: Option<&'a DatasetRecord>,
    /// Events to append, in order.
    pub events: Vec<NewEvent>,
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
    async fn latest_run(&self, customer_id: &CustomerId) -> Result<Option<RunRecord>, StoreError>;

    /// Saves a run's progress in one transaction; fails with [`StoreError::LeaseLost`] when
    /// the caller no longer holds the run.
    async fn update_run(
        &self,
        customer_id: &CustomerId,
        run_id: &str,
        owner: &str,
        update: RunUpdate<'_>,
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

    /// Records (or updates) a customer's dataset, with its event when given.
    async fn save_dataset(
        &self,
        record: &DatasetRecord,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError>;

    /// The customer's dataset record.
    async fn get_dataset(
        &self,
        customer_id: &CustomerId,
    ) -> Result<Option<DatasetRecord>, StoreError>;

    /// Forgets a customer's dataset record, with its event.
    async fn delete_dataset(
        &self,
        customer_id: &CustomerId,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// Marks a checklist item done with its event; marking it again changes nothing and
    /// returns the first marking.
    async fn mark_checklist(
        &self,
        customer_id: &CustomerId,
        item: &ChecklistRecord,
        event: NewEvent,
    ) -> Result<ChecklistRecord, StoreError>;

    /// The customer's checklist items marked done.
    async fn checklist(&self, customer_id: &CustomerId)
        -> Result<Vec<ChecklistRecord>, StoreError>;
}
