//! Why the vault refuses or fails.

use super::*;

/// Why a vault operation refused or failed. Values never appear in it.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A customer's token lacks a scope.
    #[error("this action needs the '{0}' scope, which the token does not have")]
    ScopeMissing(String),
    /// A customer's token used on another customer.
    #[error("the token belongs to another customer")]
    OtherCustomer,
    /// No such customer.
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// A deleted customer's vault is closed.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    CustomerDeleted(String),
    /// The customer has no such credential (or version), or it was destroyed.
    #[error("{0}")]
    NotFound(String),
    /// A stored value does not open (altered, moved, or its master key is missing).
    #[error("the stored {0} credential cannot be decrypted: it was altered or moved, or its master key is missing")]
    Unreadable(String),
    /// A version cannot move to the state asked for from the one it is in.
    #[error("{0}")]
    VersionState(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for VaultError {
    fn from(e: FieldError) -> Self {
        VaultError::Invalid(vec![e])
    }
}

impl VaultError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VaultError::Invalid(_) => ErrorKind::Invalid,
            VaultError::Forbidden(_) | VaultError::ScopeMissing(_) | VaultError::OtherCustomer => {
                ErrorKind::Forbidden
            }
            VaultError::CustomerNotFound(_) | VaultError::NotFound(_) => ErrorKind::NotFound,
            VaultError::CustomerDeleted(_) | VaultError::VersionState(_) => ErrorKind::Conflict,
            VaultError::Unreadable(_) => ErrorKind::Integrity,
            VaultError::Store(e) => crate::services::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Invalid(_) => "validation_failed",
            VaultError::Forbidden(_) | VaultError::OtherCustomer => "forbidden",
            VaultError::ScopeMissing(_) => "insufficient_scope",
            VaultError::CustomerNotFound(_) => "customer_not_found",
            VaultError::CustomerDeleted(_) => "customer_deleted",
            VaultError::NotFound(_) => "credential_not_found",
            VaultError::Unreadable(_) => "credential_unreadable",
            VaultError::VersionState(_) => "invalid_version_state",
            VaultError::Store(e) => crate::services::store_code(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        let cases = [
            (
                VaultError::Invalid(vec![
                    Invalid::new("required", "value is required").at("value")
                ]),
                K::Invalid,
                "validation_failed",
            ),
            (
                VaultError::Forbidden(Forbidden {
                    required: Role::Admin,
                    actual: Role::Operator,
                }),
                K::Forbidden,
                "forbidden",
            ),
            (
                VaultError::ScopeMissing("credentials:read".into()),
                K::Forbidden,
                "insufficient_scope",
            ),
            (VaultError::OtherCustomer, K::Forbidden, "forbidden"),
            (
                VaultError::CustomerDeleted("acme".into()),
                K::Conflict,
                "customer_deleted",
            ),
            (
                VaultError::NotFound("customer 'acme' has no stored api_key credential".into()),
                K::NotFound,
                "credential_not_found",
            ),
            (
                VaultError::Unreadable("api_key".into()),
                K::Integrity,
                "credential_unreadable",
            ),
            (
                VaultError::VersionState("version 2 is destroyed".into()),
                K::Conflict,
                "invalid_version_state",
            ),
            (
                VaultError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
                K::Unavailable,
                "unavailable",
            ),
        ];
        crate::services::error::assert_classified(cases);
    }
}
