//! Transactional email, from the outbox. The email consumer (`outbox.email`) reads the event
//! log and queues the messages its events call for (one per event and message, exactly once:
//! its cursor moves in the same transaction); the delivery job (`email.deliver`) renders each
//! due message from the product's templates and sends it over SMTP, retrying a transient
//! failure with backoff and recording a permanent one. A message that carries a secret (a
//! verification code) has it made as it is sent, by the capability that owns it: the secret
//! lives in the message only, never in the registry, a log or an event, and a retry makes a
//! new one. Without `ONRAMP_SMTP_URL` messages wait queued and `/health` says so.
//!
//! The capability is [`Email`]; it refuses with an [`EmailError`].

pub mod smtp;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

use super::accounts::{AccountError, AccountIssue, AccountMessage, Accounts};
use super::billing::{Billing, BillingError};
use super::signups::{Issue, SignupError, Signups};
use super::{Actor, Clock, ErrorKind};
use crate::domain::email::{retry_after, DeliveryStatus, EmailKind};
use crate::domain::events::EventBody;
use crate::domain::signup::SignupStatus;
use crate::domain::trial::TrialStatus;
use crate::domain::{CustomerId, Email as Address, Event, FieldError, Invalid, Role};
use crate::product::Product;
use crate::store::emails::{EmailFilter, EmailRecord, EmailStore};
use crate::store::runs::RunStore;
use crate::store::{CustomerStore, StoreError};
use smtp::Mailer;

/// How email leaves, and what links in it point at.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The SMTP transport and sender, when `ONRAMP_SMTP_URL` is set.
    pub mailer: Option<Arc<Mailer>>,
    /// Where people reach this Onramp (`ONRAMP_PUBLIC_URL`), for links in messages.
    pub public_url: String,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            mailer: None,
            public_url: "http://localhost:8080".into(),
        }
    }
}

/// Which messages to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// Only this customer's messages.
    pub customer_id: Option<String>,
    /// Only this signup's messages.
    pub signup_id: Option<String>,
    /// Only messages in this status: queued, sent, failed or skipped.
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// One message of the delivery log (never its body).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmailView {
    /// Its id.
    pub email_id: String,
    /// Which message.
    pub kind: EmailKind,
    /// Where it goes.
    pub recipient: String,
    /// The customer it concerns.
    pub customer_id: Option<String>,
    /// The signup it concerns.
    pub signup_id: Option<String>,
    /// The user it concerns.
    pub user_id: Option<String>,
    /// The event that queued it.
    pub event_id: Option<i64>,
    /// How its delivery stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Its subject, once rendered.
    pub subject: Option<String>,
    /// Why the last attempt failed, or why it was skipped.
    pub last_error: Option<String>,
    /// The Message-ID it was sent with.
    pub message_id: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due, while queued.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<EmailRecord> for EmailView {
    fn from(r: EmailRecord) -> Self {
        Self {
            next_attempt_at: (r.status == DeliveryStatus::Queued).then_some(r.next_attempt_at),
            email_id: r.email_id,
            kind: r.kind,
            recipient: r.recipient,
            customer_id: r.customer_id.map(|c| c.as_str().to_owned()),
            signup_id: r.signup_id,
            user_id: r.user_id,
            event_id: r.event_id,
            status: r.status,
            attempts: r.attempts,
            subject: r.subject,
            last_error: r.last_error,
            message_id: r.message_id,
            created_at: r.created_at,
            sent_at: r.sent_at,
        }
    }
}

/// A page of the delivery log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmailList {
    /// The messages.
    pub items: Vec<EmailView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Whether email can leave, and what waits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmailHealth {
    /// Whether `ONRAMP_SMTP_URL` is set.
    pub configured: bool,
    /// The server, without its password.
    pub server: Option<String>,
    /// Messages queued.
    pub queued: i64,
    /// Of those, how many are due now.
    pub due: i64,
}

/// What one delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Accepted by the mail server.
    pub sent: usize,
    /// Failed for now; tried again later.
    pub retrying: usize,
    /// Given up.
    pub failed: usize,
    /// No longer applicable.
    pub skipped: usize,
}

