//! The catalog as callers see it: plans with their prices per currency, the price of one
//! period of each cycle they are sold on, and their limits (`null` for unlimited).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::domain::money::Money;
use crate::domain::plan::{Catalog, Hard, Limit, Plan, TrialPolicy};

/// The catalog.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanList {
    /// Plans, in the product file's order.
    pub items: Vec<PlanView>,
    /// The metered metrics.
    pub metrics: Vec<MetricView>,
    /// The trial's rules, when the product offers trials.
    pub trial: Option<TrialPolicyView>,
}

/// A plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its monthly price in minor units, by currency (empty for a free plan).
    pub prices: BTreeMap<String, i64>,
    /// The cycles it is sold on, with one period's price after the cycle's discount.
    pub cycles: Vec<CycleView>,
    /// Its limit per metric: a number, or `null` for unlimited.
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, serde_json::Value>,
    /// What happens past each capped metric's limit: `block`, or `overage` with its price.
    #[schema(value_type = Object)]
    pub hard: BTreeMap<String, serde_json::Value>,
    /// The share of a limit, in percent, past which usage is reported as nearing it.
    pub soft_threshold_percent: u32,
    /// Whether it costs nothing.
    pub free: bool,
}

/// A billing cycle a plan is sold on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CycleView {
    /// Its id (`annual`).
    pub id: String,
    /// Months in one period.
    pub months: u32,
    /// Its discount on the monthly price, in percent (17 for 17%).
    pub discount_percent: f64,
    /// One period's price in minor units, by currency: months × monthly price, less the
    /// discount, rounded once half away from zero.
    pub period_prices: BTreeMap<String, i64>,
}

/// A metered metric.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// `sum`, `count` or `max`.
    pub aggregation: String,
    /// `day`, `month` or `never`.
    pub reset: String,
}

/// The trial's rules.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrialPolicyView {
    /// The plan a trial runs on when none is named.
    pub plan: String,
    /// Days when none are given.
    pub days: u32,
    /// The fewest days allowed.
    pub min_days: u32,
    /// The most days allowed.
    pub max_days: u32,
    /// What starts its clock: `manual`, `signup_approved`, `credentials_configured` or
    /// `onboarding_completed`.
    pub activate_on: String,
    /// Days a pending trial waits for `activate_on` at most before its clock starts anyway
    /// (`null`: it waits as long as it takes).
    pub activate_within_days: Option<u32>,
    /// Limits during the trial that differ from its plan's (a number, or `null`).
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, serde_json::Value>,
    /// Extensions allowed.
    pub max_extensions: u32,
    /// The most days one extension adds.
    pub max_extension_days: u32,
    /// Days after the end during which the trial's limits still hold.
    pub grace_days: u32,
    /// Days before the end the customer is reminded.
    pub reminder_days: u32,
    /// What happens after the grace: `{"action": "expire"}`, or `downgrade` / `convert` with
    /// a plan and a cycle.
    #[schema(value_type = Object)]
    pub end: serde_json::Value,
}

fn limit_json(l: &Limit) -> serde_json::Value {
    l.value().map_or(serde_json::Value::Null, |q| q.to_json())
}

fn hard_json(l: &Limit) -> Option<serde_json::Value> {
    match l {
        Limit::Unlimited => None,
        Limit::Capped {
            hard: Hard::Block, ..
        } => Some(serde_json::json!({ "behaviour": "block" })),
        Limit::Capped {
            hard: Hard::Overage { unit_price, per },
            ..
        } => Some(serde_json::json!({
            "behaviour": "overage",
            "unit_price": unit_price.iter().map(|(c, p)| (c.to_string(), *p)).collect::<BTreeMap<_, _>>(),
            "per": per,
        })),
    }
}

fn plan_view(catalog: &Catalog, p: &Plan) -> PlanView {
    PlanView {
        id: p.id.clone(),
        name: p.name.clone(),
        prices: p.prices.iter().map(|(c, a)| (c.to_string(), *a)).collect(),
        cycles: p
            .cycles
            .iter()
            .filter_map(|id| catalog.cycle(id))
            .map(|offer| CycleView {
                id: offer.id.clone(),
                months: offer.cycle.months,
                discount_percent: f64::from(offer.cycle.discount_bp) / 100.0,
                period_prices: p
                    .prices
                    .iter()
                    .map(|(c, a)| (c.to_string(), offer.cycle.price(Money::new(*a, *c)).minor))
                    .collect(),
            })
            .collect(),
        limits: p
            .limits
            .iter()
            .map(|(m, l)| (m.clone(), limit_json(l)))
            .collect(),
        hard: p
            .limits
            .iter()
            .filter_map(|(m, l)| Some((m.clone(), hard_json(l)?)))
            .collect(),
        soft_threshold_percent: p.soft_threshold_percent,
        free: p.is_free(),
    }
}

fn trial_view(t: &TrialPolicy) -> TrialPolicyView {
    TrialPolicyView {
        plan: t.plan.clone(),
        days: t.days,
        min_days: t.min_days,
        max_days: t.max_days,
        activate_on: t.activate_on.as_str().to_owned(),
        activate_within_days: t.activate_within_days,
        limits: t
            .limits
            .iter()
            .map(|(m, l)| (m.clone(), limit_json(l)))
            .collect(),
        max_extensions: t.max_extensions,
        max_extension_days: t.max_extension_days,
        grace_days: t.grace_days,
        reminder_days: t.reminder_days,
        end: serde_json::to_value(&t.end).unwrap_or(serde_json::Value::Null),
    }
}

/// The catalog's view.
pub(super) fn plan_list(catalog: &Catalog) -> PlanList {
    PlanList {
        items: catalog
            .plans
            .iter()
            .map(|p| plan_view(catalog, p))
            .collect(),
        metrics: catalog
            .metrics
            .iter()
            .map(|m| MetricView {
                id: m.id.clone(),
                name: m.name.clone(),
                unit: m.unit.clone(),
                aggregation: m.aggregation.as_str().to_owned(),
                reset: m.reset.as_str().to_owned(),
            })
            .collect(),
        trial: catalog.trial.as_ref().map(trial_view),
    }
}
