//! Why an onboarding run refuses or fails.

use super::*;

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
            RunError::Store(e) => crate::services::store_kind(e),
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
            RunError::Store(e) => crate::services::store_code(e),
        }
    }
}
