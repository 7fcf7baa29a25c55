//! Uploaded files as rows for a dataset table: a CSV file with a header row naming table
//! columns, each value checked against its column's type and turned into a [`Cell`]. Every bad
//! value is reported (up to [`MAX_ERRORS`]) with its row and column, so a customer can fix the
//! file in one pass; a file with any error loads nothing.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use super::{FieldError, Invalid};

/// At most this many problems are reported for one file.
pub const MAX_ERRORS: usize = 20;

/// One typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An empty field.
    Null,
    /// `text`.
    Text(String),
    /// `integer`.
    Integer(i64),
    /// `real`.
    Real(f64),
    /// `numeric`, kept as its exact decimal text.
    Numeric(String),
    /// `boolean`.
    Boolean(bool),
    /// `date`.
    Date(NaiveDate),
    /// `timestamp`, in UTC.
    Timestamp(DateTime<Utc>),
    /// `json`, as compact JSON text.
    Json(String),
}

impl Cell {
    /// The value as canonical text (what a text-typed placeholder binds), or `None` for null.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(s) | Cell::Numeric(s) | Cell::Json(s) => Some(s.clone()),
            Cell::Integer(i) => Some(i.to_string()),
            Cell::Real(f) => Some(f.to_string()),
            Cell::Boolean(b) => Some(b.to_string()),
            Cell::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
            Cell::Timestamp(t) => Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

/// A checked file: the columns its header names, in order, with their types, and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Table columns, in the file's order.
    pub columns: Vec<String>,
    /// The product type of each of `columns`.
    pub types: Vec<String>,
    /// One cell per column per row.
    pub rows: Vec<Vec<Cell>>,
}

fn parse_cell(raw: &str, column_type: &str) -> Result<Cell, &'static str> {
    if raw.is_empty() {
        return Ok(Cell::Null);
    }
    let t = raw.trim();
    match column_type {
        "integer" => t
            .parse::<i64>()
            .map(Cell::Integer)
            .map_err(|_| "must be a whole number"),
        "real" => match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Cell::Real(f)),
            _ => Err("must be a number"),
        },
        "numeric" => {
            let digits = t.strip_prefix('-').unwrap_or(t);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
            let ok = !int.is_empty()
                && !frac.is_empty()
                && int.len() + frac.len() <= 60
                && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
            if ok {
                Ok(Cell::Numeric(t.to_owned()))
            } else {
                Err("must be a decimal number such as 12.50")
            }
        }
        "boolean" => match t.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Ok(Cell::Boolean(true)),
            "false" | "f" | "no" | "0" => Ok(Cell::Boolean(false)),
            _ => Err("must be true or false"),
        },
        "date" => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(Cell::Date)
            .map_err(|_| "must be a date, YYYY-MM-DD"),
        "timestamp" => DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
                    .map(|n| n.and_utc())
            })
            .map(Cell::Timestamp)
            .map_err(|_| {
                "must be a timestamp, RFC 3339 (2026-01-31T09:30:00Z) or UTC without an offset"
            }),
        "json" => serde_json::from_str::<serde_json::Value>(t)
            .map(|v| Cell::Json(v.to_string()))
            .map_err(|_| "must be JSON"),
        _ => Ok(Cell::Text(raw.to_owned())),
    }
}

