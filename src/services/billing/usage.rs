//! Usage metering and entitlements. Usage arrives in batches of events, each recorded once per
//! customer and event id (a replay with the same content answers as the first time; another
//! content under a used id is refused), added to its metric's running total for the period
//! that holds its timestamp: the UTC day, the billing month (from the subscription's start, else
//! the trial's activation, else the calendar month), or the customer's life. Totals are kept
//! by the database in the same transaction as the events, so they are exact under concurrency
//! and across restarts. An entitlement answers from the subscription's plan, else the running
//! (or in-grace) trial's limits; crossing a plan's soft threshold and its limit each emit one
//! event per period.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

use super::{Billing, BillingError};
use crate::domain::events::{EventBody, UsageThreshold};
use crate::domain::money::{ratio, usage_month_at};
use crate::domain::plan::{Aggregation, Hard, Limit, Quantity, Reset, MICROS};
use crate::domain::subscription::SubscriptionStatus;
use crate::domain::trial::TrialStatus;
use crate::domain::{CustomerId, CustomerStatus, FieldError, Invalid, NewEvent, Role};
use crate::services::tenant_tokens::TenantPrincipal;
use crate::services::Actor;
use crate::store::billing::{UsageAlert, UsageOutcome, UsageRecord, UsageTotal};

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 1000;
/// How far back an event's timestamp may be.
const PAST_WINDOW_DAYS: i64 = 35;
/// How far ahead of the customer's now an event's timestamp may be (clock skew).
const FUTURE_WINDOW_SECS: i64 = 300;
/// The longest event id.
const MAX_EVENT_ID: usize = 128;
/// The scope a customer's token needs to send usage.
pub const USAGE_SCOPE: &str = "usage:write";
/// The scope a customer's token needs to read its own entitlements (`usage:write` also does:
/// whoever records usage may check it first).
pub const USAGE_READ_SCOPE: &str = "usage:read";

/// A batch of usage events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1,000 events, each an object.
    #[serde(default)]
    #[schema(value_type = Vec<UsageEventInput>)]
    #[schemars(with = "Vec<UsageEventInput>")]
    pub events: Vec<serde_json::Value>,
}

/// One usage event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEventInput {
    /// The sender's id for the event, unique per customer (1 to 128 visible ASCII characters):
    /// sending it again is answered as the first time.
    #[serde(default)]
    pub event_id: Option<String>,
    /// A metric of the product (`GET /api/v1/plans`).
    #[serde(default)]
    pub metric: Option<String>,
    /// How much: a number, not negative, at most 6 decimal places (a `count` metric counts the
    /// event whatever its value).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    #[schemars(with = "Option<f64>")]
    pub value: Option<serde_json::Number>,
    /// When it happened (RFC 3339), at most 35 days before the customer's now and 5 minutes
    /// after; the customer's now when absent.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The customer (operators only; a customer's own token sends its own usage).
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// What became of each event of a batch, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageResults {
    /// Events recorded now.
    pub accepted: usize,
    /// Events recorded before with the same content (answered as then).
    pub duplicates: usize,
    /// Events refused.
    pub refused: usize,
    /// One per event, in the batch's order.
    pub results: Vec<UsageResult>,
}

/// What became of one event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageResult {
    /// Its id, as sent.
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `refused`.
    pub status: String,
    /// For a refusal: 409 (its id was used with another content) or 422 (a field broke a
    /// rule).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_status: Option<u16>,
    /// For a refusal: the rule's code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// For a refusal: the field (`events[3].metric`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// For a refusal: what is wrong.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// `POST /api/v1/entitlements/check`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitlementCheck {
    /// The customer.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The metric.
    #[serde(default)]
    pub metric: Option<String>,
    /// How much the customer is about to use (default 1).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub amount: Option<serde_json::Value>,
}

