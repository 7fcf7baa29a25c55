//! Customer use cases: onboard (validate, register), read, list, update, offboard, the
//! resolved configuration, and the legacy import (`legacy`).
//!
//! The capability is [`Customers`], the registry: it owns the store (registering a customer
//! writes its run and, where the registry holds datasets, its dataset in one transaction), the
//! product, the clock and the legacy tenants, holds the capabilities a customer's life goes
//! through (onboarding runs, the vault, datasets, integration keys), and refuses with a
//! [`CustomerError`].

use crate::domain::events::{CustomerChanged, CustomerOffboarded, CustomerRegistered, EventBody};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::views::{CustomerList, CustomerView, OnboardResponse};
use std::path::Path;
use std::sync::Arc;

use super::credentials::{Vault, VaultError};
use super::datasets::{CustomerConfig, DataError, Datasets, DeletionReceipt, TableConfig};
use super::keys::{IntegrationKeys, KeyError};
use super::legacy::LegacyTenants;
use super::onboarding::{Onboarding, RunError};
use super::{invalid_fields_message, Actor, Clock, ErrorKind, Forbidden, RunnerOptions};
use crate::domain::status::ALL_STATUSES;
use crate::domain::InvalidTransition;
use crate::domain::{
    Contact, Customer, CustomerId, CustomerName, CustomerStatus, Email, FieldError, Invalid,
    NewEvent, Role, Tag, Tags,
};
use crate::product::Product;
use crate::store::{CustomerFilter, IdempotencyRecord, PageRequest};
use crate::store::{Store, StoreError};

/// The most customers one page may hold.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

/// A customer's contact, as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Primary contact email.
    pub email: Option<String>,
    /// Primary contact name.
    pub name: Option<String>,
}

