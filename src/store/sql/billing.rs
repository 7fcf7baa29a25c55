//! Test clocks and trials.

/// Implements [`BillingStore`](crate::store::billing::BillingStore) for a backend store type
/// (see [`crate::store::sql`] for what the backend provides).
macro_rules! billing_store {
    ($store:ty, $conn:ty) => {
        const _: () = {
            use crate::domain::{Event, NewEvent};
            use crate::store::billing::{
                AlertsFor, BillingStore, SubscriptionRecord, TestClockRecord, TrialRecord,
                UsageOutcome, UsageRecord, UsageTotal,
            };
            use crate::store::rows::{
                SubscriptionRow, TestClockRow, TrialRow, SUBSCRIPTION_COLUMNS, TRIAL_COLUMNS,
            };
            use crate::store::StoreError;

            /// Rows one multi-row statement writes at most: 8 parameters a usage row, well
            /// inside the 32,766 parameters SQLite allows a statement (PostgreSQL 65,535).
            const ROWS_PER_STATEMENT: usize = 2_000;

            /// Saves a changed trial inside the caller's transaction, if it is still at
            /// `expected_version`.
            async fn write_trial(
                conn: &mut $conn,
                t: &TrialRecord,
                expected_version: i64,
            ) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE trials SET plan = $1, status = $2, days = $3, extra_days = $4, \
                     extensions = $5, activated_at = $6, ends_at = $7, reminded_at = $8, \
                     ended_at = $9, next_at = $10, updated_at = $11, version = $12 \
                     WHERE customer_id = $13 AND version = $14",
                )
                .bind(&t.plan)
                .bind(t.trial.status.as_str())
                .bind(i64::from(t.trial.days))
                .bind(i64::from(t.trial.extra_days))
                .bind(i64::from(t.trial.extensions))
                .bind(t.trial.activated_at)
                .bind(t.trial.ends_at())
                .bind(t.reminded_at)
                .bind(t.ended_at)
                .bind(t.next_at)
                .bind(t.updated_at)
                .bind(t.version)
                .bind(&t.customer_id)
                .bind(expected_version)
                .execute(&mut *conn)
                .await?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::TrialChanged(t.customer_id.clone()));
                }
                Ok(())
            }

            /// The rows of `table` whose work is due by `$1`, earliest first, at most `$2`: of
            /// the customers on the test clock `$3` when one is named, else of those on real
            /// time.
            fn due_sql(
                columns: &str,
                table: &str,
                tiebreak: &str,
                test_clock: Option<&str>,
            ) -> String {
                let clock = if test_clock.is_some() {
                    "test_clock_id = $3"
                } else {
                    "test_clock_id IS NULL"
                };
                format!(
                    "SELECT {columns} FROM {table} \
                     WHERE next_at IS NOT NULL AND next_at <= $1 AND {clock} \
                     ORDER BY next_at, {tiebreak} LIMIT $2"
                )
            }

            /// The scheduled change's columns: kind, plan, cycle.
            fn scheduled(
                s: &SubscriptionRecord,
            ) -> (Option<&'static str>, Option<&str>, Option<&str>) {
                use crate::domain::subscription::ScheduledChange;
                match &s.subscription.scheduled {
                    None => (None, None, None),
                    Some(ScheduledChange::Cancel) => (Some("cancel"), None, None),
                    Some(ScheduledChange::Change { plan, cycle }) => {
                        (Some("change"), Some(plan.as_str()), Some(cycle.as_str()))
                    }
                }
            }

            #[async_trait::async_trait]
            impl BillingStore for $store {
                async fn insert_test_clock(
                    &self,
                    c: &TestClockRecord,
                    event: NewEvent,
                ) -> Result<Event, StoreError> {
                    let mut tx = self.write().await?;
                    sqlx::query(
                        "INSERT INTO test_clocks (test_clock_id, name, frozen_time, created_at, \
                         updated_at, version) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&c.test_clock_id)
                    .bind(&c.name)
                    .bind(c.frozen_time)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.version)
                    .execute(&mut *tx)
                    .await?;
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn get_test_clock(
                    &self,
                    id: &str,
                ) -> Result<Option<TestClockRecord>, StoreError> {
                    let row: Option<TestClockRow> = sqlx::query_as(
                        "SELECT test_clock_id, name, frozen_time, created_at, updated_at, version \
                         FROM test_clocks WHERE test_clock_id = $1",
                    )
                    .bind(id)
                    .fetch_optional(self.reads())
                    .await?;
                    Ok(row.map(TestClockRecord::from))
                }

                async fn list_test_clocks(
                    &self,
                    limit: u32,
                ) -> Result<Vec<TestClockRecord>, StoreError> {
                    let rows: Vec<TestClockRow> = sqlx::query_as(
                        "SELECT test_clock_id, name, frozen_time, created_at, updated_at, version \
                         FROM test_clocks ORDER BY created_at DESC, test_clock_id LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await?;
                    Ok(rows.into_iter().map(TestClockRecord::from).collect())
                }

                async fn update_test_clock(
                    &self,
                    c: &TestClockRecord,
                    expected_version: i64,
                    event: NewEvent,
                ) -> Result<Event, StoreError> {
                    let mut tx = self.write().await?;
                    let changed = sqlx::query(
                        "UPDATE test_clocks SET name = $1, frozen_time = $2, updated_at = $3, \
                         version = $4 WHERE test_clock_id = $5 AND version = $6",
                    )
                    .bind(&c.name)
                    .bind(c.frozen_time)
                    .bind(c.updated_at)
                    .bind(c.version)
                    .bind(&c.test_clock_id)
                    .bind(expected_version)
                    .execute(&mut *tx)
                    .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::TestClockChanged(c.test_clock_id.clone()));
                    }
                    let event = append(&mut tx, event).await?;
                    tx.commit().await?;
                    Ok(event)
                }

                async fn get_trial(
                    &self,
                    customer_id: &str,
                ) -> Result<Option<TrialRecord>, StoreError> {
                    let row: Option<TrialRow> = sqlx::query_as(&format!(
                        "SELECT {TRIAL_COLUMNS} FROM trials WHERE customer_id = $1"
                    ))
                    .bind(customer_id)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(TrialRecord::try_from).transpose()
                }

                async fn insert_trial(
                    &self,
                    t: &TrialRecord,
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let inserted = sqlx::query(&format!(
                        "INSERT INTO trials ({TRIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
                         $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                    ))
                    .bind(&t.customer_id)
                    .bind(&t.trial_id)
                    .bind(&t.plan)
                    .bind(t.trial.status.as_str())
                    .bind(i64::from(t.trial.days))
                    .bind(i64::from(t.trial.extra_days))
                    .bind(i64::from(t.trial.extensions))
                    .bind(t.activate_on.as_str())
                    .bind(t.trial.activated_at)
                    .bind(t.trial.ends_at())
                    .bind(t.reminded_at)
                    .bind(t.ended_at)
                    .bind(t.next_at)
                    .bind(&t.test_clock_id)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .bind(t.version)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            return Err(StoreError::TrialExists(t.customer_id.clone()));
                        }
                        other => {
                            other?;
                        }
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn update_trial(
                    &self,
                    t: &TrialRecord,
                    expected_version: i64,
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    write_trial(&mut tx, t, expected_version).await?;
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn live_subscription(
                    &self,
                    customer_id: &str,
                ) -> Result<Option<SubscriptionRecord>, StoreError> {
                    let row: Option<SubscriptionRow> = sqlx::query_as(&format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
                         WHERE customer_id = $1 AND status <> 'canceled'"
                    ))
                    .bind(customer_id)
                    .fetch_optional(self.reads())
                    .await?;
                    row.map(SubscriptionRecord::try_from).transpose()
                }

                async fn insert_subscription(
                    &self,
                    s: &SubscriptionRecord,
                    trial: Option<(&TrialRecord, i64)>,
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    if let Some((t, expected)) = trial {
                        write_trial(&mut tx, t, expected).await?;
                    }
                    let (kind, plan, cycle) = scheduled(s);
                    let inserted = sqlx::query(&format!(
                        "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, \
                         $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                    ))
                    .bind(&s.subscription_id)
                    .bind(&s.customer_id)
                    .bind(&s.subscription.plan)
                    .bind(&s.subscription.cycle)
                    .bind(i64::from(s.subscription.cycle_months))
                    .bind(s.subscription.status.as_str())
                    .bind(s.subscription.anchor)
                    .bind(s.currency.as_str())
                    .bind(kind)
                    .bind(plan)
                    .bind(cycle)
                    .bind(&s.trial_id)
                    .bind(s.canceled_at)
                    .bind(s.next_at)
                    .bind(&s.test_clock_id)
                    .bind(s.created_at)
                    .bind(s.updated_at)
                    .bind(s.version)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                            return Err(StoreError::SubscriptionExists(s.customer_id.clone()));
                        }
                        other => {
                            other?;
                        }
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn update_subscription(
                    &self,
                    s: &SubscriptionRecord,
                    expected_version: i64,
                    events: Vec<NewEvent>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write().await?;
                    let (kind, plan, cycle) = scheduled(s);
                    let changed = sqlx::query(
                        "UPDATE subscriptions SET plan = $1, cycle = $2, cycle_months = $3, \
                         status = $4, anchor = $5, scheduled_kind = $6, scheduled_plan = $7, \
                         scheduled_cycle = $8, canceled_at = $9, next_at = $10, updated_at = $11, \
                         version = $12 WHERE subscription_id = $13 AND version = $14",
                    )
                    .bind(&s.subscription.plan)
                    .bind(&s.subscription.cycle)
                    .bind(i64::from(s.subscription.cycle_months))
                    .bind(s.subscription.status.as_str())
                    .bind(s.subscription.anchor)
                    .bind(kind)
                    .bind(plan)
                    .bind(cycle)
                    .bind(s.canceled_at)
                    .bind(s.next_at)
                    .bind(s.updated_at)
                    .bind(s.version)
                    .bind(&s.subscription_id)
                    .bind(expected_version)
                    .execute(&mut *tx)
                    .await?;
                    if changed.rows_affected() == 0 {
                        return Err(StoreError::SubscriptionChanged(s.subscription_id.clone()));
                    }
                    append_all(&mut tx, events).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn due_subscriptions(
                    &self,
                    now: chrono::DateTime<chrono::Utc>,
                    test_clock: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<SubscriptionRecord>, StoreError> {
                    let sql = due_sql(SUBSCRIPTION_COLUMNS, "subscriptions", "subscription_id", test_clock);
                    let mut q = sqlx::query_as(&sql).bind(now).bind(i64::from(limit));
                    if let Some(clock) = test_clock {
                        q = q.bind(clock);
                    }
                    let rows: Vec<SubscriptionRow> = q.fetch_all(self.reads()).await?;
                    rows.into_iter().map(SubscriptionRecord::try_from).collect()
                }

                async fn record_usage(
                    &self,
                    events: &[UsageRecord],
                    received_at: chrono::DateTime<chrono::Utc>,
                    alerts_for: &AlertsFor<'_>,
                ) -> Result<(Vec<UsageOutcome>, Vec<UsageTotal>), StoreError> {
                    use std::collections::{BTreeMap, HashMap, HashSet};
                    if events.is_empty() {
                        return Ok((Vec::new(), Vec::new()));
                    }
                    let mut tx = self.write().await?;
                    // Inserted in key order, so concurrent batches lock alike (no deadlock),
                    // in statements of at most ROWS_PER_STATEMENT rows (each backend bounds the
                    // parameters of one statement: SQLite to 32,766, PostgreSQL to 65,535).
                    let mut ordered: Vec<&UsageRecord> = events.iter().collect();
                    ordered.sort_by(|a, b| {
                        (&a.customer_id, &a.event_id).cmp(&(&b.customer_id, &b.event_id))
                    });
                    let mut inserted: Vec<(String, String)> = Vec::with_capacity(events.len());
                    for chunk in ordered.chunks(ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO usage_events (customer_id, event_id, metric, value, \
                             occurred_at, period_start, payload_hash, received_at) ",
                        );
                        q.push_values(chunk, |mut row, e| {
                            row.push_bind(&e.customer_id)
                                .push_bind(&e.event_id)
                                .push_bind(&e.metric)
                                .push_bind(e.value)
                                .push_bind(e.occurred_at)
                                .push_bind(e.period_start)
                                .push_bind(&e.payload_hash)
                                .push_bind(received_at);
                        });
                        q.push(
                            " ON CONFLICT (customer_id, event_id) DO NOTHING \
                             RETURNING customer_id, event_id",
                        );
                        inserted.extend(
                            q.build_query_as::<(String, String)>()
                                .fetch_all(&mut *tx)
                                .await?,
                        );
                    }
                    let mut fresh: HashSet<(String, String)> = inserted.into_iter().collect();
                    let mut outcomes = Vec::with_capacity(events.len());
                    let mut others = Vec::new();
                    for e in events {
                        if fresh.remove(&(e.customer_id.clone(), e.event_id.clone())) {
                            outcomes.push(UsageOutcome::Accepted);
                        } else {
                            outcomes.push(UsageOutcome::Duplicate);
                            others.push(e);
                        }
                    }
                    // Events recorded before (or earlier in this batch): the same content is
                    // a duplicate, another a conflict.
                    let mut stored: HashMap<(String, String), String> = HashMap::new();
                    for chunk in others.chunks(400) {
                        let mut q = sqlx::QueryBuilder::new(
                            "SELECT customer_id, event_id, payload_hash FROM usage_events WHERE ",
                        );
                        for (i, e) in chunk.iter().enumerate() {
                            if i > 0 {
                                q.push(" OR ");
                            }
                            q.push("(customer_id = ")
                                .push_bind(&e.customer_id)
                                .push(" AND event_id = ")
                                .push_bind(&e.event_id)
                                .push(")");
                        }
                        let rows: Vec<(String, String, String)> =
                            q.build_query_as().fetch_all(&mut *tx).await?;
                        for (c, id, hash) in rows {
                            stored.insert((c, id), hash);
                        }
                    }
                    for (e, outcome) in events.iter().zip(outcomes.iter_mut()) {
                        if *outcome == UsageOutcome::Duplicate {
                            let same = stored
                                .get(&(e.customer_id.clone(), e.event_id.clone()))
                                .is_some_and(|h| *h == e.payload_hash);
                            if !same {
                                *outcome = UsageOutcome::Conflict;
                            }
                        }
                    }
                    // The totals, in key order (concurrent batches lock rows alike).
                    let mut sums: BTreeMap<(String, String, chrono::DateTime<chrono::Utc>, bool), (i64, i64)> =
                        BTreeMap::new();
                    for (e, outcome) in events.iter().zip(&outcomes) {
                        if *outcome != UsageOutcome::Accepted {
                            continue;
                        }
                        let entry = sums
                            .entry((e.customer_id.clone(), e.metric.clone(), e.period_start, e.max))
                            .or_insert((0, 0));
                        entry.0 = if e.max {
                            entry.0.max(e.contribution)
                        } else {
                            entry.0.saturating_add(e.contribution)
                        };
                        entry.1 += 1;
                    }
                    let mut totals = Vec::new();
                    for max in [false, true] {
                        let rows: Vec<_> = sums.iter().filter(|(k, _)| k.3 == max).collect();
                        for rows in rows.chunks(ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO usage_totals (customer_id, metric, period_start, total, \
                             events, updated_at) ",
                        );
                        q.push_values(rows.iter().copied(), |mut row, ((c, m, p, _), (total, n))| {
                            row.push_bind(c)
                                .push_bind(m)
                                .push_bind(*p)
                                .push_bind(*total)
                                .push_bind(*n)
                                .push_bind(received_at);
                        });
                        q.push(if max {
                            " ON CONFLICT (customer_id, metric, period_start) DO UPDATE SET \
                             total = CASE WHEN excluded.total > usage_totals.total \
                             THEN excluded.total ELSE usage_totals.total END, \
                             events = usage_totals.events + excluded.events, \
                             updated_at = excluded.updated_at"
                        } else {
                            " ON CONFLICT (customer_id, metric, period_start) DO UPDATE SET \
                             total = CASE WHEN usage_totals.total > 9223372036854775807 - excluded.total \
                             THEN 9223372036854775807 ELSE usage_totals.total + excluded.total END, \
                             events = usage_totals.events + excluded.events, \
                             updated_at = excluded.updated_at"
                        });
                        q.push(" RETURNING customer_id, metric, period_start, total, events");
                        let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>, i64, i64)> =
                            q.build_query_as().fetch_all(&mut *tx).await?;
                        totals.extend(rows.into_iter().map(
                            |(customer_id, metric, period_start, total, events)| UsageTotal {
                                customer_id,
                                metric,
                                period_start,
                                total,
                                events,
                            },
                        ));
                        }
                    }
                    for (a, event) in alerts_for(&totals) {
                        let done = sqlx::query(
                            "INSERT INTO usage_alerts (customer_id, metric, period_start, kind, \
                             reached_at) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (customer_id, metric, period_start, kind) DO NOTHING",
                        )
                        .bind(&a.customer_id)
                        .bind(&a.metric)
                        .bind(a.period_start)
                        .bind(a.kind)
                        .bind(a.reached_at)
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() == 1 {
                            append(&mut tx, event).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok((outcomes, totals))
                }

                async fn usage_totals(
                    &self,
                    customer_id: &str,
                    periods: &[(String, chrono::DateTime<chrono::Utc>)],
                ) -> Result<Vec<UsageTotal>, StoreError> {
                    if periods.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::new(
                        "SELECT customer_id, metric, period_start, total, events FROM usage_totals \
                         WHERE customer_id = ",
                    );
                    q.push_bind(customer_id).push(" AND (");
                    for (i, (metric, start)) in periods.iter().enumerate() {
                        if i > 0 {
                            q.push(" OR ");
                        }
                        q.push("(metric = ")
                            .push_bind(metric)
                            .push(" AND period_start = ")
                            .push_bind(*start)
                            .push(")");
                    }
                    q.push(")");
                    let rows: Vec<(String, String, chrono::DateTime<chrono::Utc>, i64, i64)> =
                        q.build_query_as().fetch_all(self.reads()).await?;
                    Ok(rows
                        .into_iter()
                        .map(|(customer_id, metric, period_start, total, events)| UsageTotal {
                            customer_id,
                            metric,
                            period_start,
                            total,
                            events,
                        })
                        .collect())
                }

                async fn pending_trials(
                    &self,
                    after: &str,
                    limit: u32,
                ) -> Result<Vec<TrialRecord>, StoreError> {
                    let rows: Vec<TrialRow> = sqlx::query_as(&format!(
                        "SELECT {TRIAL_COLUMNS} FROM trials WHERE status = 'pending' \
                         AND customer_id > $1 ORDER BY customer_id LIMIT $2"
                    ))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reads())
                    .await?;
                    rows.into_iter().map(TrialRecord::try_from).collect()
                }

                async fn due_trials(
                    &self,
                    now: chrono::DateTime<chrono::Utc>,
                    test_clock: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<TrialRecord>, StoreError> {
                    let sql = due_sql(TRIAL_COLUMNS, "trials", "customer_id", test_clock);
                    let mut q = sqlx::query_as(&sql).bind(now).bind(i64::from(limit));
                    if let Some(clock) = test_clock {
                        q = q.bind(clock);
                    }
                    let rows: Vec<TrialRow> = q.fetch_all(self.reads()).await?;
                    rows.into_iter().map(TrialRecord::try_from).collect()
                }
            }
        };
    };
}

pub(crate) use billing_store;
