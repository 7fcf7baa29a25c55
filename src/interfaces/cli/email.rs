//! `onramp email`: send a test message through the configured SMTP server, and read the
//! delivery log.

use clap::{Args, Subcommand};

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::email::EmailQuery;
use crate::services::{Actor, Services};

/// The `email` command group.
#[derive(Debug, Subcommand)]
pub enum EmailCommand {
    /// Send a test message to ADDRESS now, through ONRAMP_SMTP_URL, and say how it went.
    Test {
        /// Where to send it.
        address: String,
    },
    /// The delivery log, newest first.
    Log(EmailLogArgs),
}

/// Arguments of `email log`.
#[derive(Debug, Args)]
pub struct EmailLogArgs {
    /// Only this customer's messages.
    #[arg(long)]
    customer: Option<String>,
    /// Only this signup's messages.
    #[arg(long)]
    signup: Option<String>,
    /// Only messages in this status (queued, sent, failed, skipped).
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs an `email` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: EmailCommand) -> CliResult {
    match command {
        EmailCommand::Test { address } => {
            let sent = s.email.send_test(actor, &address).await?;
            println!(
                "sent a test message to {} through {} (Message-ID {})",
                sent.recipient,
                s.email.server().unwrap_or_default(),
                sent.message_id.unwrap_or_default()
            );
            Ok(exit::OK)
        }
        EmailCommand::Log(a) => {
            let q = EmailQuery {
                customer_id: a.customer,
                signup_id: a.signup,
                status: a.status,
                limit: Some(a.limit),
                cursor: None,
            };
            let list = s.email.log(actor, &q).await?;
            match a.format {
                Format::Json => output::json(&list.items),
                Format::Csv | Format::Table => {
                    let mut t = output::table(&[
                        "ID", "QUEUED", "MESSAGE", "TO", "STATUS", "TRIES", "ERROR",
                    ]);
                    for e in &list.items {
                        t.add_row([
                            e.email_id.clone(),
                            e.created_at
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            e.kind.to_string(),
                            e.recipient.clone(),
                            e.status.to_string(),
                            e.attempts.to_string(),
                            e.last_error.clone().unwrap_or_default(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
    }
}
