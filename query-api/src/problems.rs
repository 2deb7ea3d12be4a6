//! The problem+json responses the handlers' OpenAPI annotations share, one type per group, so
//! a handler lists what it can fail with instead of repeating each entry:
//! `responses((status = 200, body = WebhookOut), NeedsAdmin, BadId, NotFound)`.
//!
//! A handler's own failures (a 409, a 404 worth naming) have a type here too, named for what
//! they mean, so that no annotation spells out a problem response.
//! The 400 types describe different inputs; give a handler at most one of them.
//! An operation that lists a 401 type (`NeedsToken`, `NeedsAdmin`, `NeedsOwner`) is also given
//! the bearer security requirement, once, by `BearerAuth` in lib.rs.

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

/// Declares, for each `Name = [(status, description), …];`, a type whose responses are those
/// problems.
macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident = [$($entry:expr),+ $(,)?];)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                map([$($entry),+])
            }
        }
    )+};
}

const UNAUTHORIZED: (&str, &str) = ("401", "Missing or unknown token");
const INVALID: (&str, &str) = ("422", "A field is invalid (the detail names it)");

problems! {
    /// 401: any valid token will do (`GET /api/v1/me`).
    NeedsToken = [UNAUTHORIZED];
    /// 401 and 403: the admin role or higher.
    NeedsAdmin = [UNAUTHORIZED, ("403", "Needs the admin role")];
    /// 401 and 403: the owner role.
    NeedsOwner = [UNAUTHORIZED, ("403", "Needs the owner role")];
    /// 400: a query parameter is malformed.
    BadQuery = [("400", "A parameter is invalid (the detail names it)")];
    /// 400: the id in the path is not a UUID.
    BadId = [("400", "The id is not a UUID")];
    /// 400: the id in the path is not a UUID, or the window is not one of those offered.
    BadIdOrWindow = [("400", "A bad id or window (the detail names it)")];
    /// 400, 413, 415 and 422: a JSON request body, and nothing else to parse.
    JsonBody = [
        ("400", "The body is not JSON or a value is malformed"),
        ("413", "The body is over the limit"),
        ("415", "The body is not sent as application/json"),
        INVALID,
    ];
    /// 422 alone: a request whose only body is optional (`rotate-secret`).
    Invalid = [INVALID];
    /// 404: the id names nothing (live).
    NotFound = [("404", "No such item (the detail says which)")];
    /// 404: no attempt has the id (`GET /api/v1/deliveries/{id}`).
    NoSuchAttempt = [("404", "No such attempt")];
    /// 404: neither an attempt nor a delivery has the id (a manual retry).
    NoSuchAttemptOrDelivery = [("404", "No such attempt or delivery")];
    /// 404: no bulk-retry job has the id.
    NoSuchJob = [("404", "No such job")];
    /// 404: no token that is not revoked has the id.
    NoSuchLiveToken = [("404", "No such live token")];
    /// 409: a manual retry of a delivery that cannot be sent now.
    CannotRetry = [(
        "409",
        "The delivery's webhook is disabled or deleted, or the delivery is held behind the head of its ordered webhook",
    )];
    /// 409: a test event to a disabled webhook.
    WebhookDisabled = [("409", "The webhook is disabled")];
    /// 503: the handler publishes to RabbitMQ, and it is unreachable.
    AmqpDown = [("503", "RabbitMQ is unreachable")];
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
