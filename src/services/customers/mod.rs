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

mod change;
mod error;
mod register;
mod requests;

pub use error::CustomerError;
use requests::*;
pub use requests::{
    ContactInput, ListQuery, OffboardRequest, OffboardResult, OnboardRequest, Onboarded,
    UpdateRequest, DEFAULT_PAGE, MAX_PAGE,
};

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
    accounts: crate::services::accounts::Accounts,
    billing: crate::services::billing::Billing,
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
        accounts: crate::services::accounts::Accounts,
        billing: crate::services::billing::Billing,
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
            accounts,
            billing,
        }
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
}
