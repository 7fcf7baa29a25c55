//! The services' one error type. Interfaces map it to their own form (problem+json, exit codes)
//! in exactly one place each.

use crate::domain::{CustomerStatus, FieldError, InvalidTransition, Role};
use crate::product::ProductError;
use crate::store::StoreError;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input broke rules; every bad field is listed.
    #[error("{} field(s) are invalid: {}", .0.len(), .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No such customer.
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// The id is taken.
    #[error("Customer already exists: '{0}'. Use a different customer_id, update the existing customer, or offboard it first")]
    CustomerExists(String),
    /// The status machine refused.
    #[error("{0}")]
    InvalidTransition(#[from] InvalidTransition),
    /// A deleted customer is a tombstone.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    CustomerDeleted(String),
    /// The caller's version is stale.
    #[error("Customer '{customer_id}' changed: it is at version {found}, not {expected}. Read it again and retry")]
    VersionMismatch {
        /// The customer.
        customer_id: String,
        /// The version the caller sent.
        expected: i64,
        /// The current version.
        found: i64,
    },
    /// The idempotency key was used for a different request.
    #[error("Idempotency-Key '{0}' was already used with a different request body")]
    IdempotencyKeyReused(String),
    /// The idempotency key's first request is still in progress.
    #[error("Idempotency-Key '{0}' is in use by a request still in progress; retry shortly")]
    IdempotencyKeyInProgress(String),
    /// The run already succeeded.
    #[error("{0}")]
    RunNotRetryable(String),
    /// Another process is working on the run.
    #[error("the onboarding of '{0}' is in progress; retry when it has finished or its lease has run out")]
    RunInProgress(String),
    /// The customer's status is set by its onboarding run.
    #[error("the status of '{0}' is set by its onboarding run: retry the run instead")]
    StatusOwnedByOnboarding(String),
    /// The customer has no dataset to work on.
    #[error("customer '{0}' has no dataset")]
    NoDataset(String),
    /// The product has no such upload adapter.
    #[error("the product has no upload adapter '{0}'")]
    AdapterNotFound(String),
    /// Uploads need an active customer.
    #[error("customer '{customer_id}' is {status}; uploads need an active customer")]
    NotActive {
        /// The customer.
        customer_id: String,
        /// Its status.
        status: CustomerStatus,
    },
    /// The adapter's table is not part of the customer's dataset (its tier lacks it).
    #[error("the dataset of '{customer_id}' has no table '{table}': its tier does not include it")]
    TableNotProvisioned {
        /// The customer.
        customer_id: String,
        /// The table.
        table: String,
    },
    /// The dataset's database refused the query.
    #[error("{0}")]
    QueryRefused(String),
    /// The query ran out of time.
    #[error("the query ran longer than {0} ms and was stopped")]
    QueryTimeout(u64),
    /// A dataset operation failed.
    #[error(transparent)]
    Dataset(crate::store::datasets::DatasetError),
    /// Writing an export failed.
    #[error("cannot write the export: {0}")]
    Export(#[from] std::io::Error),
    /// The customer has no such stored credential (or version).
    #[error("{0}")]
    CredentialNotFound(String),
    /// The vault cannot open a stored value (altered, moved, or its master key is missing).
    #[error("the stored {0} credential cannot be decrypted: it was altered or moved, or its master key is missing")]
    CredentialUnreadable(String),
    /// The customer has no such integration key.
    #[error("{0}")]
    KeyNotFound(String),
    /// The key was revoked.
    #[error("integration key '{0}' is revoked")]
    KeyRevoked(String),
    /// A credential version cannot move to the state asked for from the one it is in.
    #[error("{0}")]
    VersionState(String),
    /// The key was rotated (or revoked) after the token or read this request relies on: a
    /// replayed or concurrent rotation.
    #[error("integration key '{0}' was rotated or revoked after this request's token was issued; exchange the current key and retry")]
    KeyChanged(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A customer's token lacks a scope.
    #[error("this action needs the '{0}' scope, which the token does not have")]
    ScopeMissing(String),
    /// A customer's token without an adapter it tried to use.
    #[error("this token may not use the '{0}' adapter; the key's allowed_adapters do not list it")]
    AdapterNotAllowed(String),
    /// A customer's token used on another customer.
    #[error("the token belongs to another customer")]
    OtherCustomer,
    /// Valid credentials, too low a role.
    #[error("this action needs the {required} role; the token has {actual}")]
    Forbidden {
        /// The role needed.
        required: Role,
        /// The role held.
        actual: Role,
    },
    /// The product file (or a file it names) is bad.
    #[error(transparent)]
    Product(#[from] ProductError),
    /// Something that should not fail did (a client that cannot be built, a token that cannot
    /// be signed).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CustomerExists(id) => ServiceError::CustomerExists(id),
            StoreError::CustomerNotFound(id) => ServiceError::CustomerNotFound(id),
            StoreError::VersionConflict {
                customer_id,
                expected,
                found,
            } => ServiceError::VersionMismatch {
                customer_id,
                expected,
                found,
            },
            StoreError::IdempotencyKeyTaken(key) => ServiceError::IdempotencyKeyInProgress(key),
            StoreError::KeyChanged(key) => ServiceError::KeyChanged(key),
            other => ServiceError::Store(other),
        }
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Invalid(vec![e])
    }
}
