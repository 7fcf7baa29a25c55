//! Billing's refusals and failures.

use crate::domain::trial::{TrialRefusal, TrialStatus};
use crate::domain::FieldError;
use crate::services::{invalid_fields_message, store_code, store_kind, ErrorKind, Forbidden};
use crate::store::StoreError;

/// Why a billing operation refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// The input broke rules; every bad field is listed.
    #[error("{}", invalid_fields_message(.0))]
    Invalid(Vec<FieldError>),
    /// No customer has this id.
    #[error("customer '{0}' not found")]
    CustomerNotFound(String),
    /// No test clock has this id.
    #[error("no test clock has id '{0}'")]
    TestClockNotFound(String),
    /// Test clocks are off (production).
    #[error("test clocks are not available in production")]
    TestClocksOff,
    /// The product offers no trial.
    #[error("this product offers no trial (its product file has no [trial])")]
    NoTrialOffered,
    /// The customer has no trial.
    #[error("customer '{0}' has no trial")]
    TrialNotFound(String),
    /// The customer has had a trial.
    #[error("customer '{0}' already has a trial; a customer gets one trial")]
    TrialExists(String),
    /// The trial's status does not allow this.
    #[error("the trial is {status}; it cannot be {action}")]
    TrialStatus {
        /// Where it stands.
        status: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// Every extension the product allows was granted.
    #[error("the trial has had its {0} extension(s), the most the product allows")]
    NoExtensionsLeft(u32),
    /// The customer has no live subscription.
    #[error("customer '{0}' has no subscription")]
    SubscriptionNotFound(String),
    /// The customer has a live subscription.
    #[error("customer '{0}' already has a subscription; change it instead")]
    SubscriptionExists(String),
    /// The subscription's status does not allow this.
    #[error("the subscription is {status}; it cannot be {action}")]
    SubscriptionStatus {
        /// Where it stands.
        status: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// The change would change nothing.
    #[error("the subscription is already on plan '{0}' with cycle '{1}'")]
    Unchanged(String, String),
    /// The customer's token lacks the scope.
    #[error("this token needs the scope '{0}'")]
    ScopeMissing(&'static str),
    /// The customer is offboarded.
    #[error("customer '{0}' is offboarded")]
    CustomerOffboarded(String),
    /// Another request changed the record first.
    #[error("{0} changed while this request was saving it; read it again and retry")]
    Changed(String),
    /// The actor's role does not allow this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A defect: a state machine refused what the service checked.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TrialExists(id) => BillingError::TrialExists(id),
            StoreError::TrialChanged(id) => BillingError::Changed(format!("the trial of '{id}'")),
            StoreError::TestClockChanged(id) => BillingError::Changed(format!("test clock '{id}'")),
            StoreError::SubscriptionExists(id) => BillingError::SubscriptionExists(id),
            StoreError::SubscriptionChanged(id) => {
                BillingError::Changed(format!("subscription '{id}'"))
            }
            other => BillingError::Store(other),
        }
    }
}

impl From<crate::services::credentials::VaultError> for BillingError {
    fn from(e: crate::services::credentials::VaultError) -> Self {
        BillingError::Internal(format!("reading the customer's credentials failed: {e}"))
    }
}

impl BillingError {
    /// The refusal of a trial's state machine.
    pub(super) fn trial(e: TrialRefusal) -> Self {
        match e {
            TrialRefusal::Status { status, action } => BillingError::TrialStatus {
                status: TrialStatus::as_str(status),
                action,
            },
            TrialRefusal::NoExtensionsLeft(n) => BillingError::NoExtensionsLeft(n),
            TrialRefusal::Days => BillingError::Internal(e.to_string()),
        }
    }

    /// The refusal of a subscription's state machine.
    pub(super) fn subscription(e: crate::domain::subscription::SubscriptionRefusal) -> Self {
        use crate::domain::subscription::SubscriptionRefusal as R;
        match e {
            R::Status { status, action } => BillingError::SubscriptionStatus {
                status: status.as_str(),
                action,
            },
            R::Unchanged(plan, cycle) => BillingError::Unchanged(plan, cycle),
        }
    }

    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BillingError::Invalid(_) => ErrorKind::Invalid,
            BillingError::CustomerNotFound(_)
            | BillingError::TestClockNotFound(_)
            | BillingError::TrialNotFound(_)
            | BillingError::SubscriptionNotFound(_) => ErrorKind::NotFound,
            BillingError::TestClocksOff
            | BillingError::Forbidden(_)
            | BillingError::ScopeMissing(_) => ErrorKind::Forbidden,
            BillingError::NoTrialOffered
            | BillingError::TrialExists(_)
            | BillingError::TrialStatus { .. }
            | BillingError::NoExtensionsLeft(_)
            | BillingError::CustomerOffboarded(_)
            | BillingError::SubscriptionExists(_)
            | BillingError::SubscriptionStatus { .. }
            | BillingError::Unchanged(..)
            | BillingError::Changed(_) => ErrorKind::Conflict,
            BillingError::Internal(_) => ErrorKind::Internal,
            BillingError::Store(e) => store_kind(e),
        }
    }

    /// A stable, machine-readable code naming the error.
    pub fn code(&self) -> &'static str {
        match self {
            BillingError::Invalid(_) => "validation_failed",
            BillingError::CustomerNotFound(_) => "customer_not_found",
            BillingError::TestClockNotFound(_) => "test_clock_not_found",
            BillingError::TestClocksOff => "test_clocks_off",
            BillingError::NoTrialOffered => "no_trial_offered",
            BillingError::TrialNotFound(_) => "trial_not_found",
            BillingError::TrialExists(_) => "trial_exists",
            BillingError::TrialStatus { .. } => "trial_status",
            BillingError::NoExtensionsLeft(_) => "no_extensions_left",
            BillingError::CustomerOffboarded(_) => "customer_offboarded",
            BillingError::ScopeMissing(_) => "insufficient_scope",
            BillingError::SubscriptionNotFound(_) => "subscription_not_found",
            BillingError::SubscriptionExists(_) => "subscription_exists",
            BillingError::SubscriptionStatus { .. } => "subscription_status",
            BillingError::Unchanged(..) => "subscription_unchanged",
            BillingError::Changed(_) => "changed",
            BillingError::Forbidden(_) => "forbidden",
            BillingError::Internal(_) => "internal_error",
            BillingError::Store(e) => store_code(e),
        }
    }
}
