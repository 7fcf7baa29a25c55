//! `onramp plans`: the product's catalog.

use clap::Subcommand;

use super::commands::CliResult;
use super::exit;
use super::output::{self, Format};
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
