//! Subscriptions: a customer on a plan and a cycle, billed per period in one currency; a change
//! of plan or cycle made at once (prorated to the second: the unused time credited at the old
//! price, the rest charged at the new one) or scheduled for the period's end; cancellation at
//! once or at the period's end; renewal at each period's end, applying what was scheduled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Billing, BillingError};
use crate::domain::events::{ChargeLine, EventBody, SubscriptionState, TrialChanged};
use crate::domain::money::{period_boundary, prorate, Currency, Money};
use crate::domain::plan::{CycleOffer, Plan};
use crate::domain::subscription::{ScheduledChange, Subscription, SubscriptionStatus, When};
use crate::domain::trial::TrialStatus;
use crate::domain::{CustomerId, CustomerStatus, FieldError, Invalid, NewEvent, Role};
use crate::services::Actor;
use crate::store::billing::{SubscriptionRecord, TrialRecord};

/// `POST /api/v1/customers/{id}/subscription` and `POST .../trial/convert`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// The plan (`GET /api/v1/plans`).
    #[serde(default)]
    pub plan: Option<String>,
    /// One of the plan's cycles.
    #[serde(default)]
    pub cycle: Option<String>,
    /// The currency it is billed in; needed only when the plans are priced in several.
    #[serde(default)]
    pub currency: Option<String>,
}

/// `POST /api/v1/customers/{id}/subscription/change`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSubscription {
    /// The new plan (the current one when absent).
    #[serde(default)]
    pub plan: Option<String>,
    /// The new cycle (the current one when absent).
    #[serde(default)]
    pub cycle: Option<String>,
    /// `now` (prorated) or `period_end` (scheduled; replaces what was scheduled).
    #[serde(default)]
    pub when: Option<When>,
}

/// `POST /api/v1/customers/{id}/subscription/cancel`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscription {
    /// `now` or `period_end`.
    #[serde(default)]
    pub when: Option<When>,
}

/// `GET /api/v1/customers/{id}/subscription/preview`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// The plan a change would go to (the current one when absent).
    pub plan: Option<String>,
    /// The cycle (the current one when absent).
    pub cycle: Option<String>,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionView {
    /// Its id.
    pub subscription_id: String,
    /// The customer.
    pub customer_id: String,
    /// Its plan.
    pub plan: String,
    /// Its cycle.
    pub cycle: String,
    /// `active`, `past_due`, `paused` or `canceled`.
    pub status: SubscriptionStatus,
    /// What it is billed in.
    pub currency: String,
    /// One period's price, in minor units, after the cycle's discount.
    pub price_per_period: i64,
    /// The current period's start.
    pub current_period_start: DateTime<Utc>,
    /// The current period's end.
    pub current_period_end: DateTime<Utc>,
    /// When it renews: the period's end, unless it is canceled or will be.
    pub renews_at: Option<DateTime<Utc>>,
    /// What waits for the period's end: `{"kind": "change", "plan", "cycle"}` or
    /// `{"kind": "cancel"}`.
    pub pending_change: Option<ScheduledChange>,
    /// What may be done with it now: `change`, `unschedule`, `cancel`.
    pub available_actions: Vec<String>,
    /// The trial it converted.
    pub trial_id: Option<String>,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// The customer's test clock, when it has one.
    pub test_clock_id: Option<String>,
    /// The customer's now when this was read.
    pub now: DateTime<Utc>,
}

/// What a change would cost, made now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePreview {
    /// The plan it would go to.
    pub plan: String,
    /// The cycle.
    pub cycle: String,
    /// The currency.
    pub currency: String,
    /// The lines: the unused time credited at the old price, then the charge at the new one.
    pub lines: Vec<ChargeLine>,
    /// Their sum: positive to pay, negative a credit.
    pub total: i64,
    /// When the change would take effect (the customer's now).
    pub at: DateTime<Utc>,
    /// When the period after the change would end.
    pub period_end: DateTime<Utc>,
}

fn required<'a>(
    field: &str,
    value: Option<&'a str>,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None => {
            errors.push(Invalid::new("required", format!("{field} is required")).at(field));
            None
        }
    }
}

