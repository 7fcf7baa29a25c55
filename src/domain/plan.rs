//! The catalog a product sells: metered metrics, billing cycles, plans with their prices and
//! limits, and the trial's rules. Pure data with the arithmetic on it: quantities of a metric
//! are exact (fixed point, millionths of a unit), limits are a number or unlimited, and what
//! happens at a limit is either a refusal or overage priced per unit.

use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

use super::money::{Currency, Cycle};
use super::Invalid;

/// Millionths in one unit of a metric.
pub const MICROS: i64 = 1_000_000;

/// An amount of a metric: exact, non-negative in what customers send, held in millionths of a
/// unit so that totals add up exactly whatever order events arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(pub i64);

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);

    /// `n` whole units.
    pub fn units(n: i64) -> Quantity {
        Quantity(n.saturating_mul(MICROS))
    }

    /// Reads a JSON number: finite, not negative, at most six decimal places, at most
    /// 9,000,000,000,000 units.
    pub fn from_json(n: &serde_json::Number) -> Result<Quantity, Invalid> {
        const MAX_UNITS: i64 = 9_000_000_000_000;
        if let Some(i) = n.as_i64() {
            if i < 0 {
                return Err(negative());
            }
            if i > MAX_UNITS {
                return Err(too_large());
            }
            return Ok(Quantity::units(i));
        }
        if n.as_u64().is_some() {
            return Err(too_large());
        }
        let f = n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| Invalid::new("not_finite", "value must be a finite number"))?;
        if f < 0.0 {
            return Err(negative());
        }
        if f > MAX_UNITS as f64 {
            return Err(too_large());
        }
        let micros = (f * MICROS as f64).round();
        // The decimal as written must be a whole number of millionths.
        let text = n.to_string();
        let decimals = text
            .split_once('.')
            .map(|(_, d)| {
                d.split(['e', 'E'])
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('0')
                    .len()
            })
            .unwrap_or(0);
        if decimals > 6 || text.contains(['e', 'E']) && (micros / MICROS as f64 - f).abs() > 1e-9 {
            return Err(Invalid::new(
                "too_precise",
                "value may have at most 6 decimal places",
            ));
        }
        Ok(Quantity(micros as i64))
    }

    /// The sum, saturating.
    pub fn plus(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(other.0))
    }

    /// What is left of `self` after `used`, never below zero.
    pub fn less(self, used: Quantity) -> Quantity {
        Quantity((self.0 - used.0).max(0))
    }

    /// As a JSON number: an integer when whole.
    pub fn to_json(self) -> serde_json::Value {
        if self.0 % MICROS == 0 {
            serde_json::Value::from(self.0 / MICROS)
        } else {
            serde_json::Number::from_f64(self.0 as f64 / MICROS as f64)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
    }
}

fn negative() -> Invalid {
    Invalid::new("negative", "value must not be negative")
}

fn too_large() -> Invalid {
    Invalid::new("too_large", "value must be at most 9000000000000")
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.0 / MICROS;
        let frac = (self.0 % MICROS).abs();
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:06}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// How a metric's events add up within a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The values summed (tokens, API calls).
    Sum,
    /// The events counted, whatever their values (tasks run).
    Count,
    /// The largest value seen (seats, resources held).
    Max,
}

impl Aggregation {
    /// Its name in the product file.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Max => "max",
        }
    }

    /// Parses its name.
    pub fn parse(s: &str) -> Option<Self> {
        [Aggregation::Sum, Aggregation::Count, Aggregation::Max]
            .into_iter()
            .find(|a| a.as_str() == s)
    }

    /// What one event with `value` adds to a period's total (for `max`, the candidate).
    pub fn contribution(self, value: Quantity) -> Quantity {
        match self {
            Aggregation::Count => Quantity::units(1),
            Aggregation::Sum | Aggregation::Max => value,
        }
    }

    /// A total with one more event's contribution.
    pub fn fold(self, total: Quantity, contribution: Quantity) -> Quantity {
        match self {
            Aggregation::Max => total.max(contribution),
            Aggregation::Sum | Aggregation::Count => total.plus(contribution),
        }
    }
}

/// When a metric's total starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// Every UTC day.
    Day,
    /// Every billing month (from the subscription's or the trial's start; calendar months
    /// for a customer with neither).
    Month,
    /// Never: one total for the customer's life (a trial's token budget).
    Never,
}

impl Reset {
    /// Its name in the product file.
    pub fn as_str(self) -> &'static str {
        match self {
            Reset::Day => "day",
            Reset::Month => "month",
            Reset::Never => "never",
        }
    }

    /// Parses its name.
    pub fn parse(s: &str) -> Option<Self> {
        [Reset::Day, Reset::Month, Reset::Never]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A metered metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// Its id (`api_calls`).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// Its unit (`call`, `token`).
    pub unit: String,
    /// How events add up.
    pub aggregation: Aggregation,
    /// When the total starts again.
    pub reset: Reset,
}

/// What happens when usage reaches a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "behaviour", rename_all = "snake_case")]
pub enum Hard {
    /// More is refused.
    Block,
    /// More is allowed and accrues overage at `unit_price` per `per` units.
    Overage {
        /// Minor units per `per` units, by currency.
        unit_price: BTreeMap<Currency, i64>,
        /// How many units the price is for (1, or 1,000 for a price per thousand).
        per: i64,
    },
}

/// A limit on a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// No limit.
    Unlimited,
    /// At most `value` per period; `hard` says what happens past it.
    Capped {
        /// The limit.
        value: Quantity,
        /// What happens at it.
        hard: Hard,
    },
}

