//! PostgreSQL datasets: one schema per customer, and a role per dataset that can use that
//! schema and read its tables and nothing else.
//!
//! A customer's query runs on a connection *logged in* as that role (a `LOGIN` role with a
//! password derived from `KEY_HASH_SECRET`, member of nothing, no attributes), never on
//! Onramp's own login: no statement can switch to another role, because the session's own user
//! is the dataset's. Inside, it runs in a `READ ONLY` transaction with the schema as its search
//! path and a statement timeout, and the role's own defaults say the same, so even a connection
//! used outside that transaction can do no more. Each dataset has a small pool of such
//! connections; after each query the session is discarded (`DISCARD ALL`: advisory locks,
//! settings, temporary objects, prepared statements) and a connection whose query failed is
//! closed, so nothing a query does outlives it.
//!
//! The password reaches the server only as a SCRAM-SHA-256 verifier computed here, so neither
//! the statement text nor the server's logs ever hold it.
//!
//! Roles are global to the server, so their names carry a tag of the database
//! (`onr_<db tag>_<dataset hash>`): datasets of different databases never share a role.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Column, ConnectOptions, Connection, Executor, PgConnection, Row, Statement};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::query::SqlDialect;
use crate::domain::upload::Rows;
use crate::product::QueryLimits;
use crate::store::datasets::{
    classify, columns_by_table, create_table_sql, insert_sql, query_refusal, quote,
    rows_per_insert, sql_type, DatasetBackend, DatasetError, DatasetSpec, QueryResult,
    ReaderPassword, ResultCollector,
};

/// Datasets as schemas in one PostgreSQL database.
pub struct PgDatasets {
    pool: PgPool,
    role_prefix: String,
    /// Each dataset's pool of connections logged in as its reader, by dataset id.
    readers: Mutex<HashMap<String, ReaderPool>>,
}

/// A pool of connections logged in as one dataset's reader.
struct ReaderPool {
    pool: PgPool,
    used: Instant,
}

/// At most this many datasets keep a reader pool; the least recently used is closed first.
const READER_POOLS: usize = 64;
/// Connections per dataset pool in this process.
const READER_CONNECTIONS: u32 = 2;
/// A reader connection idle this long is closed.
const READER_IDLE: Duration = Duration::from_secs(60);
/// Sessions one dataset role may hold on the server, across every Onramp process.
const READER_CONNECTION_LIMIT: u32 = 8;
/// PBKDF2 iterations of the SCRAM verifier. Iterations slow the guessing of a password a person
/// chose; a reader's password is 256 random bits, which no number of guesses finds, so the
/// count is kept low: PostgreSQL runs the same derivation when the role is created (to refuse an
/// empty password) and the driver on every login, and at PostgreSQL's default of 4096 those
/// cost about 6 ms of every provisioning (measured with `onramp bench onboard`).
const SCRAM_ITERATIONS: u32 = 64;

/// A SCRAM-SHA-256 verifier of `password` in PostgreSQL's `rolpassword` form, with a random
/// salt. Given as a role's password, the server stores it as it is (RFC 5802, RFC 7677).
pub(crate) fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |key: &[u8], text: &[u8]| {
        let mut mac =
            <SimpleHmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(text);
        mac.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    zeroize::Zeroize::zeroize(&mut salted);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
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
    // Serialise provisioning of one dataset across processes: CREATE ... IF NOT EXISTS is
    // not safe against a concurrent create of the same name.
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock(hashtextextended({}, 0));\n\
         CREATE SCHEMA IF NOT EXISTS {schema};\n",
        literal(&spec.dataset_id)
    );
    for (table, columns) in &spec.tables {
        let qualified = format!("{schema}.{}", quote(table));
        sql.push_str(&create_table_sql(&qualified, columns, SqlDialect::Postgres));
        sql.push_str(";\n");
    }
    sql.push_str(&reader_sql(&spec.dataset_id, role, &spec.reader_password));
    conn.execute(sql.as_str()).await?;
    Ok(())
}

/// The statements that create (or repair) a dataset's reader: a `LOGIN` role with the
/// password's verifier and nothing else (no attributes, no memberships), its defaults (read
/// only, the schema as search path, bounded time), and its grants on the schema. Onramp's own
/// role is made a member, so verification can read as the reader and offboarding can end its
/// sessions.
fn reader_sql(dataset_id: &str, role: &str, password: &ReaderPassword) -> String {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let verifier = literal(&scram_verifier(password.expose(), &salt, SCRAM_ITERATIONS));
    let schema = quote(dataset_id);
    let reader = quote(role);
    format!(
        "DO $onramp$ BEGIN\n\
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN\n\
             CREATE ROLE {reader} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT \
               NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {READER_CONNECTION_LIMIT} \
               PASSWORD {verifier};\n\
           ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name} \
                 AND (rolsuper OR rolreplication OR rolbypassrls)) THEN\n\
             RAISE EXCEPTION 'role % has privileges a dataset reader must not have', {name};\n\
           ELSE\n\
             ALTER ROLE {reader} LOGIN NOCREATEDB NOCREATEROLE NOINHERIT \
               CONNECTION LIMIT {READER_CONNECTION_LIMIT} PASSWORD {verifier};\n\
           END IF;\n\
           IF NOT pg_has_role(current_user, {name}, 'MEMBER') THEN\n\
             GRANT {reader} TO CURRENT_USER;\n\
           END IF;\n\
         END $onramp$;\n\
         ALTER ROLE {reader} SET default_transaction_read_only = on;\n\
         ALTER ROLE {reader} SET search_path = {schema};\n\
         ALTER ROLE {reader} SET statement_timeout = '60s';\n\
         ALTER ROLE {reader} SET idle_in_transaction_session_timeout = '60s';\n\
         GRANT USAGE ON SCHEMA {schema} TO {reader};\n\
         GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};\n",
        name = literal(role),
    )
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
    Some(columns_by_table(
        rows.into_iter().filter_map(|(t, c)| Some((t?, c?))),
    ))
}

