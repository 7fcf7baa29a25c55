//! Integration keys (the seed's `POST /api/admin/tenants/:id/integration-keys`): issued per
//! customer with scopes, allowed adapters and an optional expiry; the secret is shown once and
//! stored only as an HMAC-SHA256 under `KEY_HASH_SECRET`; rotation with an optional grace period
//! for the old secret; revocation that takes effect at once.
//!
//! The capability is [`IntegrationKeys`]: it owns its store, the customer registry it checks
//! keys against, the clock and `KEY_HASH_SECRET`, and refuses with a [`KeyError`]. Token
//! exchange (`tenant_tokens`) is part of it.

use crate::domain::events::{
    EventBody, IntegrationKeyIssued, IntegrationKeyRevoked, IntegrationKeyRotated,
    IntegrationKeysRevoked, KeyRef,
};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use super::keyring::HashSecret;
use super::tenant_tokens::TenantPrincipal;
use super::{invalid_fields_message, Actor, Clock, ErrorKind, Forbidden};
use crate::domain::integration_key::{format_key, generate, parse};
use crate::domain::{Customer, CustomerId, CustomerStatus, FieldError, Invalid, NewEvent, Role};
use crate::product::Product;
use crate::store::keys::{IntegrationKeyRecord, IntegrationKeyStore};
use crate::store::{CustomerStore, StoreError};

/// The longest grace period a rotation may give the old secret.
pub const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;
/// How often `last_used_at` is written at most.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// A key to issue.
#[derive(Debug, Clone, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyRequest {
    /// A name for people (`Production CLI`).
    pub name: String,
    /// What its tokens may do, `area:action` (`ship:upload`, `jobs:read`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The adapters its tokens may use (the product's, such as `conversions-csv`).
    #[serde(default)]
    pub allowed_adapters: Vec<String>,
    /// When it stops working; never when null.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A rotation.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old secret keeps working, in seconds (0 to 604800; default 0: at once).
    #[serde(default, deserialize_with = "whole_number")]
    pub grace_seconds: u32,
}

/// A whole number, also when written with a zero fraction (`60.0`), as JSON Schema's
/// `integer` allows.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number of seconds, found {n}"
        )))
    }
}

/// An integration key, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// The public key id (also inside the key).
    pub key_id: String,
    /// The customer.
    pub customer_id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its adapters.
    pub allowed_adapters: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Who issued it.
    pub created_by: String,
    /// Last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key with its secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct IssuedKey {
    /// The whole key, for `x-api-key`. Store it now: it is not shown again.
    pub secret: String,
    /// The key.
    pub key: KeyView,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedKey({}, [redacted])", self.key.key_id)
    }
}

/// A key that checked out: whose it is and what it may do.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// The customer.
    pub customer_id: String,
    /// The key.
    pub key_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its adapters.
    pub allowed_adapters: Vec<String>,
    /// Which of the key's secrets it was: [`secret_tag`] of the matched hash.
    pub secret_tag: String,
}

/// A short, non-secret name for one secret of a key (64 bits of SHA-256 over its stored HMAC),
/// carried in access tokens so a rotation can tell a token from the current secret from an
/// older one.
pub fn secret_tag(secret_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(secret_hash.as_bytes())[..8])
}

fn check_grace(req: &RotateKeyRequest) -> Result<(), KeyError> {
    if req.grace_seconds > MAX_GRACE_SECONDS {
        return Err(KeyError::Invalid(vec![Invalid::new(
            "out_of_range",
            format!("grace_seconds must be from 0 to {MAX_GRACE_SECONDS}"),
        )
        .at("grace_seconds")]));
    }
    Ok(())
}

