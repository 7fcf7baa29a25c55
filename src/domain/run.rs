//! Onboarding runs: the step catalogue with its declared dependencies, the statuses of runs and
//! steps, which steps are ready to run, the order of compensation, and retry backoff. Pure.
//!
//! Dependencies are declared here, not implied by the order a product lists its steps in: a
//! step runs once every step it depends on (among those the product runs) has succeeded, so
//! independent steps run side by side.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::Invalid;

/// One kind of onboarding step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepKind {
    /// Its name in product files and results.
    pub name: &'static str,
    /// Steps that must succeed first (when the product runs them).
    pub depends_on: &'static [&'static str],
    /// Whether a product must run it.
    pub required: bool,
    /// Whether it only reads. Its start is not saved before it runs: a crash during it leaves
    /// nothing to undo, and running it again costs nothing.
    pub read_only: bool,
    /// What it does, for people.
    pub description: &'static str,
}

/// Every step Onramp can run.
pub const STEP_CATALOGUE: &[StepKind] = &[
    StepKind {
        name: "validate",
        read_only: true,
        depends_on: &[],
        required: true,
        description: "check the request against the product's rules",
    },
    StepKind {
        name: "register",
        read_only: false,
        depends_on: &["validate"],
        required: true,
        description: "record the customer and its run in the registry",
    },
    StepKind {
        name: "store_credentials",
        read_only: false,
        depends_on: &["register"],
        required: false,
        description: "store the request's credentials in the vault",
    },
    StepKind {
        name: "provision_dataset",
        read_only: false,
        depends_on: &["register"],
        required: false,
        description: "create the customer's dataset and its tier's tables",
    },
    StepKind {
        name: "verify_dataset",
        read_only: true,
        depends_on: &["provision_dataset"],
        required: false,
        description: "run SELECT 1 AS test through the dataset query path and check every table",
    },
    StepKind {
        name: "activate",
        read_only: false,
        depends_on: &[
            "register",
            "store_credentials",
            "provision_dataset",
            "verify_dataset",
        ],
        required: false,
        description: "make the customer active",
    },
];

/// The steps a product runs when its file names none.
pub const DEFAULT_STEPS: &[&str] = &[
    "validate",
    "register",
    "provision_dataset",
    "verify_dataset",
    "activate",
];

impl StepStatus {
    /// The step's next status, if the state machine allows it: a pending step starts, is
    /// skipped (its run failed first) or, for a step with no work of its own, succeeds at once;
    /// a running step succeeds, fails for good, or is skipped; a succeeded step is compensated
    /// when its run rolls back. Failed, compensated and skipped are final.
    pub fn transition(self, to: StepStatus) -> Result<StepStatus, InvalidRunTransition> {
        use StepStatus::*;
        match (self, to) {
            (Pending, Running | Succeeded | Skipped)
            | (Running, Succeeded | Failed | Skipped)
            | (Succeeded, Compensated) => Ok(to),
            _ => Err(InvalidRunTransition {
                what: "step",
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }
}

/// Looks a step up by name.
pub fn step_kind(name: &str) -> Option<&'static StepKind> {
    STEP_CATALOGUE.iter().find(|k| k.name == name)
}

/// Checks a product's step list: known steps, no repeats, the required ones present, and every
/// dependency of a listed step listed too. Returns every problem.
pub fn check_steps(steps: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match step_kind(s) {
            None => problems.push(format!(
                "onboarding step '{s}' is unknown: the steps are {}",
                STEP_CATALOGUE
                    .iter()
                    .map(|k| k.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(_) if steps[..i].contains(s) => {
                problems.push(format!("onboarding step '{s}' is listed twice"))
            }
            Some(kind) => {
                for dep in kind.depends_on {
                    let needed =
                        step_kind(dep).is_some_and(|d| d.required) || *dep == "provision_dataset";
                    if needed && !steps.iter().any(|x| x == dep) {
                        problems.push(format!(
                            "onboarding step '{s}' needs step '{dep}', which is not listed"
                        ));
                    }
                }
            }
        }
    }
    for k in STEP_CATALOGUE.iter().filter(|k| k.required) {
        if !steps.iter().any(|s| s == k.name) {
            problems.push(format!("onboarding.steps must include '{}'", k.name));
        }
    }
    problems
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),* }

        impl $name {
            /// The name used outside the code.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    _ => Err(Invalid::new("unknown_status", format!("unknown {} '{s}'", stringify!($name)))),
                }
            }
        }
    };
}

named_enum!(
    /// Where a run is.
    RunStatus {
        /// Steps are running (or waiting to be resumed).
        Running = "running",
        /// Every step succeeded.
        Succeeded = "succeeded",
        /// A step failed for good; completed steps are being undone.
        Compensating = "compensating",
        /// A step failed for good and every completed step was undone.
        Failed = "failed",
    }
);

named_enum!(
    /// Where a step is.
    StepStatus {
        /// Not started.
        Pending = "pending",
        /// Started; if the process died here, the step runs again on resume (steps are idempotent).
        Running = "running",
        /// Done.
        Succeeded = "succeeded",
        /// Failed for good.
        Failed = "failed",
        /// Done, then undone by compensation.
        Compensated = "compensated",
        /// Never ran because the run failed first.
        Skipped = "skipped",
    }
);

/// A run or step status change the state machines do not allow: a bug in whoever asked for it,
/// refused rather than saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} cannot go from {from} to {to}")]
pub struct InvalidRunTransition {
    /// `run` or `step`.
    pub what: &'static str,
    /// The status it is in.
    pub from: &'static str,
    /// The status asked for.
    pub to: &'static str,
}

