//! `onramp onboarding`: onboarding runs and checklists: show, retry, check, recover.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::{Actor, Services};

/// The `onboarding` command group.
#[derive(Debug, Subcommand)]
pub enum OnboardingCommand {
    /// A customer's latest run and checklist.
    Show {
        /// Customer id.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Resume a stuck run, or start a new run for a failed onboarding.
    Retry {
        /// Customer id.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Mark a manual checklist item done.
    Check {
        /// Customer id.
        customer_id: String,
        /// Checklist item id.
        item: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Resume every run whose lease ran out, then exit.
    Recover,
}

fn print_run(run: &crate::services::views::OnboardingResult) {
    println!(
        "run {}: {}{} ({:.3}s)",
        run.run_id,
        run.status,
        if run.is_success { ", success" } else { "" },
        run.duration_seconds
    );
    let mut t = output::table(&["STEP", "STATUS", "ATTEMPTS", "ERROR"]);
    for s in &run.steps {
        t.add_row([
            s.name.clone(),
            s.status.to_string(),
            s.attempts.to_string(),
            s.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    for e in &run.errors {
        println!("  error: {e}");
    }
}

/// Runs an `onboarding` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: OnboardingCommand) -> CliResult {
    let (status, format) = match command {
        OnboardingCommand::Show {
            customer_id,
            format,
        } => (s.onboarding.status(actor, &customer_id).await?, format),
        OnboardingCommand::Check {
            customer_id,
            item,
            format,
        } => (
            s.onboarding
                .mark_checklist(actor, &customer_id, &item)
                .await?,
            format,
        ),
        OnboardingCommand::Retry {
            customer_id,
            format,
        } => {
            let run = s.onboarding.retry(actor, &customer_id).await?;
            match format {
                Format::Json => output::json(&run),
                _ => print_run(&run),
            }
            return Ok(if run.is_success {
                exit::OK
            } else {
                exit::FAILURE
            });
        }
        OnboardingCommand::Recover => {
            let n = s.onboarding.recover().await?;
            println!("{n} run(s) resumed");
            return Ok(exit::OK);
        }
    };
    match format {
        Format::Json => output::json(&status),
        _ => {
            print_run(&status.run);
            let mut t = output::table(&["CHECKLIST", "KIND", "DONE", "BY", "AT"]);
            for c in &status.checklist {
                t.add_row([
                    format!("{} ({})", c.title, c.id),
                    c.kind.clone(),
                    if c.done { "yes" } else { "no" }.to_owned(),
                    c.done_by.clone().unwrap_or_default(),
                    c.done_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(exit::OK)
}