fn check_labels(field: &str, values: &[String], scope: bool, errors: &mut Vec<FieldError>) {
    if values.len() > 50 {
        errors.push(Invalid::new("too_many", format!("at most 50 {field}")).at(field));
    }
    for (i, v) in values.iter().enumerate() {
        let ok = if scope {
            v.split_once(':').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')
                    && b.bytes()
                        .all(|c| c.is_ascii_lowercase() || c == b'_' || c == b'*')
            })
        } else {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        };
        if !ok {
            let rule = if scope {
                "a scope is area:action in lowercase letters and '_' (ship:upload)"
            } else {
                "an adapter is 1 to 64 lowercase letters, digits, '-' and '_'"
            };
            errors.push(Invalid::new("invalid_format", rule).at(format!("{field}[{i}]")));
        }
        if values[..i].contains(v) {
            errors.push(
                Invalid::new("duplicate", format!("'{v}' is listed twice"))
                    .at(format!("{field}[{i}]")),
            );
        }
    }
}

/// Why an integration-key operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// A presented key that does not authenticate (which check failed is not said).
    #[error("the integration key is missing, malformed, unknown, revoked or expired")]
    BadKey,
    /// A presented access token that does not authenticate.
    #[error("the access token is missing, malformed, expired or not signed by this server")]
    BadToken,
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A customer's token lacks a scope.
    #[error("this action needs the '{0}' scope, which the token does not have")]
    ScopeMissing(String),
    /// No such customer.
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// A deleted customer gets no keys.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    CustomerDeleted(String),
    /// The customer has no such key.
    #[error("customer '{customer_id}' has no integration key '{key_id}'")]
    NotFound {
        /// The customer.
        customer_id: String,
        /// The key asked for.
        key_id: String,
    },
    /// The key was revoked.
    #[error("integration key '{0}' is revoked")]
    Revoked(String),
    /// The key was rotated or revoked after the token or read this request relies on.
    #[error("integration key '{0}' was rotated or revoked after this request's token was issued; exchange the current key and retry")]
    Changed(String),
    /// Something that should not fail did (a token that cannot be signed).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::KeyChanged(key_id) => KeyError::Changed(key_id),
            other => KeyError::Store(other),
        }
    }
}

impl KeyError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KeyError::Invalid(_) => ErrorKind::Invalid,
            KeyError::BadKey | KeyError::BadToken => ErrorKind::Unauthenticated,
            KeyError::Forbidden(_) | KeyError::ScopeMissing(_) => ErrorKind::Forbidden,
            KeyError::CustomerNotFound(_) | KeyError::NotFound { .. } => ErrorKind::NotFound,
            KeyError::CustomerDeleted(_) | KeyError::Revoked(_) | KeyError::Changed(_) => {
                ErrorKind::Conflict
            }
            KeyError::Internal(_) => ErrorKind::Internal,
            KeyError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::Invalid(_) => "validation_failed",
            KeyError::BadKey | KeyError::BadToken => "unauthorized",
            KeyError::Forbidden(_) => "forbidden",
            KeyError::ScopeMissing(_) => "insufficient_scope",
            KeyError::CustomerNotFound(_) => "customer_not_found",
            KeyError::CustomerDeleted(_) => "customer_deleted",
            KeyError::NotFound { .. } => "key_not_found",
            KeyError::Revoked(_) => "key_revoked",
            KeyError::Changed(_) => "key_changed",
            KeyError::Internal(_) => "internal_error",
            KeyError::Store(e) => super::store_code(e),
        }
    }
}

/// The integration-key capability: issuing, listing, rotating, revoking and verifying keys, and
/// exchanging them for access tokens.
#[derive(Clone)]
pub struct IntegrationKeys {
    keys: Arc<dyn IntegrationKeyStore>,
    customers: Arc<dyn CustomerStore>,
    product: Arc<Product>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) hash: Arc<HashSecret>,
}

impl IntegrationKeys {
    /// The capability over its store, the customer registry, the product (its adapters), the
    /// clock and the secret key secrets are stored under.
    pub fn new(
        keys: Arc<dyn IntegrationKeyStore>,
        customers: Arc<dyn CustomerStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        hash: Arc<HashSecret>,
    ) -> Self {
        Self {
            keys,
            customers,
            product,
            clock,
            hash,
        }
    }

