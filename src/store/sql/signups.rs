//! Signup sessions: their rows, and the events of their changes.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! signup_store {
    ($store:ty) => {
        const _: () = {
            use sqlx::types::Json;

            use crate::domain::NewEvent;
            use crate::domain::signup::SignupStatus;
            use crate::store::rows::{DomainListRow, SignupRow, SIGNUP_COLUMNS};
            use crate::store::signups::{
                FunnelCount, NameMatch, SignupFilter, SignupRecord, SignupStore, StoredDomainList,
            };
            use crate::store::StoreError;

            #[async_trait::async_trait]
            impl SignupStore for $store {
                async fn insert_signup(
                    &self,
                    s: &SignupRecord,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(&format!(
                        "INSERT INTO signup_sessions ({SIGNUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
                    ))
                    .bind(&s.signup_id)
                    .bind(&s.email)
                    .bind(&s.company_name)
                    .bind(&s.name_folded)
                    .bind(&s.template)
                    .bind(s.status.as_str())
                    .bind(&s.current_step)
                    .bind(&s.furthest_step)
                    .bind(Json(&s.answers))
                    .bind(&s.resume_token_hash)
                    .bind(s.verified_at)
                    .bind(s.created_at)
                    .bind(s.updated_at)
                    .bind(s.expires_at)
                    .bind(s.version)
                    .bind(s.verification.as_ref().map(|v| &v.code_hash))
                    .bind(s.verification.as_ref().map(|v| &v.link_hash))
                    .bind(s.verification.as_ref().map(|v| v.expires_at))
                    .bind(s.verification.as_ref().map_or(0, |v| v.attempts))
                    .bind(s.codes_requested)
                    .bind(s.failed_tries)
                    .bind(&s.mailbox_key)
                    .bind(s.review.as_ref().map(|r| i64::from(r.score)))
                    .bind(s.review.as_ref().map(|r| Json(&r.reasons)))
                    .bind(s.decision.as_ref().map(|d| &d.by))
                    .bind(s.decision.as_ref().map(|d| d.at))
                    .bind(s.decision.as_ref().and_then(|d| d.note.as_ref()))
                    .bind(
                        s.decision
                            .as_ref()
                            .and_then(|d| d.customer_id.as_ref().map(|c| c.as_str())),
                    )
                    .execute(&mut *tx)
                    .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn signup(&self, signup_id: &str) -> Result<Option<SignupRecord>, StoreError> {
                    let row: Option<SignupRow> = sqlx::query_as(&format!(
                        "SELECT {SIGNUP_COLUMNS} FROM signup_sessions WHERE signup_id = $1"
                    ))
                    .bind(signup_id)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn idle_signups(
                    &self,
                    now: chrono::DateTime<chrono::Utc>,
                    limit: i64,
                ) -> Result<Vec<SignupRecord>, StoreError> {
                    let rows: Vec<SignupRow> = sqlx::query_as(&format!(
                        "SELECT {SIGNUP_COLUMNS} FROM signup_sessions \
                         WHERE status = 'in_progress' AND expires_at <= $1 \
                         ORDER BY expires_at, signup_id LIMIT $2"
                    ))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn update_signup(
                    &self,
                    s: &SignupRecord,
                    expected_version: i64,
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let changed = sqlx::query(
                        "UPDATE signup_sessions SET email = $1, company_name = $2, name_folded = $3, template = $4, \
                         status = $5, current_step = $6, furthest_step = $7, answers = $8, resume_token_hash = $9, \
                         verified_at = $10, updated_at = $11, expires_at = $12, version = $13, \
                         verify_code_hash = $14, verify_link_hash = $15, verify_expires_at = $16, \
                         verify_attempts = $17, codes_requested = $18, failed_tries = $19, \
                         mailbox_key = $20, risk_score = $21, risk_reasons = $22, decided_by = $23, \
                         decided_at = $24, decision_note = $25, customer_id = $26 \
                         WHERE signup_id = $27 AND version = $28",
                    )
                    .bind(&s.email)
                    .bind(&s.company_name)
                    .bind(&s.name_folded)
                    .bind(&s.template)
                    .bind(s.status.as_str())
                    .bind(&s.current_step)
                    .bind(&s.furthest_step)
                    .bind(Json(&s.answers))
                    .bind(&s.resume_token_hash)
                    .bind(s.verified_at)
                    .bind(s.updated_at)
                    .bind(s.expires_at)
                    .bind(s.version)
                    .bind(s.verification.as_ref().map(|v| &v.code_hash))
                    .bind(s.verification.as_ref().map(|v| &v.link_hash))
                    .bind(s.verification.as_ref().map(|v| v.expires_at))
                    .bind(s.verification.as_ref().map_or(0, |v| v.attempts))
                    .bind(s.codes_requested)
                    .bind(s.failed_tries)
                    .bind(&s.mailbox_key)
                    .bind(s.review.as_ref().map(|r| i64::from(r.score)))
                    .bind(s.review.as_ref().map(|r| Json(&r.reasons)))
                    .bind(s.decision.as_ref().map(|d| &d.by))
                    .bind(s.decision.as_ref().map(|d| d.at))
                    .bind(s.decision.as_ref().and_then(|d| d.note.as_ref()))
                    .bind(
                        s.decision
                            .as_ref()
                            .and_then(|d| d.customer_id.as_ref().map(|c| c.as_str())),
                    )
                    .bind(&s.signup_id)
                    .bind(expected_version)
                    .execute(&mut *tx)
                    .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::SignupChanged(s.signup_id.clone()));
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn purge_signups(
                    &self,
                    before: chrono::DateTime<chrono::Utc>,
                    limit: i64,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.write().await?;
                    let ids: Vec<(String,)> = sqlx::query_as(
                        "SELECT signup_id FROM signup_sessions \
                         WHERE status IN ('abandoned', 'expired', 'rejected') AND updated_at <= $1 \
                         ORDER BY updated_at, signup_id LIMIT $2",
                    )
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id,) in &ids {
                        sqlx::query("DELETE FROM emails WHERE signup_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("DELETE FROM signup_sessions WHERE signup_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(ids.len() as u64)
                }

                async fn names_starting(
                    &self,
                    prefix: &str,
                    now: chrono::DateTime<chrono::Utc>,
                    except: &str,
                    limit: i64,
                ) -> Result<Vec<NameMatch>, StoreError> {
                    // Every folded name starting with `prefix` sorts from it to it followed by
                    // the highest code point (both engines compare these columns bytewise).
                    let upper = format!("{prefix}\u{10FFFF}");
                    let customers: Vec<(String, String)> = sqlx::query_as(
                        "SELECT customer_id, customer_name FROM customers \
                         WHERE name_folded >= $1 AND name_folded < $2 AND status <> 'deleted' \
                         ORDER BY name_folded LIMIT $3",
                    )
                    .bind(prefix)
                    .bind(&upper)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    let signups: Vec<(String, String)> = sqlx::query_as(
                        "SELECT signup_id, company_name FROM signup_sessions \
                         WHERE name_folded >= $1 AND name_folded < $2 AND signup_id <> $3 \
                         AND (status = 'review' OR (status = 'in_progress' AND expires_at > $4)) \
                         ORDER BY name_folded LIMIT $5",
                    )
                    .bind(prefix)
                    .bind(&upper)
                    .bind(except)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    Ok(customers
                        .into_iter()
                        .map(|(id, name)| NameMatch { kind: "customer", id, name })
                        .chain(signups.into_iter().map(|(id, name)| NameMatch {
                            kind: "signup",
                            id,
                            name,
                        }))
                        .collect())
                }

                async fn address_activity(
                    &self,
                    mailbox_key: &str,
                    since: chrono::DateTime<chrono::Utc>,
                ) -> Result<(i64, i64), StoreError> {
                    let (codes, failed): (Option<i64>, Option<i64>) = sqlx::query_as(
                        "SELECT CAST(sum(codes_requested) AS BIGINT), CAST(sum(failed_tries) AS BIGINT) \
                         FROM signup_sessions \
                         WHERE mailbox_key = $1 AND updated_at >= $2",
                    )
                    .bind(mailbox_key)
                    .bind(since)
                    .fetch_one(self.reads())
                    .await?;
                    Ok((codes.unwrap_or(0), failed.unwrap_or(0)))
                }

                async fn contact_email_taken(&self, email: &str) -> Result<bool, StoreError> {
                    let found: Option<String> = sqlx::query_scalar(
                        "SELECT customer_id FROM customers WHERE lower(contact_email) = lower($1) \
                         AND status <> 'deleted' LIMIT 1",
                    )
                    .bind(email)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(found.is_some())
                }

                async fn domain_list(
                    &self,
                    name: &str,
                ) -> Result<Option<StoredDomainList>, StoreError> {
                    let row: Option<DomainListRow> = sqlx::query_as(
                        "SELECT name, source, list_date, entries, domains, updated_at \
                         FROM domain_lists WHERE name = $1",
                    )
                    .bind(name)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn save_domain_list(
                    &self,
                    l: &StoredDomainList,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(
                        "INSERT INTO domain_lists (name, source, list_date, entries, domains, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET \
                         source = excluded.source, list_date = excluded.list_date, \
                         entries = excluded.entries, domains = excluded.domains, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&l.name)
                    .bind(&l.source)
                    .bind(&l.list_date)
                    .bind(l.entries)
                    .bind(&l.domains)
                    .bind(l.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn funnel_counts(
                    &self,
                    since: chrono::DateTime<chrono::Utc>,
                    now: chrono::DateTime<chrono::Utc>,
                ) -> Result<Vec<FunnelCount>, StoreError> {
                    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                        "SELECT furthest_step, \
                         CASE WHEN status = 'in_progress' AND expires_at <= $1 THEN 'expired' ELSE status END, \
                         CAST(CASE WHEN current_step IS NULL THEN 1 ELSE 0 END AS BIGINT), count(*) \
                         FROM signup_sessions WHERE created_at >= $2 GROUP BY 1, 2, 3",
                    )
                    .bind(now)
                    .bind(since)
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter()
                        .map(|(furthest_step, status, done, signups)| {
                            let status = SignupStatus::parse(&status).ok_or_else(|| {
                                StoreError::Corrupt(format!("a signup has an unknown status '{status}'"))
                            })?;
                            Ok(FunnelCount {
                                furthest_step,
                                status,
                                all_answered: done == 1,
                                signups,
                            })
                        })
                        .collect()
                }

                async fn signups(
                    &self,
                    filter: &SignupFilter,
                ) -> Result<Vec<SignupRecord>, StoreError> {
                    let mut q = sqlx::QueryBuilder::new(format!(
                        "SELECT {SIGNUP_COLUMNS} FROM signup_sessions WHERE 1 = 1"
                    ));
                    if let Some(st) = filter.status {
                        q.push(" AND status = ").push_bind(st.as_str());
                    }
                    if let Some((at, id)) = &filter.after {
                        q.push(" AND (updated_at > ")
                            .push_bind(*at)
                            .push(" OR (updated_at = ")
                            .push_bind(*at)
                            .push(" AND signup_id > ")
                            .push_bind(id)
                            .push("))");
                    }
                    q.push(" ORDER BY updated_at, signup_id LIMIT ")
                        .push_bind(filter.limit);
                    let rows: Vec<SignupRow> = q.build_query_as().fetch_all(self.reads()).await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }
            }
        };
    };
}

pub(crate) use signup_store;
