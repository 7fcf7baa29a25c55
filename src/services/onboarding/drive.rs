//! Driving a run: its ready steps side by side, retries with backoff, the activation that ends
//! it, the rollback that undoes it, and the recovery of runs whose process died.

use super::*;

impl Onboarding {
    /// Runs the run's remaining steps (or finishes its rollback) and returns its state after.
    /// `resumed` says the run was taken over from a process that stopped: its running steps
    /// run again as new attempts. Losing the lease to another process is not an error: that
    /// process carries on.
    pub(in crate::services) async fn drive(
        &self,
        run: RunRecord,
        resumed: bool,
    ) -> Result<RunRecord, RunError> {
        Ok(self.drive_with(run, resumed, None).await?.0)
    }

    /// [`Onboarding::drive`] for a run just registered with `customer`, which the run need not
    /// read again; returns the customer as the run left it when the run saved it.
    pub(in crate::services) async fn drive_registered(
        &self,
        run: RunRecord,
        customer: Customer,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        self.drive_with(run, false, Some(customer)).await
    }

    async fn drive_with(
        &self,
        run: RunRecord,
        resumed: bool,
        known: Option<Customer>,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        let customer_id = run.customer_id.clone();
        let outcome = match run.status {
            RunStatus::Compensating => {
                let errors = run.errors.clone();
                self.compensate(run, errors, Progress::default())
                    .await
                    .map(|run| (run, None))
            }
            RunStatus::Running => self.advance(run, resumed, known).await,
            _ => return Ok((run, None)),
        };
        match outcome {
            Ok(done) => Ok(done),
            Err(RunError::Store(StoreError::LeaseLost { .. })) => Ok((
                self.latest_run_of(&CustomerId::from_trusted(customer_id))
                    .await?,
                None,
            )),
            Err(e) => Err(e),
        }
    }

    /// Saves the progress gathered so far, with any run status and customer change, renewing
    /// the lease.
    async fn save_progress(
        &self,
        run: &RunRecord,
        progress: &mut Progress,
        status: Option<RunStatus>,
        customer: Option<(&Customer, i64)>,
    ) -> Result<DateTime<Utc>, RunError> {
        let now = self.clock.now();
        let update = RunUpdate {
            steps: &progress.steps,
            lease_until_ms: now_ms(now) + self.runner.lease.as_millis() as i64,
            status,
            errors: status.map(|_| run.errors.as_slice()),
            at: now,
            customer,
            dataset: progress.dataset.as_ref(),
            events: std::mem::take(&mut progress.events),
        };
        self.runs
            .update_run(&run_customer(run), &run.run_id, &self.runner.owner, update)
            .await?;
        progress.steps.clear();
        progress.dataset = None;
        Ok(now)
    }

    async fn advance(
        &self,
        mut run: RunRecord,
        resumed: bool,
        known: Option<Customer>,
    ) -> Result<(RunRecord, Option<Customer>), RunError> {
        // A customer registered by this very call has no dataset record yet: provisioning
        // need not look for one.
        let fresh = known.is_some() && !resumed;
        let customer = match known {
            Some(c) => c,
            None => self.current(&run.customer_id).await?,
        };
        let mut progress = Progress::default();
        if resumed {
            let now = self.clock.now();
            for step in run
                .steps
                .iter_mut()
                .filter(|s| s.status == StepStatus::Running)
            {
                step.attempts += 1;
                step.started_at = Some(now);
                progress.record(step);
            }
        }
        loop {
            let states: Vec<(String, StepStatus)> = run
                .steps
                .iter()
                .map(|s| (s.name.clone(), s.status))
                .collect();
            let ready: Vec<String> = ready_steps(&states)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if ready.is_empty() {
                break;
            }
            if ready.iter().any(|s| s == "activate") {
                let (run, customer) = self.finish_success(run, progress, customer).await?;
                return Ok((run, Some(customer)));
            }
            let now = self.clock.now();
            let mut writes = false;
            for step in run
                .steps
                .iter_mut()
                .filter(|s| ready.contains(&s.name) && s.status == StepStatus::Pending)
            {
                step.status = step.status.transition(StepStatus::Running)?;
                step.attempts += 1;
                step.started_at = Some(now);
                step.finished_at = None;
                progress.record(step);
                writes |= !step_kind(&step.name).is_some_and(|k| k.read_only);
            }
            // A step that may change something is marked running before it starts, so a crash
            // leaves a record of what to undo or run again; read-only steps are recorded with
            // the next write.
            if writes {
                self.save_progress(&run, &mut progress, None, None).await?;
            }
            let results = join_all(
                ready
                    .iter()
                    .map(|name| self.execute_step(&run, &customer, name, fresh)),
            )
            .await;
            let mut failures = Vec::new();
            for result in results {
                let step = match result {
                    Ok((step, dataset)) => {
                        if let Some((record, event)) = dataset {
                            progress.dataset = Some(record);
                            progress.events.push(event);
                        }
                        step
                    }
                    Err((step, error)) => {
                        failures.push(error);
                        step
                    }
                };
                progress.record(&step);
                if let Some(slot) = run.steps.iter_mut().find(|s| s.name == step.name) {
                    *slot = step;
                }
            }
            if !failures.is_empty() {
                let mut errors = run.errors.clone();
                errors.extend(failures);
                return Ok((self.compensate(run, errors, progress).await?, None));
            }
        }
        if run.steps.iter().all(|s| s.status == StepStatus::Succeeded) {
            let (run, customer) = self.finish_success(run, progress, customer).await?;
            return Ok((run, Some(customer)));
        }
        if !progress.steps.is_empty() {
            self.save_progress(&run, &mut progress, None, None).await?;
        }
        Ok((run, None))
    }

