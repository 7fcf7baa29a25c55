//! Onboarding runs, dataset records and the checklist, and the row writes other capabilities'
//! transactions share (a customer's versioned update, a dataset's record, staged credentials,
//! an idempotency record).

/// Implements [`RunStore`](crate::store::RunStore) for a backend store type (see
/// [`crate::store::sql`] for what the backend provides). The backend also provides the two
/// writes of the onboarding hot path, which PostgreSQL folds into one round trip each:
/// `insert_run_rows(conn, run)` (a run, its steps and staged credentials) and
/// `update_run_rows(conn, customer_id, run_id, owner, &update)` (the run if `owner` still holds
/// it, its steps, and the customer's change if its version still matches), and
/// `FOR_UPDATE_SKIP_LOCKED`, the clause that keeps two claimers off one row (empty on SQLite,
/// whose one writer already serialises them).
macro_rules! run_store {
    ($store:ty) => {
        const _: () = {
            use crate::domain::CustomerId;
            use crate::domain::{Customer, NewEvent};
            use crate::store::rows::{run_record, ChecklistRow, DatasetRow, RunRow, StepRow};
            use crate::store::{
                ChecklistRecord, DatasetRecord, RunRecord, RunStore, RunUpdate, StoreError,
            };

            #[async_trait::async_trait]
            impl RunStore for $store {
                async fn insert_run(
                    &self,
                    run: &RunRecord,
                    customer: Option<(&Customer, i64)>,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    if let Some((c, version)) = customer {
                        update_customer_row(&mut tx, &run.customer_id, c, version).await?;
                    }
                    runs::insert_run_rows(&mut tx, run).await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn latest_run(
                    &self,
                    customer_id: &CustomerId,
                ) -> Result<Option<RunRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let run: Option<RunRow> = sqlx::query_as(
                        "SELECT * FROM onboarding_runs WHERE customer_id = $1 \
                         ORDER BY started_at DESC, run_id DESC LIMIT 1",
                    )
                    .bind(customer_id)
                    .fetch_optional(self.reads())
                    .await?;
                    let Some(run) = run else { return Ok(None) };
                    let steps: Vec<StepRow> = sqlx::query_as(
                        "SELECT name, position, status, attempts, started_at, finished_at, error, \
                         completed_seq FROM onboarding_steps WHERE customer_id = $1 AND run_id = $2 \
                         ORDER BY position",
                    )
                    .bind(customer_id)
                    .bind(&run.run_id)
                    .fetch_all(self.reads())
                    .await?;
                    run_record(run, steps).map(Some)
                }

                async fn update_run(
                    &self,
                    customer_id: &CustomerId,
                    run_id: &str,
                    owner: &str,
                    u: RunUpdate<'_>,
                ) -> Result<(), StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    runs::update_run_rows(&mut tx, customer_id, run_id, owner, &u).await?;
                    if let Some(d) = u.dataset {
                        upsert_dataset_row(&mut tx, d).await?;
                    }
                    append_all(&mut tx, u.events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn claim_runs(
                    &self,
                    now_ms: i64,
                    owner: &str,
                    lease_ms: i64,
                    limit: u32,
                ) -> Result<Vec<(String, String)>, StoreError> {
                    let mut tx = self.write().await?;
                    let candidates: Vec<(String, String)> = sqlx::query_as(&format!(
                        "SELECT customer_id, run_id FROM onboarding_runs \
                         WHERE status IN ('running', 'compensating') AND lease_expires_ms < $1 \
                         ORDER BY lease_expires_ms LIMIT $2{FOR_UPDATE_SKIP_LOCKED}"
                    ))
                    .bind(now_ms)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (customer_id, run_id) in &candidates {
                        sqlx::query(
                            "UPDATE onboarding_runs SET lease_owner = $1, lease_expires_ms = $2 \
                             WHERE customer_id = $3 AND run_id = $4",
                        )
                        .bind(owner)
                        .bind(now_ms + lease_ms)
                        .bind(customer_id)
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(candidates)
                }

                async fn save_dataset(
                    &self,
                    r: &DatasetRecord,
                    event: Option<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    upsert_dataset_row(&mut tx, r).await?;
                    if let Some(event) = event {
                        append(&mut tx, event).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn get_dataset(
                    &self,
                    customer_id: &CustomerId,
                ) -> Result<Option<DatasetRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let row: Option<DatasetRow> =
                        sqlx::query_as("SELECT * FROM datasets WHERE customer_id = $1")
                            .bind(customer_id)
                            .fetch_optional(self.reads())
                            .await?;
                    Ok(row.map(Into::into))
                }

                async fn delete_dataset(
                    &self,
                    customer_id: &CustomerId,
                    event: NewEvent,
                ) -> Result<(), StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    sqlx::query("DELETE FROM datasets WHERE customer_id = $1")
                        .bind(customer_id)
                        .execute(&mut *tx)
                        .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn mark_checklist(
                    &self,
                    customer_id: &CustomerId,
                    item: &ChecklistRecord,
                    event: NewEvent,
                ) -> Result<ChecklistRecord, StoreError> {
                    let customer_id = customer_id.as_str();
                    let mut tx = self.write().await?;
                    let existing: Option<ChecklistRow> = sqlx::query_as(
                        "SELECT item_id, done_by, done_at FROM checklist_items \
                         WHERE customer_id = $1 AND item_id = $2",
                    )
                    .bind(customer_id)
                    .bind(&item.item_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = existing {
                        return Ok(row.into());
                    }
                    sqlx::query(
                        "INSERT INTO checklist_items (customer_id, item_id, done_by, done_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(customer_id)
                    .bind(&item.item_id)
                    .bind(&item.done_by)
                    .bind(item.done_at)
                    .execute(&mut *tx)
                    .await?;
                    append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(item.clone())
                }

                async fn checklist(
                    &self,
                    customer_id: &CustomerId,
                ) -> Result<Vec<ChecklistRecord>, StoreError> {
                    let customer_id = customer_id.as_str();
                    let rows: Vec<ChecklistRow> = sqlx::query_as(
                        "SELECT item_id, done_by, done_at FROM checklist_items \
                         WHERE customer_id = $1 ORDER BY done_at, item_id",
                    )
                    .bind(customer_id)
                    .fetch_all(self.reads())
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
            }
        };
    };
}

/// Expands, in a backend's module, the row writes that several of its transactions share, for
/// its connection type `$conn` and database `$db`: `update_customer_row`, `customer_conflict`,
/// `upsert_dataset_row`, `insert_staged_rows`, `insert_idempotency_row`, and the statement
/// pieces PostgreSQL composes into one round trip (`push_events_insert`, `push_customer_insert`, `push_run_insert`, `push_steps_insert`,
/// `push_step_upsert`, `push_dataset_upsert`).
macro_rules! row_writes {
    ($conn:ty, $db:ty) => {
        /// Saves a customer change inside the caller's transaction, checking its version.
        async fn update_customer_row(
            conn: &mut $conn,
            customer_id: &str,
            c: &crate::domain::Customer,
            expected_version: i64,
        ) -> Result<(), crate::store::StoreError> {
            let json = crate::store::rows::CustomerJson::of(c);
            let updated = sqlx::query(
                "UPDATE customers SET customer_name = $1, name_folded = $2, industry = $3, \
                 data_store = $4, status = $5, tags = $6, attributes = $7, contact_email = $8, \
                 contact_name = $9, created_by = $10, usage_tier = $11, version = $12, \
                 updated_at = $13 WHERE customer_id = $14 AND version = $15",
            )
            .bind(c.name.as_str())
            .bind(&json.name_folded)
            .bind(&c.industry)
            .bind(&c.data_store)
            .bind(c.status.as_str())
            .bind(&json.tags)
            .bind(&json.attributes)
            .bind(c.contact.email.as_ref().map(|e| e.as_str()))
            .bind(&c.contact.name)
            .bind(&c.created_by)
            .bind(&c.usage_tier)
            .bind(c.version)
            .bind(c.updated_at)
            .bind(customer_id)
            .bind(expected_version)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 1 {
                return Ok(());
            }
            Err(customer_conflict(conn, customer_id, expected_version).await)
        }

        /// Why a customer update that expected `expected_version` changed no row.
        async fn customer_conflict(
            conn: &mut $conn,
            customer_id: &str,
            expected_version: i64,
        ) -> crate::store::StoreError {
            use crate::store::StoreError;
            let found: Result<Option<i64>, sqlx::Error> =
                sqlx::query_scalar("SELECT version FROM customers WHERE customer_id = $1")
                    .bind(customer_id)
                    .fetch_optional(&mut *conn)
                    .await;
            match found {
                Err(e) => e.into(),
                Ok(None) => StoreError::CustomerNotFound(customer_id.to_owned()),
                Ok(Some(found)) => StoreError::VersionConflict {
                    customer_id: customer_id.to_owned(),
                    expected: expected_version,
                    found,
                },
            }
        }

        /// `INSERT INTO events` for `sealed`, for a statement being built.
        fn push_events_insert<'a>(
            q: &mut sqlx::QueryBuilder<'a, $db>,
            sealed: &'a [crate::domain::event::SealedEvent],
        ) {
            q.push(
                "INSERT INTO events (chain, chain_seq, event_type, actor, customer_id, payload, \
                 occurred_at, request_id, prev_hash, hash) ",
            );
            q.push_values(sealed, |mut row, e| {
                row.push_bind(&e.chain)
                    .push_bind(e.chain_seq)
                    .push_bind(&e.event_type)
                    .push_bind(&e.actor)
                    .push_bind(&e.customer_id)
                    .push_bind(&e.payload)
                    .push_bind(&e.occurred_at)
                    .push_bind(&e.request_id)
                    .push_bind(&e.prev_hash)
                    .push_bind(&e.hash);
            });
        }

        /// `INSERT INTO customers` for `c`, for a statement being built.
        fn push_customer_insert<'a>(
            q: &mut sqlx::QueryBuilder<'a, $db>,
            c: &'a crate::domain::Customer,
            json: &'a crate::store::rows::CustomerJson,
        ) {
            q.push(
                "INSERT INTO customers (customer_id, customer_name, name_folded, industry, \
                 data_store, status, tags, attributes, contact_email, contact_name, created_by, \
                 usage_tier, test_clock_id, version, created_at, updated_at) ",
            );
            q.push_values([c], |mut row, c| {
                row.push_bind(c.id.as_str())
                    .push_bind(c.name.as_str())
                    .push_bind(&json.name_folded)
                    .push_bind(&c.industry)
                    .push_bind(&c.data_store)
                    .push_bind(c.status.as_str())
                    .push_bind(&json.tags)
                    .push_bind(&json.attributes)
                    .push_bind(c.contact.email.as_ref().map(|e| e.as_str()))
                    .push_bind(&c.contact.name)
                    .push_bind(&c.created_by)
                    .push_bind(&c.usage_tier)
                    .push_bind(&c.test_clock_id)
                    .push_bind(c.version)
                    .push_bind(c.created_at)
                    .push_bind(c.updated_at);
            });
        }

        /// Creates or updates a customer's dataset record inside the caller's transaction.
        async fn upsert_dataset_row(
            conn: &mut $conn,
            r: &crate::store::DatasetRecord,
        ) -> Result<(), crate::store::StoreError> {
            let mut q = sqlx::QueryBuilder::new("");
            push_dataset_upsert(&mut q, r);
            q.build().execute(&mut *conn).await?;
            Ok(())
        }

        /// The dataset record's upsert, for a statement being built.
        fn push_dataset_upsert<'a>(
            q: &mut sqlx::QueryBuilder<'a, $db>,
            r: &'a crate::store::DatasetRecord,
        ) {
            q.push(
                "INSERT INTO datasets (customer_id, dataset_id, data_store, tier, schema_version, \
                 tables, created_at, updated_at) ",
            );
            q.push_values([r], |mut row, r| {
                row.push_bind(&r.customer_id)
                    .push_bind(&r.dataset_id)
                    .push_bind(&r.data_store)
                    .push_bind(&r.tier)
                    .push_bind(r.schema_version)
                    .push_bind(sqlx::types::Json(&r.tables))
                    .push_bind(r.created_at)
                    .push_bind(r.updated_at);
            });
            q.push(
                " ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier, \
                 schema_version = excluded.schema_version, tables = excluded.tables, \
                 updated_at = excluded.updated_at",
            );
        }

        /// `INSERT INTO onboarding_runs` for `run`, for a statement being built.
        fn push_run_insert<'a>(q: &mut sqlx::QueryBuilder<'a, $db>, run: &'a crate::store::RunRecord) {
            q.push(
                "INSERT INTO onboarding_runs (customer_id, run_id, status, errors, started_at, \
                 finished_at, updated_at, lease_owner, lease_expires_ms) ",
            );
            q.push_values([run], |mut row, run| {
                row.push_bind(&run.customer_id)
                    .push_bind(&run.run_id)
                    .push_bind(run.status.as_str())
                    .push_bind(sqlx::types::Json(&run.errors))
                    .push_bind(run.started_at)
                    .push_bind(run.finished_at)
                    .push_bind(run.updated_at)
                    .push_bind(&run.lease_owner)
                    .push_bind(run.lease_expires_ms);
            });
        }

        /// `INSERT INTO onboarding_steps` for `steps` (at least one), for a statement being
        /// built.
        fn push_steps_insert<'a>(
            q: &mut sqlx::QueryBuilder<'a, $db>,
            customer_id: &'a str,
            run_id: &'a str,
            steps: &'a [crate::store::StepRecord],
        ) {
            q.push(
                "INSERT INTO onboarding_steps (customer_id, run_id, name, position, status, \
                 attempts, started_at, finished_at, error, completed_seq) ",
            );
            q.push_values(steps, |mut row, s| {
                row.push_bind(customer_id)
                    .push_bind(run_id)
                    .push_bind(&s.name)
                    .push_bind(s.position)
                    .push_bind(s.status.as_str())
                    .push_bind(s.attempts)
                    .push_bind(s.started_at)
                    .push_bind(s.finished_at)
                    .push_bind(&s.error)
                    .push_bind(s.completed_seq);
            });
        }

        /// The upsert that saves steps' new states (the rows exist; it only updates), for a
        /// statement being built.
        fn push_step_upsert<'a>(
            q: &mut sqlx::QueryBuilder<'a, $db>,
            customer_id: &'a str,
            run_id: &'a str,
            steps: &'a [crate::store::StepRecord],
        ) {
            push_steps_insert(q, customer_id, run_id, steps);
            q.push(
                " ON CONFLICT (customer_id, run_id, name) DO UPDATE SET status = excluded.status, \
                 attempts = excluded.attempts, started_at = excluded.started_at, \
                 finished_at = excluded.finished_at, error = excluded.error, \
                 completed_seq = excluded.completed_seq",
            );
        }

        /// Saves the credentials an onboarding request carried (sealed) with its new run.
        async fn insert_staged_rows(
            conn: &mut $conn,
            run: &crate::store::RunRecord,
        ) -> Result<(), crate::store::StoreError> {
            for c in &run.staged_credentials {
                sqlx::query(
                    "INSERT INTO staged_credentials (customer_id, run_id, credential_type, \
                     fingerprint, scopes, master_version, wrapped_key, key_nonce, ciphertext, nonce) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&run.customer_id)
                .bind(&run.run_id)
                .bind(&c.credential_type)
                .bind(&c.fingerprint)
                .bind(c.scopes.as_ref().map(sqlx::types::Json))
                .bind(i64::from(c.sealed.master_version))
                .bind(&c.sealed.wrapped_key)
                .bind(&c.sealed.key_nonce)
                .bind(&c.sealed.ciphertext)
                .bind(&c.sealed.nonce)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// Stores the idempotency record of the request that created `customer_id`, inside the
        /// caller's transaction; a key another request took is [`StoreError::IdempotencyKeyTaken`].
        ///
        /// [`StoreError::IdempotencyKeyTaken`]: crate::store::StoreError::IdempotencyKeyTaken
        async fn insert_idempotency_row(
            conn: &mut $conn,
            rec: &crate::store::IdempotencyRecord,
            customer_id: &str,
        ) -> Result<(), crate::store::StoreError> {
            let stored = sqlx::query(
                "INSERT INTO idempotency_keys (key, fingerprint, customer_id, status, body, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&rec.key)
            .bind(&rec.fingerprint)
            .bind(customer_id)
            .bind(i64::from(rec.status))
            .bind(&rec.body)
            .bind(rec.created_at)
            .execute(&mut *conn)
            .await;
            match stored {
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    Err(crate::store::StoreError::IdempotencyKeyTaken(rec.key.clone()))
                }
                other => other.map(|_| ()).map_err(Into::into),
            }
        }
    };
}

pub(crate) use row_writes;
pub(crate) use run_store;
