//! The event log as an outbox: each consumer keeps a durable cursor (the id of the last event
//! it took) and takes the events after it in log order, so each customer's events arrive in
//! the order they happened. Delivery is at least once: a consumer whose effect lives outside
//! the registry (an email, a webhook) may see an event again after a crash and must be
//! idempotent by event id; a consumer whose effect is a registry table moves its cursor in the
//! same transaction, so it takes each event exactly once.
//!
//! A consumer is a [`Consumer`]; [`OutboxJob`] runs one as a job.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Job, JobContext, JobError};
use crate::domain::job::contiguous_prefix;
use crate::domain::Event;
use crate::services::Services;
use crate::store::EventFilter;

/// Events read at once.
const BATCH: u32 = 500;
/// Events one attempt takes at most before it lets the next attempt go on.
const PER_ATTEMPT: usize = 20_000;
/// How long a hole in the ids (an event still being committed) holds a consumer back before
/// it is taken as an id no event will ever have (its transaction rolled back). Onramp's write
/// transactions last milliseconds; a pool waits at most 10 s for a connection and SQLite's
/// writer 10 s for its lock, so a transaction that drew an id commits well within this or not
/// at all.
const HOLE_GRACE: Duration = Duration::from_secs(30);

/// Something that takes the event log's events, in order.
#[async_trait]
pub trait Consumer: Send + Sync {
    /// Its name, stable: it keys its cursor.
    fn name(&self) -> &'static str;
    /// Its job's name.
    fn job_name(&self) -> &'static str;
    /// What it does, for people.
    fn description(&self) -> &'static str;
    /// How often its job looks for new events.
    fn every(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Takes `events` (the ids after `from`, up to `to`, in order) and moves its cursor from
    /// `from` to `to`.
    async fn take(
        &self,
        services: &Services,
        events: &[Event],
        from: i64,
        to: i64,
    ) -> Result<(), JobError>;
}

/// A consumer run as a job.
pub struct OutboxJob<C> {
    consumer: C,
}

impl<C: Consumer> OutboxJob<C> {
    /// The job for `consumer`.
    pub fn new(consumer: C) -> Self {
        Self { consumer }
    }
}

#[async_trait]
impl<C: Consumer> Job for OutboxJob<C> {
    fn name(&self) -> &'static str {
        self.consumer.job_name()
    }

    fn description(&self) -> &'static str {
        self.consumer.description()
    }

    fn every(&self) -> Duration {
        self.consumer.every()
    }

    fn consumer(&self) -> Option<&'static str> {
        Some(self.consumer.name())
    }

    async fn run(&self, ctx: &JobContext<'_>) -> Result<String, JobError> {
        let store = &ctx.services.store;
        let name = self.consumer.name();
        let mut cursor = store
            .outbox_cursors()
            .await?
            .into_iter()
            .find(|(c, _)| c == name)
            .map_or(0, |(_, id)| id);
        let mut taken = 0usize;
        let mut hole_seen: Option<Instant> = None;
        while taken < PER_ATTEMPT {
            let events = store
                .list_events(&EventFilter {
                    after_id: Some(cursor),
                    limit: BATCH,
                    ..EventFilter::default()
                })
                .await?;
            if events.is_empty() {
                break;
            }
            let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
            let mut n = contiguous_prefix(cursor, &ids);
            if n == 0 {
                // The next id is missing: wait for it a while, then pass it by.
                let since = *hole_seen.get_or_insert_with(Instant::now);
                if since.elapsed() < HOLE_GRACE {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                tracing::warn!(
                    consumer = name,
                    after = cursor,
                    next = ids[0],
                    "passing a hole in the event ids (a rolled-back transaction)"
                );
                n = contiguous_prefix(ids[0] - 1, &ids);
            }
            hole_seen = None;
            let batch = &events[..n];
            let to = batch[n - 1].id;
            ctx.fault_point().await;
            self.consumer.take(ctx.services, batch, cursor, to).await?;
            cursor = to;
            taken += n;
        }
        Ok(format!("took {taken} event(s); cursor at {cursor}"))
    }
}

