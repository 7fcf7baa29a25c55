//! A signup's completion, its risk review, and the operators' review queue: each signal found
//! (a disposable or denied domain, no MX, a duplicate company, free mail for a B2B product, an
//! address already a customer's) is a reason with the weight the product gives it; the score
//! and the product's mode decide approve, review or reject. An approval, by the policy or an
//! operator, makes the customer through the existing onboarding run: fields mapped by the
//! product's wizard, an id derived from the company name, the template's tier.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};

use super::dns::MxAnswer;
use super::{effective_status, SignupError, SignupView, Signups};
use crate::domain::events::{DomainListUpdated, EventBody, SignupCompleted, SignupDecided};
use crate::domain::risk::{Decision, Reason, RiskPolicy, Signal};
use crate::domain::signup::{FieldTarget, SignupStatus, Wizard};
use crate::domain::text::company_key;
use crate::domain::{CustomerId, FieldError, Invalid, NewEvent, Role};
use crate::services::customers::{ContactInput, OnboardRequest};
use crate::services::views::OnboardingResult;
use crate::services::{Actor, ErrorKind};
use crate::store::signups::{
    RiskReview, SignupDecision, SignupFilter, SignupRecord, StoredDomainList,
};

/// The disposable-email list Onramp ships (CC0, with its date in its header).
const SHIPPED_DISPOSABLE: &str = include_str!("../../../data/disposable_email_blocklist.conf");
/// The free-mail providers Onramp knows.
const SHIPPED_FREE_MAIL: &str = include_str!("../../../data/free_email_domains.txt");
/// How often a server looks for a refreshed disposable list in the registry.
const LIST_REFRESH: Duration = Duration::from_secs(60);
/// The most domains a list may hold.
const MAX_LIST_ENTRIES: usize = 500_000;
/// Names compared against, at most, for the duplicate check.
const NAME_CANDIDATES: i64 = 200;

/// A domain list, parsed.
#[derive(Debug, Clone, Default)]
pub struct DomainList {
    /// The domains, lower case.
    pub domains: HashSet<String>,
    /// The `# list-date:` the list states.
    pub list_date: Option<String>,
}

/// Parses a list: one domain per line, `#` comments, a `# list-date: YYYY-MM-DD` header line.
pub fn parse_domain_list(text: &str) -> Result<DomainList, String> {
    let mut list = DomainList::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(date) = comment.trim().strip_prefix("list-date:") {
                list.list_date = Some(date.trim().chars().take(32).collect());
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let domain = line.to_ascii_lowercase();
        let ok = domain.contains('.')
            && domain.len() <= 253
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(format!(
                "line {}: '{}' is not a domain like example.com",
                n + 1,
                crate::domain::text::shorten(line, 64)
            ));
        }
        list.domains.insert(domain);
        if list.domains.len() > MAX_LIST_ENTRIES {
            return Err(format!(
                "the list holds more than {MAX_LIST_ENTRIES} domains"
            ));
        }
    }
    if list.domains.is_empty() {
        return Err("the list holds no domains".into());
    }
    Ok(list)
}

/// The lists the review reads: the disposable list (the registry's, if an operator refreshed
/// it, else the shipped one), re-read every minute, and the free-mail list.
pub struct Lists {
    disposable: RwLock<Held>,
    free_mail: DomainList,
}

/// The disposable list in use: when the registry was last read, the stored list's time (none
/// for the shipped list), and the list.
type Held = (Option<Instant>, Option<DateTime<Utc>>, Arc<DomainList>);

impl Default for Lists {
    fn default() -> Self {
        Self {
            disposable: RwLock::new((
                None,
                None,
                Arc::new(parse_domain_list(SHIPPED_DISPOSABLE).expect("the shipped list parses")),
            )),
            free_mail: parse_domain_list(SHIPPED_FREE_MAIL).expect("the shipped list parses"),
        }
    }
}

