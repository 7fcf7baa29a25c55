//! The delivery log of transactional email.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! email_store {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use crate::store::emails::{EmailFilter, EmailRecord, EmailStore};
            use crate::store::rows::{EmailRow, EMAIL_COLUMNS};
            use crate::store::StoreError;

            #[async_trait::async_trait]
            impl EmailStore for $store {
                async fn queue_emails(
                    &self,
                    consumer: &str,
                    from: i64,
                    to: i64,
                    emails: &[EmailRecord],
                    forget: &[(crate::domain::CustomerId, Option<String>)],
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    move_cursor(&mut tx, consumer, from, to, at).await?;
                    if !emails.is_empty() {
                        let mut q = sqlx::QueryBuilder::new(format!(
                            "INSERT INTO emails ({EMAIL_COLUMNS}) "
                        ));
                        q.push_values(emails, |mut row, e| {
                            row.push_bind(&e.email_id)
                                .push_bind(e.kind.as_str())
                                .push_bind(&e.recipient)
                                .push_bind(e.customer_id.as_ref().map(|c| c.as_str()))
                                .push_bind(&e.signup_id)
                                .push_bind(e.event_id)
                                .push_bind(e.status.as_str())
                                .push_bind(e.attempts)
                                .push_bind(&e.subject)
                                .push_bind(&e.last_error)
                                .push_bind(&e.message_id)
                                .push_bind(e.created_at)
                                .push_bind(e.updated_at)
                                .push_bind(e.next_attempt_at)
                                .push_bind(e.sent_at)
                                .push_bind(&e.user_id);
                        });
                        q.push(" ON CONFLICT (event_id, kind) DO NOTHING");
                        q.build().execute(&mut *tx).await?;
                    }
                    for (customer, signup) in forget {
                        sqlx::query("DELETE FROM emails WHERE customer_id = $1")
                            .bind(customer.as_str())
                            .execute(&mut *tx)
                            .await?;
                        if let Some(signup) = signup {
                            sqlx::query("DELETE FROM emails WHERE signup_id = $1")
                                .bind(signup)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn insert_email(&self, e: &EmailRecord) -> Result<(), StoreError> {
                    sqlx::query(&format!(
                        "INSERT INTO emails ({EMAIL_COLUMNS}) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                    ))
                    .bind(&e.email_id)
                    .bind(e.kind.as_str())
                    .bind(&e.recipient)
                    .bind(e.customer_id.as_ref().map(|c| c.as_str()))
                    .bind(&e.signup_id)
                    .bind(e.event_id)
                    .bind(e.status.as_str())
                    .bind(e.attempts)
                    .bind(&e.subject)
                    .bind(&e.last_error)
                    .bind(&e.message_id)
                    .bind(e.created_at)
                    .bind(e.updated_at)
                    .bind(e.next_attempt_at)
                    .bind(e.sent_at)
                    .bind(&e.user_id)
                    .execute(self.writes())
                    .await?;
                    Ok(())
                }

                async fn due_emails(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> Result<Vec<EmailRecord>, StoreError> {
                    let rows: Vec<EmailRow> = sqlx::query_as(&format!(
                        "SELECT {EMAIL_COLUMNS} FROM emails \
                         WHERE status = 'queued' AND next_attempt_at <= $1 \
                         ORDER BY next_attempt_at, email_id LIMIT $2"
                    ))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn update_email(&self, e: &EmailRecord) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE emails SET status = $1, attempts = $2, subject = $3, \
                         last_error = $4, message_id = $5, updated_at = $6, \
                         next_attempt_at = $7, sent_at = $8, recipient = $9 WHERE email_id = $10",
                    )
                    .bind(e.status.as_str())
                    .bind(e.attempts)
                    .bind(&e.subject)
                    .bind(&e.last_error)
                    .bind(&e.message_id)
                    .bind(e.updated_at)
                    .bind(e.next_attempt_at)
                    .bind(e.sent_at)
                    .bind(&e.recipient)
                    .bind(&e.email_id)
                    .execute(self.writes())
                    .await?;
                    Ok(())
                }

                async fn emails(
                    &self,
                    filter: &EmailFilter,
                ) -> Result<Vec<EmailRecord>, StoreError> {
                    let mut q = sqlx::QueryBuilder::new(format!(
                        "SELECT {EMAIL_COLUMNS} FROM emails WHERE 1 = 1"
                    ));
                    if let Some(c) = &filter.customer_id {
                        q.push(" AND customer_id = ").push_bind(c.as_str());
                    }
                    if let Some(s) = &filter.signup_id {
                        q.push(" AND signup_id = ").push_bind(s);
                    }
                    if let Some(st) = filter.status {
                        q.push(" AND status = ").push_bind(st.as_str());
                    }
                    if let Some(b) = &filter.before {
                        q.push(" AND email_id < ").push_bind(b);
                    }
                    q.push(" ORDER BY email_id DESC LIMIT ")
                        .push_bind(i64::from(filter.limit));
                    let rows: Vec<EmailRow> = q.build_query_as().fetch_all(self.reads()).await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn email_backlog(&self, now: DateTime<Utc>) -> Result<(i64, i64), StoreError> {
                    let (queued, due): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT count(*), sum(CASE WHEN next_attempt_at <= $1 THEN 1 ELSE 0 END) \
                         FROM emails WHERE status = 'queued'",
                    )
                    .bind(now)
                    .fetch_one(self.reads())
                    .await?;
                    Ok((queued, due.unwrap_or(0)))
                }
            }
        };
    };
}

pub(crate) use email_store;
