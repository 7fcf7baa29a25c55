//! Trials: started by an operator (or by the product's rules), pending until what the product's
//! `activate_on` names happens (or an operator activates it), then running for its days plus
//! every extension, reminded `reminder_days` before its end, expired at its end, and ended
//! after its grace with the product's end behaviour.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::{Billing, BillingError};
use crate::domain::events::{EventBody, TrialChanged};
use crate::domain::plan::{ActivateOn, Limit, TrialEnd, TrialPolicy};
use crate::domain::text::display_text;
use crate::domain::trial::{Trial, TrialDue, TrialStatus};
use crate::domain::{Customer, CustomerId, CustomerStatus, FieldError, Invalid, NewEvent, Role};
use crate::services::Actor;
use crate::store::billing::TrialRecord;

/// The longest reason an extension may give.
const MAX_REASON: usize = 500;

/// `POST /api/v1/customers/{id}/trial`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTrial {
    /// The plan it runs on; the product's trial plan when absent.
    #[serde(default)]
    pub plan: Option<String>,
    /// Its days, from the product's `min_days` to `max_days`; its `days` when absent.
    #[serde(default, deserialize_with = "whole_days")]
    pub days: Option<i64>,
}

/// `POST /api/v1/customers/{id}/trial/extend`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendTrial {
    /// Days to add, from 1 to the product's `max_extension_days`.
    #[serde(default, deserialize_with = "whole_days")]
    pub days: Option<i64>,
    /// Why (kept in the event log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A whole number of days, also when written with a zero fraction (`7.0`), as JSON Schema's
/// `integer` allows; a number too large for any bound is taken as such (and refused by it).
fn whole_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !n.is_finite() {
        return Err(serde::de::Error::custom(format!(
            "expected a whole number of days, found {n}"
        )));
    }
    Ok(Some(n.clamp(i64::MIN as f64, i64::MAX as f64) as i64))
}

/// A customer's trial.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrialView {
    /// Its id.
    pub trial_id: String,
    /// The customer.
    pub customer_id: String,
    /// The plan it runs on.
    pub plan: String,
    /// `pending`, `active`, `extended`, `converted` or `expired`.
    pub status: TrialStatus,
    /// What starts its clock.
    pub activate_on: String,
    /// Its days, extensions included.
    pub days: u32,
    /// Extensions granted.
    pub extensions: u32,
    /// Extensions it may still get.
    pub extensions_left: u32,
    /// When its clock started.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it ends (its activation plus all its days).
    pub ends_at: Option<DateTime<Utc>>,
    /// When its grace after the end runs out.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// Whether it has expired and its grace still runs (its limits still hold).
    pub in_grace: bool,
    /// When the reminder of its end was sent.
    pub reminded_at: Option<DateTime<Utc>>,
    /// When the end behaviour was applied.
    pub ended_at: Option<DateTime<Utc>>,
    /// The next work its clock brings (`activate`, `remind`, `expire`, `end_grace`) and when.
    pub next: Option<TrialNext>,
    /// Its limit per metric: the product's trial limits over its plan's (`null`: unlimited).
    #[schema(value_type = Object)]
    pub limits: BTreeMap<String, serde_json::Value>,
    /// What may be done with it now: `activate`, `extend`.
    pub available_actions: Vec<String>,
    /// The customer's test clock, when it has one.
    pub test_clock_id: Option<String>,
    /// The customer's now when this was read.
    pub now: DateTime<Utc>,
}

/// The next work a trial's clock brings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrialNext {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub work: TrialDue,
}

/// The limits a trial gives: its plan's, with the product's trial limits over them.
pub fn trial_limits(
    policy: &TrialPolicy,
    plan: Option<&crate::domain::plan::Plan>,
) -> BTreeMap<String, Limit> {
    let mut limits = plan.map(|p| p.limits.clone()).unwrap_or_default();
    for (m, l) in &policy.limits {
        limits.insert(m.clone(), l.clone());
    }
    limits
}

impl Billing {
    fn policy(&self) -> Result<&TrialPolicy, BillingError> {
        self.product
            .catalog
            .trial
            .as_ref()
            .ok_or(BillingError::NoTrialOffered)
    }

