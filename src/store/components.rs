//! Stack components, their link to a service connector, and the secrets they use.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::query::{Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::secret_links::COMPONENT_SECRETS;
use super::users::{OWNER_COLUMNS, Owner, OwnerColumns};
use super::{
    Arg, Conn, StoreError, StoreResult, Unique, classify, execute, fetch_all, fetch_page,
    parse_json, with_conn,
};
use crate::stacks::ComponentType;

#[derive(Debug, Clone)]
pub struct Component {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub component_type: ComponentType,
    pub flavor: String,
    pub configuration: Map<String, Value>,
    pub environment: BTreeMap<String, String>,
    pub labels: Option<Map<String, Value>>,
    pub connector_id: Option<Uuid>,
    pub connector_resource_id: Option<String>,
    pub is_default: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A component with its owner's account.
#[derive(Debug, Clone)]
pub struct ComponentView {
    pub component: Component,
    pub owner: Option<Owner>,
}

/// A component's row as read, before its JSON columns are parsed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ComponentColumns {
    id: Uuid,
    workspace_id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    component_type: String,
    flavor: String,
    configuration: String,
    environment: String,
    labels: Option<String>,
    connector_id: Option<Uuid>,
    connector_resource_id: Option<String>,
    is_default: bool,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    #[sqlx(flatten)]
    owner: OwnerColumns,
}

impl ComponentColumns {
    pub(crate) fn parse(self) -> StoreResult<ComponentView> {
        let component_type = ComponentType::parse(&self.component_type).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "component {} has the unknown type '{}'",
                self.id, self.component_type
            ))
        })?;
        Ok(ComponentView {
            component: Component {
                id: self.id,
                workspace_id: self.workspace_id,
                user_id: self.user_id,
                name: self.name,
                component_type,
                flavor: self.flavor,
                configuration: parse_json("configuration", &self.configuration)?,
                environment: parse_json("environment", &self.environment)?,
                labels: self
                    .labels
                    .as_deref()
                    .map(|labels| parse_json("labels", labels))
                    .transpose()?,
                connector_id: self.connector_id,
                connector_resource_id: self.connector_resource_id,
                is_default: self.is_default,
                created: self.created,
                updated: self.updated,
            },
            owner: self.owner.owner(),
        })
    }
}

pub(crate) const COLUMNS: &str = "k.id, k.workspace_id, k.user_id, k.name, k.component_type, \
    k.flavor, k.configuration, k.environment, k.labels, k.connector_id, \
    k.connector_resource_id, k.is_default, k.created, k.updated";

const FROM: &str = "FROM stack_components k LEFT JOIN users u ON u.id = k.user_id";

/// What keeps component names apart within a workspace and component type.
pub const NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "stack_components_workspace_id_component_type_name_key",
    sqlite: "stack_components.workspace_id, stack_components.component_type, stack_components.name",
}];

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "k.id"),
    Field::new("name", FieldKind::Text, "k.name"),
    Field::new("type", FieldKind::Text, "k.component_type"),
    Field::new("flavor", FieldKind::Text, "k.flavor"),
    Field::new("connector_id", FieldKind::Uuid, "k.connector_id"),
    Field::new(
        "connector_resource_id",
        FieldKind::Text,
        "k.connector_resource_id",
    ),
    Field::new("user", FieldKind::Text, "u.name"),
    Field::new("user_id", FieldKind::Uuid, "k.user_id"),
    Field::new("created", FieldKind::Time, "k.created"),
    Field::new("updated", FieldKind::Time, "k.updated"),
];

fn json(value: &impl serde::Serialize) -> Arg {
    Arg::Text(serde_json::to_string(value).expect("JSON values serialise"))
}

/// The component's columns in table order, as `VALUES` takes them.
fn values(c: &Component) -> [Arg; 14] {
    [
        Arg::Uuid(c.id),
        Arg::Uuid(c.workspace_id),
        Arg::opt_uuid(c.user_id),
        Arg::Text(c.name.clone()),
        Arg::Text(c.component_type.as_str().to_owned()),
        Arg::Text(c.flavor.clone()),
        json(&c.configuration),
        json(&c.environment),
        c.labels.as_ref().map_or(Arg::opt_text(None), json),
        Arg::opt_uuid(c.connector_id),
        Arg::opt_text(c.connector_resource_id.as_deref()),
        Arg::Bool(c.is_default),
        Arg::Time(c.created),
        Arg::Time(c.updated),
    ]
}

const INSERT: &str = "INSERT INTO stack_components (id, workspace_id, user_id, name, \
    component_type, flavor, configuration, environment, labels, connector_id, \
    connector_resource_id, is_default, created, updated) VALUES ";

