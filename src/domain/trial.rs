//! A trial's life as functions: pending until it is activated, active for its days, extended
//! (at most the product's number of times), then converted to a plan or expired. The trial's
//! end is its activation plus the sum of its days, counted in whole days of 86,400 seconds from
//! the moment of activation: a month or year boundary neither loses nor adds a day.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Created; its clock has not started (waiting for its activation condition).
    Pending,
    /// Running.
    Active,
    /// Running, with at least one extension.
    Extended,
    /// Turned into a subscription.
    Converted,
    /// Ran out.
    Expired,
}

impl TrialStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Pending => "pending",
            TrialStatus::Active => "active",
            TrialStatus::Extended => "extended",
            TrialStatus::Converted => "converted",
            TrialStatus::Expired => "expired",
        }
    }

    /// Parses its name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            TrialStatus::Pending,
            TrialStatus::Active,
            TrialStatus::Extended,
            TrialStatus::Converted,
            TrialStatus::Expired,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Whole days from `now` to `ends_at`, a part of a day counting as a day (a reminder sent 47
/// hours before the end says 2 days); 0 once it has ended.
pub fn days_left(now: DateTime<Utc>, ends_at: DateTime<Utc>) -> i64 {
    let seconds = (ends_at - now).num_seconds().max(0);
    (seconds + 86_399) / 86_400
}

/// The work a trial's clock brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialDue {
    /// A pending trial's activation deadline came: its clock starts.
    Activate,
    /// Remind the customer the trial ends soon.
    Remind,
    /// The trial's days are over.
    Expire,
    /// The grace after the end is over: apply the product's end behaviour.
    EndGrace,
}

/// Where a trial's time-based work stands besides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrialProgress {
    /// The reminder for the current end was sent (an extension asks for a new one).
    pub reminded: bool,
    /// The end behaviour was applied after the grace.
    pub ended: bool,
    /// When a pending trial starts by itself at the latest (the product's
    /// `activate_within_days` after it was made), if it has such a deadline.
    pub activate_by: Option<DateTime<Utc>>,
}

/// Why a trial cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrialRefusal {
    /// The trial is not in a status that allows it.
    #[error("a {status:?} trial cannot be {action}")]
    Status {
        /// Where it stands.
        status: TrialStatus,
        /// What was asked.
        action: &'static str,
    },
    /// Every extension the product allows is spent.
    #[error("the trial has had its {0} extension(s)")]
    NoExtensionsLeft(u32),
    /// Days out of range.
    #[error("days must be from 1 to 365")]
    Days,
}

/// A trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// Where it stands.
    pub status: TrialStatus,
    /// Its days before extensions.
    pub days: u32,
    /// Days added by extensions.
    pub extra_days: u32,
    /// Extensions granted.
    pub extensions: u32,
    /// When its clock started.
    pub activated_at: Option<DateTime<Utc>>,
}

impl Trial {
    /// A new trial of `days`, pending.
    pub fn new(days: u32) -> Result<Self, TrialRefusal> {
        if !(1..=365).contains(&days) {
            return Err(TrialRefusal::Days);
        }
        Ok(Self {
            status: TrialStatus::Pending,
            days,
            extra_days: 0,
            extensions: 0,
            activated_at: None,
        })
    }

