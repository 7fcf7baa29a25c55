//! `onramp plans`, `onramp trials` and `onramp test-clocks`: the product's catalog, customers'
//! trials, and the simulated clocks they can run on outside production.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
use crate::domain::subscription::{ScheduledChange, When};
use crate::services::billing::{
    AdvanceTestClock, CancelSubscription, ChangeSubscription, ExtendTrial, NewSubscription,
    NewTestClock, PreviewQuery, StartTrial, SubscriptionView,
};
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

/// An amount in minor units with two decimals (`49900` is `499.00`, `-150` is `-1.50`).
fn minor(a: i64) -> String {
    let sign = if a < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", (a / 100).abs(), (a % 100).abs())
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
    /// Convert a trial into a subscription.
    Convert {
        /// The customer.
        customer_id: String,
        /// The plan.
        #[arg(long)]
        plan: String,
        /// One of the plan's cycles.
        #[arg(long)]
        cycle: String,
        /// The currency, when the plans are priced in several.
        #[arg(long)]
        currency: Option<String>,
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
        TrialsCommand::Convert {
            customer_id,
            plan,
            cycle,
            currency,
        } => {
            let req = NewSubscription {
                plan: Some(plan),
                cycle: Some(cycle),
                currency,
            };
            let sub = s.billing.convert_trial(actor, &customer_id, &req).await?;
            print_subscription(&sub, Format::Table);
            return Ok(exit::OK);
        }
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

/// The `subscriptions` command group.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Subscribe a customer (a trial it has running is converted).
    Create {
        /// The customer.
        customer_id: String,
        /// The plan.
        #[arg(long)]
        plan: String,
        /// One of the plan's cycles.
        #[arg(long)]
        cycle: String,
        /// The currency, when the plans are priced in several.
        #[arg(long)]
        currency: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A customer's subscription.
    Show {
        /// The customer.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// What a change made now would cost, without making it.
    Preview {
        /// The customer.
        customer_id: String,
        /// The plan (default: the current one).
        #[arg(long)]
        plan: Option<String>,
        /// The cycle (default: the current one).
        #[arg(long)]
        cycle: Option<String>,
    },
    /// Change the plan or cycle now (prorated) or at the period's end.
    Change {
        /// The customer.
        customer_id: String,
        /// The plan (default: the current one).
        #[arg(long)]
        plan: Option<String>,
        /// The cycle (default: the current one).
        #[arg(long)]
        cycle: Option<String>,
        /// now or period-end.
        #[arg(long, value_enum)]
        when: WhenArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Cancel now or at the period's end.
    Cancel {
        /// The customer.
        customer_id: String,
        /// now or period-end.
        #[arg(long, value_enum)]
        when: WhenArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Withdraw what was scheduled for the period's end (a change or a cancellation).
    Unschedule {
        /// The customer.
        customer_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WhenArg {
    /// At once.
    Now,
    /// At the end of the current period.
    PeriodEnd,
}

impl From<WhenArg> for When {
    fn from(w: WhenArg) -> When {
        match w {
            WhenArg::Now => When::Now,
            WhenArg::PeriodEnd => When::PeriodEnd,
        }
    }
}

fn print_subscription(s: &SubscriptionView, format: Format) {
    if format == Format::Json {
        output::json(s);
        return;
    }
    let pending = match &s.pending_change {
        None => String::new(),
        Some(ScheduledChange::Cancel) => "; cancels at the period's end".to_owned(),
        Some(ScheduledChange::Change { plan, cycle }) => {
            format!("; changes to {plan} ({cycle}) at the period's end")
        }
    };
    println!(
        "subscription {} of {}: {} on {} ({}), {} {} a period; period {} to {}{pending}",
        s.subscription_id,
        s.customer_id,
        s.status.as_str(),
        s.plan,
        s.cycle,
        s.currency,
        minor(s.price_per_period),
        s.current_period_start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        s.current_period_end
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
}

/// Runs a `subscriptions` command.
pub(super) async fn run_subscriptions(
    s: &Services,
    actor: &Actor,
    command: SubscriptionsCommand,
) -> CliResult {
    let b = &s.billing;
    match command {
        SubscriptionsCommand::Create {
            customer_id,
            plan,
            cycle,
            currency,
            format,
        } => {
            let req = NewSubscription {
                plan: Some(plan),
                cycle: Some(cycle),
                currency,
            };
            print_subscription(&b.subscribe(actor, &customer_id, &req).await?, format);
        }
        SubscriptionsCommand::Show {
            customer_id,
            format,
        } => print_subscription(&b.subscription(actor, &customer_id).await?, format),
        SubscriptionsCommand::Preview {
            customer_id,
            plan,
            cycle,
        } => {
            let p = b
                .preview_change(actor, &customer_id, &PreviewQuery { plan, cycle })
                .await?;
            let mut t = output::table(&["LINE", "FROM", "TO", "AMOUNT"]);
            for l in &p.lines {
                t.add_row([
                    l.description.clone(),
                    l.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    l.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    format!("{} {}", p.currency, minor(l.amount)),
                ]);
            }
            t.add_row([
                "total".to_owned(),
                String::new(),
                String::new(),
                format!("{} {}", p.currency, minor(p.total)),
            ]);
            println!("{t}");
        }
        SubscriptionsCommand::Change {
            customer_id,
            plan,
            cycle,
            when,
            format,
        } => {
            let req = ChangeSubscription {
                plan,
                cycle,
                when: Some(when.into()),
            };
            print_subscription(
                &b.change_subscription(actor, &customer_id, &req).await?,
                format,
            );
        }
        SubscriptionsCommand::Cancel {
            customer_id,
            when,
            format,
        } => {
            let req = CancelSubscription {
                when: Some(when.into()),
            };
            print_subscription(
                &b.cancel_subscription(actor, &customer_id, &req).await?,
                format,
            );
        }
        SubscriptionsCommand::Unschedule {
            customer_id,
            format,
        } => {
            print_subscription(
                &b.unschedule_subscription(actor, &customer_id).await?,
                format,
            );
        }
    }
    Ok(exit::OK)
}
