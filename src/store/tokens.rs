//! Persistence of operator API tokens: the [`AdminTokenStore`] trait each backend implements.
//! Secrets never reach the store; only their hashes do.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{Event, NewEvent, Role};

/// An admin API token, as stored: the secret only as a hash.
#[derive(Debug, Clone)]
pub struct AdminTokenRecord {
    /// Public id, part of the token.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Operator API tokens.
#[async_trait]
pub trait AdminTokenStore: Send + Sync {
    /// Stores a new admin token with its event.
    async fn insert_admin_token(
        &self,
        token: &AdminTokenRecord,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// One admin token by id.
    async fn get_admin_token(&self, id: &str) -> Result<Option<AdminTokenRecord>, StoreError>;
}
