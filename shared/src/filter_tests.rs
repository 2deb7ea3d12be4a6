//! Unit tests of [`super::Filter`]: one group per operator, then validation.

use serde_json::{Value, json};

use super::*;

fn data() -> Value {
    json!({
        "plan": "pro",
        "seats": 10,
        "price": 9.5,
        "big": 9007199254740993u64,
        "active": true,
        "note": null,
        "customer": {"email": "a@example.com", "region": "eu-west", "tags": ["vip", "beta"]},
        "at": "2026-12-01T10:00:00Z"
    })
}

fn passes(filter: Value) -> bool {
    Filter::compile(&filter)
        .expect("valid filter")
        .matches("license.assigned", &data())
}

#[test]
fn an_empty_filter_matches_everything() {
    assert!(passes(json!({})));
}

#[test]
fn equality_on_type_and_dotted_paths() {
    assert!(passes(json!({"type": "license.assigned"})));
    assert!(!passes(json!({"type": "license.revoked"})));
    assert!(passes(
        json!({"data.plan": "pro", "data.customer.email": "a@example.com"})
    ));
    assert!(!passes(
        json!({"data.plan": "pro", "data.customer.email": "b@example.com"})
    ));
    assert!(passes(json!({"data.active": true, "data.note": null})));
    assert!(
        !passes(json!({"data.missing": null})),
        "a missing path is not null"
    );
    assert!(
        passes(json!({"data.customer.tags.0": "vip"})),
        "a number indexes an array"
    );
    assert!(!passes(json!({"data.customer.tags.5": "vip"})));
    assert!(!passes(json!({"data.plan.x": "pro"})), "no fields below a string");
}

#[test]
fn numbers_compare_by_value() {
    assert!(passes(json!({"data.seats": 10.0})));
    assert!(passes(json!({"data.seats": 10})));
    assert!(!passes(json!({"data.seats": "10"})), "a string is not a number");
    assert!(passes(json!({"data.big": 9007199254740993u64})));
    assert!(
        !passes(json!({"data.big": 9007199254740992u64})),
        "integers compare exactly"
    );
}

#[test]
fn an_array_means_any_of() {
    assert!(passes(json!({"data.plan": ["team", "pro"]})));
    assert!(!passes(json!({"data.plan": ["team", "free"]})));
    assert!(passes(json!({"type": ["license.revoked", "license.assigned"]})));
    assert!(
        !passes(json!({"data.plan": []})),
        "an empty any-of matches nothing"
    );
}

#[test]
fn exists_tells_present_from_absent() {
    assert!(passes(json!({"data.customer.email": {"$exists": true}})));
    assert!(passes(json!({"data.note": {"$exists": true}})), "null is present");
    assert!(passes(json!({"data.missing": {"$exists": false}})));
    assert!(!passes(json!({"data.missing": {"$exists": true}})));
    assert!(!passes(json!({"data.plan": {"$exists": false}})));
}

#[test]
fn ne_is_none_of_and_matches_a_missing_path() {
    assert!(passes(json!({"data.plan": {"$ne": "free"}})));
    assert!(!passes(json!({"data.plan": {"$ne": "pro"}})));
    assert!(passes(json!({"data.missing": {"$ne": "pro"}})));
    assert!(!passes(json!({"data.plan": {"$ne": ["free", "pro"]}})));
    assert!(passes(json!({"type": {"$ne": "license.revoked"}})));
    assert!(!passes(json!({"data.seats": {"$ne": 10.0}})));
}

#[test]
fn ordering_operators_on_numbers() {
    assert!(passes(json!({"data.seats": {"$gt": 9}})));
    assert!(!passes(json!({"data.seats": {"$gt": 10}})));
    assert!(passes(json!({"data.seats": {"$gte": 10}})));
    assert!(passes(json!({"data.seats": {"$lt": 10.5}})));
    assert!(!passes(json!({"data.seats": {"$lt": 10}})));
    assert!(passes(json!({"data.seats": {"$lte": 10}})));
    assert!(
        passes(json!({"data.price": {"$gt": 9, "$lt": 10}})),
        "all operators hold"
    );
    assert!(!passes(json!({"data.price": {"$gt": 9, "$lt": 9.5}})));
}

