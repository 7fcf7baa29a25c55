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

/// A secret in a request: never printed, serialized only as its fingerprint.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretInput(pub SecretString);

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for SecretInput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fingerprint(self.0.expose_secret().as_bytes()))
    }
}

impl JsonSchema for SecretInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretInput".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// A credential value to store.
#[derive(Debug, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredential {
    /// The secret value. Stored encrypted; never returned by this call or any listing.
    #[schema(value_type = String)]
    #[schemars(with = "String")]
    pub value: SecretString,
    /// The scopes the credential was granted, when known (checked against the type's required
    /// and forbidden scopes).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A stored credential, without its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// `{product}-{customer_id}-{type}`.
    pub display_name: String,
    /// `unvalidated`, `active`, `invalid`, `expired` or `revoked`.
    pub status: CredentialStatus,
    /// The version reads return (the newest enabled one); null when none is enabled.
    pub current_version: Option<i64>,
    /// The current version's fingerprint: tells values apart without showing them.
    pub fingerprint: Option<String>,
    /// Scopes declared at write time or reported by the last check.
    pub scopes: Option<Vec<String>>,
    /// When the provider last accepted or refused it.
    pub last_validated_at: Option<DateTime<Utc>>,
    /// Why the last check did not pass.
    pub validation_error: Option<String>,
    /// When the provider says it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it should be rotated (the type's rotation period after the last write).
    pub rotate_by: Option<DateTime<Utc>>,
    /// First write.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A customer's credentials, and the required types it lacks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialList {
    /// Stored credentials, by type.
    pub items: Vec<CredentialView>,
    /// Types the product requires that have no readable version.
    pub missing_required: Vec<String>,
}

/// One version of a credential, without its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// 1, 2, ...
    pub version: i64,
    /// `enabled`, `disabled` or `destroyed`.
    pub state: VersionState,
    /// Whether reads return this version.
    pub current: bool,
    /// Its fingerprint.
    pub fingerprint: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Who wrote it.
    pub created_by: String,
    /// When its state last changed.
    pub state_changed_at: DateTime<Utc>,
}

/// A credential's value, for the admin who asked for it.
#[derive(Serialize, ToSchema)]
pub struct CredentialValue {
    /// The customer.
    pub customer_id: String,
    /// The credential type.
    pub credential_type: String,
    /// The version read.
    pub version: i64,
    /// The secret.
    #[schema(value_type = String)]
    #[serde(serialize_with = "expose")]
    pub value: SecretString,
}

fn expose<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_secret())
}

impl std::fmt::Debug for CredentialValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CredentialValue({}/{} v{}, [redacted])",
            self.customer_id, self.credential_type, self.version
        )
    }
}

/// What can be done to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    /// Make it unreadable, keeping it.
    Disable,
    /// Make it readable again.
    Enable,
    /// Erase its value for good.
    Destroy,
}

impl std::str::FromStr for VersionAction {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "disable" => Ok(Self::Disable),
            "enable" => Ok(Self::Enable),
            "destroy" => Ok(Self::Destroy),
            _ => Err(Invalid::new(
                "unknown_action",
                format!("unknown action '{s}': expected disable, enable or destroy"),
            )),
        }
    }
}

/// Outcome of asking the provider.
struct CheckOutcome {
    status: CredentialStatus,
    error: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    reached: bool,
}

fn scope_problems(t: &CredentialType, scopes: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in t.forbidden_scopes.iter().filter(|f| scopes.contains(f)) {
        problems.push(format!("has the forbidden scope '{f}'"));
    }
    for r in t.required_scopes.iter().filter(|r| !scopes.contains(r)) {
        problems.push(format!("lacks the required scope '{r}'"));
    }
    problems
}

