//! The customer registry: customers, their listing, and idempotency records.

/// Implements [`CustomerStore`](crate::store::CustomerStore) for a backend store type (see
/// [`crate::store::sql`] for what the backend provides). The backend also provides
/// `insert_customer_rows(conn, customer, run, idempotency)`, which writes a new customer's rows
/// in the caller's transaction (PostgreSQL folds them into one statement), and
/// `push_tag_filter(query, tag)`, the one clause of a listing the two engines spell apart (JSON
/// containment).
macro_rules! customer_store {
    ($store:ty) => {
        const _: () = {
            use crate::domain::CustomerId;
            use crate::domain::{Customer, Event, NewEvent};
            use crate::store::rows::{CustomerRow, IdempotencyRow};
            use crate::store::{
                like_contains, CustomerFilter, CustomerStore, IdempotencyRecord, Page, PageRequest,
                RunRecord, StoreError,
            };

            #[async_trait::async_trait]
            impl CustomerStore for $store {
                async fn insert_customer(
                    &self,
                    c: &Customer,
                    event: NewEvent,
                    run: Option<&RunRecord>,
                    idempotency: Option<&IdempotencyRecord>,
                ) -> Result<Event, StoreError> {
                    let mut tx = self.write().await?;
                    insert_customer_rows(&mut tx, c, run, idempotency).await?;
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn get_customer(
                    &self,
                    customer_id: &str,
                ) -> Result<Option<Customer>, StoreError> {
                    let row: Option<CustomerRow> =
                        sqlx::query_as("SELECT * FROM customers WHERE customer_id = $1")
                            .bind(customer_id)
                            .fetch_optional(self.reads())
                            .await?;
                    row.map(Customer::try_from).transpose()
                }

                async fn list_customers(
                    &self,
                    filter: &CustomerFilter,
                    page: &PageRequest,
                ) -> Result<Page<Customer>, StoreError> {
                    let mut q = sqlx::QueryBuilder::new("SELECT * FROM customers WHERE 1 = 1");
                    match filter.statuses.as_deref() {
                        // Equality lets the (status, industry, customer_id) index return rows
                        // in key order.
                        Some([one]) => {
                            q.push(" AND status = ").push_bind(one.as_str());
                        }
                        Some(many) => {
                            q.push(" AND status IN (");
                            let mut list = q.separated(", ");
                            for s in many {
                                list.push_bind(s.as_str());
                            }
                            q.push(")");
                        }
                        None => {}
                    }
                    if let Some(industry) = &filter.industry {
                        q.push(" AND industry = ").push_bind(industry.clone());
                    }
                    if let Some(tag) = &filter.tag {
                        push_tag_filter(&mut q, tag.clone());
                    }
                    if let Some(text) = &filter.name_contains {
                        q.push(" AND name_folded LIKE ")
                            .push_bind(like_contains(text))
                            .push(" ESCAPE '\\'");
                    }
                    if let Some(after) = &page.after {
                        q.push(" AND customer_id > ").push_bind(after.clone());
                    }
                    q.push(" ORDER BY customer_id LIMIT ")
                        .push_bind(i64::from(page.limit) + 1);
                    let rows: Vec<CustomerRow> = q.build_query_as().fetch_all(self.reads()).await?;
                    let items = rows
                        .into_iter()
                        .map(Customer::try_from)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Page::from_overfetch(items, page.limit, |c| {
                        c.id.to_string()
                    }))
                }

                async fn update_customer(
                    &self,
                    customer_id: &CustomerId,
                    c: &Customer,
                    expected_version: i64,
                    event: NewEvent,
                ) -> Result<Event, StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    update_customer_row(&mut tx, customer_id, c, expected_version).await?;
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn count_customers(&self) -> Result<i64, StoreError> {
                    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
                        .fetch_one(self.reads())
                        .await?)
                }

                async fn get_idempotency(
                    &self,
                    key: &str,
                ) -> Result<Option<IdempotencyRecord>, StoreError> {
                    let row: Option<IdempotencyRow> = sqlx::query_as(
                        "SELECT key, fingerprint, status, body, created_at FROM idempotency_keys \
                         WHERE key = $1",
                    )
                    .bind(key)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(Into::into))
                }
            }
        };
    };
}

pub(crate) use customer_store;
