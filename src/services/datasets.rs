//! Customer datasets as the use cases see them: provisioning for a tier, the read-only query,
//! uploads (`uploads`), the resolved configuration, and deletion with an export and a receipt.
//!
//! The capability is [`Datasets`]: it owns the product's data stores, the dataset records, the
//! customer registry and event log it reads and writes, the product, the clock and the secret
//! readers' passwords derive from, and refuses with a [`DataError`]. The customer's resolved
//! configuration and offboarding's deletion span capabilities (onboarding, the vault) and stay
//! with the customer registry's use cases.

use crate::domain::events::{DatasetChanged, DatasetDropped, EventBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

use super::keyring::HashSecret;
use super::onboarding::ChecklistEntry;
use super::{invalid_fields_message, Actor, Clock, ErrorKind};
pub use crate::domain::dataset::{DeletionReceipt, ExportInfo};
use crate::domain::query::{check_query, QueryRejection};
use crate::domain::{Customer, CustomerStatus, FieldError, NewEvent};
use crate::product::Product;
use crate::store::datasets::{
    write_table_export, DataStores, DatasetBackend, DatasetError, DatasetSpec, ExportManifest,
    QueryResult, ReaderPassword,
};
use crate::store::{CustomerStore, DatasetRecord, EventStore, RunStore, StoreError};

/// A dataset query request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One read-only SQL statement, run inside the customer's dataset.
    pub sql: String,
}

/// One table of the resolved configuration.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TableConfig {
    /// Table name.
    pub name: String,
    /// Columns, `name type`.
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<crate::product::Column>,
    /// The dataset schema version the table is part of.
    pub schema_version: i64,
}

/// A customer's resolved configuration (the MCP resource `customer://{id}/config`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerConfig {
    /// The customer.
    pub customer_id: String,
    /// Lifecycle status.
    pub status: CustomerStatus,
    /// Industry.
    pub industry: String,
    /// The dataset id.
    pub dataset_id: Option<String>,
    /// The data store it lives on.
    pub data_store: String,
    /// Tier.
    pub tier: Option<String>,
    /// Retention of the tier, in days.
    pub retention_days: Option<u32>,
    /// The dataset's schema version; null before provisioning.
    pub schema_version: Option<i64>,
    /// Tables provisioned.
    pub tables: Vec<TableConfig>,
    /// Attributes.
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Onboarding checklist.
    pub checklist: Vec<ChecklistEntry>,
}

/// Why a dataset operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// No such customer.
    #[error("Customer '{0}' not found")]
    CustomerNotFound(String),
    /// The customer has no dataset to work on.
    #[error("customer '{0}' has no dataset")]
    NoDataset(String),
    /// The dataset's database refused the query.
    #[error("{0}")]
    QueryRefused(String),
    /// The query ran out of time.
    #[error("the query ran longer than {0} ms and was stopped")]
    QueryTimeout(u64),
    /// The product has no such upload adapter.
    #[error("the product has no upload adapter '{0}'")]
    AdapterNotFound(String),
    /// A customer's token lacks the adapter's scope.
    #[error("this action needs the '{0}' scope, which the token does not have")]
    ScopeMissing(String),
    /// A customer's token without the adapter it tried to use.
    #[error("this token may not use the '{0}' adapter; the key's allowed_adapters do not list it")]
    AdapterNotAllowed(String),
    /// Uploads need an active customer.
    #[error("customer '{customer_id}' is {status}; uploads need an active customer")]
    NotActive {
        /// The customer.
        customer_id: String,
        /// Its status.
        status: CustomerStatus,
    },
    /// The adapter's table is not part of the customer's dataset (its tier lacks it).
    #[error("the dataset of '{customer_id}' has no table '{table}': its tier does not include it")]
    TableNotProvisioned {
        /// The customer.
        customer_id: String,
        /// The table.
        table: String,
    },
    /// A data store failed (transient or not).
    #[error(transparent)]
    Backend(DatasetError),
    /// Writing an export failed.
    #[error("cannot write the export: {0}")]
    Export(#[from] std::io::Error),
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<FieldError> for DataError {
    fn from(e: FieldError) -> Self {
        DataError::Invalid(vec![e])
    }
}

impl From<DatasetError> for DataError {
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::QueryRefused(m) => DataError::QueryRefused(m),
            DatasetError::QueryTimeout(ms) => DataError::QueryTimeout(ms),
            other => DataError::Backend(other),
        }
    }
}

