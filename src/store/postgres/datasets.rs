//! PostgreSQL datasets: one schema per customer, and a `NOLOGIN` role per dataset that can use
//! that schema and read its tables and nothing else. Queries run in a `READ ONLY` transaction
//! as that role, with `search_path` set to the schema and a statement timeout, so the database
//! itself refuses writes and anything outside the schema (the registry, other customers).
//!
//! Roles are global to the server, so their names carry a tag of the database
//! (`onr_<db tag>_<dataset hash>`): datasets of different databases never share a role.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Column, ConnectOptions, Executor, PgConnection, Row, Statement};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::query::SqlDialect;
use crate::domain::upload::Rows;
use crate::product::QueryLimits;
use crate::store::datasets::{
    classify, insert_sql, quote, rows_per_insert, sql_type, DatasetBackend, DatasetError,
    DatasetSpec, QueryResult,
};

/// Datasets as schemas in one PostgreSQL database.
pub struct PgDatasets {
    pool: PgPool,
    role_prefix: String,
}

/// The reader role of a dataset, under a database's role prefix.
pub(crate) fn role_name(prefix: &str, dataset_id: &str) -> String {
    format!(
        "{prefix}{}",
        &hex::encode(Sha256::digest(dataset_id.as_bytes()))[..16]
    )
}

/// The prefix of every dataset role of `database`.
pub fn role_prefix(database: &str) -> String {
    format!(
        "onr_{}_",
        &hex::encode(Sha256::digest(database.as_bytes()))[..8]
    )
}

/// A string literal for `text` (names here are checked identifiers; doubling quotes is a
/// second line of defence).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Creates the dataset's schema, its missing tables and its reader role on `conn`, inside the
/// caller's transaction. Safe to repeat. Every statement goes in one simple-protocol message,
/// so provisioning is one round trip to the server however many tables there are.
pub(crate) async fn provision_in(
    conn: &mut PgConnection,
    spec: &DatasetSpec,
    role: &str,
) -> Result<(), sqlx::Error> {
    let schema = quote(&spec.dataset_id);
    let reader = quote(role);
    // Serialise provisioning of one dataset across processes: CREATE ... IF NOT EXISTS is
    // not safe against a concurrent create of the same name.
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock(hashtextextended({}, 0));\n\
         CREATE SCHEMA IF NOT EXISTS {schema};\n",
        literal(&spec.dataset_id)
    );
    for (table, columns) in &spec.tables {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    quote(&c.name),
                    sql_type(&c.column_type, SqlDialect::Postgres)
                )
            })
            .collect();
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {schema}.{} ({});\n",
            quote(table),
            cols.join(", ")
        ));
    }
    sql.push_str(&format!(
        "DO $onramp$ BEGIN\n\
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN\n\
             CREATE ROLE {reader} NOLOGIN;\n\
           END IF;\n\
           IF NOT pg_has_role(current_user, {name}, 'MEMBER') THEN\n\
             GRANT {reader} TO CURRENT_USER;\n\
           END IF;\n\
         END $onramp$;\n\
         GRANT USAGE ON SCHEMA {schema} TO {reader};\n\
         GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};\n",
        name = literal(role),
    ));
    conn.execute(sql.as_str()).await?;
    Ok(())
}

/// The tables of a dataset and their columns, or `None` when its schema does not exist. Read
/// from the catalog through the schema's dependents (`pg_depend` is indexed by the object
/// depended on, where `pg_class` has no index on the schema), so the cost follows the
/// dataset's size, not the number of datasets in the database.
async fn tables_of(
    conn: &mut PgConnection,
    dataset_id: &str,
) -> Result<Option<BTreeMap<String, Vec<String>>>, DatasetError> {
    let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text \
         FROM (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AS n \
         LEFT JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_namespace'::regclass \
           AND d.refobjid = n.oid AND d.classid = 'pg_catalog.pg_class'::regclass \
         LEFT JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind IN ('r', 'p') \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
           AND NOT a.attisdropped \
         ORDER BY 1, a.attnum",
    )
    .bind(dataset_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(grouped(rows))
}

/// The columns of the `expected` tables that exist in the dataset, or `None` when its schema
/// does not exist: each table looked up by name (`to_regclass`), which plans and runs in a
/// fraction of the whole-schema read.
async fn expected_tables_of(
    conn: &mut PgConnection,
    dataset_id: &str,
    expected: &[String],
) -> Result<Option<BTreeMap<String, Vec<String>>>, DatasetError> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT t.name, a.attname::text \
         FROM (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AS n \
         CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS t(name, i) \
         LEFT JOIN pg_catalog.pg_attribute a \
           ON a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident(t.name)) \
           AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY t.i, a.attnum",
    )
    .bind(dataset_id)
    .bind(expected)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    Ok(grouped(
        rows.into_iter().map(|(t, c)| (Some(t), c)).collect(),
    ))
}

