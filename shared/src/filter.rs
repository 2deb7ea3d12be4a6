//! Payload filters: a JSON document a webhook carries, matched against each event it is
//! subscribed to. An event that does not match gets no delivery for that webhook.
//!
//! ```json
//! {"type": "license.assigned", "data.plan": ["pro", "team"], "data.seats": {"$gte": 5},
//!  "data.customer.email": {"$exists": true}, "data.region": {"$ne": "eu"}}
//! ```
//! Every key is a dotted path: `type` (the event type), `data` or `data.<a>.<b>…` (into the
//! event's `data`; a segment that is a number indexes an array). All keys must hold. A value is
//! - a scalar or `null`: equality (numbers compare by value: `1` equals `1.0`);
//! - an array: any of its elements equals (an empty array matches nothing);
//! - an object of operators, all of which must hold: `$exists` (bool), `$ne` (a value, or an
//!   array meaning none of), `$gt`/`$gte`/`$lt`/`$lte` (a number or a string; strings compare
//!   by bytes, so RFC 3339 times in UTC order correctly; a value of the other type, or a
//!   missing one, does not match), `$prefix` (a string the value starts with).
//!
//! A missing path equals nothing and is "not equal" to everything (`$ne` matches), as in
//! MongoDB. [`Filter::compile`] validates and compiles once per webhook; [`Filter::matches`]
//! allocates nothing.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Most conditions (paths) in one filter.
pub const MAX_CONDITIONS: usize = 50;
/// Most segments in one path.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Most elements in an any-of (or none-of) array.
pub const MAX_ALTERNATIVES: usize = 100;
/// The largest filter document, as compact JSON.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;

/// Why a filter is refused; `path` names the key (or `filter` for the document itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field(), self.reason)
    }
}

impl std::error::Error for FilterError {}

fn err(path: &str, reason: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Where a condition looks.
#[derive(Clone, Debug, PartialEq)]
enum Root {
    Type,
    Data,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// Equal to any of these (one element for plain equality).
    AnyOf(Vec<Value>),
    Exists(bool),
    /// Equal to none of these.
    NoneOf(Vec<Value>),
    Cmp(Ordering, bool, Value),
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    root: Root,
    segments: Vec<String>,
    ops: Vec<Op>,
}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    conditions: Vec<Condition>,
}

impl Filter {
    /// Validates a filter document and compiles it; the error names the offending path.
    pub fn compile(doc: &Value) -> Result<Self, FilterError> {
        let Value::Object(map) = doc else {
            return Err(err(
                "",
                "must be a JSON object of paths (`type`, `data.<field>`) to conditions",
            ));
        };
        if doc.to_string().len() > MAX_FILTER_BYTES {
            return Err(err("", format!("at most {MAX_FILTER_BYTES} bytes")));
        }
        if map.len() > MAX_CONDITIONS {
            return Err(err("", format!("at most {MAX_CONDITIONS} paths")));
        }
        let conditions = map
            .iter()
            .map(|(path, cond)| compile_condition(path, cond))
            .collect::<Result<_, _>>()?;
        Ok(Self { conditions })
    }

    /// Whether an event of type `event_type` with `data` passes every condition.
    pub fn matches(&self, event_type: &str, data: &Value) -> bool {
        self.conditions.iter().all(|c| {
            let found = match c.root {
                Root::Type => Some(TypeOrValue::Type(event_type)),
                Root::Data => lookup(data, &c.segments).map(TypeOrValue::Value),
            };
            c.ops.iter().all(|op| op_holds(op, found))
        })
    }
}

impl FilterError {
    /// The field name the API reports: `filter` or `filter.<path>`.
    pub fn field(&self) -> String {
        if self.path.is_empty() {
            "filter".to_owned()
        } else {
            format!("filter.{}", self.path)
        }
    }
}

/// The found value: the event type is a `&str`, so it is not copied into a `Value`.
#[derive(Clone, Copy)]
enum TypeOrValue<'a> {
    Type(&'a str),
    Value(&'a Value),
}

fn compile_condition(path: &str, cond: &Value) -> Result<Condition, FilterError> {
    let mut parts = path.split('.');
    let root = match parts.next() {
        Some("type") => Root::Type,
        Some("data") => Root::Data,
        _ => {
            return Err(err(
                path,
                "a path is `type`, `data` or `data.<field>` (dotted, e.g. `data.customer.plan`)",
            ));
        }
    };
    let segments: Vec<String> = parts.map(str::to_owned).collect();
    if root == Root::Type && !segments.is_empty() {
        return Err(err(path, "`type` has no fields below it"));
    }
    if segments.iter().any(String::is_empty) {
        return Err(err(path, "empty segment in a dotted path"));
    }
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(err(
            path,
            format!("at most {MAX_PATH_SEGMENTS} segments below `data`"),
        ));
    }
    let ops = match cond {
        Value::Object(ops) => compile_ops(path, ops)?,
        Value::Array(items) => vec![Op::AnyOf(alternatives(path, items)?)],
        scalar => vec![Op::AnyOf(vec![scalar.clone()])],
    };
    Ok(Condition { root, segments, ops })
}

