//! A subscription's life as functions: active on a plan and cycle, past due when a renewal is not
//! paid, paused and resumed, canceled now or at the end of its period, and a change of plan or
//! cycle made now (prorated, see [`super::money::prorate`]) or scheduled for the period's end.
//! A downgrade is never forced to be immediate: the caller chooses `now` or `period_end`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::money::period_at;

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Paid and running.
    Active,
    /// A renewal is unpaid; still running through the grace the product gives.
    PastDue,
    /// Held by an operator; no renewals while paused.
    Paused,
    /// Ended; final.
    Canceled,
}

impl SubscriptionStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Canceled => "canceled",
        }
    }

    /// Parses its name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            SubscriptionStatus::Active,
            SubscriptionStatus::PastDue,
            SubscriptionStatus::Paused,
            SubscriptionStatus::Canceled,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// When a change or a cancellation takes effect.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// At once.
    Now,
    /// When the current period ends.
    PeriodEnd,
}

/// A change waiting for the period's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduledChange {
    /// To another plan or cycle.
    Change {
        /// The plan.
        plan: String,
        /// The cycle.
        cycle: String,
    },
    /// The end of the subscription.
    Cancel,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Where it stands.
    pub status: SubscriptionStatus,
    /// Its plan.
    pub plan: String,
    /// Its cycle (`monthly`, `quarterly`, `annual`...).
    pub cycle: String,
    /// Months in a period of that cycle.
    pub cycle_months: u32,
    /// Where its periods are counted from.
    pub anchor: DateTime<Utc>,
    /// What waits for the period's end.
    pub scheduled: Option<ScheduledChange>,
}

/// Why a subscription cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionRefusal {
    /// Not in this status.
    #[error("a {status:?} subscription cannot be {action}")]
    Status {
        /// Where it stands.
        status: SubscriptionStatus,
        /// What was asked.
        action: &'static str,
    },
    /// The change changes nothing.
    #[error("the subscription is already on plan '{0}' with cycle '{1}'")]
    Unchanged(String, String),
}

impl Subscription {
    /// A new active subscription from `now`.
    pub fn start(plan: &str, cycle: &str, cycle_months: u32, now: DateTime<Utc>) -> Self {
        Self {
            status: SubscriptionStatus::Active,
            plan: plan.to_owned(),
            cycle: cycle.to_owned(),
            cycle_months: cycle_months.max(1),
            anchor: now,
            scheduled: None,
        }
    }

    /// The period that holds `now`.
    pub fn period(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        period_at(self.anchor, self.cycle_months, now)
    }