/// `(table, column)` rows as columns per table; no rows at all means no schema, and a row
/// without a table or column (from the outer joins) adds nothing.
fn grouped(rows: Vec<(Option<String>, Option<String>)>) -> Option<BTreeMap<String, Vec<String>>> {
    if rows.is_empty() {
        return None;
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, c) in rows {
        if let (Some(t), Some(c)) = (t, c) {
            out.entry(t).or_default().push(c);
        }
    }
    Some(out)
}

/// Runs a checked query inside a transaction from `begin_as_reader`.
async fn run_query(
    conn: &mut PgConnection,
    sql: &str,
    limits: QueryLimits,
) -> Result<QueryResult, DatasetError> {
    let columns: Vec<String> = (&mut *conn)
        .prepare(sql)
        .await
        .map_err(|e| refused(e, limits.timeout_ms))?
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let wrapped = format!(
        "SELECT row_to_json(q)::text FROM ({sql}\n) AS q LIMIT {}",
        limits.max_rows + 1
    );
    let texts: Vec<String> = sqlx::query_scalar(&wrapped)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| refused(e, limits.timeout_ms))?;
    let truncated = texts.len() as u64 > limits.max_rows;
    let rows: Vec<Vec<serde_json::Value>> = json_rows(texts)
        .into_iter()
        .take(limits.max_rows as usize)
        .map(|obj| match obj {
            serde_json::Value::Object(map) => columns
                .iter()
                .map(|c| map.get(c).cloned().unwrap_or_default())
                .collect(),
            _ => vec![],
        })
        .collect();
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
    })
}

/// Schemas that are never datasets.
const NOT_DATASETS: &[&str] = &["public", "information_schema", super::REGISTRY_SCHEMA];

impl PgDatasets {
    /// Connects to the database that holds the dataset schemas.
    pub async fn connect(url: &str) -> Result<Self, DatasetError> {
        // Customers' queries may run to their time limit; that is not worth a warning each.
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(classify)?
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(classify)?;
        let database: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .map_err(classify)?;
        Ok(Self {
            pool,
            role_prefix: role_prefix(&database),
        })
    }

    /// A `READ ONLY` transaction running as the dataset's role, with its search path and the
    /// query's time limit set in one round trip after `BEGIN`. `NotFound` when the dataset
    /// does not exist.
    async fn begin_as_reader(
        &self,
        dataset_id: &str,
        limits: QueryLimits,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, DatasetError> {
        // BEGIN on its own: sqlx rolls a transaction back when it is dropped only once BEGIN has
        // returned, so a failing setting must come after it.
        let mut tx = self
            .pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(classify)?;
        let set = sqlx::query(
            "SELECT set_config('statement_timeout', $1, true), set_config('role', $2, true), \
             set_config('search_path', $3, true)",
        )
        .bind(limits.timeout_ms.to_string())
        .bind(self.role(dataset_id))
        .bind(quote(dataset_id))
        .execute(&mut *tx)
        .await;
        match set {
            Ok(_) => Ok(tx),
            // Without its schema (and role) a dataset does not exist; any other failure is
            // what it is.
            Err(e) => {
                drop(tx);
                match self.exists(dataset_id).await {
                    Ok(false) => Err(DatasetError::NotFound(dataset_id.to_owned())),
                    _ => Err(classify(e)),
                }
            }
        }
    }

    async fn exists(&self, dataset_id: &str) -> Result<bool, DatasetError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(dataset_id)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)
    }

    fn role(&self, dataset_id: &str) -> String {
        role_name(&self.role_prefix, dataset_id)
    }
}