/// Runs a checked query inside a read-only transaction as the dataset's reader.
///
/// Each row comes back as one JSON text built by the server (so every column type has a JSON
/// form), with the columns renamed by position first, so that two columns of one name both
/// survive. Rows are read one at a time: a row larger than the byte bound arrives only as its
/// length, and rows stop at the byte or row bound, so the answer never holds more than the
/// bounds allow whatever the query makes.
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
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let alias_list = if aliases.is_empty() {
        String::new()
    } else {
        format!("({})", aliases.join(", "))
    };
    let wrapped = format!(
        "SELECT octet_length(j), CASE WHEN octet_length(j) <= {max_bytes} THEN j END \
         FROM (SELECT row_to_json(q)::text AS j FROM ({sql}\n) AS q{alias_list} LIMIT {limit}) AS r",
        max_bytes = limits.max_bytes,
        limit = limits.max_rows + 1,
    );
    let mut out = ResultCollector::new(columns, limits);
    let mut stream = sqlx::query_as::<_, (Option<i32>, Option<String>)>(&wrapped)
        .persistent(false)
        .fetch(&mut *conn);
    while let Some((length, text)) = stream
        .try_next()
        .await
        .map_err(|e| refused(e, limits.timeout_ms))?
    {
        let length = usize::try_from(length.unwrap_or(0)).unwrap_or(usize::MAX);
        if !out.admits(length) {
            break;
        }
        let Some(text) = text else {
            out.truncate();
            break;
        };
        let row = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => aliases
                .iter()
                .map(|c| map.get(c).cloned().unwrap_or_default())
                .collect(),
            _ => vec![serde_json::Value::Null; aliases.len()],
        };
        out.push(row, length);
    }
    Ok(out.finish())
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
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// The pool of connections logged in as the dataset's reader, made on first use. Pools
    /// connect lazily, hold at most [`READER_CONNECTIONS`], close idle connections, and keep
    /// no prepared statements; the least recently used pool is closed past [`READER_POOLS`].
    fn reader_pool(&self, dataset_id: &str, password: &ReaderPassword) -> PgPool {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = readers.get_mut(dataset_id) {
            entry.used = Instant::now();
            return entry.pool.clone();
        }
        if readers.len() >= READER_POOLS {
            if let Some(oldest) = readers
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(id, _)| id.clone())
            {
                if let Some(old) = readers.remove(&oldest) {
                    tokio::spawn(async move { old.pool.close().await });
                }
            }
        }
        let options: PgConnectOptions = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .username(&self.role(dataset_id))
            .password(password.expose())
            .application_name("onramp-dataset-query")
            // `ROLLBACK` outside a transaction is only a warning: not one worth a log line.
            .options([("client_min_messages", "error")])
            .statement_cache_capacity(0);
        let pool = PgPoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .min_connections(0)
            .idle_timeout(READER_IDLE)
            .acquire_timeout(Duration::from_secs(5))
            // Every connection coming back, including one whose request was dropped in the
            // middle of a query, ends its transaction and discards its session (advisory
            // locks, settings, temporary objects, prepared statements, listeners) or is closed.
            .after_release(|conn, _| {
                Box::pin(async move {
                    let reset = tokio::time::timeout(Duration::from_secs(2), async {
                        conn.execute("ROLLBACK").await?;
                        conn.execute("DISCARD ALL").await?;
                        Ok::<_, sqlx::Error>(())
                    })
                    .await;
                    Ok(matches!(reset, Ok(Ok(()))))
                })
            })
            .connect_lazy_with(options);
        readers.insert(
            dataset_id.to_owned(),
            ReaderPool {
                pool: pool.clone(),
                used: Instant::now(),
            },
        );
        pool
    }

    /// Closes the dataset's reader pool, if this process has one.
    async fn forget_reader(&self, dataset_id: &str) {
        let removed = self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(dataset_id);
        if let Some(r) = removed {
            r.pool.close().await;
        }
    }

    /// A connection logged in as the dataset's reader. When the login is refused (a dataset
    /// provisioned before readers could log in, or a changed `KEY_HASH_SECRET`) and the
    /// dataset exists, its reader is repaired once with the current password.
    async fn reader_connection(
        &self,
        dataset_id: &str,
        password: &ReaderPassword,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, DatasetError> {
        match self.reader_pool(dataset_id, password).acquire().await {
            Ok(conn) => return Ok(conn),
            Err(e) if !login_refused(&e) => return Err(classify(e)),
            Err(_) => {}
        }
        self.forget_reader(dataset_id).await;
        if !self.exists(dataset_id).await? {
            return Err(DatasetError::NotFound(dataset_id.to_owned()));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let sql = format!(
            "SELECT pg_advisory_xact_lock(hashtextextended({}, 0));\n{}",
            literal(dataset_id),
            reader_sql(dataset_id, &self.role(dataset_id), password),
        );
        tx.execute(sql.as_str()).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::info!(dataset_id, "repaired the dataset's reader login");
        self.reader_pool(dataset_id, password)
            .acquire()
            .await
            .map_err(classify)
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

/// Whether the server refused to log the reader in (bad password, no `LOGIN`, no such role).
fn login_refused(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("28P01") | Some("28000")))
}

/// `query_canceled`: `statement_timeout` stopped the query at its deadline.
fn refused(e: sqlx::Error, timeout_ms: u64) -> DatasetError {
    query_refusal(e, timeout_ms, "57014")
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
        self.forget_reader(dataset_id).await;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(dataset_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.execute(format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(dataset_id)).as_str())
            .await
            .map_err(classify)?;
        // The reader's sessions in other processes end with it; then the role goes.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(self.role(dataset_id))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        // Its grants (CONNECT on the database) go first, or the role could not be dropped.
        let role = self.role(dataset_id);
        tx.execute(
            format!(
                "DO $onramp$ BEGIN\n\
                   IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN\n\
                     DROP OWNED BY {reader};\n\
                     DROP ROLE {reader};\n\
                   END IF;\n\
                 END $onramp$",
                name = literal(&role),
                reader = quote(&role),
            )
            .as_str(),
        )
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
        reader_password: &ReaderPassword,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, DatasetError> {
        let mut conn = self.reader_connection(dataset_id, reader_password).await?;
        // The server's own deadline, a second past the database's: a statement that does not
        // check for interrupts (some string functions) is abandoned, not waited for.
        let deadline = Duration::from_millis(limits.timeout_ms) + Duration::from_secs(1);
        let outcome = tokio::time::timeout(deadline, async {
            conn.execute("BEGIN READ ONLY").await.map_err(classify)?;
            sqlx::query("SELECT set_config('statement_timeout', $1, true)")
                .bind(limits.timeout_ms.to_string())
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            let result = run_query(&mut conn, sql, limits).await?;
            // Truncated: rows past the bound are still on the wire, so the connection is
            // closed rather than drained. Otherwise its session is discarded and it goes back
            // to the pool.
            let reusable = !result.truncated;
            Ok::<_, DatasetError>((result, reusable))
        })
        .await
        .unwrap_or(Err(DatasetError::QueryTimeout(limits.timeout_ms)));
        match outcome {
            Ok((result, true)) => {
                // Discarded here, before the answer is sent (the release hook does it again
                // for connections that come back any other way).
                let reset = async {
                    conn.execute("ROLLBACK").await?;
                    conn.execute("DISCARD ALL").await
                }
                .await;
                if reset.is_err() {
                    let _ = conn.detach().close().await;
                }
                Ok(result)
            }
            Ok((result, false)) => {
                let _ = conn.detach().close().await;
                Ok(result)
            }
            Err(e @ DatasetError::QueryTimeout(_)) => {
                // Dropped, not closed: closing would wait for the statement to answer.
                drop(conn.detach());
                Err(e)
            }
            Err(e) => {
                let _ = conn.detach().close().await;
                // A dropped schema leaves no grants behind: name the real cause.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scram_verifier_matches_postgresql_s_own() {
        // PostgreSQL 15 stored this for `CREATE ROLE r PASSWORD 'correct horse battery staple'`.
        let stored = "SCRAM-SHA-256$4096:Wq3rdUCLTYi3sIT9is3lcw==$zd7dD3golqVF3m9IYKzg5Cv5IAJrjBonesp9aYCbBBM=:v7TgL6tbqbBmVHzDYWZ973qB1X7JnGSyOlXBMlZV0wk=";
        use base64::Engine;
        let salt = base64::engine::general_purpose::STANDARD
            .decode("Wq3rdUCLTYi3sIT9is3lcw==")
            .unwrap();
        assert_eq!(
            scram_verifier("correct horse battery staple", &salt, 4096),
            stored
        );
    }

    #[test]
    fn reader_statements_never_hold_the_password() {
        let password = ReaderPassword::new("s3cret-password-value".into());
        let sql = reader_sql("tenant_acme", "onr_0000_reader", &password);
        assert!(!sql.contains("s3cret-password-value"));
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$64:"));
        assert_eq!(format!("{password:?}"), "ReaderPassword([redacted])");
    }
}