    /// When it ends: its activation plus all its days; none while pending.
    pub fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.activated_at
            .map(|a| a + Duration::days(i64::from(self.days) + i64::from(self.extra_days)))
    }

    /// Starts its clock at `now`.
    pub fn activate(&self, now: DateTime<Utc>) -> Result<Trial, TrialRefusal> {
        match self.status {
            TrialStatus::Pending => Ok(Trial {
                status: TrialStatus::Active,
                activated_at: Some(now),
                ..self.clone()
            }),
            status => Err(TrialRefusal::Status {
                status,
                action: "activated",
            }),
        }
    }

    /// Adds `days`, if fewer than `max_extensions` were granted and it has not ended.
    pub fn extend(&self, days: u32, max_extensions: u32) -> Result<Trial, TrialRefusal> {
        if !(1..=365).contains(&days) {
            return Err(TrialRefusal::Days);
        }
        match self.status {
            TrialStatus::Pending | TrialStatus::Active | TrialStatus::Extended => {}
            status => {
                return Err(TrialRefusal::Status {
                    status,
                    action: "extended",
                })
            }
        }
        if self.extensions >= max_extensions {
            return Err(TrialRefusal::NoExtensionsLeft(max_extensions));
        }
        Ok(Trial {
            status: if self.status == TrialStatus::Pending {
                TrialStatus::Pending
            } else {
                TrialStatus::Extended
            },
            extra_days: self.extra_days + days,
            extensions: self.extensions + 1,
            ..self.clone()
        })
    }

    /// Converts it to a subscription.
    pub fn convert(&self) -> Result<Trial, TrialRefusal> {
        match self.status {
            TrialStatus::Active | TrialStatus::Extended | TrialStatus::Pending => Ok(Trial {
                status: TrialStatus::Converted,
                ..self.clone()
            }),
            status => Err(TrialRefusal::Status {
                status,
                action: "converted",
            }),
        }
    }

    /// Expires it if its end has come by `now`.
    pub fn expire_if_due(&self, now: DateTime<Utc>) -> Option<Trial> {
        let running = matches!(self.status, TrialStatus::Active | TrialStatus::Extended);
        (running && self.ends_at().is_some_and(|end| end <= now)).then(|| Trial {
            status: TrialStatus::Expired,
            ..self.clone()
        })
    }
}

impl Trial {
    /// When the grace after its end is over.
    pub fn grace_ends_at(&self, grace_days: u32) -> Option<DateTime<Utc>> {
        self.ends_at()
            .map(|end| end + Duration::days(i64::from(grace_days)))
    }

    /// Whether it has expired but its grace still runs at `now`: its limits still hold.
    pub fn in_grace(&self, now: DateTime<Utc>, grace_days: u32) -> bool {
        self.status == TrialStatus::Expired
            && self.grace_ends_at(grace_days).is_some_and(|g| now < g)
    }