impl DataError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DataError::Invalid(_) | DataError::QueryRefused(_) | DataError::QueryTimeout(_) => {
                ErrorKind::Invalid
            }
            DataError::ScopeMissing(_) | DataError::AdapterNotAllowed(_) => ErrorKind::Forbidden,
            DataError::CustomerNotFound(_) | DataError::AdapterNotFound(_) => ErrorKind::NotFound,
            DataError::NoDataset(_)
            | DataError::NotActive { .. }
            | DataError::TableNotProvisioned { .. } => ErrorKind::Conflict,
            DataError::Backend(d) if d.is_transient() => ErrorKind::Unavailable,
            DataError::Backend(_) | DataError::Export(_) => ErrorKind::Internal,
            DataError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            DataError::Invalid(_) => "validation_failed",
            DataError::CustomerNotFound(_) => "customer_not_found",
            DataError::NoDataset(_) => "no_dataset",
            DataError::QueryRefused(_) => "query_refused",
            DataError::QueryTimeout(_) => "query_timeout",
            DataError::AdapterNotFound(_) => "adapter_not_found",
            DataError::ScopeMissing(_) => "insufficient_scope",
            DataError::AdapterNotAllowed(_) => "adapter_not_allowed",
            DataError::NotActive { .. } => "not_active",
            DataError::TableNotProvisioned { .. } => "table_not_provisioned",
            DataError::Backend(d) if d.is_transient() => "unavailable",
            DataError::Backend(_) | DataError::Export(_) => "internal_error",
            DataError::Store(e) => super::store_code(e),
        }
    }
}

/// The datasets capability.
#[derive(Clone)]
pub struct Datasets {
    stores: DataStores,
    pub(super) records: Arc<dyn RunStore>,
    customers: Arc<dyn CustomerStore>,
    pub(super) events: Arc<dyn EventStore>,
    pub(super) product: Arc<Product>,
    pub(super) clock: Arc<dyn Clock>,
    key_hash: Arc<HashSecret>,
}

impl Datasets {
    /// The capability over the product's data stores, the registry's dataset records, customers
    /// and event log, the product, the clock and the secret readers' passwords derive from.
    pub fn new(
        stores: DataStores,
        records: Arc<dyn RunStore>,
        customers: Arc<dyn CustomerStore>,
        events: Arc<dyn EventStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        key_hash: Arc<HashSecret>,
    ) -> Self {
        Self {
            stores,
            records,
            customers,
            events,
            product,
            clock,
            key_hash,
        }
    }

    /// The product's data stores, by name.
    pub fn stores(&self) -> &DataStores {
        &self.stores
    }

