//! The credentials vault: credentials, their sealed versions, and the events of their changes.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! credential_store {
    ($store:ty) => {
        const _: () = {
            use crate::domain::CustomerId;
            use chrono::{DateTime, Utc};
            use sqlx::types::Json;

            use crate::domain::credential::VersionState;
            use crate::domain::NewEvent;
            use crate::store::credentials::{
                CredentialRecord, CredentialStore, StagedCredential, VersionChange, VersionRecord,
            };
            use crate::store::rows::{
                CredentialRow, StagedRow, VersionRow, CREDENTIAL_COLUMNS, VERSION_COLUMNS,
            };
            use crate::store::StoreError;

            fn records<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
                rows.into_iter().map(T::try_from).collect()
            }

            #[async_trait::async_trait]
            impl CredentialStore for $store {
                async fn credential(
                    &self,
                    customer_id: &CustomerId,
                    credential_type: &str,
                ) -> Result<Option<CredentialRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let row: Option<CredentialRow> = sqlx::query_as(&format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE customer_id = $1 AND credential_type = $2"
                    ))
                    .bind(customer_id)
                    .bind(credential_type)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn credentials(&self, customer_id: &CustomerId) -> Result<Vec<CredentialRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE customer_id = $1 ORDER BY credential_type"
                    ))
                    .bind(customer_id)
                    .fetch_all(self.reads())
                    .await?;
                    records(rows)
                }

                async fn credential_versions(
                    &self,
                    customer_id: &CustomerId,
                    credential_type: &str,
                ) -> Result<Vec<VersionRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let rows: Vec<VersionRow> = sqlx::query_as(&format!(
                        "SELECT {VERSION_COLUMNS} FROM credential_versions \
                         WHERE customer_id = $1 AND credential_type = $2 ORDER BY version"
                    ))
                    .bind(customer_id)
                    .bind(credential_type)
                    .fetch_all(self.reads())
                    .await?;
                    records(rows)
                }

                async fn save_credential(
                    &self,
                    r: &CredentialRecord,
                    new_version: Option<&VersionRecord>,
                    changes: &[VersionChange],
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(&format!(
                        "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (customer_id, credential_type) DO UPDATE SET status = excluded.status, \
                         current_version = excluded.current_version, scopes = excluded.scopes, \
                         last_validated_at = excluded.last_validated_at, validation_error = excluded.validation_error, \
                         expires_at = excluded.expires_at, rotate_by = excluded.rotate_by, updated_at = excluded.updated_at"
                    ))
                    .bind(&r.customer_id)
                    .bind(&r.credential_type)
                    .bind(r.status.as_str())
                    .bind(r.current_version)
                    .bind(r.scopes.as_ref().map(Json))
                    .bind(r.last_validated_at)
                    .bind(&r.validation_error)
                    .bind(r.expires_at)
                    .bind(r.rotate_by)
                    .bind(r.created_at)
                    .bind(r.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(v) = new_version {
                        let sealed = v.sealed.as_ref();
                        let inserted = sqlx::query(&format!(
                            "INSERT INTO credential_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                             ON CONFLICT DO NOTHING"
                        ))
                        .bind(&v.customer_id)
                        .bind(&v.credential_type)
                        .bind(v.version)
                        .bind(v.state.as_str())
                        .bind(&v.fingerprint)
                        .bind(sealed.map(|s| i64::from(s.master_version)))
                        .bind(sealed.map(|s| &s.wrapped_key))
                        .bind(sealed.map(|s| &s.key_nonce))
                        .bind(sealed.map(|s| &s.ciphertext))
                        .bind(sealed.map(|s| &s.nonce))
                        .bind(v.created_at)
                        .bind(&v.created_by)
                        .bind(v.state_changed_at)
                        .execute(&mut *tx)
                        .await?;
                        if inserted.rows_affected() == 0 {
                            return Err(StoreError::CredentialVersionTaken {
                                customer_id: v.customer_id.clone(),
                                credential_type: v.credential_type.clone(),
                                version: v.version,
                            });
                        }
                    }
                    for c in changes {
                        let destroy = c.state == VersionState::Destroyed;
                        sqlx::query(
                            "UPDATE credential_versions SET state = $1, state_changed_at = $2, \
                             master_version = CASE WHEN $3 THEN NULL ELSE master_version END, \
                             wrapped_key = CASE WHEN $4 THEN NULL ELSE wrapped_key END, \
                             key_nonce = CASE WHEN $5 THEN NULL ELSE key_nonce END, \
                             ciphertext = CASE WHEN $6 THEN NULL ELSE ciphertext END, \
                             nonce = CASE WHEN $7 THEN NULL ELSE nonce END \
                             WHERE customer_id = $8 AND credential_type = $9 AND version = $10",
                        )
                        .bind(c.state.as_str())
                        .bind(r.updated_at)
                        .bind(destroy)
                        .bind(destroy)
                        .bind(destroy)
                        .bind(destroy)
                        .bind(destroy)
                        .bind(&r.customer_id)
                        .bind(&r.credential_type)
                        .bind(c.version)
                        .execute(&mut *tx)
                        .await?;
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn destroy_customer_credentials(
                    &self,
                    customer_id: &CustomerId,
                    at: DateTime<Utc>,
                    event: Option<NewEvent>,
                ) -> Result<u64, StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    let destroyed = sqlx::query(
                        "UPDATE credential_versions SET state = 'destroyed', state_changed_at = $1, master_version = NULL, \
                         wrapped_key = NULL, key_nonce = NULL, ciphertext = NULL, nonce = NULL \
                         WHERE customer_id = $2 AND ciphertext IS NOT NULL",
                    )
                    .bind(at)
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    sqlx::query(
                        "UPDATE credential_versions SET state = 'destroyed', state_changed_at = $1 \
                         WHERE customer_id = $2 AND state <> 'destroyed'",
                    )
                    .bind(at)
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE credentials SET status = 'revoked', current_version = NULL, updated_at = $1 \
                         WHERE customer_id = $2",
                    )
                    .bind(at)
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(e) = event {
                        append(&mut tx, e).await?;
                    }
                    tx.commit().await?;
                    Ok(destroyed)
                }

                async fn credentials_due(
                    &self,
                    before: DateTime<Utc>,
                ) -> Result<Vec<CredentialRecord>, StoreError> {
                    let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
                        "SELECT {CREDENTIAL_COLUMNS} FROM credentials \
                         WHERE status <> 'revoked' AND rotate_by IS NOT NULL AND rotate_by <= $1 \
                         ORDER BY rotate_by, customer_id, credential_type"
                    ))
                    .bind(before)
                    .fetch_all(self.reads())
                    .await?;
                    records(rows)
                }

                async fn staged_credentials(
                    &self,
                    customer_id: &CustomerId,
                    run_id: &str,
                ) -> Result<Vec<StagedCredential>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let rows: Vec<StagedRow> = sqlx::query_as(
                        "SELECT credential_type, fingerprint, scopes, master_version, wrapped_key, key_nonce, ciphertext, nonce \
                         FROM staged_credentials WHERE customer_id = $1 AND run_id = $2 ORDER BY credential_type",
                    )
                    .bind(customer_id)
                    .bind(run_id)
                    .fetch_all(self.reads())
                    .await?;
                    records(rows)
                }

                async fn clear_staged_credentials(&self, customer_id: &CustomerId) -> Result<(), StoreError> {
                    let customer_id = customer_id.as_str();
                    sqlx::query("DELETE FROM staged_credentials WHERE customer_id = $1")
                        .bind(customer_id)
                        .execute(self.writes())
                        .await?;
                    Ok(())
                }

                async fn versions_to_rewrap(
                    &self,
                    current: u32,
                    limit: i64,
                ) -> Result<Vec<VersionRecord>, StoreError> {
                    let rows: Vec<VersionRow> = sqlx::query_as(&format!(
                        "SELECT {VERSION_COLUMNS} FROM credential_versions \
                         WHERE master_version IS NOT NULL AND master_version <> $1 \
                         ORDER BY customer_id, credential_type, version LIMIT $2"
                    ))
                    .bind(i64::from(current))
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await?;
                    records(rows)
                }

                async fn store_rewrapped(&self, rewrapped: &[(VersionRecord, u32)]) -> Result<u64, StoreError> {
                    let mut tx = self.write().await?;
                    let mut changed = 0;
                    for (v, from) in rewrapped {
                        let Some(s) = &v.sealed else { continue };
                        changed += sqlx::query(
                            "UPDATE credential_versions SET master_version = $1, wrapped_key = $2, key_nonce = $3 \
                             WHERE customer_id = $4 AND credential_type = $5 AND version = $6 AND master_version = $7",
                        )
                        .bind(i64::from(s.master_version))
                        .bind(&s.wrapped_key)
                        .bind(&s.key_nonce)
                        .bind(&v.customer_id)
                        .bind(&v.credential_type)
                        .bind(v.version)
                        .bind(i64::from(*from))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(changed)
                }
            }
        };
    };
}

pub(crate) use credential_store;
