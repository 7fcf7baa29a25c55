//! Admin API tokens: made by the CLI, shown once, stored only as a hash.
//!
//! This capability is in the shape every capability has: its own type ([`AdminTokens`])
//! that owns exactly its dependencies (its store trait and the clock), and its own error enum
//! ([`TokenError`]) with a `kind()` and a stable `code()`. [`super::Services`] holds it;
//! interfaces call it there and turn its errors into a [`super::ServiceError`] for their one
//! mapping.
//!
//! A token reads `onr_at_<id>_<secret>`: the id finds the record without scanning, and the
//! secret (32 random bytes, hex) is compared by its SHA-256 in constant time. A fast hash is
//! right here: the secret has 256 bits of entropy, so there is nothing to brute-force.

use crate::domain::events::{AdminTokenCreated, EventBody};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::{Actor, Clock, ErrorKind};
use crate::domain::{FieldError, NewEvent, Role};
use crate::store::{AdminTokenRecord, AdminTokenStore, StoreError};

const PREFIX: &str = "onr_at_";

/// A freshly made token. `token` is the only copy of the secret.
#[derive(Serialize)]
pub struct CreatedToken {
    /// The whole token, to put in `Authorization: Bearer`.
    pub token: String,
    /// Its public id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"[redacted]")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish()
    }
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why an admin-token operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The input broke a rule (the token's name).
    #[error("{}", super::invalid_fields_message(std::slice::from_ref(.0)))]
    Invalid(FieldError),
    /// The bearer token is malformed, unknown, wrong or revoked (which, is not said).
    #[error("the bearer token is not valid")]
    Unauthenticated,
    /// Only admins make tokens.
    #[error("this action needs the {required} role; the token has {actual}")]
    Forbidden {
        /// The role needed.
        required: Role,
        /// The role held.
        actual: Role,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TokenError::Invalid(_) => ErrorKind::Invalid,
            TokenError::Unauthenticated => ErrorKind::Unauthenticated,
            TokenError::Forbidden { .. } => ErrorKind::Forbidden,
            TokenError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Invalid(_) => "validation_failed",
            TokenError::Unauthenticated => "unauthorized",
            TokenError::Forbidden { .. } => "forbidden",
            TokenError::Store(e) => super::store_code(e),
        }
    }
}

/// The admin-token capability.
#[derive(Clone)]
pub struct AdminTokens {
    store: Arc<dyn AdminTokenStore>,
    clock: Arc<dyn Clock>,
}

impl AdminTokens {
    /// The capability over its store and clock.
    pub fn new(store: Arc<dyn AdminTokenStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Makes an admin token with `role`.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        actor: &Actor,
        role: Role,
        name: &str,
    ) -> Result<CreatedToken, TokenError> {
        if !actor.role.allows(Role::Admin) {
            return Err(TokenError::Forbidden {
                required: Role::Admin,
                actual: actor.role,
            });
        }
        let name = crate::domain::text::display_text("name", name, 100, true)
            .map_err(|e| TokenError::Invalid(e.at("name")))?;
        let name = name.as_str();
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
        let id = hex::encode(id_bytes);
        let secret = hex::encode(secret_bytes);
        let record = AdminTokenRecord {
            id: id.clone(),
            name: name.to_owned(),
            role,
            secret_hash: hash_secret(&secret),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        let event = NewEvent {
            body: EventBody::AdminTokenCreated(AdminTokenCreated {
                token_id: id.clone(),
                name: name.to_owned(),
                role,
            }),
            actor: actor.name.clone(),
            customer_id: None,
            occurred_at: record.created_at,
            request_id: actor.request_id.clone(),
        };
        self.store.insert_admin_token(&record, event).await?;
        Ok(CreatedToken {
            token: format!("{PREFIX}{id}_{secret}"),
            id,
            name: name.to_owned(),
            role,
        })
    }

    /// Checks a bearer token and returns the actor it stands for.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn authenticate(
        &self,
        token: &str,
        request_id: Option<String>,
    ) -> Result<Actor, TokenError> {
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Unauthenticated)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenError::Unauthenticated)?;
        if id.len() != 16 || secret.len() != 64 {
            return Err(TokenError::Unauthenticated);
        }
        let record = self
            .store
            .get_admin_token(id)
            .await?
            .ok_or(TokenError::Unauthenticated)?;
        let matches: bool = hash_secret(secret)
            .as_bytes()
            .ct_eq(record.secret_hash.as_bytes())
            .into();
        if !matches || record.revoked_at.is_some() {
            return Err(TokenError::Unauthenticated);
        }
        Ok(Actor {
            name: format!("token:{id}"),
            role: record.role,
            request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors_keep_their_public_kinds_and_codes_through_service_error() {
        let cases = [
            (
                TokenError::Unauthenticated,
                ErrorKind::Unauthenticated,
                "unauthorized",
            ),
            (
                TokenError::Forbidden {
                    required: Role::Admin,
                    actual: Role::Viewer,
                },
                ErrorKind::Forbidden,
                "forbidden",
            ),
            (
                TokenError::Invalid(
                    crate::domain::Invalid::new("required", "name is required").at("name"),
                ),
                ErrorKind::Invalid,
                "validation_failed",
            ),
        ];
        crate::services::error::assert_classified(cases);
    }
}
