//! ZenML's list protocol, once for every list endpoint: `page`, `size`, `sort_by`,
//! `logical_operator`, `hydrate` and filters of the form `field=op:value`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Object, ObjectBuilder, Required, Type};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::store::Arg;
use crate::store::query::{Condition, Direction, Field, FieldKind, ListQuery, Listed, Op};

pub const MAX_PAGE_SIZE: u32 = 10_000;
/// Filter values one list request may carry, counted over every filter (each value of a
/// `oneof:` list counts). Each filter is a term of the query, and databases limit how many
/// a query may hold (SQLite refuses an expression tree deeper than 1,000).
pub const MAX_FILTER_VALUES: usize = 100;
const DEFAULT_PAGE_SIZE: u32 = 20;

/// Parameters every list endpoint accepts besides its filters.
const COMMON: &[&str] = &[
    "page",
    "size",
    "sort_by",
    "logical_operator",
    "hydrate",
    "project_name_or_id",
    "workspace",
];

/// What one list endpoint accepts.
pub struct ListSpec {
    pub fields: &'static [Field],
    pub default_sort: &'static str,
    /// Endpoint-specific parameters that are not filters (e.g. `expand_secrets`).
    pub extras: &'static [Extra],
}

/// An endpoint-specific query parameter of a list, which is no filter of the generic kind.
pub struct Extra {
    pub name: &'static str,
    pub kind: FieldKind,
    pub description: &'static str,
}

impl Extra {
    pub const fn new(name: &'static str, kind: FieldKind, description: &'static str) -> Extra {
        Extra {
            name,
            kind,
            description,
        }
    }
}

impl ListSpec {
    /// Every query parameter the list accepts, for the OpenAPI document.
    pub fn parameters(&self) -> Vec<Parameter> {
        let query = |name: &str, schema: Object, description: String| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let typed = |kind: Type| Object::with_type(kind);
        let sortable: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
        let mut parameters = vec![
            query(
                "page",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .build(),
                "The page to return, from 1.".into(),
            ),
            query(
                "size",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(MAX_PAGE_SIZE))
                    .build(),
                format!("Items per page (default {DEFAULT_PAGE_SIZE})."),
            ),
            query(
                "sort_by",
                typed(Type::String),
                format!(
                    "A field, optionally prefixed `asc:` or `desc:`: {} (default `{}`).",
                    sortable.join(", "),
                    self.default_sort
                ),
            ),
            query(
                "logical_operator",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["and", "or"]))
                    .build(),
                "Whether items must pass every filter (`and`, the default) or any.".into(),
            ),
            query(
                "hydrate",
                typed(Type::Boolean),
                "Include each item's `metadata`.".into(),
            ),
            query(
                "project_name_or_id",
                typed(Type::String),
                "The workspace to list in (default: the caller's default workspace).".into(),
            ),
            query(
                "workspace",
                typed(Type::String),
                "The same as `project_name_or_id`.".into(),
            ),
        ];
        for extra in self.extras {
            parameters.push(query(
                extra.name,
                typed(kind_type(extra.kind)),
                extra.description.into(),
            ));
        }
        for field in self.fields {
            parameters.push(query(
                field.name,
                typed(Type::String),
                format!(
                    "Filter on `{}`: a value, or an operator and a value such as `{}` (at \
                     most {MAX_FILTER_VALUES} filter values in all).",
                    field.name,
                    match field.kind {
                        FieldKind::Text => "startswith:prod",
                        FieldKind::Uuid => "oneof:<id>,<id>",
                        FieldKind::Bool => "equals:true",
                        FieldKind::Time => "gte:2025-01-01",
                    }
                ),
            ));
        }
        parameters
    }
}

fn kind_type(kind: FieldKind) -> Type {
    match kind {
        FieldKind::Bool => Type::Boolean,
        FieldKind::Text | FieldKind::Uuid | FieldKind::Time => Type::String,
    }
}

