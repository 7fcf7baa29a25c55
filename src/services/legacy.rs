//! Legacy tenants: the PaidSocialNav `tenants.yaml`, read as a fallback for customers not yet
//! in the registry, and imported into it.
//!
//! ```yaml
//! tenants:
//!   legacyclient:
//!     project_id: legacy-project-123
//!     dataset: paid_social
//!     default_level: campaign
//! ```
//! `name` and `industry` are read as the customer's name and industry; every other field maps
//! to an attribute (through the product's `[legacy] fields`, or by its own name).

use crate::domain::events::{EventBody, LegacyImported};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

use super::customers::OnboardRequest;
use super::customers::{CustomerError, Customers};
use super::views::{ContactView, CustomerView, Source};
use super::Actor;
use crate::domain::{CustomerStatus, FieldError, NewEvent, Role};
use crate::product::{Legacy, Problem, Product, ProductError};

#[derive(Deserialize)]
struct TenantsFile {
    #[serde(default)]
    tenants: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>>,
}

/// The product's legacy tenants, read once at start.
#[derive(Debug, Default)]
pub struct LegacyTenants {
    tenants: BTreeMap<String, BTreeMap<String, String>>,
    config: Option<Legacy>,
}

fn read_tenants(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>, ProductError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProductError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: TenantsFile = serde_yaml_ng::from_str(&text).map_err(|e| ProductError::Invalid {
        source_name: path.display().to_string(),
        problems: vec![Problem {
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        }],
    })?;
    Ok(file
        .tenants
        .into_iter()
        .map(|(id, fields)| {
            let fields = fields
                .into_iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_yaml_ng::Value::String(s) => s,
                        serde_yaml_ng::Value::Number(n) => n.to_string(),
                        serde_yaml_ng::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k, text))
                })
                .collect();
            (id, fields)
        })
        .collect())
}

/// How one legacy tenant fared in an import.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum ImportOutcome {
    /// Registered.
    Created {
        /// The customer.
        customer_id: String,
    },
    /// Already in the registry; left as it is.
    Skipped {
        /// The customer.
        customer_id: String,
    },
    /// Refused by validation.
    Refused {
        /// The tenant key.
        customer_id: String,
        /// Why.
        errors: Vec<FieldError>,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportSummary {
    /// Tenants registered.
    pub created: usize,
    /// Tenants already registered.
    pub skipped: usize,
    /// Tenants refused.
    pub refused: usize,
    /// One outcome per tenant, in file order.
    pub outcomes: Vec<ImportOutcome>,
}

impl LegacyTenants {
    /// Reads the product's tenants file, if it names one.
    pub fn load(product: &Product) -> Result<Self, ProductError> {
        let Some(config) = &product.legacy else {
            return Ok(Self::default());
        };
        Ok(Self {
            tenants: read_tenants(&config.tenants_file)?,
            config: Some(config.clone()),
        })
    }

    fn attribute_name<'a>(&'a self, yaml_field: &'a str) -> &'a str {
        self.config
            .as_ref()
            .and_then(|c| c.fields.get(yaml_field))
            .map_or(yaml_field, String::as_str)
    }

    /// A legacy tenant as a customer view, marked `source: legacy`.
    pub fn view(&self, customer_id: &str) -> Option<CustomerView> {
        let fields = self.tenants.get(customer_id)?;
        let industry = fields
            .get("industry")
            .cloned()
            .or_else(|| self.config.as_ref().map(|c| c.industry.clone()));
        let attributes = fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "name" | "industry"))
            .map(|(k, v)| (self.attribute_name(k).to_owned(), json!(v)))
            .collect();
        Some(CustomerView {
            customer_id: customer_id.to_owned(),
            customer_name: fields
                .get("name")
                .cloned()
                .unwrap_or_else(|| customer_id.to_owned()),
            industry,
            data_store: None,
            dataset_id: None,
            status: CustomerStatus::Active,
            tags: vec![],
            attributes,
            contact: ContactView::default(),
            created_by: None,
            usage_tier: None,
            test_clock_id: None,
            version: 0,
            created_at: None,
            updated_at: None,
            source: Source::Legacy,
        })
    }
}

impl Customers {
    /// Imports a legacy tenants file into the registry. Tenants already registered are skipped,
    /// so running it again changes nothing. `progress` is called after each tenant.
    #[tracing::instrument(skip_all)]
    pub async fn import_legacy(
        &self,
        actor: &Actor,
        path: &Path,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ImportSummary, CustomerError> {
        actor.may(Role::Operator)?;
        let tenants = read_tenants(path)?;
        let reader = LegacyTenants {
            tenants: BTreeMap::new(),
            config: self.product.legacy.clone(),
        };
        let default_industry = reader
            .config
            .as_ref()
            .map_or_else(|| "other".to_owned(), |c| c.industry.clone());
        let mut summary = ImportSummary::default();
        let total = tenants.len();
        for (i, (key, fields)) in tenants.iter().enumerate() {
            let mut attributes = serde_json::Map::new();
            for (k, v) in fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "industry"))
            {
                let name = reader.attribute_name(k).to_owned();
                let value = match self.product.attributes.get(&name).map(|d| d.kind) {
                    Some(crate::product::AttributeKind::List) => {
                        json!(v.split(',').map(str::trim).collect::<Vec<_>>())
                    }
                    _ => json!(v),
                };
                attributes.insert(name, value);
            }
            let req = OnboardRequest {
                customer_id: Some(key.clone()),
                customer_name: Some(fields.get("name").cloned().unwrap_or_else(|| key.clone())),
                industry: Some(
                    fields
                        .get("industry")
                        .cloned()
                        .unwrap_or_else(|| default_industry.clone()),
                ),
                attributes,
                created_by: Some(format!(
                    "import:{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                )),
                ..OnboardRequest::default()
            };
            let outcome = match self.onboard(actor, &req, None).await {
                Ok(_) => ImportOutcome::Created {
                    customer_id: key.clone(),
                },
                Err(CustomerError::Exists(_)) => ImportOutcome::Skipped {
                    customer_id: key.clone(),
                },
                Err(CustomerError::Invalid(errors)) => ImportOutcome::Refused {
                    customer_id: key.clone(),
                    errors,
                },
                Err(other) => return Err(other),
            };
            match outcome {
                ImportOutcome::Created { .. } => summary.created += 1,
                ImportOutcome::Skipped { .. } => summary.skipped += 1,
                ImportOutcome::Refused { .. } => summary.refused += 1,
            }
            summary.outcomes.push(outcome);
            progress(i + 1, total);
        }
        if summary.created > 0 {
            self.store
                .append_event(NewEvent {
                    body: EventBody::LegacyImported(LegacyImported {
                        file: path.display().to_string(),
                        created: summary.created as u64,
                        skipped: summary.skipped as u64,
                        refused: summary.refused as u64,
                    }),
                    actor: actor.name.clone(),
                    customer_id: None,
                    occurred_at: self.clock.now(),
                    request_id: actor.request_id.clone(),
                })
                .await?;
        }
        Ok(summary)
    }
}