pub async fn insert(conn: &mut Conn, component: &Component) -> StoreResult<()> {
    let mut sql = SqlBuilder::new(INSERT);
    sql.bind_tuple(values(component));
    execute(conn, sql).await?;
    Ok(())
}

/// Writes `component` if its row is unchanged since it was read (last updated at
/// `read_updated`); else [`StoreError::Concurrent`].
pub async fn update(
    conn: &mut Conn,
    component: &Component,
    read_updated: DateTime<Utc>,
) -> StoreResult<()> {
    let mut sql = SqlBuilder::new("UPDATE stack_components SET name = ");
    sql.bind(Arg::Text(component.name.clone()));
    sql.push(", configuration = ")
        .bind(json(&component.configuration));
    sql.push(", environment = ")
        .bind(json(&component.environment));
    sql.push(", labels = ")
        .bind(component.labels.as_ref().map_or(Arg::opt_text(None), json));
    sql.push(", connector_id = ")
        .bind(Arg::opt_uuid(component.connector_id));
    sql.push(", connector_resource_id = ")
        .bind(Arg::opt_text(component.connector_resource_id.as_deref()));
    sql.push(", updated = ").bind(Arg::Time(component.updated));
    sql.push(" WHERE id = ").bind(Arg::Uuid(component.id));
    sql.push(" AND workspace_id = ")
        .bind(Arg::Uuid(component.workspace_id));
    sql.push(" AND updated = ").bind(Arg::Time(read_updated));
    match execute(conn, sql).await? {
        0 => Err(StoreError::Concurrent),
        _ => Ok(()),
    }
}

/// Deletes a component as read, unless stacks hold it ([`StoreError::Referenced`] with how
/// many) or it changed since ([`StoreError::Concurrent`]). Run inside a transaction: the row is
/// locked before the stacks are counted, so that no stack can take it up in between.
pub async fn delete(conn: &mut Conn, component: &Component) -> StoreResult<()> {
    let lock = format!(
        "SELECT updated FROM stack_components WHERE id = $1 AND workspace_id = $2{}",
        conn.dialect().row_lock(" FOR UPDATE")
    );
    let current: Option<DateTime<Utc>> = with_conn!(conn, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(lock.clone()))
            .bind(component.id)
            .bind(component.workspace_id)
            .fetch_optional(c)
            .await
    })
    .map_err(classify)?;
    match current {
        None => return Err(StoreError::NotFound),
        Some(updated) if updated != component.updated => return Err(StoreError::Concurrent),
        Some(_) => {}
    }
    let stacks = count(
        conn,
        "SELECT COUNT(*) FROM stack_members WHERE component_id = $1",
        component.id,
    )
    .await?;
    if stacks > 0 {
        return Err(StoreError::Referenced(stacks));
    }
    let mut delete = SqlBuilder::new("DELETE FROM stack_components WHERE id = ");
    delete.bind(Arg::Uuid(component.id));
    execute(conn, delete).await?;
    Ok(())
}

async fn count(conn: &mut Conn, sql: &'static str, id: Uuid) -> StoreResult<i64> {
    with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(c)
        .await)
    .map_err(classify)
}

/// How many components are linked to the connector.
pub async fn using_connector(conn: &mut Conn, connector_id: Uuid) -> StoreResult<i64> {
    count(
        conn,
        "SELECT COUNT(*) FROM stack_components WHERE connector_id = $1",
        connector_id,
    )
    .await
}

/// Unlinks every component from the private connectors of `user_id`, which are about to go
/// with the user.
pub async fn disconnect_private_connectors_of(conn: &mut Conn, user_id: Uuid) -> StoreResult<()> {
    let mut sql = SqlBuilder::new(
        "UPDATE stack_components SET connector_id = NULL, connector_resource_id = NULL \
         WHERE connector_id IN (SELECT id FROM service_connectors WHERE NOT shared AND user_id = ",
    );
    sql.bind(Arg::Uuid(user_id)).push(")");
    execute(conn, sql).await?;
    Ok(())
}

async fn fetch(conn: &mut Conn, sql: SqlBuilder) -> StoreResult<Vec<ComponentView>> {
    let rows: Vec<ComponentColumns> = fetch_all(conn, sql).await?;
    rows.into_iter().map(ComponentColumns::parse).collect()
}

