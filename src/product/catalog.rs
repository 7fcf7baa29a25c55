//! The product's catalog: `[[metrics]]`, `[cycles.<id>]`, `[[plans]]` and `[trial]`, read into
//! [`Catalog`] with every rule checked: ids unique and well formed, every plan pricing the same
//! currencies, every plan naming a limit for every metric, overage priced in each of the plan's
//! currencies, a trial whose plans, days and end behaviour exist and agree.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

use super::parse::{is_identifier, Checker};
use crate::domain::money::{Currency, Cycle};
use crate::domain::plan::{
    ActivateOn, Aggregation, Catalog, CycleOffer, Hard, Limit, Metric, Plan, Quantity, Reset,
    TrialEnd, TrialPolicy,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetric {
    id: Spanned<String>,
    name: Option<String>,
    unit: Option<Spanned<String>>,
    aggregation: Option<Spanned<String>>,
    reset: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCycle {
    months: Spanned<i64>,
    discount_percent: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    id: Spanned<String>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<i64>>,
    cycles: Option<Spanned<Vec<String>>>,
    soft_threshold_percent: Option<Spanned<i64>>,
    #[serde(default)]
    limits: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrial {
    plan: Spanned<String>,
    days: Option<Spanned<i64>>,
    min_days: Option<Spanned<i64>>,
    max_days: Option<Spanned<i64>>,
    activate_on: Option<Spanned<String>>,
    activate_within_days: Option<Spanned<i64>>,
    max_extensions: Option<Spanned<i64>>,
    max_extension_days: Option<Spanned<i64>>,
    grace_days: Option<Spanned<i64>>,
    reminder_days: Option<Spanned<i64>>,
    end: Option<Spanned<String>>,
    end_plan: Option<Spanned<String>>,
    end_cycle: Option<Spanned<String>>,
    #[serde(default)]
    limits: BTreeMap<String, Spanned<toml::Value>>,
}

/// The catalog's raw sections, as the product file has them.
pub(super) struct RawCatalog<'a> {
    pub metrics: &'a [Spanned<RawMetric>],
    pub cycles: &'a BTreeMap<String, Spanned<RawCycle>>,
    pub plans: &'a [Spanned<RawPlan>],
    pub trial: Option<&'a Spanned<RawTrial>>,
    /// The credential types the product requires (a trial activated by them needs one).
    pub required_credentials: usize,
}

/// The most a price, in minor units, may be.
const MAX_PRICE: i64 = 1_000_000_000_000;

/// Reads the catalog, every rule checked.
pub(super) fn catalog(c: &mut Checker<'_>, raw: &RawCatalog<'_>) -> Catalog {
    let metrics = metrics(c, raw.metrics);
    let cycles = cycles(c, raw.cycles);
    let plans = plans(c, raw.plans, &metrics, &cycles);
    let mut catalog = Catalog {
        metrics,
        cycles,
        plans,
        trial: None,
    };
    if let Some(t) = raw.trial {
        catalog.trial = trial(c, t, &catalog, raw.required_credentials);
    }
    catalog
}

fn metrics(c: &mut Checker<'_>, raw: &[Spanned<RawMetric>]) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    for rm in raw {
        let r = rm.get_ref();
        let id = r.id.get_ref();
        if !is_identifier(id) {
            c.at(
                &r.id,
                format!("metrics id '{id}' must be lowercase letters, digits and '_', starting with a letter"),
            );
            continue;
        }
        if out.iter().any(|m| &m.id == id) {
            c.at(&r.id, format!("metric '{id}' is defined twice"));
            continue;
        }
        let aggregation = match &r.aggregation {
            None => Aggregation::Sum,
            Some(a) => Aggregation::parse(a.get_ref()).unwrap_or_else(|| {
                c.at(
                    a,
                    format!(
                        "metrics.{id}.aggregation must be sum, count or max, not '{}'",
                        a.get_ref()
                    ),
                );
                Aggregation::Sum
            }),
        };
        let reset = match &r.reset {
            None => Reset::Month,
            Some(s) => Reset::parse(s.get_ref()).unwrap_or_else(|| {
                c.at(
                    s,
                    format!(
                        "metrics.{id}.reset must be day, month or never, not '{}'",
                        s.get_ref()
                    ),
                );
                Reset::Month
            }),
        };
        let unit = match &r.unit {
            None => "unit".to_owned(),
            Some(u) if u.get_ref().trim().is_empty() || u.get_ref().len() > 40 => {
                c.at(u, format!("metrics.{id}.unit must be 1 to 40 characters"));
                "unit".to_owned()
            }
            Some(u) => u.get_ref().trim().to_owned(),
        };
        out.push(Metric {
            id: id.clone(),
            name: r
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or(id)
                .to_owned(),
            unit,
            aggregation,
            reset,
        });
    }
    out
}

fn cycles(c: &mut Checker<'_>, raw: &BTreeMap<String, Spanned<RawCycle>>) -> Vec<CycleOffer> {
    if raw.is_empty() {
        return vec![CycleOffer {
            id: "monthly".into(),
            cycle: Cycle {
                months: 1,
                discount_bp: 0,
            },
        }];
    }
    let mut out = Vec::new();
    for (id, rc) in raw {
        if !is_identifier(id) {
            c.at(
                rc,
                format!("cycles.{id}: a cycle id must be lowercase letters, digits and '_', starting with a letter"),
            );
            continue;
        }
        let r = rc.get_ref();
        let months = *r.months.get_ref();
        if !(1..=120).contains(&months) {
            c.at(
                &r.months,
                format!("cycles.{id}.months must be from 1 to 120"),
            );
            continue;
        }
        let discount_bp = match &r.discount_percent {
            None => 0,
            Some(d) => match percent_bp(d.get_ref()) {
                Some(bp) if bp < 10_000 => bp,
                _ => {
                    c.at(
                        d,
                        format!("cycles.{id}.discount_percent must be a number from 0 to less than 100 with at most 2 decimal places"),
                    );
                    0
                }
            },
        };
        out.push(CycleOffer {
            id: id.clone(),
            cycle: Cycle {
                months: months as u32,
                discount_bp,
            },
        });
    }
    out.sort_by(|a, b| (a.cycle.months, &a.id).cmp(&(b.cycle.months, &b.id)));
    out
}

/// A percentage with at most two decimals, in basis points.
fn percent_bp(v: &toml::Value) -> Option<u32> {
    match v {
        toml::Value::Integer(i) if *i >= 0 => u32::try_from(*i).ok()?.checked_mul(100),
        toml::Value::Float(f) if f.is_finite() && *f >= 0.0 => {
            let bp = (f * 100.0).round();
            ((bp - f * 100.0).abs() < 1e-6 && bp <= f64::from(u32::MAX)).then_some(bp as u32)
        }
        _ => None,
    }
}

fn currency_prices(
    c: &mut Checker<'_>,
    what: &str,
    prices: &BTreeMap<String, Spanned<i64>>,
) -> BTreeMap<Currency, i64> {
    let mut out = BTreeMap::new();
    for (code, amount) in prices {
        let currency = match Currency::parse(code) {
            Ok(cur) if cur.as_str() == code => cur,
            _ => {
                c.at(
                    amount,
                    format!("{what}: '{code}' is not an upper-case currency code such as USD"),
                );
                continue;
            }
        };
        if !(0..=MAX_PRICE).contains(amount.get_ref()) {
            c.at(
                amount,
                format!(
                    "{what}.{code} must be an amount in minor units (cents) from 0 to {MAX_PRICE}"
                ),
            );
            continue;
        }
        out.insert(currency, *amount.get_ref());
    }
    out
}

fn plans(
    c: &mut Checker<'_>,
    raw: &[Spanned<RawPlan>],
    metrics: &[Metric],
    cycles: &[CycleOffer],
) -> Vec<Plan> {
    let mut out: Vec<Plan> = Vec::new();
    let mut currencies: Option<(BTreeSet<Currency>, String)> = None;
    for rp in raw {
        let r = rp.get_ref();
        let id = r.id.get_ref();
        if !is_identifier(id) {
            c.at(
                &r.id,
                format!("plans id '{id}' must be lowercase letters, digits and '_', starting with a letter"),
            );
            continue;
        }
        if out.iter().any(|p| &p.id == id) {
            c.at(&r.id, format!("plan '{id}' is defined twice"));
            continue;
        }
        let name = match &r.name {
            Some(n) if n.get_ref().trim().is_empty() || n.get_ref().len() > 100 => {
                c.at(n, format!("plans.{id}.name must be 1 to 100 characters"));
                id.clone()
            }
            Some(n) => n.get_ref().trim().to_owned(),
            None => id.clone(),
        };
        let prices = currency_prices(c, &format!("plans.{id}.prices"), &r.prices);
        if prices.values().any(|p| *p > 0) {
            let set: BTreeSet<Currency> = prices.keys().copied().collect();
            match &currencies {
                None => currencies = Some((set, id.clone())),
                Some((first, first_plan)) if *first != set => c.at(
                    &r.id,
                    format!(
                        "plans.{id}.prices must name the same currencies as plan '{first_plan}' ({})",
                        first.iter().map(Currency::as_str).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(_) => {}
            }
        }
        let plan_cycles = match &r.cycles {
            None => cycles.iter().map(|cy| cy.id.clone()).collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    c.at(
                        list,
                        format!("plans.{id}.cycles must name at least one cycle"),
                    );
                }
                let mut seen = Vec::new();
                for cy in list.get_ref() {
                    if !cycles.iter().any(|k| &k.id == cy) {
                        c.at(
                            list,
                            format!(
                                "plans.{id}.cycles: '{cy}' is not a cycle (known: {})",
                                cycles
                                    .iter()
                                    .map(|k| k.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    } else if seen.contains(cy) {
                        c.at(list, format!("plans.{id}.cycles names '{cy}' twice"));
                    } else {
                        seen.push(cy.clone());
                    }
                }
                seen
            }
        };
        let soft_threshold_percent = match &r.soft_threshold_percent {
            None => 80,
            Some(s) if (1..=100).contains(s.get_ref()) => *s.get_ref() as u32,
            Some(s) => {
                c.at(
                    s,
                    format!("plans.{id}.soft_threshold_percent must be from 1 to 100"),
                );
                80
            }
        };
        let what = format!("plans.{id}.limits");
        let mut limits = limits(c, &what, &r.limits, metrics, &prices);
        for m in metrics {
            if !limits.contains_key(&m.id) {
                c.at(
                    &r.id,
                    format!(
                        "{what} must give metric '{}' a limit: a number, \"unlimited\" or {{ limit = N, hard = \"overage\", unit_price = {{ ... }} }}",
                        m.id
                    ),
                );
                limits.insert(m.id.clone(), Limit::Unlimited);
            }
        }
        out.push(Plan {
            id: id.clone(),
            name,
            prices,
            cycles: plan_cycles,
            limits,
            soft_threshold_percent,
        });
    }
    out
}

/// Reads a `limits` table: each metric a number (blocked past it), `"unlimited"`, or a table
/// `{ limit, hard = "block" | "overage", unit_price = { USD = 10 }, per = 1 }`.
fn limits(
    c: &mut Checker<'_>,
    what: &str,
    raw: &BTreeMap<String, Spanned<toml::Value>>,
    metrics: &[Metric],
    prices: &BTreeMap<Currency, i64>,
) -> BTreeMap<String, Limit> {
    let mut out = BTreeMap::new();
    for (metric, value) in raw {
        if !metrics.iter().any(|m| &m.id == metric) {
            c.at(
                value,
                format!(
                    "{what}.{metric}: '{metric}' is not a metric (known: {})",
                    known(metrics.iter().map(|m| m.id.as_str()))
                ),
            );
            continue;
        }
        let name = format!("{what}.{metric}");
        let limit = match value.get_ref() {
            toml::Value::String(s) if s == "unlimited" => Some(Limit::Unlimited),
            toml::Value::Table(t) => capped_table(c, value, &name, t, prices),
            v => quantity(v).map(|q| Limit::Capped {
                value: q,
                hard: Hard::Block,
            }),
        };
        match limit {
            Some(l) => {
                out.insert(metric.clone(), l);
            }
            None => c.at(
                value,
                format!("{name} must be a number of at least 0, \"unlimited\" or a table with limit, hard, unit_price and per"),
            ),
        }
    }
    out
}

fn known<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = ids.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A number in the file as an exact quantity.
fn quantity(v: &toml::Value) -> Option<Quantity> {
    let n = match v {
        toml::Value::Integer(i) => serde_json::Number::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)?,
        _ => return None,
    };
    Quantity::from_json(&n).ok()
}

fn capped_table(
    c: &mut Checker<'_>,
    at: &Spanned<toml::Value>,
    name: &str,
    t: &toml::map::Map<String, toml::Value>,
    prices: &BTreeMap<Currency, i64>,
) -> Option<Limit> {
    for key in t.keys() {
        if !["limit", "hard", "unit_price", "per"].contains(&key.as_str()) {
            c.at(
                at,
                format!("{name}: unknown key '{key}' (limit, hard, unit_price, per)"),
            );
            return Some(Limit::Unlimited);
        }
    }
    let Some(value) = t.get("limit").and_then(quantity) else {
        c.at(at, format!("{name}.limit must be a number of at least 0"));
        return Some(Limit::Unlimited);
    };
    let hard = match t.get("hard").map(|h| h.as_str()) {
        None | Some(Some("block")) => {
            if t.contains_key("unit_price") || t.contains_key("per") {
                c.at(
                    at,
                    format!("{name}: unit_price and per apply only with hard = \"overage\""),
                );
            }
            Hard::Block
        }
        Some(Some("overage")) => {
            let per = match t.get("per") {
                None => 1,
                Some(toml::Value::Integer(p)) if (1..=1_000_000_000).contains(p) => *p,
                Some(_) => {
                    c.at(
                        at,
                        format!("{name}.per must be a whole number from 1 to 1000000000"),
                    );
                    1
                }
            };
            let mut unit_price = BTreeMap::new();
            match t.get("unit_price") {
                Some(toml::Value::Table(up)) => {
                    for (code, amount) in up {
                        let cur = Currency::parse(code).ok().filter(|cur| cur.as_str() == code);
                        match (cur, amount) {
                            (Some(cur), toml::Value::Integer(a)) if (0..=MAX_PRICE).contains(a) => {
                                unit_price.insert(cur, *a);
                            }
                            _ => c.at(
                                at,
                                format!("{name}.unit_price.{code} must be an upper-case currency code with an amount in minor units from 0 to {MAX_PRICE}"),
                            ),
                        }
                    }
                }
                _ => c.at(
                    at,
                    format!("{name}.unit_price must be a table of amounts in minor units by currency (unit_price = {{ USD = 10 }})"),
                ),
            }
            for cur in prices.keys() {
                if !unit_price.contains_key(cur) {
                    c.at(
                        at,
                        format!(
                            "{name}.unit_price must price overage in {cur}, a currency of the plan"
                        ),
                    );
                }
            }
            Hard::Overage { unit_price, per }
        }
        Some(_) => {
            c.at(at, format!("{name}.hard must be block or overage"));
            Hard::Block
        }
    };
    Some(Limit::Capped { value, hard })
}

fn trial(
    c: &mut Checker<'_>,
    rt: &Spanned<RawTrial>,
    catalog: &Catalog,
    required_credentials: usize,
) -> Option<TrialPolicy> {
    let r = rt.get_ref();
    let problems_before = c.problem_count();
    let plan = r.plan.get_ref().clone();
    if catalog.plan(&plan).is_none() {
        c.at(
            &r.plan,
            format!(
                "trial.plan: '{plan}' is not a plan (known: {})",
                known(catalog.plans.iter().map(|p| p.id.as_str()))
            ),
        );
    }
    let mut days_of =
        |v: &Option<Spanned<i64>>, name: &str, default: i64, range: (i64, i64)| match v {
            None => default,
            Some(d) if (range.0..=range.1).contains(d.get_ref()) => *d.get_ref(),
            Some(d) => {
                c.at(
                    d,
                    format!("trial.{name} must be from {} to {}", range.0, range.1),
                );
                default
            }
        };
    let days = days_of(&r.days, "days", 14, (1, 365));
    let min_days = days_of(&r.min_days, "min_days", 1, (1, 365));
    let max_days = days_of(&r.max_days, "max_days", 365, (1, 365));
    let max_extensions = days_of(&r.max_extensions, "max_extensions", 0, (0, 100));
    let max_extension_days = days_of(&r.max_extension_days, "max_extension_days", 30, (1, 365));
    let grace_days = days_of(&r.grace_days, "grace_days", 0, (0, 90));
    let reminder_days = days_of(&r.reminder_days, "reminder_days", 2, (0, 30));
    let activate_within_days = r
        .activate_within_days
        .as_ref()
        .map(|_| days_of(&r.activate_within_days, "activate_within_days", 0, (1, 365)) as u32);
    if !(min_days <= days && days <= max_days) {
        c.at(
            rt,
            format!("trial.days ({days}) must lie from trial.min_days ({min_days}) to trial.max_days ({max_days})"),
        );
    }
    let activate_on = match &r.activate_on {
        None => ActivateOn::Manual,
        Some(a) => ActivateOn::parse(a.get_ref()).unwrap_or_else(|| {
            c.at(
                a,
                format!(
                    "trial.activate_on must be manual, signup_approved, credentials_configured or onboarding_completed, not '{}'",
                    a.get_ref()
                ),
            );
            ActivateOn::Manual
        }),
    };
    if activate_on == ActivateOn::CredentialsConfigured && required_credentials == 0 {
        if let Some(a) = &r.activate_on {
            c.at(
                a,
                "trial.activate_on = \"credentials_configured\" needs at least one credential type with required = true",
            );
        }
    }
    let end_target = |c: &mut Checker<'_>, what: &str| -> Option<(String, String)> {
        let Some(p) = &r.end_plan else {
            c.at(rt, format!("trial.end = \"{what}\" needs end_plan"));
            return None;
        };
        let Some(target) = catalog.plan(p.get_ref()) else {
            c.at(
                p,
                format!("trial.end_plan: '{}' is not a plan", p.get_ref()),
            );
            return None;
        };
        let cycle = match &r.end_cycle {
            Some(cy) if target.cycles.contains(cy.get_ref()) => cy.get_ref().clone(),
            Some(cy) => {
                c.at(
                    cy,
                    format!(
                        "trial.end_cycle: plan '{}' is not sold on cycle '{}'",
                        target.id,
                        cy.get_ref()
                    ),
                );
                return None;
            }
            None => target.cycles.first()?.clone(),
        };
        Some((target.id.clone(), cycle))
    };
    let end = match r.end.as_ref().map(|e| e.get_ref().as_str()) {
        None | Some("expire") => {
            if let Some(p) = r.end_plan.as_ref() {
                c.at(
                    p,
                    "trial.end_plan applies only with end = \"downgrade\" or \"convert\"",
                );
            }
            TrialEnd::Expire
        }
        Some("downgrade") => {
            end_target(c, "downgrade").map_or(TrialEnd::Expire, |(plan, cycle)| {
                TrialEnd::Downgrade { plan, cycle }
            })
        }
        Some("convert") => end_target(c, "convert").map_or(TrialEnd::Expire, |(plan, cycle)| {
            TrialEnd::Convert { plan, cycle }
        }),
        Some(other) => {
            if let Some(e) = &r.end {
                c.at(
                    e,
                    format!("trial.end must be expire, downgrade or convert, not '{other}'"),
                );
            }
            TrialEnd::Expire
        }
    };
    let prices = catalog
        .plan(&plan)
        .map(|p| p.prices.clone())
        .unwrap_or_default();
    let limits = limits(c, "trial.limits", &r.limits, &catalog.metrics, &prices);
    if c.problem_count() > problems_before {
        return None;
    }
    Some(TrialPolicy {
        plan,
        days: days as u32,
        min_days: min_days as u32,
        max_days: max_days as u32,
        activate_on,
        activate_within_days,
        limits,
        max_extensions: max_extensions as u32,
        max_extension_days: max_extension_days as u32,
        grace_days: grace_days as u32,
        reminder_days: reminder_days as u32,
        end,
    })
}
