//! Self-serve signup sessions: a person starts the product's wizard with an email and a company
//! name, fills its steps in order (going back to an earlier one is allowed), resumes it later with
//! the resume token it was given, or abandons it. The token is shown once and stored only as its
//! SHA-256 (256 random bits: nothing to brute-force); every answer is checked by the wizard's
//! field rules and a refused step changes nothing.
//!
//! The capability is [`Signups`]: it owns its store trait, the product (its wizard) and the
//! clock, and refuses with a [`SignupError`]. Email verification, the risk review, the review
//! queue and turning an approved signup into a customer build on these sessions.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::keyring::HashSecret;
use super::{invalid_fields_message, Clock, ErrorKind};
use crate::domain::events::{EventBody, SignupStarted, SignupStepRef, SignupVerificationRequested};
use crate::domain::signup::{FieldKind, InvalidSignupTransition, SignupStatus, SignupStep, Wizard};
use crate::domain::text::fold_name;
use crate::domain::{FieldError, Invalid, NewEvent};
use crate::product::Product;
use crate::services::customers::Customers;
use crate::store::signups::{Answers, SignupRecord, SignupStore};
use crate::store::CustomerStore;
use crate::store::StoreError;
use dns::MxLookup;

pub mod dns;
mod review;
mod verify;

pub use review::{
    parse_domain_list, ApproveSignup, ApprovedSignup, DomainList, FunnelQuery, FunnelStep, Lists,
    RejectSignup, SignupDetail, SignupFunnel, SignupList, SignupQuery,
};

pub use verify::{
    Issue, IssuedVerification, VerifyEmail, VerifyLink, CODE_TTL_MINUTES, MAX_CODES,
    MAX_CODE_ATTEMPTS,
};

const TOKEN_PREFIX: &str = "onr_su_";
/// Days a signup that ended without a customer (abandoned, expired, rejected) is kept, with its
/// answers and its delivery log rows, before it is deleted. Its events stay (they hold the email's
/// domain only).
pub const RETENTION_DAYS: i64 = 30;
/// What starts a signup: the first step's email and company name, and a template when the
/// wizard offers them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSignup {
    /// The email of the person signing up.
    pub email: String,
    /// The company's name.
    pub company_name: String,
    /// A template id from the wizard's templates.
    #[serde(default)]
    pub template: Option<String>,
}

/// One step's answers.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSubmission {
    /// The step's id.
    pub step: String,
    /// Its fields' answers, by field name.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A field as the wizard asks it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FieldView {
    /// Its name in `data`.
    pub name: String,
    /// What a person is asked.
    pub label: String,
    /// `text`, `boolean`, `choice` or an attribute format (`email`, `country`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the step needs it.
    pub required: bool,
    /// The choices, for a choice.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub choices: Option<Vec<String>>,
    /// Whether a choice takes a list.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub multiple: bool,
}

/// A step, with its answers so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Whether its answers are saved.
    pub done: bool,
    /// Its fields.
    pub fields: Vec<FieldView>,
    /// The saved answers, for the person resuming.
    #[schema(value_type = Object)]
    pub answers: BTreeMap<String, serde_json::Value>,
}

/// How far a signup is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupProgress {
    /// Steps with saved answers.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// `done` of `total`, in whole percent.
    pub percent: u32,
}

/// A signup session as the person signing up sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupView {
    /// Its id.
    pub signup_id: String,
    /// Where it stands (an idle session past its time reads `expired`).
    pub status: SignupStatus,
    /// The next step to fill; null once every step has answers.
    pub current_step: Option<String>,
    /// The furthest step reached.
    pub furthest_step: String,
    /// Whether its email has been verified.
    pub email_verified: bool,
    /// The wizard's steps.
    pub steps: Vec<StepView>,
    /// How far it is.
    pub progress: SignupProgress,
    /// When it expires if left untouched.
    pub expires_at: DateTime<Utc>,
}

/// A signup just started: its view and the resume token, shown this once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StartedSignup {
    /// The session.
    #[serde(flatten)]
    pub signup: SignupView,
    /// Sent as `Authorization: Bearer` on the session's later calls; stored only hashed.
    pub resume_token: String,
}

