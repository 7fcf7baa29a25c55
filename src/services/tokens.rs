//! Admin API tokens: made by the CLI, shown once, stored only as a hash.
//!
//! A token reads `onr_at_<id>_<secret>`: the id finds the record without scanning, and the
//! secret (32 random bytes, hex) is compared by its SHA-256 in constant time. A fast hash is
//! right here: the secret has 256 bits of entropy, so there is nothing to brute-force.

use crate::domain::events::{AdminTokenCreated, EventBody};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Actor, ServiceError, Services};
use crate::domain::{NewEvent, Role};
use crate::store::AdminTokenRecord;

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

impl Services {
    /// Makes an admin token with `role`.
    #[tracing::instrument(skip_all)]
    pub async fn create_admin_token(
        &self,
        actor: &Actor,
        role: Role,
        name: &str,
    ) -> Result<CreatedToken, ServiceError> {
        actor.require(Role::Admin)?;
        let name =
            crate::domain::text::display_text("name", name, 100, true).map_err(|e| e.at("name"))?;
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
    ) -> Result<Actor, ServiceError> {
        const BAD: &str = "the bearer token is not valid";
        let rest = token
            .strip_prefix(PREFIX)
            .ok_or(ServiceError::Unauthenticated(BAD))?;
        let (id, secret) = rest
            .split_once('_')
            .ok_or(ServiceError::Unauthenticated(BAD))?;
        if id.len() != 16 || secret.len() != 64 {
            return Err(ServiceError::Unauthenticated(BAD));
        }
        let record = self
            .store
            .get_admin_token(id)
            .await?
            .ok_or(ServiceError::Unauthenticated(BAD))?;
        let matches: bool = hash_secret(secret)
            .as_bytes()
            .ct_eq(record.secret_hash.as_bytes())
            .into();
        if !matches || record.revoked_at.is_some() {
            return Err(ServiceError::Unauthenticated(BAD));
        }
        Ok(Actor {
            name: format!("token:{id}"),
            role: record.role,
            request_id,
        })
    }
}