#[test]
fn ordering_operators_on_strings_and_mismatched_types() {
    assert!(passes(json!({"data.at": {"$gte": "2026-12-01T00:00:00Z"}})));
    assert!(!passes(json!({"data.at": {"$lt": "2026-12-01T00:00:00Z"}})));
    assert!(passes(json!({"type": {"$gt": "license.a"}})));
    assert!(
        !passes(json!({"data.plan": {"$gt": 1}})),
        "string against number: no match"
    );
    assert!(!passes(json!({"data.seats": {"$gt": "1"}})));
    assert!(!passes(json!({"data.missing": {"$lt": 100}})));
    assert!(!passes(json!({"data.active": {"$gte": 0}})));
}

#[test]
fn prefix_on_strings_and_the_type() {
    assert!(passes(json!({"data.customer.region": {"$prefix": "eu-"}})));
    assert!(!passes(json!({"data.customer.region": {"$prefix": "us-"}})));
    assert!(passes(json!({"type": {"$prefix": "license."}})));
    assert!(!passes(json!({"data.seats": {"$prefix": "1"}})), "not a string");
    assert!(!passes(json!({"data.missing": {"$prefix": ""}})));
}

#[test]
fn a_data_field_named_type_is_reached_through_data() {
    let f = Filter::compile(&json!({"data.type": "x"})).expect("valid");
    assert!(f.matches("a.b", &json!({"type": "x"})));
    assert!(!f.matches("x", &json!({})));
}

fn refused(filter: Value) -> FilterError {
    Filter::compile(&filter).expect_err(&filter.to_string())
}

#[test]
fn invalid_filters_are_refused_naming_the_path() {
    for (doc, field) in [
        (json!({"plan": "pro"}), "filter.plan"),
        (json!({"id": "x"}), "filter.id"),
        (json!({"type.x": "a"}), "filter.type.x"),
        (json!({"data..plan": 1}), "filter.data..plan"),
        (json!({"data.plan.": 1}), "filter.data.plan."),
        (json!({"data.seats": {"$gt": true}}), "filter.data.seats"),
        (json!({"data.seats": {"$gte": null}}), "filter.data.seats"),
        (json!({"data.seats": {"$in": [1]}}), "filter.data.seats"),
        (json!({"data.seats": {"$exists": "yes"}}), "filter.data.seats"),
        (json!({"data.seats": {"$prefix": 1}}), "filter.data.seats"),
        (json!({"data.seats": {"$ne": {"a": 1}}}), "filter.data.seats"),
        (json!({"data.seats": {}}), "filter.data.seats"),
        (json!({"data.c": {"email": "x"}}), "filter.data.c"),
        (json!({"data.c": [[1]]}), "filter.data.c"),
        (json!({"data.c": [{"$gt": 1}]}), "filter.data.c"),
        (json!([1]), "filter"),
        (json!("type"), "filter"),
    ] {
        let e = refused(doc.clone());
        assert_eq!(e.field(), field, "{doc}: {e}");
        assert!(e.to_string().starts_with(field), "{e}");
    }
}

#[test]
fn limits_are_enforced() {
    let many: serde_json::Map<String, Value> = (0..=MAX_CONDITIONS)
        .map(|i| (format!("data.f{i}"), json!(1)))
        .collect();
    assert_eq!(refused(Value::Object(many)).field(), "filter");
    let deep = format!("data.{}", vec!["a"; MAX_PATH_SEGMENTS + 1].join("."));
    assert_eq!(
        refused(json!({ deep.clone(): 1 })).field(),
        format!("filter.{deep}")
    );
    let wide: Vec<u32> = (0..=MAX_ALTERNATIVES as u32).collect();
    assert_eq!(refused(json!({"data.a": wide})).field(), "filter.data.a");
    let huge = "x".repeat(MAX_FILTER_BYTES);
    assert_eq!(refused(json!({"data.a": huge})).field(), "filter");
}

#[test]
fn a_filter_never_panics_on_odd_events() {
    let f = Filter::compile(&json!({
        "data.a.0.b": {"$exists": true, "$ne": 1, "$gte": 0, "$prefix": "x"},
        "type": {"$lte": "z"}
    }))
    .expect("valid");
    for d in [
        json!(null),
        json!([]),
        json!({"a": []}),
        json!({"a": [{"b": "xy"}]}),
        json!({"a": "str"}),
        json!({"a": {"0": {"b": 1.5e300}}}),
    ] {
        let _ = f.matches("", &d);
        let _ = f.matches("a.b", &d);
    }
    assert!(
        !f.matches("a.b", &json!({"a": [{"b": "xy"}]})),
        "$gte 0 on a string fails"
    );
}
