//! The services' error type. Every error has a [`ErrorKind`] (what sort of refusal or failure it
//! is) and a stable [`ServiceError::code`]; interfaces map the kind to their own form (an HTTP
//! status, an exit code) in exactly one place each, and show the code as it is.

use super::accounts::AccountError;
use super::audit::AuditError;
use super::billing::BillingError;
use super::credentials::VaultError;
use super::customers::CustomerError;
use super::datasets::DataError;
use super::email::EmailError;
use super::keys::KeyError;
use super::onboarding::RunError;
use super::signups::SignupError;
use super::tokens::TokenError;
use crate::domain::{FieldError, Role};
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
    /// The caller has tried too often; retrying after a while may work.
    Limited,
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
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
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
    /// An admin-token refusal or failure.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// An audit-log refusal or failure.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// An integration-key refusal or failure.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A vault refusal or failure.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A dataset refusal or failure.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An onboarding-run refusal or failure.
    #[error(transparent)]
    Runs(#[from] RunError),
    /// A customer-registry refusal or failure.
    #[error(transparent)]
    Customers(#[from] CustomerError),
    /// A signup refusal or failure.
    #[error(transparent)]
    Signups(#[from] SignupError),
    /// An email refusal or failure.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// An account refusal or failure.
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// A billing refusal or failure.
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl ServiceError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        use ServiceError as S;
        match self {
            S::Invalid(_) => K::Invalid,
            S::Unauthenticated(_) => K::Unauthenticated,
            S::Forbidden { .. } => K::Forbidden,
            S::Store(e) => store_kind(e),
            S::Product(_) => K::Config,
            S::Internal(_) => K::Internal,
            S::Tokens(e) => e.kind(),
            S::Audit(e) => e.kind(),
            S::Keys(e) => e.kind(),
            S::Vault(e) => e.kind(),
            S::Data(e) => e.kind(),
            S::Runs(e) => e.kind(),
            S::Customers(e) => e.kind(),
            S::Signups(e) => e.kind(),
            S::Email(e) => e.kind(),
            S::Accounts(e) => e.kind(),
            S::Billing(e) => e.kind(),
        }
    }

    /// A stable, machine-readable code naming the error: what API clients and scripts match on.
    pub fn code(&self) -> &'static str {
        use ServiceError as S;
        match self {
            S::Invalid(_) => "validation_failed",
            S::Unauthenticated(_) => "unauthorized",
            S::Forbidden { .. } => "forbidden",
            S::Store(e) => store_code(e),
            S::Product(_) | S::Internal(_) => "internal_error",
            S::Tokens(e) => e.code(),
            S::Audit(e) => e.code(),
            S::Keys(e) => e.code(),
            S::Vault(e) => e.code(),
            S::Data(e) => e.code(),
            S::Runs(e) => e.code(),
            S::Customers(e) => e.code(),
            S::Signups(e) => e.code(),
            S::Email(e) => e.code(),
            S::Accounts(e) => e.code(),
            S::Billing(e) => e.code(),
        }
    }

    /// The fields an input refusal names, wherever it was refused.
    pub fn invalid_fields(&self) -> Option<&[FieldError]> {
        use ServiceError as S;
        match self {
            S::Tokens(TokenError::Invalid(error)) => Some(std::slice::from_ref(error)),
            S::Customers(e) => e.invalid_fields(),
            S::Signups(SignupError::Onboarding(e)) => e.invalid_fields(),
            S::Invalid(errors)
            | S::Keys(KeyError::Invalid(errors))
            | S::Vault(VaultError::Invalid(errors))
            | S::Data(DataError::Invalid(errors))
            | S::Runs(RunError::Invalid(errors))
            | S::Audit(AuditError::Invalid(errors))
            | S::Signups(SignupError::Invalid(errors))
            | S::Email(EmailError::Invalid(errors))
            | S::Accounts(AccountError::Invalid(errors))
            | S::Billing(BillingError::Invalid(errors)) => Some(errors),
            _ => None,
        }
    }

    /// Seconds until a limited caller may try again.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ServiceError::Accounts(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    /// Whether a dataset store (not the registry) failed, however deep the capability that met
    /// it: a customer's update provisions through datasets, an onboarding run's rollback drops
    /// through them.
    fn dataset_store_failed(&self) -> bool {
        fn data(e: &DataError) -> bool {
            matches!(e, DataError::Backend(_))
        }
        fn runs(e: &RunError) -> bool {
            matches!(e, RunError::Data(d) if data(d))
        }
        match self {
            ServiceError::Data(d) => data(d),
            ServiceError::Runs(r) => runs(r),
            ServiceError::Customers(CustomerError::Data(d)) => data(d),
            ServiceError::Customers(CustomerError::Runs(r)) => runs(r),
            _ => false,
        }
    }

    /// The sentence a caller is shown: the error's own message when its kind is public, else a
    /// generic one that reveals nothing of the cause.
    pub fn public_message(&self) -> String {
        match self.kind() {
            kind if kind.is_public() => self.to_string(),
            ErrorKind::Unavailable if self.dataset_store_failed() => {
                "a dataset store is busy or unreachable; retry shortly".to_owned()
            }
            ErrorKind::Unavailable => "the registry is busy; retry shortly".to_owned(),
            _ => "an internal error occurred; it has been logged".to_owned(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::KeyChanged(key) => ServiceError::Keys(KeyError::Changed(key)),
            // A store's refusal about a customer reads as the registry's.
            StoreError::CustomerExists(_)
            | StoreError::CustomerNotFound(_)
            | StoreError::VersionConflict { .. }
            | StoreError::IdempotencyKeyTaken(_) => ServiceError::Customers(e.into()),
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

/// Checks that each capability error reaches the interfaces with the kind and code given and
/// its own message.
#[cfg(test)]
pub(crate) fn assert_classified<E>(cases: impl IntoIterator<Item = (E, ErrorKind, &'static str)>)
where
    E: Into<ServiceError> + std::fmt::Display,
{
    for (e, kind, code) in cases {
        let message = e.to_string();
        let s: ServiceError = e.into();
        assert_eq!((s.kind(), s.code(), s.to_string()), (kind, code, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_and_kinds_choose_what_is_shown() {
        let errors = [
            ServiceError::Invalid(vec![]),
            ServiceError::from(StoreError::CustomerNotFound("acme".into())),
            ServiceError::from(StoreError::VersionConflict {
                customer_id: "acme".into(),
                expected: 1,
                found: 2,
            }),
            ServiceError::Vault(VaultError::Unreadable("api_key".into())),
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
        let busy =
            || DataError::Backend(crate::store::datasets::DatasetError::Transient("io".into()));
        for nested in [
            ServiceError::Data(busy()),
            ServiceError::Runs(RunError::Data(busy())),
            ServiceError::Customers(CustomerError::Data(busy())),
            ServiceError::Customers(CustomerError::Runs(RunError::Data(busy()))),
        ] {
            assert_eq!(
                nested.public_message(),
                "a dataset store is busy or unreachable; retry shortly"
            );
        }
        assert_eq!(
            errors[5].public_message(),
            "the registry is busy; retry shortly"
        );
    }
}
