//! Persistence of billing: test clocks and trials, and the [`BillingStore`] trait each backend
//! implements.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::money::Currency;
use crate::domain::plan::ActivateOn;
use crate::domain::subscription::Subscription;
use crate::domain::trial::{Trial, TrialProgress};
use crate::domain::{Event, NewEvent};

/// A test clock: a simulated time that the customers attached to it live in.
#[derive(Debug, Clone, PartialEq)]
pub struct TestClockRecord {
    /// Its id.
    pub test_clock_id: String,
    /// A name for people.
    pub name: String,
    /// The time it shows.
    pub frozen_time: DateTime<Utc>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change.
    pub version: i64,
}

/// A customer's trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// Its id.
    pub trial_id: String,
    /// The customer.
    pub customer_id: String,
    /// The plan it runs on.
    pub plan: String,
    /// Its state machine's state.
    pub trial: Trial,
    /// What starts its clock.
    pub activate_on: ActivateOn,
    /// When the reminder for its current end was sent.
    pub reminded_at: Option<DateTime<Utc>>,
    /// When the end behaviour was applied after the grace.
    pub ended_at: Option<DateTime<Utc>>,
    /// When its clock next brings work; none when nothing is to come.
    pub next_at: Option<DateTime<Utc>>,
    /// The customer's test clock, when it has one.
    pub test_clock_id: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change; a change names the version it read.
    pub version: i64,
}

impl TrialRecord {
    /// Where its time-based work stands; `activate_within_days` is the product's deadline
    /// for a pending trial, counted from when it was made.
    pub fn progress(&self, activate_within_days: Option<u32>) -> TrialProgress {
        TrialProgress {
            reminded: self.reminded_at.is_some(),
            ended: self.ended_at.is_some(),
            activate_by: activate_within_days
                .map(|d| self.created_at + chrono::Duration::days(i64::from(d))),
        }
    }
}

/// A customer's subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    /// Its id.
    pub subscription_id: String,
    /// The customer.
    pub customer_id: String,
    /// Its state machine's state.
    pub subscription: Subscription,
    /// What it is billed in.
    pub currency: Currency,
    /// The trial it converted, when it did.
    pub trial_id: Option<String>,
    /// When it was canceled.
    pub canceled_at: Option<DateTime<Utc>>,
    /// When its current period ends (its renewal); none once canceled.
    pub next_at: Option<DateTime<Utc>>,
    /// The customer's test clock, when it has one.
    pub test_clock_id: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change.
    pub version: i64,
}

/// A usage event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// The customer.
    pub customer_id: String,
    /// The sender's id for it, unique per customer.
    pub event_id: String,
    /// The metric.
    pub metric: String,
    /// Its value in millionths.
    pub value: i64,
    /// What it adds to its period's total (the value; 1 for a count) and whether the total is
    /// a maximum instead of a sum.
    pub contribution: i64,
    /// The total is the largest value, not the sum.
    pub max: bool,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The start of the metric's period that holds it.
    pub period_start: DateTime<Utc>,
    /// SHA-256 of its content, hex: a replay with another content is refused.
    pub payload_hash: String,
}

/// What became of one usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOutcome {
    /// Recorded now.
    Accepted,
    /// Recorded before with the same content.
    Duplicate,
    /// Recorded before with another content.
    Conflict,
}

/// A period's running total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    /// The customer.
    pub customer_id: String,
    /// The metric.
    pub metric: String,
    /// The period's start.
    pub period_start: DateTime<Utc>,
    /// The total, in millionths.
    pub total: i64,
    /// Events counted.
    pub events: i64,
}

/// A threshold a period's usage crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageAlert {
    /// The customer.
    pub customer_id: String,
    /// The metric.
    pub metric: String,
    /// The period's start.
    pub period_start: DateTime<Utc>,
    /// `soft` or `hard`.
    pub kind: &'static str,
    /// When.
    pub reached_at: DateTime<Utc>,
}

/// The alerts a batch's totals call for, each with its event: a pure function of the totals
/// the billing capability gives the store (the thresholds are its rules, not the store's).
pub type AlertsFor<'a> = dyn Fn(&[UsageTotal]) -> Vec<(UsageAlert, NewEvent)> + Send + Sync + 'a;

/// Test clocks, trials and subscriptions.
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Stores a new test clock with its event.
    async fn insert_test_clock(
        &self,
        clock: &TestClockRecord,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// One test clock.
    async fn get_test_clock(&self, id: &str) -> Result<Option<TestClockRecord>, StoreError>;

    /// Every test clock, newest first, at most `limit`.
    async fn list_test_clocks(&self, limit: u32) -> Result<Vec<TestClockRecord>, StoreError>;

    /// Moves a test clock if it is still at `expected_version`, with its event.
    async fn update_test_clock(
        &self,
        clock: &TestClockRecord,
        expected_version: i64,
        event: NewEvent,
    ) -> Result<Event, StoreError>;

    /// A customer's trial.
    async fn get_trial(&self, customer_id: &str) -> Result<Option<TrialRecord>, StoreError>;

    /// Stores a customer's first trial with its events; [`StoreError::TrialExists`] when it
    /// has one.
    async fn insert_trial(
        &self,
        trial: &TrialRecord,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// Saves a changed trial if it is still at `expected_version`, with its events;
    /// [`StoreError::TrialChanged`] otherwise.
    async fn update_trial(
        &self,
        trial: &TrialRecord,
        expected_version: i64,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// The customer's live (not canceled) subscription.
    async fn live_subscription(
        &self,
        customer_id: &str,
    ) -> Result<Option<SubscriptionRecord>, StoreError>;

    /// Stores a new subscription with its events and, when it converts or ends a trial, the
    /// trial's change (if the trial is still at its expected version), in one transaction;
    /// [`StoreError::SubscriptionExists`] when the customer has a live one.
    async fn insert_subscription(
        &self,
        subscription: &SubscriptionRecord,
        trial: Option<(&TrialRecord, i64)>,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// Saves a changed subscription if it is still at `expected_version`, with its events;
    /// [`StoreError::SubscriptionChanged`] otherwise.
    async fn update_subscription(
        &self,
        subscription: &SubscriptionRecord,
        expected_version: i64,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError>;

    /// Subscriptions whose period has ended by `now`, earliest first, at most `limit`: of the
    /// customers on `test_clock` when one is named, else of the customers on real time.
    async fn due_subscriptions(
        &self,
        now: DateTime<Utc>,
        test_clock: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Records usage events once each, in one transaction: each event's outcome, in order,
    /// and the totals of the periods the accepted ones touched. In the same transaction it
    /// records the alerts `alerts_for` finds in those totals that are not recorded yet, each
    /// with its event, so a threshold crossed is never lost to a crash between the two.
    async fn record_usage(
        &self,
        events: &[UsageRecord],
        received_at: DateTime<Utc>,
        alerts_for: &AlertsFor<'_>,
    ) -> Result<(Vec<UsageOutcome>, Vec<UsageTotal>), StoreError>;

    /// The totals of a customer's periods that start at one of `periods`, by metric.
    async fn usage_totals(
        &self,
        customer_id: &str,
        periods: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<UsageTotal>, StoreError>;

    /// Trials whose work is due by `now`, earliest first, at most `limit`: of the customers
    /// on `test_clock` when one is named, else of the customers on real time.
    async fn due_trials(
        &self,
        now: DateTime<Utc>,
        test_clock: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TrialRecord>, StoreError>;

    /// Pending trials of every customer after `after` (by customer id), at most `limit`.
    async fn pending_trials(&self, after: &str, limit: u32)
        -> Result<Vec<TrialRecord>, StoreError>;
}
