//! A credential's life after it is stored: version states, revocation, rotation deadlines,
//! destruction with its customer's data, and rewrapping under a new master key.

use super::*;

impl Vault {
    /// Disables, enables or destroys one version; the newest enabled version becomes current.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn change_version(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
        version: i64,
        action: VersionAction,
    ) -> Result<Vec<VersionView>, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (mut record, mut versions) = self.load_credential(customer, credential_type).await?;
        let Some(v) = versions.iter_mut().find(|v| v.version == version) else {
            return Err(VaultError::NotFound(format!(
                "the {credential_type} credential of '{customer_id}' has no version {version}"
            )));
        };
        let to = match action {
            VersionAction::Disable => VersionState::Disabled,
            VersionAction::Enable => VersionState::Enabled,
            VersionAction::Destroy => VersionState::Destroyed,
        };
        if !v.state.can_become(to) {
            return Err(VaultError::VersionState(format!(
                "version {version} is {} and cannot become {}",
                v.state.as_str(),
                to.as_str()
            )));
        }
        if to == VersionState::Enabled && record.status == CredentialStatus::Revoked {
            return Err(VaultError::VersionState(
                "the credential is revoked: store a new value instead of enabling an old one"
                    .into(),
            ));
        }
        v.state = to;
        if to == VersionState::Destroyed {
            v.sealed = None;
        }
        let now = self.clock.now();
        record.current_version = versions
            .iter()
            .filter(|v| v.state == VersionState::Enabled)
            .map(|v| v.version)
            .max();
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            {
                let changed = CredentialVersionRef {
                    credential_type: credential_type.to_owned(),
                    version,
                };
                match to {
                    VersionState::Enabled => EventBody::CredentialVersionEnabled(changed),
                    VersionState::Disabled => EventBody::CredentialVersionDisabled(changed),
                    VersionState::Destroyed => EventBody::CredentialVersionDestroyed(changed),
                }
            },
            now,
        );
        self.store
            .save_credential(
                &record,
                None,
                &[VersionChange { version, state: to }],
                vec![event],
            )
            .await?;
        self.versions(actor, customer_id, credential_type).await
    }

    /// Revokes a credential: no version stays readable; with `destroy`, every value is erased.
    #[tracing::instrument(skip_all, fields(customer_id = customer_id))]
    pub async fn revoke(
        &self,
        actor: &Actor,
        customer_id: &str,
        credential_type: &str,
        destroy: bool,
    ) -> Result<CredentialView, VaultError> {
        actor.may(Role::Operator)?;
        let customer = &self.live_customer(customer_id).await?.id;
        self.credential_type(credential_type)?;
        let (mut record, mut versions) = self.load_credential(customer, credential_type).await?;
        let to = if destroy {
            VersionState::Destroyed
        } else {
            VersionState::Disabled
        };
        let changes: Vec<VersionChange> = versions
            .iter_mut()
            .filter(|v| {
                v.state == VersionState::Enabled || (destroy && v.state != VersionState::Destroyed)
            })
            .map(|v| {
                v.state = to;
                if destroy {
                    v.sealed = None;
                }
                VersionChange {
                    version: v.version,
                    state: to,
                }
            })
            .collect();
        let now = self.clock.now();
        record.status = CredentialStatus::Revoked;
        record.current_version = None;
        record.updated_at = now;
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialRevoked(CredentialRevoked {
                credential_type: credential_type.to_owned(),
                destroyed: destroy,
                versions: changes.iter().map(|c| c.version).collect(),
            }),
            now,
        );
        self.store
            .save_credential(&record, None, &changes, vec![event])
            .await?;
        Ok(self.view(&record, &versions))
    }

    /// Credentials whose rotation is due within `within_days` (or overdue), soonest first.
    #[tracing::instrument(skip_all)]
    pub async fn due(
        &self,
        _actor: &Actor,
        within_days: u32,
    ) -> Result<Vec<CredentialView>, VaultError> {
        if within_days > 3650 {
            return Err(
                Invalid::new("out_of_range", "within_days must be from 0 to 3650")
                    .at("within_days")
                    .into(),
            );
        }
        let before = self.clock.now() + Duration::days(i64::from(within_days));
        let records = self.store.credentials_due(before).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            let versions = self
                .store
                // Read from the registry: the customer id is its own.
                .credential_versions(
                    &CustomerId::from_trusted(r.customer_id.clone()),
                    &r.credential_type,
                )
                .await?;
            out.push(self.view(r, &versions));
        }
        Ok(out)
    }

    /// Erases every credential of a customer (onboarding rollback, offboarding with data);
    /// returns the types it had.
    pub(in crate::services) async fn destroy_all_credentials(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<Vec<String>, VaultError> {
        let customer_id = customer.as_str();
        let types: Vec<String> = self
            .store
            .credentials(customer)
            .await?
            .into_iter()
            .map(|r| r.credential_type)
            .collect();
        if types.is_empty() {
            return Ok(types);
        }
        let now = self.clock.now();
        let event = self.credential_event(
            actor,
            customer_id,
            EventBody::CredentialsDestroyed(CredentialsDestroyed {
                credential_types: types.clone(),
                reason: reason.to_owned(),
            }),
            now,
        );
        self.store
            .destroy_customer_credentials(customer, now, Some(event))
            .await?;
        Ok(types)
    }

    /// Rewraps every data key sealed under an older master key onto the current one, in
    /// batches; servers keep reading throughout. Returns how many were rewrapped.
    #[tracing::instrument(skip_all)]
    pub async fn rewrap(&self, actor: &Actor) -> Result<u64, VaultError> {
        actor.may(Role::Admin)?;
        let to = self.keyring.current();
        let mut total = 0;
        loop {
            let batch = self.store.versions_to_rewrap(to.version, 500).await?;
            if batch.is_empty() {
                break;
            }
            let mut rewrapped = Vec::with_capacity(batch.len());
            for mut v in batch {
                let Some(sealed) = &v.sealed else { continue };
                let from = sealed.master_version;
                let keys = self.keyring.keys_with(from);
                let fresh = envelope::rewrap(
                    |n| keys.iter().find(|k| k.version == n),
                    &to,
                    Binding {
                        customer_id: &v.customer_id,
                        credential_type: &v.credential_type,
                        version: v.version,
                    },
                    sealed,
                    &mut OsRng,
                )
                .map_err(|_| VaultError::Unreadable(v.credential_type.clone()))?;
                v.sealed = Some(fresh);
                rewrapped.push((v, from));
            }
            let changed = self.store.store_rewrapped(&rewrapped).await?;
            total += changed;
            if changed == 0 {
                break;
            }
        }
        self.events
            .append_event(NewEvent {
                body: EventBody::VaultRewrapped(VaultRewrapped {
                    master_key_version: to.version,
                    rewrapped: total,
                }),
                actor: actor.name.clone(),
                customer_id: None,
                occurred_at: self.clock.now(),
                request_id: actor.request_id.clone(),
            })
            .await?;
        Ok(total)
    }
}
