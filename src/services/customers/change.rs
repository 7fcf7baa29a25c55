//! Changing a customer: updates under the status machine and versions, and offboarding with
//! or without its data.

use super::*;

impl Customers {
    /// Exports (when asked) and drops the customer's dataset; returns the receipt.
    async fn delete_data(
        &self,
        actor: &Actor,
        customer: &Customer,
        export: bool,
        export_dir: Option<&Path>,
    ) -> Result<DeletionReceipt, CustomerError> {
        let dataset = self.store.get_dataset(&customer.id).await?;
        let export = if export {
            let dir = export_dir.map_or_else(|| self.runner.exports_dir.clone(), Path::to_path_buf);
            self.datasets.export(customer, &dir).await?
        } else {
            None
        };
        self.datasets
            .drop(customer.id.as_str(), "customer offboarded with its data")
            .await?;
        let credentials_destroyed = self
            .vault
            .destroy_all_credentials(actor, &customer.id, "customer offboarded with its data")
            .await?;
        let mut fields_cleared: Vec<String> = customer
            .attributes
            .keys()
            .map(|k| format!("attributes.{k}"))
            .collect();
        if customer.contact.email.is_some() {
            fields_cleared.push("contact.email".into());
        }
        if customer.contact.name.is_some() {
            fields_cleared.push("contact.name".into());
        }
        if customer.tags.iter().next().is_some() {
            fields_cleared.push("tags".into());
        }
        Ok(DeletionReceipt {
            customer_id: customer.id.to_string(),
            dataset_id: dataset.as_ref().map(|d| d.dataset_id.clone()),
            tables_removed: dataset.map(|d| d.tables).unwrap_or_default(),
            fields_cleared,
            deleted_at: self.clock.now(),
            deleted_by: actor.name.clone(),
            export,
            credentials_destroyed,
        })
    }

