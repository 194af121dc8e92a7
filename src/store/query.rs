//! Building the dynamic parts of list queries (filters, sorting, paging) from typed values, with
//! every value bound as a parameter. Placeholders are `$n`, which both backends accept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `clause` (such as ` FOR UPDATE`) on PostgreSQL. SQLite needs no row locks: a write
    /// transaction holds the only write lock from its start.
    pub fn row_lock(self, clause: &'static str) -> &'static str {
        match self {
            Dialect::Postgres => clause,
            Dialect::Sqlite => "",
        }
    }
}

/// A value bound to a query parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Uuid(Uuid),
    Bool(bool),
    Int(i64),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
    /// NULL, typed: PostgreSQL checks a parameter's type against its column.
    Null(NullOf),
}

/// The type of a NULL [`Arg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullOf {
    Text,
    Uuid,
    Int,
    Time,
}

impl Arg {
    pub fn opt_text(value: Option<&str>) -> Arg {
        value.map_or(Arg::Null(NullOf::Text), |v| Arg::Text(v.to_owned()))
    }

    pub fn opt_uuid(value: Option<Uuid>) -> Arg {
        value.map_or(Arg::Null(NullOf::Uuid), Arg::Uuid)
    }

    pub fn opt_int(value: Option<i64>) -> Arg {
        value.map_or(Arg::Null(NullOf::Int), Arg::Int)
    }

    pub fn opt_time(value: Option<DateTime<Utc>>) -> Arg {
        value.map_or(Arg::Null(NullOf::Time), Arg::Time)
    }
}

/// Binds every [`Arg`] in order to a sqlx query (plain, `query_as` or `query_scalar`).
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::store::Arg::Text(v) => query.bind(v),
                $crate::store::Arg::Uuid(v) => query.bind(v),
                $crate::store::Arg::Bool(v) => query.bind(v),
                $crate::store::Arg::Int(v) => query.bind(v),
                $crate::store::Arg::Time(v) => query.bind(v),
                $crate::store::Arg::Bytes(v) => query.bind(v),
                $crate::store::Arg::Null(of) => match of {
                    $crate::store::query::NullOf::Text => query.bind(None::<String>),
                    $crate::store::query::NullOf::Uuid => query.bind(None::<uuid::Uuid>),
                    $crate::store::query::NullOf::Int => query.bind(None::<i64>),
                    $crate::store::query::NullOf::Time => {
                        query.bind(None::<chrono::DateTime<chrono::Utc>>)
                    }
                },
            };
        }
        query
    }};
}
pub(crate) use bind_args;

/// The type of a filterable field, which decides how its query values are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Uuid,
    Bool,
    Time,
}

/// A field that list endpoints may filter and sort on, with the SQL expression behind it.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub column: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldKind, column: &'static str) -> Field {
        Field { name, kind, column }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    OneOf,
    NotOneOf,
    Gt,
    Gte,
    Lt,
    Lte,
    IsNull,
    IsNotNull,
}

impl Op {
    /// The operator named by a query value prefix such as `startswith:`.
    pub fn from_prefix(prefix: &str) -> Option<Op> {
        Some(match prefix {
            "equals" => Op::Equals,
            "notequals" => Op::NotEquals,
            "contains" => Op::Contains,
            "notcontains" => Op::NotContains,
            "startswith" => Op::StartsWith,
            "endswith" => Op::EndsWith,
            "oneof" | "in" => Op::OneOf,
            "notoneof" => Op::NotOneOf,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "isnull" => Op::IsNull,
            "isnotnull" => Op::IsNotNull,
            _ => return None,
        })
    }

    pub fn is_pattern(self) -> bool {
        matches!(
            self,
            Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith
        )
    }
}

/// One parsed filter condition. Pattern operators carry their operand as text; the others carry
/// values typed by the field.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: &'static Field,
    pub op: Op,
    pub values: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// Accumulates SQL text and its bound values, numbering placeholders as it goes.
#[derive(Debug, Default)]
pub struct SqlBuilder {
    pub sql: String,
    pub args: Vec<Arg>,
    /// Placeholders already taken by the query this text will be part of.
    first: usize,
}

impl SqlBuilder {
    pub fn new(sql: impl Into<String>) -> Self {
        SqlBuilder {
            sql: sql.into(),
            args: Vec::new(),
            first: 0,
        }
    }

