//! The problem+json responses the handlers' OpenAPI annotations share, one type per group, so
//! a handler lists what it can fail with instead of repeating each entry:
//! `responses((status = 200, body = WebhookOut), NeedsAdmin, BadId, NotFound)`.
//!
//! A handler's own failures (409, a 404 worth naming) stay inline in its annotation.
//! The 400 types describe different inputs; give a handler at most one of them.

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses,
    openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder},
};

use crate::error::PROBLEM_JSON;

/// One problem+json response: the `Problem` schema (registered in the document's components).
fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn map<const N: usize>(entries: [(&str, &str); N]) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, description)| (status.to_owned(), problem(description)))
        .collect()
}

const UNAUTHORIZED: (&str, &str) = ("401", "Missing or unknown token");

/// 401: any valid token will do (`GET /api/v1/me`).
pub struct NeedsToken;

impl IntoResponses for NeedsToken {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([UNAUTHORIZED])
    }
}

/// 401 and 403: the admin role or higher.
pub struct NeedsAdmin;

impl IntoResponses for NeedsAdmin {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([UNAUTHORIZED, ("403", "Needs the admin role")])
    }
}

/// 401 and 403: the owner role.
pub struct NeedsOwner;

impl IntoResponses for NeedsOwner {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([UNAUTHORIZED, ("403", "Needs the owner role")])
    }
}

/// 400: a query parameter is malformed.
pub struct BadQuery;

impl IntoResponses for BadQuery {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([("400", "A parameter is invalid (the detail names it)")])
    }
}

/// 400: the id in the path is not a UUID.
pub struct BadId;

impl IntoResponses for BadId {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([("400", "The id is not a UUID")])
    }
}

/// 400, 413, 415 and 422: a JSON request body, and nothing else to parse.
pub struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([
            ("400", "The body is not JSON or a value is malformed"),
            ("413", "The body is over the limit"),
            ("415", "The body is not sent as application/json"),
            ("422", "A field is invalid (the detail names it)"),
        ])
    }
}

/// 400, 413, 415 and 422: a JSON request body to the resource an id in the path names.
pub struct JsonBodyById;

impl IntoResponses for JsonBodyById {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = JsonBody::responses();
        all.insert(
            "400".into(),
            problem("The id is not a UUID, the body is not JSON or a value is malformed"),
        );
        all
    }
}

/// 422 alone: a request whose only body is optional (`rotate-secret`).
pub struct Invalid;

impl IntoResponses for Invalid {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([("422", "A field is invalid (the detail names it)")])
    }
}

/// 404: the id names nothing (live).
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([("404", "No such item (the detail says which)")])
    }
}

/// 503: the handler publishes to RabbitMQ, and it is unreachable.
pub struct AmqpDown;

impl IntoResponses for AmqpDown {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map([("503", "RabbitMQ is unreachable")])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::PROBLEM_JSON;

    #[test]
    fn every_api_operation_documents_its_token_and_failures_as_problems() {
        let doc: Value = serde_json::from_str(&crate::openapi_json()).expect("the document is JSON");
        let mut api_operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let responses = op["responses"].as_object().expect("responses");
                if path.starts_with("/api/v1/") {
                    api_operations += 1;
                    assert!(responses.contains_key("401"), "{method} {path}: 401");
                }
                for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
                    let schema = &response["content"][PROBLEM_JSON]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Problem",
                        "{method} {path} {status}: {response}"
                    );
                    assert!(
                        response["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}: a description"
                    );
                }
            }
        }
        assert!(api_operations >= 19, "{api_operations} operations under /api/v1/");
    }
}
