//! Users, service accounts and their API keys.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::query::{Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::{Arg, Conn, StoreError, StoreResult, Unique, classify, fetch_page, with_conn};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub name: String,
    pub full_name: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub description: String,
    pub is_admin: bool,
    pub is_service_account: bool,
    pub active: bool,
    pub default_workspace_id: Option<Uuid>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The generation of the account's sessions; tokens of earlier ones are void. Written only
    /// by [`end_sessions`].
    pub session_generation: i64,
}

const COLUMNS: &str = "u.id, u.name, u.full_name, u.email, u.password_hash, u.description, \
                       u.is_admin, u.is_service_account, u.active, u.default_workspace_id, \
                       u.created, u.updated, u.session_generation";

/// What keeps account names (users and service accounts) apart.
pub const NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "users_name_key",
    sqlite: "users.name",
}];

/// What keeps a service account's API key names apart.
pub const API_KEY_NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "api_keys_service_account_id_name_key",
    sqlite: "api_keys.service_account_id, api_keys.name",
}];

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "u.id"),
    Field::new("name", FieldKind::Text, "u.name"),
    Field::new("full_name", FieldKind::Text, "u.full_name"),
    Field::new("email", FieldKind::Text, "u.email"),
    Field::new("active", FieldKind::Bool, "u.active"),
    Field::new("is_admin", FieldKind::Bool, "u.is_admin"),
    Field::new("created", FieldKind::Time, "u.created"),
    Field::new("updated", FieldKind::Time, "u.updated"),
];

pub async fn insert(conn: &mut Conn, user: &UserRow) -> StoreResult<()> {
    let sql = "INSERT INTO users (id, name, full_name, email, password_hash, description, is_admin, \
               is_service_account, active, default_workspace_id, created, updated) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(user.id)
            .bind(&user.name)
            .bind(&user.full_name)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.description)
            .bind(user.is_admin)
            .bind(user.is_service_account)
            .bind(user.active)
            .bind(user.default_workspace_id)
            .bind(user.created)
            .bind(user.updated)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

impl UserRow {
    /// Marks the row as changed at `now`, and later than its last change whatever the clock
    /// says; returns when it was last changed before, for [`update`].
    pub fn touch(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        super::touch(&mut self.updated, now)
    }
}

/// Writes `user` if its row is unchanged since it was read, when it was last updated at
/// `read_updated`; otherwise (another request changed or deleted it meanwhile)
/// [`StoreError::Concurrent`], so that no change is silently undone.
pub async fn update(
    conn: &mut Conn,
    user: &UserRow,
    read_updated: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE users SET name = $1, full_name = $2, email = $3, password_hash = $4, \
               description = $5, is_admin = $6, active = $7, default_workspace_id = $8, \
               updated = $9 WHERE id = $10 AND updated = $11";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(&user.name)
            .bind(&user.full_name)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(&user.description)
            .bind(user.is_admin)
            .bind(user.active)
            .bind(user.default_workspace_id)
            .bind(user.updated)
            .bind(user.id)
            .bind(read_updated)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    if done == 0 {
        return Err(StoreError::Concurrent);
    }
    Ok(())
}

/// Ends every session of the account, but `keep` (the session that asked, if it should go on):
/// their tokens stop working at their next request, in every server process.
pub async fn end_sessions(conn: &mut Conn, id: Uuid, keep: Option<Uuid>) -> StoreResult<()> {
    let sql = "UPDATE users SET session_generation = session_generation + 1, kept_session = $1 \
               WHERE id = $2";
    with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(keep)
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: Uuid) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1");
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

pub async fn by_name(conn: &mut Conn, name: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE u.name = $1");
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(name)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

/// Looks a user up by id (when the text is a UUID) or else by name.
pub async fn by_name_or_id(conn: &mut Conn, name_or_id: &str) -> StoreResult<Option<UserRow>> {
    if let Ok(id) = Uuid::parse_str(name_or_id)
        && let Some(user) = get(conn, id).await?
    {
        return Ok(Some(user));
    }
    by_name(conn, name_or_id).await
}

pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    with_conn!(conn, repeatable, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM users"
    )
    .fetch_one(c)
    .await)
    .map_err(classify)
}

pub async fn list(
    conn: &mut Conn,
    service_accounts: bool,
    query: &ListQuery,
) -> StoreResult<Listed<UserRow>> {
    let mut from = SqlBuilder::new("FROM users u WHERE u.is_service_account = ");
    from.bind(Arg::Bool(service_accounts));
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    fetch_page(conn, COLUMNS, from, query, query.order("u.id"), None).await
}

