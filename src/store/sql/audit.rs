//! The audit log: reading events and appending one on its own. How an event is sealed onto its
//! chain (the chain head's lock) is the backend's `append`.

/// Implements [`EventStore`](crate::store::EventStore) for a backend store type (see
/// [`crate::store::sql`] for what the backend provides).
macro_rules! event_store {
    ($store:ty) => {
        const _: () = {
            use crate::domain::event::format_time;
            use crate::domain::{Event, NewEvent};
            use crate::store::rows::EventRow;
            use crate::store::{ChainHead, EventFilter, EventStore, StoreError};

            #[async_trait::async_trait]
            impl EventStore for $store {
                async fn append_event(&self, event: NewEvent) -> Result<Event, StoreError> {
                    let mut tx = self.write().await?;
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
                    let mut q = sqlx::QueryBuilder::new("SELECT * FROM events WHERE 1 = 1");
                    if let Some(c) = &f.customer_id {
                        q.push(" AND customer_id = ").push_bind(c.clone());
                    }
                    if let Some(t) = &f.event_type {
                        q.push(" AND event_type = ").push_bind(t.clone());
                    }
                    if let Some(since) = f.since {
                        q.push(" AND occurred_at >= ").push_bind(format_time(since));
                    }
                    if let Some(until) = f.until {
                        q.push(" AND occurred_at < ").push_bind(format_time(until));
                    }
                    if let Some(after) = f.after_id {
                        q.push(" AND id > ").push_bind(after);
                    }
                    q.push(" ORDER BY id LIMIT ").push_bind(i64::from(f.limit));
                    let rows: Vec<EventRow> = q.build_query_as().fetch_all(self.reads()).await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn events_in_chain_order(
                    &self,
                    after: Option<(&str, i64)>,
                    limit: u32,
                ) -> Result<Vec<Event>, StoreError> {
                    let (chain, seq) = after.unwrap_or(("", 0));
                    let rows: Vec<EventRow> = sqlx::query_as(
                        "SELECT * FROM events WHERE (chain, chain_seq) > ($1, $2) \
                         ORDER BY chain, chain_seq LIMIT $3",
                    )
                    .bind(chain)
                    .bind(seq)
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
                    // A head at 0 holds no event yet.
                    let rows: Vec<(String, i64, String)> = sqlx::query_as(
                        "SELECT chain, seq, hash FROM event_chain_heads WHERE seq > 0 ORDER BY chain",
                    )
                    .fetch_all(self.reads())
                    .await?;
                    Ok(rows
                        .into_iter()
                        .map(|(chain, seq, hash)| ChainHead { chain, seq, hash })
                        .collect())
                }
            }
        };
    };
}

pub(crate) use event_store;