/// Why an email operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", super::invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// The actor's role does not allow this.
    #[error(transparent)]
    Forbidden(#[from] super::Forbidden),
    /// `ONRAMP_SMTP_URL` is not set.
    #[error("email is not configured: set ONRAMP_SMTP_URL and ONRAMP_MAIL_FROM")]
    NotConfigured,
    /// The mail server did not take the message.
    #[error("the mail server did not take the message: {0}")]
    Send(String),
    /// The signup capability failed while making a message's secret.
    #[error(transparent)]
    Signup(#[from] SignupError),
    /// The accounts capability failed while making a message's secret.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The billing capability failed while reading a trial for its reminder.
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EmailError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EmailError::Invalid(_) => ErrorKind::Invalid,
            EmailError::NotConfigured => ErrorKind::Conflict,
            EmailError::Forbidden(_) => ErrorKind::Forbidden,
            EmailError::Send(_) => ErrorKind::Unavailable,
            EmailError::Signup(e) => e.kind(),
            EmailError::Account(e) => e.kind(),
            EmailError::Billing(e) => e.kind(),
            EmailError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            EmailError::Invalid(_) => "validation_failed",
            EmailError::Forbidden(_) => "forbidden",
            EmailError::NotConfigured => "email_not_configured",
            EmailError::Send(_) => "email_send_failed",
            EmailError::Signup(e) => e.code(),
            EmailError::Account(e) => e.code(),
            EmailError::Billing(e) => e.code(),
            EmailError::Store(e) => super::store_code(e),
        }
    }
}

/// A message ready to leave, or the reason it will not.
enum Prepared {
    Send {
        vars: serde_json::Value,
        recipient: String,
        /// The secrets in `vars`, kept out of the subject the log records.
        secrets: Vec<String>,
    },
    Skip(String),
}

/// The email capability.
#[derive(Clone)]
pub struct Email {
    store: Arc<dyn EmailStore>,
    customers: Arc<dyn CustomerStore>,
    runs: Arc<dyn RunStore>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
    settings: Arc<MailSettings>,
    signups: Signups,
    accounts: Accounts,
    billing: Billing,
}