/// Deletes a user with the private connectors and secrets only they could see; shared and
/// public ones stay, unowned. Run inside a transaction.
pub async fn delete(conn: &mut Conn, id: Uuid) -> StoreResult<()> {
    super::connectors::delete_private_of(conn, id).await?;
    let done = with_conn!(conn, |c| {
        sqlx::query("DELETE FROM secrets WHERE user_id = $1 AND private")
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *c)
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
pub struct ApiKeyRow {
    pub id: Uuid,
    pub service_account_id: Uuid,
    pub name: String,
    pub description: String,
    pub key_hash: String,
    pub active: bool,
    pub last_login: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

const KEY_COLUMNS: &str =
    "id, service_account_id, name, description, key_hash, active, last_login, created, updated";

pub async fn insert_api_key(conn: &mut Conn, key: &ApiKeyRow) -> StoreResult<()> {
    let sql =
        format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    with_conn!(conn, |c| {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(key.id)
            .bind(key.service_account_id)
            .bind(&key.name)
            .bind(&key.description)
            .bind(&key.key_hash)
            .bind(key.active)
            .bind(key.last_login)
            .bind(key.created)
            .bind(key.updated)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(classify)?;
    Ok(())
}

pub async fn api_key(conn: &mut Conn, id: Uuid) -> StoreResult<Option<ApiKeyRow>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
    with_conn!(conn, repeatable, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)
}

pub static KEY_FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "k.id"),
    Field::new("name", FieldKind::Text, "k.name"),
    Field::new("description", FieldKind::Text, "k.description"),
    Field::new("active", FieldKind::Bool, "k.active"),
    Field::new("last_login", FieldKind::Time, "k.last_login"),
    Field::new("created", FieldKind::Time, "k.created"),
    Field::new("updated", FieldKind::Time, "k.updated"),
];

/// A service account's API keys, filtered and paged.
pub async fn api_keys(
    conn: &mut Conn,
    service_account_id: Uuid,
    query: &ListQuery,
) -> StoreResult<Listed<ApiKeyRow>> {
    let mut from = SqlBuilder::new("FROM api_keys k WHERE k.service_account_id = ");
    from.bind(Arg::Uuid(service_account_id));
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    fetch_page(conn, KEY_COLUMNS, from, query, query.order("k.id"), None).await
}

pub async fn delete_api_key(
    conn: &mut Conn,
    service_account_id: Uuid,
    id: Uuid,
) -> StoreResult<()> {
    let sql = "DELETE FROM api_keys WHERE id = $1 AND service_account_id = $2";
    let done = with_conn!(conn, |c| {
        sqlx::query(sql)
            .bind(id)
            .bind(service_account_id)
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

pub async fn touch_api_key(conn: &mut Conn, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    let sql = "UPDATE api_keys SET last_login = $1 WHERE id = $2";
    with_conn!(conn, |c| sqlx::query(sql)
        .bind(now)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Two requests read the same account; the second to write must not undo the first's
    /// change (an administrator's demotion, say, undone by the user's own profile edit).
    #[tokio::test]
    async fn a_write_based_on_a_stale_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path(), 2).await.unwrap();
        let mut conn = store.conn().await.unwrap();
        let now = Utc::now();
        let id = Uuid::new_v4();
        let account = UserRow {
            id,
            name: "ursula".into(),
            full_name: String::new(),
            email: None,
            password_hash: None,
            description: String::new(),
            is_admin: true,
            is_service_account: false,
            active: true,
            default_workspace_id: None,
            created: now,
            updated: now,
            session_generation: 0,
        };
        insert(&mut conn, &account).await.unwrap();
        let mut demoted = get(&mut conn, id).await.unwrap().unwrap();
        let mut renamed = demoted.clone();

        demoted.is_admin = false;
        let read_updated = demoted.touch(now);
        update(&mut conn, &demoted, read_updated).await.unwrap();
        renamed.full_name = "Ursula".into();
        let read_updated = renamed.touch(now);
        let stale = update(&mut conn, &renamed, read_updated).await;
        assert!(matches!(stale, Err(StoreError::Concurrent)), "{stale:?}");

        let stored = get(&mut conn, id).await.unwrap().unwrap();
        assert!(!stored.is_admin);
        assert_eq!(stored.full_name, "");
    }
}

/// The account a record is shown with as its owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: Uuid,
    pub name: String,
    pub is_admin: bool,
    pub is_service_account: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// [`Owner`]'s columns, from `users u` joined to a record's `user_id` (all NULL without one).
pub(crate) const OWNER_COLUMNS: &str = "u.id AS owner_id, u.name AS owner_name, \
    u.is_admin AS owner_is_admin, u.is_service_account AS owner_is_service_account, \
    u.created AS owner_created, u.updated AS owner_updated";

/// [`OWNER_COLUMNS`] as read, before it is known whether there is an owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OwnerColumns {
    owner_id: Option<Uuid>,
    owner_name: Option<String>,
    owner_is_admin: Option<bool>,
    owner_is_service_account: Option<bool>,
    owner_created: Option<DateTime<Utc>>,
    owner_updated: Option<DateTime<Utc>>,
}

impl OwnerColumns {
    pub(crate) fn owner(self) -> Option<Owner> {
        Some(Owner {
            id: self.owner_id?,
            name: self.owner_name?,
            is_admin: self.owner_is_admin?,
            is_service_account: self.owner_is_service_account?,
            created: self.owner_created?,
            updated: self.owner_updated?,
        })
    }
}