/// A signup as operators see it: everything it answered, its review and its decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupDetail {
    /// Its id.
    pub signup_id: String,
    /// Where it stands (an idle session past its time reads `expired`).
    pub status: SignupStatus,
    /// The email it signed up with.
    pub email: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// The company's name.
    pub company_name: String,
    /// The template chosen.
    pub template: Option<String>,
    /// The furthest step reached.
    pub furthest_step: String,
    /// The answers, by step and field.
    #[schema(value_type = Object)]
    pub answers: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// The risk review's score, once completed.
    pub score: Option<u32>,
    /// The signals the review found.
    pub reasons: Vec<Reason>,
    /// Who decided (`onramp` for the policy, or the operator).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
    /// A rejection's reason.
    pub rejection_reason: Option<String>,
    /// The customer an approval made.
    pub customer_id: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of the review queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupList {
    /// The signups, oldest change first.
    pub items: Vec<SignupDetail>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Which signups to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignupQuery {
    /// Only this status: review (default), approved, rejected, in_progress, abandoned, expired.
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// An operator's approval: the customer id and tier, when not the derived ones.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveSignup {
    /// The customer id to give (default: derived from the company name).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The tier to give (default: the template's).
    #[serde(default)]
    pub usage_tier: Option<String>,
}

/// An operator's rejection.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectSignup {
    /// Why, for the record (1 to 500 characters).
    pub reason: String,
}

/// One step of the signup funnel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FunnelStep {
    /// The step's id.
    pub step: String,
    /// Sessions that reached it.
    pub reached: i64,
    /// Sessions that saved its answers.
    pub completed: i64,
    /// Sessions abandoned there.
    pub abandoned: i64,
    /// Sessions that expired there (left idle past the product's limit).
    pub expired: i64,
}

/// The signup funnel: how far the sessions started in a period got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupFunnel {
    /// Sessions started since this time.
    pub since: DateTime<Utc>,
    /// Sessions started.
    pub started: i64,
    /// Sessions completed (in review, approved or rejected).
    pub completed: i64,
    /// Of those, approved.
    pub approved: i64,
    /// Of those, rejected.
    pub rejected: i64,
    /// Completed of started, 0 to 1 (0 when none started).
    pub completion_rate: f64,
    /// Each step, in the wizard's order.
    pub steps: Vec<FunnelStep>,
}

/// The funnel's period.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    /// Sessions started at or after this time (RFC 3339; default 30 days ago).
    pub since: Option<DateTime<Utc>>,
}

/// An approved signup and the onboarding its customer went through.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovedSignup {
    /// The signup.
    pub signup: SignupDetail,
    /// How its customer's onboarding went.
    pub onboarding: OnboardingResult,
}