impl Email {
    /// The capability over its store, the customers and runs it reads for its messages, the
    /// product (its templates), the clock, the mail settings, the signups and accounts whose
    /// secrets it sends, and the billing whose trials it reminds of their end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn EmailStore>,
        customers: Arc<dyn CustomerStore>,
        runs: Arc<dyn RunStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        settings: Arc<MailSettings>,
        signups: Signups,
        accounts: Accounts,
        billing: Billing,
    ) -> Self {
        Self {
            store,
            customers,
            runs,
            product,
            clock,
            settings,
            signups,
            accounts,
            billing,
        }
    }

    /// Whether messages can leave.
    pub fn configured(&self) -> bool {
        self.settings.mailer.is_some()
    }

    /// Messages in flight at once (the SMTP pool's size), when email is configured.
    pub fn pool_size(&self) -> Option<usize> {
        self.settings.mailer.as_ref().map(|m| m.concurrency())
    }

    /// The SMTP server, without its password, when one is configured.
    pub fn server(&self) -> Option<String> {
        self.settings.mailer.as_ref().map(|m| m.describe())
    }

    fn record(
        &self,
        kind: EmailKind,
        recipient: String,
        customer_id: Option<CustomerId>,
        signup_id: Option<String>,
        event_id: Option<i64>,
    ) -> EmailRecord {
        let now = self.clock.now();
        EmailRecord {
            email_id: format!("em_{}", uuid::Uuid::now_v7().simple()),
            kind,
            recipient,
            customer_id,
            signup_id,
            user_id: None,
            event_id,
            status: DeliveryStatus::Queued,
            attempts: 0,
            subject: None,
            last_error: None,
            message_id: None,
            created_at: now,
            updated_at: now,
            next_attempt_at: now,
            sent_at: None,
        }
    }

    /// The messages `events` call for.
    async fn messages_for(&self, events: &[Event]) -> Result<Vec<EmailRecord>, EmailError> {
        let mut out = Vec::new();
        for e in events {
            let Ok(body) = EventBody::decode(&e.event_type, &e.payload_text) else {
                continue;
            };
            let signup_message = |kind: EmailKind, signup_id: &str| (kind, signup_id.to_owned());
            let wanted = match &body {
                EventBody::SignupStarted(s) => {
                    Some(signup_message(EmailKind::SignupVerification, &s.signup_id))
                }
                EventBody::SignupVerificationRequested(s) => {
                    Some(signup_message(EmailKind::SignupVerification, &s.signup_id))
                }
                EventBody::SignupCompleted(s) if s.status == SignupStatus::Review => {
                    Some(signup_message(EmailKind::SignupReceived, &s.signup_id))
                }
                _ => None,
            };
            if let Some((kind, signup_id)) = wanted {
                if let Some((email, _, _)) = self.signups.contact(&signup_id).await? {
                    out.push(self.record(kind, email, None, Some(signup_id), Some(e.id)));
                }
                continue;
            }
            let account_message = match &body {
                EventBody::UserCreated(u) => Some((EmailKind::Welcome, u.user_id.as_str())),
                EventBody::UserInvited(u) => Some((EmailKind::Invitation, u.user_id.as_str())),
                EventBody::UserPasswordResetRequested(u) => {
                    Some((EmailKind::PasswordReset, u.user_id.as_str()))
                }
                _ => None,
            };
            if let Some((kind, user_id)) = account_message {
                if let Some((email, customer_id)) = self.accounts.contact(user_id).await? {
                    let mut record = self.record(kind, email, Some(customer_id), None, Some(e.id));
                    record.user_id = Some(user_id.to_owned());
                    out.push(record);
                }
                continue;
            }
            let customer_message = match body {
                EventBody::CustomerActivated(_) => EmailKind::OnboardingSummary,
                EventBody::TrialEndingSoon(_) => EmailKind::TrialEndingSoon,
                _ => continue,
            };
            {
                let Some(id) = &e.customer_id else { continue };
                let Some(customer) = self.customers.get_customer(id).await? else {
                    continue;
                };
                if let Some(address) = &customer.contact.email {
                    out.push(self.record(
                        customer_message,
                        address.as_str().to_owned(),
                        Some(customer.id.clone()),
                        None,
                        Some(e.id),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Queues the messages of `events` (the ids after `from` up to `to`) and moves `consumer`'s
    /// cursor to `to`, together. Returns how many messages it queued.
    pub async fn queue(
        &self,
        consumer: &str,
        events: &[Event],
        from: i64,
        to: i64,
    ) -> Result<usize, EmailError> {
        let emails = self.messages_for(events).await?;
        // A customer whose data was deleted leaves no address in the delivery log: neither its
        // own messages nor those of the signup it came from.
        let mut forget = Vec::new();
        for e in events {
            let Ok(EventBody::CustomerOffboarded(o)) =
                EventBody::decode(&e.event_type, &e.payload_text)
            else {
                continue;
            };
            let Some(id) = e.customer_id.as_deref().filter(|_| o.delete_data) else {
                continue;
            };
            let signup = self
                .customers
                .get_customer(id)
                .await?
                .and_then(|c| c.created_by)
                .and_then(|by| by.strip_prefix("signup:").map(str::to_owned));
            if let Ok(id) = CustomerId::parse(id, &self.product.customer_id) {
                forget.push((id, signup));
            }
        }
        self.store
            .queue_emails(consumer, from, to, &emails, &forget, self.clock.now())
            .await?;
        Ok(emails.len())
    }

    /// The variables every message has.
    fn common(&self, vars: &mut serde_json::Value) {
        vars["product"] = self.product.name.clone().into();
        vars["public_url"] = self.settings.public_url.clone().into();
    }

    /// The customer a customer's message is for, or why it no longer goes (none named, gone,
    /// offboarded, its data deleted).
    async fn customer_of(
        &self,
        email: &EmailRecord,
    ) -> Result<Result<crate::domain::Customer, String>, EmailError> {
        let Some(id) = &email.customer_id else {
            return Ok(Err("the message names no customer".into()));
        };
        Ok(match self.customers.get_customer(id.as_str()).await? {
            None => Err("the customer no longer exists".into()),
            Some(c) if c.status == crate::domain::CustomerStatus::Deleted => {
                Err("the customer's data was deleted".into())
            }
            Some(c) if c.status.is_offboarded() => Err("the customer is offboarded".into()),
            Some(c) => Ok(c),
        })
    }

    /// What `email` is rendered with, making its secret now if it carries one.
    async fn prepare(&self, email: &EmailRecord) -> Result<Prepared, EmailError> {
        let mut secrets = Vec::new();
        // A user's message goes to their address as it is when it leaves.
        let mut recipient_now = None;
        let mut vars = match email.kind {
            EmailKind::SignupVerification => {
                let signup_id = email.signup_id.as_deref().unwrap_or_default();
                match self
                    .signups
                    .issue_verification(signup_id, &email.recipient)
                    .await?
                {
                    Issue::Skip(reason) => return Ok(Prepared::Skip(reason)),
                    Issue::Issued(v) => {
                        let url = format!(
                            "{}/signup/verify?session={}&token={}",
                            self.settings.public_url.trim_end_matches('/'),
                            v.signup_id,
                            v.link_token
                        );
                        secrets.push(v.code.clone());
                        secrets.push(v.link_token.clone());
                        serde_json::json!({
                            "company_name": v.company_name,
                            "code": v.code,
                            "verify_url": url,
                            "expires_minutes": super::signups::CODE_TTL_MINUTES,
                        })
                    }
                }
            }
            EmailKind::SignupReceived => {
                let signup_id = email.signup_id.as_deref().unwrap_or_default();
                match self.signups.contact(signup_id).await? {
                    Some((_, company_name, SignupStatus::Review)) => {
                        serde_json::json!({ "company_name": company_name })
                    }
                    Some((_, _, status)) => {
                        return Ok(Prepared::Skip(format!(
                            "the signup is {status}, not in review"
                        )))
                    }
                    None => return Ok(Prepared::Skip("the signup no longer exists".into())),
                }
            }
            EmailKind::OnboardingSummary => {
                let customer = match self.customer_of(email).await? {
                    Ok(customer) => customer,
                    Err(reason) => return Ok(Prepared::Skip(reason)),
                };
                let id = &customer.id;
                let run = self.runs.latest_run(id).await?;
                let steps: Vec<String> = run
                    .as_ref()
                    .map(|r| {
                        r.steps
                            .iter()
                            .filter(|s| s.status == crate::domain::run::StepStatus::Succeeded)
                            .map(|s| s.name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let completed_at = run
                    .and_then(|r| r.finished_at)
                    .unwrap_or(customer.updated_at);
                serde_json::json!({
                    "customer_id": customer.id.as_str(),
                    "customer_name": customer.name.as_str(),
                    "tier": customer.usage_tier.clone().unwrap_or_default(),
                    "completed_at": completed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "steps": steps,
                })
            }
            EmailKind::TrialEndingSoon => {
                let customer = match self.customer_of(email).await? {
                    Ok(customer) => customer,
                    Err(reason) => return Ok(Prepared::Skip(reason)),
                };
                let id = &customer.id;
                let trial = match self.billing.trial(&Actor::system(), id.as_str()).await {
                    Ok(t) => t,
                    Err(BillingError::TrialNotFound(_) | BillingError::NoTrialOffered) => {
                        return Ok(Prepared::Skip("the customer has no trial".into()))
                    }
                    Err(e) => return Err(e.into()),
                };
                let running = matches!(trial.status, TrialStatus::Active | TrialStatus::Extended);
                let (Some(ends_at), true) = (trial.ends_at, running) else {
                    return Ok(Prepared::Skip(format!(
                        "the trial is {}, not running",
                        trial.status.as_str()
                    )));
                };
                if trial.reminded_at.is_none() {
                    return Ok(Prepared::Skip(
                        "the trial was extended after this reminder; its new end brings another"
                            .into(),
                    ));
                }
                let plan_name = self
                    .product
                    .catalog
                    .plan(&trial.plan)
                    .map_or_else(|| trial.plan.clone(), |p| p.name.clone());
                serde_json::json!({
                    "customer_id": customer.id.as_str(),
                    "customer_name": customer.name.as_str(),
                    "plan": trial.plan,
                    "plan_name": plan_name,
                    "ends_at": ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "days_left": crate::domain::trial::days_left(trial.now, ends_at),
                })
            }
            EmailKind::Test => serde_json::json!({}),
            EmailKind::Welcome | EmailKind::Invitation | EmailKind::PasswordReset => {
                let message = match email.kind {
                    EmailKind::Welcome => AccountMessage::Welcome,
                    EmailKind::Invitation => AccountMessage::Invitation,
                    _ => AccountMessage::PasswordReset,
                };
                let user_id = email.user_id.as_deref().unwrap_or_default();
                let s = match self.accounts.issue(user_id, message).await? {
                    AccountIssue::Skip(reason) => return Ok(Prepared::Skip(reason)),
                    AccountIssue::Issued(s) => s,
                };
                let base = self.settings.public_url.trim_end_matches('/').to_owned();
                let link = |path: &str| {
                    s.link_token
                        .as_ref()
                        .map(|t| format!("{base}{path}?token={}", t.as_str()))
                        .unwrap_or_default()
                };
                let expires_at = s
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let vars = match email.kind {
                    EmailKind::Welcome => serde_json::json!({
                        "customer_name": s.customer_name,
                        "email": s.recipient,
                        "temporary_password": s.temporary_password.as_ref().map(|p| p.as_str()).unwrap_or_default(),
                        "set_password_url": link("/portal/invitation"),
                        "expires_at": expires_at,
                    }),
                    EmailKind::Invitation => serde_json::json!({
                        "customer_name": s.customer_name,
                        "email": s.recipient,
                        "role": s.role.as_str(),
                        "accept_url": link("/portal/invitation"),
                        "expires_at": expires_at,
                    }),
                    _ => serde_json::json!({
                        "customer_name": s.customer_name,
                        "email": s.recipient,
                        "reset_url": link("/portal/reset"),
                        "expires_minutes": crate::domain::account::LinkPurpose::Reset.ttl().num_minutes(),
                    }),
                };
                secrets.extend(s.temporary_password.as_ref().map(|p| p.to_string()));
                secrets.extend(s.link_token.as_ref().map(|t| t.to_string()));
                recipient_now = Some(s.recipient.clone());
                vars
            }
        };
        self.common(&mut vars);
        Ok(Prepared::Send {
            vars,
            recipient: recipient_now.unwrap_or_else(|| email.recipient.clone()),
            secrets,
        })
    }

    /// The Message-ID of `email_id` under the sender's domain.
    fn message_id(mailer: &Mailer, email_id: &str) -> String {
        let domain = mailer.from().email.domain().to_owned();
        format!("<{email_id}@{domain}>")
    }

    /// One attempt at `email`: prepared, rendered, sent, and its outcome saved.
    async fn attempt(
        &self,
        mailer: &Mailer,
        mut email: EmailRecord,
    ) -> Result<EmailRecord, EmailError> {
        let now = self.clock.now();
        email.updated_at = now;
        match self.prepare(&email).await? {
            Prepared::Skip(reason) => {
                email.status = DeliveryStatus::Skipped;
                email.last_error = Some(reason);
            }
            Prepared::Send {
                vars,
                recipient,
                secrets,
            } => {
                email.attempts += 1;
                email.recipient = recipient;
                match self.product.email.render(email.kind, &vars) {
                    Err(e) => {
                        email.status = DeliveryStatus::Failed;
                        email.last_error = Some(e);
                    }
                    Ok(rendered) => {
                        // The log keeps the subject, never a secret a template put in it.
                        email.subject = Some(
                            secrets
                                .iter()
                                .fold(rendered.subject.clone(), |subject, secret| {
                                    subject.replace(secret.as_str(), "[redacted]")
                                }),
                        );
                        let message_id = Self::message_id(mailer, &email.email_id);
                        match mailer.send(&email.recipient, &message_id, &rendered).await {
                            Ok(()) => {
                                email.status = DeliveryStatus::Sent;
                                email.message_id = Some(message_id);
                                email.sent_at = Some(self.clock.now());
                                email.last_error = None;
                            }
                            Err(e) => {
                                let retry = u32::try_from(email.attempts)
                                    .ok()
                                    .and_then(retry_after)
                                    .filter(|_| !e.permanent);
                                email.last_error =
                                    Some(crate::domain::text::shorten(&e.message, 500));
                                match retry {
                                    Some(wait) => {
                                        email.status = DeliveryStatus::Queued;
                                        email.next_attempt_at = now
                                            + Duration::from_std(wait)
                                                .unwrap_or_else(|_| Duration::hours(1));
                                    }
                                    None => email.status = DeliveryStatus::Failed,
                                }
                                tracing::warn!(
                                    email_id = %email.email_id,
                                    kind = %email.kind,
                                    attempts = email.attempts,
                                    permanent = e.permanent,
                                    error = %e.message,
                                    "email not delivered"
                                );
                            }
                        }
                    }
                }
            }
        }
        self.store.update_email(&email).await?;
        Ok(email)
    }

    /// One attempt that could not even be made (the registry failed while preparing or saving
    /// it): the message is tried again after its backoff, so it cannot stall the queue.
    async fn set_back(&self, mut email: EmailRecord, error: &EmailError) {
        tracing::warn!(email_id = %email.email_id, kind = %email.kind, error = %error, "email attempt failed before sending; retrying later");
        let now = self.clock.now();
        email.attempts += 1;
        email.updated_at = now;
        email.last_error = Some(crate::domain::text::shorten(&error.to_string(), 500));
        match u32::try_from(email.attempts).ok().and_then(retry_after) {
            Some(wait) => {
                email.next_attempt_at =
                    now + Duration::from_std(wait).unwrap_or_else(|_| Duration::hours(1))
            }
            None => email.status = DeliveryStatus::Failed,
        }
        if let Err(e) = self.store.update_email(&email).await {
            tracing::warn!(email_id = %email.email_id, error = %e, "cannot record the failed email attempt");
        }
    }

    /// Sends the messages due now, up to `limit`, as many at once as the pool holds.
    #[tracing::instrument(skip_all)]
    pub async fn deliver_due(&self, limit: i64) -> Result<DeliveryReport, EmailError> {
        let Some(mailer) = self.settings.mailer.clone() else {
            return Err(EmailError::NotConfigured);
        };
        let mut due = self.store.due_emails(self.clock.now(), limit).await?;
        let mut report = DeliveryReport::default();
        // Secrets asked for faster than they leave: only the newest message of a kind for one
        // signup or user is sent (each new code or link voids the one before it); likewise only
        // the newest reminder of a customer's trial.
        let subject_of = |e: &EmailRecord| match e.kind {
            // Of two reminders of one customer's trial (an extension moved its end), the newer.
            EmailKind::TrialEndingSoon => Some((
                e.kind,
                e.customer_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned())
                    .unwrap_or_default(),
            )),
            kind if kind.carries_secret() => Some((
                e.kind,
                e.signup_id
                    .clone()
                    .or_else(|| e.user_id.clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        };
        let mut newest: std::collections::HashMap<(EmailKind, String), String> = Default::default();
        for e in &due {
            if let Some(key) = subject_of(e) {
                let entry = newest.entry(key).or_insert_with(|| e.email_id.clone());
                if e.email_id > *entry {
                    *entry = e.email_id.clone();
                }
            }
        }
        let mut superseded = Vec::new();
        due.retain(|e| {
            let keep = subject_of(e).is_none_or(|key| newest.get(&key) == Some(&e.email_id));
            if !keep {
                superseded.push(e.clone());
            }
            keep
        });
        for mut e in superseded {
            e.status = DeliveryStatus::Skipped;
            e.last_error = Some(match e.kind {
                EmailKind::SignupVerification => {
                    "a newer code for this signup was asked for".to_owned()
                }
                EmailKind::TrialEndingSoon => {
                    "a newer reminder of this trial's end was queued".to_owned()
                }
                kind => format!("a newer {kind} message for this user was asked for"),
            });
            e.updated_at = self.clock.now();
            self.store.update_email(&e).await?;
            report.skipped += 1;
        }
        let mut outcomes = futures_util::stream::iter(due)
            .map(|email| {
                let mailer = mailer.clone();
                async move {
                    match self.attempt(&mailer, email.clone()).await {
                        Ok(done) => done.status,
                        Err(e) => {
                            self.set_back(email, &e).await;
                            DeliveryStatus::Queued
                        }
                    }
                }
            })
            .buffer_unordered(mailer.concurrency());
        while let Some(status) = outcomes.next().await {
            match status {
                DeliveryStatus::Sent => report.sent += 1,
                DeliveryStatus::Queued => report.retrying += 1,
                DeliveryStatus::Failed => report.failed += 1,
                DeliveryStatus::Skipped => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// The delivery log, newest first (operators).
    pub async fn log(&self, actor: &Actor, q: &EmailQuery) -> Result<EmailList, EmailError> {
        actor.may(Role::Viewer)?;
        let limit = q.limit.unwrap_or(100);
        let mut errors = Vec::new();
        if !(1..=500).contains(&limit) {
            errors.push(Invalid::new("out_of_range", "limit must be from 1 to 500").at("limit"));
        }
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => DeliveryStatus::parse(s).or_else(|| {
                errors.push(
                    Invalid::new(
                        "unknown_status",
                        "status must be one of queued, sent, failed, skipped",
                    )
                    .at("status"),
                );
                None
            }),
        };
        let customer_id = match q.customer_id.as_deref() {
            None => None,
            Some(c) => match CustomerId::parse(c, &self.product.customer_id) {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(
                        Invalid::new("format", "customer_id is not a customer id")
                            .at("customer_id"),
                    );
                    None
                }
            },
        };
        let bounded = |v: &Option<String>,
                       field: &str,
                       prefix: &str,
                       errors: &mut Vec<FieldError>| {
            if let Some(s) = v {
                let well_formed = s.strip_prefix(prefix).is_some_and(|h| {
                    h.len() == 32
                        && h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if !well_formed {
                    errors.push(
                        Invalid::new("format", format!("{field} is not an id this API returned"))
                            .at(field),
                    );
                }
            }
        };
        bounded(&q.signup_id, "signup_id", "su_", &mut errors);
        bounded(&q.cursor, "cursor", "em_", &mut errors);
        if !errors.is_empty() {
            return Err(EmailError::Invalid(errors));
        }
        let mut items = self
            .store
            .emails(&EmailFilter {
                customer_id,
                signup_id: q.signup_id.clone(),
                status,
                before: q.cursor.clone(),
                limit: limit + 1,
            })
            .await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| e.email_id.clone())
        } else {
            None
        };
        Ok(EmailList {
            items: items.into_iter().map(EmailView::from).collect(),
            next_cursor,
        })
    }

    /// Sends a test message to `address` now and records it in the log (admins).
    pub async fn send_test(&self, actor: &Actor, address: &str) -> Result<EmailView, EmailError> {
        actor.may(Role::Admin)?;
        let address =
            Address::parse(address).map_err(|e| EmailError::Invalid(vec![e.at("address")]))?;
        let Some(mailer) = self.settings.mailer.clone() else {
            return Err(EmailError::NotConfigured);
        };
        let email = self.record(
            EmailKind::Test,
            address.as_str().to_owned(),
            None,
            None,
            None,
        );
        self.store.insert_email(&email).await?;
        let sent = self.attempt(&mailer, email).await?;
        match sent.status {
            DeliveryStatus::Sent => Ok(sent.into()),
            _ => Err(EmailError::Send(
                sent.last_error.unwrap_or_else(|| "unknown error".into()),
            )),
        }
    }

    /// Whether email is configured, and the backlog.
    pub async fn health(&self) -> Result<EmailHealth, EmailError> {
        let (queued, due) = self.store.email_backlog(self.clock.now()).await?;
        Ok(EmailHealth {
            configured: self.configured(),
            server: self.settings.mailer.as_ref().map(|m| m.describe()),
            queued,
            due,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        crate::services::error::assert_classified([
            (
                EmailError::NotConfigured,
                K::Conflict,
                "email_not_configured",
            ),
            (
                EmailError::Send("refused".into()),
                K::Unavailable,
                "email_send_failed",
            ),
            (
                EmailError::Invalid(vec![Invalid::new("format", "bad").at("address")]),
                K::Invalid,
                "validation_failed",
            ),
        ]);
    }
}