    pub(super) async fn customer(&self, customer_id: &str) -> Result<Customer, KeyError> {
        self.customers
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| KeyError::CustomerNotFound(customer_id.to_owned()))
    }

    fn key_view(&self, k: &IntegrationKeyRecord) -> KeyView {
        let now = self.clock.now();
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            key_id: k.key_id.clone(),
            customer_id: k.customer_id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            allowed_adapters: k.allowed_adapters.clone(),
            status: status.into(),
            expires_at: k.expires_at,
            created_at: k.created_at,
            created_by: k.created_by.clone(),
            rotated_at: k.rotated_at,
            previous_valid_until: k.previous_valid_until.filter(|u| *u > now),
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }

    fn key_event(
        &self,
        actor: &Actor,
        k: &IntegrationKeyRecord,
        body: impl FnOnce(KeyRef) -> EventBody,
    ) -> NewEvent {
        NewEvent {
            body: body(KeyRef {
                key_id: k.key_id.clone(),
                name: k.name.clone(),
                scopes: k.scopes.clone(),
                allowed_adapters: k.allowed_adapters.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(CustomerId::from_trusted(k.customer_id.clone())),
            occurred_at: self.clock.now(),
            request_id: actor.request_id.clone(),
        }
    }

    async fn customer_key(
        &self,
        customer_id: &str,
        key_id: &str,
    ) -> Result<IntegrationKeyRecord, KeyError> {
        self.customer(customer_id).await?;
        match self.keys.integration_key(key_id).await? {
            Some(k) if k.customer_id == customer_id => Ok(k),
            _ => Err(KeyError::NotFound {
                customer_id: customer_id.to_owned(),
                key_id: key_id.to_owned(),
            }),
        }
    }

    /// Issues a key; the answer holds its secret, shown this once.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn issue(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &IssueKeyRequest,
    ) -> Result<IssuedKey, KeyError> {
        actor.may(Role::Operator)?;
        let mut errors = Vec::new();
        let name = match crate::domain::text::display_text("name", &req.name, 100, true) {
            Ok(name) => name,
            Err(e) => {
                errors.push(e.at("name"));
                String::new()
            }
        };
        check_labels("scopes", &req.scopes, true, &mut errors);
        check_labels(
            "allowed_adapters",
            &req.allowed_adapters,
            false,
            &mut errors,
        );
        for (i, adapter) in req.allowed_adapters.iter().enumerate() {
            if !self.product.adapters.contains_key(adapter) {
                errors.push(
                    Invalid::new(
                        "unknown_adapter",
                        format!(
                            "'{}' is not one of the product's adapters",
                            crate::domain::text::shorten(adapter, 64)
                        ),
                    )
                    .at(format!("allowed_adapters[{i}]")),
                );
            }
        }
        let now = self.clock.now();
        if req.expires_at.is_some_and(|e| e <= now) {
            errors.push(
                Invalid::new("in_the_past", "expires_at must be in the future").at("expires_at"),
            );
        }
        if !errors.is_empty() {
            return Err(KeyError::Invalid(errors));
        }
        let customer = self.customer(customer_id).await?;
        if customer.status == CustomerStatus::Deleted {
            return Err(KeyError::CustomerDeleted(customer_id.to_owned()));
        }
        let (key_id, secret) = generate(&mut OsRng);
        let record = IntegrationKeyRecord {
            key_id: key_id.clone(),
            customer_id: customer_id.to_owned(),
            name: name.to_owned(),
            scopes: req.scopes.clone(),
            allowed_adapters: req.allowed_adapters.clone(),
            expires_at: req.expires_at,
            secret_hash: self.hash.hash(&secret),
            previous_secret_hash: None,
            previous_valid_until: None,
            created_at: now,
            created_by: actor.name.clone(),
            rotated_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        let event = self.key_event(actor, &record, |key| {
            EventBody::IntegrationKeyIssued(IntegrationKeyIssued {
                key,
                expires_at: req.expires_at,
            })
        });
        self.keys.insert_integration_key(&record, event).await?;
        Ok(IssuedKey {
            secret: format_key(&key_id, &secret),
            key: self.key_view(&record),
        })
    }

    /// A customer's keys, without secrets.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn list(&self, _actor: &Actor, customer_id: &str) -> Result<Vec<KeyView>, KeyError> {
        let customer = self.customer(customer_id).await?;
        let keys = self.keys.integration_keys(&customer.id).await?;
        Ok(keys.iter().map(|k| self.key_view(k)).collect())
    }

    /// Gives a key a new secret; the old one keeps working for `grace_seconds`.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn rotate(
        &self,
        actor: &Actor,
        customer_id: &str,
        key_id: &str,
        req: &RotateKeyRequest,
    ) -> Result<IssuedKey, KeyError> {
        actor.may(Role::Operator)?;
        check_grace(req)?;
        let k = self.customer_key(customer_id, key_id).await?;
        self.replace_secret(actor, k, req).await
    }

    /// A customer rotating the key behind its own token (scope `keys:rotate`). Only a token
    /// exchanged from the key's current secret may do it, so a replayed rotation (the same
    /// request, or any made with a token from before the last rotation) is refused with
    /// `key_changed` and changes nothing.
    #[tracing::instrument(skip_all)]
    pub async fn rotate_own(
        &self,
        p: &TenantPrincipal,
        req: &RotateKeyRequest,
    ) -> Result<IssuedKey, KeyError> {
        if !p.scopes.iter().any(|s| s == "keys:rotate") {
            return Err(KeyError::ScopeMissing("keys:rotate".into()));
        }
        check_grace(req)?;
        let k = self.customer_key(&p.customer_id, &p.key_id).await?;
        if k.revoked_at.is_some() {
            return Err(KeyError::Revoked(k.key_id));
        }
        if secret_tag(&k.secret_hash) != p.key_version {
            return Err(KeyError::Changed(k.key_id));
        }
        self.replace_secret(&p.actor(), k, req).await
    }

    async fn replace_secret(
        &self,
        actor: &Actor,
        mut k: IntegrationKeyRecord,
        req: &RotateKeyRequest,
    ) -> Result<IssuedKey, KeyError> {
        let now = self.clock.now();
        if k.revoked_at.is_some() {
            return Err(KeyError::Revoked(k.key_id));
        }
        let (_, secret) = generate(&mut OsRng);
        let expected = k.secret_hash.clone();
        // Only the secret being replaced gets a grace period: a second rotation ends the first's.
        k.previous_secret_hash = (req.grace_seconds > 0).then(|| k.secret_hash.clone());
        k.previous_valid_until =
            (req.grace_seconds > 0).then(|| now + Duration::seconds(i64::from(req.grace_seconds)));
        k.secret_hash = self.hash.hash(&secret);
        k.rotated_at = Some(now);
        let event = self.key_event(actor, &k, |key| {
            EventBody::IntegrationKeyRotated(IntegrationKeyRotated {
                key,
                grace_seconds: req.grace_seconds,
            })
        });
        self.keys
            .update_integration_key(&k, &expected, event)
            .await?;
        Ok(IssuedKey {
            secret: format_key(&k.key_id, &secret),
            key: self.key_view(&k),
        })
    }

    /// Revokes a key: it stops working at once.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn revoke(
        &self,
        actor: &Actor,
        customer_id: &str,
        key_id: &str,
    ) -> Result<KeyView, KeyError> {
        actor.may(Role::Operator)?;
        // A rotation that lands between the read and the write makes the write miss; read again.
        for _ in 0..3 {
            let mut k = self.customer_key(customer_id, key_id).await?;
            if k.revoked_at.is_some() {
                return Ok(self.key_view(&k));
            }
            let expected = k.secret_hash.clone();
            k.revoked_at = Some(self.clock.now());
            k.previous_secret_hash = None;
            k.previous_valid_until = None;
            let event = self.key_event(actor, &k, |key| {
                EventBody::IntegrationKeyRevoked(IntegrationKeyRevoked { key })
            });
            match self.keys.update_integration_key(&k, &expected, event).await {
                Ok(()) => return Ok(self.key_view(&k)),
                Err(StoreError::KeyChanged(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyError::Changed(key_id.to_owned()))
    }

    /// Checks a presented key: well-formed with a good checksum (no look-up otherwise), known,
    /// its secret matching in constant time, not revoked, not expired. Every refusal is the same
    /// to the caller.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn verify(&self, presented: &str) -> Result<VerifiedKey, KeyError> {
        let Some(parsed) = parse(presented.trim()) else {
            return Err(KeyError::BadKey);
        };
        let Some(k) = self.keys.integration_key(&parsed.key_id).await? else {
            return Err(KeyError::BadKey);
        };
        let now = self.clock.now();
        let current = self.hash.verify(&parsed.secret, &k.secret_hash);
        let previous = k
            .previous_secret_hash
            .as_deref()
            .is_some_and(|h| self.hash.verify(&parsed.secret, h))
            && k.previous_valid_until.is_some_and(|u| u > now);
        if !(current || previous)
            || k.revoked_at.is_some()
            || k.expires_at.is_some_and(|e| e <= now)
        {
            return Err(KeyError::BadKey);
        }
        if k.last_used_at
            .is_none_or(|t| now - t >= Duration::seconds(TOUCH_EVERY_SECONDS))
        {
            self.keys.touch_integration_key(&k.key_id, now).await?;
        }
        let matched = if current {
            &k.secret_hash
        } else {
            k.previous_secret_hash.as_deref().unwrap_or_default()
        };
        Ok(VerifiedKey {
            secret_tag: secret_tag(matched),
            customer_id: k.customer_id,
            key_id: k.key_id,
            scopes: k.scopes,
            allowed_adapters: k.allowed_adapters,
        })
    }

    /// Revokes every key of a customer (offboarding with data, onboarding rollback).
    pub(super) async fn revoke_all(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<u64, KeyError> {
        let event = NewEvent {
            body: EventBody::IntegrationKeysRevoked(IntegrationKeysRevoked {
                reason: reason.to_owned(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(customer.clone()),
            occurred_at: self.clock.now(),
            request_id: actor.request_id.clone(),
        };
        Ok(self
            .keys
            .revoke_customer_keys(customer, self.clock.now(), Some(event))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        let cases = [
            (
                KeyError::Invalid(vec![
                    Invalid::new("too_many", "at most 50 scopes").at("scopes")
                ]),
                K::Invalid,
                "validation_failed",
            ),
            (KeyError::BadKey, K::Unauthenticated, "unauthorized"),
            (KeyError::BadToken, K::Unauthenticated, "unauthorized"),
            (
                KeyError::Forbidden(Forbidden {
                    required: Role::Operator,
                    actual: Role::Viewer,
                }),
                K::Forbidden,
                "forbidden",
            ),
            (
                KeyError::ScopeMissing("keys:rotate".into()),
                K::Forbidden,
                "insufficient_scope",
            ),
            (
                KeyError::CustomerNotFound("acme".into()),
                K::NotFound,
                "customer_not_found",
            ),
            (
                KeyError::CustomerDeleted("acme".into()),
                K::Conflict,
                "customer_deleted",
            ),
            (
                KeyError::NotFound {
                    customer_id: "acme".into(),
                    key_id: "k1".into(),
                },
                K::NotFound,
                "key_not_found",
            ),
            (KeyError::Revoked("k1".into()), K::Conflict, "key_revoked"),
            (
                KeyError::from(StoreError::KeyChanged("k1".into())),
                K::Conflict,
                "key_changed",
            ),
            (
                KeyError::Internal("cannot sign a token".into()),
                K::Internal,
                "internal_error",
            ),
        ];
        crate::services::error::assert_classified(cases);
    }
}
