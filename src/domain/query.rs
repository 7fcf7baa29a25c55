//! What a dataset query may be, as far as the statement shows: exactly one read-only query.
//! The database enforces the rest (a read-only connection or transaction, a role that sees
//! only the customer's own schema); this check gives a clear refusal for what is visible.

use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use super::Invalid;

/// Which SQL dialect the dataset speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// SQLite datasets.
    Sqlite,
    /// PostgreSQL datasets.
    Postgres,
}

/// The longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Checks a query and returns it without trailing semicolons, ready to run.
pub fn check_read_only(sql: &str, dialect: SqlDialect) -> Result<String, Invalid> {
    if sql.trim().is_empty() {
        return Err(Invalid::new("required", "sql is required"));
    }
    if sql.len() > MAX_QUERY_BYTES {
        return Err(Invalid::new(
            "too_long",
            format!("sql must be at most {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let parsed = match dialect {
        SqlDialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, sql),
        SqlDialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
    }
    .map_err(|e| Invalid::new("invalid_sql", format!("the query does not parse: {e}")))?;
    let statement = match parsed.as_slice() {
        [one] => one,
        [] => return Err(Invalid::new("required", "sql holds no statement")),
        many => {
            return Err(Invalid::new(
                "multiple_statements",
                format!("exactly one statement is allowed; found {}", many.len()),
            ))
        }
    };
    let Statement::Query(query) = statement else {
        return Err(Invalid::new(
            "not_read_only",
            "only a read-only query (SELECT, WITH ... SELECT or VALUES) is allowed",
        ));
    };
    if let SetExpr::Select(select) = query.body.as_ref() {
        if select.into.is_some() {
            return Err(Invalid::new(
                "not_read_only",
                "SELECT ... INTO writes a table and is not allowed",
            ));
        }
    }
    if !query.locks.is_empty() {
        return Err(Invalid::new(
            "not_read_only",
            "locking clauses (FOR UPDATE, FOR SHARE) are not allowed",
        ));
    }
    Ok(sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_only_query_passes() {
        for d in [SqlDialect::Sqlite, SqlDialect::Postgres] {
            assert_eq!(
                check_read_only("SELECT 1 AS test;", d).unwrap(),
                "SELECT 1 AS test"
            );
            assert!(check_read_only("WITH x AS (SELECT 1 AS a) SELECT a FROM x", d).is_ok());
            assert!(
                check_read_only("select count(*) from conversions where value > 10", d).is_ok()
            );
        }
    }

    #[test]
    fn writes_attachments_and_batches_are_refused() {
        let cases = [
            ("INSERT INTO conversions VALUES (1)", "not_read_only"),
            ("DELETE FROM conversions", "not_read_only"),
            ("DROP TABLE conversions", "not_read_only"),
            ("ATTACH DATABASE 'x.db' AS x", "not_read_only"),
            ("PRAGMA writable_schema = 1", "not_read_only"),
            ("SELECT 1; SELECT 2", "multiple_statements"),
            ("SELECT 1; DROP TABLE conversions", "multiple_statements"),
            ("SELEC 1", "invalid_sql"),
            ("", "required"),
        ];
        for (sql, code) in cases {
            assert_eq!(
                check_read_only(sql, SqlDialect::Sqlite).unwrap_err().code,
                code,
                "{sql}"
            );
        }
        assert_eq!(
            check_read_only("SELECT * INTO t2 FROM t", SqlDialect::Postgres)
                .unwrap_err()
                .code,
            "not_read_only"
        );
        assert_eq!(
            check_read_only("SELECT * FROM t FOR UPDATE", SqlDialect::Postgres)
                .unwrap_err()
                .code,
            "not_read_only"
        );
        assert_eq!(
            check_read_only(&"x".repeat(20_000), SqlDialect::Postgres)
                .unwrap_err()
                .code,
            "too_long"
        );
    }
}