impl Billing {
    /// The plan and cycle named, checked: the plan exists and is sold on the cycle.
    fn plan_cycle(
        &self,
        plan: Option<&str>,
        cycle: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> Option<(&Plan, &CycleOffer)> {
        let catalog = &self.product.catalog;
        let plan = required("plan", plan, errors).and_then(|p| {
            let found = catalog.plan(p);
            if found.is_none() {
                errors.push(
                    Invalid::new(
                        "unknown_plan",
                        format!(
                            "plan '{}' is not one of the product's plans ({})",
                            crate::domain::text::shorten(p, 64),
                            catalog
                                .plans
                                .iter()
                                .map(|p| p.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .at("plan"),
                );
            }
            found
        });
        let cycle = required("cycle", cycle, errors);
        let (plan, cycle) = (plan?, cycle?);
        if !plan.cycles.iter().any(|c| c == cycle) {
            errors.push(
                Invalid::new(
                    "unknown_cycle",
                    format!(
                        "plan '{}' is sold on {}, not '{}'",
                        plan.id,
                        plan.cycles.join(", "),
                        crate::domain::text::shorten(cycle, 64)
                    ),
                )
                .at("cycle"),
            );
            return None;
        }
        Some((plan, catalog.cycle(cycle)?))
    }

    /// The currencies the catalog prices in.
    fn currencies(&self) -> Vec<Currency> {
        let mut all: Vec<Currency> = self
            .product
            .catalog
            .plans
            .iter()
            .flat_map(|p| p.prices.keys().copied())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The currency a subscription is billed in when none is named: the catalog's first (its
    /// only, where that is allowed), or USD for a catalog of free plans.
    fn default_currency(&self) -> Currency {
        self.currencies()
            .first()
            .copied()
            .unwrap_or(Currency::parse("USD").expect("valid"))
    }

    /// One period's price of `plan` on `cycle` in `currency` (zero for a free plan).
    fn period_price(plan: &Plan, cycle: &CycleOffer, currency: Currency) -> Money {
        let monthly = plan.prices.get(&currency).copied().unwrap_or(0);
        cycle.cycle.price(Money::new(monthly, currency))
    }

    fn subscription_view(&self, r: &SubscriptionRecord, now: DateTime<Utc>) -> SubscriptionView {
        let s = &r.subscription;
        let (start, end) = s.period(now);
        let catalog = &self.product.catalog;
        let price = match (catalog.plan(&s.plan), catalog.cycle(&s.cycle)) {
            (Some(p), Some(c)) => Self::period_price(p, c, r.currency).minor,
            _ => 0,
        };
        let live = s.status != SubscriptionStatus::Canceled;
        SubscriptionView {
            subscription_id: r.subscription_id.clone(),
            customer_id: r.customer_id.clone(),
            plan: s.plan.clone(),
            cycle: s.cycle.clone(),
            status: s.status,
            currency: r.currency.to_string(),
            price_per_period: price,
            current_period_start: start,
            current_period_end: end,
            renews_at: (live && s.scheduled != Some(ScheduledChange::Cancel)).then_some(end),
            pending_change: s.scheduled.clone(),
            available_actions: s
                .available_actions()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            trial_id: r.trial_id.clone(),
            created_at: r.created_at,
            test_clock_id: r.test_clock_id.clone(),
            now,
        }
    }

    fn subscription_event(
        &self,
        actor: &Actor,
        r: &SubscriptionRecord,
        at: DateTime<Utc>,
        make: fn(SubscriptionState) -> EventBody,
        from: Option<&Subscription>,
        lines: Vec<ChargeLine>,
    ) -> NewEvent {
        let s = &r.subscription;
        let total = (!lines.is_empty()).then(|| lines.iter().map(|l| l.amount).sum());
        NewEvent {
            body: make(SubscriptionState {
                subscription_id: r.subscription_id.clone(),
                plan: s.plan.clone(),
                cycle: s.cycle.clone(),
                status: s.status,
                currency: r.currency.to_string(),
                at,
                period_end: (s.status != SubscriptionStatus::Canceled).then(|| s.period(at).1),
                from_plan: from.map(|f| f.plan.clone()),
                from_cycle: from.map(|f| f.cycle.clone()),
                scheduled: s.scheduled.clone(),
                lines,
                total,
                trial_id: r.trial_id.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(CustomerId::from_trusted(r.customer_id.clone())),
            occurred_at: self.clock.now(),
            request_id: actor.request_id.clone(),
        }
    }

    /// The charge for the period of `s` that starts at `at`.
    fn period_line(
        &self,
        s: &Subscription,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Result<ChargeLine, BillingError> {
        let catalog = &self.product.catalog;
        let (Some(plan), Some(cycle)) = (catalog.plan(&s.plan), catalog.cycle(&s.cycle)) else {
            return Err(BillingError::Internal(format!(
                "the subscription's plan '{}' or cycle '{}' is not in the catalog",
                s.plan, s.cycle
            )));
        };
        let (_, end) = s.period(at);
        Ok(ChargeLine {
            description: format!("{} ({}), one period", plan.name, cycle.id),
            amount: Self::period_price(plan, cycle, currency).minor,
            from: at,
            to: end,
        })
    }

    /// Subscribes a customer (operators). A trial it has running is converted in the same
    /// step.
    pub async fn subscribe(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &NewSubscription,
    ) -> Result<SubscriptionView, BillingError> {
        actor.may(Role::Operator)?;
        self.subscribe_converting(actor, customer_id, req, false)
            .await
    }

    /// Converts a customer's trial into a subscription (operators).
    pub async fn convert_trial(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &NewSubscription,
    ) -> Result<SubscriptionView, BillingError> {
        actor.may(Role::Operator)?;
        self.subscribe_converting(actor, customer_id, req, true)
            .await
    }

    async fn subscribe_converting(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &NewSubscription,
        trial_required: bool,
    ) -> Result<SubscriptionView, BillingError> {
        let customer = self.customer(customer_id).await?;
        let mut errors = Vec::new();
        let chosen = self.plan_cycle(req.plan.as_deref(), req.cycle.as_deref(), &mut errors);
        let currencies = self.currencies();
        let currency = match req.currency.as_deref() {
            Some(c) => match Currency::parse(c) {
                Ok(cur) if currencies.is_empty() || currencies.contains(&cur) => Some(cur),
                _ => {
                    errors.push(
                        Invalid::new(
                            "unknown_currency",
                            format!(
                                "currency must be one the plans are priced in ({})",
                                currencies
                                    .iter()
                                    .map(Currency::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .at("currency"),
                    );
                    None
                }
            },
            None if currencies.len() > 1 => {
                errors.push(
                    Invalid::new(
                        "required",
                        "currency is required: the plans are priced in several currencies",
                    )
                    .at("currency"),
                );
                None
            }
            None => Some(self.default_currency()),
        };
        let (Some((plan, cycle)), Some(currency)) = (chosen, currency) else {
            return Err(BillingError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(BillingError::Invalid(errors));
        }
        if matches!(
            customer.status,
            CustomerStatus::Inactive | CustomerStatus::Deleted
        ) {
            return Err(BillingError::CustomerOffboarded(customer_id.to_owned()));
        }
        if self
            .store
            .live_subscription(customer.id.as_str())
            .await?
            .is_some()
        {
            return Err(BillingError::SubscriptionExists(customer_id.to_owned()));
        }
        let trial = self.store.get_trial(customer.id.as_str()).await?;
        let convertible = trial.as_ref().filter(|t| {
            matches!(
                t.trial.status,
                TrialStatus::Pending | TrialStatus::Active | TrialStatus::Extended
            ) || (t.trial.status == TrialStatus::Expired && t.ended_at.is_none())
        });
        if trial_required {
            match &trial {
                None => return Err(BillingError::TrialNotFound(customer_id.to_owned())),
                Some(t) if convertible.is_none() => {
                    return Err(BillingError::TrialStatus {
                        status: t.trial.status.as_str(),
                        action: "converted",
                    })
                }
                Some(_) => {}
            }
        }
        let now = self.now_for(customer.test_clock_id.as_deref()).await?;
        let subscription = Subscription::start(&plan.id, &cycle.id, cycle.cycle.months, now);
        let record = SubscriptionRecord {
            subscription_id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
            customer_id: customer.id.to_string(),
            next_at: Some(subscription.period(now).1),
            subscription,
            currency,
            trial_id: convertible.map(|t| t.trial_id.clone()),
            canceled_at: None,
            test_clock_id: customer.test_clock_id.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.insert_subscription(actor, record, convertible, now, "converted")
            .await
    }

    /// Stores a new subscription with its event, converting `trial` in the same transaction
    /// when one is given (`how` says why: converted, or the end behaviour that made it).
    async fn insert_subscription(
        &self,
        actor: &Actor,
        record: SubscriptionRecord,
        trial: Option<&TrialRecord>,
        now: DateTime<Utc>,
        how: &str,
    ) -> Result<SubscriptionView, BillingError> {
        let line = self.period_line(&record.subscription, record.currency, now)?;
        let mut events = Vec::new();
        let mut converted = None;
        if let Some(t) = trial {
            let mut next = t.clone();
            if t.trial.status != TrialStatus::Expired {
                next.trial = t.trial.convert().map_err(BillingError::trial)?;
            }
            next.ended_at = Some(now);
            next.next_at = None;
            next.updated_at = now;
            next.version += 1;
            let body = if how == "converted" {
                EventBody::TrialConverted as fn(TrialChanged) -> EventBody
            } else {
                EventBody::TrialEnded
            };
            events.push(self.trial_event(
                actor,
                &next,
                now,
                body,
                None,
                Some(format!(
                    "{how}: {} ({})",
                    record.subscription.plan, record.subscription.cycle
                )),
            ));
            converted = Some((next, t.version));
        }
        events.push(self.subscription_event(
            actor,
            &record,
            now,
            EventBody::SubscriptionCreated,
            None,
            vec![line],
        ));
        self.store
            .insert_subscription(&record, converted.as_ref().map(|(t, v)| (t, *v)), events)
            .await?;
        Ok(self.subscription_view(&record, now))
    }

    /// The subscription the product's trial end behaviour makes, with the trial's end, in one
    /// transaction (the `billing.due` work at the end of a trial's grace).
    pub(super) async fn subscribe_at_trial_end(
        &self,
        trial: &TrialRecord,
        plan: &str,
        cycle: &str,
        at: DateTime<Utc>,
        how: &str,
    ) -> Result<(), BillingError> {
        let catalog = &self.product.catalog;
        let (Some(_), Some(offer)) = (catalog.plan(plan), catalog.cycle(cycle)) else {
            return Err(BillingError::Internal(format!(
                "the trial's end plan '{plan}' or cycle '{cycle}' is not in the catalog"
            )));
        };
        if self
            .store
            .live_subscription(&trial.customer_id)
            .await?
            .is_some()
        {
            // Subscribed meanwhile: the trial only ends.
            return Err(BillingError::SubscriptionExists(trial.customer_id.clone()));
        }
        let currency = self.default_currency();
        let subscription = Subscription::start(plan, cycle, offer.cycle.months, at);
        let record = SubscriptionRecord {
            subscription_id: format!("sub_{}", uuid::Uuid::new_v4().simple()),
            customer_id: trial.customer_id.clone(),
            next_at: Some(subscription.period(at).1),
            subscription,
            currency,
            trial_id: Some(trial.trial_id.clone()),
            canceled_at: None,
            test_clock_id: trial.test_clock_id.clone(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        self.insert_subscription(&Actor::system(), record, Some(trial), at, how)
            .await
            .map(|_| ())
    }

    async fn load_subscription(
        &self,
        customer_id: &str,
    ) -> Result<(SubscriptionRecord, DateTime<Utc>), BillingError> {
        let customer = self.customer(customer_id).await?;
        let now = self.now_for(customer.test_clock_id.as_deref()).await?;
        // A period that has ended is renewed first (the job may not have come yet), so a
        // change or a view works on the period that holds now.
        for _ in 0..1000 {
            let record = self
                .store
                .live_subscription(customer.id.as_str())
                .await?
                .ok_or_else(|| BillingError::SubscriptionNotFound(customer_id.to_owned()))?;
            match record.next_at {
                Some(due) if due <= now => match self.subscription_due(&record, due).await {
                    Ok(()) | Err(BillingError::Changed(_)) => continue,
                    Err(e) => return Err(e),
                },
                _ => return Ok((record, now)),
            }
        }
        Err(BillingError::Internal(format!(
            "the subscription of '{customer_id}' has more than 1,000 periods to catch up"
        )))
    }

    /// A customer's live subscription.
    pub async fn subscription(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<SubscriptionView, BillingError> {
        let (record, now) = self.load_subscription(customer_id).await?;
        Ok(self.subscription_view(&record, now))
    }

    /// What changing to `plan` and `cycle` now would cost, line by line.
    fn proration(
        &self,
        record: &SubscriptionRecord,
        plan: &Plan,
        cycle: &CycleOffer,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ChargeLine>, DateTime<Utc>), BillingError> {
        let s = &record.subscription;
        let catalog = &self.product.catalog;
        let (Some(old_plan), Some(old_cycle)) = (catalog.plan(&s.plan), catalog.cycle(&s.cycle))
        else {
            return Err(BillingError::Internal(format!(
                "the subscription's plan '{}' or cycle '{}' is not in the catalog",
                s.plan, s.cycle
            )));
        };
        let (start, end) = s.period(now);
        let old_price = Self::period_price(old_plan, old_cycle, record.currency);
        let new_price = Self::period_price(plan, cycle, record.currency);
        let line = |l: crate::domain::money::ProrationLine| ChargeLine {
            description: l.description,
            amount: l.amount.minor,
            from: l.from,
            to: l.to,
        };
        if cycle.id == s.cycle {
            // The same periods: the rest of this one at the new price instead of the old.
            let lines = prorate(start, end, now, old_price, new_price)
                .map_err(|e| BillingError::Internal(e.to_string()))?;
            return Ok((lines.into_iter().map(line).collect(), end));
        }
        // A new cycle starts its periods now: the unused time is credited, the new cycle's
        // first period charged whole.
        let unused = prorate(start, end, now, old_price, old_price)
            .map_err(|e| BillingError::Internal(e.to_string()))?;
        let new_end = period_boundary(now, cycle.cycle.months, 1);
        let mut lines = vec![line(unused[0].clone())];
        lines.push(ChargeLine {
            description: format!("{} ({}), first period", plan.name, cycle.id),
            amount: new_price.minor,
            from: now,
            to: new_end,
        });
        Ok((lines, new_end))
    }

    /// What a change to `plan` and `cycle` made now would cost, without making it.
    pub async fn preview_change(
        &self,
        _actor: &Actor,
        customer_id: &str,
        q: &PreviewQuery,
    ) -> Result<ChangePreview, BillingError> {
        let (record, now) = self.load_subscription(customer_id).await?;
        let s = &record.subscription;
        let mut errors = Vec::new();
        let plan = q.plan.as_deref().unwrap_or(&s.plan);
        let cycle = q.cycle.as_deref().unwrap_or(&s.cycle);
        let Some((plan, cycle)) = self.plan_cycle(Some(plan), Some(cycle), &mut errors) else {
            return Err(BillingError::Invalid(errors));
        };
        if plan.id == s.plan && cycle.id == s.cycle {
            return Err(BillingError::Unchanged(plan.id.clone(), cycle.id.clone()));
        }
        let (lines, period_end) = self.proration(&record, plan, cycle, now)?;
        Ok(ChangePreview {
            plan: plan.id.clone(),
            cycle: cycle.id.clone(),
            currency: record.currency.to_string(),
            total: lines.iter().map(|l| l.amount).sum(),
            lines,
            at: now,
            period_end,
        })
    }

    /// Changes a subscription's plan or cycle now (prorated) or at the period's end
    /// (operators).
    pub async fn change_subscription(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &ChangeSubscription,
    ) -> Result<SubscriptionView, BillingError> {
        actor.may(Role::Operator)?;
        let (record, now) = self.load_subscription(customer_id).await?;
        let s = &record.subscription;
        let mut errors = Vec::new();
        let when = req.when.unwrap_or_else(|| {
            errors
                .push(Invalid::new("required", "when is required (now or period_end)").at("when"));
            When::Now
        });
        let plan = req.plan.as_deref().unwrap_or(&s.plan);
        let cycle = req.cycle.as_deref().unwrap_or(&s.cycle);
        let chosen = self.plan_cycle(Some(plan), Some(cycle), &mut errors);
        let Some((plan, cycle)) = chosen.filter(|_| errors.is_empty()) else {
            return Err(BillingError::Invalid(errors));
        };
        let changed = s
            .change(&plan.id, &cycle.id, cycle.cycle.months, when, now)
            .map_err(BillingError::subscription)?;
        let mut next = record.clone();
        next.subscription = changed;
        next.next_at = Some(next.subscription.period(now).1);
        next.updated_at = now;
        next.version += 1;
        let event = match when {
            When::Now => {
                let (lines, _) = self.proration(&record, plan, cycle, now)?;
                self.subscription_event(
                    actor,
                    &next,
                    now,
                    EventBody::SubscriptionChanged,
                    Some(s),
                    lines,
                )
            }
            When::PeriodEnd => self.subscription_event(
                actor,
                &next,
                now,
                EventBody::SubscriptionChangeScheduled,
                None,
                vec![],
            ),
        };
        self.store
            .update_subscription(&next, record.version, vec![event])
            .await?;
        Ok(self.subscription_view(&next, now))
    }

    /// Cancels a subscription now or at the period's end (operators).
    pub async fn cancel_subscription(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &CancelSubscription,
    ) -> Result<SubscriptionView, BillingError> {
        actor.may(Role::Operator)?;
        let Some(when) = req.when else {
            return Err(BillingError::Invalid(vec![Invalid::new(
                "required",
                "when is required (now or period_end)",
            )
            .at("when")]));
        };
        let (record, now) = self.load_subscription(customer_id).await?;
        let mut next = record.clone();
        next.subscription = record
            .subscription
            .cancel(when)
            .map_err(BillingError::subscription)?;
        next.updated_at = now;
        next.version += 1;
        let body = if next.subscription.status == SubscriptionStatus::Canceled {
            next.canceled_at = Some(now);
            next.next_at = None;
            EventBody::SubscriptionCanceled as fn(SubscriptionState) -> EventBody
        } else {
            EventBody::SubscriptionCancelScheduled
        };
        let event = self.subscription_event(actor, &next, now, body, None, vec![]);
        self.store
            .update_subscription(&next, record.version, vec![event])
            .await?;
        Ok(self.subscription_view(&next, now))
    }

    /// Withdraws what was scheduled for the period's end, a change or a cancellation
    /// (operators); refused when nothing is scheduled.
    pub async fn unschedule_subscription(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<SubscriptionView, BillingError> {
        actor.may(Role::Operator)?;
        let (record, now) = self.load_subscription(customer_id).await?;
        let mut next = record.clone();
        next.subscription = record
            .subscription
            .unschedule()
            .map_err(BillingError::subscription)?;
        next.updated_at = now;
        next.version += 1;
        let event = self.subscription_event(
            actor,
            &next,
            now,
            EventBody::SubscriptionUnscheduled,
            None,
            vec![],
        );
        self.store
            .update_subscription(&next, record.version, vec![event])
            .await?;
        Ok(self.subscription_view(&next, now))
    }

    /// The end of a subscription's period at `at` (its `next_at`): what was scheduled takes
    /// effect and the next period begins, or it ends.
    pub(super) async fn subscription_due(
        &self,
        record: &SubscriptionRecord,
        at: DateTime<Utc>,
    ) -> Result<(), BillingError> {
        let actor = Actor::system();
        let s = &record.subscription;
        let mut next = record.clone();
        next.updated_at = at;
        next.version += 1;
        let mut events = Vec::new();
        if s.status != SubscriptionStatus::Canceled && self.offboarded(&record.customer_id).await? {
            // Offboarded: it ends at its period's end instead of renewing.
            next.subscription = s.cancel(When::Now).map_err(BillingError::subscription)?;
            next.canceled_at = Some(at);
            next.next_at = None;
            events.push(self.subscription_event(
                &actor,
                &next,
                at,
                EventBody::SubscriptionCanceled,
                None,
                vec![],
            ));
            self.store
                .update_subscription(&next, record.version, events)
                .await?;
            return Ok(());
        }
        match s.status {
            SubscriptionStatus::Canceled | SubscriptionStatus::Paused => next.next_at = None,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {
                let catalog = &self.product.catalog;
                next.subscription = s.at_period_end(at, |c| catalog.months_of(c));
                if next.subscription.status == SubscriptionStatus::Canceled {
                    next.canceled_at = Some(at);
                    next.next_at = None;
                    events.push(self.subscription_event(
                        &actor,
                        &next,
                        at,
                        EventBody::SubscriptionCanceled,
                        None,
                        vec![],
                    ));
                } else {
                    next.next_at = Some(next.subscription.period(at).1);
                    let from = (next.subscription.plan != s.plan
                        || next.subscription.cycle != s.cycle)
                        .then_some(s);
                    let line = self.period_line(&next.subscription, record.currency, at)?;
                    events.push(self.subscription_event(
                        &actor,
                        &next,
                        at,
                        EventBody::SubscriptionRenewed,
                        from,
                        vec![line],
                    ));
                }
            }
        }
        self.store
            .update_subscription(&next, record.version, events)
            .await?;
        Ok(())
    }
}
