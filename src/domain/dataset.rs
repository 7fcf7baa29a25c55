//! What deleting a customer's dataset leaves behind: the export's manifest and the deletion
//! receipt, returned by offboarding and kept in its event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One exported table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ExportedTable {
    /// Table name.
    pub name: String,
    /// File, relative to the export directory (JSON Lines, one object per row).
    pub file: String,
    /// How many rows.
    pub rows: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// The manifest of a dataset export, written beside the table files as `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ExportManifest {
    /// The dataset.
    pub dataset_id: String,
    /// The tables.
    pub tables: Vec<ExportedTable>,
}

/// Where an export went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ExportInfo {
    /// The export's directory.
    pub path: String,
    /// SHA-256 of its `manifest.json`.
    pub manifest_sha256: String,
    /// The manifest.
    pub manifest: ExportManifest,
}

/// What deleting a customer's data removed: returned by offboarding and kept as an event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeletionReceipt {
    /// The customer.
    pub customer_id: String,
    /// The dataset removed, if there was one.
    pub dataset_id: Option<String>,
    /// Its tables.
    pub tables_removed: Vec<String>,
    /// The contact, tag and attribute fields cleared from the record.
    pub fields_cleared: Vec<String>,
    /// When.
    pub deleted_at: DateTime<Utc>,
    /// By whom.
    pub deleted_by: String,
    /// The export taken first, if asked for.
    pub export: Option<ExportInfo>,
    /// The credential types whose every stored version was destroyed.
    #[serde(default)]
    pub credentials_destroyed: Vec<String>,
}