impl Limit {
    /// The number, or `None` when unlimited.
    pub fn value(&self) -> Option<Quantity> {
        match self {
            Limit::Unlimited => None,
            Limit::Capped { value, .. } => Some(*value),
        }
    }
}

/// A billing cycle the catalog offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleOffer {
    /// Its id (`monthly`, `quarterly`, `annual`).
    pub id: String,
    /// Its length and discount.
    #[serde(flatten)]
    pub cycle: Cycle,
}

/// A plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Its id (`professional`).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// Its price for one month, in minor units, by currency (empty for a free plan).
    pub prices: BTreeMap<Currency, i64>,
    /// The cycles it is sold on, by id.
    pub cycles: Vec<String>,
    /// Its limit on each metric.
    pub limits: BTreeMap<String, Limit>,
    /// The share of a limit, in percent, past which usage is reported as nearing it.
    pub soft_threshold_percent: u32,
}

impl Plan {
    /// Whether it costs nothing.
    pub fn is_free(&self) -> bool {
        self.prices.values().all(|p| *p == 0)
    }
}

/// What starts a trial's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivateOn {
    /// An operator activates it.
    Manual,
    /// The customer's signup is approved.
    SignupApproved,
    /// Every credential the product requires is active.
    CredentialsConfigured,
    /// The customer's onboarding completes.
    OnboardingCompleted,
}

impl ActivateOn {
    /// Its name in the product file.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivateOn::Manual => "manual",
            ActivateOn::SignupApproved => "signup_approved",
            ActivateOn::CredentialsConfigured => "credentials_configured",
            ActivateOn::OnboardingCompleted => "onboarding_completed",
        }
    }

    /// Parses its name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActivateOn::Manual,
            ActivateOn::SignupApproved,
            ActivateOn::CredentialsConfigured,
            ActivateOn::OnboardingCompleted,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// What happens when a trial's grace ends without a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TrialEnd {
    /// Nothing more: the customer has no plan.
    Expire,
    /// The customer moves to a plan (a free one, typically).
    Downgrade {
        /// The plan.
        plan: String,
        /// Its cycle.
        cycle: String,
    },
    /// The customer is subscribed to a plan.
    Convert {
        /// The plan.
        plan: String,
        /// Its cycle.
        cycle: String,
    },
}

/// The product's trial rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialPolicy {
    /// The plan a trial runs on when none is named.
    pub plan: String,
    /// Days when none are given.
    pub days: u32,
    /// The fewest days an operator may give.
    pub min_days: u32,
    /// The most days an operator may give.
    pub max_days: u32,
    /// What starts its clock.
    pub activate_on: ActivateOn,
    /// Days a pending trial waits for `activate_on` at most: then its clock starts anyway.
    pub activate_within_days: Option<u32>,
    /// Limits during the trial; a metric not named has its plan's limit.
    pub limits: BTreeMap<String, Limit>,
    /// Extensions allowed.
    pub max_extensions: u32,
    /// The most days one extension may add.
    pub max_extension_days: u32,
    /// Days after the end during which the trial's limits still hold.
    pub grace_days: u32,
    /// How many days before the end the customer is reminded.
    pub reminder_days: u32,
    /// What happens after the grace.
    pub end: TrialEnd,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    /// Metrics, in file order.
    pub metrics: Vec<Metric>,
    /// Cycles, in file order.
    pub cycles: Vec<CycleOffer>,
    /// Plans, in file order.
    pub plans: Vec<Plan>,
    /// The trial's rules, when the product offers trials.
    pub trial: Option<TrialPolicy>,
}

impl Catalog {
    /// The metric with `id`.
    pub fn metric(&self, id: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.id == id)
    }

    /// The plan with `id`.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The cycle with `id`.
    pub fn cycle(&self, id: &str) -> Option<&CycleOffer> {
        self.cycles.iter().find(|c| c.id == id)
    }

    /// Months in the cycle `id` (1 when unknown).
    pub fn months_of(&self, id: &str) -> u32 {
        self.cycle(id).map_or(1, |c| c.cycle.months)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Result<Quantity, &'static str> {
        let n: serde_json::Number = serde_json::from_str(text).unwrap();
        Quantity::from_json(&n).map_err(|e| e.code)
    }

    #[test]
    fn quantities_are_exact_and_bounded() {
        assert_eq!(q("5"), Ok(Quantity::units(5)));
        assert_eq!(q("0.5"), Ok(Quantity(500_000)));
        assert_eq!(q("1.000001"), Ok(Quantity(1_000_001)));
        assert_eq!(q("1.5e2"), Ok(Quantity::units(150)));
        assert_eq!(q("-1"), Err("negative"));
        assert_eq!(q("-0.5"), Err("negative"));
        assert_eq!(q("0.0000001"), Err("too_precise"));
        assert_eq!(q("1e30"), Err("too_large"));
        assert_eq!(q("18446744073709551615"), Err("too_large"));
        assert_eq!(Quantity(1_500_000).to_string(), "1.5");
        assert_eq!(Quantity::units(3).to_json(), serde_json::json!(3));
        assert_eq!(Quantity(250_000).to_json(), serde_json::json!(0.25));
    }

    #[test]
    fn aggregations_fold_their_way() {
        let five = Quantity::units(5);
        assert_eq!(Aggregation::Count.contribution(five), Quantity::units(1));
        assert_eq!(
            Aggregation::Max.fold(Quantity::units(7), five),
            Quantity::units(7)
        );
        assert_eq!(
            Aggregation::Sum.fold(Quantity::units(7), five),
            Quantity::units(12)
        );
    }
}
