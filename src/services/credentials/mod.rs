//! The credentials vault: per customer and credential type (the product's `[credentials.*]`),
//! every write a new version sealed with envelope encryption, versions that can be disabled and
//! destroyed, format and scope rules at write time, a live check against the provider's endpoint,
//! and rotation deadlines. Values never appear in events, errors, logs or responses; the one
//! route that returns a value is admin-only and records every read as an event.
//!
//! The capability is [`Vault`]: it owns the credential store, the customer registry and the
//! event log it writes reads to, the product's credential types, the keyring, the clock and
//! the HTTP client of live checks, and refuses with a [`VaultError`].

use crate::domain::events::{
    CredentialRevoked, CredentialStored, CredentialValidated, CredentialVersionRef,
    CredentialsDestroyed, EventBody, VaultRewrapped,
};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::OsRng;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use std::sync::Arc;

use super::keyring::Keyring;
use super::tenant_tokens::TenantPrincipal;
use super::{invalid_fields_message, Actor, Clock, ErrorKind, Forbidden};
use crate::domain::credential::{display_name, fingerprint, CredentialStatus, VersionState};
use crate::domain::envelope::{self, Binding};
use crate::domain::{Customer, CustomerId, CustomerStatus, FieldError, Invalid, NewEvent, Role};
use crate::product::{CredentialCheck, CredentialType, Product};
use crate::store::credentials::CredentialStore;
use crate::store::credentials::{CredentialRecord, StagedCredential, VersionChange, VersionRecord};
use crate::store::{CustomerStore, EventStore, StoreError};

/// The largest value the vault takes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

mod check;
mod error;
mod lifecycle;
mod staging;
mod types;

pub use error::VaultError;
pub use types::{
    CredentialList, CredentialValue, CredentialView, PutCredential, SecretInput, VersionAction,
    VersionView,
};

/// The credentials vault.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn CredentialStore>,
    customers: Arc<dyn CustomerStore>,
    events: Arc<dyn EventStore>,
    product: Arc<Product>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
}

