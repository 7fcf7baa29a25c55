//! Onboarding steps as types: each step of the catalogue ([`crate::domain::run::STEP_CATALOGUE`],
//! where its name, dependencies and read-only flag are declared) is a [`Step`] with its work and
//! its undo. The [`StepRegistry`] holds one of each; the services refuse to start when a step
//! the product runs has no implementation, so a product file is checked against both the
//! catalogue (at parse) and the registry (at start).
//!
//! A new step is a `StepKind` in the catalogue, a type here, and a line in
//! [`StepRegistry::builtin`]. Every step is idempotent: running it again after a crash is safe.

use async_trait::async_trait;
use serde_json::json;
use std::collections::BTreeMap;

use super::credentials::VaultError;
use super::datasets::DataError;
use super::onboarding::{Onboarding, RunError};
use crate::domain::run::{step_kind, StepKind};
use crate::domain::{Customer, CustomerId, NewEvent};
use crate::store::datasets::DatasetError;
use crate::store::{DatasetRecord, RunRecord, StoreError};

/// Why one attempt of a step failed.
#[derive(Debug)]
pub struct StepError {
    /// Whether another attempt may succeed.
    pub transient: bool,
    /// What went wrong.
    pub message: String,
}

impl StepError {
    /// A failure another attempt cannot mend.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

impl From<DatasetError> for StepError {
    fn from(e: DatasetError) -> Self {
        StepError {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<DataError> for StepError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Backend(d) => d.into(),
            DataError::Store(s) => s.into(),
            other => StepError::permanent(other.to_string()),
        }
    }
}

impl From<VaultError> for StepError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => s.into(),
            other => StepError::permanent(other.to_string()),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        let transient =
            matches!(&e, StoreError::Database(db) if crate::store::datasets::classify_ref(db));
        StepError {
            transient,
            message: e.to_string(),
        }
    }
}

/// What a step produced that its run saves with the step's success: the dataset record it
/// made and its event.
pub type StepOutput = Option<(DatasetRecord, NewEvent)>;

/// The run and customer a step works for.
pub struct StepContext<'a> {
    /// The onboarding capability, for the step's work (its vault, datasets and product).
    pub onboarding: &'a Onboarding,
    /// The run.
    pub run: &'a RunRecord,
    /// The customer, as the run read it.
    pub customer: &'a Customer,
    /// Whether the run is new (nothing it made exists yet).
    pub fresh: bool,
}

/// One onboarding step: its declaration in the catalogue, its work and its undo.
#[async_trait]
pub trait Step: Send + Sync {
    /// Its declaration: name, dependencies, whether it only reads.
    fn kind(&self) -> &'static StepKind;

    /// Does the step's work.
    async fn perform(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError>;

    /// Undoes what the step did, when its run rolls back. Steps that change nothing outside
    /// the run's own records have nothing to undo.
    async fn compensate(
        &self,
        _onboarding: &Onboarding,
        _customer: &CustomerId,
        _reason: &str,
    ) -> Result<(), RunError> {
        Ok(())
    }
}

fn declared(name: &str) -> &'static StepKind {
    step_kind(name).expect("every registered step is declared in the catalogue")
}

/// A step whose work happens outside the run's step loop: `validate` and `register` at
/// registration (the request is checked, then the customer and its run are recorded in one
/// transaction), and `activate` in the transaction that ends the run.
struct DoneElsewhere(&'static str);

#[async_trait]
impl Step for DoneElsewhere {
    fn kind(&self) -> &'static StepKind {
        declared(self.0)
    }
    async fn perform(&self, _cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        Ok(None)
    }
}

/// `store_credentials`: the request's staged credentials go into the vault.
struct StoreCredentials;

#[async_trait]
impl Step for StoreCredentials {
    fn kind(&self) -> &'static StepKind {
        declared("store_credentials")
    }
    async fn perform(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        cx.onboarding
            .vault
            .store_staged_credentials(&cx.customer.id, &cx.run.run_id)
            .await?;
        Ok(None)
    }
    async fn compensate(
        &self,
        onboarding: &Onboarding,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<(), RunError> {
        Ok(onboarding.vault.undo_credentials(customer, reason).await?)
    }
}

/// `provision_dataset`: the customer's dataset and its tier's tables.
struct ProvisionDataset;