impl std::fmt::Debug for StartedSignup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedSignup")
            .field("signup", &self.signup)
            .field("resume_token", &"[redacted]")
            .finish()
    }
}

/// Why a signup operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// The product offers no self-serve signup.
    #[error("this product offers no self-serve signup")]
    Closed,
    /// The product's signup is by invitation only.
    #[error("signup is by invitation only")]
    InviteOnly,
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// No session with this id opens with the token sent (which, is not said).
    #[error("the resume token does not open this signup session")]
    BadToken,
    /// The session has ended.
    #[error("signup session '{signup_id}' is {status}; start a new one")]
    Finished {
        /// The session.
        signup_id: String,
        /// How it ended.
        status: SignupStatus,
    },
    /// A step after the one the session is at.
    #[error("step '{step}' comes after step '{current}', which has no answers yet")]
    StepOutOfOrder {
        /// The step sent.
        step: String,
        /// The step to fill first.
        current: String,
    },
    /// Another request changed the session first.
    #[error(
        "signup session '{0}' changed while this request was saving it; read it again and retry"
    )]
    Changed(String),
    /// No code is out, or the one out has expired.
    #[error("the verification code has expired or none was sent; ask for a new one (POST /api/v1/signup/sessions/{{id}}/verify/resend)")]
    CodeExpired,
    /// The code out took its wrong tries.
    #[error("the verification code was tried {MAX_CODE_ATTEMPTS} times without success; ask for a new one (POST /api/v1/signup/sessions/{{id}}/verify/resend)")]
    CodeExhausted,
    /// The session asked for all the codes it may.
    #[error("this session has asked for its {MAX_CODES} verification codes; start a new signup")]
    TooManyCodes,
    /// The address was sent all the codes it may get in a day, or tried too many wrong ones.
    #[error("{0}; try again tomorrow")]
    AddressLimited(&'static str),
    /// The session's email is verified already.
    #[error("the session's email is already verified")]
    AlreadyVerified,
    /// The session cannot complete yet: a step has no answers.
    #[error("step '{0}' has no answers yet; every step is answered before the signup completes")]
    Incomplete(String),
    /// No signup has this id (operators).
    #[error("no signup has id '{0}'")]
    NotFound(String),
    /// The signup is not in review: decided already, or not completed.
    #[error(
        "signup '{signup_id}' is {status}; only a signup in review can be approved or rejected"
    )]
    NotDecidable {
        /// The signup.
        signup_id: String,
        /// Where it stands.
        status: SignupStatus,
    },
    /// An approval has claimed the signup and is making its customer.
    #[error("signup '{0}' is being approved (its customer is being made); approve it again to continue a stopped approval")]
    ApprovalInProgress(String),
    /// Making the approved signup's customer failed.
    #[error("the signup's customer could not be made: {0}")]
    Onboarding(Box<crate::services::customers::CustomerError>),
    /// The signup's email belongs to another customer's user, so it cannot own this one.
    #[error("the signup's email already has an account with another customer; reject the signup, or approve it after that user is removed")]
    EmailInUse,
    /// Making the approved customer's owner failed.
    #[error("the customer's owner could not be made: {0}")]
    Owner(Box<crate::services::accounts::AccountError>),
    /// The actor's role does not allow this.
    #[error(transparent)]
    Forbidden(#[from] crate::services::Forbidden),
    /// The session cannot complete before its email is verified.
    #[error("the session's email is not verified; enter the code sent to it first")]
    Unverified,
    /// The signup status machine refused: a defect.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SignupError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SignupChanged(id) => SignupError::Changed(id),
            other => SignupError::Store(other),
        }
    }
}

impl From<InvalidSignupTransition> for SignupError {
    fn from(e: InvalidSignupTransition) -> Self {
        SignupError::Internal(e.to_string())
    }
}

