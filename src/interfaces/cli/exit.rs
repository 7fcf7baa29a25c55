//! Exit codes, and the one place service errors become a sentence on stderr and a code.

use std::process::ExitCode;

use crate::services::ServiceError;

/// Success.
pub const OK: u8 = 0;
/// Something unexpected failed (database down, I/O error).
pub const FAILURE: u8 = 1;
/// The command line itself was wrong (clap's own code).
pub const USAGE: u8 = 2;
/// The input was refused: a field broke a rule. Nothing changed.
pub const REFUSED: u8 = 3;
/// The customer does not exist.
pub const NOT_FOUND: u8 = 4;
/// The change conflicts with the current state (exists, invalid transition, stale version).
pub const CONFLICT: u8 = 5;
/// `audit verify` found a broken chain.
pub const INTEGRITY: u8 = 6;
/// The configuration is unusable: a bad product file, or a database that cannot be opened.
pub const CONFIG: u8 = 7;

/// Prints an error for people and returns its exit code.
pub fn report(e: &ServiceError) -> ExitCode {
    use ServiceError as S;
    let code = match e {
        S::Invalid(errors) => {
            eprintln!("error: the input was refused:");
            for fe in errors {
                eprintln!("  {}: {} ({})", fe.field, fe.message, fe.code);
            }
            return ExitCode::from(REFUSED);
        }
        S::IdempotencyKeyReused(_)
        | S::Unauthenticated(_)
        | S::Forbidden { .. }
        | S::ScopeMissing(_)
        | S::OtherCustomer
        | S::AdapterNotAllowed(_)
        | S::QueryRefused(_)
        | S::QueryTimeout(_) => REFUSED,
        S::CustomerNotFound(_)
        | S::CredentialNotFound(_)
        | S::KeyNotFound(_)
        | S::AdapterNotFound(_) => NOT_FOUND,
        S::KeyRevoked(_) | S::KeyChanged(_) | S::VersionState(_) => CONFLICT,
        S::CredentialUnreadable(_) => INTEGRITY,
        S::CustomerExists(_)
        | S::InvalidTransition(_)
        | S::CustomerDeleted(_)
        | S::VersionMismatch { .. }
        | S::IdempotencyKeyInProgress(_)
        | S::RunNotRetryable(_)
        | S::RunInProgress(_)
        | S::StatusOwnedByOnboarding(_)
        | S::NoDataset(_)
        | S::NotActive { .. }
        | S::TableNotProvisioned { .. } => CONFLICT,
        S::Product(_) => CONFIG,
        S::Store(_) | S::Dataset(_) | S::Export(_) | S::Internal(_) => FAILURE,
    };
    eprintln!("error: {e}");
    ExitCode::from(code)
}
