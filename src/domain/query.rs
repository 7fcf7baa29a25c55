//! What a dataset query may be, as far as the statement shows: exactly one read-only query that
//! names only the customer's own tables and calls no function that reaches outside them.
//!
//! This is the first of two fences. The second, which holds even against a statement this
//! check misreads, is the database itself: on PostgreSQL the query runs on a connection logged
//! in as the dataset's own role, in a read-only transaction; on SQLite on a read-only handle of
//! the dataset's file with an authorizer that allows only reads. This check exists to give a
//! clear refusal (`query_refused`) for the attempts that are visible in the text, before any
//! connection is taken.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, visit_relations, DataType, Expr, ObjectName, SetExpr, Statement,
};
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

/// How deeply expressions may nest; the parser refuses deeper ones instead of recursing.
const MAX_NESTING: usize = 50;

/// Why a query is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRejection {
    /// The text is not one well-formed read-only query (a validation error on `sql`).
    Invalid(Invalid),
    /// The query is well formed but reaches for something outside the customer's dataset
    /// (another schema, the catalog, the server's files, sessions or settings).
    Refused(String),
}

impl From<Invalid> for QueryRejection {
    fn from(e: Invalid) -> Self {
        QueryRejection::Invalid(e)
    }
}

/// Functions that read or act outside the dataset, by exact (lower-case) name.
const REFUSED_FUNCTIONS: &[&str] = &[
    "set_config",
    "ts_stat",
    "ts_rewrite",
    "current_setting",
    "dblink",
    "nextval",
    "setval",
    "currval",
    "lastval",
    "txid_current",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Prefixes of function names refused for the same reason: PostgreSQL's administration and
/// catalog functions (`pg_read_file`, `pg_cancel_backend`, `pg_advisory_lock`, `pg_sleep`...),
/// large objects, dblink, the functions that run a query string of their own
/// (`query_to_xml`, `table_to_xml`...), and name look-ups that reveal other schemas.
const REFUSED_FUNCTION_PREFIXES: &[&str] = &[
    "pg_",
    "lo_",
    "dblink",
    "query_to_",
    "table_to_",
    "cursor_to_",
    "schema_to_",
    "database_to_",
    "to_reg",
    "has_",
    "sqlite_",
];

/// Catalog functions that are harmless and common in analytics queries.
const ALLOWED_FUNCTIONS: &[&str] = &["pg_typeof"];

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| match p.as_ident() {
            Some(ident) => ident.value.to_lowercase(),
            None => p.to_string().to_lowercase(),
        })
        .unwrap_or_default()
}

/// Whether a function of this (unqualified, lower-case) name is refused.
fn refused_function_name(name: &str) -> bool {
    !ALLOWED_FUNCTIONS.contains(&name)
        && (REFUSED_FUNCTIONS.contains(&name)
            || REFUSED_FUNCTION_PREFIXES
                .iter()
                .any(|p| name.starts_with(p)))
}

fn function_refused(name: &ObjectName) -> Option<String> {
    // A schema-qualified call (`pg_catalog.f`, `other_schema.f`) is refused whatever `f` is.
    (name.0.len() > 1 || refused_function_name(&last_part(name))).then(|| {
        format!("the function {name} is not available to dataset queries: they may read only the customer's own tables")
    })
}

fn relation_refused(name: &ObjectName, dialect: SqlDialect) -> Option<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(ident) => ident.value.to_lowercase(),
            None => p.to_string().to_lowercase(),
        })
        .collect();
    let last = parts.last().cloned().unwrap_or_default();
    let own_schema = match (dialect, parts.len()) {
        (_, 1) => true,
        (SqlDialect::Sqlite, 2) => parts[0] == "main",
        _ => false,
    };
    let catalog = match dialect {
        SqlDialect::Postgres => last.starts_with("pg_") || last == "information_schema",
        SqlDialect::Sqlite => last.starts_with("pragma_") || last.starts_with("sqlite_temp"),
    };
    if !own_schema {
        Some(format!(
            "{name} is outside the customer's dataset: name the dataset's tables without a schema"
        ))
    } else if catalog {
        Some(format!(
            "{name} is a system catalog; dataset queries may read only the customer's own tables"
        ))
    } else if refused_function_name(&last) {
        // A table function in FROM (`FROM pg_ls_dir('.')`) is seen as a relation too.
        Some(format!(
            "{name} is not available to dataset queries: they may read only the customer's own tables"
        ))
    } else {
        None
    }
}

