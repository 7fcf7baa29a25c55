//! Transactional email: the messages Onramp sends, how a delivery stands, and when a failed one
//! is tried again. Pure rules; sending is the email capability's.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// A message Onramp sends; each is a template of the product (or the shipped default).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// A signup's one-time code and verification link.
    SignupVerification,
    /// A signup was received and waits for an operator's review.
    SignupReceived,
    /// A customer's onboarding finished: the post-onboarding summary.
    OnboardingSummary,
    /// An operator's test message (`onramp email test`).
    Test,
    /// A signup's new owner: a temporary password, or a link to choose one.
    Welcome,
    /// An invitation to a customer's account: a link to choose a password.
    Invitation,
    /// A password reset link.
    PasswordReset,
    /// A running trial ends in the product's `reminder_days`.
    TrialEndingSoon,
}

impl EmailKind {
    /// Every kind.
    pub const ALL: [EmailKind; 8] = [
        Self::SignupVerification,
        Self::SignupReceived,
        Self::OnboardingSummary,
        Self::Test,
        Self::Welcome,
        Self::Invitation,
        Self::PasswordReset,
        Self::TrialEndingSoon,
    ];

    /// Its name: in the API, the store and the template files (`<name>.subject`,
    /// `<name>.txt`, `<name>.html`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignupVerification => "signup_verification",
            Self::SignupReceived => "signup_received",
            Self::OnboardingSummary => "onboarding_summary",
            Self::Test => "test",
            Self::Welcome => "welcome",
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
            Self::TrialEndingSoon => "trial_ending_soon",
        }
    }

    /// The kind a stored or requested name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the message carries a secret made when it is sent (a code, a link, a temporary
    /// password): the secret lives in the message only, so each attempt makes a new one.
    pub fn carries_secret(self) -> bool {
        matches!(
            self,
            Self::SignupVerification | Self::Welcome | Self::Invitation | Self::PasswordReset
        )
    }
}

impl std::fmt::Display for EmailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a message's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be sent (first try or a retry).
    Queued,
    /// Accepted by the mail server.
    Sent,
    /// Given up: a permanent refusal, or every retry spent.
    Failed,
    /// Not sent because it no longer applied (the signup was verified, ended, or changed its
    /// address before the message left).
    Skipped,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 4] = [Self::Queued, Self::Sent, Self::Failed, Self::Skipped];

    /// Its name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// The status a stored or requested name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Attempts a message gets before it is recorded failed.
pub const MAX_ATTEMPTS: u32 = 8;

/// How long to wait before attempt `attempts + 1` after `attempts` transient failures, or
/// `None` when the message has had its [`MAX_ATTEMPTS`]: 30 s, then doubling (about an hour from the
/// first try to the last).
pub fn retry_after(attempts: u32) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    Some(crate::domain::run::backoff(
        attempts,
        Duration::from_secs(30),
        Duration::from_secs(3600),
        0.0,
        0.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EmailKind::ALL {
            assert_eq!(EmailKind::parse(k.as_str()), Some(k));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(EmailKind::parse("welcome!"), None);
        assert!(EmailKind::PasswordReset.carries_secret() && !EmailKind::Test.carries_secret());
    }

    #[test]
    fn retries_back_off_and_stop() {
        assert_eq!(retry_after(1), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(2), Some(Duration::from_secs(60)));
        assert_eq!(retry_after(7), Some(Duration::from_secs(1920)));
        assert_eq!(retry_after(MAX_ATTEMPTS), None);
        let total: u64 = (1..MAX_ATTEMPTS)
            .map(|a| retry_after(a).unwrap().as_secs())
            .sum();
        assert!((3600..3 * 3600).contains(&total), "{total}");
    }
}
