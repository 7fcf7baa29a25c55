//! Persistence of integration keys: the record type and the [`IntegrationKeyStore`] trait each
//! backend implements. Secrets never reach the store; only their HMACs do.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{CustomerId, NewEvent};

/// An integration key, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationKeyRecord {
    /// The public key id.
    pub key_id: String,
    /// The customer it belongs to.
    pub customer_id: String,
    /// A name for people.
    pub name: String,
    /// What its tokens may do (`ship:upload`).
    pub scopes: Vec<String>,
    /// The adapters its tokens may use; empty means none.
    pub allowed_adapters: Vec<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// HMAC-SHA256 of the current secret under `KEY_HASH_SECRET`.
    pub secret_hash: String,
    /// HMAC of the secret a rotation replaced, still accepted until `previous_valid_until`.
    pub previous_secret_hash: Option<String>,
    /// End of the rotation's grace period.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Who issued it.
    pub created_by: String,
    /// Last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Integration keys.
#[async_trait]
pub trait IntegrationKeyStore: Send + Sync {
    /// Saves a new key with its event.
    async fn insert_integration_key(
        &self,
        key: &IntegrationKeyRecord,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// One key by id.
    async fn integration_key(
        &self,
        key_id: &str,
    ) -> Result<Option<IntegrationKeyRecord>, StoreError>;

    /// A customer's keys, oldest first.
    async fn integration_keys(
        &self,
        customer_id: &CustomerId,
    ) -> Result<Vec<IntegrationKeyRecord>, StoreError>;

    /// Saves a changed key (rotation, revocation) with its event, if the stored key still has
    /// `expected_secret_hash` and is not revoked; otherwise [`StoreError::KeyChanged`] and
    /// nothing is written (a concurrent or replayed rotation loses).
    async fn update_integration_key(
        &self,
        key: &IntegrationKeyRecord,
        expected_secret_hash: &str,
        event: NewEvent,
    ) -> Result<(), StoreError>;

    /// Records a use.
    async fn touch_integration_key(
        &self,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Revokes every live key of a customer, with the event; returns how many.
    async fn revoke_customer_keys(
        &self,
        customer_id: &CustomerId,
        at: DateTime<Utc>,
        event: Option<NewEvent>,
    ) -> Result<u64, StoreError>;
}