/// Reads a CSV file for a table whose columns are `(name, type)`. The header names a subset of
/// the columns in any order (the others stay null); every row has the header's field count.
/// Refuses: a file that is not UTF-8, no header or no rows, an unknown or repeated column, more
/// than `max_rows` rows, a row of the wrong width, a value not of its column's type.
pub fn parse_csv(
    bytes: &[u8],
    table: &str,
    columns: &[(&str, &str)],
    max_rows: usize,
) -> Result<Rows, Vec<FieldError>> {
    let refuse = |code: &'static str, message: String| vec![Invalid::new(code, message).at("body")];
    let text = std::str::from_utf8(bytes)
        .map_err(|e| refuse("invalid_encoding", format!("the file must be UTF-8 ({e})")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| {
            refuse(
                "malformed_csv",
                format!("the header row cannot be read: {e}"),
            )
        })?
        .clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(refuse(
            "missing_header",
            format!("the first row must name columns of table '{table}'"),
        ));
    }
    let mut errors = Vec::new();
    let mut types = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let h = h.trim();
        match columns.iter().find(|(name, _)| *name == h) {
            None => errors.push(
                Invalid::new(
                    "unknown_column",
                    format!(
                        "table '{table}' has no column '{h}'; its columns are {}",
                        columns
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .at(format!("header[{i}]")),
            ),
            Some(_) if names.iter().any(|n| n == h) => errors.push(
                Invalid::new("duplicate", format!("column '{h}' is named twice"))
                    .at(format!("header[{i}]")),
            ),
            Some((name, ty)) => {
                names.push((*name).to_owned());
                types.push(*ty);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row_no = n + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(
                    Invalid::new("malformed_csv", format!("row {row_no} cannot be read: {e}"))
                        .at(format!("rows[{row_no}]")),
                );
                break;
            }
        };
        if row_no > max_rows {
            return Err(refuse(
                "too_many_rows",
                format!("an upload may carry at most {max_rows} rows"),
            ));
        }
        if record.len() != names.len() {
            errors.push(
                Invalid::new(
                    "wrong_field_count",
                    format!(
                        "row {row_no} has {} fields; the header has {}",
                        record.len(),
                        names.len()
                    ),
                )
                .at(format!("rows[{row_no}]")),
            );
        } else {
            let mut cells = Vec::with_capacity(names.len());
            for ((raw, name), ty) in record.iter().zip(&names).zip(&types) {
                match parse_cell(raw, ty) {
                    Ok(c) => cells.push(c),
                    Err(rule) => errors.push(
                        Invalid::new("invalid_value", format!("row {row_no}: {name} {rule}"))
                            .at(format!("rows[{row_no}].{name}")),
                    ),
                }
            }
            if cells.len() == names.len() {
                rows.push(cells);
            }
        }
        if errors.len() >= MAX_ERRORS {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if rows.is_empty() {
        return Err(refuse(
            "no_rows",
            "the file has a header but no rows".to_owned(),
        ));
    }
    Ok(Rows {
        columns: names,
        types: types.into_iter().map(str::to_owned).collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[(&str, &str)] = &[
        ("conversion_id", "text"),
        ("occurred_at", "timestamp"),
        ("value", "numeric"),
        ("clicks", "integer"),
        ("day", "date"),
        ("ok", "boolean"),
    ];

    #[test]
    fn typed_rows_in_the_header_order() {
        let csv = "value,conversion_id,occurred_at,clicks,day,ok\n\
                   12.50,c1,2026-01-31T09:30:00+01:00,3,2026-01-31,true\n\
                   -1,\"c,2\",2026-02-01 10:00:00,,2026-02-01,0\n";
        let rows = parse_csv(csv.as_bytes(), "t", COLS, 100).unwrap();
        assert_eq!(
            rows.columns,
            [
                "value",
                "conversion_id",
                "occurred_at",
                "clicks",
                "day",
                "ok"
            ]
        );
        assert_eq!(rows.rows[0][0], Cell::Numeric("12.50".into()));
        assert_eq!(rows.rows[0][2].as_text().unwrap(), "2026-01-31T08:30:00Z");
        assert_eq!(rows.rows[0][3], Cell::Integer(3));
        assert_eq!(rows.rows[1][1], Cell::Text("c,2".into()));
        assert_eq!(rows.rows[1][3], Cell::Null);
        assert_eq!(rows.rows[1][5], Cell::Boolean(false));
    }

    #[test]
    fn every_bad_value_is_named_by_row_and_column() {
        let csv = "conversion_id,clicks,day\nc1,three,2026-01-31\nc2,4,31/01/2026\nc3,5\n";
        let errors = parse_csv(csv.as_bytes(), "t", COLS, 100).unwrap_err();
        let fields: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            fields,
            [
                ("rows[1].clicks", "invalid_value"),
                ("rows[2].day", "invalid_value"),
                ("rows[3]", "wrong_field_count"),
            ]
        );
        assert!(errors[0].message.contains("whole number"));
    }

    #[test]
    fn the_header_must_name_known_columns_once() {
        let e = parse_csv(b"conversion_id,secret\nx,y\n", "t", COLS, 10).unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].code),
            ("header[1]", "unknown_column")
        );
        let e = parse_csv(b"clicks,clicks\n1,2\n", "t", COLS, 10).unwrap_err();
        assert_eq!(e[0].code, "duplicate");
        let e = parse_csv(b"", "t", COLS, 10).unwrap_err();
        assert_eq!(e[0].code, "missing_header");
        let e = parse_csv(b"clicks\n", "t", COLS, 10).unwrap_err();
        assert_eq!(e[0].code, "no_rows");
        let e = parse_csv(b"clicks\n1\n2\n3\n", "t", COLS, 2).unwrap_err();
        assert_eq!(e[0].code, "too_many_rows");
        let e = parse_csv(b"clicks\n\xff\n", "t", COLS, 2).unwrap_err();
        assert_eq!(e[0].code, "invalid_encoding");
    }
}
