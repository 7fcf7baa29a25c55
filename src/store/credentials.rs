//! Persistence of the credentials vault: the shared record types and the [`CredentialStore`]
//! trait each backend implements. Values only ever reach the store sealed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::credential::{CredentialStatus, VersionState};
use crate::domain::envelope::Sealed;
use crate::domain::{CustomerId, NewEvent};

/// A customer's credential of one type, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRecord {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// Whether it works.
    pub status: CredentialStatus,
    /// The version reads return: the newest enabled one.
    pub current_version: Option<i64>,
    /// The scopes declared at write time or found by the last check.
    pub scopes: Option<Vec<String>>,
    /// When it was last checked.
    pub last_validated_at: Option<DateTime<Utc>>,
    /// Why the last check failed.
    pub validation_error: Option<String>,
    /// When the provider says it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it should be rotated.
    pub rotate_by: Option<DateTime<Utc>>,
    /// First write.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One version of a credential, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// 1, 2, ...
    pub version: i64,
    /// Whether it can be read.
    pub state: VersionState,
    /// A short digest that tells values apart without showing them.
    pub fingerprint: String,
    /// The sealed value; `None` once destroyed.
    pub sealed: Option<Sealed>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Who wrote it.
    pub created_by: String,
    /// When its state last changed.
    pub state_changed_at: DateTime<Utc>,
}

/// A credential an onboarding request carried, sealed (bound to version 0 of its type) until
/// the run's `store_credentials` step moves it into the vault.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedCredential {
    /// The credential type.
    pub credential_type: String,
    /// The value's fingerprint.
    pub fingerprint: String,
    /// Scopes declared with it.
    pub scopes: Option<Vec<String>>,
    /// The sealed value.
    pub sealed: Sealed,
}

/// A change of one version's state; destroying clears its sealed value.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionChange {
    /// The version.
    pub version: i64,
    /// Its new state.
    pub state: VersionState,
}

/// The vault's persistence.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// One credential.
    async fn credential(
        &self,
        customer_id: &CustomerId,
        credential_type: &str,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// A customer's credentials, by type.
    async fn credentials(
        &self,
        customer_id: &CustomerId,
    ) -> Result<Vec<CredentialRecord>, StoreError>;

    /// A credential's versions, oldest first.
    async fn credential_versions(
        &self,
        customer_id: &CustomerId,
        credential_type: &str,
    ) -> Result<Vec<VersionRecord>, StoreError>;

    /// Writes a credential in one transaction: the record (inserted or updated), a new version
    /// (refused with [`StoreError::CredentialVersionTaken`] when that version number exists), version state
    /// changes, and the events.
    async fn save_credential(
        &self,
        record: &CredentialRecord,
        new_version: Option<&VersionRecord>,
        changes: &[VersionChange],
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// Destroys every version of every credential of a customer and marks them revoked, with
    /// the event, in one transaction. Returns how many versions held a value.
    async fn destroy_customer_credentials(
        &self,
        customer_id: &CustomerId,
        at: DateTime<Utc>,
        event: Option<NewEvent>,
    ) -> Result<u64, StoreError>;

    /// Credentials not revoked whose `rotate_by` is at or before `before`, soonest first.
    async fn credentials_due(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<CredentialRecord>, StoreError>;

    /// Up to `limit` versions holding a value sealed under another master key than `current`.
    async fn versions_to_rewrap(
        &self,
        current: u32,
        limit: i64,
    ) -> Result<Vec<VersionRecord>, StoreError>;

    /// The credentials staged with a run, by type.
    async fn staged_credentials(
        &self,
        customer_id: &CustomerId,
        run_id: &str,
    ) -> Result<Vec<StagedCredential>, StoreError>;

    /// Forgets every credential staged with a customer's runs.
    async fn clear_staged_credentials(&self, customer_id: &CustomerId) -> Result<(), StoreError>;

    /// Stores rewrapped data keys, each only if the row is still sealed under `from`'s master
    /// version. Returns how many rows changed.
    async fn store_rewrapped(&self, rewrapped: &[(VersionRecord, u32)]) -> Result<u64, StoreError>;
}
