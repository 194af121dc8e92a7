//! Who may see a connector, and who may read its secrets: the two rules every read of a
//! connector goes through (the API, engine calls, components and stacks linking one, the
//! dashboard), so that they cannot drift apart.

use uuid::Uuid;

use crate::domain::Scope;
use crate::http::error::{ApiError, ApiResult};
use crate::store::Conn;
use crate::store::connectors::{self, ConnectorRow, ConnectorView};

/// A shared connector exists for every member; a private one for its owner alone.
fn may_see(scope: &Scope, connector: &ConnectorRow) -> bool {
    scope.can_see(connector.user_id, !connector.shared)
}

/// Reading the secret values of a visible connector owned by `owner` (in a response, or in a
/// client that carries them, or to edit them): its owner and workspace admins.
pub(in crate::http) fn may_read_secrets(scope: &Scope, owner: Option<Uuid>) -> bool {
    scope.may_read_secrets(owner)
}

/// The connector, if it exists for this caller.
pub(in crate::http) async fn visible(
    conn: &mut Conn,
    scope: &Scope,
    id: Uuid,
) -> ApiResult<ConnectorView> {
    let found = connectors::get(conn, scope.workspace_id, id).await?;
    visible_to(scope, id, found)
}

/// `found` if the scope's caller may see it; anyone else learns nothing about it.
pub(in crate::http) fn visible_to(
    scope: &Scope,
    id: Uuid,
    found: Option<ConnectorView>,
) -> ApiResult<ConnectorView> {
    found
        .filter(|c| may_see(scope, &c.connector))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Unable to get service connector with ID '{id}': No service connector with this ID found"
            ))
        })
}