/// Whether a customer may use `amount` more of a metric now, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Entitlement {
    /// The customer.
    pub customer_id: String,
    /// The metric.
    pub metric: String,
    /// Whether the amount may be used: within the limit, or past it on overage.
    pub allowed: bool,
    /// The period's limit; `null` for unlimited.
    #[schema(value_type = Option<f64>)]
    pub limit: serde_json::Value,
    /// Used in the period so far.
    #[schema(value_type = f64)]
    pub used: serde_json::Value,
    /// Left before the limit; `null` for unlimited.
    #[schema(value_type = Option<f64>)]
    pub remaining: serde_json::Value,
    /// Whether usage has passed the plan's soft threshold.
    pub soft_exceeded: bool,
    /// Past the limit on an overage plan, what the period has used beyond it.
    #[schema(value_type = Option<f64>)]
    pub overage: serde_json::Value,
    /// Where the limits come from: `subscription`, `trial`, or `none` or `offboarded`
    /// (nothing is allowed).
    pub source: String,
    /// Why it is not allowed, when it is not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The period's start.
    pub period_start: DateTime<Utc>,
    /// The period's end; `null` for a metric that never resets.
    pub period_end: Option<DateTime<Utc>>,
}

/// A customer's usage in the current periods.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// The customer.
    pub customer_id: String,
    /// Where the limits come from: `subscription`, `trial` or `none`.
    pub source: String,
    /// One per metric of the product.
    pub metrics: Vec<MetricUsage>,
    /// The customer's now when this was read.
    pub now: DateTime<Utc>,
}

/// One metric's usage in its current period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricUsage {
    /// The metric.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// The period's start.
    pub period_start: DateTime<Utc>,
    /// The period's end; `null` when it never resets.
    pub period_end: Option<DateTime<Utc>>,
    /// Used so far.
    #[schema(value_type = f64)]
    pub used: serde_json::Value,
    /// Events counted.
    pub events: i64,
    /// The limit; `null` for unlimited (or no plan).
    #[schema(value_type = Option<f64>)]
    pub limit: serde_json::Value,
    /// Whether usage has passed the soft threshold.
    pub soft_exceeded: bool,
    /// Usage past the limit on an overage plan.
    #[schema(value_type = Option<f64>)]
    pub overage: serde_json::Value,
    /// What that overage costs, in minor units by currency.
    pub overage_amount: BTreeMap<String, i64>,
}

/// Who sends usage.
pub enum Sender<'a> {
    /// An operator, naming the customer of each event.
    Operator(&'a Actor),
    /// A customer's own access token.
    Tenant(&'a TenantPrincipal),
}

/// What a customer's limits are and where its periods start, at one moment.
#[derive(Clone)]
pub(super) struct Context {
    id: CustomerId,
    now: DateTime<Utc>,
    month_anchor: DateTime<Utc>,
    source: &'static str,
    limits: BTreeMap<String, Limit>,
    soft_percent: u32,
}

fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(0, 0).single().expect("the epoch")
}

/// The period of a metric that resets `reset` holding `t`.
fn period(
    reset: Reset,
    month_anchor: DateTime<Utc>,
    t: DateTime<Utc>,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    match reset {
        Reset::Day => {
            let start = t
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc();
            (start, Some(start + Duration::days(1)))
        }
        Reset::Month => {
            let (s, e) = usage_month_at(month_anchor, t);
            (s, Some(e))
        }
        Reset::Never => (epoch(), None),
    }
}

fn refusal(field: String, e: &Invalid) -> UsageResult {
    UsageResult {
        event_id: None,
        status: "refused".into(),
        http_status: Some(422),
        code: Some(e.code.to_owned()),
        field: Some(field),
        message: Some(e.message.clone()),
    }
}

/// The content a replay must match: the customer, the metric, the value and the timestamp as
/// sent (an event sent without one matches its retries, whenever they arrive).
fn hash(customer: &str, metric: &str, value: i64, at: Option<DateTime<Utc>>) -> String {
    let at = at.map_or("now".to_owned(), |t| t.timestamp_micros().to_string());
    hex::encode(Sha256::digest(
        format!("{customer}\n{metric}\n{value}\n{at}").as_bytes(),
    ))
}

/// Whether `used` has passed `percent` of `limit` (both in millionths).
fn soft_reached(used: i64, limit: i64, percent: u32) -> bool {
    i128::from(used) * 100 >= i128::from(limit) * i128::from(percent)
}

fn q(micros: i64) -> serde_json::Value {
    Quantity(micros).to_json()
}

