//! Output for people (tables) and for scripts (`--format json|csv`).

use clap::ValueEnum;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::services::views::CustomerView;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The API's JSON.
    Json,
    /// A header row and one row per record.
    Csv,
}

/// Prints any value as pretty JSON.
pub fn json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

/// Prints a header row and one row per record as CSV on stdout.
pub fn csv_rows(
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(header)?;
    for row in rows {
        w.write_record(row)?;
    }
    w.flush()?;
    Ok(())
}

/// A table with the house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

const CSV_HEADER: &[&str] = &[
    "customer_id",
    "customer_name",
    "industry",
    "status",
    "data_store",
    "dataset_id",
    "usage_tier",
    "tags",
    "contact_email",
    "created_by",
    "created_at",
    "updated_at",
    "source",
    "attributes",
];

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// Prints customers in the chosen format.
pub fn customers(items: &[CustomerView], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => json(&items),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(CSV_HEADER)?;
            for c in items {
                w.write_record([
                    c.customer_id.clone(),
                    c.customer_name.clone(),
                    opt(&c.industry),
                    c.status.to_string(),
                    opt(&c.data_store),
                    opt(&c.dataset_id),
                    opt(&c.usage_tier),
                    c.tags.join(";"),
                    opt(&c.contact.email),
                    opt(&c.created_by),
                    c.created_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    c.updated_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    serde_json::to_value(c.source)?
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    serde_json::to_string(&c.attributes)?,
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut t = table(&[
                "CUSTOMER ID",
                "NAME",
                "INDUSTRY",
                "STATUS",
                "TIER",
                "TAGS",
                "CREATED",
            ]);
            for c in items {
                t.add_row([
                    c.customer_id.clone(),
                    c.customer_name.clone(),
                    opt(&c.industry),
                    c.status.to_string(),
                    opt(&c.usage_tier),
                    c.tags.join(", "),
                    c.created_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                ]);
            }
            println!("{t}");
            println!("{} customer(s)", items.len());
        }
    }
    Ok(())
}

/// Prints one customer in the chosen format.
pub fn customer(c: &CustomerView, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let mut t = table(&["FIELD", "VALUE"]);
            let v = serde_json::to_value(c)?;
            for (k, val) in v.as_object().into_iter().flatten() {
                let text = match val {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                t.add_row([k.clone(), text]);
            }
            println!("{t}");
            Ok(())
        }
        Format::Json => {
            json(c);
            Ok(())
        }
        Format::Csv => customers(std::slice::from_ref(c), format),
    }
}