    fn schedule(&self, policy: &TrialPolicy, record: &mut TrialRecord) {
        record.next_at = record
            .trial
            .next_due(
                record.progress(policy.activate_within_days),
                policy.reminder_days,
                policy.grace_days,
            )
            .map(|(at, _)| at);
    }

    fn trial_view(&self, policy: &TrialPolicy, r: &TrialRecord, now: DateTime<Utc>) -> TrialView {
        let t = &r.trial;
        let mut actions = Vec::new();
        if t.status == TrialStatus::Pending {
            actions.push("activate".to_owned());
        }
        if matches!(
            t.status,
            TrialStatus::Pending | TrialStatus::Active | TrialStatus::Extended
        ) && t.extensions < policy.max_extensions
        {
            actions.push("extend".to_owned());
        }
        TrialView {
            trial_id: r.trial_id.clone(),
            customer_id: r.customer_id.clone(),
            plan: r.plan.clone(),
            status: t.status,
            activate_on: r.activate_on.as_str().to_owned(),
            days: t.days + t.extra_days,
            extensions: t.extensions,
            extensions_left: policy.max_extensions.saturating_sub(t.extensions),
            activated_at: t.activated_at,
            ends_at: t.ends_at(),
            grace_ends_at: t.grace_ends_at(policy.grace_days),
            in_grace: t.in_grace(now, policy.grace_days),
            reminded_at: r.reminded_at,
            ended_at: r.ended_at,
            next: t
                .next_due(
                    r.progress(policy.activate_within_days),
                    policy.reminder_days,
                    policy.grace_days,
                )
                .map(|(at, work)| TrialNext { at, work }),
            limits: trial_limits(policy, self.product.catalog.plan(&r.plan))
                .iter()
                .map(|(m, l)| {
                    (
                        m.clone(),
                        l.value().map_or(serde_json::Value::Null, |q| q.to_json()),
                    )
                })
                .collect(),
            available_actions: actions,
            test_clock_id: r.test_clock_id.clone(),
            now,
        }
    }

    pub(super) fn trial_event(
        &self,
        actor: &Actor,
        r: &TrialRecord,
        at: DateTime<Utc>,
        make: fn(TrialChanged) -> EventBody,
        days_added: Option<u32>,
        reason: Option<String>,
    ) -> NewEvent {
        NewEvent {
            body: make(TrialChanged {
                trial_id: r.trial_id.clone(),
                plan: r.plan.clone(),
                status: r.trial.status,
                at,
                ends_at: r.trial.ends_at(),
                days: r.trial.days + r.trial.extra_days,
                extensions: r.trial.extensions,
                days_added,
                reason,
            }),
            actor: actor.name.clone(),
            customer_id: Some(CustomerId::from_trusted(r.customer_id.clone())),
            occurred_at: self.clock.now(),
            request_id: actor.request_id.clone(),
        }
    }

