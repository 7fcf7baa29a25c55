//! SQLite datasets: one database file per customer, `<dir>/<dataset_id>.db`.
//!
//! Customers' queries run on a read-only handle of that one file with an authorizer that allows
//! only reads (see `tenant_query`), so a query can reach nothing but the customer's own tables;
//! verification's own fixed statements run through sqlx on the provisioning connection.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    Column, ConnectOptions, Connection, Executor, Row, SqliteConnection, Statement, TypeInfo,
    ValueRef,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::query::SqlDialect;
use crate::domain::upload::{Cell, Rows};
use crate::product::QueryLimits;
use crate::store::datasets::{
    classify, columns_by_table, create_table_sql, insert_sql, query_refusal, quote,
    rows_per_insert, DatasetBackend, DatasetError, DatasetSpec, QueryResult, ReaderPassword,
    ResultCollector,
};

/// Datasets as SQLite files in one directory.
pub struct SqliteDatasets {
    dir: PathBuf,
    /// Connections that just provisioned a dataset, kept for its verification (the next step
    /// of an onboarding) so that verifying does not open the file again: opening a connection
    /// starts a driver thread and costs more than the DDL's statements. Only verification takes
    /// them; customers' queries always open the file read-only.
    provisioned: Mutex<Vec<(String, SqliteConnection, Instant)>>,
}

/// At most this many provisioning connections wait for their verification.
const KEPT_CONNECTIONS: usize = 4;
/// A provisioning connection not taken within this long is closed.
const KEPT_FOR: Duration = Duration::from_secs(30);

impl SqliteDatasets {
    /// Datasets in `dir` (created on first provisioning).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            provisioned: Mutex::new(Vec::new()),
        }
    }

    fn keep(&self, dataset_id: &str, conn: SqliteConnection) {
        let mut kept = self.provisioned.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(id, _, at)| id != dataset_id && at.elapsed() < KEPT_FOR);
        if kept.len() >= KEPT_CONNECTIONS {
            kept.remove(0);
        }
        kept.push((dataset_id.to_owned(), conn, Instant::now()));
    }

    fn take(&self, dataset_id: &str) -> Option<SqliteConnection> {
        let mut kept = self.provisioned.lock().unwrap_or_else(|e| e.into_inner());
        let i = kept.iter().position(|(id, _, _)| id == dataset_id)?;
        let (_, conn, at) = kept.remove(i);
        (at.elapsed() < KEPT_FOR).then_some(conn)
    }

    /// A read-only, `query_only` connection to the dataset whose queries stop at the deadline.
    async fn open_for_query(
        &self,
        dataset_id: &str,
        limits: QueryLimits,
    ) -> Result<SqliteConnection, DatasetError> {
        let mut conn = self.open(dataset_id, true).await?;
        conn.execute("PRAGMA query_only = ON")
            .await
            .map_err(classify)?;
        let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        conn.lock_handle()
            .await
            .map_err(classify)?
            .set_progress_handler(1_000, move || Instant::now() < deadline);
        Ok(conn)
    }

    fn path(&self, dataset_id: &str) -> PathBuf {
        self.dir.join(format!("{dataset_id}.db"))
    }

    async fn open(
        &self,
        dataset_id: &str,
        read_only: bool,
    ) -> Result<SqliteConnection, DatasetError> {
        let path = self.path(dataset_id);
        if read_only && !path.is_file() {
            return Err(DatasetError::NotFound(dataset_id.to_owned()));
        }
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(!read_only)
            .read_only(read_only)
            .busy_timeout(Duration::from_secs(5))
            // Customers' queries may run to their time limit; that is not worth a warning each.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
            .connect()
            .await
            .map_err(classify)
    }
}

/// The tables of the dataset open on `conn` and their columns.
async fn tables_of(
    conn: &mut SqliteConnection,
) -> Result<BTreeMap<String, Vec<String>>, DatasetError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(columns_by_table(rows))
}

/// Runs a checked query on a connection opened by `open_for_query`.
async fn run_query(
    conn: &mut SqliteConnection,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryResult, DatasetError> {
    // Preparing gives the column names (even for no rows) without the driver's EXPLAIN-based
    // describe, which costs more than a small query itself.
    let statement = (&mut *conn)
        .prepare(sql)
        .await
        .map_err(|e| refused(e, limits.timeout_ms))?;
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut out = ResultCollector::new(columns, limits);
    let mut stream = statement.query().fetch(&mut *conn);
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(|e| refused(e, limits.timeout_ms))?
    {
        // Verification's own statements only: their rows are a few bytes.
        if !out.admits(0) {
            break;
        }
        out.push((0..row.len()).map(|i| cell(&row, i)).collect(), 0);
    }
    Ok(out.finish())
}

fn cell(row: &SqliteRow, i: usize) -> serde_json::Value {
    use serde_json::Value;
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    match raw.type_info().name() {
        "INTEGER" => row
            .try_get_unchecked::<i64, _>(i)
            .map(Value::from)
            .unwrap_or(Value::Null),
        "REAL" => row
            .try_get_unchecked::<f64, _>(i)
            .map(Value::from)
            .unwrap_or(Value::Null),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .map(|b| {
                Value::String(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    b,
                ))
            })
            .unwrap_or(Value::Null),
        _ => row
            .try_get_unchecked::<String, _>(i)
            .map(Value::String)
            .unwrap_or(Value::Null),
    }
}