impl Signups {
    /// Completes the session: every step answered and the email verified, the risk review
    /// runs and the product's policy decides; an approval makes the customer. The resume token
    /// is spent.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn complete(
        &self,
        signup_id: &str,
        token: &str,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let (wizard, record) = self.open_live(signup_id, token).await?;
        if let Some(step) = &record.current_step {
            return Err(SignupError::Incomplete(step.clone()));
        }
        if record.verified_at.is_none() {
            return Err(SignupError::Unverified);
        }
        let reasons = self.risk_review(wizard, &record).await?;
        let (score, decision) = wizard.policy.decide(wizard.mode, &reasons);
        let now = self.clock.now();
        let mut next = record.clone();
        next.status = record.status.transition(match decision {
            Decision::Reject => SignupStatus::Rejected,
            // An approval is recorded once its customer exists (below).
            Decision::Approve | Decision::Review => SignupStatus::Review,
        })?;
        next.updated_at = now;
        next.review = Some(RiskReview {
            score,
            reasons: reasons.clone(),
        });
        let mut bodies = vec![EventBody::SignupCompleted(SignupCompleted {
            signup_id: record.signup_id.clone(),
            status: next.status,
            score,
            signals: reasons.iter().map(|r| r.signal).collect(),
        })];
        if decision == Decision::Reject {
            next.decision = Some(SignupDecision {
                by: "onramp".into(),
                at: now,
                note: Some("the risk review's score reached the product's reject_at".into()),
                customer_id: None,
            });
            bodies.push(EventBody::SignupRejected(SignupDecided {
                signup_id: record.signup_id.clone(),
                score,
                by: "policy".into(),
                reason: None,
                customer_id: None,
            }));
        }
        self.save_by_person(&record, &mut next, bodies, request_id.clone())
            .await?;
        tracing::info!(signup_id = %record.signup_id, score, ?decision, "signup completed");
        if decision == Decision::Approve {
            let policy = Actor {
                name: "onramp".into(),
                role: Role::Operator,
                request_id,
            };
            match self
                .approve_record(&policy, next.clone(), &ApproveSignup::default(), "policy")
                .await
            {
                Ok((approved, _)) => next = approved,
                // The signup stays in review for an operator, with why in the log.
                Err(e) => {
                    tracing::warn!(signup_id = %record.signup_id, error = %e, "approval by policy failed; the signup waits for an operator")
                }
            }
        }
        Ok(self.view(wizard, &next))
    }

    /// The risk review's reasons for `record`.
    pub(super) async fn risk_review(
        &self,
        wizard: &Wizard,
        record: &SignupRecord,
    ) -> Result<Vec<Reason>, SignupError> {
        let policy = &wizard.policy;
        let mut reasons = Vec::new();
        let domain = record
            .email
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let allowed = RiskPolicy::listed(&policy.allow_domains, &domain);
        if RiskPolicy::listed(&policy.deny_domains, &domain) {
            reasons.push(policy.reason(
                Signal::DeniedDomain,
                format!("{domain} is on the product's deny list"),
            ));
        }
        if !allowed {
            let disposable = self.disposable().await?;
            if crate::domain::risk::parents(&domain).any(|d| disposable.domains.contains(d)) {
                reasons.push(policy.reason(
                    Signal::DisposableDomain,
                    format!(
                        "{domain} is a disposable-mail domain (list of {})",
                        disposable.list_date.as_deref().unwrap_or("unknown date")
                    ),
                ));
            }
            if policy.b2b
                && crate::domain::risk::parents(&domain)
                    .any(|d| self.lists.free_mail.domains.contains(d))
            {
                reasons.push(policy.reason(
                    Signal::FreeMail,
                    format!("{domain} is a free-mail provider and the product sells to businesses"),
                ));
            }
        }
        let key = company_key(&record.company_name);
        if !key.is_empty() {
            let matches = self
                .store
                .names_starting(&key, self.clock.now(), &record.signup_id, NAME_CANDIDATES)
                .await?;
            let same: Vec<String> = matches
                .into_iter()
                .filter(|m| company_key(&m.name) == key)
                .take(3)
                .map(|m| format!("{} {} ('{}')", m.kind, m.id, m.name))
                .collect();
            if !same.is_empty() {
                reasons.push(policy.reason(
                    Signal::DuplicateName,
                    format!(
                        "'{}' is the name of {}",
                        record.company_name,
                        same.join(", ")
                    ),
                ));
            }
        }
        let has_account = match &self.accounts {
            Some(a) => a
                .email_taken(&record.email)
                .await
                .map_err(|e| SignupError::Owner(Box::new(e)))?,
            None => false,
        };
        if has_account {
            reasons
                .push(policy.reason(Signal::ExistingAccount, "the email already has an account"));
        } else if self.store.contact_email_taken(&record.email).await? {
            reasons.push(policy.reason(
                Signal::ExistingAccount,
                "the email is already a customer's contact",
            ));
        }
        match self.mx.mx(&domain).await {
            MxAnswer::Hosts(_) | MxAnswer::Skipped => {}
            MxAnswer::NoMail(why) => {
                reasons.push(policy.reason(Signal::NoMx, format!("{domain}: {why}")))
            }
            MxAnswer::Failed(why) => reasons.push(policy.reason(
                Signal::DnsError,
                format!("the MX lookup of {domain} failed: {why}"),
            )),
        }
        Ok(reasons)
    }

    /// The disposable list in force, re-read from the registry at most once a minute.
    async fn disposable(&self) -> Result<Arc<DomainList>, SignupError> {
        {
            let held = self.lists.disposable.read().expect("lists lock");
            if held.0.is_some_and(|at| at.elapsed() < LIST_REFRESH) {
                return Ok(held.2.clone());
            }
        }
        let stored = self.store.domain_list("disposable").await?;
        let mut held = self.lists.disposable.write().expect("lists lock");
        match stored {
            Some(s) if Some(s.updated_at) != held.1 => match parse_domain_list(&s.domains) {
                Ok(list) => *held = (Some(Instant::now()), Some(s.updated_at), Arc::new(list)),
                Err(e) => {
                    tracing::warn!(error = %e, "the stored disposable list does not parse; keeping the one in use");
                    held.0 = Some(Instant::now());
                }
            },
            _ => held.0 = Some(Instant::now()),
        }
        Ok(held.2.clone())
    }

    /// Replaces the disposable-email list every server reads with the one in `text` (from
    /// `source`), refusing a list that does not parse (admins).
    pub async fn update_disposable_list(
        &self,
        actor: &Actor,
        source: &str,
        text: &str,
    ) -> Result<(usize, Option<String>), SignupError> {
        actor.may(Role::Admin)?;
        let list = parse_domain_list(text)
            .map_err(|e| SignupError::Invalid(vec![Invalid::new("invalid_list", e).at("file")]))?;
        let mut domains: Vec<&str> = list.domains.iter().map(String::as_str).collect();
        domains.sort_unstable();
        let entries = domains.len();
        let now = self.clock.now();
        let stored = StoredDomainList {
            name: "disposable".into(),
            source: crate::domain::text::shorten(source, 200),
            list_date: list.list_date.clone(),
            entries: entries as i64,
            domains: domains.join("\n"),
            updated_at: now,
        };
        let event = NewEvent {
            body: EventBody::DomainListUpdated(DomainListUpdated {
                list: stored.name.clone(),
                source: stored.source.clone(),
                list_date: stored.list_date.clone(),
                entries: stored.entries,
            }),
            actor: actor.name.clone(),
            customer_id: None,
            occurred_at: now,
            request_id: actor.request_id.clone(),
        };
        self.store.save_domain_list(&stored, event).await?;
        // This server reads it at once; the others within a minute.
        *self.lists.disposable.write().expect("lists lock") =
            (Some(Instant::now()), Some(now), Arc::new(list));
        Ok((entries, stored.list_date))
    }

    /// The review queue: signups in `status` (default `review`), oldest change first
    /// (operators).
    pub async fn list(&self, actor: &Actor, q: &SignupQuery) -> Result<SignupList, SignupError> {
        actor.may(Role::Viewer)?;
        let mut errors: Vec<FieldError> = Vec::new();
        let status = match q.status.as_deref() {
            None => SignupStatus::Review,
            Some(s) => SignupStatus::parse(s).unwrap_or_else(|| {
                errors.push(
                    Invalid::new(
                        "unknown_status",
                        "status must be one of review, approved, rejected, in_progress, abandoned, expired",
                    )
                    .at("status"),
                );
                SignupStatus::Review
            }),
        };
        let limit = q.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            errors.push(Invalid::new("out_of_range", "limit must be from 1 to 500").at("limit"));
        }
        let after = match &q.cursor {
            None => None,
            Some(c) => decode_cursor(c).or_else(|| {
                errors.push(
                    Invalid::new("invalid_cursor", "cursor is not one this API returned")
                        .at("cursor"),
                );
                None
            }),
        };
        if !errors.is_empty() {
            return Err(SignupError::Invalid(errors));
        }
        let now = self.clock.now();
        // Idle sessions read `expired` before the job records them: list them with the
        // expired ones, and not with those in progress.
        let stored_status = match status {
            SignupStatus::Expired => None,
            other => Some(other),
        };
        let mut items = Vec::new();
        let mut cursor = after;
        let mut next_cursor = None;
        // Filtering by effective status can drop rows: read on until the page is full.
        for _ in 0..20 {
            let rows = self
                .store
                .signups(&SignupFilter {
                    status: stored_status,
                    after: cursor.clone(),
                    limit: i64::from(limit) + 1,
                })
                .await?;
            let more = rows.len() > limit as usize;
            for r in rows.into_iter().take(limit as usize) {
                cursor = Some((r.updated_at, r.signup_id.clone()));
                let effective = effective_status(&r, now);
                if effective == status
                    && (stored_status.is_some()
                        || matches!(r.status, SignupStatus::Expired | SignupStatus::InProgress))
                {
                    items.push(self.detail(&r));
                    if items.len() == limit as usize {
                        break;
                    }
                }
            }
            if items.len() == limit as usize || !more {
                next_cursor = (more || items.len() == limit as usize)
                    .then(|| cursor.as_ref().map(|(at, id)| encode_cursor(at, id)))
                    .flatten();
                break;
            }
            // Read on, but never silently: a page cut short here still says where to go on.
            next_cursor = cursor.as_ref().map(|(at, id)| encode_cursor(at, id));
        }
        Ok(SignupList { items, next_cursor })
    }

    /// The funnel of the sessions started since `q.since` (default 30 days): per step how many
    /// reached it, completed it, were abandoned or expired there (operators).
    pub async fn funnel(
        &self,
        actor: &Actor,
        q: &FunnelQuery,
    ) -> Result<SignupFunnel, SignupError> {
        actor.may(Role::Viewer)?;
        let wizard = self.wizard()?;
        let now = self.clock.now();
        let since = q.since.unwrap_or(now - chrono::Duration::days(30));
        let counts = self.store.funnel_counts(since, now).await?;
        let mut steps: Vec<FunnelStep> = wizard
            .steps
            .iter()
            .map(|s| FunnelStep {
                step: s.id.clone(),
                reached: 0,
                completed: 0,
                abandoned: 0,
                expired: 0,
            })
            .collect();
        let (mut started, mut completed, mut approved, mut rejected) = (0, 0, 0, 0);
        for c in &counts {
            started += c.signups;
            match c.status {
                SignupStatus::Review => completed += c.signups,
                SignupStatus::Approved => {
                    completed += c.signups;
                    approved += c.signups;
                }
                SignupStatus::Rejected => {
                    completed += c.signups;
                    rejected += c.signups;
                }
                _ => {}
            }
            // A step the wizard no longer has counts as its first.
            let at = steps
                .iter()
                .position(|s| s.step == c.furthest_step)
                .unwrap_or(0);
            for (i, step) in steps.iter_mut().enumerate().take(at + 1) {
                step.reached += c.signups;
                if i < at || c.all_answered {
                    step.completed += c.signups;
                }
            }
            match c.status {
                SignupStatus::Abandoned => steps[at].abandoned += c.signups,
                SignupStatus::Expired => steps[at].expired += c.signups,
                _ => {}
            }
        }
        Ok(SignupFunnel {
            since,
            started,
            completed,
            approved,
            rejected,
            completion_rate: if started == 0 {
                0.0
            } else {
                completed as f64 / started as f64
            },
            steps,
        })
    }

    /// One signup, for operators.
    pub async fn show(&self, actor: &Actor, signup_id: &str) -> Result<SignupDetail, SignupError> {
        actor.may(Role::Viewer)?;
        Ok(self.detail(&self.find(signup_id).await?))
    }

    async fn find(&self, signup_id: &str) -> Result<SignupRecord, SignupError> {
        self.lookup(signup_id)
            .await?
            .ok_or_else(|| SignupError::NotFound(crate::domain::text::shorten(signup_id, 64)))
    }

    /// Approves a signup in review: its customer is made through the onboarding run
    /// (operators). A second approval, or approving a rejected signup, is refused.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn approve(
        &self,
        actor: &Actor,
        signup_id: &str,
        req: &ApproveSignup,
    ) -> Result<ApprovedSignup, SignupError> {
        actor.may(Role::Operator)?;
        let record = self.find(signup_id).await?;
        let (approved, onboarding) = self.approve_record(actor, record, req, "operator").await?;
        Ok(ApprovedSignup {
            signup: self.detail(&approved),
            onboarding,
        })
    }

    async fn approve_record(
        &self,
        actor: &Actor,
        record: SignupRecord,
        req: &ApproveSignup,
        by: &str,
    ) -> Result<(SignupRecord, OnboardingResult), SignupError> {
        let wizard = self.wizard()?;
        self.decidable(&record)?;
        let (Some(customers), Some(accounts)) = (self.customers.as_ref(), self.accounts.as_ref())
        else {
            return Err(SignupError::Internal(
                "signups are wired without the customer registry or accounts".into(),
            ));
        };
        let owner_error = |e| SignupError::Owner(Box::new(e));
        // The claim: the customer id is saved on the signup (version-checked) before the
        // customer is made, so a concurrent decision loses cleanly and an approval that stopped
        // midway continues with the same id.
        let claimed = record
            .decision
            .as_ref()
            .and_then(|d| d.customer_id.as_ref())
            .map(|c| c.as_str().to_owned());
        // The verified email becomes the customer's owner: it cannot already be another
        // customer's user.
        let taken = accounts
            .owner_blocked(&record.email, claimed.as_deref())
            .await
            .map_err(owner_error)?;
        if taken {
            return Err(SignupError::EmailInUse);
        }
        let (record, chosen) = match claimed {
            Some(id) => (record, id),
            None => {
                let id = match &req.customer_id {
                    Some(id) => CustomerId::parse(id, &self.product.customer_id)
                        .map_err(|e| SignupError::Invalid(vec![e.at("customer_id")]))?
                        .as_str()
                        .to_owned(),
                    None => self.derive_customer_id(&record.company_name).await?,
                };
                let mut claim = record.clone();
                claim.decision = Some(SignupDecision {
                    by: actor.name.clone(),
                    at: self.clock.now(),
                    note: None,
                    customer_id: Some(CustomerId::from_trusted(id.clone())),
                });
                claim.version = record.version + 1;
                self.store
                    .update_signup(&claim, record.version, Vec::new())
                    .await?;
                (claim, id)
            }
        };
        let onboard = self.onboard_request(wizard, &record, req, chosen).await?;
        // Keyed by the signup: an approval continued after a stop replays the same onboarding,
        // never a second customer.
        let key = format!("signup:{}", record.signup_id);
        let onboarded = match customers.onboard(actor, &onboard, Some(&key)).await {
            Ok(done) => done,
            Err(e) => {
                // A refusal of the answers or of the id releases the claim (the signup waits in
                // review, its next approval chooses again); anything else keeps it to continue.
                if e.kind() == ErrorKind::Invalid || e.code() == "customer_exists" {
                    let mut released = record.clone();
                    released.decision = None;
                    released.version = record.version + 1;
                    if let Err(undo) = self
                        .store
                        .update_signup(&released, record.version, Vec::new())
                        .await
                    {
                        tracing::warn!(signup_id = %record.signup_id, error = %undo, "cannot release the approval claim");
                    }
                }
                return Err(SignupError::Onboarding(Box::new(e)));
            }
        };
        let customer_id = onboarded.response.customer.customer_id.clone();
        accounts
            .add_signup_owner(
                actor,
                &CustomerId::from_trusted(customer_id.clone()),
                &record.email,
                &record.signup_id,
            )
            .await
            .map_err(owner_error)?;
        self.invite_answered(accounts, actor, wizard, &record, &customer_id)
            .await;
        let now = self.clock.now();
        let mut next = record.clone();
        next.status = record.status.transition(SignupStatus::Approved)?;
        next.updated_at = now;
        next.decision = Some(SignupDecision {
            by: actor.name.clone(),
            at: now,
            note: None,
            customer_id: Some(CustomerId::from_trusted(customer_id.clone())),
        });
        let body = EventBody::SignupApproved(SignupDecided {
            signup_id: record.signup_id.clone(),
            score: record.review.as_ref().map_or(0, |r| r.score),
            by: by.into(),
            reason: None,
            customer_id: Some(customer_id.clone()),
        });
        self.save(
            &record,
            &mut next,
            vec![body],
            actor.name.clone(),
            actor.request_id.clone(),
        )
        .await?;
        tracing::info!(signup_id = %record.signup_id, customer_id, by, "signup approved");
        Ok((next, onboarded.response.onboarding))
    }

    /// Invites, as members of the new customer, the people a `users.invite` field named at the
    /// signup's own email domain (the only addresses a verified signup vouches for: anyone
    /// else is invited later by the owner, from the portal). An address that cannot be invited
    /// (another domain, an account already, the owner's own) is skipped and logged: the
    /// approval stands. A continued approval skips those invited already.
    async fn invite_answered(
        &self,
        accounts: &crate::services::accounts::Accounts,
        actor: &Actor,
        wizard: &Wizard,
        record: &SignupRecord,
        customer_id: &str,
    ) {
        use crate::services::accounts::{AccountError, Caller, InviteUser};
        let owner = crate::domain::account::login_key(&record.email);
        let domain = owner
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        for step in &wizard.steps {
            for field in step
                .fields
                .iter()
                .filter(|f| f.maps_to == Some(FieldTarget::Invitations))
            {
                let Some(text) = record
                    .answers
                    .get(&step.id)
                    .and_then(|a| a.get(&field.name))
                    .and_then(|v| v.as_str())
                else {
                    continue;
                };
                let emails = crate::domain::signup::invitations(text).unwrap_or_default();
                for email in emails {
                    let key = crate::domain::account::login_key(&email);
                    if key == owner {
                        continue;
                    }
                    if key.rsplit_once('@').map(|(_, d)| d) != Some(domain.as_str()) {
                        tracing::info!(signup_id = %record.signup_id, "a signup's invitation outside its email domain was skipped");
                        continue;
                    }
                    let req = InviteUser {
                        email,
                        role: "member".into(),
                        name: None,
                    };
                    match accounts
                        .invite(Caller::Operator(actor), customer_id, &req)
                        .await
                    {
                        Ok(_) | Err(AccountError::EmailTaken(_)) => {}
                        Err(e) => {
                            tracing::warn!(signup_id = %record.signup_id, error = %e, "a signup's invitation was not made")
                        }
                    }
                }
            }
        }
    }

    /// Rejects a signup in review, with the reason (operators).
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn reject(
        &self,
        actor: &Actor,
        signup_id: &str,
        req: &RejectSignup,
    ) -> Result<SignupDetail, SignupError> {
        actor.may(Role::Operator)?;
        let reason = crate::domain::text::display_text("reason", &req.reason, 500, true)
            .map_err(|e| SignupError::Invalid(vec![e.at("reason")]))?;
        let record = self.find(signup_id).await?;
        self.decidable(&record)?;
        if record.decision.is_some() {
            return Err(SignupError::ApprovalInProgress(record.signup_id));
        }
        let now = self.clock.now();
        let mut next = record.clone();
        next.status = record.status.transition(SignupStatus::Rejected)?;
        next.updated_at = now;
        next.decision = Some(SignupDecision {
            by: actor.name.clone(),
            at: now,
            note: Some(reason.clone()),
            customer_id: None,
        });
        let body = EventBody::SignupRejected(SignupDecided {
            signup_id: record.signup_id.clone(),
            score: record.review.as_ref().map_or(0, |r| r.score),
            by: "operator".into(),
            reason: Some(reason),
            customer_id: None,
        });
        self.save(
            &record,
            &mut next,
            vec![body],
            actor.name.clone(),
            actor.request_id.clone(),
        )
        .await?;
        Ok(self.detail(&next))
    }

    /// Refuses unless the signup waits in review.
    fn decidable(&self, record: &SignupRecord) -> Result<(), SignupError> {
        match effective_status(record, self.clock.now()) {
            SignupStatus::Review => Ok(()),
            status => Err(SignupError::NotDecidable {
                signup_id: record.signup_id.clone(),
                status,
            }),
        }
    }

    /// The onboarding request a signup's answers make, through the wizard's `maps_to`.
    async fn onboard_request(
        &self,
        wizard: &Wizard,
        record: &SignupRecord,
        req: &ApproveSignup,
        customer_id: String,
    ) -> Result<OnboardRequest, SignupError> {
        let mut out = OnboardRequest {
            customer_name: Some(record.company_name.clone()),
            contact: Some(ContactInput {
                email: Some(record.email.clone()),
                name: None,
            }),
            created_by: Some(format!("signup:{}", record.signup_id)),
            ..OnboardRequest::default()
        };
        for step in &wizard.steps {
            let Some(answers) = record.answers.get(&step.id) else {
                continue;
            };
            for field in &step.fields {
                let (Some(target), Some(value)) = (&field.maps_to, answers.get(&field.name)) else {
                    continue;
                };
                let text = value.as_str().map(str::to_owned);
                match target {
                    FieldTarget::CustomerName => out.customer_name = text.or(out.customer_name),
                    FieldTarget::Industry => out.industry = text,
                    // The contact email is the address the signup verified, whatever field
                    // maps to it.
                    FieldTarget::ContactEmail => {}
                    FieldTarget::ContactName => {
                        if let Some(c) = out.contact.as_mut() {
                            c.name = text;
                        }
                    }
                    FieldTarget::Tier => {
                        out.usage_tier = text.and_then(|t| {
                            wizard
                                .templates
                                .iter()
                                .find(|tpl| tpl.id == t)
                                .map(|tpl| tpl.tier.clone())
                        })
                    }
                    FieldTarget::Attribute(name) => {
                        out.attributes.insert(name.clone(), value.clone());
                    }
                    // Invited once the customer and its owner exist.
                    FieldTarget::Invitations => {}
                }
            }
        }
        if out.usage_tier.is_none() {
            out.usage_tier = record.template.as_ref().and_then(|t| {
                wizard
                    .templates
                    .iter()
                    .find(|tpl| &tpl.id == t)
                    .map(|tpl| tpl.tier.clone())
            });
        }
        if let Some(tier) = &req.usage_tier {
            out.usage_tier = Some(tier.clone());
        }
        out.customer_id = Some(customer_id);
        Ok(out)
    }

    /// A customer id from a company name: its ASCII letters and digits in words joined by `_`
    /// (or `-`, if the product's rule wants that), made unique with `_2`, `_3`...
    async fn derive_customer_id(&self, name: &str) -> Result<String, SignupError> {
        let rule = &self.product.customer_id;
        let folded: String = crate::domain::text::to_ascii_words(name);
        let base = if folded.is_empty() {
            "customer".to_owned()
        } else {
            folded.chars().take(40).collect::<String>()
        };
        for sep in ['_', '-'] {
            let stem = base.replace(' ', &sep.to_string());
            let stem = if stem.starts_with(|c: char| c.is_ascii_digit()) {
                format!("c{sep}{stem}")
            } else {
                stem
            };
            for n in 1..=100 {
                let candidate = if n == 1 {
                    stem.clone()
                } else {
                    format!("{stem}{sep}{n}")
                };
                if CustomerId::parse(&candidate, rule).is_err() {
                    break;
                }
                if self
                    .customer_store
                    .get_customer(&candidate)
                    .await?
                    .is_none()
                {
                    return Ok(candidate);
                }
            }
        }
        Err(SignupError::Invalid(vec![Invalid::new(
            "cannot_derive",
            format!(
                "no customer id that the product's rule ({}) accepts can be made from '{}'; approve with a customer_id",
                rule.pattern(),
                crate::domain::text::shorten(name, 64)
            ),
        )
        .at("customer_id")]))
    }

    fn detail(&self, r: &SignupRecord) -> SignupDetail {
        SignupDetail {
            signup_id: r.signup_id.clone(),
            status: effective_status(r, self.clock.now()),
            email: r.email.clone(),
            email_verified: r.verified_at.is_some(),
            company_name: r.company_name.clone(),
            template: r.template.clone(),
            furthest_step: r.furthest_step.clone(),
            answers: r.answers.clone(),
            score: r.review.as_ref().map(|v| v.score),
            reasons: r
                .review
                .as_ref()
                .map(|v| v.reasons.clone())
                .unwrap_or_default(),
            decided_by: r.decision.as_ref().map(|d| d.by.clone()),
            decided_at: r.decision.as_ref().map(|d| d.at),
            rejection_reason: r.decision.as_ref().and_then(|d| d.note.clone()),
            customer_id: r
                .decision
                .as_ref()
                .and_then(|d| d.customer_id.as_ref().map(|c| c.as_str().to_owned())),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn encode_cursor(at: &DateTime<Utc>, id: &str) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

fn decode_cursor(c: &str) -> Option<(DateTime<Utc>, String)> {
    let (micros, id) = c.split_once('.')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    let ok = id
        .strip_prefix("su_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| (at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lists_parse_with_their_date() {
        let d = parse_domain_list(SHIPPED_DISPOSABLE).unwrap();
        assert_eq!(d.list_date.as_deref(), Some("2026-08-21"));
        assert!(d.domains.contains("mailinator.com"));
        assert!(d.domains.len() > 5000);
        let f = parse_domain_list(SHIPPED_FREE_MAIL).unwrap();
        assert!(f.domains.contains("gmail.com"));
    }

    #[test]
    fn a_bad_list_is_refused_with_its_line() {
        assert_eq!(
            parse_domain_list("# x\nok.example\nnot a domain\n").unwrap_err(),
            "line 3: 'not a domain' is not a domain like example.com"
        );
        assert!(parse_domain_list("# only comments\n").is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = "su_0123456789abcdef0123456789abcdef";
        assert_eq!(
            decode_cursor(&encode_cursor(&at, id)),
            Some((at, id.to_owned()))
        );
        assert_eq!(decode_cursor("1.su_x"), None);
        assert_eq!(decode_cursor("x.su_0123456789abcdef0123456789abcdef"), None);
    }
}