    /// Runs one step (already marked running) to success or permanent failure, retrying
    /// transient failures; each retry is saved, so attempts count across restarts.
    async fn execute_step(
        &self,
        run: &RunRecord,
        customer: &Customer,
        name: &str,
        fresh: bool,
    ) -> Result<(StepRecord, Option<(DatasetRecord, NewEvent)>), (StepRecord, String)> {
        let mut step = run
            .steps
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .expect("ready steps are the run's");
        let retry = self.product.retry;
        loop {
            let outcome = match self
                .runner
                .faults
                .apply(name, &run.customer_id, step.attempts)
                .await
            {
                Injected::Transient => Err(StepError {
                    transient: true,
                    message: "injected transient fault".into(),
                }),
                Injected::Permanent => Err(StepError::permanent("injected permanent fault")),
                Injected::None => match self.steps.get(name) {
                    Some(step) => {
                        let cx = StepContext {
                            onboarding: self,
                            run,
                            customer,
                            fresh,
                        };
                        step.perform(&cx).await
                    }
                    // The services refuse to start with a product step that has no
                    // implementation, so a run never names one.
                    None => Err(StepError::permanent(format!(
                        "no step '{name}' is registered"
                    ))),
                },
            };
            let now = self.clock.now();
            match outcome {
                Ok(dataset) => {
                    step.status = match step.status.transition(StepStatus::Succeeded) {
                        Ok(next) => next,
                        Err(e) => return Err((step, e.to_string())),
                    };
                    step.finished_at = Some(now);
                    step.error = None;
                    step.completed_seq = Some(now.timestamp_micros());
                    return Ok((step, dataset));
                }
                Err(e) if e.transient && (step.attempts as u32) < retry.max_attempts => {
                    tracing::warn!(customer_id = %run.customer_id, step = name, attempt = step.attempts, error = %e.message, "step failed; retrying");
                    let wait = backoff(
                        step.attempts as u32,
                        Duration::from_millis(retry.base_ms),
                        Duration::from_millis(retry.max_ms),
                        0.5,
                        rand::thread_rng().gen::<f64>(),
                    );
                    tokio::time::sleep(wait).await;
                    step.attempts += 1;
                    step.started_at = Some(self.clock.now());
                    step.error = Some(e.message);
                    let mut progress = Progress::default();
                    progress.record(&step);
                    if let Err(e) = self.save_progress(run, &mut progress, None, None).await {
                        return Err((step, format!("{name}: {e}")));
                    }
                }
                Err(e) => {
                    step.status = match step.status.transition(StepStatus::Failed) {
                        Ok(next) => next,
                        Err(e) => return Err((step, e.to_string())),
                    };
                    step.finished_at = Some(now);
                    let message = format!(
                        "{name} failed after {} attempt(s): {}",
                        step.attempts, e.message
                    );
                    step.error = Some(message.clone());
                    tracing::warn!(customer_id = %run.customer_id, step = name, error = %message, "step failed for good");
                    return Err((step, message));
                }
            }
        }
    }