/// SQLITE_INTERRUPT: the progress handler stopped the query at its deadline.
fn refused(e: sqlx::Error, timeout_ms: u64) -> DatasetError {
    query_refusal(e, timeout_ms, "9")
}

#[async_trait]
impl DatasetBackend for SqliteDatasets {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Sqlite
    }

    async fn provision(&self, spec: &DatasetSpec) -> Result<(), DatasetError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            DatasetError::Permanent(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let mut conn = self.open(&spec.dataset_id, false).await?;
        let mut tx = conn.begin().await.map_err(classify)?;
        for (table, columns) in &spec.tables {
            let sql = create_table_sql(&quote(table), columns, SqlDialect::Sqlite);
            tx.execute(sql.as_str()).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        self.keep(&spec.dataset_id, conn);
        Ok(())
    }

    async fn drop_dataset(&self, dataset_id: &str) -> Result<(), DatasetError> {
        drop(self.take(dataset_id));
        let base = self.path(dataset_id);
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", base.display()));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DatasetError::Transient(format!(
                        "cannot remove {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Ok(())
    }

    async fn describe(
        &self,
        dataset_id: &str,
    ) -> Result<Option<BTreeMap<String, Vec<String>>>, DatasetError> {
        match self.open(dataset_id, true).await {
            Err(DatasetError::NotFound(_)) => Ok(None),
            Ok(mut conn) => Ok(Some(tables_of(&mut conn).await?)),
            Err(e) => Err(e),
        }
    }

    async fn query(
        &self,
        dataset_id: &str,
        _reader_password: &ReaderPassword,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, DatasetError> {
        let path = self.path(dataset_id);
        if !path.is_file() {
            return Err(DatasetError::NotFound(dataset_id.to_owned()));
        }
        super::tenant_query::query(&path, sql, limits).await
    }

    async fn verify(
        &self,
        dataset_id: &str,
        limits: QueryLimits,
        _expected: &[String],
    ) -> Result<(QueryResult, Option<BTreeMap<String, Vec<String>>>), DatasetError> {
        // One connection for both, the provisioning one where it is kept (opening a SQLite
        // connection costs more than either), switched to `query_only`; verification's own
        // fixed statements need no deadline.
        let mut conn = match self.take(dataset_id) {
            Some(mut conn) => {
                conn.execute("PRAGMA query_only = ON")
                    .await
                    .map_err(classify)?;
                conn
            }
            None => self.open_for_query(dataset_id, limits).await?,
        };
        let result = run_query(&mut conn, "SELECT 1 AS test", limits).await?;
        let tables = tables_of(&mut conn).await?;
        // Dropped, not closed: its driver thread closes the file without the step waiting.
        drop(conn);
        Ok((result, Some(tables)))
    }

    async fn table_rows(
        &self,
        dataset_id: &str,
        table: &str,
    ) -> Result<Vec<serde_json::Value>, DatasetError> {
        let mut conn = self.open(dataset_id, true).await?;
        let rows = sqlx::query(&format!("SELECT * FROM {}", quote(table)))
            .fetch_all(&mut conn)
            .await
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|row| {
                let obj: serde_json::Map<String, serde_json::Value> = (0..row.len())
                    .map(|i| (row.column(i).name().to_owned(), cell(row, i)))
                    .collect();
                serde_json::Value::Object(obj)
            })
            .collect())
    }

    async fn insert_rows(
        &self,
        dataset_id: &str,
        table: &str,
        rows: &Rows,
    ) -> Result<u64, DatasetError> {
        let mut conn = self.open(dataset_id, false).await?;
        let mut tx = conn.begin().await.map_err(classify)?;
        let mut written = 0;
        for chunk in rows.rows.chunks(rows_per_insert(rows.columns.len())) {
            let sql = insert_sql(&quote(table), &rows.columns, chunk.len(), |_, _| "?".into());
            let mut q = sqlx::query(&sql);
            for cell in chunk.iter().flatten() {
                q = match cell {
                    Cell::Null => q.bind(None::<String>),
                    Cell::Integer(i) => q.bind(*i),
                    Cell::Real(f) => q.bind(*f),
                    Cell::Boolean(b) => q.bind(i64::from(*b)),
                    other => q.bind(other.as_text()),
                };
            }
            written += q.execute(&mut *tx).await.map_err(classify)?.rows_affected();
        }
        tx.commit().await.map_err(classify)?;
        let _ = conn.close().await;
        Ok(written)
    }

    async fn list(&self) -> Result<Vec<String>, DatasetError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(DatasetError::Permanent(e.to_string())),
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".db"))
                    .map(str::to_owned)
            })
            .collect();
        out.sort();
        Ok(out)
    }
}
