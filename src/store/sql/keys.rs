//! Integration keys: their rows, and the events of their changes.

/// Implements the store trait for a backend store type (see [`crate::store::sql`] for what the
/// backend provides).
macro_rules! integration_keys {
    ($store:ty) => {
        const _: () = {
            use crate::domain::CustomerId;
            use chrono::{DateTime, Utc};
            use sqlx::types::Json;

            use crate::domain::NewEvent;
            use crate::store::keys::{IntegrationKeyRecord, IntegrationKeyStore};
            use crate::store::rows::{IntegrationKeyRow, KEY_COLUMNS};
            use crate::store::StoreError;

            #[async_trait::async_trait]
            impl IntegrationKeyStore for $store {
                async fn insert_integration_key(
                    &self,
                    k: &IntegrationKeyRecord,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(&format!(
                        "INSERT INTO integration_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    ))
                    .bind(&k.key_id)
                    .bind(&k.customer_id)
                    .bind(&k.name)
                    .bind(Json(&k.scopes))
                    .bind(Json(&k.allowed_adapters))
                    .bind(k.expires_at)
                    .bind(&k.secret_hash)
                    .bind(&k.previous_secret_hash)
                    .bind(k.previous_valid_until)
                    .bind(k.created_at)
                    .bind(&k.created_by)
                    .bind(k.rotated_at)
                    .bind(k.revoked_at)
                    .bind(k.last_used_at)
                    .execute(&mut *tx)
                    .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn integration_key(
                    &self,
                    key_id: &str,
                ) -> Result<Option<IntegrationKeyRecord>, StoreError> {
                    let row: Option<IntegrationKeyRow> = sqlx::query_as(&format!(
                        "SELECT {KEY_COLUMNS} FROM integration_keys WHERE key_id = $1"
                    ))
                    .bind(key_id)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(Into::into))
                }

                async fn integration_keys(
                    &self,
                    customer_id: &CustomerId,
                ) -> Result<Vec<IntegrationKeyRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let rows: Vec<IntegrationKeyRow> = sqlx::query_as(&format!(
                        "SELECT {KEY_COLUMNS} FROM integration_keys WHERE customer_id = $1 ORDER BY created_at, key_id"
                    ))
                    .bind(customer_id)
                    .fetch_all(self.reads())
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn update_integration_key(
                    &self,
                    k: &IntegrationKeyRecord,
                    expected_secret_hash: &str,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let changed = sqlx::query(
                        "UPDATE integration_keys SET name = $1, scopes = $2, allowed_adapters = $3, expires_at = $4, \
                         secret_hash = $5, previous_secret_hash = $6, previous_valid_until = $7, rotated_at = $8, \
                         revoked_at = $9 WHERE key_id = $10 AND secret_hash = $11 AND revoked_at IS NULL",
                    )
                    .bind(&k.name)
                    .bind(Json(&k.scopes))
                    .bind(Json(&k.allowed_adapters))
                    .bind(k.expires_at)
                    .bind(&k.secret_hash)
                    .bind(&k.previous_secret_hash)
                    .bind(k.previous_valid_until)
                    .bind(k.rotated_at)
                    .bind(k.revoked_at)
                    .bind(&k.key_id)
                    .bind(expected_secret_hash)
                    .execute(&mut *tx)
                    .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::KeyChanged(k.key_id.clone()));
                    }
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn touch_integration_key(
                    &self,
                    key_id: &str,
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    sqlx::query("UPDATE integration_keys SET last_used_at = $1 WHERE key_id = $2")
                        .bind(at)
                        .bind(key_id)
                        .execute(self.writes())
                        .await?;
                    Ok(())
                }

                async fn revoke_customer_keys(
                    &self,
                    customer_id: &CustomerId,
                    at: DateTime<Utc>,
                    event: Option<NewEvent>,
                ) -> Result<u64, StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    let n = sqlx::query(
                        "UPDATE integration_keys SET revoked_at = $1, previous_secret_hash = NULL, previous_valid_until = NULL \
                         WHERE customer_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if let Some(e) = event {
                        if n > 0 {
                            append(&mut tx, e).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(n)
                }
            }
        };
    };
}

pub(crate) use integration_keys;
