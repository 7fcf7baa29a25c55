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
mod ingest;
mod subscriptions;
mod trials;
mod usage;
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
pub use subscriptions::{
    CancelSubscription, ChangePreview, ChangeSubscription, NewSubscription, PreviewQuery,
    SubscriptionView,
};
pub use trials::{ExtendTrial, StartTrial, TrialNext, TrialView};
pub use usage::{
    Entitlement, EntitlementCheck, MetricUsage, Sender, UsageBatch, UsageEventInput, UsageResult,
    UsageResults, UsageView, MAX_BATCH, USAGE_SCOPE,
};
pub use views::{CycleView, MetricView, PlanList, PlanView, TrialPolicyView};

/// The billing capability.
#[derive(Clone)]
pub struct Billing {
    store: Arc<dyn Store>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
    vault: Vault,
    test_clocks: bool,
    alerted: Arc<AlertCache>,
    ingest: Arc<ingest::Ingest>,
    /// Whether this process has brought the pending trials' deadlines in line with the
    /// product's `activate_within_days` (once, on its first due run).
    pending_scheduled: Arc<std::sync::atomic::AtomicBool>,
}

/// A usage alert's key: customer, metric, period start, kind.
type AlertKey = (String, String, DateTime<Utc>, &'static str);

/// The usage alerts this process knows are recorded, so a period past its threshold does not
/// try to record them again on every batch (the registry's key keeps them once a period
/// whatever this holds). Bounded: emptied when it grows past 100,000 keys.
#[derive(Default)]
struct AlertCache(std::sync::Mutex<std::collections::HashSet<AlertKey>>);

impl AlertCache {
    fn known(&self, key: &AlertKey) -> bool {
        self.0.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    fn remember(&self, keys: impl Iterator<Item = AlertKey>) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() > 100_000 {
                s.clear();
            }
            s.extend(keys);
        }
    }
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
            alerted: Arc::default(),
            ingest: Arc::default(),
            pending_scheduled: Arc::default(),
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

    /// Whether the customer `customer_id` has been offboarded (or no longer exists): its
    /// billing stops.
    async fn offboarded(&self, customer_id: &str) -> Result<bool, BillingError> {
        Ok(self.store.get_customer(customer_id).await?.is_none_or(|c| {
            matches!(
                c.status,
                crate::domain::CustomerStatus::Inactive | crate::domain::CustomerStatus::Deleted
            )
        }))
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
        self.pending_in_line().await?;
        let now = self.clock.now();
        let mut done = 0;
        for trial in self.store.due_trials(now, None, limit).await? {
            let Some(at) = trial.next_at else { continue };
            match self.trial_due(&trial, at).await {
                Ok(()) => done += 1,
                // Another process did it first.
                Err(BillingError::Changed(_)) => {}
                // One bad row must not hold up the rest: it is retried next run.
                Err(e) => {
                    tracing::error!(customer_id = %trial.customer_id, error = %e, "a trial's due work failed")
                }
            }
        }
        for sub in self.store.due_subscriptions(now, None, limit).await? {
            let Some(at) = sub.next_at else { continue };
            match self.subscription_due(&sub, at).await {
                Ok(()) => done += 1,
                Err(BillingError::Changed(_)) => {}
                Err(e) => {
                    tracing::error!(subscription_id = %sub.subscription_id, error = %e, "a subscription's due work failed")
                }
            }
        }
        Ok(done)
    }

    /// Brings the pending trials' deadlines in line with the product, once per process.
    async fn pending_in_line(&self) -> Result<(), BillingError> {
        use std::sync::atomic::Ordering;
        if !self.pending_scheduled.load(Ordering::Acquire) {
            self.schedule_pending().await?;
            self.pending_scheduled.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The earliest piece of work of `test_clock`'s customers due by `to`, done; false when
    /// there is none.
    async fn next_on_clock(
        &self,
        test_clock: &str,
        to: DateTime<Utc>,
    ) -> Result<bool, BillingError> {
        let trial = self.store.due_trials(to, Some(test_clock), 1).await?.pop();
        let sub = self
            .store
            .due_subscriptions(to, Some(test_clock), 1)
            .await?
            .pop();
        // A trial's work first at the same moment: its end may make the subscription.
        let trial_first = match (&trial, &sub) {
            (Some(t), Some(s)) => t.next_at <= s.next_at,
            (t, _) => t.is_some(),
        };
        if trial_first {
            if let Some(t) = trial {
                let at = t.next_at.unwrap_or(to);
                return self.trial_due(&t, at).await.map(|()| true);
            }
        }
        match sub {
            Some(s) => {
                let at = s.next_at.unwrap_or(to);
                self.subscription_due(&s, at).await.map(|()| true)
            }
            None => Ok(false),
        }
    }
}