impl SignupError {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignupError::Closed => ErrorKind::NotFound,
            SignupError::InviteOnly | SignupError::Forbidden(_) => ErrorKind::Forbidden,
            SignupError::NotFound(_) => ErrorKind::NotFound,
            SignupError::NotDecidable { .. }
            | SignupError::ApprovalInProgress(_)
            | SignupError::EmailInUse => ErrorKind::Conflict,
            SignupError::Onboarding(e) => e.kind(),
            SignupError::Owner(e) => e.kind(),
            SignupError::Invalid(_) => ErrorKind::Invalid,
            SignupError::BadToken => ErrorKind::Unauthenticated,
            SignupError::Finished { .. }
            | SignupError::StepOutOfOrder { .. }
            | SignupError::Changed(_)
            | SignupError::CodeExpired
            | SignupError::CodeExhausted
            | SignupError::TooManyCodes
            | SignupError::AddressLimited(_)
            | SignupError::AlreadyVerified
            | SignupError::Incomplete(_)
            | SignupError::Unverified => ErrorKind::Conflict,
            SignupError::Internal(_) => ErrorKind::Internal,
            SignupError::Store(e) => super::store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            SignupError::Closed => "signup_closed",
            SignupError::InviteOnly => "signup_invite_only",
            SignupError::Forbidden(_) => "forbidden",
            SignupError::NotFound(_) => "signup_not_found",
            SignupError::NotDecidable { .. } => "signup_not_in_review",
            SignupError::ApprovalInProgress(_) => "approval_in_progress",
            SignupError::Onboarding(e) => e.code(),
            SignupError::EmailInUse => "email_in_use",
            SignupError::Owner(e) => e.code(),
            SignupError::Invalid(_) => "validation_failed",
            SignupError::BadToken => "unauthorized",
            SignupError::Finished { .. } => "signup_finished",
            SignupError::StepOutOfOrder { .. } => "step_out_of_order",
            SignupError::Changed(_) => "signup_changed",
            SignupError::CodeExpired => "code_expired",
            SignupError::CodeExhausted => "code_exhausted",
            SignupError::TooManyCodes => "too_many_codes",
            SignupError::AddressLimited(_) => "address_limited",
            SignupError::AlreadyVerified => "already_verified",
            SignupError::Incomplete(_) => "signup_incomplete",
            SignupError::Unverified => "email_not_verified",
            SignupError::Internal(_) => "internal_error",
            SignupError::Store(e) => super::store_code(e),
        }
    }
}

/// An email as a signup keeps it: its domain in lower case (domains ignore case; the local
/// part is the mail server's to interpret, so it stays as given).
fn canonical_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => email.to_owned(),
    }
}

use super::opaque_tokens::digest as hash_token;

/// Whether `token` hashes to `stored`, compared in constant time.
fn hash_matches(token: &str, stored: &str) -> bool {
    hash_token(token).as_bytes().ct_eq(stored.as_bytes()).into()
}

/// The signup capability.
#[derive(Clone)]
pub struct Signups {
    store: Arc<dyn SignupStore>,
    customer_store: Arc<dyn CustomerStore>,
    product: Arc<Product>,
    clock: Arc<dyn Clock>,
    key_hash: Arc<HashSecret>,
    mx: Arc<dyn MxLookup>,
    lists: Arc<Lists>,
    customers: Option<Customers>,
    accounts: Option<crate::services::accounts::Accounts>,
}

impl Signups {
    /// The capability over its store, the product (its wizard), the clock and
    /// `KEY_HASH_SECRET` (under which verification codes are stored), with no MX lookups and no
    /// customer registry to approve into; [`Signups::with_review`] adds them.
    pub fn new(
        store: Arc<dyn SignupStore>,
        customer_store: Arc<dyn CustomerStore>,
        product: Arc<Product>,
        clock: Arc<dyn Clock>,
        key_hash: Arc<HashSecret>,
    ) -> Self {
        Self {
            store,
            customer_store,
            product,
            clock,
            key_hash,
            mx: Arc::new(dns::NoLookups),
            lists: Arc::new(Lists::default()),
            customers: None,
            accounts: None,
        }
    }

