//! Test helpers: a fresh registry per test on either backend, and the real server on port 0.
#![allow(dead_code)]

pub mod cli;
pub mod dns;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use onramp::app::{Application, MasterKeys, ProductSource, Settings};
use onramp::domain::Role;
use onramp::interfaces::http::ServeOptions;
use onramp::product::Product;
use onramp::services::{Actor, RunnerOptions, Services};
use onramp::store::{self, CustomerFilter, PageRequest, Store};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("ONRAMP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty registry location: a temp dir, or a new PostgreSQL database dropped on drop.
pub struct TestDb {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
    pg_name: Option<String>,
    /// An ordinary role made to own the database (and dropped with it).
    pg_owner: Option<String>,
    /// The server the database lives on (as an admin URL), when not the usual one.
    pg_admin: Option<String>,
}

/// The prefix of the dataset roles Onramp makes for a database (see the PostgreSQL datasets).
fn dataset_role_prefix(database: &str) -> String {
    use sha2::Digest;
    format!(
        "onr_{}_",
        &hex::encode(sha2::Sha256::digest(database.as_bytes()))[..8]
    )
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        // Errors the server logs (an internal error's cause) are printed with a failing test's
        // output; a passing test's are not.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("onramp=error")
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                backend,
                dir,
                database_url: None,
                pg_name: None,
                pg_owner: None,
                pg_admin: None,
            },
            Backend::Postgres => {
                let name = format!("onramp_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running for the postgres tests (ONRAMP_TEST_POSTGRES_URL)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .expect("url has a database");
                Self {
                    backend,
                    dir,
                    database_url: Some(format!("{base}/{name}")),
                    pg_name: Some(name),
                    pg_owner: None,
                    pg_admin: None,
                }
            }
        }
    }

    /// A fresh PostgreSQL database owned by a new ordinary role with only `LOGIN CREATEROLE`
    /// (no superuser), as README's deployment section sets Onramp up; the URL logs in as it.
    pub async fn new_with_ordinary_owner() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("onramp_test_{suffix}");
        let owner = format!("onramp_owner_{}", &suffix[..12]);
        let admin = postgres_admin_url();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("PostgreSQL must be running for the postgres tests");
        for sql in [
            format!("CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD 'owner-password'"),
            format!("CREATE DATABASE {name} OWNER {owner}"),
            format!("REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
        }
        let mut url = url::Url::parse(&admin).expect("admin URL");
        url.set_username(&owner).unwrap();
        url.set_password(Some("owner-password")).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            backend: Backend::Postgres,
            dir,
            database_url: Some(url.to_string()),
            pg_name: Some(name),
            pg_owner: Some(owner),
            pg_admin: None,
        }
    }

    /// A fresh database on the server of `admin_url` (a scratch cluster of a test's own).
    pub async fn new_on(admin_url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("onramp_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
            .await
            .expect("the scratch server answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let mut url = url::Url::parse(admin_url).expect("admin URL");
        url.set_path(&format!("/{name}"));
        Self {
            backend: Backend::Postgres,
            dir,
            database_url: Some(url.to_string()),
            pg_name: Some(name),
            pg_owner: None,
            pg_admin: Some(admin_url.to_owned()),
        }
    }

    /// The dataset roles that exist for this database.
    pub async fn dataset_roles(&self) -> Vec<String> {
        let Some(name) = &self.pg_name else {
            return vec![];
        };
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url())
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1",
        )
        .bind(dataset_role_prefix(name))
        .fetch_all(&mut conn)
        .await
        .unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens and migrates the registry.
    pub async fn store(&self) -> Arc<dyn Store> {
        let s = store::open(self.dir.path(), self.database_url.as_deref())
            .await
            .expect("open store");
        s.migrate().await.expect("migrate");
        s
    }

    /// The CLI flags that point at this registry.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.dir.path().display().to_string(),
        ];
        if let Some(url) = &self.database_url {
            args.push("--database-url".into());
            args.push(url.clone());
        }
        args
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let owner = self.pg_owner.take();
        let admin = self.pg_admin.take().unwrap_or_else(postgres_admin_url);
        // Drop runs outside any runtime we may block: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    // Roles belong to the server, not the database: the datasets' readers
                    // (of datasets never offboarded) and the owner go too.
                    let roles: Vec<String> = sqlx::query_scalar(
                        "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1)",
                    )
                    .bind(dataset_role_prefix(&name))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
                    for role in roles.into_iter().chain(owner) {
                        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

/// Path of a file in the repository.
/// A registered customer's id, as the store takes it.
pub fn cid(id: &str) -> onramp::domain::CustomerId {
    onramp::domain::CustomerId::from_trusted(id.to_owned())
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Wires services over a test database's store with a product and default runner options.
pub async fn services(db: &TestDb, product: Product) -> Services {
    services_with(db, product, RunnerOptions::new(db.data_dir())).await
}

/// Wires services with the given runner options (faults, lease), through
/// `Application::build` as every command starts, with keys that live only in memory.
pub async fn services_with(db: &TestDb, product: Product, runner: RunnerOptions) -> Services {
    services_configured(db, product, runner, |_| {}).await
}

/// [`services_with`], with `configure` setting what else the test needs (email, a clock).
pub async fn services_configured(
    db: &TestDb,
    product: Product,
    runner: RunnerOptions,
    configure: impl FnOnce(&mut Settings),
) -> Services {
    let mut settings = Settings::new(db.data_dir());
    settings.database_url = db.database_url.clone().map(Into::into);
    settings.product = ProductSource::Loaded(Box::new(product));
    settings.master_keys = MasterKeys::Ephemeral;
    settings.runner = Some(runner);
    // Tests never reach the internet's DNS: a test that wants MX lookups names its own server.
    settings.dns_resolver = Some("off".into());
    configure(&mut settings);
    Application::build(settings)
        .await
        .expect("onramp starts")
        .services
}

/// A running server with a token of each role.
pub struct TestApp {
    pub db: TestDb,
    pub services: Services,
    pub base: String,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Product::builtin()).await
    }

    pub async fn start_with(backend: Backend, product: Product) -> Self {
        let db = TestDb::new(backend).await;
        let runner = RunnerOptions::new(db.data_dir());
        Self::start_on(db, product, runner).await
    }

    pub async fn start_on(db: TestDb, product: Product, runner: RunnerOptions) -> Self {
        Self::start_serving(db, product, runner, ServeOptions::default()).await
    }

    /// With the server's own options (rate limits, MCP hosts).
    pub async fn start_serving(
        db: TestDb,
        product: Product,
        runner: RunnerOptions,
        options: ServeOptions,
    ) -> Self {
        let services = services_with(&db, product, runner).await;
        Self::serve(db, services, options).await
    }

    /// Serves `product` with `configure` setting what else the test needs (email, a clock).
    pub async fn start_configured(
        backend: Backend,
        product: Product,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::start_configured_serving(backend, product, ServeOptions::default(), configure).await
    }

    /// [`TestApp::start_configured`], with the server's own options.
    pub async fn start_configured_serving(
        backend: Backend,
        product: Product,
        options: ServeOptions,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let db = TestDb::new(backend).await;
        let runner = RunnerOptions::new(db.data_dir());
        let services = services_configured(&db, product, runner, configure).await;
        Self::serve(db, services, options).await
    }

    async fn serve(db: TestDb, services: Services, options: ServeOptions) -> Self {
        let cli = Actor::cli();
        let admin = services
            .admin_tokens
            .create(&cli, Role::Admin, "admin")
            .await
            .unwrap()
            .token;
        let operator = services
            .admin_tokens
            .create(&cli, Role::Operator, "operator")
            .await
            .unwrap()
            .token;
        let viewer = services
            .admin_tokens
            .create(&cli, Role::Viewer, "viewer")
            .await
            .unwrap()
            .token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = onramp::interfaces::http::app_with(services.clone(), &options);
        let connections = options.connections;
        tokio::spawn(async move {
            onramp::interfaces::http::server::serve_router(
                listener,
                app,
                connections,
                std::future::pending(),
            )
            .await
            .unwrap()
        });
        Self {
            db,
            services,
            base,
            admin,
            operator,
            viewer,
            client: reqwest::Client::new(),
        }
    }

    /// Onboards a customer over HTTP as the operator: `POST /api/v1/customers` with `body`.
    pub async fn onboard(
        &self,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        status_and_json(self.onboard_request(body).send().await.unwrap()).await
    }

    /// Offboards a customer over HTTP as the operator: `POST /api/v1/customers/{id}/offboard`
    /// with `body`.
    pub async fn offboard(
        &self,
        customer_id: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let path = format!("/api/v1/customers/{customer_id}/offboard");
        status_and_json(self.post(&path, &self.operator, body).send().await.unwrap()).await
    }

    /// The operator's onboarding request, for a test that adds headers or reads the response's.
    pub fn onboard_request(&self, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.post("/api/v1/customers", &self.operator, body)
    }

    /// Runs `sql` in the customer's dataset over HTTP with `token`.
    pub async fn query(
        &self,
        token: &str,
        customer_id: &str,
        sql: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .post(
                &format!("/api/v1/customers/{customer_id}/query"),
                token,
                &serde_json::json!({ "sql": sql }),
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The server's OpenAPI document.
    pub async fn openapi(&self) -> serde_json::Value {
        self.client
            .get(self.url("/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    pub fn post(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
    }

    pub fn patch(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
    }

    /// Everything a refusal must leave as it was: every customer record and the event log.
    pub async fn snapshot(&self) -> Snapshot {
        snapshot(self.services.store.as_ref()).await
    }
}

/// A response's status and JSON body (null when the body is not JSON).
pub async fn status_and_json(r: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The registry and event log, in full.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub customers: Vec<String>,
    pub events: Vec<(i64, String)>,
}

pub async fn snapshot(store: &dyn Store) -> Snapshot {
    let page = store
        .list_customers(
            &CustomerFilter::default(),
            &PageRequest {
                limit: 10_000,
                after: None,
            },
        )
        .await
        .unwrap();
    let customers = page.items.iter().map(|c| format!("{c:?}")).collect();
    let events = all_events(store)
        .await
        .into_iter()
        .map(|e| (e.id, e.hash))
        .collect();
    Snapshot { customers, events }
}

/// Every event in the log, each checked against the catalog: its type is in it, and its
/// payload decodes into the type's payload and encodes again to exactly the stored text (which
/// its hash covers).
pub async fn all_events(store: &dyn Store) -> Vec<onramp::domain::Event> {
    let events = store
        .list_events(&onramp::store::EventFilter {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    for e in &events {
        let body = e
            .body()
            .unwrap_or_else(|err| panic!("event {} ({}): {err}", e.id, e.event_type));
        assert_eq!(body.event_type().as_str(), e.event_type);
        assert_eq!(
            body.to_json().to_string(),
            e.payload_text,
            "event {} ({}) does not encode back to its stored payload",
            e.id,
            e.event_type
        );
    }
    events
}

/// The distinct types of the events in the log (each checked by [`all_events`]).
pub async fn event_types(store: &dyn Store) -> std::collections::BTreeSet<String> {
    all_events(store)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// Generates one test per backend from `async fn name(backend: Backend)` functions.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A PostgreSQL cluster of a test's own, made with `initdb` from the machine's PostgreSQL
/// packages, that authenticates every TCP login by password (SCRAM-SHA-256): the way a
/// production server does, where the shared test server trusts every local login. Stopped and
/// removed on drop.
pub struct ScratchCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`.
    pub admin_url: String,
}

impl ScratchCluster {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server packages are installed")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect("initdb is installed");
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses to run as root: the cluster then belongs to the `postgres` user.
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let data = dir.path().join("data");
        if as_postgres {
            std::process::Command::new("chown")
                .args(["postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .expect("chown");
        }
        let password = "scratch-superuser-password";
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, password).unwrap();
        if as_postgres {
            std::process::Command::new("chown")
                .args(["postgres:postgres", pwfile.to_str().unwrap()])
                .status()
                .expect("chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            admin_url: format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.dir.path().display()
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-s",
                "start",
            ],
        );
        cluster
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let status = if self.as_postgres {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        } else {
            std::process::Command::new(&program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(status.success(), "{tool} {args:?} failed");
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-s",
                "stop",
            ],
        );
    }
}
