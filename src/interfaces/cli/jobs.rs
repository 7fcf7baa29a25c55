//! `onramp jobs`: the background jobs, their state and their attempts; run one by hand.

use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

use super::exit;
use super::output::{self, Format};
use crate::domain::job::AttemptOutcome;
use crate::jobs::{JobError, Jobs};

/// The `jobs` command group.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job: what it does, how often, when it runs next, how its last attempt went.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run a job now in this process (unless another process holds it), and wait for it.
    Run {
        /// The job's name (see `onramp jobs list`).
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A job's latest attempts: which process made each, when, and how it ended.
    Status {
        /// The job's name.
        name: String,
        /// How many attempts to show, newest first.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs a `jobs` command; the answer is the exit code.
pub async fn run(jobs: &Jobs, command: JobsCommand) -> Result<u8, JobError> {
    match command {
        JobsCommand::List { format } => list(jobs, format).await,
        JobsCommand::Run { name, format } => {
            let report = jobs.run_now(&name).await?;
            match format {
                Format::Json => output::json(&report),
                _ => println!(
                    "{}: attempt {} {}: {}",
                    report.name, report.attempt_id, report.outcome, report.detail
                ),
            }
            Ok(if report.outcome == AttemptOutcome::Succeeded {
                exit::OK
            } else {
                exit::FAILURE
            })
        }
        JobsCommand::Status {
            name,
            limit,
            format,
        } => {
            let attempts = jobs.attempts(&name, limit).await?;
            match format {
                Format::Json => output::json(&attempts),
                _ => {
                    let mut t = output::table(&[
                        "ATTEMPT", "OWNER", "STARTED", "ENDED", "OUTCOME", "DETAIL",
                    ]);
                    for a in &attempts {
                        t.add_row([
                            a.id.to_string(),
                            a.owner.clone(),
                            a.started_at.to_rfc3339(),
                            a.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                            a.outcome.to_string(),
                            a.detail.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
    }
}

async fn list(jobs: &Jobs, format: Format) -> Result<u8, JobError> {
    let status = jobs.status().await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    match format {
        Format::Json => output::json(
            &status
                .iter()
                .map(|s| {
                    let r = s.record.as_ref();
                    json!({
                        "name": s.name,
                        "description": s.description,
                        "every_ms": s.every.as_millis() as u64,
                        "next_run_ms": r.map(|r| r.next_run_ms),
                        "held_by": s.held_by,
                        "runs": r.map_or(0, |r| r.runs),
                        "failures": r.map_or(0, |r| r.failures),
                        "last_outcome": r.and_then(|r| r.last_outcome).map(|o| o.as_str()),
                        "last_finished_at": r.and_then(|r| r.last_finished_at),
                        "last_error": r.and_then(|r| r.last_error.clone()),
                        "consumer": s.cursor.map(|(c, at)| json!({"name": c, "cursor": at})),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        _ => {
            let mut t = output::table(&["JOB", "EVERY", "NEXT", "HELD BY", "RUNS", "LAST", "WHAT"]);
            for s in &status {
                let r = s.record.as_ref();
                let next = r.map_or("not yet registered".to_owned(), |r| {
                    let wait = r.next_run_ms - now_ms;
                    if wait <= 0 {
                        "due".to_owned()
                    } else {
                        format!("in {:.1}s", wait as f64 / 1000.0)
                    }
                });
                let last = r.map_or(String::new(), |r| match (&r.last_outcome, &r.last_error) {
                    (_, Some(e)) => format!("failed {}x: {e}", r.failures),
                    (Some(o), None) => o.to_string(),
                    (None, None) => String::new(),
                });
                let what = match s.cursor {
                    Some((c, at)) => format!("{} (consumer {c}, cursor {at})", s.description),
                    None => s.description.to_owned(),
                };
                t.add_row([
                    s.name.to_owned(),
                    format!("{:?}", s.every),
                    next,
                    s.held_by.clone().unwrap_or_default(),
                    r.map_or(0, |r| r.runs).to_string(),
                    last,
                    what,
                ]);
            }
            println!("{t}");
        }
    }
    Ok(exit::OK)
}

/// Prints a jobs error for people and returns its exit code.
pub fn report(e: &JobError) -> ExitCode {
    match e {
        JobError::Service(s) => super::exit::report(s),
        _ => {
            eprintln!("error: {e}");
            ExitCode::from(exit::for_kind(e.kind()))
        }
    }
}
