//! Credentials an onboarding request carries: sealed for its run, moved into the vault by
//! the `store_credentials` step, undone on rollback.

use super::*;

impl Vault {
    /// Seals the credentials of an onboarding request for its run to store (bound to version 0,
    /// the staging slot, of their type).
    pub(in crate::services) fn stage_credentials(
        &self,
        customer_id: &str,
        credentials: &std::collections::BTreeMap<String, SecretInput>,
    ) -> Vec<StagedCredential> {
        let master = self.keyring.current();
        credentials
            .iter()
            .map(|(t, v)| {
                let value = v.0.expose_secret().as_bytes();
                StagedCredential {
                    credential_type: t.clone(),
                    fingerprint: fingerprint(value),
                    scopes: None,
                    sealed: envelope::seal(
                        &master,
                        Binding {
                            customer_id,
                            credential_type: t,
                            version: 0,
                        },
                        value,
                        &mut OsRng,
                    ),
                }
            })
            .collect()
    }

    /// The `store_credentials` step: moves the run's staged credentials into the vault, then
    /// forgets them. Idempotent: a value already stored (same fingerprint, enabled) is skipped.
    pub(in crate::services) async fn store_staged_credentials(
        &self,
        customer: &CustomerId,
        run_id: &str,
    ) -> Result<(), VaultError> {
        let customer_id = customer.as_str();
        let actor = Actor::system();
        for staged in self.store.staged_credentials(customer, run_id).await? {
            let t = self.credential_type(&staged.credential_type)?;
            let stored = self
                .store
                .credential_versions(customer, &t.name)
                .await?
                .iter()
                .any(|v| v.fingerprint == staged.fingerprint && v.state == VersionState::Enabled);
            if stored {
                continue;
            }
            let keys = self.keyring.keys_with(staged.sealed.master_version);
            let plain = envelope::open(
                |n| keys.iter().find(|k| k.version == n),
                Binding {
                    customer_id,
                    credential_type: &t.name,
                    version: 0,
                },
                &staged.sealed,
            )
            .map_err(|_| VaultError::Unreadable(t.name.clone()))?;
            let value = SecretString::from(
                String::from_utf8(plain.to_vec())
                    .map_err(|_| VaultError::Unreadable(t.name.clone()))?,
            );
            self.store_with_retry(&actor, customer, t, &value, staged.scopes.clone())
                .await?;
        }
        self.store.clear_staged_credentials(customer).await?;
        Ok(())
    }

    /// Rolls back what `store_credentials` did, and forgets anything still staged.
    pub(in crate::services) async fn undo_credentials(
        &self,
        customer: &CustomerId,
        reason: &str,
    ) -> Result<(), VaultError> {
        let actor = Actor::system();
        self.destroy_all_credentials(&actor, customer, reason)
            .await?;
        self.forget_staged(customer).await
    }

    /// Forgets the credentials staged for the customer's run (a rollback's last word on them).
    pub(in crate::services) async fn forget_staged(
        &self,
        customer: &CustomerId,
    ) -> Result<(), VaultError> {
        Ok(self.store.clear_staged_credentials(customer).await?)
    }
}
