//! Customer datasets as the use cases see them: provisioning for a tier, the read-only query,
//! the resolved configuration, and deletion with an export and a receipt.

use crate::domain::events::{DatasetChanged, EventBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

use super::onboarding::ChecklistEntry;
use super::{Actor, ServiceError, Services};
pub use crate::domain::dataset::{DeletionReceipt, ExportInfo};
use crate::domain::query::{check_query, QueryRejection};
use crate::domain::{Customer, CustomerStatus, NewEvent};
use crate::store::datasets::{
    write_table_export, DatasetBackend, DatasetError, DatasetSpec, ExportManifest, QueryResult,
    ReaderPassword,
};
use crate::store::DatasetRecord;

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

fn dataset_error(e: DatasetError) -> ServiceError {
    match e {
        DatasetError::QueryRefused(m) => ServiceError::QueryRefused(m),
        DatasetError::QueryTimeout(ms) => ServiceError::QueryTimeout(ms),
        other => ServiceError::Dataset(other),
    }
}

impl Services {
    pub(super) fn backend_of(
        &self,
        customer: &Customer,
    ) -> Result<&Arc<dyn DatasetBackend>, ServiceError> {
        self.datasets.get(&customer.data_store).ok_or_else(|| {
            ServiceError::Dataset(DatasetError::Permanent(format!(
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

    /// Whether onboarding `customer` creates its dataset in the registering transaction: its
    /// data store lives in the registry's database and no injected fault needs the step alone.
    pub(super) fn provisions_at_registration(&self, customer: &Customer) -> bool {
        self.product.provisions_datasets()
            && self.datasets.in_registry(&customer.data_store)
            && self.store.provisions_datasets_in_registry()
            && !self.runner.faults.targets("provision_dataset")
    }

    /// What provisioning `customer` makes: the dataset's spec, its record (after `existing`)
    /// and the event that records it.
    pub(super) fn dataset_plan(
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
    ) -> Result<Option<(DatasetRecord, NewEvent)>, ServiceError> {
        let backend = self.backend_of(customer)?;
        let existing = if fresh {
            None
        } else {
            self.store.get_dataset(customer.id.as_str()).await?
        };
        let (spec, record, event) = self.dataset_plan(customer, existing.as_ref());
        backend
            .provision(&spec)
            .await
            .map_err(ServiceError::Dataset)?;
        if existing.is_some_and(|d| d.tables == record.tables && d.tier == record.tier) {
            return Ok(None);
        }
        Ok(Some((record, event)))
    }

    /// Provisions the customer's dataset for its (new) tier and saves the record.
    pub(super) async fn provision_dataset_for(
        &self,
        customer: &Customer,
    ) -> Result<(), ServiceError> {
        if let Some((record, event)) = self.provision(customer, false).await? {
            self.store.save_dataset(&record, Some(event)).await?;
        }
        Ok(())
    }

    /// Runs one read-only statement inside the customer's own dataset, bounded in time and rows.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn query_dataset(
        &self,
        _actor: &Actor,
        customer_id: &str,
        sql: &str,
    ) -> Result<QueryResult, ServiceError> {
        let customer = self.current(customer_id).await?;
        let backend = self.backend_of(&customer)?;
        let sql = check_query(sql, backend.dialect()).map_err(|e| match e {
            QueryRejection::Invalid(e) => ServiceError::from(e.at("sql")),
            QueryRejection::Refused(reason) => ServiceError::QueryRefused(reason),
        })?;
        if self.store.get_dataset(customer_id).await?.is_none() {
            return Err(ServiceError::NoDataset(customer_id.to_owned()));
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
                DatasetError::NotFound(_) => ServiceError::NoDataset(customer_id.to_owned()),
                other => dataset_error(other),
            })
    }

    /// The customer's resolved configuration: dataset, tier, tables, attributes, checklist.
    #[tracing::instrument(skip_all, level = "debug", fields(customer_id = customer_id))]
    pub async fn customer_config(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<CustomerConfig, ServiceError> {
        let customer = self.current(customer_id).await?;
        let dataset = self.store.get_dataset(customer_id).await?;
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
        let checklist = match self.onboarding_status(actor, customer_id).await {
            Ok(status) => status.checklist,
            Err(ServiceError::CustomerNotFound(_)) => vec![],
            Err(e) => return Err(e),
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

    /// Writes every table of the customer's dataset to `dir/<dataset_id>-<time>/` as JSON Lines
    /// with a `manifest.json` of row counts and SHA-256 checksums.
    async fn export_dataset(
        &self,
        customer: &Customer,
        dir: &Path,
    ) -> Result<Option<ExportInfo>, ServiceError> {
        let backend = self.backend_of(customer)?;
        let dataset_id = self.product.dataset_id(customer.id.as_str());
        let Some(tables) = backend
            .describe(&dataset_id)
            .await
            .map_err(ServiceError::Dataset)?
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
                .map_err(ServiceError::Dataset)?;
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

    /// Exports (when asked) and drops the customer's dataset; returns the receipt.
    pub(super) async fn delete_customer_data(
        &self,
        actor: &Actor,
        customer: &Customer,
        export: bool,
        export_dir: Option<&Path>,
    ) -> Result<DeletionReceipt, ServiceError> {
        let dataset = self.store.get_dataset(customer.id.as_str()).await?;
        let export = if export {
            let dir = export_dir.map_or_else(|| self.runner.exports_dir.clone(), Path::to_path_buf);
            self.export_dataset(customer, &dir).await?
        } else {
            None
        };
        self.undo_dataset(customer.id.as_str(), "customer offboarded with its data")
            .await?;
        let credentials_destroyed = self
            .vault
            .destroy_all_credentials(
                actor,
                customer.id.as_str(),
                "customer offboarded with its data",
            )
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
}
