//! The services' error type. Every error has a [`ErrorKind`] (what sort of refusal or failure it
//! is) and a stable [`ServiceError::code`]; interfaces map the kind to their own form (an HTTP
//! status, an exit code) in exactly one place each, and show the code as it is.

use crate::domain::{CustomerStatus, FieldError, InvalidTransition, Role};
use crate::product::ProductError;
use crate::store::StoreError;

/// What sort of refusal or failure an error is: the one thing an interface needs to choose its
/// answer (an HTTP status, an exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input broke a rule; nothing changed.
    Invalid,
    /// No valid credentials.
    Unauthenticated,
    /// Valid credentials without the right to do this.
    Forbidden,
    /// What the request names does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The caller's copy is stale (an `If-Match` version).
    Stale,
    /// Stored data failed an integrity check (a sealed value that does not open).
    Integrity,
    /// A store is busy or unreachable; retrying later may work.
    Unavailable,
    /// The configuration (the product file, or a file it names) is unusable.
    Config,
    /// Something that should not fail did.
    Internal,
}

impl ErrorKind {
    /// Whether the caller may see the error's own message; for the rest the message is logged
    /// and the caller gets a generic one.
    pub fn is_public(self) -> bool {
        !matches!(self, Self::Unavailable | Self::Config | Self::Internal)
    }
}

/// The kind of a store failure a capability passes on as it is: unavailable when the pool timed
/// out (busy), internal otherwise.
pub fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::Database(sqlx::Error::PoolTimedOut) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// The code of a store failure a capability passes on as it is.
pub fn store_code(e: &StoreError) -> &'static str {
    match store_kind(e) {
        ErrorKind::Unavailable => "unavailable",
        _ => "internal_error",
    }
}

