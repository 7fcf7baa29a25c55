//! Fault injection for tests: make a named onboarding step fail transiently N times, fail for
//! good, or stall, so retry, rollback and resume are driven through the real code path.
//!
//! Off unless `ONRAMP_FAULTS` is set (and loudly logged when it is). Its form is a list of
//! `STEP[@CUSTOMER]=KIND` separated by `;`, where KIND is `transient:N`, `permanent` or
//! `stall:MS`: `provision_dataset=transient:2;verify_dataset@acme=permanent`. A background
//! job stalls mid-run with `job:NAME=stall:MS`. Transient faults
//! count the step's persisted attempts, so they behave the same across restarts.

use std::time::Duration;

use crate::domain::run::step_kind;

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Fail the first N attempts with a transient error.
    Transient(u32),
    /// Fail every attempt with a permanent error.
    Permanent,
    /// Sleep this long before doing the work.
    Stall(Duration),
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The step it hits.
    pub step: String,
    /// Only this customer's runs, when given.
    pub customer: Option<String>,
    /// What it does.
    pub kind: FaultKind,
}

/// The faults in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan(Vec<Fault>);

/// What an injected fault asks of the step now.
#[derive(Debug, PartialEq, Eq)]
pub enum Injected {
    /// Nothing: do the work.
    None,
    /// Fail this attempt, transiently.
    Transient,
    /// Fail for good.
    Permanent,
}

impl FaultPlan {
    /// Parses `ONRAMP_FAULTS`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (target, kind) = part
                .split_once('=')
                .ok_or_else(|| format!("fault '{part}' must be STEP[@CUSTOMER]=KIND"))?;
            let (step, customer) = match target.split_once('@') {
                Some((s, c)) => (s, Some(c.to_owned())),
                None => (target, None),
            };
            if step.strip_prefix("job:").is_some_and(|j| j.is_empty())
                || (!step.starts_with("job:") && step_kind(step).is_none())
            {
                return Err(format!("fault '{part}': unknown step '{step}'"));
            }
            let kind = match kind.split_once(':') {
                Some(("transient", n)) => FaultKind::Transient(
                    n.parse()
                        .map_err(|_| format!("fault '{part}': bad count"))?,
                ),
                Some(("stall", ms)) => FaultKind::Stall(Duration::from_millis(
                    ms.parse()
                        .map_err(|_| format!("fault '{part}': bad duration"))?,
                )),
                None if kind == "permanent" => FaultKind::Permanent,
                _ => {
                    return Err(format!(
                        "fault '{part}': kind must be transient:N, permanent or stall:MS"
                    ))
                }
            };
            faults.push(Fault {
                step: step.to_owned(),
                customer,
                kind,
            });
        }
        Ok(Self(faults))
    }

    /// Whether any fault targets `step`.
    pub fn targets(&self, step: &str) -> bool {
        self.0.iter().any(|f| f.step == step)
    }

    /// How long the job `name` stalls mid-run (a `job:NAME=stall:MS` fault), if it does.
    pub fn job_stall(&self, name: &str) -> Option<Duration> {
        self.0.iter().find_map(|f| match f.kind {
            FaultKind::Stall(d) if f.step.strip_prefix("job:") == Some(name) => Some(d),
            _ => None,
        })
    }

    /// Whether any fault is in force.
    pub fn is_active(&self) -> bool {
        !self.0.is_empty()
    }

    /// Applies the faults for `step` of `customer` at `attempt` (from 1): stalls sleep here.
    pub async fn apply(&self, step: &str, customer: &str, attempt: i64) -> Injected {
        let mut outcome = Injected::None;
        for f in self
            .0
            .iter()
            .filter(|f| f.step == step && f.customer.as_deref().is_none_or(|c| c == customer))
        {
            match f.kind {
                FaultKind::Stall(d) => tokio::time::sleep(d).await,
                FaultKind::Transient(n) if attempt <= i64::from(n) => outcome = Injected::Transient,
                FaultKind::Permanent => return Injected::Permanent,
                FaultKind::Transient(_) => {}
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_parses_and_refuses_nonsense() {
        let plan = FaultPlan::parse(
            "provision_dataset=transient:2; verify_dataset@acme=permanent;activate=stall:10",
        )
        .unwrap();
        assert_eq!(plan.0.len(), 3);
        assert_eq!(plan.0[1].customer.as_deref(), Some("acme"));
        for bad in [
            "teleport=permanent",
            "provision_dataset",
            "provision_dataset=sometimes",
            "activate=stall:x",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
        assert!(!FaultPlan::parse("").unwrap().is_active());
        let jobs = FaultPlan::parse("job:outbox.event_counts=stall:250").unwrap();
        assert_eq!(
            jobs.job_stall("outbox.event_counts"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(jobs.job_stall("recover_runs"), None);
        assert!(FaultPlan::parse("job:=stall:5").is_err());
    }

    #[tokio::test]
    async fn transient_faults_count_attempts_and_target_customers() {
        let plan = FaultPlan::parse("provision_dataset=transient:2;verify_dataset@acme=permanent")
            .unwrap();
        assert_eq!(
            plan.apply("provision_dataset", "x", 1).await,
            Injected::Transient
        );
        assert_eq!(
            plan.apply("provision_dataset", "x", 2).await,
            Injected::Transient
        );
        assert_eq!(
            plan.apply("provision_dataset", "x", 3).await,
            Injected::None
        );
        assert_eq!(
            plan.apply("verify_dataset", "acme", 1).await,
            Injected::Permanent
        );
        assert_eq!(
            plan.apply("verify_dataset", "other", 1).await,
            Injected::None
        );
    }
}