/// Declares `$name` as the documented query parameters of a list endpoint that takes `$spec`,
/// for `params(…)` in its `utoipa::path`.
macro_rules! list_parameters {
    ($name:ident, $spec:expr) => {
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $spec.parameters()
            }
        }
    };
}
pub(crate) use list_parameters;

/// One page of results in ZenML's `Page` shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub index: u32,
    pub max_size: u32,
    pub total_pages: u32,
    pub total: i64,
    pub items: Vec<T>,
}

#[derive(Debug)]
pub struct ListRequest {
    pub query: ListQuery,
    pub hydrate: bool,
    extras: BTreeMap<String, String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::Unprocessable(message)
}

fn filter_values(conditions: &[Condition]) -> usize {
    conditions.iter().map(|c| c.values.len().max(1)).sum()
}

/// The refusal of a list request with more than [`MAX_FILTER_VALUES`] filter values.
pub fn too_many_filter_values(values: usize) -> ApiError {
    invalid(format!(
        "a list request may carry at most {MAX_FILTER_VALUES} filter values, not {values}"
    ))
}

/// Parses Python's and JSON's spellings of a boolean.
pub fn parse_bool(name: &str, value: &str) -> ApiResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "no" | "n" | "off" => Ok(false),
        _ => Err(invalid(format!(
            "query parameter '{name}' must be true or false, not '{value}'"
        ))),
    }
}

/// Deserialises an optional boolean query parameter in any spelling [`parse_bool`] accepts
/// (the ZenML client sends `True` and `False`).
pub fn optional_bool<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let value = <Option<String> as serde::Deserialize>::deserialize(deserializer)?;
    value
        .map(|v| {
            parse_bool("", &v)
                .map_err(|_| serde::de::Error::custom(format!("expected true or false, not '{v}'")))
        })
        .transpose()
}

/// A timestamp (see [`super::time::parse`]) or a bare date, meaning its midnight UTC.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    super::time::parse(value).or_else(|| date_only(value))
}

fn date_only(value: &str) -> Option<DateTime<Utc>> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn typed(field: &Field, value: &str) -> ApiResult<Arg> {
    let bad = |what: &str| {
        invalid(format!(
            "filter '{}' expects {what}, not '{value}'",
            field.name
        ))
    };
    Ok(match field.kind {
        FieldKind::Text => Arg::Text(value.to_owned()),
        FieldKind::Uuid => Arg::Uuid(Uuid::parse_str(value).map_err(|_| bad("a UUID"))?),
        FieldKind::Bool => Arg::Bool(parse_bool(field.name, value)?),
        FieldKind::Time => Arg::Time(parse_time(value).ok_or_else(|| bad("a date and time"))?),
    })
}

/// `oneof:` takes a JSON list or comma-separated values.
fn split_list(value: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(value) {
        return list
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
    }
    value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn condition(field: &'static Field, raw: &str) -> ApiResult<Condition> {
    let (op, operand) = match raw.split_once(':') {
        Some((prefix, rest)) => match Op::from_prefix(prefix) {
            Some(op) => (op, rest),
            None => (Op::Equals, raw),
        },
        None => (Op::Equals, raw),
    };
    let allowed = match field.kind {
        FieldKind::Text => true,
        FieldKind::Uuid => !matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte),
        FieldKind::Bool => matches!(op, Op::Equals | Op::NotEquals),
        FieldKind::Time => !op.is_pattern(),
    };
    if !allowed {
        return Err(invalid(format!(
            "filter '{}' does not support this operator",
            field.name
        )));
    }
    let values = match op {
        Op::IsNull | Op::IsNotNull => Vec::new(),
        op if op.is_pattern() => vec![Arg::Text(operand.to_owned())],
        Op::OneOf | Op::NotOneOf => split_list(operand)
            .iter()
            .map(|v| typed(field, v))
            .collect::<ApiResult<_>>()?,
        _ => vec![typed(field, operand)?],
    };
    Ok(Condition { field, op, values })
}