    /// Changes a customer. With `if_match`, refuses when the stored version differs.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn update(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &UpdateRequest,
        if_match: Option<i64>,
    ) -> Result<CustomerView, CustomerError> {
        actor.may(Role::Operator)?;
        let current = self.current(customer_id).await?;
        if current.status == CustomerStatus::Deleted {
            return Err(CustomerError::Deleted(customer_id.to_owned()));
        }
        let mut next = current.clone();
        let mut errors = Vec::new();
        if let Some(name) = &req.customer_name {
            if let Some(n) = collect(CustomerName::parse(name), "customer_name", &mut errors) {
                next.name = n;
            }
        }
        if let Some(tags) = &req.tags {
            match Tags::parse("tags", tags) {
                Ok(t) => next.tags = t,
                Err(mut e) => errors.append(&mut e),
            }
        }
        if let Some(attrs) = &req.attributes {
            let (removed, set): (Vec<_>, Vec<_>) = attrs.iter().partition(|(_, v)| v.is_null());
            let set: serde_json::Map<_, _> = set
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match self.product.check_attributes(&set, true) {
                Ok(parsed) => next.attributes.extend(parsed),
                Err(mut e) => errors.append(&mut e),
            }
            for (name, _) in removed {
                match self.product.attributes.get(name) {
                    Some(def) if def.required => errors.push(
                        Invalid::new(
                            "required",
                            format!("attribute '{name}' is required and cannot be removed"),
                        )
                        .at(format!("attributes.{name}")),
                    ),
                    _ => {
                        next.attributes.remove(name);
                    }
                }
            }
        }
        if let Some(contact) = &req.contact {
            next.contact = parse_contact(Some(contact), &mut errors);
        }
        if let Some(tier) = &req.usage_tier {
            if collect(self.product.check_tier(tier), "usage_tier", &mut errors).is_some() {
                next.usage_tier = Some(tier.clone());
            }
        }
        let status = match &req.status {
            Some(s) => collect(s.parse::<CustomerStatus>(), "status", &mut errors),
            None => None,
        };
        if !errors.is_empty() {
            return Err(CustomerError::Invalid(errors));
        }
        // The precondition after the body's own checks: a bad body is refused as such, whatever
        // version it names.
        if let Some(expected) = if_match {
            if expected != current.version {
                return Err(CustomerError::VersionMismatch {
                    customer_id: customer_id.to_owned(),
                    expected,
                    found: current.version,
                });
            }
        }
        if let Some(to) = status.filter(|s| *s != current.status) {
            if matches!(
                current.status,
                CustomerStatus::Pending | CustomerStatus::Failed
            ) {
                return Err(CustomerError::StatusOwnedByOnboarding(
                    customer_id.to_owned(),
                ));
            }
            if to.is_offboarded() {
                return Err(Invalid::new(
                    "use_offboard",
                    format!("status '{to}' is reached by offboarding the customer, which revokes its access and keeps or deletes its data"),
                )
                .at("status")
                .into());
            }
            next.status = current.status.transition(to)?;
        }
        if next.usage_tier != current.usage_tier
            && self.store.get_dataset(&current.id).await?.is_some()
        {
            // Provision what the new tier adds before the customer says it has it.
            self.datasets.provision_for(&next).await?;
        }
        self.save(actor, &current, next).await
    }

    /// Saves `next` over `current` with an event naming what changed; a change of nothing is
    /// not saved.
    async fn save(
        &self,
        actor: &Actor,
        current: &Customer,
        mut next: Customer,
    ) -> Result<CustomerView, CustomerError> {
        let before = CustomerView::of(current, &self.product);
        let after = CustomerView::of(&next, &self.product);
        let (b, a) = (
            serde_json::to_value(&before).unwrap(),
            serde_json::to_value(&after).unwrap(),
        );
        let mut changes = serde_json::Map::new();
        for (field, new_value) in a.as_object().into_iter().flatten() {
            let old_value = &b[field];
            if old_value != new_value && !matches!(field.as_str(), "updated_at" | "dataset_id") {
                changes.insert(field.clone(), json!({"from": old_value, "to": new_value}));
            }
        }
        if changes.is_empty() {
            return Ok(before);
        }
        next.version = current.version + 1;
        next.updated_at = self.clock.now();
        let status_only = changes.contains_key("status") && changes.len() == 1;
        let changed = CustomerChanged {
            changes,
            version: next.version,
        };
        let event = NewEvent {
            body: if status_only {
                EventBody::CustomerStatusChanged(changed)
            } else {
                EventBody::CustomerUpdated(changed)
            },
            actor: actor.name.clone(),
            customer_id: Some(next.id.clone()),
            occurred_at: next.updated_at,
            request_id: actor.request_id.clone(),
        };
        self.store
            .update_customer(&current.id, &next, current.version, event)
            .await?;
        Ok(CustomerView::of(&next, &self.product))
    }

    /// Offboards a customer: `inactive` with everything kept, or, with `delete_data` and a
    /// matching `confirm`, its dataset exported (when asked) and dropped, its contact and
    /// attributes removed, and a `deleted` tombstone with a deletion receipt.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn offboard(
        &self,
        actor: &Actor,
        customer_id: &str,
        req: &OffboardRequest,
        export_dir: Option<&std::path::Path>,
    ) -> Result<OffboardResult, CustomerError> {
        actor.may(Role::Operator)?;
        let mut errors = Vec::new();
        let reason = optional_text("reason", req.reason.as_deref(), 1000, &mut errors);
        if req.delete_data && req.confirm.as_deref() != Some(customer_id) {
            errors.push(
                Invalid::new(
                    "confirmation_required",
                    format!("deleting data is permanent: set confirm to the customer id ('{customer_id}')"),
                )
                .at("confirm"),
            );
        }
        if req.export && !req.delete_data {
            errors.push(
                Invalid::new(
                    "export_needs_delete",
                    "export is taken only when deleting data",
                )
                .at("export"),
            );
        }
        if !errors.is_empty() {
            return Err(CustomerError::Invalid(errors));
        }
        let current = self.current(customer_id).await?;
        if current.status == CustomerStatus::Deleted {
            return Err(CustomerError::Deleted(customer_id.to_owned()));
        }
        let to = if req.delete_data {
            CustomerStatus::Deleted
        } else {
            CustomerStatus::Inactive
        };
        let mut next = current.clone();
        next.status = current.status.transition(to)?;
        if let Some(run) = self.store.latest_run(&current.id).await? {
            if !run.status.is_final() {
                return Err(CustomerError::RunInProgress(customer_id.to_owned()));
            }
        }
        self.keys
            .revoke_all(actor, &current.id, "customer offboarded")
            .await?;
        self.accounts
            .offboard(actor, &current.id, req.delete_data)
            .await?;
        let receipt = if req.delete_data {
            Some(
                self.delete_data(actor, &current, req.export, export_dir)
                    .await?,
            )
        } else {
            None
        };
        if req.delete_data {
            next.contact = Contact::default();
            next.attributes.clear();
            next.tags = Tags::default();
        }
        next.version = current.version + 1;
        next.updated_at = self.clock.now();
        let event = NewEvent {
            body: EventBody::CustomerOffboarded(CustomerOffboarded {
                from_status: current.status,
                to_status: next.status,
                delete_data: req.delete_data,
                reason,
                version: next.version,
                receipt: receipt.clone(),
            }),
            actor: actor.name.clone(),
            customer_id: Some(next.id.clone()),
            occurred_at: next.updated_at,
            request_id: actor.request_id.clone(),
        };
        self.store
            .update_customer(&current.id, &next, current.version, event)
            .await?;
        Ok(OffboardResult {
            customer: CustomerView::of(&next, &self.product),
            data_deleted: req.delete_data,
            receipt,
        })
    }
}
