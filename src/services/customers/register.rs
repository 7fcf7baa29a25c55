//! Registering a customer: the request checked whole, the customer, its run (and, where the
//! registry holds datasets, its dataset) in one transaction, idempotent replays, then its run.

use super::*;

impl Customers {
    /// The `validate` step: every rule checked, every bad field named.
    fn validate_new(&self, req: &OnboardRequest) -> Result<Customer, Vec<FieldError>> {
        let p = &self.product;
        let mut errors = Vec::new();
        let id = required("customer_id", req.customer_id.as_deref(), &mut errors).and_then(|s| {
            collect(
                CustomerId::parse(&s, &p.customer_id),
                "customer_id",
                &mut errors,
            )
        });
        if let Some(id) = &id {
            let dataset_id = p.dataset_id(id.as_str());
            if p.provisions_datasets() && dataset_id.len() > 63 {
                errors.push(
                    Invalid::new(
                        "too_long",
                        format!("customer_id makes the dataset name '{dataset_id}' longer than 63 characters"),
                    )
                    .at("customer_id"),
                );
            }
        }
        let name = required("customer_name", req.customer_name.as_deref(), &mut errors)
            .and_then(|s| collect(CustomerName::parse(&s), "customer_name", &mut errors));
        let industry = required("industry", req.industry.as_deref(), &mut errors).and_then(|s| {
            collect(
                p.check_industry(&s).map(|_| s.clone()),
                "industry",
                &mut errors,
            )
        });
        let data_store = req
            .data_store
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        collect(p.check_data_store(&data_store), "data_store", &mut errors);
        let tags = Tags::parse("tags", &req.tags)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let attributes = p
            .check_attributes(&req.attributes, false)
            .map_err(|mut e| errors.append(&mut e))
            .ok();
        let contact = parse_contact(req.contact.as_ref(), &mut errors);
        let created_by = optional_text("created_by", req.created_by.as_deref(), 200, &mut errors);
        let usage_tier = match req.usage_tier.as_deref().or(p.default_tier.as_deref()) {
            Some(t) => collect(
                p.check_tier(t).map(|_| t.to_owned()),
                "usage_tier",
                &mut errors,
            ),
            None => None,
        };
        for (t, v) in &req.credentials {
            let field = format!("credentials.{t}");
            match p.credentials.get(t) {
                None => errors.push(
                    Invalid::new(
                        "unknown_credential_type",
                        format!("unknown credential type '{t}'"),
                    )
                    .at(field),
                ),
                Some(ct) => {
                    if let Err(crate::services::credentials::VaultError::Invalid(found)) =
                        crate::services::credentials::Vault::check_value(ct, &v.0, None)
                    {
                        errors.extend(found.into_iter().map(|e| FieldError {
                            field: field.clone(),
                            ..e
                        }));
                    }
                }
            }
        }
        if !req.credentials.is_empty() && !p.steps.iter().any(|s| s == "store_credentials") {
            errors.push(
                Invalid::new(
                    "no_store_credentials_step",
                    "this product's onboarding has no store_credentials step: store credentials with PUT .../credentials/{type} instead",
                )
                .at("credentials"),
            );
        }
        match (id, name, industry, tags, attributes) {
            (Some(id), Some(name), Some(industry), Some(tags), Some(attributes))
                if errors.is_empty() =>
            {
                let now = self.clock.now();
                Ok(Customer {
                    id,
                    name,
                    industry,
                    data_store,
                    status: CustomerStatus::INITIAL,
                    tags,
                    attributes,
                    contact,
                    created_by,
                    usage_tier,
                    test_clock_id: req.test_clock_id.clone(),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                })
            }
            _ => Err(errors),
        }
    }

