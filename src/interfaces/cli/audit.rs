//! `onramp audit`: the event log: list events, verify every hash chain, count events by day,
//! show the event catalog.

use clap::{Args, Subcommand};

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::audit::AuditQuery;
use crate::services::{Actor, Services};

/// The `audit` command group.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List events, oldest first.
    List(AuditListArgs),
    /// Verify every hash chain and name the first broken link.
    Verify {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// The event catalog: every event type, its payload version and when it is appended.
    Catalog {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Events per UTC day and type, as the `outbox.event_counts` job has counted them.
    Counts {
        /// From this day on (YYYY-MM-DD).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Arguments of `audit list`.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only events about this customer.
    #[arg(long)]
    customer: Option<String>,
    /// Only events of this type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events before this time (RFC 3339).
    #[arg(long)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs an `audit` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::List(a) => {
            let q = AuditQuery {
                customer_id: a.customer,
                event_type: a.event_type,
                since: a.since,
                until: a.until,
                limit: Some(a.limit),
                cursor: None,
            };
            let list = s.audit.list(actor, &q).await?;
            match a.format {
                Format::Json => output::json(&list.items),
                Format::Csv => {
                    let mut w = csv::Writer::from_writer(std::io::stdout());
                    w.write_record([
                        "id",
                        "occurred_at",
                        "type",
                        "customer_id",
                        "actor",
                        "request_id",
                        "payload",
                        "hash",
                    ])
                    .map_err(anyhow::Error::from)?;
                    for e in &list.items {
                        w.write_record([
                            e.id.to_string(),
                            e.occurred_at.clone(),
                            e.event_type.clone(),
                            e.customer_id.clone().unwrap_or_default(),
                            e.actor.clone(),
                            e.request_id.clone().unwrap_or_default(),
                            e.payload_text.clone(),
                            e.hash.clone(),
                        ])
                        .map_err(anyhow::Error::from)?;
                    }
                    w.flush().map_err(anyhow::Error::from)?;
                }
                Format::Table => {
                    let mut t = output::table(&["ID", "TIME", "TYPE", "CUSTOMER", "ACTOR"]);
                    for e in &list.items {
                        t.add_row([
                            e.id.to_string(),
                            e.occurred_at.clone(),
                            e.event_type.clone(),
                            e.customer_id.clone().unwrap_or_else(|| "-".into()),
                            e.actor.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
        AuditCommand::Catalog { format } => {
            let catalog = crate::services::audit::event_catalog();
            match format {
                Format::Json => output::json(&catalog),
                _ => {
                    let mut t = output::table(&["EVENT TYPE", "VERSION", "APPENDED WHEN"]);
                    for e in &catalog {
                        t.add_row([
                            e.event_type.to_owned(),
                            e.version.to_string(),
                            e.description.clone(),
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
        AuditCommand::Counts { since, format } => {
            let counts = s.audit.counts(actor, since).await?;
            match format {
                Format::Json => output::json(&counts),
                _ => {
                    let mut t = output::table(&["DAY", "EVENT TYPE", "EVENTS"]);
                    for c in &counts {
                        t.add_row([c.day.clone(), c.event_type.clone(), c.events.to_string()]);
                    }
                    println!("{t}");
                }
            }
            Ok(exit::OK)
        }
        AuditCommand::Verify { format } => {
            let report = s.audit.verify().await?;
            match format {
                Format::Json => output::json(&report),
                _ => match &report.broken {
                    None => println!(
                        "✓ audit log verified: {} events in {} chains",
                        report.events_checked, report.chains
                    ),
                    Some(b) => println!(
                        "✗ audit log broken: chain '{}' at position {}{}: {}",
                        b.chain,
                        b.chain_seq,
                        b.event_id
                            .map(|id| format!(" (event {id})"))
                            .unwrap_or_default(),
                        b.reason
                    ),
                },
            }
            Ok(if report.ok { exit::OK } else { exit::INTEGRITY })
        }
    }
}
