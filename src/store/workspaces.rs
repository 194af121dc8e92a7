//! Workspaces (the tenants) and their members.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Field, FieldKind, ListQuery, Listed, SqlBuilder, bind_args};
use super::{Arg, Conn, StoreError, StoreResult, Unique, classify, fetch_page, with_conn};
use crate::domain::Role;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

const COLUMNS: &str = "w.id, w.name, w.display_name, w.description, w.created, w.updated";

/// What keeps workspace names apart.
pub const NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "workspaces_name_key",
    sqlite: "workspaces.name",
}];

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "w.id"),
    Field::new("name", FieldKind::Text, "w.name"),
    Field::new("display_name", FieldKind::Text, "w.display_name"),
    Field::new("created", FieldKind::Time, "w.created"),
    Field::new("updated", FieldKind::Time, "w.updated"),
];

pub async fn insert(conn: &mut Conn, ws: &WorkspaceRow) -> StoreResult<()> {
    let sql = "INSERT INTO workspaces (id, name, display_name, description, created, updated) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(ws.id)
            .bind(&ws.name)
            .bind(&ws.display_name)
            .bind(&ws.description)
            .bind(ws.created)
            .bind(ws.updated)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

pub async fn update(conn: &mut Conn, ws: &WorkspaceRow) -> StoreResult<()> {
    let sql = "UPDATE workspaces SET name = $1, display_name = $2, description = $3, updated = $4 \
               WHERE id = $5";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(&ws.name)
            .bind(&ws.display_name)
            .bind(&ws.description)
            .bind(ws.updated)
            .bind(ws.id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn delete(conn: &mut Conn, id: Uuid) -> StoreResult<()> {
    let done = with_conn!(conn, |c| {
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Finds a workspace by id (when the text is a UUID) or by name.
pub async fn by_name_or_id(conn: &mut Conn, name_or_id: &str) -> StoreResult<Option<WorkspaceRow>> {
    let (id, name) = split_ref(name_or_id);
    // An id match wins over a workspace that happens to be named like another one's id.
    let sql = format!(
        "SELECT {COLUMNS} FROM workspaces w WHERE w.id = $1 OR w.name = $2 \
         ORDER BY CASE WHEN w.id = $1 THEN 0 ELSE 1 END LIMIT 1"
    );
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .bind(name)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

/// `(id, name)` to match a reference against: a UUID matches either column.
fn split_ref(name_or_id: &str) -> (Uuid, &str) {
    (
        Uuid::parse_str(name_or_id).unwrap_or(Uuid::nil()),
        name_or_id,
    )
}

/// The workspaces `member` belongs to, or all of them when `member` is `None`.
pub async fn list(
    conn: &mut Conn,
    member: Option<Uuid>,
    query: &ListQuery,
) -> StoreResult<Listed<WorkspaceRow>> {
    let mut from = SqlBuilder::new("FROM workspaces w WHERE 1 = 1");
    if let Some(user) = member {
        from.push(" AND EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = w.id AND m.user_id = ");
        from.bind(Arg::Uuid(user));
        from.push(")");
    }
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    fetch_page(conn, COLUMNS, from, query, query.order("w.id"), None).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub role: String,
}

impl MembershipRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Member)
    }
}

/// The caller's membership in the workspace named or identified by `name_or_id`, if any.
pub async fn membership(
    conn: &mut Conn,
    user_id: Uuid,
    name_or_id: &str,
) -> StoreResult<Option<MembershipRow>> {
    let (id, name) = split_ref(name_or_id);
    let sql = "SELECT w.id AS workspace_id, w.name AS workspace_name, m.role FROM workspaces w \
               JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = $1 \
               WHERE w.id = $2 OR w.name = $3";
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sql)
            .bind(user_id)
            .bind(id)
            .bind(name)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

pub async fn membership_by_id(
    conn: &mut Conn,
    user_id: Uuid,
    workspace_id: Uuid,
) -> StoreResult<Option<MembershipRow>> {
    let sql = "SELECT w.id AS workspace_id, w.name AS workspace_name, m.role FROM workspaces w \
               JOIN workspace_members m ON m.workspace_id = w.id AND m.user_id = $1 \
               WHERE w.id = $2";
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sql)
            .bind(user_id)
            .bind(workspace_id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

/// Adds a member or changes their role.
pub async fn set_member(
    conn: &mut Conn,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO workspace_members (workspace_id, user_id, role, created) \
               VALUES ($1, $2, $3, $4) \
               ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(workspace_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

pub async fn remove_member(conn: &mut Conn, workspace_id: Uuid, user_id: Uuid) -> StoreResult<()> {
    let sql = "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(workspace_id)
            .bind(user_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub user_name: String,
    pub role: String,
    pub created: DateTime<Utc>,
}

pub async fn members(conn: &mut Conn, workspace_id: Uuid) -> StoreResult<Vec<MemberRow>> {
    let sql = "SELECT u.id AS user_id, u.name AS user_name, m.role, m.created \
               FROM workspace_members m JOIN users u ON u.id = m.user_id \
               WHERE m.workspace_id = $1 ORDER BY u.name";
    with_conn!(conn, repeatable, |c| sqlx::query_as(sql)
        .bind(workspace_id)
        .fetch_all(c)
        .await)
    .map_err(classify)
}

/// Who is asking, about which workspace: what every workspace-scoped request reads first.
#[derive(Debug, Clone, Copy)]
pub struct CallerKey<'a> {
    pub user_id: Uuid,
    /// The workspace's name or id; `None` for the caller's default workspace.
    pub workspace: Option<&'a str>,
    /// The API key the caller's token was issued for, if any.
    pub api_key_id: Option<Uuid>,
    /// The session the caller's token belongs to.
    pub session: Session,
}

/// A session, as its token names it: its own id and its generation among the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub generation: i64,
}

impl CallerKey<'_> {
    /// The values [`CALLER_FROM`] reads as `$1`…`$4`.
    pub(crate) fn args(&self) -> [Arg; 4] {
        let (id, name) = match self.workspace.map(split_ref) {
            Some((id, name)) => (Some(id), Some(name)),
            None => (None, None),
        };
        [
            Arg::Uuid(self.user_id),
            Arg::opt_uuid(id),
            Arg::opt_text(name),
            Arg::opt_uuid(self.api_key_id),
        ]
    }
}

/// A user, their membership of one workspace and the API key their token came from, read
/// together for every workspace-scoped request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallerInWorkspace {
    #[sqlx(rename = "caller_id")]
    pub user_id: Uuid,
    #[sqlx(rename = "caller_name")]
    pub user_name: String,
    #[sqlx(rename = "caller_is_admin")]
    pub is_admin: bool,
    #[sqlx(rename = "caller_active")]
    pub active: bool,
    #[sqlx(rename = "caller_default_workspace_id")]
    pub default_workspace_id: Option<Uuid>,
    #[sqlx(rename = "caller_workspace_id")]
    pub workspace_id: Option<Uuid>,
    #[sqlx(rename = "caller_workspace_name")]
    pub workspace_name: Option<String>,
    #[sqlx(rename = "caller_role")]
    pub role: Option<String>,
    #[sqlx(rename = "caller_key_active")]
    key_active: Option<bool>,
    #[sqlx(rename = "caller_key_owner")]
    key_owner: Option<Uuid>,
    #[sqlx(rename = "caller_is_service_account")]
    pub is_service_account: bool,
    #[sqlx(rename = "caller_created")]
    pub created: DateTime<Utc>,
    #[sqlx(rename = "caller_updated")]
    pub updated: DateTime<Utc>,
    #[sqlx(rename = "caller_session_generation")]
    session_generation: i64,
    #[sqlx(rename = "caller_kept_session")]
    kept_session: Option<Uuid>,
}

impl CallerInWorkspace {
    /// A token issued for an API key is valid only while that key is active and its owner's.
    pub fn api_key_valid(&self, key: &CallerKey) -> bool {
        key.api_key_id.is_none()
            || (self.key_active == Some(true) && self.key_owner == Some(self.user_id))
    }

    /// A session is live while the user's sessions are of its generation, or it is the one a
    /// password change kept.
    pub fn session_live(&self, key: &CallerKey) -> bool {
        key.session.generation == self.session_generation
            || (!key.session.id.is_nil() && self.kept_session == Some(key.session.id))
    }

    /// The caller's token was issued for an API key.
    pub fn signed_in_with_api_key(&self) -> bool {
        self.key_owner.is_some()
    }
}

/// The columns of a [`CallerInWorkspace`], from [`CALLER_FROM`].
pub(crate) const CALLER_COLUMNS: &str = "cu.id AS caller_id, cu.name AS caller_name, \
    cu.is_admin AS caller_is_admin, cu.active AS caller_active, \
    cu.default_workspace_id AS caller_default_workspace_id, cw.id AS caller_workspace_id, \
    cw.name AS caller_workspace_name, cm.role AS caller_role, \
    ck.active AS caller_key_active, ck.service_account_id AS caller_key_owner, \
    cu.is_service_account AS caller_is_service_account, cu.created AS caller_created, \
    cu.updated AS caller_updated, cu.session_generation AS caller_session_generation, \
    cu.kept_session AS caller_kept_session";

/// The caller's tables, for a [`CallerKey`] bound as `$1`…`$4`; a query adds `WHERE cu.id = $1`,
/// and may join more tables on the membership (`cm`) before it.
pub(crate) const CALLER_FROM: &str = "FROM users cu \
    LEFT JOIN workspaces cw ON (cw.id = $2 OR cw.name = $3 \
        OR ($3 IS NULL AND cw.id = cu.default_workspace_id)) \
    LEFT JOIN workspace_members cm ON cm.workspace_id = cw.id AND cm.user_id = cu.id \
    LEFT JOIN api_keys ck ON ck.id = $4";

/// The caller with their membership of the workspace `key` names (their default workspace when
/// it names none) and the API key their token came from.
pub async fn caller_in_workspace(
    conn: &mut Conn,
    key: &CallerKey<'_>,
) -> StoreResult<Option<CallerInWorkspace>> {
    let sql = format!("SELECT {CALLER_COLUMNS} {CALLER_FROM} WHERE cu.id = $1");
    with_conn!(conn, repeatable, |c| {
        bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), key.args())
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

/// Every workspace `user_id` is a member of.
pub async fn list_of_member(conn: &mut Conn, user_id: Uuid) -> StoreResult<Vec<WorkspaceRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id \
         WHERE m.user_id = $1 ORDER BY w.created, w.id"
    );
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(user_id)
            .fetch_all(c)
            .await
    })
    .map_err(classify)
}

/// The workspaces in which the user is an administrator.
pub async fn administered_by(conn: &mut Conn, user_id: Uuid) -> StoreResult<Vec<Uuid>> {
    with_conn!(conn, repeatable, |c| {
        sqlx::query_scalar(
            "SELECT workspace_id FROM workspace_members WHERE user_id = $1 AND role = 'admin'",
        )
        .bind(user_id)
        .fetch_all(c)
        .await
    })
    .map_err(classify)
}
