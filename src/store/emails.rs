//! Persistence of transactional email: the delivery log, one row per message, and the
//! [`EmailStore`] trait each backend implements. No message body is stored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::email::{DeliveryStatus, EmailKind};
use crate::domain::CustomerId;

/// One message and how its delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRecord {
    /// Its id (`em_` and a time-ordered UUID).
    pub email_id: String,
    /// Which message it is.
    pub kind: EmailKind,
    /// Where it goes.
    pub recipient: String,
    /// The customer it concerns, if any.
    pub customer_id: Option<CustomerId>,
    /// The signup it concerns, if any.
    pub signup_id: Option<String>,
    /// The user it concerns, if any.
    pub user_id: Option<String>,
    /// The event it answers (with `kind`, unique), if an event queued it.
    pub event_id: Option<i64>,
    /// How its delivery stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Its subject, once rendered.
    pub subject: Option<String>,
    /// Why the last attempt failed or why it was skipped.
    pub last_error: Option<String>,
    /// The Message-ID it was sent with.
    pub message_id: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When its row last changed.
    pub updated_at: DateTime<Utc>,
    /// When the next attempt is due (while queued).
    pub next_attempt_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Which messages to list: any combination of a customer, a signup and a status, newest first.
#[derive(Debug, Clone, Default)]
pub struct EmailFilter {
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
    /// Only this signup's.
    pub signup_id: Option<String>,
    /// Only those in this status.
    pub status: Option<DeliveryStatus>,
    /// Only those older than this id (the previous page's last).
    pub before: Option<String>,
    /// How many at most.
    pub limit: u32,
}

/// The delivery log.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Queues `emails` for the events after `from` up to `to` and moves `consumer`'s cursor
    /// from `from` to `to`, in one transaction (exactly once). A message already queued for the
    /// same event and kind is left as it is. Every message of the customers in `forget` (whose
    /// data was deleted), and of the signup each came from when it names one, is erased from the
    /// log in the same transaction.
    async fn queue_emails(
        &self,
        consumer: &str,
        from: i64,
        to: i64,
        emails: &[EmailRecord],
        forget: &[(CustomerId, Option<String>)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records one message no event queued (an operator's test).
    async fn insert_email(&self, email: &EmailRecord) -> Result<(), StoreError>;

    /// Up to `limit` queued messages due at `now`, the longest waiting first.
    async fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<EmailRecord>, StoreError>;

    /// Saves an attempt's outcome: status, attempts, subject, error, Message-ID and times.
    async fn update_email(&self, email: &EmailRecord) -> Result<(), StoreError>;

    /// The messages `filter` selects, newest first.
    async fn emails(&self, filter: &EmailFilter) -> Result<Vec<EmailRecord>, StoreError>;

    /// How many messages are queued, and how many of those are due at `now`.
    async fn email_backlog(&self, now: DateTime<Utc>) -> Result<(i64, i64), StoreError>;
}
