//! Billing: what the product sells (its catalog of plans, cycles and metrics) and, per
//! customer, the trial, the subscription, the usage metered and the entitlements it buys.
//!
//! **Time.** Each customer's billing runs on its own "now": real time, or the time of the test
//! clock it was attached to at onboarding (never in production). Work a trial's clock brings
//! (its reminder, its expiry, the end of its grace) is stored as the row's `next_at` and done
//! by [`Billing::run_due`] (the `billing.due` job, for real time) or by advancing a test clock,
//! which does every piece of its customers' work that falls due on the way, in time order,
//! before it answers. Each piece is saved against the version it read, so however many
//! processes run the job, none is done twice.
//!
//! The capability is [`Billing`]; it refuses with a [`BillingError`].

mod clocks;
mod error;
mod trials;
mod views;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use super::credentials::Vault;
use super::{Actor, Clock};
use crate::domain::Customer;
use crate::product::Product;
use crate::store::Store;

pub use clocks::{AdvanceTestClock, NewTestClock, TestClockList, TestClockView};
pub use error::BillingError;
pub use trials::{ExtendTrial, StartTrial, TrialView};
pub use views::{CycleView, MetricView, PlanList, PlanView, TrialPolicyView};

/// The billing capability.
#[derive(Clone)]
pub struct Billing {
    store: Arc<dyn Store>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
    vault: Vault,
    test_clocks: bool,
}

impl Billing {
    /// Billing over the registry and the product's catalog; `test_clocks` says whether test
    /// clocks may be made and used (never in production).
    pub fn new(
        store: Arc<dyn Store>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        vault: Vault,
        test_clocks: bool,
    ) -> Self {
        Self {
            store,
            product,
            clock,
            vault,
            test_clocks,
        }
    }

    /// The catalog: every plan with its prices per cycle and its limits, the metrics, and the
    /// trial's rules. Any authenticated caller may read it.
    pub fn plans(&self, _actor: &Actor) -> PlanList {
        views::plan_list(&self.product.catalog)
    }

    /// The registered customer `customer_id`.
    async fn customer(&self, customer_id: &str) -> Result<Customer, BillingError> {
        self.store
            .get_customer(customer_id)
            .await?
            .ok_or_else(|| BillingError::CustomerNotFound(customer_id.to_owned()))
    }

    /// The customer's now: its test clock's time, or real time.
    async fn now_for(&self, test_clock_id: Option<&str>) -> Result<DateTime<Utc>, BillingError> {
        match test_clock_id {
            None => Ok(self.clock.now()),
            Some(id) => Ok(self
                .store
                .get_test_clock(id)
                .await?
                .ok_or_else(|| BillingError::TestClockNotFound(id.to_owned()))?
                .frozen_time),
        }
    }

    /// Does the work due by now for the customers on real time, at most `limit` pieces; says
    /// how many were done.
    pub async fn run_due(&self, limit: u32) -> Result<usize, BillingError> {
        let now = self.clock.now();
        let mut done = 0;
        for trial in self.store.due_trials(now, None, limit).await? {
            let Some(at) = trial.next_at else { continue };
            match self.trial_due(&trial, at).await {
                Ok(()) => done += 1,
                // Another process did it first.
                Err(BillingError::Changed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}