impl RunStatus {
    /// The run's next status, if the state machine allows it: a running run succeeds or starts
    /// compensating, and a compensating run fails once every undo is done.
    pub fn transition(self, to: RunStatus) -> Result<RunStatus, InvalidRunTransition> {
        use RunStatus::*;
        match (self, to) {
            (Running, Succeeded | Compensating) | (Compensating, Failed) => Ok(to),
            _ => Err(InvalidRunTransition {
                what: "run",
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }
}

/// The steps that can start now: pending, with every listed dependency succeeded.
pub fn ready_steps(steps: &[(String, StepStatus)]) -> Vec<&str> {
    let status_of = |name: &str| steps.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
    steps
        .iter()
        .filter(|(_, s)| matches!(s, StepStatus::Pending | StepStatus::Running))
        .filter(|(name, _)| {
            step_kind(name).is_some_and(|k| {
                k.depends_on
                    .iter()
                    .all(|d| matches!(status_of(d), None | Some(StepStatus::Succeeded)))
            })
        })
        .map(|(n, _)| n.as_str())
        .collect()
}

/// Which steps to undo, in order: every step that started and is not undone yet (one that
/// never finished may have done part of its work, and undoing is idempotent), unfinished ones
/// first, then the rest newest completion first. `steps` holds each step's status, attempts
/// and completion order; the result indexes into it.
pub fn compensation_order(steps: &[(StepStatus, i64, Option<i64>)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].1 > 0 && steps[i].0 != StepStatus::Compensated)
        .collect();
    order.sort_by_key(|&i| std::cmp::Reverse(steps[i].2.unwrap_or(i64::MAX)));
    order
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped at `max`, then scaled by a
/// factor in `[1 - jitter, 1]` (`unit` is a random number in `[0, 1)`), so retries of many runs
/// spread out instead of arriving together.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped.mul_f64(1.0 - jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {

    #[test]
    fn step_and_run_transitions_follow_the_state_machines() {
        use StepStatus::*;
        let all = [Pending, Running, Succeeded, Failed, Compensated, Skipped];
        let allowed = [
            (Pending, Running),
            (Pending, Succeeded),
            (Pending, Skipped),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Skipped),
            (Succeeded, Compensated),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.transition(to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        let e = Failed.transition(Running).unwrap_err();
        assert_eq!(e.to_string(), "a step cannot go from failed to running");
        use RunStatus as R;
        assert_eq!(R::Running.transition(R::Compensating), Ok(R::Compensating));
        assert_eq!(R::Compensating.transition(R::Failed), Ok(R::Failed));
        assert!(R::Running.transition(R::Failed).is_err());
        assert!(R::Succeeded.transition(R::Running).is_err());
        assert!(R::Failed.transition(R::Compensating).is_err());
    }

    use super::*;

    fn steps(list: &[(&str, StepStatus)]) -> Vec<(String, StepStatus)> {
        list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn the_default_steps_are_valid_and_dependencies_are_checked() {
        let default: Vec<String> = DEFAULT_STEPS.iter().map(|s| s.to_string()).collect();
        assert!(check_steps(&default).is_empty());
        let missing = check_steps(&[
            "validate".into(),
            "register".into(),
            "verify_dataset".into(),
        ]);
        assert_eq!(missing, ["onboarding step 'verify_dataset' needs step 'provision_dataset', which is not listed"]);
        let bad = check_steps(&["validate".into(), "teleport".into(), "validate".into()]);
        assert_eq!(bad.len(), 3, "{bad:?}");
    }

    #[test]
    fn a_step_waits_for_its_dependencies() {
        use StepStatus::*;
        let s = steps(&[
            ("validate", Succeeded),
            ("register", Succeeded),
            ("provision_dataset", Pending),
            ("verify_dataset", Pending),
            ("activate", Pending),
        ]);
        assert_eq!(ready_steps(&s), ["provision_dataset"]);
        let s = steps(&[
            ("validate", Succeeded),
            ("register", Succeeded),
            ("provision_dataset", Succeeded),
            ("verify_dataset", Pending),
            ("activate", Pending),
        ]);
        assert_eq!(ready_steps(&s), ["verify_dataset"]);
        // activate does not wait for steps the product does not run.
        let s = steps(&[
            ("validate", Succeeded),
            ("register", Succeeded),
            ("activate", Pending),
        ]);
        assert_eq!(ready_steps(&s), ["activate"]);
        // A step left running by a crash is ready to run again.
        let s = steps(&[
            ("validate", Succeeded),
            ("register", Succeeded),
            ("provision_dataset", Running),
        ]);
        assert_eq!(ready_steps(&s), ["provision_dataset"]);
    }

    #[test]
    fn compensation_undoes_unfinished_steps_then_newest_first() {
        use StepStatus::*;
        let steps = [
            (Succeeded, 1, Some(1)),   // validate
            (Succeeded, 1, Some(2)),   // register
            (Succeeded, 2, Some(10)),  // provision_dataset
            (Failed, 1, None),         // verify_dataset: started, never finished
            (Pending, 0, None),        // activate: never started
            (Compensated, 1, Some(5)), // already undone
        ];
        assert_eq!(compensation_order(&steps), [3, 2, 1, 0]);
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_downwards() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(backoff(1, base, max, 0.0, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(3, base, max, 0.0, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(30, base, max, 0.0, 0.5), max);
        assert_eq!(backoff(2, base, max, 0.5, 1.0), Duration::from_millis(100));
        for unit in [0.0, 0.3, 0.99] {
            let d = backoff(4, base, max, 0.25, unit);
            assert!(
                d <= Duration::from_millis(800) && d >= Duration::from_millis(600),
                "{d:?}"
            );
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Compensating,
            RunStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
        assert_eq!(
            "compensated".parse::<StepStatus>().unwrap(),
            StepStatus::Compensated
        );
    }
}
