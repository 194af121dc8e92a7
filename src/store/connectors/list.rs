//! Reading lists of connectors: the caller with the list version, and pages read in sort
//! order from the connectors' index or from a filter table's, with totals from maintained
//! counts where one answers.

use sqlx::FromRow;
use uuid::Uuid;

use super::counts::{label_facet, type_facet};
use super::{COLUMNS, ConnectorColumns, ConnectorFilter, ConnectorView, FROM};
use crate::store::query::bind_args;
use crate::store::query::{ListQuery, Listed, Order, SqlBuilder};
use crate::store::workspaces::{CALLER_COLUMNS, CALLER_FROM, CallerInWorkspace, CallerKey};
use crate::store::{Arg, Conn, StoreResult, classify, fetch_page, with_conn};

/// The version of everything a connector list of a workspace shows: its connectors and their
/// owners' accounts. Any committed change to them raises it (triggers count every write), and
/// it never goes down, so a page rendered from reads made after the version was read shows
/// exactly that version's state while the version stays the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListVersion(pub i64);

/// The caller's standing in a workspace and the [`ListVersion`] of that workspace, in one
/// query: what a list reads before its page. `None` when the caller's account is gone.
pub async fn caller_and_list_version(
    conn: &mut Conn,
    caller: &CallerKey<'_>,
) -> StoreResult<Option<(CallerInWorkspace, ListVersion)>> {
    let sql = format!(
        "SELECT {CALLER_COLUMNS}, \
         (SELECT CAST(COALESCE(SUM(v.version), 0) AS BIGINT) FROM connector_list_versions v \
          WHERE v.scope_id = cw.id OR v.scope_id = $5) AS list_version \
         {CALLER_FROM} WHERE cu.id = $1"
    );
    with_conn!(conn, repeatable, |c| {
        let row = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), caller.args())
            // The scope owners' accounts are counted under.
            .bind(Uuid::nil())
            .fetch_optional(c)
            .await?;
        row.map(|row| {
            let version: i64 = sqlx::Row::try_get(&row, "list_version")?;
            Ok((CallerInWorkspace::from_row(&row)?, ListVersion(version)))
        })
        .transpose()
    })
    .map_err(classify)
}

pub(super) const TYPE_TABLE: (&str, &str) = ("service_connector_resource_types", "rt");
pub(super) const LABEL_TABLE: (&str, &str) = ("service_connector_labels", "l");

/// `FROM` a filter table's rows that match `matches`, joined to their connectors. The table's
/// index holds, per value, the connectors in creation order, so a page in that order is read
/// straight from it.
pub(super) fn push_filter_table<const N: usize>(
    from: &mut SqlBuilder,
    (table, alias): (&str, &str),
    secret_join: &str,
    workspace_id: Uuid,
    matches: [(&str, String); N],
) {
    from.push(&format!(
        "FROM {table} {alias} JOIN service_connectors c ON c.id = {alias}.connector_id \
         LEFT JOIN users u ON u.id = c.user_id{secret_join} WHERE {alias}.workspace_id = "
    ));
    from.bind(Arg::Uuid(workspace_id));
    for (column, value) in matches {
        from.push(&format!(" AND {alias}.{column} = "));
        from.bind(Arg::Text(value));
    }
    from.push(" AND c.workspace_id = ");
    from.bind(Arg::Uuid(workspace_id));
}

/// Joins each connector's encrypted secret, read into `secret_ciphertext`.
pub(super) const SECRET_JOIN: &str =
    " LEFT JOIN secrets s ON s.id = c.secret_id AND s.workspace_id = c.workspace_id";

