//! The customer record as the registry holds it.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

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
    /// Optimistic-concurrency version: 1 on creation, +1 on every change.
    pub version: i64,
    /// When the customer was registered.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}
