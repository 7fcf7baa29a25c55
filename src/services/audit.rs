//! The audit log: listing events, counting them, and verifying the hash chains. In the
//! capability shape: [`Audit`] owns its store traits, [`AuditError`] has a kind and a code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use std::sync::Arc;

use super::{Actor, ErrorKind};
use crate::domain::event::{BrokenLink, ChainVerifier};
use crate::domain::{Event, FieldError, Invalid};
use crate::store::jobs::JobStore;
use crate::store::{EventFilter, EventStore, Page, StoreError};

/// Filters for listing events.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this customer.
    pub customer_id: Option<String>,
    /// Only events of this type (`customer.registered`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// A page of events, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    /// The events.
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The outcome of verifying every chain.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Whether every chain verified.
    pub ok: bool,
    /// How many events were checked.
    pub events_checked: u64,
    /// How many chains there are.
    pub chains: usize,
    /// The first broken link, when there is one.
    pub broken: Option<BrokenLink>,
}

/// Events of one type on one UTC day.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct EventCount {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The event type.
    pub event_type: String,
    /// How many.
    pub events: i64,
}

/// Why an audit-log operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A filter broke a rule; every bad one is listed.
    #[error("{}", super::invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuditError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuditError::Invalid(_) => ErrorKind::Invalid,
            AuditError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Invalid(_) => "validation_failed",
            AuditError::Store(e) => super::store_code(e),
        }
    }
}

/// The audit-log capability.
#[derive(Clone)]
pub struct Audit {
    events: Arc<dyn EventStore>,
    counts: Arc<dyn JobStore>,
}

impl Audit {
    /// The capability over the event log and the outbox counts.
    pub fn new(events: Arc<dyn EventStore>, counts: Arc<dyn JobStore>) -> Self {
        Self { events, counts }
    }
}

impl Audit {
    /// Events matching the query, oldest first.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn list(&self, _actor: &Actor, q: &AuditQuery) -> Result<EventList, AuditError> {
        let limit = q.limit.unwrap_or(100);
        let mut errors = Vec::new();
        if !(1..=1000).contains(&limit) {
            errors.push(Invalid::new("out_of_range", "limit must be from 1 to 1000").at("limit"));
        }
        let after_id = match &q.cursor {
            None => None,
            Some(c) => c.parse::<i64>().map(Some).unwrap_or_else(|_| {
                errors.push(
                    Invalid::new("invalid_cursor", "cursor is not one this API returned")
                        .at("cursor"),
                );
                None
            }),
        };
        if !errors.is_empty() {
            return Err(AuditError::Invalid(errors));
        }
        let filter = EventFilter {
            customer_id: q.customer_id.clone(),
            event_type: q.event_type.clone(),
            since: q.since,
            until: q.until,
            after_id,
            limit: limit + 1,
        };
        let page = Page::from_overfetch(self.events.list_events(&filter).await?, limit, |e| {
            e.id.to_string()
        });
        Ok(EventList {
            items: page.items,
            next_cursor: page.next,
        })
    }

    /// How many events of each type happened each UTC day from `since` on, as the
    /// `outbox.event_counts` job has counted them so far.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn counts(
        &self,
        _actor: &Actor,
        since: Option<chrono::NaiveDate>,
    ) -> Result<Vec<EventCount>, AuditError> {
        let since = since.map(|d| d.format("%Y-%m-%d").to_string());
        Ok(self
            .counts
            .event_counts(since.as_deref())
            .await?
            .into_iter()
            .map(|(day, event_type, events)| EventCount {
                day,
                event_type,
                events,
            })
            .collect())
    }

    /// Walks every chain, recomputing each hash, and names the first broken link.
    #[tracing::instrument(skip_all)]
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        const BATCH: u32 = 2000;
        let heads = self.events.chain_heads().await?;
        let mut verifier = ChainVerifier::default();
        let mut after: Option<(String, i64)> = None;
        loop {
            let batch = self
                .events
                .events_in_chain_order(after.as_ref().map(|(c, s)| (c.as_str(), *s)), BATCH)
                .await?;
            for event in &batch {
                if let Err(broken) = verifier.push(event) {
                    return Ok(VerifyReport {
                        ok: false,
                        events_checked: verifier.events_checked,
                        chains: heads.len(),
                        broken: Some(broken),
                    });
                }
            }
            match batch.last() {
                Some(last) if batch.len() == BATCH as usize => {
                    after = Some((last.chain.clone(), last.chain_seq))
                }
                _ => break,
            }
        }
        let checked = verifier.events_checked;
        match verifier.finish(
            heads
                .iter()
                .map(|h| (h.chain.as_str(), h.seq, h.hash.as_str())),
        ) {
            Ok(n) => Ok(VerifyReport {
                ok: true,
                events_checked: n,
                chains: heads.len(),
                broken: None,
            }),
            Err(broken) => Ok(VerifyReport {
                ok: false,
                events_checked: checked,
                chains: heads.len(),
                broken: Some(broken),
            }),
        }
    }
}

/// One event type of the catalog, as interfaces list it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogEntry {
    /// The dotted type, such as `customer.registered`.
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// The version of its payload's shape.
    pub version: u16,
    /// When it is appended.
    pub description: String,
}

/// Every event type Onramp appends, in catalog order.
pub fn event_catalog() -> Vec<CatalogEntry> {
    crate::domain::EventType::ALL
        .iter()
        .map(|t| CatalogEntry {
            event_type: t.as_str(),
            version: t.version(),
            description: t.description(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceError;

    #[test]
    fn audit_errors_have_kinds_and_codes_like_the_service_errors_they_become() {
        let errors = [
            AuditError::Invalid(vec![Invalid::new(
                "out_of_range",
                "limit must be from 1 to 1000",
            )
            .at("limit")]),
            AuditError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
            AuditError::Store(StoreError::Database(sqlx::Error::RowNotFound)),
        ];
        for e in errors {
            let (kind, code, message) = (e.kind(), e.code(), e.to_string());
            let s = ServiceError::from(e);
            assert_eq!((s.kind(), s.code()), (kind, code));
            assert_eq!(s.to_string(), message);
        }
    }
}
