//! Operator API tokens.

/// Implements [`AdminTokenStore`](crate::store::AdminTokenStore) for a backend store type (see
/// [`crate::store::sql`] for what the backend provides).
macro_rules! admin_token_store {
    ($store:ty) => {
        const _: () = {
            use crate::domain::{Event, NewEvent};
            use crate::store::rows::TokenRow;
            use crate::store::{AdminTokenRecord, AdminTokenStore, StoreError};

            #[async_trait::async_trait]
            impl AdminTokenStore for $store {
                async fn insert_admin_token(
                    &self,
                    t: &AdminTokenRecord,
                    event: NewEvent,
                ) -> Result<Event, StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(
                        "INSERT INTO admin_tokens (id, name, role, secret_hash, created_at, \
                         revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&t.id)
                    .bind(&t.name)
                    .bind(t.role.as_str())
                    .bind(&t.secret_hash)
                    .bind(t.created_at)
                    .bind(t.revoked_at)
                    .execute(&mut *tx)
                    .await?;
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn get_admin_token(
                    &self,
                    id: &str,
                ) -> Result<Option<AdminTokenRecord>, StoreError> {
                    let row: Option<TokenRow> =
                        sqlx::query_as("SELECT * FROM admin_tokens WHERE id = $1")
                            .bind(id)
                            .fetch_optional(self.reads())
                            .await?;
                    row.map(AdminTokenRecord::try_from).transpose()
                }
            }
        };
    };
}

pub(crate) use admin_token_store;