fn alternatives(path: &str, items: &[Value]) -> Result<Vec<Value>, FilterError> {
    if items.len() > MAX_ALTERNATIVES {
        return Err(err(path, format!("at most {MAX_ALTERNATIVES} alternatives")));
    }
    if items.iter().any(|v| v.is_array() || v.is_object()) {
        return Err(err(path, "alternatives are strings, numbers, booleans or null"));
    }
    Ok(items.to_vec())
}

fn compile_ops(path: &str, ops: &Map<String, Value>) -> Result<Vec<Op>, FilterError> {
    if ops.is_empty() {
        return Err(err(
            path,
            "an empty object; give a value, an array or operators like `$gte`",
        ));
    }
    ops.iter()
        .map(|(name, arg)| {
            let bad = |what: &str| err(path, format!("`{name}` takes {what}"));
            Ok(match name.as_str() {
                "$exists" => Op::Exists(arg.as_bool().ok_or_else(|| bad("true or false"))?),
                "$ne" => match arg {
                    Value::Array(items) => Op::NoneOf(alternatives(path, items)?),
                    Value::Object(_) => return Err(bad("a value or an array of values")),
                    v => Op::NoneOf(vec![v.clone()]),
                },
                "$gt" | "$gte" | "$lt" | "$lte" => {
                    if !(arg.is_number() || arg.is_string()) {
                        return Err(bad("a number or a string"));
                    }
                    let (want, or_equal) = match name.as_str() {
                        "$gt" => (Ordering::Greater, false),
                        "$gte" => (Ordering::Greater, true),
                        "$lt" => (Ordering::Less, false),
                        _ => (Ordering::Less, true),
                    };
                    Op::Cmp(want, or_equal, arg.clone())
                }
                "$prefix" => Op::Prefix(arg.as_str().ok_or_else(|| bad("a string"))?.to_owned()),
                other if other.starts_with('$') => {
                    return Err(err(
                        path,
                        format!(
                            "unknown operator `{other}` (use $exists, $ne, $gt, $gte, $lt, $lte, $prefix)"
                        ),
                    ));
                }
                _ => {
                    return Err(err(
                        path,
                        "an object here must hold operators only; match nested fields with a dotted path",
                    ));
                }
            })
        })
        .collect()
}

fn lookup<'a>(data: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(data, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn op_holds(op: &Op, found: Option<TypeOrValue<'_>>) -> bool {
    match op {
        Op::Exists(want) => found.is_some() == *want,
        Op::AnyOf(values) => found.is_some_and(|f| values.iter().any(|v| equals(f, v))),
        Op::NoneOf(values) => found.is_none_or(|f| !values.iter().any(|v| equals(f, v))),
        Op::Cmp(want, or_equal, arg) => found
            .and_then(|f| compare(f, arg))
            .is_some_and(|o| o == *want || (*or_equal && o == Ordering::Equal)),
        Op::Prefix(p) => found.is_some_and(|f| match f {
            TypeOrValue::Type(t) => t.starts_with(p.as_str()),
            TypeOrValue::Value(Value::String(s)) => s.starts_with(p.as_str()),
            TypeOrValue::Value(_) => false,
        }),
    }
}

fn equals(found: TypeOrValue<'_>, want: &Value) -> bool {
    match (found, want) {
        (TypeOrValue::Type(t), Value::String(w)) => t == w,
        (TypeOrValue::Type(_), _) => false,
        (TypeOrValue::Value(Value::Number(a)), Value::Number(b)) => {
            cmp_numbers(a, b) == Some(Ordering::Equal)
        }
        (TypeOrValue::Value(v), w) => v == w,
    }
}

/// The order of the found value against the operand, when both are numbers or both strings.
fn compare(found: TypeOrValue<'_>, arg: &Value) -> Option<Ordering> {
    match (found, arg) {
        (TypeOrValue::Type(t), Value::String(s)) => Some(t.cmp(s.as_str())),
        (TypeOrValue::Value(Value::String(a)), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (TypeOrValue::Value(Value::Number(a)), Value::Number(b)) => cmp_numbers(a, b),
        _ => None,
    }
}

/// Integers compare exactly (also beyond 2^53); anything with a fraction as f64.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Checks a webhook's `filter` field (`None` or JSON `null`: no filter), naming the path.
pub fn validate_field(filter: Option<&Value>) -> Result<(), crate::webhooks::InvalidField> {
    match filter {
        None | Some(Value::Null) => Ok(()),
        Some(doc) => Filter::compile(doc)
            .map(|_| ())
            .map_err(|e| crate::webhooks::InvalidField {
                field: e.field(),
                reason: e.reason,
            }),
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
