//! Billing: what the product sells (its catalog of plans, cycles and metrics) and, per
//! customer, the trial, the subscription, the usage metered and the entitlements it buys.
//!
//! The capability is [`Billing`]; the catalog's views are [`PlanList`] and its parts.

mod views;

use std::sync::Arc;

use super::Actor;
use crate::product::Product;

pub use views::{CycleView, MetricView, PlanList, PlanView, TrialPolicyView};

/// The billing capability.
#[derive(Clone)]
pub struct Billing {
    product: Arc<Product>,
}

impl Billing {
    /// Billing over the product's catalog.
    pub fn new(product: Arc<Product>) -> Self {
        Self { product }
    }

    /// The catalog: every plan with its prices per cycle and its limits, the metrics, and the
    /// trial's rules. Any authenticated caller may read it.
    pub fn plans(&self, _actor: &Actor) -> PlanList {
        views::plan_list(&self.product.catalog)
    }
}
