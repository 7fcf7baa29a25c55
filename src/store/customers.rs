//! Persistence of the customer registry: the [`CustomerStore`] trait each backend implements,
//! with the filter of a listing and the idempotency records of the requests that create
//! customers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::runs::RunRecord;
use super::{Page, PageRequest, StoreError};
use crate::domain::{Customer, CustomerId, CustomerStatus, Event, NewEvent};

/// Which customers a listing returns.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Only these statuses; `None` for every status.
    pub statuses: Option<Vec<CustomerStatus>>,
    /// Only this industry.
    pub industry: Option<String>,
    /// Only customers with this tag.
    pub tag: Option<String>,
    /// Only customers whose folded name (`domain::text::fold_name`) contains this text, which
    /// the caller folds the same way; `%` and `_` in it are literal.
    pub name_contains: Option<String>,
}

/// A stored response for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    /// The client's key.
    pub key: String,
    /// SHA-256 of the request it was first used with.
    pub fingerprint: String,
    /// The HTTP status of the first response.
    pub status: u16,
    /// The first response's body.
    pub body: String,
    /// When it was first used.
    pub created_at: DateTime<Utc>,
}

/// The customer registry.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Registers a new customer with its event and, when given, its onboarding run and the
    /// idempotency record of the request that created it, all in one transaction.
    async fn insert_customer(
        &self,
        customer: &Customer,
        event: NewEvent,
        run: Option<&RunRecord>,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<Event, StoreError>;

    /// One customer by id.
    async fn get_customer(&self, customer_id: &str) -> Result<Option<Customer>, StoreError>;

    /// A page of customers ordered by id.
    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> Result<Page<Customer>, StoreError>;

    /// Saves a changed customer if the stored version is still `expected_version`, with its event.
    async fn update_customer(
        &self,
        customer_id: &CustomerId,
        customer: &Customer,
        expected_version: i64,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// How many customers are registered, in every status.
    async fn count_customers(&self) -> Result<i64, StoreError>;

    /// The record stored for an idempotency key.
    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}
