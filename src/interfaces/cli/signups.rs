//! `onramp signups`: the review queue (list, show, approve, reject); `onramp signup domains
//! update FILE`: refresh the disposable-email list every server reads.

use clap::{Args, Subcommand};
use std::path::PathBuf;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::signups::{ApproveSignup, RejectSignup, SignupDetail, SignupQuery};
use crate::services::{Actor, ServiceError, Services};

/// The `signups` command group.
#[derive(Debug, Subcommand)]
pub enum SignupsCommand {
    /// List signups in a status (default review), oldest change first.
    List {
        /// review, approved, rejected, in_progress, abandoned or expired.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// One signup: its answers, risk score and reasons, and its decision.
    Show {
        /// The signup's id.
        signup_id: String,
    },
    /// Approve a signup in review: its customer is made through the onboarding run.
    Approve(ApproveArgs),
    /// Reject a signup in review, with the reason.
    Reject {
        /// The signup's id.
        signup_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// Arguments of `signups approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The signup's id.
    signup_id: String,
    /// The customer id to give (default: derived from the company name).
    #[arg(long)]
    customer_id: Option<String>,
    /// The tier to give (default: the template's).
    #[arg(long)]
    tier: Option<String>,
}

/// The `signup` command group: the product's signup settings.
#[derive(Debug, Subcommand)]
pub enum SignupCommand {
    /// The risk review's domain lists.
    #[command(subcommand)]
    Domains(DomainsCommand),
}

/// `signup domains`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Replace the disposable-email list (one domain per line, '#' comments, an optional
    /// '# list-date: YYYY-MM-DD' line) that every server sharing the registry reads.
    Update {
        /// The list file, such as disposable_email_blocklist.conf of the
        /// disposable-email-domains project.
        file: PathBuf,
    },
}

/// Runs a `signups` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: SignupsCommand) -> CliResult {
    match command {
        SignupsCommand::List {
            status,
            limit,
            format,
        } => {
            let list = s
                .signups
                .list(
                    actor,
                    &SignupQuery {
                        status,
                        limit: Some(limit),
                        cursor: None,
                    },
                )
                .await?;
            match format {
                Format::Json => output::json(&list.items),
                Format::Csv | Format::Table => {
                    let mut t = output::table(&[
                        "SIGNUP", "STATUS", "COMPANY", "EMAIL", "SCORE", "REASONS", "CUSTOMER",
                    ]);
                    for d in &list.items {
                        t.add_row([
                            d.signup_id.clone(),
                            d.status.to_string(),
                            d.company_name.clone(),
                            d.email.clone(),
                            d.score.map(|s| s.to_string()).unwrap_or_default(),
                            d.reasons
                                .iter()
                                .map(|r| r.signal.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            d.customer_id.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
        SignupsCommand::Show { signup_id } => {
            output::json(&s.signups.show(actor, &signup_id).await?);
            Ok(exit::OK)
        }
        SignupsCommand::Approve(a) => {
            let approved = s
                .signups
                .approve(
                    actor,
                    &a.signup_id,
                    &ApproveSignup {
                        customer_id: a.customer_id,
                        usage_tier: a.tier,
                    },
                )
                .await?;
            said(&approved.signup);
            println!(
                "onboarding {}: {}",
                approved.onboarding.run_id,
                if approved.onboarding.is_success {
                    "succeeded".to_owned()
                } else {
                    approved.onboarding.errors.join("; ")
                }
            );
            Ok(exit::OK)
        }
        SignupsCommand::Reject { signup_id, reason } => {
            let rejected = s
                .signups
                .reject(actor, &signup_id, &RejectSignup { reason })
                .await?;
            said(&rejected);
            Ok(exit::OK)
        }
    }
}

fn said(d: &SignupDetail) {
    println!(
        "signup {} ({}) is {}{}",
        d.signup_id,
        d.company_name,
        d.status,
        d.customer_id
            .as_ref()
            .map(|c| format!(": customer {c}"))
            .unwrap_or_default()
    );
}

/// Runs a `signup` command.
pub(super) async fn run_settings(s: &Services, actor: &Actor, command: SignupCommand) -> CliResult {
    match command {
        SignupCommand::Domains(DomainsCommand::Update { file }) => {
            const MAX_FILE: u64 = 64 * 1024 * 1024;
            let refuse = |code, message: String| -> CliResult {
                Err(ServiceError::Invalid(vec![
                    crate::domain::Invalid::new(code, message).at("file")
                ])
                .into())
            };
            let text = match std::fs::metadata(&file) {
                Err(e) => return refuse("unreadable", format!("{}: {e}", file.display())),
                Ok(m) if m.len() > MAX_FILE => {
                    return refuse(
                        "too_large",
                        format!("{} is larger than {MAX_FILE} bytes", file.display()),
                    )
                }
                Ok(_) => match std::fs::read_to_string(&file) {
                    Ok(text) => text,
                    Err(e) => return refuse("unreadable", format!("{}: {e}", file.display())),
                },
            };
            let (n, date) = s
                .signups
                .update_disposable_list(actor, &file.display().to_string(), &text)
                .await?;
            println!(
                "the disposable-email list now holds {n} domains (list of {}); every server reads it within a minute",
                date.as_deref().unwrap_or("no stated date")
            );
            Ok(exit::OK)
        }
    }
}
