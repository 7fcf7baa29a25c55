//! The customer status lifecycle as a state machine. The store saves what this module decides;
//! nothing else changes a customer's status.
//!
//! ```text
//! pending ──▶ active ◀──▶ paused
//!    │          │  ▲         │
//!    ▼          ▼  │         ▼
//!  failed     churned ◀──────┘
//!    │          │
//!    └──▶ inactive (offboarded, data kept) ──▶ deleted (tombstone, final)
//! ```
//! Every status but `deleted` may be offboarded to `inactive` (except `pending` and `failed`,
//! which never went live) or `deleted`; `inactive` and `churned` may be reactivated.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// Where a customer is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    /// Registered; onboarding has not finished.
    Pending,
    /// Live.
    Active,
    /// Temporarily suspended by an operator.
    Paused,
    /// The customer left; the record and data stay.
    Churned,
    /// Offboarded with its data kept.
    Inactive,
    /// Offboarded with its data removed: a tombstone that never changes again.
    Deleted,
    /// Onboarding failed.
    Failed,
}

/// Every status, in lifecycle order.
pub const ALL_STATUSES: [CustomerStatus; 7] = [
    CustomerStatus::Pending,
    CustomerStatus::Active,
    CustomerStatus::Paused,
    CustomerStatus::Churned,
    CustomerStatus::Inactive,
    CustomerStatus::Deleted,
    CustomerStatus::Failed,
];

/// A refused status change, naming both ends and what the current status allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot change status from {from} to {to}; from {from} the allowed statuses are: {allowed}"
)]
pub struct InvalidTransition {
    /// The current status.
    pub from: CustomerStatus,
    /// The status asked for.
    pub to: CustomerStatus,
    /// What `from` allows, comma-separated (`none` for a final status).
    pub allowed: String,
}

impl CustomerStatus {
    /// The status every new customer starts in.
    pub const INITIAL: CustomerStatus = CustomerStatus::Pending;

    /// The statuses this one may move to.
    pub fn next_allowed(self) -> &'static [CustomerStatus] {
        use CustomerStatus::*;
        match self {
            Pending => &[Active, Failed, Deleted],
            Active => &[Paused, Churned, Inactive, Deleted],
            Paused => &[Active, Churned, Inactive, Deleted],
            Churned => &[Active, Inactive, Deleted],
            Inactive => &[Active, Deleted],
            Failed => &[Pending, Deleted],
            Deleted => &[],
        }
    }

    /// Moves to `to`, or refuses with what is allowed instead.
    pub fn transition(self, to: CustomerStatus) -> Result<CustomerStatus, InvalidTransition> {
        if self.next_allowed().contains(&to) {
            Ok(to)
        } else {
            let allowed = self
                .next_allowed()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>();
            Err(InvalidTransition {
                from: self,
                to,
                allowed: if allowed.is_empty() {
                    "none".into()
                } else {
                    allowed.join(", ")
                },
            })
        }
    }

    /// Whether the customer has been offboarded (either way).
    pub fn is_offboarded(self) -> bool {
        matches!(self, CustomerStatus::Inactive | CustomerStatus::Deleted)
    }

    /// The lowercase name used everywhere outside the code.
    pub fn as_str(self) -> &'static str {
        use CustomerStatus::*;
        match self {
            Pending => "pending",
            Active => "active",
            Paused => "paused",
            Churned => "churned",
            Inactive => "inactive",
            Deleted => "deleted",
            Failed => "failed",
        }
    }
}

impl fmt::Display for CustomerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CustomerStatus {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        ALL_STATUSES
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Invalid::new(
                    "unknown_status",
                    format!(
                        "unknown status '{s}': expected one of pending, active, paused, churned, \
                     inactive, deleted, failed"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::CustomerStatus::*;
    use super::*;

    #[test]
    fn the_seed_lifecycle_is_allowed() {
        assert_eq!(Pending.transition(Active), Ok(Active));
        assert_eq!(Active.transition(Paused), Ok(Paused));
        assert_eq!(Paused.transition(Active), Ok(Active));
        assert_eq!(Active.transition(Churned), Ok(Churned));
        assert_eq!(Active.transition(Inactive), Ok(Inactive));
        assert_eq!(Inactive.transition(Deleted), Ok(Deleted));
        assert_eq!(Failed.transition(Pending), Ok(Pending));
    }

    #[test]
    fn deleted_is_final_and_self_transitions_are_refused() {
        for to in ALL_STATUSES {
            let err = Deleted.transition(to).unwrap_err();
            assert_eq!(err.allowed, "none");
        }
        for s in ALL_STATUSES {
            assert!(s.transition(s).is_err(), "{s} -> {s}");
        }
    }

    #[test]
    fn refusals_name_what_is_allowed() {
        let err = Pending.transition(Paused).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot change status from pending to paused; from pending the allowed statuses are: \
             active, failed, deleted"
        );
    }

    #[test]
    fn every_status_can_reach_deleted_and_names_round_trip() {
        for s in ALL_STATUSES {
            assert_eq!(s.as_str().parse::<CustomerStatus>().unwrap(), s);
            if s != Deleted {
                assert!(s.transition(Deleted).is_ok(), "{s}");
            }
        }
        assert!("gone".parse::<CustomerStatus>().is_err());
    }
}