    /// What may be done now, by name: what a client shows as buttons (`change`, `unschedule`,
    /// `cancel`). Pausing is a state this machine has but no operation offers yet, so it is
    /// not among them.
    pub fn available_actions(&self) -> Vec<&'static str> {
        match self.status {
            SubscriptionStatus::Active => {
                let mut a = vec!["change"];
                if self.scheduled.is_some() {
                    a.push("unschedule");
                }
                if self.scheduled != Some(ScheduledChange::Cancel) {
                    a.push("cancel");
                }
                a
            }
            SubscriptionStatus::PastDue => vec!["cancel"],
            SubscriptionStatus::Paused => vec!["cancel"],
            SubscriptionStatus::Canceled => vec![],
        }
    }

    fn refuse(&self, action: &'static str) -> SubscriptionRefusal {
        SubscriptionRefusal::Status {
            status: self.status,
            action,
        }
    }

    /// Changes the plan or cycle now (a new cycle starts its periods now) or at the period's
    /// end (scheduled, replacing any change scheduled before).
    pub fn change(
        &self,
        plan: &str,
        cycle: &str,
        cycle_months: u32,
        when: When,
        now: DateTime<Utc>,
    ) -> Result<Subscription, SubscriptionRefusal> {
        if self.status != SubscriptionStatus::Active {
            return Err(self.refuse("changed"));
        }
        if plan == self.plan && cycle == self.cycle {
            return Err(SubscriptionRefusal::Unchanged(plan.into(), cycle.into()));
        }
        Ok(match when {
            When::Now => Subscription {
                plan: plan.into(),
                cycle: cycle.into(),
                cycle_months: cycle_months.max(1),
                anchor: if cycle == self.cycle {
                    self.anchor
                } else {
                    now
                },
                scheduled: None,
                ..self.clone()
            },
            When::PeriodEnd => Subscription {
                scheduled: Some(ScheduledChange::Change {
                    plan: plan.into(),
                    cycle: cycle.into(),
                }),
                ..self.clone()
            },
        })
    }

    /// Cancels now, or at the period's end.
    pub fn cancel(&self, when: When) -> Result<Subscription, SubscriptionRefusal> {
        match (self.status, when) {
            (SubscriptionStatus::Canceled, _) => Err(self.refuse("canceled")),
            (_, When::Now) => Ok(Subscription {
                status: SubscriptionStatus::Canceled,
                scheduled: None,
                ..self.clone()
            }),
            (SubscriptionStatus::Active, When::PeriodEnd) => Ok(Subscription {
                scheduled: Some(ScheduledChange::Cancel),
                ..self.clone()
            }),
            _ => Err(self.refuse("canceled at the period's end")),
        }
    }

    /// Drops what was scheduled for the period's end.
    pub fn unschedule(&self) -> Result<Subscription, SubscriptionRefusal> {
        match (self.status, &self.scheduled) {
            (SubscriptionStatus::Active, Some(_)) => Ok(Subscription {
                scheduled: None,
                ..self.clone()
            }),
            (SubscriptionStatus::Active, None) => {
                Err(self.refuse("unscheduled: nothing is scheduled for its period's end"))
            }
            _ => Err(self.refuse("unscheduled")),
        }
    }

    /// Pauses an active subscription.
    pub fn pause(&self) -> Result<Subscription, SubscriptionRefusal> {
        match self.status {
            SubscriptionStatus::Active => Ok(Subscription {
                status: SubscriptionStatus::Paused,
                ..self.clone()
            }),
            _ => Err(self.refuse("paused")),
        }
    }

    /// Resumes a paused one.
    pub fn resume(&self) -> Result<Subscription, SubscriptionRefusal> {
        match self.status {
            SubscriptionStatus::Paused => Ok(Subscription {
                status: SubscriptionStatus::Active,
                ..self.clone()
            }),
            _ => Err(self.refuse("resumed")),
        }
    }

    /// A renewal went unpaid.
    pub fn renewal_failed(&self) -> Result<Subscription, SubscriptionRefusal> {
        match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => Ok(Subscription {
                status: SubscriptionStatus::PastDue,
                ..self.clone()
            }),
            _ => Err(self.refuse("marked past due")),
        }
    }

    /// A renewal (or the overdue one) was paid.
    pub fn renewal_paid(&self) -> Result<Subscription, SubscriptionRefusal> {
        match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => Ok(Subscription {
                status: SubscriptionStatus::Active,
                ..self.clone()
            }),
            _ => Err(self.refuse("renewed")),
        }
    }

    /// The period's end at `end`: what was scheduled takes effect (a changed cycle counts its
    /// periods from `end`).
    pub fn at_period_end(
        &self,
        end: DateTime<Utc>,
        months_of: impl Fn(&str) -> u32,
    ) -> Subscription {
        match &self.scheduled {
            None => self.clone(),
            Some(ScheduledChange::Cancel) => Subscription {
                status: SubscriptionStatus::Canceled,
                scheduled: None,
                ..self.clone()
            },
            Some(ScheduledChange::Change { plan, cycle }) => Subscription {
                plan: plan.clone(),
                cycle: cycle.clone(),
                cycle_months: months_of(cycle).max(1),
                anchor: if *cycle == self.cycle {
                    self.anchor
                } else {
                    end
                },
                scheduled: None,
                ..self.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, m, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn changes_now_or_at_the_period_end() {
        let s = Subscription::start("professional", "annual", 12, at(1, 15));
        assert_eq!(
            s.period(at(6, 1)),
            (
                at(1, 15),
                Utc.with_ymd_and_hms(2028, 1, 15, 0, 0, 0).unwrap()
            )
        );
        // Upgrade now, same cycle: the periods keep their anchor.
        let up = s
            .change("enterprise", "annual", 12, When::Now, at(6, 1))
            .unwrap();
        assert_eq!((up.plan.as_str(), up.anchor), ("enterprise", at(1, 15)));
        // A downgrade waits for the period's end when asked to.
        let down = up
            .change("starter", "monthly", 1, When::PeriodEnd, at(6, 2))
            .unwrap();
        assert_eq!(down.plan, "enterprise");
        assert!(down.available_actions().contains(&"unschedule"));
        let end = down.period(at(6, 2)).1;
        let later = down.at_period_end(end, |c| if c == "monthly" { 1 } else { 12 });
        assert_eq!(
            (later.plan.as_str(), later.cycle_months, later.anchor),
            ("starter", 1, end)
        );
        assert_eq!(
            later.change("starter", "monthly", 1, When::Now, end),
            Err(SubscriptionRefusal::Unchanged(
                "starter".into(),
                "monthly".into()
            ))
        );
    }

    #[test]
    fn the_status_machine_refuses_what_it_does_not_allow() {
        let s = Subscription::start("starter", "monthly", 1, at(1, 1));
        let paused = s.pause().unwrap();
        assert_eq!(paused.available_actions(), ["cancel"]);
        assert!(paused
            .change("pro", "monthly", 1, When::Now, at(1, 2))
            .is_err());
        assert!(paused.cancel(When::PeriodEnd).is_err());
        let due = s.renewal_failed().unwrap();
        assert_eq!(due.status, SubscriptionStatus::PastDue);
        assert_eq!(
            due.renewal_paid().unwrap().status,
            SubscriptionStatus::Active
        );
        let ending = s.cancel(When::PeriodEnd).unwrap();
        assert!(!ending.available_actions().contains(&"cancel"));
        assert_eq!(ending.unschedule().unwrap(), s);
        assert!(s.unschedule().is_err());
        let gone = ending.at_period_end(at(2, 1), |_| 1);
        assert_eq!(gone.status, SubscriptionStatus::Canceled);
        assert!(gone.available_actions().is_empty());
        assert!(gone.cancel(When::Now).is_err() && gone.resume().is_err());
    }
}
