//! Exit codes, and the one place service errors become a sentence on stderr and a code.

use std::process::ExitCode;

use crate::services::{ErrorKind, ServiceError};

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
/// Too many attempts; retry later.
pub const LIMITED: u8 = 8;

/// Prints an error for people and returns its exit code.
pub fn report(e: &ServiceError) -> ExitCode {
    if let Some(errors) = e.invalid_fields() {
        eprintln!("error: the input was refused:");
        for fe in errors {
            eprintln!("  {}: {} ({})", fe.field, fe.message, fe.code);
        }
        return ExitCode::from(REFUSED);
    }
    eprintln!("error: {e}");
    ExitCode::from(for_kind(e.kind()))
}

/// The exit code of each kind of error: the one place the CLI maps them.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Invalid | ErrorKind::Unauthenticated | ErrorKind::Forbidden => REFUSED,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Stale => CONFLICT,
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::Config => CONFIG,
        ErrorKind::Limited => LIMITED,
        ErrorKind::Unavailable | ErrorKind::Internal => FAILURE,
    }
}