    /// Whether what the product's `activate_on` names has happened for `customer`.
    async fn activation_met(
        &self,
        on: ActivateOn,
        customer: &Customer,
    ) -> Result<Option<&'static str>, BillingError> {
        Ok(match on {
            ActivateOn::Manual => None,
            ActivateOn::OnboardingCompleted => {
                (customer.status == CustomerStatus::Active).then_some("onboarding_completed")
            }
            ActivateOn::CredentialsConfigured => self
                .vault
                .missing_required(&customer.id)
                .await?
                .is_empty()
                .then_some("credentials_configured"),
            ActivateOn::SignupApproved => {
                let signup = customer
                    .created_by
                    .as_deref()
                    .and_then(|c| c.strip_prefix("signup:"));
                match signup {
                    Some(id) => self
                        .store
                        .signup(id)
                        .await?
                        .and_then(|s| s.decision)
                        .and_then(|d| d.customer_id)
                        .is_some_and(|c| c == customer.id)
                        .then_some("signup_approved"),
                    None => None,
                }
            }
        })
    }

    /// Starts a customer's trial (operators): pending, or active at once when what the
    /// product's `activate_on` names has already happened.
    pub async fn start_trial(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &StartTrial,
    ) -> Result<TrialView, BillingError> {
        actor.may(Role::Operator)?;
        let policy = self.policy()?;
        let customer = self.customer(customer_id).await?;
        let mut errors: Vec<FieldError> = Vec::new();
        let plan = req.plan.clone().unwrap_or_else(|| policy.plan.clone());
        if self.product.catalog.plan(&plan).is_none() {
            errors.push(
                Invalid::new(
                    "unknown_plan",
                    format!(
                        "plan '{plan}' is not one of the product's plans ({})",
                        self.product
                            .catalog
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
        let days = req.days.unwrap_or(i64::from(policy.days));
        if !(i64::from(policy.min_days)..=i64::from(policy.max_days)).contains(&days) {
            errors.push(
                Invalid::new(
                    "out_of_range",
                    format!(
                        "days must be from {} to {}",
                        policy.min_days, policy.max_days
                    ),
                )
                .at("days"),
            );
        }
        if !errors.is_empty() {
            return Err(BillingError::Invalid(errors));
        }
        if matches!(
            customer.status,
            CustomerStatus::Inactive | CustomerStatus::Deleted
        ) {
            return Err(BillingError::CustomerOffboarded(customer_id.to_owned()));
        }
        if self.store.get_trial(customer.id.as_str()).await?.is_some() {
            return Err(BillingError::TrialExists(customer_id.to_owned()));
        }
        let now = self.now_for(customer.test_clock_id.as_deref()).await?;
        let trial = Trial::new(days as u32).map_err(BillingError::trial)?;
        let mut record = TrialRecord {
            trial_id: format!("tr_{}", uuid::Uuid::new_v4().simple()),
            customer_id: customer.id.to_string(),
            plan,
            trial,
            activate_on: policy.activate_on,
            reminded_at: None,
            ended_at: None,
            next_at: None,
            test_clock_id: customer.test_clock_id.clone(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let mut events =
            vec![self.trial_event(actor, &record, now, EventBody::TrialStarted, None, None)];
        if let Some(why) = self.activation_met(policy.activate_on, &customer).await? {
            record.trial = record.trial.activate(now).map_err(BillingError::trial)?;
            events.push(self.trial_event(
                actor,
                &record,
                now,
                EventBody::TrialActivated,
                None,
                Some(why.to_owned()),
            ));
        }
        self.schedule(policy, &mut record);
        self.store.insert_trial(&record, events).await?;
        Ok(self.trial_view(policy, &record, now))
    }

    /// A customer's trial.
    pub async fn trial(
        &self,
        _actor: &Actor,
        customer_id: &str,
    ) -> Result<TrialView, BillingError> {
        let (policy, record, now) = self.load_trial(customer_id).await?;
        Ok(self.trial_view(policy, &record, now))
    }

    async fn load_trial(
        &self,
        customer_id: &str,
    ) -> Result<(&TrialPolicy, TrialRecord, DateTime<Utc>), BillingError> {
        let policy = self.policy()?;
        let customer = self.customer(customer_id).await?;
        let now = self.now_for(customer.test_clock_id.as_deref()).await?;
        // Work its clock has brought is done first (the job may not have come yet).
        for _ in 0..10 {
            let record = self
                .store
                .get_trial(customer.id.as_str())
                .await?
                .ok_or_else(|| BillingError::TrialNotFound(customer_id.to_owned()))?;
            match record.next_at {
                Some(due) if due <= now => match self.trial_due(&record, due).await {
                    Ok(()) | Err(BillingError::Changed(_)) => continue,
                    Err(e) => return Err(e),
                },
                _ => return Ok((policy, record, now)),
            }
        }
        Err(BillingError::Internal(format!(
            "the trial of '{customer_id}' has too much due work to catch up"
        )))
    }

    /// Starts a pending trial's clock now (operators), whatever the product's `activate_on`.
    pub async fn activate_trial(
        &self,
        actor: &Actor,
        customer_id: &str,
    ) -> Result<TrialView, BillingError> {
        actor.may(Role::Operator)?;
        let (policy, record, now) = self.load_trial(customer_id).await?;
        self.activate(actor, policy, record, now, "operator").await
    }

    async fn activate(
        &self,
        actor: &Actor,
        policy: &TrialPolicy,
        record: TrialRecord,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<TrialView, BillingError> {
        let mut next = record.clone();
        next.trial = record.trial.activate(now).map_err(BillingError::trial)?;
        next.updated_at = now;
        next.version += 1;
        self.schedule(policy, &mut next);
        let event = self.trial_event(
            actor,
            &next,
            now,
            EventBody::TrialActivated,
            None,
            Some(why.to_owned()),
        );
        self.store
            .update_trial(&next, record.version, vec![event])
            .await?;
        Ok(self.trial_view(policy, &next, now))
    }

    /// Activates the customer's pending trial if it waits for `on` and `on` has happened
    /// (the `billing.activations` consumer); says whether it did.
    pub async fn activate_if_met(
        &self,
        customer_id: &str,
        on: ActivateOn,
    ) -> Result<bool, BillingError> {
        let Ok(policy) = self.policy() else {
            return Ok(false);
        };
        let Some(customer) = self.store.get_customer(customer_id).await? else {
            return Ok(false);
        };
        // What its clock brought first (a deadline that passed), then the condition.
        let (_, record, now) = match self.load_trial(customer.id.as_str()).await {
            Ok(loaded) => loaded,
            Err(BillingError::TrialNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if record.trial.status != TrialStatus::Pending || record.activate_on != on {
            return Ok(false);
        }
        let Some(why) = self.activation_met(on, &customer).await? else {
            return Ok(false);
        };
        match self
            .activate(&Actor::system(), policy, record, now, why)
            .await
        {
            Ok(_) => Ok(true),
            // Activated meanwhile (its deadline, an operator): nothing left to do.
            Err(BillingError::Changed(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives a trial more days (operators); refused past the product's `max_extensions`.
    pub async fn extend_trial(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &ExtendTrial,
    ) -> Result<TrialView, BillingError> {
        actor.may(Role::Operator)?;
        let policy = self.policy()?;
        let mut errors = Vec::new();
        let days = match req.days {
            None => {
                errors.push(Invalid::new("required", "days is required").at("days"));
                0
            }
            Some(d) if !(1..=i64::from(policy.max_extension_days)).contains(&d) => {
                errors.push(
                    Invalid::new(
                        "out_of_range",
                        format!(
                            "days must be from 1 to {} (the product's max_extension_days)",
                            policy.max_extension_days
                        ),
                    )
                    .at("days"),
                );
                0
            }
            Some(d) => d as u32,
        };
        let reason = display_text(
            "reason",
            req.reason.as_deref().unwrap_or(""),
            MAX_REASON,
            true,
        )
        .map_err(|e| errors.push(e.at("reason")))
        .ok();
        let Some(reason) = reason.filter(|_| errors.is_empty()) else {
            return Err(BillingError::Invalid(errors));
        };
        let (policy, record, now) = self.load_trial(customer_id).await?;
        let mut next = record.clone();
        next.trial = record
            .trial
            .extend(days, policy.max_extensions)
            .map_err(BillingError::trial)?;
        // A new end asks for a new reminder before it.
        next.reminded_at = None;
        next.updated_at = now;
        next.version += 1;
        self.schedule(policy, &mut next);
        let event = self.trial_event(
            actor,
            &next,
            now,
            EventBody::TrialExtended,
            Some(days),
            Some(reason),
        );
        self.store
            .update_trial(&next, record.version, vec![event])
            .await?;
        Ok(self.trial_view(policy, &next, now))
    }

    /// Brings every pending trial's next work in line with the product's
    /// `activate_within_days` as it is now: a deadline added, moved or removed since the trial
    /// was scheduled. Saved without an event (nothing happened to the trial); a trial changed
    /// meanwhile is left to its own writer, who schedules it the same way.
    pub(super) async fn schedule_pending(&self) -> Result<usize, BillingError> {
        let Ok(policy) = self.policy() else {
            return Ok(0);
        };
        let mut after = String::new();
        let mut moved = 0;
        loop {
            let page = self.store.pending_trials(&after, 500).await?;
            let Some(last) = page.last() else { break };
            after = last.customer_id.clone();
            for record in page {
                let mut next = record.clone();
                self.schedule(policy, &mut next);
                if next.next_at == record.next_at {
                    continue;
                }
                next.version += 1;
                match self
                    .store
                    .update_trial(&next, record.version, vec![])
                    .await
                    .map_err(BillingError::from)
                {
                    Ok(()) | Err(BillingError::Changed(_)) => moved += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if moved > 0 {
            tracing::info!(
                trials = moved,
                "pending trials rescheduled to the product's activation deadline"
            );
        }
        Ok(moved)
    }

    /// Does the work a trial's clock brings at `at` (its `next_at`): the reminder, the expiry
    /// or the end of its grace, saved against the version read.
    pub(super) async fn trial_due(
        &self,
        record: &TrialRecord,
        at: DateTime<Utc>,
    ) -> Result<(), BillingError> {
        let policy = self.policy()?;
        let actor = Actor::system();
        let mut next = record.clone();
        next.updated_at = at;
        next.version += 1;
        let due = record.trial.next_due(
            record.progress(policy.activate_within_days),
            policy.reminder_days,
            policy.grace_days,
        );
        let mut events = Vec::new();
        if due.is_some() && self.offboarded(&record.customer_id).await? {
            // Offboarded: the trial ends here, without its end behaviour.
            next.trial.status = TrialStatus::Expired;
            next.ended_at = Some(at);
            next.next_at = None;
            let event = self.trial_event(
                &actor,
                &next,
                at,
                EventBody::TrialEnded,
                None,
                Some("the customer is offboarded".into()),
            );
            self.store
                .update_trial(&next, record.version, vec![event])
                .await?;
            return Ok(());
        }
        match due {
            Some((when, _)) if when > at => {}
            None => {}
            Some((_, TrialDue::Activate)) => {
                next.trial = record.trial.activate(at).map_err(BillingError::trial)?;
                events.push(self.trial_event(
                    &actor,
                    &next,
                    at,
                    EventBody::TrialActivated,
                    None,
                    Some(format!(
                        "its activation deadline passed ({} days)",
                        policy.activate_within_days.unwrap_or_default()
                    )),
                ));
            }
            Some((_, TrialDue::Remind)) => {
                next.reminded_at = Some(at);
                events.push(self.trial_event(
                    &actor,
                    &next,
                    at,
                    EventBody::TrialEndingSoon,
                    None,
                    None,
                ));
            }
            Some((_, TrialDue::Expire)) => {
                next.trial = record
                    .trial
                    .expire_if_due(at)
                    .ok_or_else(|| BillingError::Internal("a due trial did not expire".into()))?;
                events.push(self.trial_event(
                    &actor,
                    &next,
                    at,
                    EventBody::TrialExpired,
                    None,
                    None,
                ));
            }
            Some((_, TrialDue::EndGrace)) => {
                let target = match &policy.end {
                    TrialEnd::Expire => None,
                    TrialEnd::Downgrade { plan, cycle } => Some(("downgrade", plan, cycle)),
                    TrialEnd::Convert { plan, cycle } => Some(("convert", plan, cycle)),
                };
                if let Some((how, plan, cycle)) = target {
                    match self
                        .subscribe_at_trial_end(record, plan, cycle, at, how)
                        .await
                    {
                        Ok(()) => return Ok(()),
                        // Subscribed meanwhile: the trial only ends.
                        Err(BillingError::SubscriptionExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                next.ended_at = Some(at);
                let applied = match target {
                    None => "expire".to_owned(),
                    Some(_) => "ended: the customer is subscribed already".to_owned(),
                };
                events.push(self.trial_event(
                    &actor,
                    &next,
                    at,
                    EventBody::TrialEnded,
                    None,
                    Some(applied),
                ));
            }
        }
        self.schedule(policy, &mut next);
        if next.next_at == record.next_at && events.is_empty() {
            return Ok(());
        }
        self.store
            .update_trial(&next, record.version, events)
            .await?;
        Ok(())
    }
}