fn pointer_scopes(body: &serde_json::Value, pointer: &str) -> Option<Vec<String>> {
    match body.pointer(pointer)? {
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
        ),
        serde_json::Value::String(s) => Some(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn pointer_time(body: &serde_json::Value, pointer: &str) -> Option<DateTime<Utc>> {
    match body.pointer(pointer)? {
        serde_json::Value::Number(n) => n.as_i64().and_then(|s| DateTime::from_timestamp(s, 0)),
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// Why a vault operation refused or failed. Values never appear in it.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A customer's token lacks a scope.
    #[error("this action needs the '{0}' scope, which the token does not have")]
    ScopeMissing(String),
    /// A customer's token used on another customer.
    #[error("the token belongs to another customer")]
    OtherCustomer,
    /// No such customer.
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// A deleted customer's vault is closed.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    CustomerDeleted(String),
    /// The customer has no such credential (or version), or it was destroyed.
    #[error("{0}")]
    NotFound(String),
    /// A stored value does not open (altered, moved, or its master key is missing).
    #[error("the stored {0} credential cannot be decrypted: it was altered or moved, or its master key is missing")]
    Unreadable(String),
    /// A version cannot move to the state asked for from the one it is in.
    #[error("{0}")]
    VersionState(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for VaultError {
    fn from(e: FieldError) -> Self {
        VaultError::Invalid(vec![e])
    }
}

impl VaultError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VaultError::Invalid(_) => ErrorKind::Invalid,
            VaultError::Forbidden(_) | VaultError::ScopeMissing(_) | VaultError::OtherCustomer => {
                ErrorKind::Forbidden
            }
            VaultError::CustomerNotFound(_) | VaultError::NotFound(_) => ErrorKind::NotFound,
            VaultError::CustomerDeleted(_) | VaultError::VersionState(_) => ErrorKind::Conflict,
            VaultError::Unreadable(_) => ErrorKind::Integrity,
            VaultError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::Invalid(_) => "validation_failed",
            VaultError::Forbidden(_) | VaultError::OtherCustomer => "forbidden",
            VaultError::ScopeMissing(_) => "insufficient_scope",
            VaultError::CustomerNotFound(_) => "customer_not_found",
            VaultError::CustomerDeleted(_) => "customer_deleted",
            VaultError::NotFound(_) => "credential_not_found",
            VaultError::Unreadable(_) => "credential_unreadable",
            VaultError::VersionState(_) => "invalid_version_state",
            VaultError::Store(e) => super::store_code(e),
        }
    }
}

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
            for p in scope_problems(t, scopes) {
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

    /// Seals the credentials of an onboarding request for its run to store (bound to version 0,
    /// the staging slot, of their type).
    pub(super) fn stage_credentials(
        &self,
        customer_id: &str,
        credentials: &std::collections::BTreeMap<String, SecretInput>,
    ) -> Vec<StagedCredential> {
        let master = self.keyring.current();
        credentials
            .iter()
            .map(|(t, v)| {
                let value = v.0.expose_secret().as_bytes();
                StagedCredential {
                    credential_type: t.clone(),
                    fingerprint: fingerprint(value),
                    scopes: None,
                    sealed: envelope::seal(
                        &master,
                        Binding {
                            customer_id,
                            credential_type: t,
                            version: 0,
                        },
                        value,
                        &mut OsRng,
                    ),
                }
            })
            .collect()
    }

    /// The `store_credentials` step: moves the run's staged credentials into the vault, then
    /// forgets them. Idempotent: a value already stored (same fingerprint, enabled) is skipped.
    pub(super) async fn store_staged_credentials(
        &self,
        customer: &CustomerId,
        run_id: &str,
    ) -> Result<(), VaultError> {
        let customer_id = customer.as_str();
        let actor = Actor::system();
        for staged in self.store.staged_credentials(customer, run_id).await? {
            let t = self.credential_type(&staged.credential_type)?;
            let stored = self
                .store
                .credential_versions(customer, &t.name)
                .await?
                .iter()
                .any(|v| v.fingerprint == staged.fingerprint && v.state == VersionState::Enabled);
            if stored {
                continue;
            }
            let keys = self.keyring.keys_with(staged.sealed.master_version);
            let plain = envelope::open(
                |n| keys.iter().find(|k| k.version == n),
                Binding {
                    customer_id,
                    credential_type: &t.name,
                    version: 0,
                },
                &staged.sealed,
            )
            .map_err(|_| VaultError::Unreadable(t.name.clone()))?;
            let value = SecretString::from(
                String::from_utf8(plain.to_vec())
                    .map_err(|_| VaultError::Unreadable(t.name.clone()))?,
            );
            self.store_with_retry(&actor, customer, t, &value, staged.scopes.clone())
                .await?;
        }
        self.store.clear_staged_credentials(customer).await?;
        Ok(())
    }

    /// Rolls back what `store_credentials` did, and forgets anything still staged.
    pub(super) async fn undo_credentials(
        &self,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<(), VaultError> {
        let actor = Actor::system();
        self.destroy_all_credentials(&actor, customer, reason)
            .await?;
        self.forget_staged(customer).await
    }

    /// Forgets the credentials staged for the customer's run (a rollback's last word on them).
    pub(super) async fn forget_staged(&self, customer: &CustomerId) -> Result<(), VaultError> {
        Ok(self.store.clear_staged_credentials(customer).await?)
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
        let missing_required = self
            .product
            .credentials
            .values()
            .filter(|t| t.required)
            .filter(|t| {
                !records
                    .iter()
                    .any(|r| r.credential_type == t.name && r.current_version.is_some())
            })
            .map(|t| t.name.clone())
            .collect();
        Ok(CredentialList {
            items,
            missing_required,
        })
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

    async fn ask_provider(
        &self,
        t: &CredentialType,
        check: &CredentialCheck,
        value: &str,
    ) -> CheckOutcome {
        let unreachable = |why: String| CheckOutcome {
            status: CredentialStatus::Unvalidated,
            error: Some(why),
            scopes: None,
            expires_at: None,
            reached: false,
        };
        let header = format!("{}{}", check.prefix, value);
        let response = self
            .http
            .get(check.url.clone())
            .header(check.header.as_str(), header)
            .timeout(std::time::Duration::from_millis(check.timeout_ms))
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("the provider did not answer within {} ms", check.timeout_ms)
                } else {
                    "the provider could not be reached".to_owned()
                };
                return unreachable(why);
            }
        };
        let status = response.status();
        if status.is_server_error() {
            return unreachable(format!("the provider failed (HTTP {})", status.as_u16()));
        }
        if !status.is_success() {
            return CheckOutcome {
                status: CredentialStatus::Invalid,
                error: Some(format!(
                    "the provider refused the credential (HTTP {})",
                    status.as_u16()
                )),
                scopes: None,
                expires_at: None,
                reached: true,
            };
        }
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        let scopes = check
            .scopes_pointer
            .as_deref()
            .and_then(|p| pointer_scopes(&body, p));
        let expires_at = check
            .expires_at_pointer
            .as_deref()
            .and_then(|p| pointer_time(&body, p));
        let mut problems = Vec::new();
        if check.scopes_pointer.is_some() {
            match &scopes {
                Some(s) => problems.extend(scope_problems(t, s)),
                None => problems.push("the provider did not report its scopes".to_owned()),
            }
        }
        let now = self.clock.now();
        let (status, error) = if expires_at.is_some_and(|e| e <= now) {
            (
                CredentialStatus::Expired,
                Some("the provider says the credential has expired".to_owned()),
            )
        } else if problems.is_empty() {
            (CredentialStatus::Active, None)
        } else {
            (
                CredentialStatus::Invalid,
                Some(format!("the credential {}", problems.join(" and "))),
            )
        };
        CheckOutcome {
            status,
            error,
            scopes,
            expires_at,
            reached: true,
        }
    }

    /// Asks the provider's check endpoint whether the current value works, and records the
    /// outcome, the scopes it reports and when.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn validate(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
    ) -> Result<CredentialView, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        let t = self.credential_type(credential_type)?;
        let Some(check) = &t.check else {
            return Err(Invalid::new(
                "no_check_configured",
                format!("the product configures no check endpoint for {credential_type} credentials ([credentials.{credential_type}.check])"),
            )
            .at("credential_type")
            .into());
        };
        let (mut record, versions) = self.load_credential(customer, credential_type).await?;
        let v = Self::current_version(&record, &versions)?;
        let plain = self.open_version(v)?;
        let value = Zeroizing::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| VaultError::Unreadable(credential_type.to_owned()))?,
        );
        let outcome = self.ask_provider(t, check, &value).await;
        let now = self.clock.now();
        if outcome.reached {
            record.status = outcome.status;
            record.last_validated_at = Some(now);
            if outcome.scopes.is_some() {
                record.scopes = outcome.scopes.clone();
            }
            record.expires_at = outcome.expires_at.or(record.expires_at);
        }
        record.validation_error = outcome.error.clone();
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialValidated(CredentialValidated {
                credential_type: credential_type.to_owned(),
                version: v.version,
                reached_provider: outcome.reached,
                status: record.status,
                scopes: outcome.scopes.clone(),
                error: outcome.error.clone(),
            }),
            now,
        );
        self.store
            .save_credential(&record, None, &[], vec![event])
            .await?;
        Ok(self.view(&record, &versions))
    }

    /// Disables, enables or destroys one version; the newest enabled version becomes current.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn change_version(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
        version: i64,
        action: VersionAction,
    ) -> Result<Vec<VersionView>, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (mut record, mut versions) = self.load_credential(customer, credential_type).await?;
        let Some(v) = versions.iter_mut().find(|v| v.version == version) else {
            return Err(VaultError::NotFound(format!(
                "the {credential_type} credential of '{customer_id}' has no version {version}"
            )));
        };
        let to = match action {
            VersionAction::Disable => VersionState::Disabled,
            VersionAction::Enable => VersionState::Enabled,
            VersionAction::Destroy => VersionState::Destroyed,
        };
        if !v.state.can_become(to) {
            return Err(VaultError::VersionState(format!(
                "version {version} is {} and cannot become {}",
                v.state.as_str(),
                to.as_str()
            )));
        }
        if to == VersionState::Enabled && record.status == CredentialStatus::Revoked {
            return Err(VaultError::VersionState(
                "the credential is revoked: store a new value instead of enabling an old one"
                    .into(),
            ));
        }
        v.state = to;
        if to == VersionState::Destroyed {
            v.sealed = None;
        }
        let now = self.clock.now();
        record.current_version = versions
            .iter()
            .filter(|v| v.state == VersionState::Enabled)
            .map(|v| v.version)
            .max();
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            {
                let changed = CredentialVersionRef {
                    credential_type: credential_type.to_owned(),
                    version,
                };
                match to {
                    VersionState::Enabled => EventBody::CredentialVersionEnabled(changed),
                    VersionState::Disabled => EventBody::CredentialVersionDisabled(changed),
                    VersionState::Destroyed => EventBody::CredentialVersionDestroyed(changed),
                }
            },
            now,
        );
        self.store
            .save_credential(
                &record,
                None,
                &[VersionChange { version, state: to }],
                vec![event],
            )
            .await?;
        self.versions(actor, customer_id, credential_type).await
    }

    /// Revokes a credential: no version stays readable; with `destroy`, every value is erased.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn revoke(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
        destroy: bool,
    ) -> Result<CredentialView, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (mut record, mut versions) = self.load_credential(customer, credential_type).await?;
        let to = if destroy {
            VersionState::Destroyed
        } else {
            VersionState::Disabled
        };
        let changes: Vec<VersionChange> = versions
            .iter_mut()
            .filter(|v| {
                v.state == VersionState::Enabled || (destroy && v.state != VersionState::Destroyed)
            })
            .map(|v| {
                v.state = to;
                if destroy {
                    v.sealed = None;
                }
                VersionChange {
                    version: v.version,
                    state: to,
                }
            })
            .collect();
        let now = self.clock.now();
        record.status = CredentialStatus::Revoked;
        record.current_version = None;
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialRevoked(CredentialRevoked {
                credential_type: credential_type.to_owned(),
                destroyed: destroy,
                versions: changes.iter().map(|c| c.version).collect(),
            }),
            now,
        );
        self.store
            .save_credential(&record, None, &changes, vec![event])
            .await?;
        Ok(self.view(&record, &versions))
    }

    /// Credentials whose rotation is due within `within_days` (or overdue), soonest first.
    #[tracing::instrument(skip_all)]
    pub async fn due(
        &self,
        _actor: &Actor,
        within_days: u32,
    ) -> Result<Vec<CredentialView>, VaultError> {
        if within_days > 3650 {
            return Err(
                Invalid::new("out_of_range", "within_days must be from 0 to 3650")
                    .at("within_days")
                    .into(),
            );
        }
        let before = self.clock.now() + Duration::days(i64::from(within_days));
        let records = self.store.credentials_due(before).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            let versions = self
                .store
                // Read from the registry: the customer id is its own.
                .credential_versions(
                    &CustomerId::from_trusted(r.customer_id.clone()),
                    &r.credential_type,
                )
                .await?;
            out.push(self.view(r, &versions));
        }
        Ok(out)
    }

    /// Erases every credential of a customer (onboarding rollback, offboarding with data);
    /// returns the types it had.
    pub(super) async fn destroy_all_credentials(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<Vec<String>, VaultError> {
        let customer_id = customer.as_str();
        let types: Vec<String> = self
            .store
            .credentials(customer)
            .await?
            .into_iter()
            .map(|r| r.credential_type)
            .collect();
        if types.is_empty() {
            return Ok(types);
        }
        let now = self.clock.now();
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialsDestroyed(CredentialsDestroyed {
                credential_types: types.clone(),
                reason: reason.to_owned(),
            }),
            now,
        );
        self.store
            .destroy_customer_credentials(customer, now, Some(event))
            .await?;
        Ok(types)
    }

    /// Rewraps every data key sealed under an older master key onto the current one, in
    /// batches; servers keep reading throughout. Returns how many were rewrapped.
    #[tracing::instrument(skip_all)]
    pub async fn rewrap(&self, actor: &Actor) -> Result<u64, VaultError> {
        actor.may(Role::Admin)?;
        let to = self.keyring.current();
        let mut total = 0;
        loop {
            let batch = self.store.versions_to_rewrap(to.version, 500).await?;
            if batch.is_empty() {
                break;
            }
            let mut rewrapped = Vec::with_capacity(batch.len());
            for mut v in batch {
                let Some(sealed) = &v.sealed else { continue };
                let from = sealed.master_version;
                let keys = self.keyring.keys_with(from);
                let fresh = envelope::rewrap(
                    |n| keys.iter().find(|k| k.version == n),
                    &to,
                    Binding {
                        customer_id: &v.customer_id,
                        credential_type: &v.credential_type,
                        version: v.version,
                    },
                    sealed,
                    &mut OsRng,
                )
                .map_err(|_| VaultError::Unreadable(v.credential_type.clone()))?;
                v.sealed = Some(fresh);
                rewrapped.push((v, from));
            }
            let changed = self.store.store_rewrapped(&rewrapped).await?;
            total += changed;
            if changed == 0 {
                break;
            }
        }
        self.events
            .append_event(NewEvent {
                body: EventBody::VaultRewrapped(VaultRewrapped {
                    master_key_version: to.version,
                    rewrapped: total,
                }),
                actor: actor.name.clone(),
                customer_id: None,
                occurred_at: self.clock.now(),
                request_id: actor.request_id.clone(),
            })
            .await?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceError;

    #[test]
    fn vault_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        let cases = [
            (
                VaultError::Invalid(vec![
                    Invalid::new("required", "value is required").at("value")
                ]),
                K::Invalid,
                "validation_failed",
            ),
            (
                VaultError::Forbidden(Forbidden {
                    required: Role::Admin,
                    actual: Role::Operator,
                }),
                K::Forbidden,
                "forbidden",
            ),
            (
                VaultError::ScopeMissing("credentials:read".into()),
                K::Forbidden,
                "insufficient_scope",
            ),
            (VaultError::OtherCustomer, K::Forbidden, "forbidden"),
            (
                VaultError::CustomerDeleted("acme".into()),
                K::Conflict,
                "customer_deleted",
            ),
            (
                VaultError::NotFound("customer 'acme' has no stored api_key credential".into()),
                K::NotFound,
                "credential_not_found",
            ),
            (
                VaultError::Unreadable("api_key".into()),
                K::Integrity,
                "credential_unreadable",
            ),
            (
                VaultError::VersionState("version 2 is destroyed".into()),
                K::Conflict,
                "invalid_version_state",
            ),
            (
                VaultError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
                K::Unavailable,
                "unavailable",
            ),
        ];
        for (e, kind, code) in cases {
            let message = e.to_string();
            let s = ServiceError::from(e);
            assert_eq!((s.kind(), s.code(), s.to_string()), (kind, code, message));
        }
    }
}