    /// Text to embed in a query that already binds `first` values: its placeholders go on
    /// from there.
    pub fn numbered_after(first: usize) -> Self {
        SqlBuilder {
            sql: String::new(),
            args: Vec::new(),
            first,
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.sql.push('$');
        self.sql
            .push_str(&(self.first + self.args.len()).to_string());
        self
    }

    /// Appends one [`SqlBuilder::bind_tuple`] per row, separated by commas: the rows of a
    /// multi-row `VALUES`.
    pub fn bind_rows<R: IntoIterator<Item = Arg>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind_tuple(row);
        }
        self
    }

    /// Appends `(`, a placeholder for each of `args`, separated by commas, and `)`.
    pub fn bind_tuple(&mut self, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.push("(");
        for (i, arg) in args.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(arg);
        }
        self.push(")")
    }

    /// Appends `(c1 AND c2 …)` or `(c1 OR c2 …)`; nothing when there are no conditions.
    pub fn push_conditions(&mut self, dialect: Dialect, conditions: &[Condition], any: bool) {
        if conditions.is_empty() {
            return;
        }
        self.push(" AND (");
        for (i, condition) in conditions.iter().enumerate() {
            if i > 0 {
                self.push(if any { " OR " } else { " AND " });
            }
            self.push_condition(dialect, condition);
        }
        self.push(")");
    }

    fn push_condition(&mut self, dialect: Dialect, condition: &Condition) {
        let column = condition.field.column;
        let mut values = condition.values.iter().cloned();
        let mut next = || values.next().unwrap_or(Arg::Text(String::new()));
        match condition.op {
            Op::IsNull => {
                self.push(&format!("{column} IS NULL"));
            }
            Op::IsNotNull => {
                self.push(&format!("{column} IS NOT NULL"));
            }
            Op::OneOf | Op::NotOneOf => {
                let negate = if condition.op == Op::NotOneOf {
                    "NOT "
                } else {
                    ""
                };
                if condition.values.is_empty() {
                    // An empty set matches nothing (or, negated, everything).
                    self.push(if negate.is_empty() { "1 = 0" } else { "1 = 1" });
                    return;
                }
                self.push(&format!("{column} {negate}IN ("));
                for (i, value) in condition.values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.bind(value.clone());
                }
                self.push(")");
            }
            op if op.is_pattern() => {
                let Arg::Text(operand) = next() else {
                    unreachable!("patterns are text")
                };
                let (expr, operand) = pattern_target(dialect, condition.field, operand);
                let escaped = escape_like(&operand);
                let pattern = match op {
                    Op::StartsWith => format!("{escaped}%"),
                    Op::EndsWith => format!("%{escaped}"),
                    _ => format!("%{escaped}%"),
                };
                let like = match (dialect, op) {
                    (Dialect::Postgres, Op::NotContains) => "NOT ILIKE",
                    (Dialect::Postgres, _) => "ILIKE",
                    (Dialect::Sqlite, Op::NotContains) => "NOT LIKE",
                    (Dialect::Sqlite, _) => "LIKE",
                };
                self.push(&format!("{expr} {like} "));
                self.bind(Arg::Text(pattern));
                self.push(" ESCAPE '\\'");
            }
            op => {
                let symbol = match op {
                    Op::Equals => "=",
                    Op::NotEquals => "<>",
                    Op::Gt => ">",
                    Op::Gte => ">=",
                    Op::Lt => "<",
                    _ => "<=",
                };
                self.push(&format!("{column} {symbol} "));
                self.bind(next());
            }
        }
    }
}

/// The text expression a pattern is matched against. UUIDs are compared in their hyphenated
/// lower-case form on PostgreSQL and as hex digits on SQLite (where they are stored as blobs).
fn pattern_target(dialect: Dialect, field: &Field, operand: String) -> (String, String) {
    let column = field.column;
    match (field.kind, dialect) {
        (FieldKind::Uuid, Dialect::Postgres) => (format!("CAST({column} AS TEXT)"), operand),
        (FieldKind::Uuid, Dialect::Sqlite) => (
            format!("lower(hex({column}))"),
            operand.replace('-', "").to_lowercase(),
        ),
        _ => (column.to_owned(), operand),
    }
}

fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A parsed list request: filters, sort order and the page asked for.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub conditions: Vec<Condition>,
    /// `logical_operator=or`: any condition may match instead of all.
    pub any: bool,
    pub sort: &'static Field,
    pub direction: Direction,
    pub page: u32,
    pub size: u32,
}

impl ListQuery {
    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.size)
    }

    /// Appends the filters, then `ORDER BY` (ties broken by `tiebreak`) and the page window.
    /// The order of the sort field, with `tiebreak` (a unique column) settling ties.
    pub fn order<'a>(&self, tiebreak: &'a str) -> Order<'a> {
        Order {
            column: self.sort.column,
            tiebreak,
        }
    }

    /// Appends `ORDER BY` in the requested direction and the page window.
    pub fn push_tail(&self, builder: &mut SqlBuilder, order: Order<'_>) {
        let direction = match self.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        // The page size is written into the statement: SQLite (built with STAT4) re-plans a
        // statement whose LIMIT is a bound parameter every time it runs, which cost a list
        // request more than its query. Sizes are few, so the statement cache still holds them.
        builder.push(&format!(
            " ORDER BY {} {direction}, {} {direction} LIMIT {} OFFSET ",
            order.column, order.tiebreak, self.size
        ));
        builder.bind(Arg::Int(self.offset()));
    }
}

/// The columns a page is ordered by: the sort field (as the query names it) and a unique
/// tiebreak.
#[derive(Debug, Clone, Copy)]
pub struct Order<'a> {
    pub column: &'a str,
    pub tiebreak: &'a str,
}

/// A page of results with the total count, before rendering.
#[derive(Debug)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: i64,
}

impl<T> Listed<T> {
    /// The same page with each item converted, or the first conversion's error.
    pub fn try_map<U, E>(self, convert: impl FnMut(T) -> Result<U, E>) -> Result<Listed<U>, E> {
        Ok(Listed {
            items: self
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<_, E>>()?,
            total: self.total,
        })
    }
}
