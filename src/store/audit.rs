//! Persistence of the audit log: every change's event, sealed into its hash chain. The
//! [`EventStore`] trait reads and appends; chain sealing itself belongs to each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{Event, NewEvent};

/// Which events an audit listing returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events about this customer.
    pub customer_id: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only events with a larger id (the cursor).
    pub after_id: Option<i64>,
    /// How many at most.
    pub limit: u32,
}

/// The last event of one chain.
#[derive(Debug, Clone)]
pub struct ChainHead {
    /// Chain name.
    pub chain: String,
    /// Its length.
    pub seq: i64,
    /// Its last hash.
    pub hash: String,
}

/// The audit log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event that goes with no other change.
    async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError>;

    /// Events matching a filter, oldest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError>;

    /// Events ordered by chain, then position, after the given place: for verification.
    async fn events_in_chain_order(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Every chain's head.
    async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError>;
}