impl Billing {
    /// A customer's limits and periods at its now.
    async fn usage_context(&self, customer_id: &str) -> Result<Option<Context>, BillingError> {
        // On a server database the three reads go at once, so their round trips overlap; on
        // the embedded one a read is a call in this process, cheapest one after the other.
        let (customer, sub, trial) = if self.store.backend() == "postgres" {
            tokio::try_join!(
                self.store.get_customer(customer_id),
                self.store.live_subscription(customer_id),
                self.store.get_trial(customer_id),
            )?
        } else {
            let Some(customer) = self.store.get_customer(customer_id).await? else {
                return Ok(None);
            };
            let sub = self.store.live_subscription(customer_id).await?;
            let trial = match &sub {
                Some(s) if s.subscription.status != SubscriptionStatus::Canceled => None,
                _ => self.store.get_trial(customer_id).await?,
            };
            (Some(customer), sub, trial)
        };
        let Some(customer) = customer else {
            return Ok(None);
        };
        if customer.status == CustomerStatus::Deleted {
            return Ok(None);
        }
        let now = self.now_for(customer.test_clock_id.as_deref()).await?;
        if customer.status == CustomerStatus::Inactive {
            // Offboarded: nothing is metered or allowed.
            return Ok(Some(Context {
                id: customer.id,
                now,
                month_anchor: epoch(),
                source: "offboarded",
                limits: BTreeMap::new(),
                soft_percent: 80,
            }));
        }
        let catalog = &self.product.catalog;
        let sub = sub.filter(|s| s.subscription.status != SubscriptionStatus::Canceled);
        if let Some(s) = sub {
            let plan = catalog.plan(&s.subscription.plan);
            return Ok(Some(Context {
                id: customer.id,
                now,
                month_anchor: s.subscription.anchor,
                source: "subscription",
                limits: plan.map(|p| p.limits.clone()).unwrap_or_default(),
                soft_percent: plan.map_or(80, |p| p.soft_threshold_percent),
            }));
        }
        if let (Some(t), Some(policy)) = (trial, catalog.trial.as_ref()) {
            let running = matches!(t.trial.status, TrialStatus::Active | TrialStatus::Extended)
                || t.trial.in_grace(now, policy.grace_days);
            if running {
                let plan = catalog.plan(&t.plan);
                return Ok(Some(Context {
                    id: customer.id,
                    now,
                    month_anchor: t.trial.activated_at.unwrap_or_else(epoch),
                    source: "trial",
                    limits: super::trials::trial_limits(policy, plan),
                    soft_percent: plan.map_or(80, |p| p.soft_threshold_percent),
                }));
            }
        }
        Ok(Some(Context {
            id: customer.id,
            now,
            month_anchor: epoch(),
            source: "none",
            limits: BTreeMap::new(),
            soft_percent: 80,
        }))
    }

