//! Signup sessions: their rows, and the events of their changes.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! signup_store {
    ($store:ty) => {
        const _: () = {
            use sqlx::types::Json;

            use crate::domain::NewEvent;
            use crate::store::rows::{SignupRow, SIGNUP_COLUMNS};
            use crate::store::signups::{SignupRecord, SignupStore};
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
                        "INSERT INTO signup_sessions ({SIGNUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
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
                         verify_attempts = $17, codes_requested = $18 \
                         WHERE signup_id = $19 AND version = $20",
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
            }
        };
    };
}

pub(crate) use signup_store;