#[async_trait]
impl Step for ProvisionDataset {
    fn kind(&self) -> &'static StepKind {
        declared("provision_dataset")
    }
    async fn perform(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        Ok(cx
            .onboarding
            .datasets
            .provision(cx.customer, cx.fresh)
            .await?)
    }
    async fn compensate(
        &self,
        onboarding: &Onboarding,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<(), RunError> {
        Ok(onboarding.datasets.drop(customer.as_str(), reason).await?)
    }
}

/// `verify_dataset`: runs the seed's `SELECT 1 AS test` through the query path and checks every
/// table and column the tier should have.
struct VerifyDataset;

#[async_trait]
impl Step for VerifyDataset {
    fn kind(&self) -> &'static StepKind {
        declared("verify_dataset")
    }
    async fn perform(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let (s, customer) = (cx.onboarding, cx.customer);
        let backend = s
            .datasets
            .stores()
            .get(&customer.data_store)
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "data store '{}' is not in the product",
                    customer.data_store
                ))
            })?;
        let dataset_id = s.product.dataset_id(customer.id.as_str());
        let expected = s.product.tables_for_tier(customer.usage_tier.as_deref());
        let names: Vec<String> = expected.iter().map(|(t, _)| t.clone()).collect();
        let (result, tables) = backend.verify(&dataset_id, s.product.query, &names).await?;
        if result.rows != vec![vec![json!(1)]] {
            return Err(StepError::permanent(format!(
                "SELECT 1 AS test returned {:?}",
                result.rows
            )));
        }
        let tables = tables.ok_or_else(|| {
            StepError::permanent(format!("dataset '{dataset_id}' does not exist"))
        })?;
        for (table, columns) in expected {
            let found = tables
                .get(&table)
                .ok_or_else(|| StepError::permanent(format!("table '{table}' is missing")))?;
            for c in columns {
                if !found.contains(&c.name) {
                    return Err(StepError::permanent(format!(
                        "table '{table}' lacks column '{}'",
                        c.name
                    )));
                }
            }
        }
        Ok(None)
    }
}

/// Every step Onramp can run, by name.
pub struct StepRegistry {
    steps: BTreeMap<&'static str, Box<dyn Step>>,
}

impl StepRegistry {
    /// The built-in steps: one per catalogue entry.
    pub fn builtin() -> Self {
        let steps: Vec<Box<dyn Step>> = vec![
            Box::new(DoneElsewhere("validate")),
            Box::new(DoneElsewhere("register")),
            Box::new(StoreCredentials),
            Box::new(ProvisionDataset),
            Box::new(VerifyDataset),
            Box::new(DoneElsewhere("activate")),
        ];
        Self {
            steps: steps.into_iter().map(|s| (s.kind().name, s)).collect(),
        }
    }

    /// The step of this name.
    pub fn get(&self, name: &str) -> Option<&dyn Step> {
        self.steps.get(name).map(|s| s.as_ref())
    }

    /// Checks a product's steps against the registry: every step it runs has an
    /// implementation. Returns the names that have none.
    pub fn missing(&self, steps: &[String]) -> Vec<String> {
        steps
            .iter()
            .filter(|s| !self.steps.contains_key(s.as_str()))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::run::STEP_CATALOGUE;

    #[test]
    fn a_step_retries_what_a_store_reports_as_passing_and_nothing_else() {
        let busy = || StoreError::Database(sqlx::Error::PoolTimedOut);
        assert!(StepError::from(DataError::Store(busy())).transient);
        assert!(StepError::from(VaultError::Store(busy())).transient);
        assert!(
            StepError::from(DataError::Backend(DatasetError::Transient("io".into()))).transient
        );
        assert!(
            !StepError::from(DataError::Backend(DatasetError::Permanent("x".into()))).transient
        );
        assert!(!StepError::from(DataError::NoDataset("acme".into())).transient);
        assert!(!StepError::from(VaultError::Unreadable("api_key".into())).transient);
    }

    #[test]
    fn every_declared_step_has_an_implementation_and_no_more() {
        let registry = StepRegistry::builtin();
        assert_eq!(registry.steps.len(), STEP_CATALOGUE.len());
        let all: Vec<String> = STEP_CATALOGUE.iter().map(|k| k.name.to_owned()).collect();
        assert!(registry.missing(&all).is_empty());
        assert_eq!(
            registry.missing(&["validate".into(), "send_fax".into()]),
            ["send_fax"]
        );
    }
}