    /// Onboards a customer: validates the request, then registers the customer and its event
    /// (and the idempotency record, when a key is given) in one transaction.
    #[tracing::instrument(skip_all, fields(customer_id = req.customer_id.as_deref().unwrap_or("")))]
    pub async fn onboard(
        &self,
        actor: &Actor,
        req: &OnboardRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Onboarded, CustomerError> {
        actor.may(Role::Operator)?;
        let fingerprint = hex::encode(Sha256::digest(
            serde_json::to_vec(req).expect("request serialises"),
        ));
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
            if let Some(replayed) = self.replay(key, &fingerprint).await? {
                return Ok(replayed);
            }
        }

        let started = self.clock.now();
        let clock_refusal = match &req.test_clock_id {
            None => None,
            Some(id) => match self.billing.check_test_clock(id).await {
                Ok(()) => None,
                Err(crate::services::billing::BillingError::TestClocksOff) => Some(
                    Invalid::new(
                        "test_clocks_off",
                        "test clocks are not available in production",
                    )
                    .at("test_clock_id"),
                ),
                Err(crate::services::billing::BillingError::TestClockNotFound(_)) => Some(
                    Invalid::new(
                        "unknown_test_clock",
                        format!(
                            "no test clock has id '{}'",
                            crate::domain::text::shorten(id, 64)
                        ),
                    )
                    .at("test_clock_id"),
                ),
                Err(crate::services::billing::BillingError::Store(e)) => {
                    return Err(CustomerError::Store(e))
                }
                Err(e) => return Err(CustomerError::Internal(e.to_string())),
            },
        };
        let customer = match (self.validate_new(req), clock_refusal) {
            (Ok(c), None) => c,
            (Ok(_), Some(e)) => return Err(CustomerError::Invalid(vec![e])),
            (Err(mut errors), refusal) => {
                errors.extend(refusal);
                return Err(CustomerError::Invalid(errors));
            }
        };
        let registered = self.clock.now();
        let run = self
            .onboarding
            .new_run(customer.id.as_str(), started, registered);
        let event = NewEvent {
            body: EventBody::CustomerRegistered(CustomerRegistered {
                customer: CustomerView::of(&customer, &self.product),
                run_id: Some(run.run_id.clone()),
                steps: self.product.steps.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(customer.id.clone()),
            occurred_at: registered,
            request_id: actor.request_id.clone(),
        };
        let idempotency = idempotency_key.map(|key| IdempotencyRecord {
            key: key.to_owned(),
            fingerprint: fingerprint.clone(),
            status: 201,
            body: json!({ "customer_id": customer.id }).to_string(),
            created_at: registered,
        });
        let mut run = run;
        run.staged_credentials = self
            .vault
            .stage_credentials(customer.id.as_str(), &req.credentials);
        let inserted = if self.provisions_at_registration(&customer) {
            // Atomic where it can be: the dataset lives in the registry's database, so the
            // customer, its run and its dataset are created in one transaction.
            let (spec, record, provisioned) = self.datasets.plan(&customer, None);
            for step in run
                .steps
                .iter_mut()
                .filter(|s| s.name == "provision_dataset")
            {
                step.status = step
                    .status
                    .transition(crate::domain::run::StepStatus::Succeeded)?;
                step.attempts = 1;
                step.started_at = Some(registered);
                step.finished_at = Some(registered);
                step.completed_seq = Some(registered.timestamp_micros());
            }
            self.store
                .insert_customer_with_dataset(
                    &customer,
                    vec![event, provisioned],
                    &run,
                    idempotency.as_ref(),
                    &spec,
                    &record,
                )
                .await
        } else {
            self.store
                .insert_customer(&customer, event, Some(&run), idempotency.as_ref())
                .await
                .map(|_| ())
        };
        if let Err(e) = inserted {
            let e = CustomerError::from(e);
            // A concurrent request with the same key registered the customer first; the insert
            // waited for its transaction, so its idempotency record is there to answer from.
            if let (
                CustomerError::Exists(_) | CustomerError::IdempotencyKeyInProgress(_),
                Some(key),
            ) = (&e, idempotency_key)
            {
                if let Some(replayed) = self.replay(key, &fingerprint).await? {
                    return Ok(replayed);
                }
            }
            return Err(e);
        }
        let customer_id = customer.id.clone();
        let (run, finished) = self.onboarding.drive_registered(run, customer).await?;
        tracing::info!(customer_id = %customer_id, status = %run.status, "onboarding finished");
        let customer = match finished {
            Some(c) => c,
            None => self.current(customer_id.as_str()).await?,
        };
        Ok(Onboarded {
            response: OnboardResponse {
                customer: CustomerView::of(&customer, &self.product),
                onboarding: self.onboarding.run_view(&run),
            },
            replayed: false,
        })
    }

    /// The answer to a request whose idempotency key was used before: `None` when it was not,
    /// the first request's outcome when it has finished, 409 `idempotency_key_in_progress`
    /// while it runs, 422 `idempotency_key_reused` when the key came with another request.
    async fn replay(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<Onboarded>, CustomerError> {
        let Some(rec) = self.store.get_idempotency(key).await? else {
            return Ok(None);
        };
        if rec.fingerprint != fingerprint {
            return Err(CustomerError::IdempotencyKeyReused(key.to_owned()));
        }
        let first: serde_json::Value = serde_json::from_str(&rec.body)
            .map_err(|e| CustomerError::Store(crate::store::StoreError::Corrupt(e.to_string())))?;
        let customer_id = first["customer_id"].as_str().unwrap_or_default();
        let (customer, onboarding) = self.onboarding.customer_with_run(customer_id).await?;
        if !onboarding.status.is_final() {
            return Err(CustomerError::IdempotencyKeyInProgress(key.to_owned()));
        }
        Ok(Some(Onboarded {
            response: OnboardResponse {
                customer,
                onboarding,
            },
            replayed: true,
        }))
    }

    /// Whether onboarding `customer` creates its dataset in the registering transaction: its
    /// data store lives in the registry's database and no injected fault needs the step alone.
    fn provisions_at_registration(&self, customer: &Customer) -> bool {
        self.product.provisions_datasets()
            && self.datasets.stores().in_registry(&customer.data_store)
            && self.store.provisions_datasets_in_registry()
            && !self.runner.faults.targets("provision_dataset")
    }
}