impl Vault {
    /// The vault over its stores, the product's credential types, the keyring, the clock and
    /// the HTTP client live checks go out on (one that follows no redirects).
    pub fn new(
        store: Arc<dyn CredentialStore>,
        customers: Arc<dyn CustomerStore>,
        events: Arc<dyn EventStore>,
        product: Arc<Product>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            store,
            customers,
            events,
            product,
            keyring,
            clock,
            http,
        }
    }

    async fn customer(&self, customer_id: &str) -> Result<Customer, VaultError> {
        self.customers
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| VaultError::CustomerNotFound(customer_id.to_owned()))
    }

    /// A credential's value for a customer's own token with `credentials:read`.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn reveal_to_tenant(
        &self,
        p: &TenantPrincipal,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<CredentialValue, VaultError> {
        if p.customer_id != customer_id {
            return Err(VaultError::OtherCustomer);
        }
        if !p.scopes.iter().any(|s| s == "credentials:read") {
            return Err(VaultError::ScopeMissing("credentials:read".into()));
        }
        self.read_value(&p.actor(), customer_id, credential_type)
            .await
    }

    fn credential_type(&self, name: &str) -> Result<&CredentialType, VaultError> {
        self.product.credentials.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .product
                .credentials
                .keys()
                .map(String::as_str)
                .collect();
            Invalid::new(
                "unknown_credential_type",
                if known.is_empty() {
                    format!("unknown credential type '{name}': this product defines none")
                } else {
                    format!(
                        "unknown credential type '{name}': expected one of {}",
                        known.join(", ")
                    )
                },
            )
            .at("credential_type")
            .into()
        })
    }

    async fn live_customer(&self, customer_id: &str) -> Result<Customer, VaultError> {
        let c = self.customer(customer_id).await?;
        if c.status == CustomerStatus::Deleted {
            return Err(VaultError::CustomerDeleted(customer_id.to_owned()));
        }
        Ok(c)
    }

    fn view(&self, r: &CredentialRecord, versions: &[VersionRecord]) -> CredentialView {
        CredentialView {
            display_name: display_name(&self.product.name, &r.customer_id, &r.credential_type),
            customer_id: r.customer_id.clone(),
            credential_type: r.credential_type.clone(),
            status: r.status,
            current_version: r.current_version,
            fingerprint: r.current_version.and_then(|cv| {
                versions
                    .iter()
                    .find(|v| v.version == cv)
                    .map(|v| v.fingerprint.clone())
            }),
            scopes: r.scopes.clone(),
            last_validated_at: r.last_validated_at,
            validation_error: r.validation_error.clone(),
            expires_at: r.expires_at,
            rotate_by: r.rotate_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    async fn load_credential(
        &self,
        customer: &CustomerId,
        credential_type: &str,
    ) -> Result<(CredentialRecord, Vec<VersionRecord>), VaultError> {
        let customer_id = customer.as_str();
        let record = self
            .store
            .credential(customer, credential_type)
            .await?
            .ok_or_else(|| {
                VaultError::NotFound(format!(
                    "customer '{customer_id}' has no stored {credential_type} credential"
                ))
            })?;
        let versions = self
            .store
            .credential_versions(customer, credential_type)
            .await?;
        Ok((record, versions))
    }

    fn credential_event(
        &self,
        actor: &Actor,
        customer_id: &str,
        body: EventBody,
        at: DateTime<Utc>,
    ) -> NewEvent {
        NewEvent {
            body,
            actor: actor.name.clone(),
            // Only ever called after the customer was read from the registry.
            customer_id: Some(CustomerId::from_trusted(customer_id.to_owned())),
            occurred_at: at,
            request_id: actor.request_id.clone(),
        }
    }

    /// Checks a value against its type's rules, naming the field but never the value.
    pub(super) fn check_value(
        t: &CredentialType,
        value: &SecretString,
        scopes: Option<&[String]>,
    ) -> Result<(), VaultError> {
        let v = value.expose_secret();
        let mut errors = Vec::new();
        if v.is_empty() {
            errors.push(Invalid::new("required", "value is required").at("value"));
        } else if v.len() > MAX_VALUE_BYTES {
            errors.push(
                Invalid::new(
                    "too_long",
                    format!("value must be at most {MAX_VALUE_BYTES} bytes"),
                )
                .at("value"),
            );
        } else if v.chars().any(char::is_control) || v.trim() != v {
            errors.push(
                Invalid::new(
                    "invalid_format",
                    "value must not contain control characters or surrounding whitespace",
                )
                .at("value"),
            );
        } else if let Some(p) = &t.pattern {
            if !p.is_match(v) {
                errors.push(
                    Invalid::new(
                        "invalid_format",
                        format!(
                            "value is not in the format of a {} credential (pattern {})",
                            t.name,
                            p.as_str()
                        ),
                    )
                    .at("value"),
                );
            }
        }
        if let Some(scopes) = scopes {
            for (i, s) in scopes.iter().enumerate() {
                if s.is_empty()
                    || s.len() > 200
                    || s.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    errors.push(
                        Invalid::new("invalid_scope", "a scope is 1 to 200 visible characters")
                            .at(format!("scopes[{i}]")),
                    );
                }
            }
            for p in check::scope_problems(t, scopes) {
                errors.push(
                    Invalid::new("scope_not_allowed", format!("the credential {p}")).at("scopes"),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(VaultError::Invalid(errors))
        }
    }

    /// Stores a new version of a customer's credential and makes it current.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn put(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
        req: &PutCredential,
    ) -> Result<CredentialView, VaultError> {
        actor.may(Role::Operator)?;
        let t = self.credential_type(credential_type)?;
        Self::check_value(t, &req.value, req.scopes.as_deref())?;
        let customer = &self.live_customer(customer_id).await?.id;
        self.store_with_retry(actor, customer, t, &req.value, req.scopes.clone())
            .await
    }

    /// Stores a version, trying again when a concurrent write took its number.
    async fn store_with_retry(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        t: &CredentialType,
        value: &SecretString,
        scopes: Option<Vec<String>>,
    ) -> Result<CredentialView, VaultError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .store_version(actor, customer, t, value, scopes.clone())
                .await
            {
                Err(VaultError::Store(StoreError::CredentialVersionTaken { .. }))
                    if attempts < 5 => {}
                other => return other,
            }
        }
    }

    async fn store_version(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        t: &CredentialType,
        value: &SecretString,
        scopes: Option<Vec<String>>,
    ) -> Result<CredentialView, VaultError> {
        let customer_id = customer.as_str();
        let existing = self.store.credential(customer, &t.name).await?;
        let mut versions = self.store.credential_versions(customer, &t.name).await?;
        let version = versions.last().map_or(1, |v| v.version + 1);
        let now = self.clock.now();
        let master = self.keyring.current();
        let binding = Binding {
            customer_id,
            credential_type: &t.name,
            version,
        };
        let sealed = envelope::seal(
            &master,
            binding,
            value.expose_secret().as_bytes(),
            &mut OsRng,
        );
        let print = fingerprint(value.expose_secret().as_bytes());
        let new_version = VersionRecord {
            customer_id: customer_id.to_owned(),
            credential_type: t.name.clone(),
            version,
            state: VersionState::Enabled,
            fingerprint: print.clone(),
            sealed: Some(sealed),
            created_at: now,
            created_by: actor.name.clone(),
            state_changed_at: now,
        };
        let record = CredentialRecord {
            customer_id: customer_id.to_owned(),
            credential_type: t.name.clone(),
            status: CredentialStatus::Unvalidated,
            current_version: Some(version),
            scopes: scopes.clone(),
            last_validated_at: None,
            validation_error: None,
            expires_at: None,
            rotate_by: t.rotation_days.map(|d| now + Duration::days(i64::from(d))),
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialStored(CredentialStored {
                credential_type: t.name.clone(),
                version,
                fingerprint: print,
                scopes: scopes.clone(),
            }),
            now,
        );
        self.store
            .save_credential(&record, Some(&new_version), &[], vec![event])
            .await?;
        versions.push(new_version);
        Ok(self.view(&record, &versions))
    }

    /// A customer's credentials (metadata only) and the required types it lacks.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn list(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<CredentialList, VaultError> {
        let customer = &self.customer(customer_id).await?.id;
        let records = self.store.credentials(customer).await?;
        let mut items = Vec::with_capacity(records.len());
        for r in &records {
            let versions = self
                .store
                .credential_versions(customer, &r.credential_type)
                .await?;
            items.push(self.view(r, &versions));
        }
        let missing_required = self.missing_among(&records);
        Ok(CredentialList {
            items,
            missing_required,
        })
    }

    /// The product's required credential types the customer has no current value of: none
    /// once its credentials are configured.
    pub async fn missing_required(
        &self,
        customer_id: &crate::domain::CustomerId,
    ) -> Result<Vec<String>, VaultError> {
        let records = self.store.credentials(customer_id).await?;
        Ok(self.missing_among(&records))
    }

    fn missing_among(&self, records: &[CredentialRecord]) -> Vec<String> {
        self.product
            .credentials
            .values()
            .filter(|t| t.required)
            .filter(|t| {
                !records
                    .iter()
                    .any(|r| r.credential_type == t.name && r.current_version.is_some())
            })
            .map(|t| t.name.clone())
            .collect()
    }

    /// One credential's versions, oldest first.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn versions(
        &self,
        _actor: &Actor,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<Vec<VersionView>, VaultError> {
        let customer = &self.customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (record, versions) = self.load_credential(customer, credential_type).await?;
        Ok(versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                state: v.state,
                current: record.current_version == Some(v.version),
                fingerprint: v.fingerprint.clone(),
                created_at: v.created_at,
                created_by: v.created_by.clone(),
                state_changed_at: v.state_changed_at,
            })
            .collect())
    }

    fn open_version(&self, v: &VersionRecord) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let sealed = v.sealed.as_ref().ok_or_else(|| {
            VaultError::NotFound(format!(
                "version {} of the {} credential was destroyed",
                v.version, v.credential_type
            ))
        })?;
        let keys = self.keyring.keys_with(sealed.master_version);
        envelope::open(
            |n| keys.iter().find(|k| k.version == n),
            Binding {
                customer_id: &v.customer_id,
                credential_type: &v.credential_type,
                version: v.version,
            },
            sealed,
        )
        .map_err(|e| {
            tracing::error!(customer_id = %v.customer_id, credential_type = %v.credential_type, version = v.version, error = %e, "a stored credential cannot be opened");
            VaultError::Unreadable(v.credential_type.clone())
        })
    }

    fn current_version<'a>(
        record: &CredentialRecord,
        versions: &'a [VersionRecord],
    ) -> Result<&'a VersionRecord, VaultError> {
        record
            .current_version
            .and_then(|cv| versions.iter().find(|v| v.version == cv))
            .ok_or_else(|| {
                VaultError::NotFound(format!(
                    "the {} credential of '{}' has no enabled version",
                    record.credential_type, record.customer_id
                ))
            })
    }

    /// The current value of a credential, for an admin; the read is recorded as an event.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn reveal(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<CredentialValue, VaultError> {
        actor.may(Role::Admin)?;
        self.read_value(actor, customer_id, credential_type).await
    }

    /// Opens the current value and records the read; the caller has checked who may.
    pub(super) async fn read_value(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<CredentialValue, VaultError> {
        let customer = &self.live_customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (record, versions) = self.load_credential(customer, credential_type).await?;
        let v = Self::current_version(&record, &versions)?;
        let plain = self.open_version(v)?;
        let value = String::from_utf8(plain.to_vec())
            .map_err(|_| VaultError::Unreadable(credential_type.to_owned()))?;
        self.events
            .append_event(self.credential_event(
                actor,
                customer_id,
                EventBody::CredentialRead(CredentialVersionRef {
                    credential_type: credential_type.to_owned(),
                    version: v.version,
                }),
                self.clock.now(),
            ))
            .await?;
        Ok(CredentialValue {
            customer_id: customer_id.to_owned(),
            credential_type: credential_type.to_owned(),
            version: v.version,
            value: SecretString::from(value),
        })
    }
}