    pub(super) async fn customer(&self, customer_id: &str) -> Result<Customer, DataError> {
        self.customers
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| DataError::CustomerNotFound(customer_id.to_owned()))
    }

    pub(super) fn backend_of(
        &self,
        customer: &Customer,
    ) -> Result<&Arc<dyn DatasetBackend>, DataError> {
        self.stores.get(&customer.data_store).ok_or_else(|| {
            DataError::Backend(DatasetError::Permanent(format!(
                "data store '{}' is not in the product",
                customer.data_store
            )))
        })
    }

    /// The password of the dataset's own database login: derived from `KEY_HASH_SECRET` and the
    /// dataset id, so every process sharing the secret computes the same one and none is ever
    /// stored.
    pub fn reader_password(&self, dataset_id: &str) -> ReaderPassword {
        use base64::Engine;
        let key = self
            .key_hash
            .derive(&format!("dataset-reader-password:{dataset_id}"));
        ReaderPassword::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key[..]))
    }

    /// What provisioning `customer` makes: the dataset's spec, its record (after `existing`)
    /// and the event that records it.
    pub(super) fn plan(
        &self,
        customer: &Customer,
        existing: Option<&DatasetRecord>,
    ) -> (DatasetSpec, DatasetRecord, NewEvent) {
        let dataset_id = self.product.dataset_id(customer.id.as_str());
        let spec = DatasetSpec {
            reader_password: self.reader_password(&dataset_id),
            dataset_id,
            tables: self.product.tables_for_tier(customer.usage_tier.as_deref()),
        };
        let tables: Vec<String> = spec.tables.iter().map(|(t, _)| t.clone()).collect();
        let now = self.clock.now();
        let record = DatasetRecord {
            customer_id: customer.id.to_string(),
            dataset_id: spec.dataset_id.clone(),
            data_store: customer.data_store.clone(),
            tier: customer.usage_tier.clone(),
            schema_version: existing
                .map_or(1, |d| d.schema_version + i64::from(d.tables != tables)),
            tables,
            created_at: existing.map_or(now, |d| d.created_at),
            updated_at: now,
        };
        let event = NewEvent {
            body: {
                let changed = DatasetChanged {
                    dataset_id: record.dataset_id.clone(),
                    data_store: record.data_store.clone(),
                    tier: record.tier.clone(),
                    tables: record.tables.clone(),
                    schema_version: record.schema_version,
                };
                if existing.is_some() {
                    EventBody::DatasetUpdated(changed)
                } else {
                    EventBody::DatasetProvisioned(changed)
                }
            },
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            occurred_at: now,
            request_id: None,
        };
        (spec, record, event)
    }

    /// Creates (or completes) the customer's dataset for its tier. Returns the dataset record to
    /// save, with its event, when it is new or its tables changed. Idempotent. `fresh` says the
    /// customer was registered in this same call, so it has no dataset record to look up.
    pub(super) async fn provision(
        &self,
        customer: &Customer,
        fresh: bool,
    ) -> Result<Option<(DatasetRecord, NewEvent)>, DataError> {
        let backend = self.backend_of(customer)?;
        let existing = if fresh {
            None
        } else {
            self.records.get_dataset(&customer.id).await?
        };
        let (spec, record, event) = self.plan(customer, existing.as_ref());
        backend.provision(&spec).await.map_err(DataError::Backend)?;
        if existing.is_some_and(|d| d.tables == record.tables && d.tier == record.tier) {
            return Ok(None);
        }
        Ok(Some((record, event)))
    }

    /// Provisions the customer's dataset for its (new) tier and saves the record.
    pub(super) async fn provision_for(&self, customer: &Customer) -> Result<(), DataError> {
        if let Some((record, event)) = self.provision(customer, false).await? {
            self.records.save_dataset(&record, Some(event)).await?;
        }
        Ok(())
    }

    /// Runs one read-only statement inside the customer's own dataset, bounded in time and rows.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn query(
        &self,
        _actor: &Actor,
        customer_id: &str,
        sql: &str,
    ) -> Result<QueryResult, DataError> {
        let customer = self.customer(customer_id).await?;
        let backend = self.backend_of(&customer)?;
        let sql = check_query(sql, backend.dialect()).map_err(|e| match e {
            QueryRejection::Invalid(e) => DataError::from(e.at("sql")),
            QueryRejection::Refused(reason) => DataError::QueryRefused(reason),
        })?;
        if self.records.get_dataset(&customer.id).await?.is_none() {
            return Err(DataError::NoDataset(customer_id.to_owned()));
        }
        let dataset_id = self.product.dataset_id(customer_id);
        backend
            .query(
                &dataset_id,
                &self.reader_password(&dataset_id),
                &sql,
                self.product.query,
            )
            .await
            .map_err(|e| match e {
                DatasetError::NotFound(_) => DataError::NoDataset(customer_id.to_owned()),
                other => other.into(),
            })
    }

    /// Writes every table of the customer's dataset to `dir/<dataset_id>-<time>/` as JSON Lines
    /// with a `manifest.json` of row counts and SHA-256 checksums.
    pub(super) async fn export(
        &self,
        customer: &Customer,
        dir: &Path,
    ) -> Result<Option<ExportInfo>, DataError> {
        let backend = self.backend_of(customer)?;
        let dataset_id = self.product.dataset_id(customer.id.as_str());
        let Some(tables) = backend
            .describe(&dataset_id)
            .await
            .map_err(DataError::Backend)?
        else {
            return Ok(None);
        };
        let target: PathBuf = dir.join(format!(
            "{dataset_id}-{}",
            self.clock.now().format("%Y%m%dT%H%M%S%.6fZ")
        ));
        std::fs::create_dir_all(&target)?;
        let mut exported = Vec::new();
        for table in tables.keys() {
            let rows = backend
                .table_rows(&dataset_id, table)
                .await
                .map_err(DataError::Backend)?;
            exported.push(write_table_export(&target, table, &rows)?);
        }
        let manifest = ExportManifest {
            dataset_id,
            tables: exported,
        };
        let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        std::fs::write(target.join("manifest.json"), &bytes)?;
        Ok(Some(ExportInfo {
            path: target.display().to_string(),
            manifest_sha256: hex::encode(Sha256::digest(&bytes)),
            manifest,
        }))
    }

    /// Drops the customer's dataset (retrying transient failures) and forgets its record.
    pub(super) async fn drop(&self, customer_id: &str, reason: &str) -> Result<(), DataError> {
        let customer = self.customer(customer_id).await?;
        let dataset_id = self.product.dataset_id(customer_id);
        if let Some(backend) = self.stores.get(&customer.data_store) {
            let retry = self.product.retry;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match backend.drop_dataset(&dataset_id).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && attempt < retry.max_attempts => {
                        tokio::time::sleep(Duration::from_millis(retry.base_ms << attempt.min(10)))
                            .await;
                    }
                    Err(e) => return Err(DataError::Backend(e)),
                }
            }
        }
        // Dropping is recorded even when the dataset never made it into the registry (its step
        // failed or was cut off before its record was saved): it may have existed.
        let recorded = self.records.get_dataset(&customer.id).await?.is_some();
        let event = NewEvent {
            body: EventBody::DatasetDropped(DatasetDropped {
                dataset_id,
                reason: reason.to_owned(),
                was_recorded: recorded,
            }),
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            occurred_at: self.clock.now(),
            request_id: None,
        };
        if recorded {
            self.records.delete_dataset(&customer.id, event).await?;
        } else {
            self.events.append_event(event).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceError;

    #[test]
    fn data_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        let cases = [
            (
                DataError::from(
                    crate::domain::Invalid::new("required", "sql is required").at("sql"),
                ),
                K::Invalid,
                "validation_failed",
            ),
            (
                DataError::NoDataset("acme".into()),
                K::Conflict,
                "no_dataset",
            ),
            (
                DataError::from(DatasetError::QueryRefused("no such table: x".into())),
                K::Invalid,
                "query_refused",
            ),
            (
                DataError::from(DatasetError::QueryTimeout(2000)),
                K::Invalid,
                "query_timeout",
            ),
            (
                DataError::AdapterNotFound("ship".into()),
                K::NotFound,
                "adapter_not_found",
            ),
            (
                DataError::ScopeMissing("ship:upload".into()),
                K::Forbidden,
                "insufficient_scope",
            ),
            (
                DataError::AdapterNotAllowed("ship".into()),
                K::Forbidden,
                "adapter_not_allowed",
            ),
            (
                DataError::NotActive {
                    customer_id: "acme".into(),
                    status: CustomerStatus::Inactive,
                },
                K::Conflict,
                "not_active",
            ),
            (
                DataError::TableNotProvisioned {
                    customer_id: "acme".into(),
                    table: "shipments".into(),
                },
                K::Conflict,
                "table_not_provisioned",
            ),
            (
                DataError::from(DatasetError::Transient("busy".into())),
                K::Unavailable,
                "unavailable",
            ),
            (
                DataError::from(DatasetError::Permanent("gone".into())),
                K::Internal,
                "internal_error",
            ),
        ];
        crate::services::error::assert_classified(cases);
        let busy = ServiceError::from(DataError::from(DatasetError::Transient("pool".into())));
        assert_eq!(
            busy.public_message(),
            "a dataset store is busy or unreachable; retry shortly"
        );
    }
}
