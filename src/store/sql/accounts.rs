//! Customer accounts: users, portal sessions and the login throttle.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! account_store {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use crate::domain::{CustomerId, NewEvent};
            use crate::store::accounts::{
                AccountStore, LoginAttempt, LoginThrottle, PortalSessionRecord, SessionChange,
                UserRecord,
            };
            use crate::store::rows::{PortalSessionRow, UserRow, USER_COLUMNS};
            use crate::store::StoreError;

            #[async_trait::async_trait]
            impl AccountStore for $store {
                async fn insert_user(
                    &self,
                    u: &UserRecord,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let inserted = sqlx::query(&format!(
                        "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                         $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
                    ))
                    .bind(&u.user_id)
                    .bind(u.customer_id.as_str())
                    .bind(&u.email)
                    .bind(&u.email_key)
                    .bind(&u.name)
                    .bind(u.role.as_str())
                    .bind(u.status.as_str())
                    .bind(&u.password_hash)
                    .bind(u.password_change_required)
                    .bind(u.password_expires_at)
                    .bind(u.link.as_ref().map(|l| &l.hash))
                    .bind(u.link.as_ref().map(|l| l.purpose.as_str()))
                    .bind(u.link.as_ref().map(|l| l.expires_at))
                    .bind(u.resets_requested)
                    .bind(u.resets_since)
                    .bind(&u.signup_id)
                    .bind(&u.invited_by)
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .bind(u.last_login_at)
                    .bind(u.version)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            return Err(StoreError::UserEmailTaken(u.email_key.clone()));
                        }
                        other => {
                            other?;
                        }
                    }
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE user_id = $1"
                    ))
                    .bind(user_id)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn user_by_email(
                    &self,
                    email_key: &str,
                ) -> Result<Option<UserRecord>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE email_key = $1"
                    ))
                    .bind(email_key)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn user_by_link(
                    &self,
                    link_hash: &str,
                ) -> Result<Option<UserRecord>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE link_hash = $1"
                    ))
                    .bind(link_hash)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn users_of(
                    &self,
                    customer_id: &CustomerId,
                ) -> Result<Vec<UserRecord>, StoreError> {
                    let rows: Vec<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE customer_id = $1 \
                         ORDER BY created_at, user_id"
                    ))
                    .bind(customer_id.as_str())
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn update_user(
                    &self,
                    u: &UserRecord,
                    expected_version: i64,
                    events: Vec<NewEvent>,
                    sessions: SessionChange,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let changed = sqlx::query(
                        "UPDATE users SET email = $1, name = $2, role = $3, status = $4, \
                         password_hash = $5, password_change_required = $6, \
                         password_expires_at = $7, link_hash = $8, link_purpose = $9, \
                         link_expires_at = $10, resets_requested = $11, resets_since = $12, \
                         updated_at = $13, last_login_at = $14, version = $15 \
                         WHERE user_id = $16 AND version = $17",
                    )
                    .bind(&u.email)
                    .bind(&u.name)
                    .bind(u.role.as_str())
                    .bind(u.status.as_str())
                    .bind(&u.password_hash)
                    .bind(u.password_change_required)
                    .bind(u.password_expires_at)
                    .bind(u.link.as_ref().map(|l| &l.hash))
                    .bind(u.link.as_ref().map(|l| l.purpose.as_str()))
                    .bind(u.link.as_ref().map(|l| l.expires_at))
                    .bind(u.resets_requested)
                    .bind(u.resets_since)
                    .bind(u.updated_at)
                    .bind(u.last_login_at)
                    .bind(u.version)
                    .bind(&u.user_id)
                    .bind(expected_version)
                    .execute(&mut *tx)
                    .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::UserChanged(u.user_id.clone()));
                    }
                    match sessions {
                        SessionChange::Keep => {}
                        SessionChange::Start(s) => {
                            sqlx::query(
                                "INSERT INTO portal_sessions (token_hash, user_id, customer_id, \
                                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(&s.token_hash)
                            .bind(&s.user_id)
                            .bind(s.customer_id.as_str())
                            .bind(s.created_at)
                            .bind(s.expires_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        SessionChange::EndAllBut(keep) => {
                            sqlx::query(
                                "DELETE FROM portal_sessions WHERE user_id = $1 AND token_hash <> $2",
                            )
                            .bind(&u.user_id)
                            .bind(&keep)
                            .execute(&mut *tx)
                            .await?;
                        }
                        SessionChange::EndAll => {
                            sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1")
                                .bind(&u.user_id)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn delete_user(
                    &self,
                    u: &UserRecord,
                    expected_version: i64,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    if u.role == crate::domain::account::UserRole::Owner
                        && u.status == crate::domain::account::UserStatus::Active
                    {
                        // Takes the customer's active owners' rows (row locks on PostgreSQL; one
                        // writer on SQLite), then counts them as they stand after any removal
                        // that held them first.
                        sqlx::query(
                            "UPDATE users SET version = version WHERE customer_id = $1 \
                             AND role = 'owner' AND status = 'active'",
                        )
                        .bind(u.customer_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                        let (owners,): (i64,) = sqlx::query_as(
                            "SELECT COUNT(*) FROM users WHERE customer_id = $1 \
                             AND role = 'owner' AND status = 'active'",
                        )
                        .bind(u.customer_id.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                        if owners <= 1 {
                            return Err(StoreError::LastOwner(u.user_id.clone()));
                        }
                    }
                    let gone = sqlx::query("DELETE FROM users WHERE user_id = $1 AND version = $2")
                        .bind(&u.user_id)
                        .bind(expected_version)
                        .execute(&mut *tx)
                        .await?;
                    if gone.rows_affected() == 0 {
                        return Err(StoreError::UserChanged(u.user_id.clone()));
                    }
                    sqlx::query("DELETE FROM portal_sessions WHERE user_id = $1")
                        .bind(&u.user_id)
                        .execute(&mut *tx)
                        .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn offboard_users(
                    &self,
                    customer_id: &CustomerId,
                    delete_users: bool,
                    events: Vec<NewEvent>,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query("DELETE FROM portal_sessions WHERE customer_id = $1")
                        .bind(customer_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let mut gone = 0;
                    if delete_users {
                        gone = sqlx::query("DELETE FROM users WHERE customer_id = $1")
                            .bind(customer_id.as_str())
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(gone)
                }

                async fn portal_session(
                    &self,
                    token_hash: &str,
                    now: DateTime<Utc>,
                ) -> Result<Option<PortalSessionRecord>, StoreError> {
                    let row: Option<PortalSessionRow> = sqlx::query_as(
                        "SELECT token_hash, user_id, customer_id, created_at, expires_at \
                         FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn end_portal_session(&self, token_hash: &str) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM portal_sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(self.writes())
                        .await?;
                    Ok(())
                }

                async fn login_throttle(
                    &self,
                    key: &str,
                ) -> Result<Option<LoginThrottle>, StoreError> {
                    let row: Option<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(
                        "SELECT failures, locked_until FROM login_throttle WHERE login_key = $1",
                    )
                    .bind(key)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(|(failures, locked_until)| LoginThrottle {
                        failures,
                        locked_until,
                    }))
                }

                async fn begin_login_attempt(
                    &self,
                    key: &str,
                    now: DateTime<Utc>,
                    lock: &(dyn Fn(i64) -> Option<DateTime<Utc>> + Send + Sync),
                ) -> Result<LoginAttempt, StoreError> {
                    let mut tx = self.write().await?;
                    // The upsert takes the key's row (locked to this transaction on PostgreSQL;
                    // SQLite has one writer), so attempts for one key are counted one by one.
                    let (failures, locked_until): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
                        "INSERT INTO login_throttle (login_key, failures, locked_until, updated_at) \
                         VALUES ($1, 0, NULL, $2) ON CONFLICT (login_key) DO UPDATE \
                         SET updated_at = $2 RETURNING failures, locked_until",
                    )
                    .bind(key)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    if let Some(until) = locked_until.filter(|until| *until > now) {
                        tx.commit().await?;
                        return Ok(LoginAttempt::Locked(until));
                    }
                    let failures = failures + 1;
                    let locked_until = lock(failures);
                    sqlx::query(
                        "UPDATE login_throttle SET failures = $1, locked_until = $2 WHERE login_key = $3",
                    )
                    .bind(failures)
                    .bind(locked_until)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(LoginAttempt::Allowed {
                        failures,
                        locked_until,
                    })
                }

                async fn append_user_event(&self, event: NewEvent) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM login_throttle WHERE login_key = $1")
                        .bind(key)
                        .execute(self.writes())
                        .await?;
                    Ok(())
                }

                async fn lapsed_invitations(
                    &self,
                    now: DateTime<Utc>,
                    unsent_before: DateTime<Utc>,
                    limit: i64,
                ) -> Result<Vec<UserRecord>, StoreError> {
                    let rows: Vec<UserRow> = sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE status = 'invited' \
                         AND (link_expires_at <= $1 OR (link_hash IS NULL AND created_at <= $2)) \
                         ORDER BY created_at, user_id LIMIT $3"
                    ))
                    .bind(now)
                    .bind(unsent_before)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn purge_account_leftovers(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> Result<u64, StoreError> {
                    let sessions = sqlx::query(
                        "DELETE FROM portal_sessions WHERE token_hash IN (SELECT token_hash \
                         FROM portal_sessions WHERE expires_at <= $1 LIMIT $2)",
                    )
                    .bind(now)
                    .bind(limit)
                    .execute(self.writes())
                    .await?;
                    let stale = now - chrono::Duration::days(1);
                    let throttles = sqlx::query(
                        "DELETE FROM login_throttle WHERE login_key IN (SELECT login_key \
                         FROM login_throttle WHERE updated_at <= $1 \
                         AND (locked_until IS NULL OR locked_until <= $2) LIMIT $3)",
                    )
                    .bind(stale)
                    .bind(now)
                    .bind(limit)
                    .execute(self.writes())
                    .await?;
                    Ok(sessions.rows_affected() + throttles.rows_affected())
                }
            }
        };
    };
}
pub(crate) use account_store;