    /// Records a batch of usage events: each answered accepted, duplicate or refused, in order.
    pub async fn record_usage(
        &self,
        sender: Sender<'_>,
        batch: &UsageBatch,
    ) -> Result<UsageResults, BillingError> {
        match &sender {
            Sender::Operator(actor) => actor.may(Role::Operator)?,
            Sender::Tenant(p) => {
                if !p.scopes.iter().any(|s| s == USAGE_SCOPE) {
                    return Err(BillingError::ScopeMissing(USAGE_SCOPE));
                }
            }
        }
        if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
            return Err(BillingError::Invalid(vec![Invalid::new(
                "out_of_range",
                format!("events must hold 1 to {MAX_BATCH} events"),
            )
            .at("events")]));
        }
        let mut inputs = Vec::with_capacity(batch.events.len());
        let mut malformed = Vec::new();
        for (i, e) in batch.events.iter().enumerate() {
            let parsed = match e {
                serde_json::Value::Object(_) => {
                    serde_json::from_value::<UsageEventInput>(e.clone()).map_err(|err| {
                        Invalid::new("invalid_event", format!("the event does not fit: {err}"))
                    })
                }
                _ => Err(Invalid::new(
                    "not_an_object",
                    "each event must be an object",
                )),
            };
            match parsed {
                Ok(p) => inputs.push(p),
                Err(err) => malformed.push(err.at(format!("events[{i}]"))),
            }
        }
        if !malformed.is_empty() {
            return Err(BillingError::Invalid(malformed));
        }
        let catalog = &self.product.catalog;
        let mut contexts: HashMap<String, Option<Context>> = HashMap::new();
        let mut results: Vec<Option<UsageResult>> = Vec::with_capacity(batch.events.len());
        let mut records = Vec::new();
        let mut placed = Vec::new();
        for (i, e) in inputs.iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            let refuse = |name: &str, code: &'static str, message: String| {
                let mut r = refusal(field(name), &Invalid::new(code, message));
                r.event_id = e.event_id.clone();
                r
            };
            let customer_id = match (&sender, e.customer_id.as_deref()) {
                (Sender::Operator(_), Some(c)) => c.to_owned(),
                (Sender::Operator(_), None) => {
                    results.push(Some(refuse(
                        "customer_id",
                        "required",
                        "customer_id is required".into(),
                    )));
                    continue;
                }
                (Sender::Tenant(p), None) => p.customer_id.clone(),
                (Sender::Tenant(p), Some(c)) if c == p.customer_id => c.to_owned(),
                (Sender::Tenant(_), Some(_)) => {
                    results.push(Some(refuse(
                        "customer_id",
                        "not_yours",
                        "a customer's token sends its own usage only; leave customer_id out".into(),
                    )));
                    continue;
                }
            };
            let event_id = match e.event_id.as_deref() {
                Some(id)
                    if !id.is_empty()
                        && id.len() <= MAX_EVENT_ID
                        && id.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    id.to_owned()
                }
                _ => {
                    results.push(Some(refuse(
                        "event_id",
                        "invalid_event_id",
                        format!("event_id must be 1 to {MAX_EVENT_ID} visible ASCII characters"),
                    )));
                    continue;
                }
            };
            let Some(metric) = e.metric.as_deref().and_then(|m| catalog.metric(m)) else {
                results.push(Some(refuse(
                    "metric",
                    "unknown_metric",
                    format!(
                        "metric must be one of the product's metrics ({})",
                        catalog
                            .metrics
                            .iter()
                            .map(|m| m.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )));
                continue;
            };
            let value = match &e.value {
                Some(n) => Quantity::from_json(n),
                None => Err(Invalid::new("required", "value is required")),
            };
            let value = match value {
                Ok(v) => v,
                Err(err) => {
                    results.push(Some(refuse("value", err.code, err.message)));
                    continue;
                }
            };
            if !contexts.contains_key(&customer_id) {
                let ctx = self.usage_context(&customer_id).await?;
                contexts.insert(customer_id.clone(), ctx);
            }
            let Some(ctx) = contexts.get(&customer_id).and_then(Option::as_ref) else {
                results.push(Some(refuse(
                    "customer_id",
                    "unknown_customer",
                    format!(
                        "customer '{}' not found",
                        crate::domain::text::shorten(&customer_id, 64)
                    ),
                )));
                continue;
            };
            if ctx.source == "offboarded" {
                results.push(Some(refuse(
                    "customer_id",
                    "customer_offboarded",
                    format!("customer '{}' is offboarded", ctx.id),
                )));
                continue;
            }
            let at = match e.timestamp.as_deref() {
                None => ctx.now,
                Some(t) => match DateTime::parse_from_rfc3339(t.trim()) {
                    Ok(t) => t.with_timezone(&Utc),
                    Err(_) => {
                        results.push(Some(refuse(
                            "timestamp",
                            "invalid_time",
                            "timestamp must be an RFC 3339 time such as 2026-02-12T10:00:00Z"
                                .into(),
                        )));
                        continue;
                    }
                },
            };
            if at < ctx.now - Duration::days(PAST_WINDOW_DAYS)
                || at > ctx.now + Duration::seconds(FUTURE_WINDOW_SECS)
            {
                results.push(Some(refuse(
                    "timestamp",
                    "outside_window",
                    format!(
                        "timestamp must be from {PAST_WINDOW_DAYS} days before the customer's now ({}) to 5 minutes after",
                        ctx.now.to_rfc3339()
                    ),
                )));
                continue;
            }
            let (period_start, _) = period(metric.reset, ctx.month_anchor, at);
            records.push(UsageRecord {
                customer_id: ctx.id.to_string(),
                event_id: event_id.clone(),
                metric: metric.id.clone(),
                value: value.0,
                contribution: metric.aggregation.contribution(value).0,
                max: metric.aggregation == Aggregation::Max,
                occurred_at: at,
                period_start,
                payload_hash: hash(
                    ctx.id.as_str(),
                    &metric.id,
                    value.0,
                    e.timestamp.is_some().then_some(at),
                ),
            });
            placed.push(i);
            results.push(None);
        }
        let event_ids: Vec<String> = records.iter().map(|r| r.event_id.clone()).collect();
        let outcomes = self.write_usage(records, contexts).await?;
        for ((i, outcome), event_id) in placed.iter().zip(outcomes).zip(event_ids) {
            results[*i] = Some(match outcome {
                UsageOutcome::Accepted => UsageResult {
                    event_id: Some(event_id.clone()),
                    status: "accepted".into(),
                    http_status: None,
                    code: None,
                    field: None,
                    message: None,
                },
                UsageOutcome::Duplicate => UsageResult {
                    event_id: Some(event_id.clone()),
                    status: "duplicate".into(),
                    http_status: None,
                    code: None,
                    field: None,
                    message: None,
                },
                UsageOutcome::Conflict => UsageResult {
                    event_id: Some(event_id.clone()),
                    status: "refused".into(),
                    http_status: Some(409),
                    code: Some("event_id_reused".into()),
                    field: Some(format!("events[{i}].event_id")),
                    message: Some(
                        "this event_id was used with another metric, value, timestamp or customer"
                            .into(),
                    ),
                },
            });
        }
        let results: Vec<UsageResult> = results.into_iter().flatten().collect();
        let count = |s: &str| results.iter().filter(|r| r.status == s).count();
        Ok(UsageResults {
            accepted: count("accepted"),
            duplicates: count("duplicate"),
            refused: count("refused"),
            results,
        })
    }

    /// The soft and hard thresholds `totals` crossed that this server has not seen recorded,
    /// each with its event; the store records those not recorded yet (once a period each).
    pub(super) fn alerts(
        &self,
        contexts: &HashMap<String, Option<Context>>,
        totals: &[UsageTotal],
    ) -> Vec<(UsageAlert, NewEvent)> {
        let mut alerts = Vec::new();
        for t in totals {
            let Some(ctx) = contexts.get(&t.customer_id).and_then(Option::as_ref) else {
                continue;
            };
            let Some(Limit::Capped { value, hard }) = ctx.limits.get(&t.metric) else {
                continue;
            };
            let soft = soft_reached(t.total, value.0, ctx.soft_percent);
            let reached = t.total >= value.0;
            for (kind, crossed) in [("soft", soft), ("hard", reached)] {
                let key = (
                    t.customer_id.clone(),
                    t.metric.clone(),
                    t.period_start,
                    kind,
                );
                if !crossed || self.alerted.known(&key) {
                    continue;
                }
                let payload = UsageThreshold {
                    metric: t.metric.clone(),
                    period_start: t.period_start,
                    limit: q(value.0),
                    used: q(t.total),
                    soft_threshold_percent: ctx.soft_percent,
                    hard: match hard {
                        Hard::Block => "block".into(),
                        Hard::Overage { .. } => "overage".into(),
                    },
                };
                let body = if kind == "soft" {
                    EventBody::UsageSoftLimitReached(payload)
                } else {
                    EventBody::UsageLimitReached(payload)
                };
                alerts.push((
                    UsageAlert {
                        customer_id: t.customer_id.clone(),
                        metric: t.metric.clone(),
                        period_start: t.period_start,
                        kind,
                        reached_at: ctx.now,
                    },
                    NewEvent {
                        body,
                        actor: "onramp".into(),
                        customer_id: Some(ctx.id.clone()),
                        occurred_at: self.clock.now(),
                        request_id: None,
                    },
                ));
            }
        }
        alerts
    }

    /// The amount a check asks about: a number, default 1.
    fn amount(value: Option<&serde_json::Value>, field: &str) -> Result<Quantity, BillingError> {
        match value {
            None | Some(serde_json::Value::Null) => Ok(Quantity::units(1)),
            Some(serde_json::Value::Number(n)) => {
                Quantity::from_json(n).map_err(|e| BillingError::Invalid(vec![e.at(field)]))
            }
            Some(_) => Err(BillingError::Invalid(vec![Invalid::new(
                "not_a_number",
                "amount must be a number",
            )
            .at(field)])),
        }
    }

    /// Whether `customer_id` may use `amount` more of `metric` now.
    async fn entitlement(
        &self,
        customer_id: &str,
        metric_id: Option<&str>,
        amount: Quantity,
    ) -> Result<Entitlement, BillingError> {
        let catalog = &self.product.catalog;
        let Some(metric) = metric_id.and_then(|m| catalog.metric(m)) else {
            let e: FieldError = Invalid::new(
                "unknown_metric",
                format!(
                    "metric must be one of the product's metrics ({})",
                    catalog
                        .metrics
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .at("metric");
            return Err(BillingError::Invalid(vec![e]));
        };
        let ctx = self
            .usage_context(customer_id)
            .await?
            .ok_or_else(|| BillingError::CustomerNotFound(customer_id.to_owned()))?;
        let (start, end) = period(metric.reset, ctx.month_anchor, ctx.now);
        let used = self
            .store
            .usage_totals(ctx.id.as_str(), &[(metric.id.clone(), start)])
            .await?
            .first()
            .map_or(0, |t| t.total);
        let mut e = Entitlement {
            customer_id: ctx.id.to_string(),
            metric: metric.id.clone(),
            allowed: false,
            limit: serde_json::json!(0),
            used: q(used),
            remaining: serde_json::json!(0),
            soft_exceeded: false,
            overage: serde_json::Value::Null,
            source: ctx.source.to_owned(),
            reason: None,
            period_start: start,
            period_end: end,
        };
        if ctx.source == "none" {
            e.reason = Some("the customer has no subscription and no running trial".into());
            return Ok(e);
        }
        if ctx.source == "offboarded" {
            e.reason = Some("the customer is offboarded".into());
            return Ok(e);
        }
        // For sum and count, the amount is how much more (events, for a count); for max, the
        // level the customer is about to hold.
        let after = used.saturating_add(amount.0);
        match ctx.limits.get(&metric.id) {
            None | Some(Limit::Unlimited) => {
                e.allowed = true;
                e.limit = serde_json::Value::Null;
                e.remaining = serde_json::Value::Null;
            }
            Some(Limit::Capped { value, hard }) => {
                e.limit = q(value.0);
                e.remaining = q((value.0 - used).max(0));
                e.soft_exceeded = soft_reached(used, value.0, ctx.soft_percent);
                let within = match metric.aggregation {
                    Aggregation::Max => amount.0 <= value.0,
                    _ => after <= value.0,
                };
                match hard {
                    Hard::Block => {
                        e.allowed = within;
                        if !within {
                            e.reason = Some(format!(
                                "the {} limit of {} for this period is reached",
                                metric.id,
                                Quantity(value.0)
                            ));
                        }
                    }
                    Hard::Overage { .. } => {
                        e.allowed = true;
                        e.overage = q((used - value.0).max(0));
                    }
                }
            }
        }
        Ok(e)
    }

    /// `POST /api/v1/entitlements/check` (any operator token).
    pub async fn check_entitlement(
        &self,
        _actor: &Actor,
        req: &EntitlementCheck,
    ) -> Result<Entitlement, BillingError> {
        let Some(customer_id) = req.customer_id.as_deref().filter(|c| !c.is_empty()) else {
            return Err(BillingError::Invalid(vec![Invalid::new(
                "required",
                "customer_id is required",
            )
            .at("customer_id")]));
        };
        let amount = Self::amount(req.amount.as_ref(), "amount")?;
        self.entitlement(customer_id, req.metric.as_deref(), amount)
            .await
    }

    /// `GET /api/v1/me/entitlements/{metric}`: a customer's own token.
    pub async fn my_entitlement(
        &self,
        p: &TenantPrincipal,
        metric: &str,
        amount: Option<f64>,
    ) -> Result<Entitlement, BillingError> {
        if !p
            .scopes
            .iter()
            .any(|s| s == USAGE_READ_SCOPE || s == USAGE_SCOPE)
        {
            return Err(BillingError::ScopeMissing(USAGE_READ_SCOPE));
        }
        let amount = match amount {
            None => Quantity::units(1),
            Some(a) => {
                let n = serde_json::Number::from_f64(a).ok_or_else(|| {
                    BillingError::Invalid(vec![Invalid::new(
                        "not_finite",
                        "amount must be a finite number",
                    )
                    .at("amount")])
                })?;
                Self::amount(Some(&serde_json::Value::Number(n)), "amount")?
            }
        };
        self.entitlement(&p.customer_id, Some(metric), amount).await
    }

    /// A customer's usage in each metric's current period, with its limits and overage.
    pub async fn usage(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<UsageView, BillingError> {
        let ctx = self
            .usage_context(customer_id)
            .await?
            .ok_or_else(|| BillingError::CustomerNotFound(customer_id.to_owned()))?;
        let catalog = &self.product.catalog;
        let periods: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> = catalog
            .metrics
            .iter()
            .map(|m| {
                let (s, e) = period(m.reset, ctx.month_anchor, ctx.now);
                (m.id.clone(), s, e)
            })
            .collect();
        let keys: Vec<(String, DateTime<Utc>)> =
            periods.iter().map(|(m, s, _)| (m.clone(), *s)).collect();
        let totals = self.store.usage_totals(ctx.id.as_str(), &keys).await?;
        let metrics = catalog
            .metrics
            .iter()
            .zip(&periods)
            .map(|(m, (_, start, end))| {
                let t = totals
                    .iter()
                    .find(|t| t.metric == m.id && t.period_start == *start);
                let used = t.map_or(0, |t| t.total);
                let (limit, soft, overage, amount) = match ctx.limits.get(&m.id) {
                    Some(Limit::Capped { value, hard }) => {
                        let over = (used - value.0).max(0);
                        let amount = match hard {
                            Hard::Overage { unit_price, per } => unit_price
                                .iter()
                                .map(|(c, p)| {
                                    (c.to_string(), ratio(over, *p, per.saturating_mul(MICROS)))
                                })
                                .collect(),
                            Hard::Block => BTreeMap::new(),
                        };
                        (
                            q(value.0),
                            soft_reached(used, value.0, ctx.soft_percent),
                            matches!(hard, Hard::Overage { .. }).then(|| q(over)),
                            amount,
                        )
                    }
                    _ => (serde_json::Value::Null, false, None, BTreeMap::new()),
                };
                MetricUsage {
                    metric: m.id.clone(),
                    unit: m.unit.clone(),
                    period_start: *start,
                    period_end: *end,
                    used: q(used),
                    events: t.map_or(0, |t| t.events),
                    limit,
                    soft_exceeded: soft,
                    overage: overage.unwrap_or(serde_json::Value::Null),
                    overage_amount: amount,
                }
            })
            .collect();
        Ok(UsageView {
            customer_id: ctx.id.to_string(),
            source: ctx.source.to_owned(),
            metrics,
            now: ctx.now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_their_reset() {
        let t = Utc.with_ymd_and_hms(2026, 2, 14, 15, 30, 0).unwrap();
        let anchor = Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 0).unwrap();
        assert_eq!(
            period(Reset::Day, anchor, t),
            (
                Utc.with_ymd_and_hms(2026, 2, 14, 0, 0, 0).unwrap(),
                Some(Utc.with_ymd_and_hms(2026, 2, 15, 0, 0, 0).unwrap())
            )
        );
        // Anchored on the 31st: February's period ends on its last day.
        assert_eq!(
            period(Reset::Month, anchor, t),
            (
                Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 0).unwrap(),
                Some(Utc.with_ymd_and_hms(2026, 2, 28, 9, 0, 0).unwrap())
            )
        );
        assert_eq!(period(Reset::Never, anchor, t), (epoch(), None));
        // Without an anchor, calendar months.
        assert_eq!(
            period(Reset::Month, epoch(), t).0,
            Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
        );
    }
}