/// The analytics consumer: how many events of each type happened each UTC day, kept in the
/// registry (`onramp jobs status` shows its cursor, `onramp audit counts` its table).
pub struct EventCounts;

#[async_trait]
impl Consumer for EventCounts {
    fn name(&self) -> &'static str {
        "event_counts"
    }

    fn job_name(&self) -> &'static str {
        "outbox.event_counts"
    }

    fn description(&self) -> &'static str {
        "count the event log's events by UTC day and type (exactly once: the counts and the cursor move together)"
    }

    async fn take(
        &self,
        services: &Services,
        events: &[Event],
        from: i64,
        to: i64,
    ) -> Result<(), JobError> {
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for e in events {
            let day = e.occurred_at.get(..10).unwrap_or(&e.occurred_at).to_owned();
            *counts.entry((day, e.event_type.clone())).or_default() += 1;
        }
        let counts: Vec<(String, String, i64)> =
            counts.into_iter().map(|((d, t), n)| (d, t, n)).collect();
        services
            .store
            .add_event_counts(self.name(), from, to, &counts, services.clock.now())
            .await?;
        Ok(())
    }
}

/// The email consumer: queues the messages the events call for (a signup's verification code,
/// its receipt, a customer's onboarding summary), exactly once: the queue and the cursor move
/// together. The `email.deliver` job sends them.
pub struct EmailQueue;

#[async_trait]
impl Consumer for EmailQueue {
    fn name(&self) -> &'static str {
        "email"
    }

    fn job_name(&self) -> &'static str {
        "outbox.email"
    }

    fn description(&self) -> &'static str {
        "queue the email the events call for (exactly once: the queue and the cursor move together)"
    }

    async fn take(
        &self,
        services: &Services,
        events: &[Event],
        from: i64,
        to: i64,
    ) -> Result<(), JobError> {
        services
            .email
            .queue(self.name(), events, from, to)
            .await
            .map_err(crate::services::ServiceError::from)?;
        Ok(())
    }
}

/// The trial activation consumer: a pending trial starts its clock when what the product's
/// `activate_on` names happens: the customer's onboarding completes (`customer.activated`),
/// its required credentials are all stored (`credential.*`), or its signup is approved
/// (`signup.approved`). Activation is idempotent (only a pending trial activates), so taking
/// an event again after a crash changes nothing.
pub struct TrialActivations;

#[async_trait]
impl Consumer for TrialActivations {
    fn name(&self) -> &'static str {
        "trial_activations"
    }

    fn job_name(&self) -> &'static str {
        "outbox.trial_activations"
    }

    fn description(&self) -> &'static str {
        "start pending trials when the product's activate_on happens (onboarding completed, credentials configured, signup approved)"
    }

    async fn take(
        &self,
        services: &Services,
        events: &[Event],
        from: i64,
        to: i64,
    ) -> Result<(), JobError> {
        use crate::domain::events::{EventBody, EventType};
        use crate::domain::plan::ActivateOn;
        if let Some(trial) = services.product.catalog.trial.as_ref() {
            for e in events {
                let Some(t) = EventType::parse(&e.event_type) else {
                    continue;
                };
                let (on, customer) = match (trial.activate_on, t) {
                    (ActivateOn::OnboardingCompleted, EventType::CustomerActivated) => {
                        (trial.activate_on, e.customer_id.clone())
                    }
                    (
                        ActivateOn::CredentialsConfigured,
                        EventType::CredentialStored | EventType::CredentialVersionEnabled,
                    ) => (trial.activate_on, e.customer_id.clone()),
                    (ActivateOn::SignupApproved, EventType::SignupApproved) => {
                        match EventBody::decode(&e.event_type, &e.payload_text) {
                            Ok(EventBody::SignupApproved(d)) => (trial.activate_on, d.customer_id),
                            _ => continue,
                        }
                    }
                    _ => continue,
                };
                if let Some(customer) = customer {
                    services
                        .billing
                        .activate_if_met(&customer, on)
                        .await
                        .map_err(crate::services::ServiceError::from)?;
                }
            }
        }
        services
            .store
            .move_outbox_cursor(self.name(), from, to, services.clock.now())
            .await?;
        Ok(())
    }
}