impl ListRequest {
    pub fn parse(raw_query: Option<&str>, spec: &ListSpec) -> ApiResult<ListRequest> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
            .map_err(|e| invalid(format!("malformed query string: {e}")))?;
        Self::from_pairs(pairs, spec)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>, spec: &ListSpec) -> ApiResult<ListRequest> {
        let find = |name: &str| spec.fields.iter().find(|f| f.name == name);
        let mut page = 1;
        let mut size = DEFAULT_PAGE_SIZE;
        let mut any = false;
        let mut hydrate = false;
        let mut sort = (
            find(spec.default_sort).expect("default sort is a field"),
            Direction::Asc,
        );
        let mut conditions = Vec::new();
        let mut extras = BTreeMap::new();
        for (key, value) in pairs {
            match key.as_str() {
                "page" => {
                    page = value.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                        invalid(format!("page must be a whole number ≥ 1, not '{value}'"))
                    })?;
                }
                "size" => {
                    size = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_PAGE_SIZE).contains(s))
                        .ok_or_else(|| {
                            invalid(format!(
                                "size must be between 1 and {MAX_PAGE_SIZE}, not '{value}'"
                            ))
                        })?;
                }
                "sort_by" => {
                    let (direction, name) = match value.split_once(':') {
                        Some(("asc", name)) => (Direction::Asc, name),
                        Some(("desc", name)) => (Direction::Desc, name),
                        Some(_) => return Err(invalid(format!("invalid sort_by '{value}'"))),
                        None => (Direction::Asc, value.as_str()),
                    };
                    let field = find(name)
                        .ok_or_else(|| invalid(format!("cannot sort by unknown field '{name}'")))?;
                    sort = (field, direction);
                }
                "logical_operator" => {
                    any = match value.to_ascii_lowercase().as_str() {
                        "and" => false,
                        "or" => true,
                        _ => return Err(invalid("logical_operator must be 'and' or 'or'".into())),
                    };
                }
                "hydrate" => hydrate = parse_bool("hydrate", &value)?,
                name if COMMON.contains(&name) => {}
                name if spec.extras.iter().any(|e| e.name == name) => {
                    extras.insert(key, value);
                }
                name => {
                    let field = find(name)
                        .ok_or_else(|| invalid(format!("unknown query parameter '{name}'")))?;
                    conditions.push(condition(field, &value)?);
                }
            }
        }
        let values = filter_values(&conditions);
        if values > MAX_FILTER_VALUES {
            return Err(too_many_filter_values(values));
        }
        Ok(ListRequest {
            query: ListQuery {
                conditions,
                any,
                sort: sort.0,
                direction: sort.1,
                page,
                size,
            },
            hydrate,
            extras,
        })
    }

    /// How many filter values the request's conditions carry.
    pub fn filter_values(&self) -> usize {
        filter_values(&self.query.conditions)
    }

    /// An endpoint-specific parameter as given.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extras.get(name).map(String::as_str)
    }

    /// An endpoint-specific boolean parameter.
    pub fn flag(&self, name: &str) -> ApiResult<Option<bool>> {
        self.extras
            .get(name)
            .map(|v| parse_bool(name, v))
            .transpose()
    }

    /// Filters, sorts and pages records held in memory as the database does stored ones;
    /// `value` gives a record's value of a field by name.
    pub fn select<T>(&self, items: Vec<T>, value: impl Fn(&T, &str) -> Arg) -> Listed<T> {
        let query = &self.query;
        let passes = |item: &T| {
            let test = |c: &Condition| holds(c, &value(item, c.field.name));
            match query.any {
                true => query.conditions.is_empty() || query.conditions.iter().any(test),
                false => query.conditions.iter().all(test),
            }
        };
        let mut kept: Vec<T> = items.into_iter().filter(passes).collect();
        kept.sort_by(|a, b| {
            let order = compare(&value(a, query.sort.name), &value(b, query.sort.name))
                .unwrap_or(std::cmp::Ordering::Equal);
            match query.direction {
                Direction::Asc => order,
                Direction::Desc => order.reverse(),
            }
        });
        let total = kept.len() as i64;
        let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
        let items = kept
            .into_iter()
            .skip(offset)
            .take(query.size as usize)
            .collect();
        Listed { items, total }
    }

    /// Renders a page, refusing a page number past the last page as ZenML does.
    pub fn page<T, U>(&self, listed: Listed<T>, render: impl FnMut(T) -> U) -> ApiResult<Page<U>> {
        let size = self.query.size;
        let total_pages = u32::try_from((listed.total.max(0) as u64).div_ceil(u64::from(size)))
            .unwrap_or(u32::MAX)
            .max(1);
        if self.query.page > total_pages {
            return Err(ApiError::BadRequest(format!(
                "Invalid page {}. The requested page size is {size} and there are a total of {} \
                 items for this query. The maximum page value therefore is {total_pages}.",
                self.query.page, listed.total
            )));
        }
        Ok(Page {
            index: self.query.page,
            max_size: size,
            total_pages,
            total: listed.total,
            items: listed.items.into_iter().map(render).collect(),
        })
    }
}