    /// The next work its clock brings and when: a pending trial's activation at its deadline,
    /// the reminder `reminder_days` before the end (once per end; none when 0), the expiry at
    /// the end, then the end of the grace.
    pub fn next_due(
        &self,
        progress: TrialProgress,
        reminder_days: u32,
        grace_days: u32,
    ) -> Option<(DateTime<Utc>, TrialDue)> {
        match self.status {
            TrialStatus::Pending => progress.activate_by.map(|at| (at, TrialDue::Activate)),
            TrialStatus::Active | TrialStatus::Extended => {
                let end = self.ends_at()?;
                if !progress.reminded && reminder_days > 0 {
                    let remind = end - Duration::days(i64::from(reminder_days));
                    let start = self.activated_at.unwrap_or(remind);
                    return Some((remind.max(start), TrialDue::Remind));
                }
                Some((end, TrialDue::Expire))
            }
            TrialStatus::Expired if !progress.ended => {
                Some((self.grace_ends_at(grace_days)?, TrialDue::EndGrace))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn days_left_counts_a_part_of_a_day_as_a_day() {
        let end = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(days_left(end - Duration::days(2), end), 2);
        assert_eq!(days_left(end - Duration::hours(47), end), 2);
        assert_eq!(days_left(end - Duration::hours(49), end), 3);
        assert_eq!(days_left(end - Duration::seconds(1), end), 1);
        assert_eq!(days_left(end, end), 0);
        assert_eq!(days_left(end + Duration::days(1), end), 0);
    }

    #[test]
    fn a_trial_is_activated_extended_twice_and_refused_a_third_time() {
        let t = Trial::new(30).unwrap();
        assert_eq!(t.ends_at(), None);
        let start = Utc.with_ymd_and_hms(2026, 12, 20, 9, 0, 0).unwrap();
        let t = t.activate(start).unwrap();
        let t = t.extend(7, 2).unwrap().extend(7, 2).unwrap();
        assert_eq!(t.status, TrialStatus::Extended);
        assert_eq!(t.extend(7, 2), Err(TrialRefusal::NoExtensionsLeft(2)));
        // 44 days from 20 December: across the year's end, 2 February at the same hour.
        assert_eq!(
            t.ends_at(),
            Some(Utc.with_ymd_and_hms(2027, 2, 2, 9, 0, 0).unwrap())
        );
        assert!(t
            .expire_if_due(Utc.with_ymd_and_hms(2027, 2, 2, 8, 59, 59).unwrap())
            .is_none());
        let expired = t.expire_if_due(t.ends_at().unwrap()).unwrap();
        assert_eq!(expired.status, TrialStatus::Expired);
        assert!(expired.convert().is_err() && expired.extend(1, 5).is_err());
        assert!(Trial::new(0).is_err() && t.activate(start).is_err());
    }

    #[test]
    fn the_clock_brings_a_reminder_the_expiry_then_the_end_of_grace() {
        let start = Utc.with_ymd_and_hms(2026, 2, 12, 10, 0, 0).unwrap();
        let t = Trial::new(7).unwrap();
        assert_eq!(t.next_due(TrialProgress::default(), 2, 3), None);
        // A pending trial with a deadline starts then.
        let deadline = TrialProgress {
            activate_by: Some(start),
            ..TrialProgress::default()
        };
        assert_eq!(
            t.next_due(deadline, 2, 3),
            Some((start, TrialDue::Activate))
        );
        let t = t.activate(start).unwrap();
        assert_eq!(
            t.next_due(deadline, 2, 3),
            Some((start + Duration::days(5), TrialDue::Remind)),
            "the deadline is for pending trials only"
        );
        let day = |d: i64| start + Duration::days(d);
        let fresh = TrialProgress::default();
        assert_eq!(t.next_due(fresh, 2, 3), Some((day(5), TrialDue::Remind)));
        let reminded = TrialProgress {
            reminded: true,
            ..TrialProgress::default()
        };
        assert_eq!(t.next_due(reminded, 2, 3), Some((day(7), TrialDue::Expire)));
        assert_eq!(t.next_due(fresh, 0, 3), Some((day(7), TrialDue::Expire)));
        let expired = t.expire_if_due(day(7)).unwrap();
        assert_eq!(
            expired.next_due(reminded, 2, 3),
            Some((day(10), TrialDue::EndGrace))
        );
        assert!(expired.in_grace(day(9), 3) && !expired.in_grace(day(10), 3));
        let ended = TrialProgress {
            reminded: true,
            ended: true,
            activate_by: None,
        };
        assert_eq!(expired.next_due(ended, 2, 3), None);
        // A trial shorter than its reminder is reminded at once.
        let short = Trial::new(1).unwrap().activate(start).unwrap();
        assert_eq!(short.next_due(fresh, 2, 0), Some((start, TrialDue::Remind)));
    }

    proptest! {
        /// Extending across a month or year boundary never loses or double-counts a day: the
        /// end is always the activation plus every day granted, whatever the order.
        #[test]
        fn extensions_add_exactly_their_days(
            start in 1_577_836_800i64..2_208_988_800,
            days in 1u32..60,
            extra in prop::collection::vec(1u32..30, 0..4),
        ) {
            let start = Utc.timestamp_opt(start, 0).unwrap();
            let mut t = Trial::new(days).unwrap().activate(start).unwrap();
            for d in &extra {
                t = t.extend(*d, 4).unwrap();
            }
            let total: u32 = days + extra.iter().sum::<u32>();
            prop_assert_eq!(t.ends_at().unwrap() - start, Duration::days(i64::from(total)));
            let mut reversed = Trial::new(days).unwrap().activate(start).unwrap();
            for d in extra.iter().rev() {
                reversed = reversed.extend(*d, 4).unwrap();
            }
            prop_assert_eq!(reversed.ends_at(), t.ends_at());
        }
    }
}