/// The connectors `viewer` may see (shared ones and their own), filtered and paged, with their
/// encrypted secrets when `with_secrets` (in the same query).
pub async fn list(
    conn: &mut Conn,
    workspace_id: Uuid,
    viewer: Uuid,
    query: &ListQuery,
    filter: &ConnectorFilter,
    with_secrets: bool,
) -> StoreResult<Listed<ConnectorView>> {
    let secret_join = if with_secrets { SECRET_JOIN } else { "" };
    // A single `key=value` label filter, or a single resource type, in creation order reads
    // its page straight from that filter table's index; every other filter walks the
    // connectors in sort order.
    let in_creation_order = query.sort.name == "created";
    let by_label = match (&filter.resource_type, filter.labels.as_slice()) {
        (None, [(key, Some(value))]) if in_creation_order => Some((key, value)),
        _ => None,
    };
    let by_type = match (&filter.resource_type, filter.labels.as_slice()) {
        (Some(resource_type), []) if in_creation_order => Some(resource_type),
        _ => None,
    };
    let mut from = SqlBuilder::new("");
    let order = match (by_label, by_type) {
        (_, Some(resource_type)) => {
            let matches = [("resource_type", resource_type.clone())];
            push_filter_table(&mut from, TYPE_TABLE, secret_join, workspace_id, matches);
            Order {
                column: "rt.created",
                tiebreak: "rt.connector_id",
            }
        }
        (Some((key, value)), None) => {
            let matches = [("key", key.clone()), ("value", value.clone())];
            push_filter_table(&mut from, LABEL_TABLE, secret_join, workspace_id, matches);
            Order {
                column: "l.created",
                tiebreak: "l.connector_id",
            }
        }
        (None, None) => {
            from.push(FROM)
                .push(secret_join)
                .push(" WHERE c.workspace_id = ")
                .bind(Arg::Uuid(workspace_id));
            query.order("c.id")
        }
    };
    from.push(" AND (c.shared OR c.user_id = ");
    from.bind(Arg::Uuid(viewer));
    from.push(")");
    // Probes by primary key, row by row in sort order: a page of a common filter stops after a
    // few rows instead of materialising every match.
    if let Some(resource_type) = filter.resource_type.as_ref().filter(|_| by_type.is_none()) {
        from.push(
            " AND EXISTS (SELECT 1 FROM service_connector_resource_types rt \
             WHERE rt.connector_id = c.id AND rt.resource_type = ",
        );
        from.bind(Arg::Text(resource_type.clone()));
        from.push(")");
    }
    for (key, value) in filter.labels.iter().filter(|_| by_label.is_none()) {
        from.push(
            " AND EXISTS (SELECT 1 FROM service_connector_labels l \
             WHERE l.connector_id = c.id AND l.key = ",
        );
        from.bind(Arg::Text(key.clone()));
        if let Some(value) = value {
            from.push(" AND l.value = ");
            from.bind(Arg::Text(value.clone()));
        }
        from.push(")");
    }
    from.push_conditions(conn.dialect(), &query.conditions, query.any);
    let total = counted_facet(query, filter).map(|facet| {
        let mut total = SqlBuilder::numbered_after(from.args.len());
        total.push(
            "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM service_connector_counts \
             WHERE workspace_id = ",
        );
        total
            .bind(Arg::Uuid(workspace_id))
            .push(" AND facet = ")
            .bind(Arg::Text(facet));
        total
            .push(" AND owner_id IN (")
            .bind(Arg::Uuid(Uuid::nil()))
            .push(", ");
        total.bind(Arg::Uuid(viewer)).push(")");
        total
    });
    let listed: Listed<ConnectorColumns> = if with_secrets {
        let columns = format!("{COLUMNS}, s.ciphertext AS secret_ciphertext");
        fetch_page(conn, &columns, from, query, order, total).await?
    } else {
        fetch_page(conn, COLUMNS, from, query, order, total).await?
    };
    listed.try_map(ConnectorColumns::parse)
}

/// The one maintained count that answers this filter's total, if there is one.
pub(super) fn counted_facet(query: &ListQuery, filter: &ConnectorFilter) -> Option<String> {
    if !query.conditions.is_empty() {
        return None;
    }
    match (&filter.resource_type, filter.labels.as_slice()) {
        (None, []) => Some(String::new()),
        (Some(resource_type), []) => Some(type_facet(resource_type)),
        (None, [(key, value)]) => Some(label_facet(key, value.as_deref())),
        _ => None,
    }
}