    /// With the MX lookups of the risk review, the registry an approval makes customers in and
    /// the accounts it makes their owners in.
    pub fn with_review(
        self,
        mx: Arc<dyn MxLookup>,
        customers: Customers,
        accounts: crate::services::accounts::Accounts,
    ) -> Self {
        Self {
            mx,
            customers: Some(customers),
            accounts: Some(accounts),
            ..self
        }
    }

    fn wizard(&self) -> Result<&Wizard, SignupError> {
        match &self.product.signup {
            Some(w) if w.enabled => Ok(w),
            _ => Err(SignupError::Closed),
        }
    }

    /// Starts a session with the first step's email, company name and template.
    #[tracing::instrument(skip_all)]
    pub async fn start(
        &self,
        req: &StartSignup,
        request_id: Option<String>,
    ) -> Result<StartedSignup, SignupError> {
        let wizard = self.wizard()?;
        if wizard.mode == crate::domain::signup::SignupMode::Invite {
            return Err(SignupError::InviteOnly);
        }
        let first = &wizard.steps[0];
        let mut data = serde_json::Map::new();
        data.insert("email".into(), req.email.clone().into());
        data.insert("company_name".into(), req.company_name.clone().into());
        if let Some(t) = &req.template {
            data.insert("template".into(), t.clone().into());
        }
        // What a session starts with is the first step's email, company name and template;
        // the first step's other fields, if it has any, are its next call's.
        let starting = SignupStep {
            fields: first
                .fields
                .iter()
                .filter(|f| matches!(f.name.as_str(), "email" | "company_name" | "template"))
                .cloned()
                .collect(),
            ..first.clone()
        };
        let answers = starting.check(&data).map_err(|errors| {
            SignupError::Invalid(
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: e.field.trim_start_matches("data.").to_owned(),
                        ..e
                    })
                    .collect(),
            )
        })?;
        let now = self.clock.now();
        let token = super::opaque_tokens::mint(TOKEN_PREFIX);
        let email = canonical_email(answers["email"].as_str().unwrap_or_default());
        self.address_may_get_a_code(&email).await?;
        let company_name = answers["company_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let template = answers
            .get("template")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        let mut all = Answers::new();
        all.insert(first.id.clone(), answers);
        let (current_step, furthest_step) = progress_of(wizard, &all);
        let record = SignupRecord {
            signup_id: format!("su_{}", uuid::Uuid::now_v7().simple()),
            name_folded: fold_name(&company_name),
            mailbox_key: crate::domain::text::mailbox_key(&email),
            email,
            company_name,
            template: template.clone(),
            status: SignupStatus::InProgress,
            current_step,
            furthest_step,
            answers: all,
            resume_token_hash: hash_token(&token),
            verified_at: None,
            verification: None,
            codes_requested: 1,
            failed_tries: 0,
            review: None,
            decision: None,
            created_at: now,
            updated_at: now,
            expires_at: now + Duration::hours(i64::from(wizard.session_idle_hours)),
            version: 1,
        };
        let event = self.event(
            &record,
            EventBody::SignupStarted(SignupStarted {
                signup_id: record.signup_id.clone(),
                email_domain: record
                    .email
                    .rsplit_once('@')
                    .map_or("", |(_, d)| d)
                    .to_owned(),
                template,
            }),
            Self::person(&record),
            request_id,
        );
        self.store.insert_signup(&record, event).await?;
        tracing::info!(signup_id = %record.signup_id, "signup started");
        Ok(StartedSignup {
            signup: self.view(wizard, &record),
            resume_token: token,
        })
    }

    /// The signup with this id; an id longer than any Onramp makes is not looked up.
    async fn lookup(&self, signup_id: &str) -> Result<Option<SignupRecord>, SignupError> {
        if signup_id.len() > 64 {
            return Ok(None);
        }
        Ok(self.store.signup(signup_id).await?)
    }

    /// The session the token opens. An unknown id and a wrong token get the same answer.
    async fn open(&self, signup_id: &str, token: &str) -> Result<SignupRecord, SignupError> {
        let Some(record) = self.lookup(signup_id).await? else {
            return Err(SignupError::BadToken);
        };
        if !hash_matches(token, &record.resume_token_hash) {
            return Err(SignupError::BadToken);
        }
        // A completed session's token is spent: the signup is the operators' now.
        if matches!(
            record.status,
            SignupStatus::Review | SignupStatus::Approved | SignupStatus::Rejected
        ) {
            return Err(SignupError::Finished {
                signup_id: record.signup_id,
                status: record.status,
            });
        }
        Ok(record)
    }

    /// Refuses unless the session can still change: in progress and not idle past its time.
    fn live(&self, record: &SignupRecord) -> Result<(), SignupError> {
        match effective_status(record, self.clock.now()) {
            SignupStatus::InProgress => Ok(()),
            status => Err(SignupError::Finished {
                signup_id: record.signup_id.clone(),
                status,
            }),
        }
    }

    /// The wizard and the session the token opens, refusing unless it can still change.
    async fn open_live(
        &self,
        signup_id: &str,
        token: &str,
    ) -> Result<(&Wizard, SignupRecord), SignupError> {
        let wizard = self.wizard()?;
        let record = self.open(signup_id, token).await?;
        self.live(&record)?;
        Ok((wizard, record))
    }

    /// The session, for the holder of its resume token.
    #[tracing::instrument(skip_all, level = "debug", fields(signup_id = signup_id))]
    pub async fn get(&self, signup_id: &str, token: &str) -> Result<SignupView, SignupError> {
        let wizard = self.wizard()?;
        let record = self.open(signup_id, token).await?;
        Ok(self.view(wizard, &record))
    }

    /// Saves one step's answers: the step must be one already reached (going back is
    /// allowed), and its answers are checked whole; a refusal changes nothing.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn submit_step(
        &self,
        signup_id: &str,
        token: &str,
        submission: &StepSubmission,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let (wizard, record) = self.open_live(signup_id, token).await?;
        let Some(index) = wizard.steps.iter().position(|s| s.id == submission.step) else {
            let known: Vec<&str> = wizard.steps.iter().map(|s| s.id.as_str()).collect();
            return Err(SignupError::Invalid(vec![Invalid::new(
                "unknown_step",
                format!(
                    "the wizard has no step '{}'; its steps are {}",
                    crate::domain::text::shorten(&submission.step, 64),
                    known.join(", ")
                ),
            )
            .at("step")]));
        };
        if let Some(current) = &record.current_step {
            let at = wizard
                .steps
                .iter()
                .position(|s| &s.id == current)
                .unwrap_or(0);
            if index > at {
                return Err(SignupError::StepOutOfOrder {
                    step: submission.step.clone(),
                    current: current.clone(),
                });
            }
        }
        let step = &wizard.steps[index];
        let answers = step.check(&submission.data).map_err(SignupError::Invalid)?;
        let now = self.clock.now();
        let mut next = record.clone();
        let mut bodies = vec![EventBody::SignupStepCompleted(SignupStepRef {
            signup_id: record.signup_id.clone(),
            step: step.id.clone(),
        })];
        if index == 0 {
            if let Some(email) = answers.get("email").and_then(|v| v.as_str()) {
                let email = canonical_email(email);
                if email != next.email {
                    // A new address is verified again, with a new code.
                    if next.codes_requested >= MAX_CODES {
                        return Err(SignupError::TooManyCodes);
                    }
                    self.address_may_get_a_code(&email).await?;
                    next.verified_at = None;
                    next.verification = None;
                    next.codes_requested += 1;
                    bodies.push(EventBody::SignupVerificationRequested(
                        SignupVerificationRequested {
                            signup_id: record.signup_id.clone(),
                            reason: "email_changed".into(),
                        },
                    ));
                }
                next.mailbox_key = crate::domain::text::mailbox_key(&email);
                next.email = email;
            }
            if let Some(name) = answers.get("company_name").and_then(|v| v.as_str()) {
                next.company_name = name.to_owned();
                next.name_folded = fold_name(name);
            }
            next.template = answers
                .get("template")
                .and_then(|t| t.as_str())
                .map(str::to_owned);
        }
        next.answers.insert(step.id.clone(), answers);
        let (current_step, reached) = progress_of(wizard, &next.answers);
        let position = |id: &str| wizard.steps.iter().position(|s| s.id == id);
        if position(&reached) > position(&record.furthest_step) {
            next.furthest_step = reached;
        }
        next.current_step = current_step;
        next.updated_at = now;
        next.expires_at = now + Duration::hours(i64::from(wizard.session_idle_hours));
        self.save_by_person(&record, &mut next, bodies, request_id)
            .await?;
        Ok(self.view(wizard, &next))
    }

    /// The address, company name and status of a signup, for a message about it.
    pub async fn contact(
        &self,
        signup_id: &str,
    ) -> Result<Option<(String, String, SignupStatus)>, SignupError> {
        let now = self.clock.now();
        Ok(self.store.signup(signup_id).await?.map(|r| {
            let status = effective_status(&r, now);
            (r.email, r.company_name, status)
        }))
    }

    /// Gives the session up; it keeps its answers and the furthest step it reached.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn abandon(
        &self,
        signup_id: &str,
        token: &str,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let (wizard, record) = self.open_live(signup_id, token).await?;
        let next = self
            .end(
                &record,
                SignupStatus::Abandoned,
                Self::person(&record),
                request_id,
            )
            .await?;
        tracing::info!(signup_id = %record.signup_id, step = %record.furthest_step, "signup abandoned");
        Ok(self.view(wizard, &next))
    }

    /// Deletes up to `limit` signups that ended without a customer more than
    /// [`RETENTION_DAYS`] ago, with their answers and delivery log rows. Returns how many.
    pub async fn purge_finished(&self, limit: i64) -> Result<u64, SignupError> {
        let before = self.clock.now() - Duration::days(RETENTION_DAYS);
        Ok(self.store.purge_signups(before, limit).await?)
    }

    /// Records as expired the sessions left idle past the product's limit (up to `limit` of
    /// them), each with its event; a session saved meanwhile stays alive. Returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn expire_idle(&self, limit: i64) -> Result<usize, SignupError> {
        let now = self.clock.now();
        let mut expired = 0;
        for record in self.store.idle_signups(now, limit).await? {
            match self
                .end(&record, SignupStatus::Expired, "onramp".into(), None)
                .await
            {
                Ok(_) => expired += 1,
                Err(SignupError::Changed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// Ends a session (abandoned or expired) with its event, naming the step it was at.
    async fn end(
        &self,
        record: &SignupRecord,
        to: SignupStatus,
        actor: String,
        request_id: Option<String>,
    ) -> Result<SignupRecord, SignupError> {
        let mut next = record.clone();
        next.status = record.status.transition(to)?;
        next.updated_at = self.clock.now();
        let at = SignupStepRef {
            signup_id: record.signup_id.clone(),
            step: record
                .current_step
                .clone()
                .unwrap_or_else(|| record.furthest_step.clone()),
        };
        let body = match to {
            SignupStatus::Expired => EventBody::SignupExpired(at),
            _ => EventBody::SignupAbandoned(at),
        };
        self.save(record, &mut next, vec![body], actor, request_id)
            .await?;
        Ok(next)
    }

    /// An event of the signup by `actor` (operator chain: there is no customer yet).
    fn event(
        &self,
        record: &SignupRecord,
        body: EventBody,
        actor: String,
        request_id: Option<String>,
    ) -> NewEvent {
        NewEvent {
            body,
            actor,
            customer_id: None,
            occurred_at: record.updated_at,
            request_id,
        }
    }

    /// How the event log names the person signing up.
    fn person(record: &SignupRecord) -> String {
        format!("signup:{}", record.signup_id)
    }

    /// [`Signups::save`] by the person signing up.
    async fn save_by_person(
        &self,
        record: &SignupRecord,
        next: &mut SignupRecord,
        bodies: Vec<EventBody>,
        request_id: Option<String>,
    ) -> Result<(), SignupError> {
        self.save(record, next, bodies, Self::person(record), request_id)
            .await
    }

    /// Saves `next` over `record` (as read) with its events by `actor`; a concurrent change wins.
    async fn save(
        &self,
        record: &SignupRecord,
        next: &mut SignupRecord,
        bodies: Vec<EventBody>,
        actor: String,
        request_id: Option<String>,
    ) -> Result<(), SignupError> {
        next.version = record.version + 1;
        let events = bodies
            .into_iter()
            .map(|body| self.event(next, body, actor.clone(), request_id.clone()))
            .collect();
        Ok(self
            .store
            .update_signup(next, record.version, events)
            .await?)
    }

    fn view(&self, wizard: &Wizard, record: &SignupRecord) -> SignupView {
        let steps: Vec<StepView> = wizard
            .steps
            .iter()
            .map(|s| StepView {
                id: s.id.clone(),
                title: s.title.clone(),
                done: record.answers.contains_key(&s.id),
                fields: s
                    .fields
                    .iter()
                    .map(|f| FieldView {
                        name: f.name.clone(),
                        label: f.label.clone(),
                        kind: f.kind.type_name().to_owned(),
                        required: f.required,
                        choices: match &f.kind {
                            FieldKind::Choice { options, .. } => Some(options.clone()),
                            _ => None,
                        },
                        multiple: matches!(f.kind, FieldKind::Choice { multiple: true, .. }),
                    })
                    .collect(),
                answers: record.answers.get(&s.id).cloned().unwrap_or_default(),
            })
            .collect();
        let done = steps.iter().filter(|s| s.done).count();
        let total = steps.len();
        SignupView {
            signup_id: record.signup_id.clone(),
            status: effective_status(record, self.clock.now()),
            current_step: record.current_step.clone(),
            furthest_step: record.furthest_step.clone(),
            email_verified: record.verified_at.is_some(),
            progress: SignupProgress {
                done,
                total,
                percent: (done * 100 / total.max(1)) as u32,
            },
            steps,
            expires_at: record.expires_at,
        }
    }
}

/// The status a session shows: one left idle past its time is expired, whether or not the
/// expiry job has recorded it yet.
fn effective_status(record: &SignupRecord, now: DateTime<Utc>) -> SignupStatus {
    if record.status == SignupStatus::InProgress && record.expires_at <= now {
        SignupStatus::Expired
    } else {
        record.status
    }
}

/// The next step without answers and the furthest step reached.
fn progress_of(wizard: &Wizard, answers: &Answers) -> (Option<String>, String) {
    let current = wizard
        .steps
        .iter()
        .find(|s| !answers.contains_key(&s.id))
        .map(|s| s.id.clone());
    let furthest = current
        .clone()
        .unwrap_or_else(|| wizard.steps.last().expect("a wizard has steps").id.clone());
    (current, furthest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signup_errors_keep_their_public_kinds_and_codes_through_service_error() {
        use ErrorKind as K;
        crate::services::error::assert_classified([
            (SignupError::Closed, K::NotFound, "signup_closed"),
            (SignupError::InviteOnly, K::Forbidden, "signup_invite_only"),
            (
                SignupError::Invalid(vec![
                    Invalid::new("required", "email is required").at("email")
                ]),
                K::Invalid,
                "validation_failed",
            ),
            (SignupError::BadToken, K::Unauthenticated, "unauthorized"),
            (
                SignupError::Finished {
                    signup_id: "su_1".into(),
                    status: SignupStatus::Expired,
                },
                K::Conflict,
                "signup_finished",
            ),
            (
                SignupError::StepOutOfOrder {
                    step: "contact".into(),
                    current: "company".into(),
                },
                K::Conflict,
                "step_out_of_order",
            ),
            (
                SignupError::from(StoreError::SignupChanged("su_1".into())),
                K::Conflict,
                "signup_changed",
            ),
        ]);
    }

    #[test]
    fn an_email_keeps_its_local_part_and_lowers_its_domain() {
        assert_eq!(
            canonical_email("Ann.Lee@Example.COM"),
            "Ann.Lee@example.com"
        );
    }
}
