//! `onramp plans`, `onramp trials` and `onramp test-clocks`: the product's catalog, customers'
//! trials, and the simulated clocks they can run on outside production.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::services::billing::{AdvanceTestClock, ExtendTrial, NewTestClock, StartTrial};
use crate::services::{Actor, Services};

/// The `plans` command group.
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// The plans with their monthly prices, cycles and limits.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs a `plans` command.
pub(super) async fn run(s: &Services, actor: &Actor, command: PlansCommand) -> CliResult {
    match command {
        PlansCommand::List { format } => {
            let list = s.billing.plans(actor);
            if format == Format::Json {
                output::json(&list);
                return Ok(exit::OK);
            }
            let header = ["PLAN", "NAME", "MONTHLY", "CYCLES", "LIMITS"];
            let rows = list.items.iter().map(|p| {
                let prices = if p.free {
                    "free".to_owned()
                } else {
                    p.prices
                        .iter()
                        .map(|(c, a)| format!("{c} {}", minor(*a)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let cycles = p
                    .cycles
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let limits = p
                    .limits
                    .iter()
                    .map(|(m, v)| match v {
                        serde_json::Value::Null => format!("{m} unlimited"),
                        v => format!("{m} {v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![p.id.clone(), p.name.clone(), prices, cycles, limits]
            });
            if format == Format::Csv {
                output::csv_rows(&header, rows)?;
            } else {
                let mut t = output::table(&header);
                for r in rows {
                    t.add_row(r);
                }
                println!("{t}");
            }
            Ok(exit::OK)
        }
    }
}

/// An amount in minor units with two decimals (`49900` is `499.00`).
fn minor(a: i64) -> String {
    format!("{}.{:02}", a / 100, a % 100)
}

/// The `trials` command group.
#[derive(Debug, Subcommand)]
pub enum TrialsCommand {
    /// Start a customer's trial (pending until the product's activate_on happens).
    Start {
        /// The customer.
        customer_id: String,
        /// The plan (default: the product's trial plan).
        #[arg(long)]
        plan: Option<String>,
        /// Days (default: the product's).
        #[arg(long)]
        days: Option<i64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A customer's trial.
    Show {
        /// The customer.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Start a pending trial's clock now.
    Activate {
        /// The customer.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Give a trial more days.
    Extend {
        /// The customer.
        customer_id: String,
        /// Days to add.
        #[arg(long)]
        days: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs a `trials` command.
pub(super) async fn run_trials(s: &Services, actor: &Actor, command: TrialsCommand) -> CliResult {
    let (trial, format) = match command {
        TrialsCommand::Start {
            customer_id,
            plan,
            days,
            format,
        } => (
            s.billing
                .start_trial(actor, &customer_id, &StartTrial { plan, days })
                .await?,
            format,
        ),
        TrialsCommand::Show {
            customer_id,
            format,
        } => (s.billing.trial(actor, &customer_id).await?, format),
        TrialsCommand::Activate {
            customer_id,
            format,
        } => (s.billing.activate_trial(actor, &customer_id).await?, format),
        TrialsCommand::Extend {
            customer_id,
            days,
            reason,
            format,
        } => (
            s.billing
                .extend_trial(
                    actor,
                    &customer_id,
                    &ExtendTrial {
                        days: Some(days),
                        reason: Some(reason),
                    },
                )
                .await?,
            format,
        ),
    };
    if format == Format::Json {
        output::json(&trial);
    } else {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or("-".to_owned(), |t| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
        };
        println!(
            "trial {} of {} on {}: {} ({} days, {} extension(s) left); ends {}; next: {}",
            trial.trial_id,
            trial.customer_id,
            trial.plan,
            trial.status.as_str(),
            trial.days,
            trial.extensions_left,
            time(trial.ends_at),
            trial
                .next
                .as_ref()
                .map_or("nothing".to_owned(), |n| format!(
                    "{} at {}",
                    serde_json::to_value(n.work)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    time(Some(n.at))
                ))
        );
    }
    Ok(exit::OK)
}

/// The `test-clocks` command group.
#[derive(Debug, Subcommand)]
pub enum TestClocksCommand {
    /// Make a test clock at a time (RFC 3339).
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// The time it starts at (`2026-02-12T10:00:00Z`).
        #[arg(long)]
        frozen_time: String,
    },
    /// The test clocks.
    List,
    /// Move a test clock forward, doing its customers' billing work on the way.
    Advance {
        /// The clock.
        test_clock_id: String,
        /// The time to move it to.
        #[arg(long)]
        to: String,
    },
}

/// Runs a `test-clocks` command.
pub(super) async fn run_clocks(
    s: &Services,
    actor: &Actor,
    command: TestClocksCommand,
) -> CliResult {
    let show = |c: &crate::services::billing::TestClockView| {
        println!(
            "{} {} at {}{}",
            c.test_clock_id,
            c.name,
            c.frozen_time
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            c.work_done.map_or(String::new(), |n| format!(
                " ({n} piece(s) of billing work done)"
            ))
        );
    };
    match command {
        TestClocksCommand::Create { name, frozen_time } => {
            let c = s
                .billing
                .create_test_clock(
                    actor,
                    &NewTestClock {
                        frozen_time: Some(frozen_time),
                        name: Some(name),
                    },
                )
                .await?;
            show(&c);
        }
        TestClocksCommand::List => {
            for c in s.billing.test_clocks(actor).await?.items {
                show(&c);
            }
        }
        TestClocksCommand::Advance { test_clock_id, to } => {
            let c = s
                .billing
                .advance_test_clock(actor, &test_clock_id, &AdvanceTestClock { to: Some(to) })
                .await?;
            show(&c);
        }
    }
    Ok(exit::OK)
}