/// How every error that lists bad fields reads: their count, then each field and its rule.
pub fn invalid_fields_message(errors: &[FieldError]) -> String {
    format!(
        "{} field(s) are invalid: {}",
        errors.len(),
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The actor's role does not include the one an action needs: every capability's refusal of an
/// operator whose token is too weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this action needs the {required} role; the token has {actual}")]
pub struct Forbidden {
    /// The role needed.
    pub required: Role,
    /// The role held.
    pub actual: Role,
}

impl From<Forbidden> for ServiceError {
    fn from(f: Forbidden) -> Self {
        ServiceError::Forbidden {
            required: f.required,
            actual: f.actual,
        }
    }
}

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
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

impl ServiceError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        use ServiceError as S;
        match self {
            S::Invalid(_)
            | S::IdempotencyKeyReused(_)
            | S::QueryRefused(_)
            | S::QueryTimeout(_) => K::Invalid,
            S::Unauthenticated(_) => K::Unauthenticated,
            S::Forbidden { .. }
            | S::ScopeMissing(_)
            | S::OtherCustomer
            | S::AdapterNotAllowed(_) => K::Forbidden,
            S::CustomerNotFound(_)
            | S::CredentialNotFound(_)
            | S::KeyNotFound(_)
            | S::AdapterNotFound(_) => K::NotFound,
            S::CustomerExists(_)
            | S::InvalidTransition(_)
            | S::CustomerDeleted(_)
            | S::IdempotencyKeyInProgress(_)
            | S::RunNotRetryable(_)
            | S::RunInProgress(_)
            | S::StatusOwnedByOnboarding(_)
            | S::NoDataset(_)
            | S::NotActive { .. }
            | S::TableNotProvisioned { .. }
            | S::KeyRevoked(_)
            | S::VersionState(_)
            | S::KeyChanged(_) => K::Conflict,
            S::VersionMismatch { .. } => K::Stale,
            S::CredentialUnreadable(_) => K::Integrity,
            S::Dataset(d) if d.is_transient() => K::Unavailable,
            S::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => K::Unavailable,
            S::Product(_) => K::Config,
            S::Store(_) | S::Dataset(_) | S::Export(_) | S::Internal(_) => K::Internal,
        }
    }

    /// A stable, machine-readable code naming the error: what API clients and scripts match on.
    pub fn code(&self) -> &'static str {
        use ServiceError as S;
        match self {
            S::Invalid(_) => "validation_failed",
            S::CustomerNotFound(_) => "customer_not_found",
            S::CustomerExists(_) => "customer_exists",
            S::InvalidTransition(_) => "invalid_transition",
            S::CustomerDeleted(_) => "customer_deleted",
            S::VersionMismatch { .. } => "version_mismatch",
            S::IdempotencyKeyReused(_) => "idempotency_key_reused",
            S::IdempotencyKeyInProgress(_) => "idempotency_key_in_progress",
            S::RunNotRetryable(_) => "run_not_retryable",
            S::RunInProgress(_) => "run_in_progress",
            S::StatusOwnedByOnboarding(_) => "status_owned_by_onboarding",
            S::NoDataset(_) => "no_dataset",
            S::AdapterNotFound(_) => "adapter_not_found",
            S::NotActive { .. } => "not_active",
            S::TableNotProvisioned { .. } => "table_not_provisioned",
            S::CredentialNotFound(_) => "credential_not_found",
            S::KeyNotFound(_) => "key_not_found",
            S::KeyRevoked(_) => "key_revoked",
            S::VersionState(_) => "invalid_version_state",
            S::KeyChanged(_) => "key_changed",
            S::CredentialUnreadable(_) => "credential_unreadable",
            S::QueryRefused(_) => "query_refused",
            S::QueryTimeout(_) => "query_timeout",
            S::Unauthenticated(_) => "unauthorized",
            S::Forbidden { .. } | S::OtherCustomer => "forbidden",
            S::ScopeMissing(_) => "insufficient_scope",
            S::AdapterNotAllowed(_) => "adapter_not_allowed",
            S::Dataset(d) if d.is_transient() => "unavailable",
            S::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => "unavailable",
            S::Product(_) | S::Store(_) | S::Dataset(_) | S::Export(_) | S::Internal(_) => {
                "internal_error"
            }
        }
    }

    /// The sentence a caller is shown: the error's own message when its kind is public, else a
    /// generic one that reveals nothing of the cause.
    pub fn public_message(&self) -> String {
        match self.kind() {
            kind if kind.is_public() => self.to_string(),
            ErrorKind::Unavailable => match self {
                ServiceError::Dataset(_) => {
                    "a dataset store is busy or unreachable; retry shortly".to_owned()
                }
                _ => "the registry is busy; retry shortly".to_owned(),
            },
            _ => "an internal error occurred; it has been logged".to_owned(),
        }
    }
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

impl From<crate::domain::run::InvalidRunTransition> for ServiceError {
    fn from(e: crate::domain::run::InvalidRunTransition) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Invalid(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_and_kinds_choose_what_is_shown() {
        let errors = [
            ServiceError::Invalid(vec![]),
            ServiceError::CustomerNotFound("acme".into()),
            ServiceError::VersionMismatch {
                customer_id: "acme".into(),
                expected: 1,
                found: 2,
            },
            ServiceError::CredentialUnreadable("api_key".into()),
            ServiceError::Internal("the signing key is 3 bytes".into()),
            ServiceError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
        ];
        let kinds = errors.iter().map(|e| e.kind()).collect::<Vec<_>>();
        assert_eq!(
            kinds,
            [
                ErrorKind::Invalid,
                ErrorKind::NotFound,
                ErrorKind::Stale,
                ErrorKind::Integrity,
                ErrorKind::Internal,
                ErrorKind::Unavailable
            ]
        );
        for e in &errors {
            let code = e.code();
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
        assert_eq!(errors[1].public_message(), "Customer 'acme' not found");
        assert!(!errors[4].public_message().contains("signing"));
        assert_eq!(errors[5].code(), "unavailable");
        assert_eq!(
            errors[5].public_message(),
            "the registry is busy; retry shortly"
        );
    }
}