/// Orders two values of one field; `None` for a NULL or values of different kinds.
fn compare(a: &Arg, b: &Arg) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Arg::Text(a), Arg::Text(b)) => Some(a.cmp(b)),
        (Arg::Uuid(a), Arg::Uuid(b)) => Some(a.cmp(b)),
        (Arg::Bool(a), Arg::Bool(b)) => Some(a.cmp(b)),
        (Arg::Int(a), Arg::Int(b)) => Some(a.cmp(b)),
        (Arg::Time(a), Arg::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Whether a value passes a condition, with the database's semantics: patterns match text
/// without regard to case, a NULL passes only `isnull`.
fn holds(condition: &Condition, value: &Arg) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let is_null = matches!(value, Arg::Null(_));
    let first = condition.values.first();
    let ordered = |wanted: &[std::cmp::Ordering]| {
        first
            .and_then(|operand| compare(value, operand))
            .is_some_and(|order| wanted.contains(&order))
    };
    let pattern = |test: fn(&str, &str) -> bool| match (value, first) {
        (Arg::Text(text), Some(Arg::Text(operand))) => {
            test(&text.to_lowercase(), &operand.to_lowercase())
        }
        (Arg::Uuid(id), Some(Arg::Text(operand))) => test(&id.to_string(), &operand.to_lowercase()),
        _ => false,
    };
    match condition.op {
        Op::IsNull => is_null,
        Op::IsNotNull => !is_null,
        Op::Equals => ordered(&[Equal]),
        Op::NotEquals => ordered(&[Less, Greater]),
        Op::Gt => ordered(&[Greater]),
        Op::Gte => ordered(&[Greater, Equal]),
        Op::Lt => ordered(&[Less]),
        Op::Lte => ordered(&[Less, Equal]),
        Op::OneOf => condition
            .values
            .iter()
            .any(|v| compare(value, v) == Some(Equal)),
        Op::NotOneOf => {
            !is_null
                && condition
                    .values
                    .iter()
                    .all(|v| compare(value, v) != Some(Equal))
        }
        Op::Contains => pattern(|text, operand| text.contains(operand)),
        Op::NotContains => !is_null && !pattern(|text, operand| text.contains(operand)),
        Op::StartsWith => pattern(|text, operand| text.starts_with(operand)),
        Op::EndsWith => pattern(|text, operand| text.ends_with(operand)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_memory_are_filtered_sorted_and_paged_as_stored_ones() {
        let names = vec!["beta", "Alpha", "gamma", "alphabet"];
        let value = |name: &&str, field: &str| match field {
            "name" => Arg::Text(name.to_string()),
            _ => Arg::Null(crate::store::query::NullOf::Time),
        };
        let select = |query: &str| {
            let request = ListRequest::parse(Some(query), &SPEC).unwrap();
            let listed = request.select(names.clone(), value);
            (listed.total, listed.items)
        };
        assert_eq!(
            select("name=startswith:alpha&sort_by=name"),
            (2, vec!["Alpha", "alphabet"])
        );
        assert_eq!(select("name=gamma"), (1, vec!["gamma"]));
        assert_eq!(select("name=Gamma"), (0, vec![]));
        assert_eq!(
            select("name=oneof:beta,gamma&sort_by=desc:name"),
            (2, vec!["gamma", "beta"])
        );
        assert_eq!(
            select("sort_by=name&size=2&page=2"),
            (4, vec!["beta", "gamma"])
        );
        assert_eq!(
            select("name=beta&name=gamma&logical_operator=or&sort_by=name"),
            (2, vec!["beta", "gamma"])
        );
        assert_eq!(select("created=isnull:").0, 4);
    }

    static FIELDS: &[Field] = &[
        Field::new("name", FieldKind::Text, "t.name"),
        Field::new("id", FieldKind::Uuid, "t.id"),
        Field::new("created", FieldKind::Time, "t.created"),
        Field::new("private", FieldKind::Bool, "t.private"),
    ];
    const SPEC: ListSpec = ListSpec {
        fields: FIELDS,
        default_sort: "created",
        extras: &[Extra::new("expand_secrets", FieldKind::Bool, "")],
    };

    #[test]
    fn operators_and_paging_parse() {
        let request = ListRequest::parse(
            Some("name=startswith:prod&created=gt:2025-01-01 10:00:00&sort_by=desc:name&page=2&size=5&logical_operator=or&hydrate=True&expand_secrets=False"),
            &SPEC,
        )
        .unwrap();
        assert_eq!(request.query.conditions.len(), 2);
        assert_eq!(request.query.conditions[0].op, Op::StartsWith);
        assert_eq!(request.query.conditions[1].op, Op::Gt);
        assert_eq!(request.query.sort.name, "name");
        assert_eq!(request.query.direction, Direction::Desc);
        assert_eq!((request.query.page, request.query.size), (2, 5));
        assert!(request.query.any && request.hydrate);
        assert_eq!(request.flag("expand_secrets").unwrap(), Some(false));
    }

    #[test]
    fn a_value_without_an_operator_means_equals() {
        let request = ListRequest::parse(Some("name=a:b"), &SPEC).unwrap();
        assert_eq!(request.query.conditions[0].op, Op::Equals);
        assert_eq!(
            request.query.conditions[0].values,
            [Arg::Text("a:b".into())]
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        for query in [
            "page=0",
            "size=10001",
            "size=abc",
            "sort_by=sideways:name",
            "sort_by=nope",
            "logical_operator=xor",
            "unknown=1",
            "id=not-a-uuid",
            "private=maybe",
            "created=yesterday",
            "private=contains:x",
        ] {
            assert!(
                ListRequest::parse(Some(query), &SPEC).is_err(),
                "{query} was accepted"
            );
        }
    }

    #[test]
    fn oneof_takes_json_or_comma_lists() {
        let json = ListRequest::parse(Some(r#"name=oneof:["a","b"]"#), &SPEC).unwrap();
        let commas = ListRequest::parse(Some("name=oneof:a,b"), &SPEC).unwrap();
        assert_eq!(
            json.query.conditions[0].values,
            commas.query.conditions[0].values
        );
    }

    #[test]
    fn pages_past_the_end_are_refused() {
        let request = ListRequest::parse(Some("page=3&size=10"), &SPEC).unwrap();
        let listed = Listed {
            items: Vec::<u8>::new(),
            total: 15,
        };
        assert!(request.page(listed, |x| x).is_err());
        let empty = ListRequest::parse(None, &SPEC).unwrap();
        let page = empty
            .page(
                Listed {
                    items: Vec::<u8>::new(),
                    total: 0,
                },
                |x| x,
            )
            .unwrap();
        assert_eq!(page.total_pages, 1);
    }
}
