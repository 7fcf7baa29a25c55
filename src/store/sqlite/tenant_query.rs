//! A customer's query on a SQLite dataset, confined by SQLite itself.
//!
//! The query runs through `rusqlite` rather than the registry's sqlx driver because only the C
//! API has the controls SQLite documents for running untrusted SQL, and rusqlite exposes them
//! safely: an authorizer that allows reads and nothing else (no `ATTACH`, no `PRAGMA`, no
//! writes, no extension loading), `sqlite3_limit` bounds on the size of any value and of the
//! statement, a progress handler that stops the query at its deadline, and an interrupt handle
//! for the caller's own deadline. The file is opened read-only on a blocking thread of its own,
//! and closed when the query ends, so nothing outlives it.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::domain::query::MAX_QUERY_BYTES;
use crate::product::QueryLimits;
use crate::store::datasets::{DatasetError, QueryResult, ResultCollector};

/// The most columns a query's result may have.
const MAX_COLUMNS: i32 = 64;
/// SQLite queries running at once in this process; each holds a blocking thread, and a
/// statement SQLite cannot interrupt holds it past the deadline, so they are bounded.
const CONCURRENT_QUERIES: usize = 4;
static QUERY_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_QUERIES);

/// Functions a dataset query may never call, even where the statement check missed them.
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "readfile", "writefile", "edit"];

/// What the authorizer allows: reading the dataset's own tables and calling ordinary
/// functions. Everything else is refused while the statement is prepared.
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Read { .. } if matches!(ctx.database_name, Some("main") | None) => {
            Authorization::Allow
        }
        AuthAction::Function { function_name }
            if !DENIED_FUNCTIONS.contains(&function_name.to_ascii_lowercase().as_str()) =>
        {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

/// Opens `path` read-only with the confinement above.
fn open(path: &Path, limits: QueryLimits, deadline: Instant) -> Result<Connection, DatasetError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DatasetError::Transient(e.to_string()))?;
    let max_value = i32::try_from(limits.max_bytes).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, max_value);
    conn.set_limit(
        Limit::SQLITE_LIMIT_SQL_LENGTH,
        i32::try_from(MAX_QUERY_BYTES).unwrap_or(i32::MAX),
    );
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    // Bounds what one result row can make SQLite hold: at most this many values, each at most
    // the byte bound.
    conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, MAX_COLUMNS);
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, 100);
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, 50);
    conn.set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, 32);
    conn.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1_000);
    conn.set_limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 0);
    conn.busy_timeout(Duration::from_millis(limits.timeout_ms.min(5_000)))
        .map_err(|e| DatasetError::Transient(e.to_string()))?;
    conn.authorizer(Some(authorize));
    conn.progress_handler(1_000, Some(move || Instant::now() >= deadline));
    Ok(conn)
}

fn refused(e: rusqlite::Error, limits: QueryLimits) -> DatasetError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message) => match f.code {
            ErrorCode::OperationInterrupted => DatasetError::QueryTimeout(limits.timeout_ms),
            ErrorCode::TooBig => DatasetError::QueryRefused(format!(
                "a value in the result would be larger than {} bytes",
                limits.max_bytes
            )),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                DatasetError::Transient(e.to_string())
            }
            ErrorCode::AuthorizationForStatementDenied => DatasetError::QueryRefused(
                "the query reaches for something other than the dataset's own tables".into(),
            ),
            _ => DatasetError::QueryRefused(message.clone().unwrap_or_else(|| e.to_string())),
        },
        rusqlite::Error::MultipleStatement => {
            DatasetError::QueryRefused("exactly one statement is allowed".into())
        }
        _ => DatasetError::QueryRefused(e.to_string()),
    }
}

/// The bytes a cell adds to the answer, without converting it.
fn size_of(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Null => 4,
        ValueRef::Integer(_) => 20,
        ValueRef::Real(_) => 24,
        ValueRef::Text(t) => t.len() + 2,
        ValueRef::Blob(b) => b.len().div_ceil(3) * 4 + 2,
    }
}

/// The JSON value of a cell (its size is [`size_of`]).
fn cell(value: ValueRef<'_>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b,
        )),
    }
}

fn run(conn: &Connection, sql: &str, limits: QueryLimits) -> Result<QueryResult, DatasetError> {
    let mut statement = conn.prepare(sql).map_err(|e| refused(e, limits))?;
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut out = ResultCollector::new(columns, limits);
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next().map_err(|e| refused(e, limits))? {
        if !out.admits(0) {
            break;
        }
        let mut values = Vec::with_capacity(out.width());
        let mut row_bytes = 2;
        for i in 0..out.width() {
            let raw = row.get_ref(i).map_err(|e| refused(e, limits))?;
            // Sized before it is copied, so a row past the bound is never built.
            row_bytes += size_of(raw);
            if row_bytes > out.bytes_left() {
                break;
            }
            values.push(cell(raw));
        }
        if values.len() < out.width() || !out.admits(row_bytes) {
            out.truncate();
            break;
        }
        out.push(values, row_bytes);
    }
    Ok(out.finish())
}

/// Runs a checked query on the dataset file at `path`, on a blocking thread, answering within
/// the query's time limit (plus a second for the thread to stop) whatever the statement does.
pub async fn query(
    path: &Path,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryResult, DatasetError> {
    let wait = Duration::from_millis(limits.timeout_ms);
    let Ok(Ok(slot)) = tokio::time::timeout(wait, QUERY_SLOTS.acquire()).await else {
        return Err(DatasetError::Transient(
            "every dataset query slot is busy; retry shortly".into(),
        ));
    };
    let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
    let path = path.to_owned();
    let sql = sql.to_owned();
    let (handle_tx, mut handle_rx) = tokio::sync::oneshot::channel();
    let task = tokio::task::spawn_blocking(move || {
        // The slot is held by the thread, so it is free again only when SQLite has stopped.
        let _slot = slot;
        let conn = open(&path, limits, deadline)?;
        let _ = handle_tx.send(conn.get_interrupt_handle());
        run(&conn, &sql, limits)
    });
    let grace = Duration::from_millis(limits.timeout_ms) + Duration::from_secs(1);
    match tokio::time::timeout(grace, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(DatasetError::Permanent(format!(
            "the query's thread failed: {join}"
        ))),
        Err(_) => {
            // The progress handler did not stop it (the statement is outside the virtual
            // machine, e.g. sorting in one step): interrupt it from here.
            if let Ok(handle) = handle_rx.try_recv() {
                handle.interrupt();
            }
            Err(DatasetError::QueryTimeout(limits.timeout_ms))
        }
    }
}
