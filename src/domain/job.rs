//! Background jobs and the event log's consumers: how an attempt ends, when a job runs next,
//! and which events a consumer may take. Pure.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::run::backoff;
use super::Invalid;

/// How one attempt of a job ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Still running: its process holds the job's lease.
    Running,
    /// It did its work.
    Succeeded,
    /// It failed; the job is retried with backoff.
    Failed,
    /// Its process stopped (or lost the lease) before it ended; another process took the job
    /// over after the lease ran out.
    Abandoned,
}

impl AttemptOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptOutcome {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(AttemptOutcome::Running),
            "succeeded" => Ok(AttemptOutcome::Succeeded),
            "failed" => Ok(AttemptOutcome::Failed),
            "abandoned" => Ok(AttemptOutcome::Abandoned),
            other => Err(Invalid::new(
                "unknown_outcome",
                format!("'{other}' is not running, succeeded, failed or abandoned"),
            )),
        }
    }
}

/// The longest a failing job waits before its next attempt.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// When a job runs next, in Unix milliseconds, after an attempt that ended at `now_ms`: a
/// success waits the job's period; the `failures`-th failure in a row waits a backoff from one
/// second, doubling, capped at the longer of the period and [`MAX_RETRY_DELAY`] (`unit` in
/// `[0, 1)` spreads retries of several processes apart).
pub fn next_run_ms(now_ms: i64, every: Duration, failures: u32, unit: f64) -> i64 {
    let wait = if failures == 0 {
        every
    } else {
        backoff(
            failures,
            Duration::from_secs(1),
            MAX_RETRY_DELAY.max(every),
            0.25,
            unit,
        )
    };
    now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
}

/// How many of `ids` (event ids after `cursor`, ascending) a consumer may take now: those that
/// follow the cursor without a hole. On PostgreSQL an id is drawn when a transaction inserts
/// its event, so a later id can commit first; a hole is an event still being committed (or one
/// rolled back, whose id never appears), and taking the events past it could skip it for good.
pub fn contiguous_prefix(cursor: i64, ids: &[i64]) -> usize {
    let mut expected = cursor;
    ids.iter()
        .take_while(|&&id| {
            expected += 1;
            id == expected
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn outcomes_round_trip() {
        for o in [
            AttemptOutcome::Running,
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::Abandoned,
        ] {
            assert_eq!(o.as_str().parse::<AttemptOutcome>().unwrap(), o);
        }
        assert!("done".parse::<AttemptOutcome>().is_err());
    }

    #[test]
    fn a_success_waits_the_period_and_failures_back_off() {
        let every = Duration::from_secs(10);
        assert_eq!(next_run_ms(1_000, every, 0, 0.5), 11_000);
        assert_eq!(next_run_ms(1_000, every, 1, 0.0), 2_000);
        assert_eq!(next_run_ms(1_000, every, 3, 0.0), 5_000);
        // Capped at five minutes, less jitter.
        let far = next_run_ms(0, every, 30, 0.0);
        assert_eq!(far, 300_000);
        assert!(next_run_ms(0, every, 30, 0.99) >= 225_000);
    }

    #[test]
    fn a_hole_stops_the_prefix() {
        assert_eq!(contiguous_prefix(0, &[1, 2, 3]), 3);
        assert_eq!(contiguous_prefix(4, &[5, 7, 8]), 1);
        assert_eq!(contiguous_prefix(4, &[6, 7]), 0);
        assert_eq!(contiguous_prefix(4, &[]), 0);
    }

    proptest! {
        #[test]
        fn the_prefix_is_exactly_the_unbroken_run(cursor in 0i64..1000, gaps in proptest::collection::vec(1i64..4, 0..50)) {
            let mut id = cursor;
            let ids: Vec<i64> = gaps.iter().map(|g| { id += g; id }).collect();
            let n = contiguous_prefix(cursor, &ids);
            prop_assert!(n <= ids.len());
            for (i, id) in ids[..n].iter().enumerate() {
                prop_assert_eq!(*id, cursor + 1 + i as i64);
            }
            if n < ids.len() {
                prop_assert!(ids[n] != cursor + 1 + n as i64);
            }
        }
    }
}