pub async fn get(
    conn: &mut Conn,
    workspace_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<ComponentView>> {
    let mut sql = SqlBuilder::new(format!(
        "SELECT {COLUMNS}, {OWNER_COLUMNS} {FROM} WHERE k.workspace_id = "
    ));
    sql.bind(Arg::Uuid(workspace_id))
        .push(" AND k.id = ")
        .bind(Arg::Uuid(id));
    Ok(fetch(conn, sql).await?.pop())
}

/// The workspace's components of the given ids, in no particular order.
pub async fn get_many(
    conn: &mut Conn,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> StoreResult<Vec<ComponentView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = SqlBuilder::new(format!(
        "SELECT {COLUMNS}, {OWNER_COLUMNS} {FROM} WHERE k.workspace_id = "
    ));
    sql.bind(Arg::Uuid(workspace_id)).push(" AND k.id IN ");
    sql.bind_tuple(ids.iter().map(|id| Arg::Uuid(*id)));
    fetch(conn, sql).await
}

/// Whether the workspace has a component of this type and name.
pub async fn name_taken(
    conn: &mut Conn,
    workspace_id: Uuid,
    component_type: ComponentType,
    name: &str,
) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM stack_components \
               WHERE workspace_id = $1 AND component_type = $2 AND name = $3";
    let found: i64 = with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .bind(workspace_id)
        .bind(component_type.as_str())
        .bind(name)
        .fetch_one(c)
        .await)
    .map_err(classify)?;
    Ok(found > 0)
}

/// Filters outside the generic field conditions: they always narrow the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComponentFilter {
    /// Only components of this stack.
    pub stack_id: Option<Uuid>,
    /// Only components of this type.
    pub component_type: Option<ComponentType>,
}

/// The workspace's components, filtered and paged.
pub async fn list(
    conn: &mut Conn,
    workspace_id: Uuid,
    query: &ListQuery,
    filter: ComponentFilter,
) -> StoreResult<Listed<ComponentView>> {
    let dialect = conn.dialect();
    let mut from = SqlBuilder::new("");
    push_filtered(&mut from, dialect, workspace_id, query, filter, true);
    // The total needs the owners only to filter by them: a join per matching row, which was
    // most of a page's time with a thousand matches.
    let by_owner = query
        .conditions
        .iter()
        .any(|c| c.field.column.starts_with("u."));
    let mut total = SqlBuilder::numbered_after(from.args.len());
    total.push("SELECT COUNT(*) ");
    push_filtered(&mut total, dialect, workspace_id, query, filter, by_owner);
    let columns = format!("{COLUMNS}, {OWNER_COLUMNS}");
    let listed: Listed<ComponentColumns> = fetch_page(
        conn,
        &columns,
        from,
        query,
        query.order("k.id"),
        Some(total),
    )
    .await?;
    listed.try_map(ComponentColumns::parse)
}

/// `FROM` the workspace's components that pass the filters, joined to their owners when
/// `with_owners`.
fn push_filtered(
    sql: &mut SqlBuilder,
    dialect: super::Dialect,
    workspace_id: Uuid,
    query: &ListQuery,
    filter: ComponentFilter,
    with_owners: bool,
) {
    sql.push(match with_owners {
        true => FROM,
        false => "FROM stack_components k",
    });
    sql.push(" WHERE k.workspace_id = ")
        .bind(Arg::Uuid(workspace_id));
    if let Some(component_type) = filter.component_type {
        sql.push(" AND k.component_type = ")
            .bind(Arg::Text(component_type.as_str().to_owned()));
    }
    if let Some(stack_id) = filter.stack_id {
        sql.push(
            " AND EXISTS (SELECT 1 FROM stack_members m WHERE m.component_id = k.id AND m.stack_id = ",
        );
        sql.bind(Arg::Uuid(stack_id)).push(")");
    }
    sql.push_conditions(dialect, &query.conditions, query.any);
}

/// Replaces the secrets the component uses.
pub async fn set_secrets(conn: &mut Conn, component_id: Uuid, secrets: &[Uuid]) -> StoreResult<()> {
    COMPONENT_SECRETS.set(conn, component_id, secrets).await
}

/// Adds and removes secrets the component uses.
pub async fn change_secrets(
    conn: &mut Conn,
    component_id: Uuid,
    add: &[Uuid],
    remove: &[Uuid],
) -> StoreResult<()> {
    COMPONENT_SECRETS.remove(conn, component_id, remove).await?;
    COMPONENT_SECRETS.add(conn, component_id, add).await
}

/// The secrets each of the components uses.
pub async fn secrets_of(conn: &mut Conn, ids: &[Uuid]) -> StoreResult<BTreeMap<Uuid, Vec<Uuid>>> {
    COMPONENT_SECRETS.of(conn, ids).await
}
