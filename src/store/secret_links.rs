//! Which public secrets a component or a stack sets as environment variables where it runs:
//! one link table each, with the same shape.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::query::SqlBuilder;
use super::{Arg, Conn, StoreResult, execute, fetch_all};

/// A table of `(owner_id, secret_id)` links.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Links(pub &'static str);

pub(crate) const COMPONENT_SECRETS: Links = Links("stack_component_secrets");
pub(crate) const STACK_SECRETS: Links = Links("stack_secrets");

impl Links {
    /// Replaces the secrets linked to `owner` with `secrets`.
    pub(crate) async fn set(
        self,
        conn: &mut Conn,
        owner: Uuid,
        secrets: &[Uuid],
    ) -> StoreResult<()> {
        let mut clear = SqlBuilder::new(format!("DELETE FROM {} WHERE owner_id = ", self.0));
        clear.bind(Arg::Uuid(owner));
        execute(conn, clear).await?;
        self.add(conn, owner, secrets).await
    }

    /// Links `secrets` to `owner`, besides those already linked.
    pub(crate) async fn add(
        self,
        conn: &mut Conn,
        owner: Uuid,
        secrets: &[Uuid],
    ) -> StoreResult<()> {
        if secrets.is_empty() {
            return Ok(());
        }
        let mut insert = SqlBuilder::new(format!(
            "INSERT INTO {} (owner_id, secret_id) VALUES ",
            self.0
        ));
        insert.bind_rows(
            secrets
                .iter()
                .map(|secret| [Arg::Uuid(owner), Arg::Uuid(*secret)]),
        );
        insert.push(" ON CONFLICT DO NOTHING");
        execute(conn, insert).await?;
        Ok(())
    }

    /// Unlinks `secrets` from `owner`.
    pub(crate) async fn remove(
        self,
        conn: &mut Conn,
        owner: Uuid,
        secrets: &[Uuid],
    ) -> StoreResult<()> {
        if secrets.is_empty() {
            return Ok(());
        }
        let mut delete = SqlBuilder::new(format!("DELETE FROM {} WHERE owner_id = ", self.0));
        delete.bind(Arg::Uuid(owner)).push(" AND secret_id IN ");
        delete.bind_tuple(secrets.iter().map(|s| Arg::Uuid(*s)));
        execute(conn, delete).await?;
        Ok(())
    }

    /// The secrets linked to each of `owners` (owners with none are absent).
    pub(crate) async fn of(
        self,
        conn: &mut Conn,
        owners: &[Uuid],
    ) -> StoreResult<BTreeMap<Uuid, Vec<Uuid>>> {
        let mut linked = BTreeMap::<Uuid, Vec<Uuid>>::new();
        if owners.is_empty() {
            return Ok(linked);
        }
        let mut select = SqlBuilder::new(format!(
            "SELECT owner_id, secret_id FROM {} WHERE owner_id IN ",
            self.0
        ));
        select.bind_tuple(owners.iter().map(|o| Arg::Uuid(*o)));
        select.push(" ORDER BY owner_id, secret_id");
        let rows: Vec<(Uuid, Uuid)> = fetch_all(conn, select).await?;
        for (owner, secret) in rows {
            linked.entry(owner).or_default().push(secret);
        }
        Ok(linked)
    }
}
