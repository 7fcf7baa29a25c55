//! The customer record as the registry holds it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::{AttributeValue, CustomerId, CustomerName, CustomerStatus, Email, Tags};

/// Who to talk to at the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// The primary contact's email address.
    pub email: Option<Email>,
    /// The primary contact's name.
    pub name: Option<String>,
}

/// One customer (a tenant) in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Unique, immutable id.
    pub id: CustomerId,
    /// Display name.
    pub name: CustomerName,
    /// Industry id, one of the product's industries.
    pub industry: String,
    /// The product data store that holds this customer's dataset.
    pub data_store: String,
    /// Lifecycle status.
    pub status: CustomerStatus,
    /// Classification tags.
    pub tags: Tags,
    /// Product-defined fields, checked against the product's attribute rules.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Primary contact.
    pub contact: Contact,
    /// Who asked for the onboarding (free text, usually an email).
    pub created_by: Option<String>,
    /// The product tier the customer is on.
    pub usage_tier: Option<String>,
    /// The test clock whose time the customer's billing follows (never in production).
    pub test_clock_id: Option<String>,
    /// Optimistic-concurrency version: 1 on creation, +1 on every change.
    pub version: i64,
    /// When the customer was registered.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a customer record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The registry.
    Registry,
    /// The product's legacy tenants file; not yet imported.
    Legacy,
}

/// A customer's contact.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ContactView {
    /// Primary contact email.
    pub email: Option<String>,
    /// Primary contact name.
    pub name: Option<String>,
}

/// A customer as every interface shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CustomerView {
    /// Unique id.
    pub customer_id: String,
    /// Display name.
    pub customer_name: String,
    /// Industry id.
    pub industry: Option<String>,
    /// Data store holding the customer's dataset.
    pub data_store: Option<String>,
    /// The dataset id, from the product's template.
    pub dataset_id: Option<String>,
    /// Lifecycle status.
    pub status: CustomerStatus,
    /// Tags.
    pub tags: Vec<String>,
    /// Product-defined attributes: a string or a list of strings each.
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Contact.
    pub contact: ContactView,
    /// Who asked for the onboarding.
    pub created_by: Option<String>,
    /// Product tier.
    pub usage_tier: Option<String>,
    /// The test clock whose time the customer's billing follows, when attached to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_clock_id: Option<String>,
    /// Version for `If-Match`; 0 for legacy records.
    pub version: i64,
    /// Registration time.
    pub created_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// Where the record comes from.
    pub source: Source,
}