    /// The `activate` step: the customer goes live and the run succeeds, in one transaction
    /// with the progress not yet saved. `customer` is the record as the run read it at its
    /// start; if it changed since (an update during the run), it is read again and the
    /// transaction repeated once. Returns the customer as saved.
    async fn finish_success(
        &self,
        mut run: RunRecord,
        mut progress: Progress,
        customer: Customer,
    ) -> Result<(RunRecord, Customer), RunError> {
        let now = self.clock.now();
        for step in run.steps.iter_mut().filter(|s| s.name == "activate") {
            step.status = step.status.transition(StepStatus::Succeeded)?;
            step.attempts += 1;
            step.started_at = Some(now);
            step.finished_at = Some(now);
            step.completed_seq = Some(now.timestamp_micros());
            progress.record(step);
        }
        run.status = run.status.transition(RunStatus::Succeeded)?;
        let mut customer = customer;
        let mut reread = false;
        loop {
            if reread {
                customer = self.current(&run.customer_id).await?;
            }
            let mut next = customer.clone();
            if customer.status == CustomerStatus::Pending {
                next.status = customer.status.transition(CustomerStatus::Active)?;
                next.version += 1;
                next.updated_at = now;
            }
            let mut attempt_progress = progress.clone();
            attempt_progress.events.push(NewEvent {
                body: EventBody::CustomerActivated(RunFinished {
                    run_id: run.run_id.clone(),
                    version: next.version,
                }),
                actor: "onramp".into(),
                customer_id: Some(customer.id.clone()),
                occurred_at: now,
                request_id: None,
            });
            let change = (next.status != customer.status).then_some((&next, customer.version));
            match self
                .save_progress(
                    &run,
                    &mut attempt_progress,
                    Some(RunStatus::Succeeded),
                    change,
                )
                .await
            {
                Ok(saved) => {
                    run.finished_at = Some(saved);
                    return Ok((run, next));
                }
                Err(RunError::VersionMismatch { .. }) if !reread => reread = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Undoes every step that did anything, newest first, then marks the run and the customer
    /// failed. Left `compensating` (for a later resume) if an undo keeps failing.
    async fn compensate(
        &self,
        mut run: RunRecord,
        errors: Vec<String>,
        mut progress: Progress,
    ) -> Result<RunRecord, RunError> {
        run.errors = errors;
        if run.status != RunStatus::Compensating {
            run.status = run.status.transition(RunStatus::Compensating)?;
            // Whatever the failed round produced is undone below; only its step records stay.
            progress.dataset = None;
            progress.events.clear();
            self.save_progress(&run, &mut progress, Some(RunStatus::Compensating), None)
                .await?;
        }
        let states: Vec<_> = run
            .steps
            .iter()
            .map(|s| (s.status, s.attempts, s.completed_seq))
            .collect();
        for i in compensation_order(&states) {
            if let Some(step) = self.steps.get(&run.steps[i].name) {
                step.compensate(self, &run_customer(&run), "onboarding rolled back")
                    .await?;
            }
            let step = &mut run.steps[i];
            if step.status == StepStatus::Succeeded {
                step.status = step.status.transition(StepStatus::Compensated)?;
                progress.record(step);
            }
        }
        // Credentials staged for a step that never ran must not outlive the run, and no key
        // issued meanwhile outlives it either.
        self.vault.forget_staged(&run_customer(&run)).await?;
        self.keys
            .revoke_all(
                &crate::services::Actor::system(),
                &run_customer(&run),
                "onboarding rolled back",
            )
            .await?;
        let now = self.clock.now();
        for step in run
            .steps
            .iter_mut()
            .filter(|s| s.status == StepStatus::Pending)
        {
            step.status = step.status.transition(StepStatus::Skipped)?;
            progress.record(step);
        }
        let customer = self.current(&run.customer_id).await?;
        let mut next = customer.clone();
        if let Ok(failed) = customer.status.transition(CustomerStatus::Failed) {
            next.status = failed;
            next.version += 1;
            next.updated_at = now;
        }
        progress.events.push(NewEvent {
            body: EventBody::CustomerOnboardingFailed(OnboardingFailed {
                run_id: run.run_id.clone(),
                errors: run.errors.clone(),
                version: next.version,
            }),
            actor: "onramp".into(),
            customer_id: Some(customer.id.clone()),
            occurred_at: now,
            request_id: None,
        });
        run.status = run.status.transition(RunStatus::Failed)?;
        let change = (next.status != customer.status).then_some((&next, customer.version));
        let saved = self
            .save_progress(&run, &mut progress, Some(RunStatus::Failed), change)
            .await?;
        run.finished_at = Some(saved);
        Ok(run)
    }

    /// Takes over runs whose lease has run out (their process died or hung) and drives each to
    /// its end. Returns how many it took.
    #[tracing::instrument(skip_all)]
    pub async fn recover(&self) -> Result<usize, RunError> {
        let now = now_ms(self.clock.now());
        let claimed = self
            .runs
            .claim_runs(
                now,
                &self.runner.owner,
                self.runner.lease.as_millis() as i64,
                32,
            )
            .await?;
        for (customer_id, run_id) in &claimed {
            // The claimed runs' customer ids are the registry's own.
            let customer = CustomerId::from_trusted(customer_id.clone());
            let run = self.latest_run_of(&customer).await?;
            if &run.run_id != run_id {
                continue;
            }
            tracing::info!(customer_id = %customer_id, run_id = %run_id, status = %run.status, "resuming onboarding run");
            if let Err(e) = self.drive(run, true).await {
                tracing::error!(customer_id = %customer_id, error = %e, "resumed run failed");
            }
        }
        Ok(claimed.len())
    }
}
