//! Why the registry refuses or fails.

use super::*;

/// Why a customer operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such customer.
    #[error("Customer '{0}' not found")]
    NotFound(String),
    /// The id is taken.
    #[error("Customer already exists: '{0}'. Use a different customer_id, update the existing customer, or offboard it first")]
    Exists(String),
    /// The status machine refused.
    #[error("{0}")]
    InvalidTransition(#[from] InvalidTransition),
    /// A deleted customer is a tombstone.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    Deleted(String),
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
    /// The customer's status is set by its onboarding run.
    #[error("the status of '{0}' is set by its onboarding run: retry the run instead")]
    StatusOwnedByOnboarding(String),
    /// Another process is onboarding the customer.
    #[error("the onboarding of '{0}' is in progress; retry when it has finished or its lease has run out")]
    RunInProgress(String),
    /// The legacy tenants file is unusable.
    #[error(transparent)]
    Product(#[from] crate::product::ProductError),
    /// A run or step status changed in a way its machine forbids: a defect.
    #[error("{0}")]
    Internal(String),
    /// The customer's onboarding run refused or failed.
    #[error(transparent)]
    Runs(#[from] RunError),
    /// The customer's dataset refused or failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The customer's vault refused or failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The customer's keys refused or failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The accounts capability failed while offboarding the customer's users.
    #[error(transparent)]
    Accounts(#[from] crate::services::accounts::AccountError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CustomerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CustomerExists(id) => CustomerError::Exists(id),
            StoreError::CustomerNotFound(id) => CustomerError::NotFound(id),
            StoreError::VersionConflict {
                customer_id,
                expected,
                found,
            } => CustomerError::VersionMismatch {
                customer_id,
                expected,
                found,
            },
            StoreError::IdempotencyKeyTaken(key) => CustomerError::IdempotencyKeyInProgress(key),
            other => CustomerError::Store(other),
        }
    }
}

impl From<crate::domain::run::InvalidRunTransition> for CustomerError {
    fn from(e: crate::domain::run::InvalidRunTransition) -> Self {
        CustomerError::Internal(e.to_string())
    }
}

impl From<FieldError> for CustomerError {
    fn from(e: FieldError) -> Self {
        CustomerError::Invalid(vec![e])
    }
}

impl CustomerError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        use CustomerError as C;
        match self {
            C::Invalid(_) | C::IdempotencyKeyReused(_) => ErrorKind::Invalid,
            C::Forbidden(_) => ErrorKind::Forbidden,
            C::NotFound(_) => ErrorKind::NotFound,
            C::Exists(_)
            | C::InvalidTransition(_)
            | C::Deleted(_)
            | C::IdempotencyKeyInProgress(_)
            | C::StatusOwnedByOnboarding(_)
            | C::RunInProgress(_) => ErrorKind::Conflict,
            C::VersionMismatch { .. } => ErrorKind::Stale,
            C::Product(_) => ErrorKind::Config,
            C::Internal(_) => ErrorKind::Internal,
            C::Runs(e) => e.kind(),
            C::Data(e) => e.kind(),
            C::Vault(e) => e.kind(),
            C::Keys(e) => e.kind(),
            C::Accounts(e) => e.kind(),
            C::Store(e) => crate::services::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        use CustomerError as C;
        match self {
            C::Invalid(_) => "validation_failed",
            C::Forbidden(_) => "forbidden",
            C::NotFound(_) => "customer_not_found",
            C::Exists(_) => "customer_exists",
            C::InvalidTransition(_) => "invalid_transition",
            C::Deleted(_) => "customer_deleted",
            C::VersionMismatch { .. } => "version_mismatch",
            C::IdempotencyKeyReused(_) => "idempotency_key_reused",
            C::IdempotencyKeyInProgress(_) => "idempotency_key_in_progress",
            C::StatusOwnedByOnboarding(_) => "status_owned_by_onboarding",
            C::RunInProgress(_) => "run_in_progress",
            C::Product(_) | C::Internal(_) => "internal_error",
            C::Runs(e) => e.code(),
            C::Data(e) => e.code(),
            C::Vault(e) => e.code(),
            C::Keys(e) => e.code(),
            C::Accounts(e) => e.code(),
            C::Store(e) => crate::services::store_code(e),
        }
    }

    /// The fields an input refusal names, wherever it was refused.
    pub fn invalid_fields(&self) -> Option<&[FieldError]> {
        match self {
            CustomerError::Invalid(errors)
            | CustomerError::Runs(RunError::Invalid(errors))
            | CustomerError::Data(DataError::Invalid(errors))
            | CustomerError::Vault(VaultError::Invalid(errors))
            | CustomerError::Keys(KeyError::Invalid(errors)) => Some(errors),
            _ => None,
        }
    }
}
