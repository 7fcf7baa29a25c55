//! Email verification of a signup: the code and link made as their message is sent (stored only
//! hashed), checking a code (five tries) or a link, and asking for a new code (ten a session).

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{effective_status, hash_matches, hash_token, SignupError, SignupView, Signups};
use crate::domain::events::{EventBody, SignupEmailVerified, SignupVerificationRequested};
use crate::domain::signup::SignupStatus;
use crate::domain::Invalid;
use crate::store::signups::{SignupRecord, Verification};

const LINK_PREFIX: &str = "onr_sv_";

/// How long a verification code and link work.
pub const CODE_TTL_MINUTES: i64 = 30;
/// Wrong codes a verification takes before it must be sent again.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// Verification codes one session may ask for (its start, new addresses and resends).
pub const MAX_CODES: i64 = 10;
/// Verification codes one address may be sent in a day, whatever the sessions.
pub const MAX_CODES_PER_ADDRESS: i64 = 20;
/// Wrong codes one address's sessions may try in a day (a six-digit code guessed ten times a
/// day holds for thousands of years on average).
pub const MAX_FAILED_PER_ADDRESS: i64 = 10;

/// A code or link that verifies a signup's email.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The six-digit code from the verification email.
    pub code: String,
}

/// The token of a verification link, with its session.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyLink {
    /// The session (`session` in the link).
    pub session_id: String,
    /// The link's token (`token` in the link).
    pub token: String,
}

