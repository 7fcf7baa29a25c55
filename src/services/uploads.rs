//! Uploads (seed 003's first upload): a customer's own access token loads a CSV file into a
//! table of its dataset through one of the product's adapters. The token needs the adapter's
//! scope and the adapter in its key's `allowed_adapters`; the file is checked whole before a row
//! is written, and the rows go in one transaction, so a refused file loads nothing.

use crate::domain::events::{DatasetUploaded, EventBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::datasets::{DataError, Datasets};
use super::tenant_tokens::TenantPrincipal;
use crate::domain::upload::parse_csv;
use crate::domain::{CustomerId, CustomerStatus, NewEvent};
use crate::store::datasets::DatasetError;

/// What an upload loaded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadReceipt {
    /// The customer.
    pub customer_id: String,
    /// The adapter used.
    pub adapter: String,
    /// The dataset written to.
    pub dataset_id: String,
    /// The table written to.
    pub table: String,
    /// Rows added.
    pub rows_loaded: u64,
    /// The columns the file named, in its order.
    pub columns: Vec<String>,
    /// SHA-256 of the file as received.
    pub sha256: String,
}

impl Datasets {
    /// Loads a file into the customer's dataset through `adapter_name`.
    #[tracing::instrument(skip_all, fields(customer_id = %p.customer_id, adapter = adapter_name))]
    pub async fn upload(
        &self,
        p: &TenantPrincipal,
        adapter_name: &str,
        body: &[u8],
    ) -> Result<UploadReceipt, DataError> {
        let adapter = self
            .product
            .adapters
            .get(adapter_name)
            .ok_or_else(|| DataError::AdapterNotFound(adapter_name.to_owned()))?;
        if !p.scopes.contains(&adapter.scope) {
            return Err(DataError::ScopeMissing(adapter.scope.clone()));
        }
        if !p.adapters.iter().any(|a| a == adapter_name) {
            return Err(DataError::AdapterNotAllowed(adapter_name.to_owned()));
        }
        let customer = self.customer(&p.customer_id).await?;
        if customer.status != CustomerStatus::Active {
            return Err(DataError::NotActive {
                customer_id: p.customer_id.clone(),
                status: customer.status,
            });
        }
        let dataset = self
            .records
            .get_dataset(&customer.id)
            .await?
            .ok_or_else(|| DataError::NoDataset(p.customer_id.clone()))?;
        if !dataset.tables.contains(&adapter.table) {
            return Err(DataError::TableNotProvisioned {
                customer_id: p.customer_id.clone(),
                table: adapter.table.clone(),
            });
        }
        let columns: Vec<(&str, &str)> = self
            .product
            .tables
            .get(&adapter.table)
            .map(|cols| {
                cols.iter()
                    .map(|c| (c.name.as_str(), c.column_type.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let rows = parse_csv(body, &adapter.table, &columns, adapter.max_rows)
            .map_err(DataError::Invalid)?;
        let backend = self.backend_of(&customer)?;
        let rows_loaded = backend
            .insert_rows(&dataset.dataset_id, &adapter.table, &rows)
            .await
            .map_err(|e| match e {
                DatasetError::NotFound(_) => DataError::NoDataset(p.customer_id.clone()),
                other => DataError::Backend(other),
            })?;
        let receipt = UploadReceipt {
            customer_id: p.customer_id.clone(),
            adapter: adapter_name.to_owned(),
            dataset_id: dataset.dataset_id,
            table: adapter.table.clone(),
            rows_loaded,
            columns: rows.columns,
            sha256: hex::encode(Sha256::digest(body)),
        };
        let actor = p.actor();
        self.events
            .append_event(NewEvent {
                body: EventBody::DatasetUploaded(DatasetUploaded {
                    adapter: receipt.adapter.clone(),
                    table: receipt.table.clone(),
                    rows_loaded: receipt.rows_loaded,
                    bytes: body.len() as u64,
                    sha256: receipt.sha256.clone(),
                }),
                actor: actor.name,
                customer_id: Some(CustomerId::from_trusted(p.customer_id.clone())),
                occurred_at: self.clock.now(),
                request_id: None,
            })
            .await?;
        tracing::info!(rows = rows_loaded, table = %receipt.table, "upload loaded");
        Ok(receipt)
    }
}
