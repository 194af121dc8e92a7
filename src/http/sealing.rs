//! Secret values sealed into, and opened from, secret rows: user secrets and the internal ones
//! behind connectors alike. The keyring binds each ciphertext to its secret's workspace and
//! id, so a row copied elsewhere does not open.

use uuid::Uuid;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::crypto::keyring::secret_aad;
use crate::domain::Scope;
use crate::domain::secret::SecretValues;
use crate::store::secrets::SecretRow;

/// Encrypts `values` into `row` with the active data key.
pub(super) async fn seal(
    state: &AppState,
    row: &mut SecretRow,
    values: &SecretValues,
) -> ApiResult<()> {
    let aad = secret_aad(row.workspace_id, row.id);
    let (key_id, ciphertext) = state.keyring.encrypt(&aad, &values.to_plaintext()).await?;
    row.key_id = key_id;
    row.ciphertext = ciphertext;
    Ok(())
}

/// The values of the secret `secret_id` of the workspace, from its stored ciphertext.
pub(super) async fn open(
    state: &AppState,
    workspace_id: Uuid,
    secret_id: Uuid,
    ciphertext: &[u8],
) -> ApiResult<SecretValues> {
    let plaintext = state
        .keyring
        .decrypt(&secret_aad(workspace_id, secret_id), ciphertext)
        .await?;
    SecretValues::from_plaintext(&plaintext)
        .ok_or_else(|| ApiError::Integrity("a stored secret does not hold a key/value map".into()))
}

/// Who sees a new secret.
#[derive(Debug, Clone, Copy)]
pub(super) enum Visibility {
    /// A user's secret: every member's, or only its owner's when private.
    User { private: bool },
    /// A connector's secret fields, never listed as a secret.
    Internal,
}

/// A new secret of the caller's, holding `values` sealed.
pub(super) async fn new_secret(
    state: &AppState,
    scope: &Scope,
    name: String,
    visibility: Visibility,
    values: &SecretValues,
) -> ApiResult<SecretRow> {
    let now = state.clock.now();
    let mut row = SecretRow {
        id: Uuid::new_v4(),
        workspace_id: scope.workspace_id,
        user_id: Some(scope.user_id()),
        name,
        private: matches!(visibility, Visibility::User { private: true }),
        internal: matches!(visibility, Visibility::Internal),
        key_id: Uuid::nil(),
        ciphertext: Vec::new(),
        revision: 1,
        created: now,
        updated: now,
    };
    seal(state, &mut row, values).await?;
    Ok(row)
}