/// Casts to the object-identifier types (`'onramp.admin_tokens'::regclass`) look names up in
/// every schema.
fn cast_refused(data_type: &DataType) -> Option<String> {
    let text = data_type.to_string().to_lowercase();
    text.starts_with("reg")
        .then(|| format!("casts to {text} are not available to dataset queries"))
}

/// Whether `sql` holds `U&"` or `U&'` (any case, optionally spaced before the quote), the
/// start of a PostgreSQL Unicode-escaped identifier or string.
fn has_unicode_escape(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    bytes.windows(2).enumerate().any(|(i, w)| {
        w[0].eq_ignore_ascii_case(&b'u')
            && w[1] == b'&'
            && bytes[i + 2..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'"' || *b == b'\'')
    })
}

/// Checks a query and returns it without trailing semicolons, ready to run.
pub fn check_query(sql: &str, dialect: SqlDialect) -> Result<String, QueryRejection> {
    if sql.trim().is_empty() {
        return Err(Invalid::new("required", "sql is required").into());
    }
    if sql.len() > MAX_QUERY_BYTES {
        return Err(Invalid::new(
            "too_long",
            format!("sql must be at most {MAX_QUERY_BYTES} bytes"),
        )
        .into());
    }
    // A NUL ends the text for the database's own parser, which would then see a different
    // statement from the one checked here (SQLite's driver loops forever on what follows it).
    if sql.contains('\0') {
        return Err(Invalid::new("nul_byte", "sql must not contain a NUL character").into());
    }
    // PostgreSQL reads `U&"..."` (and `U&'...'`) with escapes decoded, where the parser here
    // sees an operator and an undecoded name: a way to spell a refused name past this check.
    if dialect == SqlDialect::Postgres && has_unicode_escape(sql) {
        return Err(QueryRejection::Refused(
            "Unicode-escaped names and strings (U&\"...\") are not available to dataset queries"
                .into(),
        ));
    }
    let parsed = match dialect {
        SqlDialect::Sqlite => Parser::new(&SQLiteDialect {})
            .with_recursion_limit(MAX_NESTING)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements()),
        SqlDialect::Postgres => Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(MAX_NESTING)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements()),
    }
    .map_err(|e| Invalid::new("invalid_sql", format!("the query does not parse: {e}")))?;
    let statement = match parsed.as_slice() {
        [one] => one,
        [] => return Err(Invalid::new("required", "sql holds no statement").into()),
        many => {
            return Err(Invalid::new(
                "multiple_statements",
                format!("exactly one statement is allowed; found {}", many.len()),
            )
            .into())
        }
    };
    let Statement::Query(query) = statement else {
        return Err(Invalid::new(
            "not_read_only",
            "only a read-only query (SELECT, WITH ... SELECT or VALUES) is allowed",
        )
        .into());
    };
    if let SetExpr::Select(select) = query.body.as_ref() {
        if select.into.is_some() {
            return Err(Invalid::new(
                "not_read_only",
                "SELECT ... INTO writes a table and is not allowed",
            )
            .into());
        }
    }
    if !query.locks.is_empty() {
        return Err(Invalid::new(
            "not_read_only",
            "locking clauses (FOR UPDATE, FOR SHARE) are not allowed",
        )
        .into());
    }
    if let ControlFlow::Break(reason) =
        visit_relations(statement, |name| match relation_refused(name, dialect) {
            Some(reason) => ControlFlow::Break(reason),
            None => ControlFlow::Continue(()),
        })
    {
        return Err(QueryRejection::Refused(reason));
    }
    if let ControlFlow::Break(reason) = visit_expressions(statement, |expr| {
        let refused = match expr {
            Expr::Function(f) => function_refused(&f.name),
            Expr::Cast { data_type, .. } => cast_refused(data_type),
            _ => None,
        };
        match refused {
            Some(reason) => ControlFlow::Break(reason),
            None => ControlFlow::Continue(()),
        }
    }) {
        return Err(QueryRejection::Refused(reason));
    }
    Ok(sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_code(sql: &str, d: SqlDialect) -> &'static str {
        match check_query(sql, d) {
            Err(QueryRejection::Invalid(e)) => e.code,
            other => panic!("{sql}: expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn one_read_only_query_passes() {
        for d in [SqlDialect::Sqlite, SqlDialect::Postgres] {
            assert_eq!(
                check_query("SELECT 1 AS test;", d).unwrap(),
                "SELECT 1 AS test"
            );
            assert!(check_query("WITH x AS (SELECT 1 AS a) SELECT a FROM x", d).is_ok());
            assert!(check_query("select count(*) from conversions where value > 10", d).is_ok());
            assert!(check_query(
                "SELECT c.day, sum(c.value) FROM conversions AS c GROUP BY c.day ORDER BY 1",
                d
            )
            .is_ok());
        }
        assert!(check_query("SELECT pg_typeof(1)", SqlDialect::Postgres).is_ok());
        assert!(check_query("SELECT * FROM main.conversions", SqlDialect::Sqlite).is_ok());
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
            ("SELECT 1 /* \0 */", "nul_byte"),
            ("SELECT 1 -- \0", "nul_byte"),
        ];
        for (sql, code) in cases {
            assert_eq!(invalid_code(sql, SqlDialect::Sqlite), code, "{sql}");
        }
        assert_eq!(
            invalid_code("SELECT * INTO t2 FROM t", SqlDialect::Postgres),
            "not_read_only"
        );
        assert_eq!(
            invalid_code("SELECT * FROM t FOR UPDATE", SqlDialect::Postgres),
            "not_read_only"
        );
        assert_eq!(
            invalid_code("SET ROLE postgres", SqlDialect::Postgres),
            "not_read_only"
        );
        assert_eq!(
            invalid_code(&"x".repeat(20_000), SqlDialect::Postgres),
            "too_long"
        );
        assert_eq!(
            invalid_code(
                &format!("SELECT {}1{}", "(".repeat(500), ")".repeat(500)),
                SqlDialect::Postgres
            ),
            "invalid_sql"
        );
    }

    #[test]
    fn reaching_outside_the_dataset_is_refused() {
        let postgres = [
            "SELECT set_config('role','none',true)",
            "SELECT query_to_xml('select * from onramp.admin_tokens',true,false,'')",
            "SELECT * FROM onramp.admin_tokens",
            "SELECT * FROM \"growthnav_other\".conversions",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_cancel_backend(1)",
            "SELECT pg_terminate_backend(1)",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_catalog.pg_advisory_lock(1)",
            "SELECT pg_sleep(100)",
            "SELECT * FROM pg_roles",
            "SELECT * FROM pg_stat_activity",
            "SELECT * FROM information_schema.tables",
            "SELECT 'onramp.admin_tokens'::regclass",
            "SELECT CAST('onramp' AS regnamespace)",
            "SELECT to_regclass('onramp.customers')",
            "SELECT dblink('dbname=postgres', 'select 1')",
            "SELECT current_setting('data_directory')",
            "SELECT (SELECT count(*) FROM onramp.customers)",
            "WITH x AS (SELECT * FROM onramp.customers) SELECT 1",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM pg_authid)",
            "SELECT public.f()",
            "SELECT U&\"pg\\005fadvisory\\005flock\"(1)",
            "SELECT u& \"query\\005fto\\005fxml\"('select 1', true, false, '')",
            "SELECT * FROM ts_stat('SELECT array_to_tsvector(array_agg(nspname::text)) FROM pg_namespace')",
        ];
        for sql in postgres {
            assert!(
                matches!(
                    check_query(sql, SqlDialect::Postgres),
                    Err(QueryRejection::Refused(_))
                ),
                "{sql}: {:?}",
                check_query(sql, SqlDialect::Postgres)
            );
        }
        for sql in [
            "SELECT load_extension('x')",
            "SELECT * FROM other.conversions",
            "SELECT sqlite_compileoption_get(0)",
        ] {
            assert!(
                matches!(
                    check_query(sql, SqlDialect::Sqlite),
                    Err(QueryRejection::Refused(_))
                ),
                "{sql}"
            );
        }
    }
}
