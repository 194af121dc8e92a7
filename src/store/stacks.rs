//! Stacks, the components they are made of, the secrets they use, and every workspace's
//! default stack.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::components::{
    self, COLUMNS as COMPONENT_COLUMNS, Component, ComponentColumns, ComponentView,
};
use super::query::{Field, FieldKind, ListQuery, Listed, SqlBuilder};
use super::secret_links::STACK_SECRETS;
use super::users::{OWNER_COLUMNS, Owner, OwnerColumns};
use super::{
    Arg, Conn, Store, StoreError, StoreResult, Unique, classify, execute, fetch_all, fetch_page,
    parse_json, with_conn,
};
use crate::stacks::{ComponentType, DEFAULT_NAME};

#[derive(Debug, Clone)]
pub struct Stack {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub stack_spec_path: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub labels: Option<Map<String, Value>>,
    pub is_default: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A stack with its owner's account.
#[derive(Debug, Clone)]
pub struct StackView {
    pub stack: Stack,
    pub owner: Option<Owner>,
}

#[derive(Debug, sqlx::FromRow)]
struct StackColumns {
    id: Uuid,
    workspace_id: Uuid,
    user_id: Option<Uuid>,
    name: String,
    description: String,
    stack_spec_path: Option<String>,
    environment: String,
    labels: Option<String>,
    is_default: bool,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    #[sqlx(flatten)]
    owner: OwnerColumns,
}

impl StackColumns {
    fn parse(self) -> StoreResult<StackView> {
        Ok(StackView {
            stack: Stack {
                id: self.id,
                workspace_id: self.workspace_id,
                user_id: self.user_id,
                name: self.name,
                description: self.description,
                stack_spec_path: self.stack_spec_path,
                environment: parse_json("environment", &self.environment)?,
                labels: self
                    .labels
                    .as_deref()
                    .map(|labels| parse_json("labels", labels))
                    .transpose()?,
                is_default: self.is_default,
                created: self.created,
                updated: self.updated,
            },
            owner: self.owner.owner(),
        })
    }
}

const COLUMNS: &str = "s.id, s.workspace_id, s.user_id, s.name, s.description, \
    s.stack_spec_path, s.environment, s.labels, s.is_default, s.created, s.updated";

const FROM: &str = "FROM stacks s LEFT JOIN users u ON u.id = s.user_id";

/// What keeps stack names apart within a workspace.
pub const NAME_UNIQUE: &[Unique] = &[Unique {
    postgres: "stacks_workspace_id_name_key",
    sqlite: "stacks.workspace_id, stacks.name",
}];

pub static FIELDS: &[Field] = &[
    Field::new("id", FieldKind::Uuid, "s.id"),
    Field::new("name", FieldKind::Text, "s.name"),
    Field::new("description", FieldKind::Text, "s.description"),
    Field::new("user", FieldKind::Text, "u.name"),
    Field::new("user_id", FieldKind::Uuid, "s.user_id"),
    Field::new("created", FieldKind::Time, "s.created"),
    Field::new("updated", FieldKind::Time, "s.updated"),
];

fn json(value: &impl serde::Serialize) -> Arg {
    Arg::Text(serde_json::to_string(value).expect("JSON values serialise"))
}

pub async fn insert(conn: &mut Conn, stack: &Stack) -> StoreResult<()> {
    let mut sql = SqlBuilder::new(
        "INSERT INTO stacks (id, workspace_id, user_id, name, description, stack_spec_path, \
         environment, labels, is_default, created, updated) VALUES ",
    );
    sql.bind_tuple([
        Arg::Uuid(stack.id),
        Arg::Uuid(stack.workspace_id),
        Arg::opt_uuid(stack.user_id),
        Arg::Text(stack.name.clone()),
        Arg::Text(stack.description.clone()),
        Arg::opt_text(stack.stack_spec_path.as_deref()),
        json(&stack.environment),
        stack.labels.as_ref().map_or(Arg::opt_text(None), json),
        Arg::Bool(stack.is_default),
        Arg::Time(stack.created),
        Arg::Time(stack.updated),
    ]);
    execute(conn, sql).await?;
    Ok(())
}

/// Writes `stack` if its row is unchanged since it was read (last updated at
/// `read_updated`); else [`StoreError::Concurrent`].
pub async fn update(
    conn: &mut Conn,
    stack: &Stack,
    read_updated: DateTime<Utc>,
) -> StoreResult<()> {
    let mut sql = SqlBuilder::new("UPDATE stacks SET name = ");
    sql.bind(Arg::Text(stack.name.clone()));
    sql.push(", description = ")
        .bind(Arg::Text(stack.description.clone()));
    sql.push(", stack_spec_path = ")
        .bind(Arg::opt_text(stack.stack_spec_path.as_deref()));
    sql.push(", environment = ").bind(json(&stack.environment));
    sql.push(", labels = ")
        .bind(stack.labels.as_ref().map_or(Arg::opt_text(None), json));
    sql.push(", updated = ").bind(Arg::Time(stack.updated));
    sql.push(" WHERE id = ").bind(Arg::Uuid(stack.id));
    sql.push(" AND workspace_id = ")
        .bind(Arg::Uuid(stack.workspace_id));
    sql.push(" AND updated = ").bind(Arg::Time(read_updated));
    match execute(conn, sql).await? {
        0 => Err(StoreError::Concurrent),
        _ => Ok(()),
    }
}

/// Deletes a stack as read (its members and secret links go with it); its components stay.
pub async fn delete(conn: &mut Conn, stack: &Stack) -> StoreResult<()> {
    let mut sql = SqlBuilder::new("DELETE FROM stacks WHERE id = ");
    sql.bind(Arg::Uuid(stack.id))
        .push(" AND workspace_id = ")
        .bind(Arg::Uuid(stack.workspace_id))
        .push(" AND updated = ")
        .bind(Arg::Time(stack.updated));
    match execute(conn, sql).await? {
        0 => Err(StoreError::Concurrent),
        _ => Ok(()),
    }
}

/// Makes `components` (in order) what the stack is made of.
pub async fn set_members(conn: &mut Conn, stack_id: Uuid, components: &[Uuid]) -> StoreResult<()> {
    let mut clear = SqlBuilder::new("DELETE FROM stack_members WHERE stack_id = ");
    clear.bind(Arg::Uuid(stack_id));
    execute(conn, clear).await?;
    if components.is_empty() {
        return Ok(());
    }
    let mut insert =
        SqlBuilder::new("INSERT INTO stack_members (stack_id, component_id, position) VALUES ");
    insert.bind_rows(components.iter().enumerate().map(|(position, component)| {
        [
            Arg::Uuid(stack_id),
            Arg::Uuid(*component),
            Arg::Int(position as i64),
        ]
    }));
    execute(conn, insert).await?;
    Ok(())
}

async fn fetch(conn: &mut Conn, sql: SqlBuilder) -> StoreResult<Vec<StackView>> {
    let rows: Vec<StackColumns> = fetch_all(conn, sql).await?;
    rows.into_iter().map(StackColumns::parse).collect()
}

pub async fn get(conn: &mut Conn, workspace_id: Uuid, id: Uuid) -> StoreResult<Option<StackView>> {
    let mut sql = SqlBuilder::new(format!(
        "SELECT {COLUMNS}, {OWNER_COLUMNS} {FROM} WHERE s.workspace_id = "
    ));
    sql.bind(Arg::Uuid(workspace_id))
        .push(" AND s.id = ")
        .bind(Arg::Uuid(id));
    Ok(fetch(conn, sql).await?.pop())
}

/// Whether the workspace has a stack of this name.
pub async fn name_taken(conn: &mut Conn, workspace_id: Uuid, name: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM stacks WHERE workspace_id = $1 AND name = $2";
    let found: i64 = with_conn!(conn, repeatable, |c| sqlx::query_scalar(sql)
        .bind(workspace_id)
        .bind(name)
        .fetch_one(c)
        .await)
    .map_err(classify)?;
    Ok(found > 0)
}

/// The workspace's stacks, filtered and paged; only those holding `component_id` when given.
pub async fn list(
    conn: &mut Conn,
    workspace_id: Uuid,
    query: &ListQuery,
    component_id: Option<Uuid>,
) -> StoreResult<Listed<StackView>> {
    let mut from = SqlBuilder::new(format!("{FROM} WHERE s.workspace_id = "));
    from.bind(Arg::Uuid(workspace_id));
    if let Some(component_id) = component_id {
        from.push(
            " AND EXISTS (SELECT 1 FROM stack_members m WHERE m.stack_id = s.id AND m.component_id = ",
        );
        from.bind(Arg::Uuid(component_id)).push(")");
    }
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    let columns = format!("{COLUMNS}, {OWNER_COLUMNS}");
    let listed: Listed<StackColumns> =
        fetch_page(conn, &columns, from, query, query.order("s.id"), None).await?;
    listed.try_map(StackColumns::parse)
}

/// The components of each of `stacks`, in their order within the stack.
pub async fn members(
    conn: &mut Conn,
    stacks: &[Uuid],
) -> StoreResult<BTreeMap<Uuid, Vec<ComponentView>>> {
    let mut by_stack = BTreeMap::<Uuid, Vec<ComponentView>>::new();
    if stacks.is_empty() {
        return Ok(by_stack);
    }
    #[derive(sqlx::FromRow)]
    struct Member {
        stack_id: Uuid,
        #[sqlx(flatten)]
        component: ComponentColumns,
    }
    let mut sql = SqlBuilder::new(format!(
        "SELECT m.stack_id, {COMPONENT_COLUMNS}, {OWNER_COLUMNS} FROM stack_members m \
         JOIN stack_components k ON k.id = m.component_id LEFT JOIN users u ON u.id = k.user_id \
         WHERE m.stack_id IN "
    ));
    sql.bind_tuple(stacks.iter().map(|id| Arg::Uuid(*id)));
    sql.push(" ORDER BY m.stack_id, m.position");
    let rows: Vec<Member> = fetch_all(conn, sql).await?;
    for row in rows {
        by_stack
            .entry(row.stack_id)
            .or_default()
            .push(row.component.parse()?);
    }
    Ok(by_stack)
}

/// Replaces the secrets the stack uses.
pub async fn set_secrets(conn: &mut Conn, stack_id: Uuid, secrets: &[Uuid]) -> StoreResult<()> {
    STACK_SECRETS.set(conn, stack_id, secrets).await
}

/// Adds and removes secrets the stack uses.
pub async fn change_secrets(
    conn: &mut Conn,
    stack_id: Uuid,
    add: &[Uuid],
    remove: &[Uuid],
) -> StoreResult<()> {
    STACK_SECRETS.remove(conn, stack_id, remove).await?;
    STACK_SECRETS.add(conn, stack_id, add).await
}

/// The secrets each of the stacks uses.
pub async fn secrets_of(conn: &mut Conn, ids: &[Uuid]) -> StoreResult<BTreeMap<Uuid, Vec<Uuid>>> {
    STACK_SECRETS.of(conn, ids).await
}

/// The ids of a workspace's default stack and components: derived from the workspace, so
/// that every server process makes the same ones, and clients that remembered the default
/// stack before it was stored find it again.
pub fn default_ids(workspace_id: Uuid) -> (Uuid, Uuid, Uuid) {
    const STACKS: Uuid = Uuid::from_u128(0x6c1e_2f4b_9a0d_4e57_8b3c_0d1f_5a6e_7c90);
    const ORCHESTRATORS: Uuid = Uuid::from_u128(0x9d42_7e15_3b6a_4c08_a1f3_5e20_c7d9_1b64);
    const ARTIFACT_STORES: Uuid = Uuid::from_u128(0x17a8_c3e0_54d2_4b9f_8e61_0c3b_a95d_f2e7);
    let id = |namespace: &Uuid| Uuid::new_v5(namespace, workspace_id.as_bytes());
    (id(&STACKS), id(&ORCHESTRATORS), id(&ARTIFACT_STORES))
}

/// Creates a workspace's default stack: a `local` orchestrator and a `local` artifact store,
/// owned by nobody. Run in the transaction that creates the workspace.
pub async fn insert_default(
    conn: &mut Conn,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (stack_id, orchestrator_id, artifact_store_id) = default_ids(workspace_id);
    let component = |id, component_type| Component {
        id,
        workspace_id,
        user_id: None,
        name: DEFAULT_NAME.into(),
        component_type,
        flavor: "local".into(),
        configuration: Map::new(),
        environment: BTreeMap::new(),
        labels: None,
        connector_id: None,
        connector_resource_id: None,
        is_default: true,
        created: now,
        updated: now,
    };
    components::insert(
        conn,
        &component(orchestrator_id, ComponentType::Orchestrator),
    )
    .await?;
    components::insert(
        conn,
        &component(artifact_store_id, ComponentType::ArtifactStore),
    )
    .await?;
    let stack = Stack {
        id: stack_id,
        workspace_id,
        user_id: None,
        name: DEFAULT_NAME.into(),
        description: String::new(),
        stack_spec_path: None,
        environment: BTreeMap::new(),
        labels: None,
        is_default: true,
        created: now,
        updated: now,
    };
    insert(conn, &stack).await?;
    set_members(conn, stack_id, &[orchestrator_id, artifact_store_id]).await
}

/// Gives every workspace that has none its default stack: those created before stacks were
/// stored. Another process doing the same at once is no error.
pub async fn insert_missing_defaults(store: &Store, now: DateTime<Utc>) -> StoreResult<()> {
    let sql = "SELECT w.id FROM workspaces w WHERE NOT EXISTS \
               (SELECT 1 FROM stacks s WHERE s.workspace_id = w.id AND s.is_default)";
    let mut conn = store.conn().await?;
    let missing: Vec<Uuid> = with_conn!(&mut conn, repeatable, |c| sqlx::query_scalar(sql)
        .fetch_all(c)
        .await)
    .map_err(classify)?;
    drop(conn);
    for workspace_id in missing {
        let mut tx = store.begin().await?;
        match insert_default(&mut tx, workspace_id, now).await {
            Ok(()) => tx.commit().await?,
            Err(StoreError::Conflict(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
