//! Portable SQL: every statement both backends run alike, written once.
//!
//! Statements here use `$N` placeholders, which PostgreSQL takes natively and SQLite (through
//! sqlx) binds by number, and only SQL both engines accept: no `::` casts, no data-modifying
//! CTEs, `ON CONFLICT` and `RETURNING` as both spell them. What truly differs stays in the
//! backend modules: pools, how a write transaction starts (SQLite's `BEGIN IMMEDIATE` on its one
//! writer), how a chain head is locked and an event sealed, the hot paths PostgreSQL folds into
//! one round trip, job claiming, tenant datasets and migrations.
//!
//! ## Why macros, not generic functions
//!
//! sqlx can be written generically over `DB: Database`, but the bounds a query needs (that
//! `&mut DB::Connection` is an `Executor`, that each bound value encodes and each column
//! decodes for `DB`) are higher-ranked where-clauses Rust does not imply from any trait: every
//! generic function and impl would repeat a dozen of them, and their errors name lifetimes, not
//! columns. So each capability's statements are one `macro_rules!` that expands an impl of its
//! store trait for a concrete backend type: the SQL and the binding are written once, each
//! expansion is type-checked against its own driver, and nothing is dispatched at run time.
//!
//! ## What a backend provides
//!
//! The module that expands these macros (`store::sqlite`, `store::postgres`) has in scope:
//! - `Self::reads(&self) -> &Pool<DB>`: where reads go;
//! - `Self::writes(&self) -> &Pool<DB>`: where a single-statement write goes;
//! - `Self::write(&self) -> Result<Transaction<'static, DB>, StoreError>`: a write transaction;
//! - `append(&mut DB::Connection, NewEvent) -> Result<Event, StoreError>` and
//!   `append_all(&mut DB::Connection, Vec<NewEvent>) -> Result<(), StoreError>`: seal events onto
//!   their chains inside the caller's transaction.
//!
//! A new capability adds its statements as a macro in its own file here and one line to
//! [`portable_store`], which each backend expands once (see [`integration_keys`] for the shape).

mod accounts;
mod audit;
mod billing;
mod credentials;
mod customers;
mod emails;
mod jobs;
mod keys;
mod runs;
mod signups;
mod tokens;

pub(crate) use accounts::account_store;
pub(crate) use audit::event_store;
pub(crate) use billing::billing_store;
pub(crate) use credentials::credential_store;
pub(crate) use customers::customer_store;
pub(crate) use emails::email_store;
pub(crate) use jobs::{cursor_writes, job_store};
pub(crate) use keys::integration_keys;
pub(crate) use runs::{row_writes, run_store};
pub(crate) use signups::signup_store;
pub(crate) use tokens::admin_token_store;

/// Every capability's portable statements for one backend: its store type, its connection type
/// and its sqlx database. Each backend's `mod.rs` expands this once.
macro_rules! portable_store {
    ($store:ty, $conn:ty, $db:ty) => {
        crate::store::sql::credential_store!($store);
        crate::store::sql::customer_store!($store);
        crate::store::sql::event_store!($store);
        crate::store::sql::admin_token_store!($store);
        crate::store::sql::run_store!($store);
        crate::store::sql::integration_keys!($store);
        crate::store::sql::job_store!($store);
        crate::store::sql::signup_store!($store);
        crate::store::sql::email_store!($store);
        crate::store::sql::account_store!($store);
        crate::store::sql::billing_store!($store, $conn);
        crate::store::sql::row_writes!($conn, $db);
        crate::store::sql::cursor_writes!($conn);
    };
}
pub(crate) use portable_store;