fn refused(e: sqlx::Error, timeout_ms: u64) -> DatasetError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
            DatasetError::QueryTimeout(timeout_ms)
        }
        sqlx::Error::Database(db) => DatasetError::QueryRefused(db.message().to_owned()),
        _ => classify(e),
    }
}

fn json_rows(texts: Vec<String>) -> Vec<serde_json::Value> {
    texts
        .into_iter()
        .map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::Null))
        .collect()
}

#[async_trait]
impl DatasetBackend for PgDatasets {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::Postgres
    }

    async fn provision(&self, spec: &DatasetSpec) -> Result<(), DatasetError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        provision_in(&mut tx, spec, &self.role(&spec.dataset_id))
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn drop_dataset(&self, dataset_id: &str) -> Result<(), DatasetError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(dataset_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(dataset_id)).as_str())
            .await
            .map_err(classify)?;
        tx.execute(format!("DROP ROLE IF EXISTS {}", quote(&self.role(dataset_id))).as_str())
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn describe(
        &self,
        dataset_id: &str,
    ) -> Result<Option<BTreeMap<String, Vec<String>>>, DatasetError> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        tables_of(&mut conn, dataset_id).await
    }

    async fn query(
        &self,
        dataset_id: &str,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, DatasetError> {
        let mut tx = self.begin_as_reader(dataset_id, limits).await?;
        match run_query(&mut tx, sql, limits).await {
            Ok(result) => {
                tx.rollback().await.map_err(classify)?;
                Ok(result)
            }
            Err(e) => {
                drop(tx);
                // A dropped schema leaves the role behind: name the real cause.
                match self.exists(dataset_id).await {
                    Ok(false) => Err(DatasetError::NotFound(dataset_id.to_owned())),
                    _ => Err(e),
                }
            }
        }
    }

    async fn verify(
        &self,
        dataset_id: &str,
        limits: QueryLimits,
        expected: &[String],
    ) -> Result<(QueryResult, Option<BTreeMap<String, Vec<String>>>), DatasetError> {
        // One read-only transaction as the dataset's role for the query and the table check.
        let mut tx = self.begin_as_reader(dataset_id, limits).await?;
        let result = run_query(&mut tx, "SELECT 1 AS test", limits).await?;
        let tables = if expected.is_empty() {
            tables_of(&mut tx, dataset_id).await?
        } else {
            expected_tables_of(&mut tx, dataset_id, expected).await?
        };
        tx.rollback().await.map_err(classify)?;
        Ok((result, tables))
    }

    async fn table_rows(
        &self,
        dataset_id: &str,
        table: &str,
    ) -> Result<Vec<serde_json::Value>, DatasetError> {
        let texts: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM {}.{} AS t",
            quote(dataset_id),
            quote(table)
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(json_rows(texts))
    }

    async fn insert_rows(
        &self,
        dataset_id: &str,
        table: &str,
        rows: &Rows,
    ) -> Result<u64, DatasetError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let target = format!("{}.{}", quote(dataset_id), quote(table));
        let mut written = 0;
        // Every value travels as text and is cast to its column's type by the server.
        let casts: Vec<&str> = rows
            .types
            .iter()
            .map(|t| sql_type(t, SqlDialect::Postgres))
            .collect();
        for chunk in rows.rows.chunks(rows_per_insert(rows.columns.len())) {
            let sql = insert_sql(&target, &rows.columns, chunk.len(), |i, c| {
                format!("${i}::{}", casts[c])
            });
            let mut q = sqlx::query(&sql);
            for cell in chunk.iter().flatten() {
                q = q.bind(cell.as_text());
            }
            written += q.execute(&mut *tx).await.map_err(classify)?.rows_affected();
        }
        tx.commit().await.map_err(classify)?;
        Ok(written)
    }

    async fn list(&self) -> Result<Vec<String>, DatasetError> {
        let rows = sqlx::query("SELECT nspname::text AS name FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ORDER BY nspname")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("name").ok())
            .filter(|n| !NOT_DATASETS.contains(&n.as_str()))
            .collect())
    }
}
