//! Who is calling, in which workspace, and the rules that decide what they may do. Every
//! endpoint asks these functions, so one rule serves the whole API.

use uuid::Uuid;

use super::{DomainError, DomainResult};

/// A caller's role inside one workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// The authenticated user (or service account) behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub name: String,
    /// A server administrator manages users and workspaces. It grants no access to the data
    /// inside a workspace the administrator is not a member of.
    pub is_admin: bool,
    pub is_service_account: bool,
    /// When the account was created and last changed.
    pub created: chrono::DateTime<chrono::Utc>,
    pub updated: chrono::DateTime<chrono::Utc>,
    pub default_workspace_id: Option<Uuid>,
    /// The API key the caller signed in with, whose deletion ends the access it gives.
    pub api_key_id: Option<Uuid>,
    /// The session the request comes from (nil for tokens issued before sessions had ids).
    pub session: Uuid,
}

impl Caller {
    pub fn require_server_admin(&self) -> DomainResult<()> {
        if self.is_admin {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "this operation is reserved to server administrators".into(),
            ))
        }
    }

    /// Users may read their own account; administrators may read any.
    pub fn may_read_user(&self, user_id: Uuid) -> bool {
        self.is_admin || self.user_id == user_id
    }
}

/// The workspace a request acts in, with the caller's role there. Holding a `Scope` proves the
/// caller is a member.
#[derive(Debug, Clone)]
pub struct Scope {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub caller: Caller,
    pub role: Role,
}

impl Scope {
    pub fn user_id(&self) -> Uuid {
        self.caller.user_id
    }

    pub fn is_workspace_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// A private record exists only for its owner; a public one for every member.
    pub fn can_see(&self, owner: Option<Uuid>, private: bool) -> bool {
        !private || owner == Some(self.user_id())
    }

    /// Reading a visible record's secret values: its owner or a workspace admin.
    pub fn may_read_secrets(&self, owner: Option<Uuid>) -> bool {
        owner == Some(self.user_id()) || self.is_workspace_admin()
    }

    /// Changing or deleting a visible record: its owner or a workspace admin.
    pub fn require_owner_or_admin(&self, owner: Option<Uuid>, what: &str) -> DomainResult<()> {
        if owner == Some(self.user_id()) || self.is_workspace_admin() {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "only the owner of this {what} or an admin of workspace '{}' may change it",
                self.workspace_name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(role: Role) -> Scope {
        Scope {
            workspace_id: Uuid::new_v4(),
            workspace_name: "ws".into(),
            caller: Caller {
                user_id: Uuid::new_v4(),
                name: "me".into(),
                is_admin: false,
                is_service_account: false,
                created: chrono::Utc::now(),
                updated: chrono::Utc::now(),
                default_workspace_id: None,
                api_key_id: None,
                session: Uuid::nil(),
            },
            role,
        }
    }

    #[test]
    fn private_records_are_visible_to_their_owner_only_even_for_workspace_admins() {
        let admin = scope(Role::Admin);
        let someone_else = Some(Uuid::new_v4());
        assert!(!admin.can_see(someone_else, true));
        assert!(admin.can_see(someone_else, false));
        assert!(admin.can_see(Some(admin.user_id()), true));
    }

    #[test]
    fn members_change_only_their_own_records_and_admins_any() {
        let member = scope(Role::Member);
        let other = Some(Uuid::new_v4());
        assert!(member.require_owner_or_admin(other, "secret").is_err());
        assert!(
            member
                .require_owner_or_admin(Some(member.user_id()), "secret")
                .is_ok()
        );
        assert!(
            scope(Role::Admin)
                .require_owner_or_admin(other, "secret")
                .is_ok()
        );
    }
}
