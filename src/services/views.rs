//! What the use cases return: the JSON shapes every interface shows (the API's bodies, the
//! CLI's `--format json`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::domain::customer::{ContactView, CustomerView, Source};
use crate::domain::run::{RunStatus, StepStatus};
use crate::domain::{Customer, CustomerStatus};
use crate::product::Product;

impl CustomerView {
    /// The view of a registry record.
    pub fn of(c: &Customer, product: &Product) -> Self {
        Self {
            customer_id: c.id.to_string(),
            customer_name: c.name.as_str().to_owned(),
            industry: Some(c.industry.clone()),
            data_store: Some(c.data_store.clone()),
            dataset_id: (c.status != CustomerStatus::Deleted)
                .then(|| product.dataset_id(c.id.as_str())),
            status: c.status,
            tags: c.tags.to_strings(),
            attributes: c
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            contact: ContactView {
                email: c.contact.email.as_ref().map(|e| e.as_str().to_owned()),
                name: c.contact.name.clone(),
            },
            created_by: c.created_by.clone(),
            usage_tier: c.usage_tier.clone(),
            test_clock_id: c.test_clock_id.clone(),
            version: c.version,
            created_at: Some(c.created_at),
            updated_at: Some(c.updated_at),
            source: Source::Registry,
        }
    }
}

/// One page of customers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerList {
    /// The customers, ordered by id.
    pub items: Vec<CustomerView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// How one onboarding step went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepResult {
    /// Step name (`validate`, `register`, `provision_dataset`, ...).
    pub name: String,
    /// pending, running, succeeded, failed, compensated or skipped.
    pub status: StepStatus,
    /// How many times it started.
    pub attempts: u32,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The last error.
    pub error: Option<String>,
}

/// The orchestrator's result, as the GrowthNav seed names it, for one persisted run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OnboardingResult {
    /// The run.
    pub run_id: String,
    /// running, succeeded, compensating or failed.
    pub status: RunStatus,
    /// Whether every step succeeded.
    pub is_success: bool,
    /// The customer.
    pub customer_id: String,
    /// The customer's dataset id.
    pub dataset_id: Option<String>,
    /// Wall time of the whole onboarding.
    pub duration_seconds: f64,
    /// What went wrong, if anything.
    pub errors: Vec<String>,
    /// The steps run, in order.
    pub steps: Vec<StepResult>,
}

/// The answer to an onboarding request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OnboardResponse {
    /// The registered customer.
    pub customer: CustomerView,
    /// How onboarding went.
    pub onboarding: OnboardingResult,
}