/// An optional nested object, refusing the array form serde would otherwise accept for a
/// struct (`[null, null]` for `{"email": null, "name": null}`).
fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => serde_json::from_value(serde_json::Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A request to onboard a customer: the GrowthNav `OnboardingRequest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    /// Unique id, by the product's pattern (`acme_corp`).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Display name (`Acme Corporation`).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// One of the product's industries (`GET /api/v1/industries`).
    #[serde(default)]
    pub industry: Option<String>,
    /// Where the dataset lives; the product's `default` store when absent.
    #[serde(default)]
    pub data_store: Option<String>,
    /// Classification tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Product-defined fields, such as `google_ads_customer_ids` and `meta_ad_account_ids`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Primary contact.
    #[serde(default, deserialize_with = "object_only")]
    pub contact: Option<ContactInput>,
    /// Who asked for this onboarding.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Product tier; the product's default tier when absent.
    #[serde(default)]
    pub usage_tier: Option<String>,
    /// Credentials to keep in the vault, by the product's credential types
    /// (`{"meta_access_token": "EAAG..."}`); stored by the run's `store_credentials` step and
    /// never returned.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: std::collections::BTreeMap<String, super::credentials::SecretInput>,
}

/// A change to a customer: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// New display name.
    pub customer_name: Option<String>,
    /// New tags, replacing the old ones.
    pub tags: Option<Vec<String>>,
    /// Attributes to set; an attribute set to null is removed.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// New contact, replacing the old one.
    #[serde(default, deserialize_with = "object_only")]
    pub contact: Option<ContactInput>,
    /// New usage tier.
    pub usage_tier: Option<String>,
    /// New status, through the status machine.
    pub status: Option<String>,
}

/// A request to offboard a customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardRequest {
    /// Remove the customer's data too, leaving a `deleted` tombstone. Needs `confirm`.
    #[serde(default)]
    pub delete_data: bool,
    /// Must equal the customer id when `delete_data` is true.
    pub confirm: Option<String>,
    /// Why, for the audit log.
    pub reason: Option<String>,
    /// Export the dataset (tables as JSON Lines, and a manifest with row counts and SHA-256
    /// checksums) before deleting it.
    #[serde(default)]
    pub export: bool,
}

/// What offboarding did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OffboardResult {
    /// The customer after offboarding.
    pub customer: CustomerView,
    /// Whether data was removed.
    pub data_deleted: bool,
    /// What was removed, when and by whom (also recorded as an event), when data was removed.
    pub receipt: Option<super::datasets::DeletionReceipt>,
}

/// Filters for listing customers.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, JsonSchema)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A status (`pending`, `active`, `paused`, `churned`, `inactive`, `deleted`, `failed`),
    /// several separated by commas, or `all`. Default: `active`.
    pub status: Option<String>,
    /// Only this industry.
    pub industry: Option<String>,
    /// Only customers with this tag.
    pub tag: Option<String>,
    /// Only names containing this text, in any case.
    pub q: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// An onboarding's answer, and whether it is the replay of an earlier request.
#[derive(Debug, Clone)]
pub struct Onboarded {
    /// The answer.
    pub response: OnboardResponse,
    /// True when an `Idempotency-Key` matched an earlier request.
    pub replayed: bool,
}

fn check_idempotency_key(key: &str) -> Result<(), CustomerError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
        .at("Idempotency-Key")
        .into());
    }
    Ok(())
}

fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match crate::domain::text::display_text(field, value?, max, false) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e.at(field));
            None
        }
    }
}

fn parse_contact(input: Option<&ContactInput>, errors: &mut Vec<FieldError>) -> Contact {
    let Some(input) = input else {
        return Contact::default();
    };
    let email = match input
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(e) => Email::parse(e)
            .map_err(|x| errors.push(x.at("contact.email")))
            .ok(),
        None => None,
    };
    Contact {
        email,
        name: optional_text("contact.name", input.name.as_deref(), 200, errors),
    }
}

fn collect<T>(result: Result<T, Invalid>, field: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e.at(field))).ok()
}

fn required(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    match value {
        Some(v) => Some(v.to_owned()),
        None => {
            errors.push(Invalid::new("required", format!("{field} is required")).at(field));
            None
        }
    }
}

/// Why a customer operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The operator's role is too low.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// No such customer.
    #[error("Customer '{0}' not found")]
    NotFound(String),
    /// The id is taken.
    #[error("Customer already exists: '{0}'. Use a different customer_id, update the existing customer, or offboard it first")]
    Exists(String),
    /// The status machine refused.
    #[error("{0}")]
    InvalidTransition(#[from] InvalidTransition),
    /// A deleted customer is a tombstone.
    #[error("Customer '{0}' was deleted; its record can no longer change")]
    Deleted(String),
    /// The caller's version is stale.
    #[error("Customer '{customer_id}' changed: it is at version {found}, not {expected}. Read it again and retry")]
    VersionMismatch {
        /// The customer.
        customer_id: String,
        /// The version the caller sent.
        expected: i64,
        /// The current version.
        found: i64,
    },
    /// The idempotency key was used for a different request.
    #[error("Idempotency-Key '{0}' was already used with a different request body")]
    IdempotencyKeyReused(String),
    /// The idempotency key's first request is still in progress.
    #[error("Idempotency-Key '{0}' is in use by a request still in progress; retry shortly")]
    IdempotencyKeyInProgress(String),
    /// The customer's status is set by its onboarding run.
    #[error("the status of '{0}' is set by its onboarding run: retry the run instead")]
    StatusOwnedByOnboarding(String),
    /// Another process is onboarding the customer.
    #[error("the onboarding of '{0}' is in progress; retry when it has finished or its lease has run out")]
    RunInProgress(String),
    /// The legacy tenants file is unusable.
    #[error(transparent)]
    Product(#[from] crate::product::ProductError),
    /// A run or step status changed in a way its machine forbids: a defect.
    #[error("{0}")]
    Internal(String),
    /// The customer's onboarding run refused or failed.
    #[error(transparent)]
    Runs(#[from] RunError),
    /// The customer's dataset refused or failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The customer's vault refused or failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The customer's keys refused or failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CustomerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CustomerExists(id) => CustomerError::Exists(id),
            StoreError::CustomerNotFound(id) => CustomerError::NotFound(id),
            StoreError::VersionConflict {
                customer_id,
                expected,
                found,
            } => CustomerError::VersionMismatch {
                customer_id,
                expected,
                found,
            },
            StoreError::IdempotencyKeyTaken(key) => CustomerError::IdempotencyKeyInProgress(key),
            other => CustomerError::Store(other),
        }
    }
}

impl From<crate::domain::run::InvalidRunTransition> for CustomerError {
    fn from(e: crate::domain::run::InvalidRunTransition) -> Self {
        CustomerError::Internal(e.to_string())
    }
}

impl From<FieldError> for CustomerError {
    fn from(e: FieldError) -> Self {
        CustomerError::Invalid(vec![e])
    }
}

impl CustomerError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        use CustomerError as C;
        match self {
            C::Invalid(_) | C::IdempotencyKeyReused(_) => ErrorKind::Invalid,
            C::Forbidden(_) => ErrorKind::Forbidden,
            C::NotFound(_) => ErrorKind::NotFound,
            C::Exists(_)
            | C::InvalidTransition(_)
            | C::Deleted(_)
            | C::IdempotencyKeyInProgress(_)
            | C::StatusOwnedByOnboarding(_)
            | C::RunInProgress(_) => ErrorKind::Conflict,
            C::VersionMismatch { .. } => ErrorKind::Stale,
            C::Product(_) => ErrorKind::Config,
            C::Internal(_) => ErrorKind::Internal,
            C::Runs(e) => e.kind(),
            C::Data(e) => e.kind(),
            C::Vault(e) => e.kind(),
            C::Keys(e) => e.kind(),
            C::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        use CustomerError as C;
        match self {
            C::Invalid(_) => "validation_failed",
            C::Forbidden(_) => "forbidden",
            C::NotFound(_) => "customer_not_found",
            C::Exists(_) => "customer_exists",
            C::InvalidTransition(_) => "invalid_transition",
            C::Deleted(_) => "customer_deleted",
            C::VersionMismatch { .. } => "version_mismatch",
            C::IdempotencyKeyReused(_) => "idempotency_key_reused",
            C::IdempotencyKeyInProgress(_) => "idempotency_key_in_progress",
            C::StatusOwnedByOnboarding(_) => "status_owned_by_onboarding",
            C::RunInProgress(_) => "run_in_progress",
            C::Product(_) | C::Internal(_) => "internal_error",
            C::Runs(e) => e.code(),
            C::Data(e) => e.code(),
            C::Vault(e) => e.code(),
            C::Keys(e) => e.code(),
            C::Store(e) => super::store_code(e),
        }
    }

    /// The fields an input refusal names, wherever it was refused.
    pub fn invalid_fields(&self) -> Option<&[FieldError]> {
        match self {
            CustomerError::Invalid(errors)
            | CustomerError::Runs(RunError::Invalid(errors))
            | CustomerError::Data(DataError::Invalid(errors))
            | CustomerError::Vault(VaultError::Invalid(errors))
            | CustomerError::Keys(KeyError::Invalid(errors)) => Some(errors),
            _ => None,
        }
    }
}

/// The customer registry's capability.
#[derive(Clone)]
pub struct Customers {
    pub(super) store: Arc<dyn Store>,
    pub(super) product: Arc<Product>,
    pub(super) clock: Arc<dyn Clock>,
    runner: Arc<RunnerOptions>,
    legacy: Arc<LegacyTenants>,
    onboarding: Onboarding,
    vault: Vault,
    datasets: Datasets,
    keys: IntegrationKeys,
}

impl Customers {
    /// The registry over the store, the product, the clock, this process's options and the
    /// legacy tenants, with the capabilities a customer's life goes through.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        runner: Arc<RunnerOptions>,
        legacy: Arc<LegacyTenants>,
        onboarding: Onboarding,
        vault: Vault,
        datasets: Datasets,
        keys: IntegrationKeys,
    ) -> Self {
        Self {
            store,
            product,
            clock,
            runner,
            legacy,
            onboarding,
            vault,
            datasets,
            keys,
        }
    }

    /// The `validate` step: every rule checked, every bad field named.
    fn validate_new(&self, req: &OnboardRequest) -> Result<Customer, Vec<FieldError>> {
        let p = &self.product;
        let mut errors = Vec::new();
        let id = required("customer_id", req.customer_id.as_deref(), &mut errors).and_then(|s| {
            collect(
                CustomerId::parse(&s, &p.customer_id),
                "customer_id",
                &mut errors,
            )
        });
        if let Some(id) = &id {
            let dataset_id = p.dataset_id(id.as_str());
            if p.provisions_datasets() && dataset_id.len() > 63 {
                errors.push(
                    Invalid::new(
                        "too_long",
                        format!("customer_id makes the dataset name '{dataset_id}' longer than 63 characters"),
                    )
                    .at("customer_id"),
                );
            }
        }
        let name = required("customer_name", req.customer_name.as_deref(), &mut errors)
            .and_then(|s| collect(CustomerName::parse(&s), "customer_name", &mut errors));
        let industry = required("industry", req.industry.as_deref(), &mut errors).and_then(|s| {
            collect(
                p.check_industry(&s).map(|_| s.clone()),
                "industry",
                &mut errors,
            )
        });
        let data_store = req
            .data_store
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        collect(p.check_data_store(&data_store), "data_store", &mut errors);
        let tags = Tags::parse("tags", &req.tags)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let attributes = p
            .check_attributes(&req.attributes, false)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let contact = parse_contact(req.contact.as_ref(), &mut errors);
        let created_by = optional_text("created_by", req.created_by.as_deref(), 200, &mut errors);
        let usage_tier = match req.usage_tier.as_deref().or(p.default_tier.as_deref()) {
            Some(t) => collect(
                p.check_tier(t).map(|_| t.to_owned()),
                "usage_tier",
                &mut errors,
            ),
            None => None,
        };
        for (t, v) in &req.credentials {
            let field = format!("credentials.{t}");
            match p.credentials.get(t) {
                None => errors.push(
                    Invalid::new(
                        "unknown_credential_type",
                        format!("unknown credential type '{t}'"),
                    )
                    .at(field),
                ),
                Some(ct) => {
                    if let Err(super::credentials::VaultError::Invalid(found)) =
                        super::credentials::Vault::check_value(ct, &v.0, None)
                    {
                        errors.extend(found.into_iter().map(|e| FieldError {
                            field: field.clone(),
                            ..e
                        }));
                    }
                }
            }
        }
        if !req.credentials.is_empty() && !p.steps.iter().any(|s| s == "store_credentials") {
            errors.push(
                Invalid::new(
                    "no_store_credentials_step",
                    "this product's onboarding has no store_credentials step: store credentials with PUT .../credentials/{type} instead",
                )
                .at("credentials"),
            );
        }
        match (id, name, industry, tags, attributes) {
            (Some(id), Some(name), Some(industry), Some(tags), Some(attributes))
                if errors.is_empty() =>
            {
                let now = self.clock.now();
                Ok(Customer {
                    id,
                    name,
                    industry,
                    data_store,
                    status: CustomerStatus::INITIAL,
                    tags,
                    attributes,
                    contact,
                    created_by,
                    usage_tier,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                })
            }
            _ => Err(errors),
        }
    }

    /// Onboards a customer: validates the request, then registers the customer and its event
    /// (and the idempotency record, when a key is given) in one transaction.
    #[tracing::instrument(skip_all, fields(customer_id = req.customer_id.as_deref().unwrap_or("")))]
    pub async fn onboard(
        &self,
        actor: &Actor,
        req: &OnboardRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Onboarded, CustomerError> {
        actor.may(Role::Operator)?;
        let fingerprint = hex::encode(Sha256::digest(
            serde_json::to_vec(req).expect("request serialises"),
        ));
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
            if let Some(replayed) = self.replay(key, &fingerprint).await? {
                return Ok(replayed);
            }
        }

        let started = self.clock.now();
        let customer = self.validate_new(req).map_err(CustomerError::Invalid)?;
        let registered = self.clock.now();
        let run = self
            .onboarding
            .new_run(customer.id.as_str(), started, registered);
        let event = NewEvent {
            body: EventBody::CustomerRegistered(CustomerRegistered {
                customer: CustomerView::of(&customer, &self.product),
                run_id: Some(run.run_id.clone()),
                steps: self.product.steps.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(customer.id.clone()),
            occurred_at: registered,
            request_id: actor.request_id.clone(),
        };
        let idempotency = idempotency_key.map(|key| IdempotencyRecord {
            key: key.to_owned(),
            fingerprint: fingerprint.clone(),
            status: 201,
            body: json!({ "customer_id": customer.id }).to_string(),
            created_at: registered,
        });
        let mut run = run;
        run.staged_credentials = self
            .vault
            .stage_credentials(customer.id.as_str(), &req.credentials);
        let inserted = if self.provisions_at_registration(&customer) {
            // Atomic where it can be: the dataset lives in the registry's database, so the
            // customer, its run and its dataset are created in one transaction.
            let (spec, record, provisioned) = self.datasets.plan(&customer, None);
            for step in run
                .steps
                .iter_mut()
                .filter(|s| s.name == "provision_dataset")
            {
                step.status = step
                    .status
                    .transition(crate::domain::run::StepStatus::Succeeded)?;
                step.attempts = 1;
                step.started_at = Some(registered);
                step.finished_at = Some(registered);
                step.completed_seq = Some(registered.timestamp_micros());
            }
            self.store
                .insert_customer_with_dataset(
                    &customer,
                    vec![event, provisioned],
                    &run,
                    idempotency.as_ref(),
                    &spec,
                    &record,
                )
                .await
        } else {
            self.store
                .insert_customer(&customer, event, Some(&run), idempotency.as_ref())
                .await
                .map(|_| ())
        };
        if let Err(e) = inserted {
            let e = CustomerError::from(e);
            // A concurrent request with the same key registered the customer first; the insert
            // waited for its transaction, so its idempotency record is there to answer from.
            if let (
                CustomerError::Exists(_) | CustomerError::IdempotencyKeyInProgress(_),
                Some(key),
            ) = (&e, idempotency_key)
            {
                if let Some(replayed) = self.replay(key, &fingerprint).await? {
                    return Ok(replayed);
                }
            }
            return Err(e);
        }
        let customer_id = customer.id.clone();
        let (run, finished) = self.onboarding.drive_registered(run, customer).await?;
        tracing::info!(customer_id = %customer_id, status = %run.status, "onboarding finished");
        let customer = match finished {
            Some(c) => c,
            None => self.current(customer_id.as_str()).await?,
        };
        Ok(Onboarded {
            response: OnboardResponse {
                customer: CustomerView::of(&customer, &self.product),
                onboarding: self.onboarding.run_view(&run),
            },
            replayed: false,
        })
    }

    /// The answer to a request whose idempotency key was used before: `None` when it was not,
    /// the first request's outcome when it has finished, 409 `idempotency_key_in_progress`
    /// while it runs, 422 `idempotency_key_reused` when the key came with another request.
    async fn replay(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<Onboarded>, CustomerError> {
        let Some(rec) = self.store.get_idempotency(key).await? else {
            return Ok(None);
        };
        if rec.fingerprint != fingerprint {
            return Err(CustomerError::IdempotencyKeyReused(key.to_owned()));
        }
        let first: serde_json::Value = serde_json::from_str(&rec.body)
            .map_err(|e| CustomerError::Store(crate::store::StoreError::Corrupt(e.to_string())))?;
        let customer_id = first["customer_id"].as_str().unwrap_or_default();
        let (customer, onboarding) = self.onboarding.customer_with_run(customer_id).await?;
        if !onboarding.status.is_final() {
            return Err(CustomerError::IdempotencyKeyInProgress(key.to_owned()));
        }
        Ok(Some(Onboarded {
            response: OnboardResponse {
                customer,
                onboarding,
            },
            replayed: true,
        }))
    }

    /// One customer: from the registry, else from the legacy tenants file when the product has one.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn get(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<CustomerView, CustomerError> {
        if let Some(c) = self.store.get_customer(customer_id).await? {
            return Ok(CustomerView::of(&c, &self.product));
        }
        self.legacy
            .view(customer_id)
            .ok_or_else(|| CustomerError::NotFound(customer_id.to_owned()))
    }

    /// Parses list filters into a store filter and page.
    fn parse_list_query(
        &self,
        q: &ListQuery,
    ) -> Result<(CustomerFilter, PageRequest), CustomerError> {
        let mut errors = Vec::new();
        let statuses = match q.status.as_deref().unwrap_or("active") {
            "all" => None,
            list => Some(
                list.split(',')
                    .map(str::trim)
                    .filter_map(|s| {
                        s.parse::<CustomerStatus>()
                            .map_err(|e| errors.push(e.at("status")))
                            .ok()
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        if let Some(industry) = &q.industry {
            collect(
                self.product.check_industry(industry),
                "industry",
                &mut errors,
            );
        }
        if let Some(tag) = &q.tag {
            collect(Tag::parse(tag), "tag", &mut errors);
        }
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            errors.push(
                Invalid::new(
                    "out_of_range",
                    format!("limit must be from 1 to {MAX_PAGE}"),
                )
                .at("limit"),
            );
        }
        let after = match &q.cursor {
            None => None,
            // A cursor is only a position in id order, so any base64url text is one: what it
            // decodes to is the id to start after (control characters, which no id holds,
            // dropped).
            Some(c) => base64::engine::GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
            )
            .decode(c)
            .ok()
            .filter(|_| !c.is_empty())
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .chars()
                    .filter(|ch| !ch.is_control())
                    .collect::<String>()
            })
            .or_else(|| {
                errors.push(
                    Invalid::new("invalid_cursor", "cursor is not one this API returned")
                        .at("cursor"),
                );
                None
            }),
        };
        if !errors.is_empty() {
            return Err(CustomerError::Invalid(errors));
        }
        let filter = CustomerFilter {
            statuses: statuses.filter(|s| s.len() < ALL_STATUSES.len()),
            industry: q.industry.clone(),
            tag: q.tag.clone(),
            name_contains: q
                .q
                .as_deref()
                .map(crate::domain::text::fold_name)
                .filter(|s| !s.is_empty()),
        };
        Ok((filter, PageRequest { limit, after }))
    }

    /// A page of customers.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn list(&self, _actor: &Actor, q: &ListQuery) -> Result<CustomerList, CustomerError> {
        let (filter, page) = self.parse_list_query(q)?;
        let page = self.store.list_customers(&filter, &page).await?;
        Ok(CustomerList {
            items: page
                .items
                .iter()
                .map(|c| CustomerView::of(c, &self.product))
                .collect(),
            next_cursor: page.next.map(|id| URL_SAFE_NO_PAD.encode(id)),
        })
    }

    /// Every customer in an industry that has not been deleted, whatever its status, ordered
    /// by id: the GrowthNav `list_customers_by_industry` look-up. Pages through the registry.
    #[tracing::instrument(skip_all, level = "debug")]
    pub async fn in_industry(
        &self,
        actor: &Actor,
        industry: &str,
    ) -> Result<Vec<CustomerView>, CustomerError> {
        let statuses: Vec<&str> = ALL_STATUSES
            .iter()
            .filter(|s| **s != CustomerStatus::Deleted)
            .map(|s| s.as_str())
            .collect();
        let mut q = ListQuery {
            status: Some(statuses.join(",")),
            industry: Some(industry.to_owned()),
            limit: Some(MAX_PAGE),
            ..ListQuery::default()
        };
        let mut all = Vec::new();
        loop {
            let page = self.list(actor, &q).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// The customer's registry record.
    pub(super) async fn current(&self, customer_id: &str) -> Result<Customer, CustomerError> {
        self.store
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| CustomerError::NotFound(customer_id.to_owned()))
    }

    /// Whether onboarding `customer` creates its dataset in the registering transaction: its
    /// data store lives in the registry's database and no injected fault needs the step alone.
    fn provisions_at_registration(&self, customer: &Customer) -> bool {
        self.product.provisions_datasets()
            && self.datasets.stores().in_registry(&customer.data_store)
            && self.store.provisions_datasets_in_registry()
            && !self.runner.faults.targets("provision_dataset")
    }

    /// The customer's resolved configuration: dataset, tier, tables, attributes, checklist.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn config(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<CustomerConfig, CustomerError> {
        let customer = self.current(customer_id).await?;
        let dataset = self.store.get_dataset(&customer.id).await?;
        let tier = customer.usage_tier.clone();
        let tables = match &dataset {
            Some(d) => self
                .product
                .tables_for_tier(d.tier.as_deref())
                .into_iter()
                .filter(|(t, _)| d.tables.contains(t))
                .map(|(name, columns)| TableConfig {
                    name,
                    columns,
                    schema_version: d.schema_version,
                })
                .collect(),
            None => vec![],
        };
        let checklist = match self.onboarding.status(actor, customer_id).await {
            Ok(status) => status.checklist,
            Err(super::onboarding::RunError::CustomerNotFound(_)) => vec![],
            Err(e) => return Err(e.into()),
        };
        Ok(CustomerConfig {
            customer_id: customer.id.to_string(),
            status: customer.status,
            industry: customer.industry.clone(),
            dataset_id: dataset.as_ref().map(|d| d.dataset_id.clone()),
            data_store: customer.data_store.clone(),
            retention_days: tier
                .as_deref()
                .and_then(|t| self.product.tiers.get(t))
                .map(|t| t.retention_days),
            tier,
            schema_version: dataset.as_ref().map(|d| d.schema_version),
            tables,
            attributes: customer
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            checklist,
        })
    }

    /// Exports (when asked) and drops the customer's dataset; returns the receipt.
    async fn delete_data(
        &self,
        actor: &Actor,
        customer: &Customer,
        export: bool,
        export_dir: Option<&Path>,
    ) -> Result<DeletionReceipt, CustomerError> {
        let dataset = self.store.get_dataset(&customer.id).await?;
        let export = if export {
            let dir = export_dir.map_or_else(|| self.runner.exports_dir.clone(), Path::to_path_buf);
            self.datasets.export(customer, &dir).await?
        } else {
            None
        };
        self.datasets
            .drop(customer.id.as_str(), "customer offboarded with its data")
            .await?;
        let credentials_destroyed = self
            .vault
            .destroy_all_credentials(actor, &customer.id, "customer offboarded with its data")
            .await?;
        let mut fields_cleared: Vec<String> = customer
            .attributes
            .keys()
            .map(|k| format!("attributes.{k}"))
            .collect();
        if customer.contact.email.is_some() {
            fields_cleared.push("contact.email".into());
        }
        if customer.contact.name.is_some() {
            fields_cleared.push("contact.name".into());
        }
        if customer.tags.iter().next().is_some() {
            fields_cleared.push("tags".into());
        }
        Ok(DeletionReceipt {
            customer_id: customer.id.to_string(),
            dataset_id: dataset.as_ref().map(|d| d.dataset_id.clone()),
            tables_removed: dataset.map(|d| d.tables).unwrap_or_default(),
            fields_cleared,
            deleted_at: self.clock.now(),
            deleted_by: actor.name.clone(),
            export,
            credentials_destroyed,
        })
    }

    /// Changes a customer. With `if_match`, refuses when the stored version differs.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn update(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &UpdateRequest,
        if_match: Option<i64>,
    ) -> Result<CustomerView, CustomerError> {
        actor.may(Role::Operator)?;
        let current = self.current(customer_id).await?;
        if current.status == CustomerStatus::Deleted {
            return Err(CustomerError::Deleted(customer_id.to_owned()));
        }
        let mut next = current.clone();
        let mut errors = Vec::new();
        if let Some(name) = &req.customer_name {
            if let Some(n) = collect(CustomerName::parse(name), "customer_name", &mut errors) {
                next.name = n;
            }
        }
        if let Some(tags) = &req.tags {
            match Tags::parse("tags", tags) {
                Ok(t) => next.tags = t,
                Err(mut e) => errors.append(&mut e),
            }
        }
        if let Some(attrs) = &req.attributes {
            let (removed, set): (Vec<_>, Vec<_>) = attrs.iter().partition(|(_, v)| v.is_null());
            let set: serde_json::Map<_, _> = set
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match self.product.check_attributes(&set, true) {
                Ok(parsed) => next.attributes.extend(parsed),
                Err(mut e) => errors.append(&mut e),
            }
            for (name, _) in removed {
                match self.product.attributes.get(name) {
                    Some(def) if def.required => errors.push(
                        Invalid::new(
                            "required",
                            format!("attribute '{name}' is required and cannot be removed"),
                        )
                        .at(format!("attributes.{name}")),
                    ),
                    _ => {
                        next.attributes.remove(name);
                    }
                }
            }
        }
        if let Some(contact) = &req.contact {
            next.contact = parse_contact(Some(contact), &mut errors);
        }
        if let Some(tier) = &req.usage_tier {
            if collect(self.product.check_tier(tier), "usage_tier", &mut errors).is_some() {
                next.usage_tier = Some(tier.clone());
            }
        }
        let status = match &req.status {
            Some(s) => collect(s.parse::<CustomerStatus>(), "status", &mut errors),
            None => None,
        };
        if !errors.is_empty() {
            return Err(CustomerError::Invalid(errors));
        }
        // The precondition after the body's own checks: a bad body is refused as such, whatever
        // version it names.
        if let Some(expected) = if_match {
            if expected != current.version {
                return Err(CustomerError::VersionMismatch {
                    customer_id: customer_id.to_owned(),
                    expected,
                    found: current.version,
                });
            }
        }
        if let Some(to) = status.filter(|s| *s != current.status) {
            if matches!(
                current.status,
                CustomerStatus::Pending | CustomerStatus::Failed
            ) {
                return Err(CustomerError::StatusOwnedByOnboarding(
                    customer_id.to_owned(),
                ));
            }
            if to.is_offboarded() {
                return Err(Invalid::new(
                    "use_offboard",
                    format!("status '{to}' is reached by offboarding the customer, which revokes its access and keeps or deletes its data"),
                )
                .at("status")
                .into());
            }
            next.status = current.status.transition(to)?;
        }
        if next.usage_tier != current.usage_tier
            && self.store.get_dataset(&current.id).await?.is_some()
        {
            // Provision what the new tier adds before the customer says it has it.
            self.datasets.provision_for(&next).await?;
        }
        self.save(actor, &current, next).await
    }

    /// Saves `next` over `current` with an event naming what changed; a change of nothing is
    /// not saved.
    async fn save(
        &self,
        actor: &Actor,
        current: &Customer,
        mut next: Customer,
    ) -> Result<CustomerView, CustomerError> {
        let before = CustomerView::of(current, &self.product);
        let after = CustomerView::of(&next, &self.product);
        let (b, a) = (
            serde_json::to_value(&before).unwrap(),
            serde_json::to_value(&after).unwrap(),
        );
        let mut changes = serde_json::Map::new();
        for (field, new_value) in a.as_object().into_iter().flatten() {
            let old_value = &b[field];
            if old_value != new_value && !matches!(field.as_str(), "updated_at" | "dataset_id") {
                changes.insert(field.clone(), json!({"from": old_value, "to": new_value}));
            }
        }
        if changes.is_empty() {
            return Ok(before);
        }
        next.version = current.version + 1;
        next.updated_at = self.clock.now();
        let status_only = changes.contains_key("status") && changes.len() == 1;
        let changed = CustomerChanged {
            changes,
            version: next.version,
        };
        let event = NewEvent {
            body: if status_only {
                EventBody::CustomerStatusChanged(changed)
            } else {
                EventBody::CustomerUpdated(changed)
            },
            actor: actor.name.clone(),
            customer_id: Some(next.id.clone()),
            occurred_at: next.updated_at,
            request_id: actor.request_id.clone(),
        };
        self.store
            .update_customer(&current.id, &next, current.version, event)
            .await?;
        Ok(CustomerView::of(&next, &self.product))
    }

    /// Offboards a customer: `inactive` with everything kept, or, with `delete_data` and a
    /// matching `confirm`, its dataset exported (when asked) and dropped, its contact and
    /// attributes removed, and a `deleted` tombstone with a deletion receipt.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn offboard(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &OffboardRequest,
        export_dir: Option<&std::path::Path>,
    ) -> Result<OffboardResult, CustomerError> {
        actor.may(Role::Operator)?;
        let mut errors = Vec::new();
        let reason = optional_text("reason", req.reason.as_deref(), 1000, &mut errors);
        if req.delete_data && req.confirm.as_deref() != Some(customer_id) {
            errors.push(
                Invalid::new(
                    "confirmation_required",
                    format!("deleting data is permanent: set confirm to the customer id ('{customer_id}')"),
                )
                .at("confirm"),
            );
        }
        if req.export && !req.delete_data {
            errors.push(
                Invalid::new(
                    "export_needs_delete",
                    "export is taken only when deleting data",
                )
                .at("export"),
            );
        }
        if !errors.is_empty() {
            return Err(CustomerError::Invalid(errors));
        }
        let current = self.current(customer_id).await?;
        if current.status == CustomerStatus::Deleted {
            return Err(CustomerError::Deleted(customer_id.to_owned()));
        }
        let to = if req.delete_data {
            CustomerStatus::Deleted
        } else {
            CustomerStatus::Inactive
        };
        let mut next = current.clone();
        next.status = current.status.transition(to)?;
        if let Some(run) = self.store.latest_run(&current.id).await? {
            if !run.status.is_final() {
                return Err(CustomerError::RunInProgress(customer_id.to_owned()));
            }
        }
        self.keys
            .revoke_all(actor, &current.id, "customer offboarded")
            .await?;
        let receipt = if req.delete_data {
            Some(
                self.delete_data(actor, &current, req.export, export_dir)
                    .await?,
            )
        } else {
            None
        };
        if req.delete_data {
            next.contact = Contact::default();
            next.attributes.clear();
            next.tags = Tags::default();
        }
        next.version = current.version + 1;
        next.updated_at = self.clock.now();
        let event = NewEvent {
            body: EventBody::CustomerOffboarded(CustomerOffboarded {
                from_status: current.status,
                to_status: next.status,
                delete_data: req.delete_data,
                reason,
                version: next.version,
                receipt: receipt.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(next.id.clone()),
            occurred_at: next.updated_at,
            request_id: actor.request_id.clone(),
        };
        self.store
            .update_customer(&current.id, &next, current.version, event)
            .await?;
        Ok(OffboardResult {
            customer: CustomerView::of(&next, &self.product),
            data_deleted: req.delete_data,
            receipt,
        })
    }
}