/// A verification just made for the message that carries it; its code and link exist only
/// here and in that message.
pub struct IssuedVerification {
    /// The signup.
    pub signup_id: String,
    /// Where the message goes (the session's address now).
    pub email: String,
    /// The company's name, for the greeting.
    pub company_name: String,
    /// The six-digit code.
    pub code: String,
    /// The link's token.
    pub link_token: String,
    /// When both stop working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedVerification")
            .field("signup_id", &self.signup_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What making a verification for a queued message came to.
#[derive(Debug)]
pub enum Issue {
    /// Made: send it.
    Issued(IssuedVerification),
    /// Not made, and why: the message no longer applies.
    Skip(String),
}

impl Signups {
    /// Makes a new verification (code and link) for the message that will carry it, replacing
    /// any out: called as the message is sent, so the code exists only in it. A session that
    /// is verified, no longer in progress, or whose address is no longer `recipient` gets none.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn issue_verification(
        &self,
        signup_id: &str,
        recipient: &str,
    ) -> Result<Issue, SignupError> {
        // The person may be saving a step at the same moment: read again and retry.
        let mut tries = 0;
        loop {
            match self.try_issue(signup_id, recipient).await {
                Err(SignupError::Changed(_)) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    async fn try_issue(&self, signup_id: &str, recipient: &str) -> Result<Issue, SignupError> {
        let Some(record) = self.store.signup(signup_id).await? else {
            return Ok(Issue::Skip("the signup no longer exists".into()));
        };
        let now = self.clock.now();
        if effective_status(&record, now) != SignupStatus::InProgress {
            return Ok(Issue::Skip(format!(
                "the signup is {}",
                effective_status(&record, now)
            )));
        }
        if record.verified_at.is_some() {
            return Ok(Issue::Skip("the signup's email is verified".into()));
        }
        if record.email != recipient {
            return Ok(Issue::Skip(
                "the signup's email changed; its new address gets its own code".into(),
            ));
        }
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let link_token = crate::services::opaque_tokens::mint(LINK_PREFIX);
        let expires_at = now + Duration::minutes(CODE_TTL_MINUTES);
        let mut next = record.clone();
        // A delivery retry makes a new code for the same request: the tries already spent on
        // the code it replaces still count.
        let spent = record
            .verification
            .as_ref()
            .filter(|v| v.expires_at > now)
            .map_or(0, |v| v.attempts);
        next.verification = Some(Verification {
            code_hash: self.code_hash(&record.signup_id, &code),
            link_hash: hash_token(&link_token),
            expires_at,
            attempts: spent,
        });
        next.version = record.version + 1;
        // No event: the delivery log records the message.
        self.store
            .update_signup(&next, record.version, Vec::new())
            .await?;
        Ok(Issue::Issued(IssuedVerification {
            signup_id: record.signup_id,
            email: record.email,
            company_name: record.company_name,
            code,
            link_token,
            expires_at,
        }))
    }

    /// The codes asked for and wrong codes tried for `email`'s mailbox in the last day.
    async fn address_activity(&self, email: &str) -> Result<(i64, i64), SignupError> {
        let since = self.clock.now() - Duration::hours(24);
        let key = crate::domain::text::mailbox_key(email);
        Ok(self.store.address_activity(&key, since).await?)
    }

    /// Refuses when `email` has been sent its codes for the day.
    pub(super) async fn address_may_get_a_code(&self, email: &str) -> Result<(), SignupError> {
        let (codes, _) = self.address_activity(email).await?;
        if codes >= MAX_CODES_PER_ADDRESS {
            return Err(SignupError::AddressLimited(
                "this address has been sent all the verification codes it may get in a day",
            ));
        }
        Ok(())
    }

    fn code_hash(&self, signup_id: &str, code: &str) -> String {
        self.key_hash
            .hash(&format!("signup-verification:{signup_id}:{code}"))
    }

    /// Verifies the session's email with the code sent to it. A wrong code counts against the
    /// code's tries (and changes nothing else); the last wrong try spends the code.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn verify(
        &self,
        signup_id: &str,
        token: &str,
        req: &VerifyEmail,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let (wizard, record) = self.open_live(signup_id, token).await?;
        let code = req.code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignupError::Invalid(vec![Invalid::new(
                "format",
                "code must be the six digits from the verification email",
            )
            .at("code")]));
        }
        let verification = self.outstanding(&record)?;
        let (_, failed) = self.address_activity(&record.email).await?;
        if failed >= MAX_FAILED_PER_ADDRESS {
            return Err(SignupError::AddressLimited(
                "too many wrong codes were tried for this address today",
            ));
        }
        let matches = self.key_hash.verify(
            &format!("signup-verification:{signup_id}:{code}"),
            &verification.code_hash,
        );
        if !matches {
            let mut next = record.clone();
            let attempts = verification.attempts + 1;
            if let Some(v) = next.verification.as_mut() {
                v.attempts = attempts;
            }
            next.failed_tries += 1;
            next.version = record.version + 1;
            self.store
                .update_signup(&next, record.version, Vec::new())
                .await?;
            tracing::info!(signup_id = %record.signup_id, attempts, "signup verification: wrong code");
            return Err(match MAX_CODE_ATTEMPTS - attempts {
                0 => SignupError::CodeExhausted,
                remaining => SignupError::Invalid(vec![Invalid::new(
                    "wrong_code",
                    format!(
                        "code is not the one sent to the session's email ({remaining} tries left)"
                    ),
                )
                .at("code")]),
            });
        }
        let next = self.mark_verified(&record, "code", request_id).await?;
        Ok(self.view(wizard, &next))
    }

    /// Verifies the session's email with the token of the link sent to it; the link is its own
    /// authority (256 random bits), so no resume token is needed.
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn verify_link(
        &self,
        signup_id: &str,
        link_token: &str,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let wizard = self.wizard()?;
        let Some(record) = self.lookup(signup_id).await? else {
            return Err(SignupError::BadToken);
        };
        let opens = record
            .verification
            .as_ref()
            .is_some_and(|v| hash_matches(link_token, &v.link_hash));
        if !opens {
            return Err(SignupError::BadToken);
        }
        self.live(&record)?;
        self.outstanding(&record)?;
        let next = self.mark_verified(&record, "link", request_id).await?;
        Ok(self.view(wizard, &next))
    }

    /// The verification out, if it still works.
    fn outstanding<'r>(&self, record: &'r SignupRecord) -> Result<&'r Verification, SignupError> {
        if record.verified_at.is_some() {
            return Err(SignupError::AlreadyVerified);
        }
        let Some(v) = &record.verification else {
            return Err(SignupError::CodeExpired);
        };
        if v.expires_at <= self.clock.now() {
            return Err(SignupError::CodeExpired);
        }
        if v.attempts >= MAX_CODE_ATTEMPTS {
            return Err(SignupError::CodeExhausted);
        }
        Ok(v)
    }

    async fn mark_verified(
        &self,
        record: &SignupRecord,
        method: &str,
        request_id: Option<String>,
    ) -> Result<SignupRecord, SignupError> {
        let mut next = record.clone();
        let now = self.clock.now();
        next.verified_at = Some(now);
        next.verification = None;
        next.updated_at = now;
        let body = EventBody::SignupEmailVerified(SignupEmailVerified {
            signup_id: record.signup_id.clone(),
            method: method.to_owned(),
        });
        self.save_by_person(record, &mut next, vec![body], request_id)
            .await?;
        tracing::info!(signup_id = %record.signup_id, method, "signup email verified");
        Ok(next)
    }

    /// Asks for a new verification code (the one out, if any, stops working when it is sent).
    #[tracing::instrument(skip_all, fields(signup_id = signup_id))]
    pub async fn resend_code(
        &self,
        signup_id: &str,
        token: &str,
        request_id: Option<String>,
    ) -> Result<SignupView, SignupError> {
        let (wizard, record) = self.open_live(signup_id, token).await?;
        if record.verified_at.is_some() {
            return Err(SignupError::AlreadyVerified);
        }
        if record.codes_requested >= MAX_CODES {
            return Err(SignupError::TooManyCodes);
        }
        self.address_may_get_a_code(&record.email).await?;
        let mut next = record.clone();
        next.codes_requested += 1;
        // The code out stops working now; the new one gets its own tries.
        next.verification = None;
        next.updated_at = self.clock.now();
        let body = EventBody::SignupVerificationRequested(SignupVerificationRequested {
            signup_id: record.signup_id.clone(),
            reason: "resend".into(),
        });
        self.save_by_person(&record, &mut next, vec![body], request_id)
            .await?;
        Ok(self.view(wizard, &next))
    }
}
