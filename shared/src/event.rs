//! The event model: what publishers send to `{ns}.events`, its validation, and the exact
//! body that is signed and POSTed to webhooks.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Longest accepted event id and event type.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_TYPE_LEN: usize = 128;

/// Why a message is not an event. The text goes into `x-hookrelay-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("body too large: {size} bytes, limit {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON: {0}")]
    BadJson(String),
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("missing `type`")]
    MissingType,
    #[error(
        "invalid `type` {0:?}: dot-separated lowercase segments [a-z0-9_-]+, at least two, at most 128 chars"
    )]
    BadType(String),
    #[error("missing `data`")]
    MissingData,
    #[error("`data` must be a JSON object")]
    DataNotObject,
    #[error("invalid `id`: 1-128 printable ASCII characters without spaces")]
    BadId,
    #[error("invalid `occurred_at`: must be an RFC 3339 timestamp")]
    BadOccurredAt,
}

/// The message as published. Fields are optional here so that validation can say what is wrong.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, rename = "type", borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    occurred_at: Option<&'a RawValue>,
}

/// A validated event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    /// The exact bytes that are signed and sent: `{"id","type","timestamp","data"}`.
    pub body: String,
}

impl Event {
    /// The category: the first segment of the type (`license` for `license.assigned`).
    pub fn category(&self) -> &str {
        category_of(&self.event_type)
    }
}

/// The first segment of an event type.
pub fn category_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

/// Whether `t` is a valid event type.
pub fn is_valid_type(t: &str) -> bool {
    t.len() <= MAX_TYPE_LEN && valid_segments(t).is_some_and(|n| n >= 2)
}

/// How many dot-separated segments `t` has when each is a valid one (non-empty; lowercase
/// ASCII letters, digits, `_`, `-`), else `None`. Allocates nothing: it runs for every
/// webhook's patterns on every event.
pub(crate) fn valid_segments(t: &str) -> Option<usize> {
    let mut n = 0usize;
    for s in t.split('.') {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return None;
        }
        n = n.saturating_add(1);
    }
    Some(n)
}

/// Whether `id` can be an event id (it travels in the `webhook-id` header).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A fresh event id: `evt_` and a time-ordered UUID.
pub fn new_event_id() -> String {
    format!("evt_{}", uuid::Uuid::now_v7().simple())
}

/// Validates a message body and builds the event, or says why it is not one.
pub fn parse_event(bytes: &[u8], max_bytes: usize, received_at: OffsetDateTime) -> Result<Event, EventError> {
    if bytes.len() > max_bytes {
        return Err(EventError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| EventError::NotUtf8)?;
    let value: &RawValue = serde_json::from_str(text).map_err(|e| EventError::BadJson(e.to_string()))?;
    if !value.get().trim_start().starts_with('{') {
        return Err(EventError::NotAnObject);
    }
    let inc: Incoming = serde_json::from_str(value.get()).map_err(|e| EventError::BadJson(e.to_string()))?;

    let event_type: String = match inc.event_type {
        None => return Err(EventError::MissingType),
        Some(raw) if raw.get() == "null" => return Err(EventError::MissingType),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| EventError::BadType(raw.get().chars().take(140).collect()))?,
    };
    if !is_valid_type(&event_type) {
        return Err(EventError::BadType(event_type.chars().take(140).collect()));
    }
    let data = match inc.data {
        None => return Err(EventError::MissingData),
        Some(raw) if raw.get() == "null" => return Err(EventError::MissingData),
        Some(raw) if !raw.get().trim_start().starts_with('{') => return Err(EventError::DataNotObject),
        Some(raw) => raw,
    };
    let id = match inc.id {
        None => new_event_id(),
        Some(raw) if raw.get() == "null" => new_event_id(),
        Some(raw) => {
            let id: String = serde_json::from_str(raw.get()).map_err(|_| EventError::BadId)?;
            if !is_valid_id(&id) {
                return Err(EventError::BadId);
            }
            id
        }
    };
    let occurred_at = match inc.occurred_at {
        None => received_at,
        Some(raw) if raw.get() == "null" => received_at,
        Some(raw) => {
            let s: String = serde_json::from_str(raw.get()).map_err(|_| EventError::BadOccurredAt)?;
            let t = OffsetDateTime::parse(&s, &Rfc3339).map_err(|_| EventError::BadOccurredAt)?;
            // Stored as timestamptz (UTC): a time that leaves years 1-9999 once converted
            // (e.g. 9999-12-31T23:59:59-23:59) would panic the database encoder.
            t.checked_to_offset(time::UtcOffset::UTC)
                .filter(|u| (1..=9999).contains(&u.year()))
                .ok_or(EventError::BadOccurredAt)?
        }
    };
    let body =
        outgoing_body(&id, &event_type, occurred_at, data).map_err(|e| EventError::BadJson(e.to_string()))?;
    Ok(Event {
        id,
        event_type,
        occurred_at,
        body,
    })
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn an_occurred_at_out_of_range_in_utc_is_refused_not_a_panic() {
        let now = OffsetDateTime::now_utc();
        for t in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
            let body = format!(r#"{{"type":"a.b","data":{{}},"occurred_at":"{t}"}}"#);
            assert!(
                matches!(
                    parse_event(body.as_bytes(), 1 << 20, now),
                    Err(EventError::BadOccurredAt)
                ),
                "{t}"
            );
        }
        let ok = r#"{"type":"a.b","data":{},"occurred_at":"2026-12-01T10:00:00+02:00"}"#;
        assert!(parse_event(ok.as_bytes(), 1 << 20, now).is_ok());
    }
}

#[derive(Serialize)]
struct Outgoing<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: &'a RawValue,
}

/// Builds the body that is signed and sent.
pub fn outgoing_body(
    id: &str,
    event_type: &str,
    occurred_at: OffsetDateTime,
    data: &RawValue,
) -> Result<String, serde_json::Error> {
    let timestamp = rfc3339(occurred_at);
    serde_json::to_string(&Outgoing {
        id,
        event_type,
        timestamp,
        data,
    })
}

/// Formats a UTC timestamp as RFC 3339 with millisecond precision (`2026-11-27T10:00:00.123Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn a_full_event_builds_the_contract_body() {
        let e = parse_event(
            br#"{"id":"evt_1","type":"license.assigned","data":{"license_id":"lic_1"},"occurred_at":"2026-11-27T10:00:00Z"}"#,
            1024,
            now(),
        )
        .expect("valid");
        assert_eq!(e.id, "evt_1");
        assert_eq!(e.category(), "license");
        assert_eq!(
            e.body,
            r#"{"id":"evt_1","type":"license.assigned","timestamp":"2026-11-27T10:00:00.000Z","data":{"license_id":"lic_1"}}"#
        );
    }

    #[test]
    fn id_and_occurred_at_are_optional() {
        let e = parse_event(br#"{"type":"product.created","data":{}}"#, 1024, now()).expect("valid");
        assert!(e.id.starts_with("evt_"));
    }

    #[test]
    fn every_bad_message_says_why() {
        let cases: &[(&[u8], EventError)] = &[
            (b"{not json", EventError::BadJson(String::new())),
            (b"[1,2]", EventError::NotAnObject),
            (br#"{"data":{}}"#, EventError::MissingType),
            (
                br#"{"type":"License.Assigned","data":{}}"#,
                EventError::BadType(String::new()),
            ),
            (
                br#"{"type":"license","data":{}}"#,
                EventError::BadType(String::new()),
            ),
            (
                br#"{"type":"license..x","data":{}}"#,
                EventError::BadType(String::new()),
            ),
            (br#"{"type":7,"data":{}}"#, EventError::BadType(String::new())),
            (br#"{"type":"a.b"}"#, EventError::MissingData),
            (br#"{"type":"a.b","data":[1]}"#, EventError::DataNotObject),
            (br#"{"type":"a.b","data":{},"id":"has space"}"#, EventError::BadId),
            (br#"{"type":"a.b","data":{},"id":5}"#, EventError::BadId),
            (
                br#"{"type":"a.b","data":{},"occurred_at":"yesterday"}"#,
                EventError::BadOccurredAt,
            ),
            (b"\xff\xfe{}", EventError::NotUtf8),
        ];
        for (input, want) in cases {
            let got = parse_event(input, 1024, now()).expect_err("must be rejected");
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(want),
                "{:?}: got {got:?}",
                String::from_utf8_lossy(input)
            );
            assert!(!got.to_string().is_empty());
        }
        let big = vec![b' '; 2000];
        assert!(matches!(
            parse_event(&big, 1024, now()),
            Err(EventError::TooLarge { .. })
        ));
    }

    #[test]
    fn long_types_and_ids_are_rejected() {
        let t = format!("a.{}", "b".repeat(127));
        assert!(!is_valid_type(&t));
        assert!(is_valid_type("license.assigned"));
        assert!(!is_valid_id(&"x".repeat(129)));
    }

    mod props {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::super::*;

        fn event_type() -> impl Strategy<Value = String> {
            prop::collection::vec("[a-z0-9_-]{1,10}", 2..5).prop_map(|s| s.join("."))
        }

        /// JSON values of a few levels, with any strings (escapes, unicode) and numbers.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(any::<String>(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn data() -> impl Strategy<Value = Value> {
            prop::collection::btree_map(any::<String>(), json_value(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        }

        proptest! {
            /// Any bytes are an event or an error that says why, never a panic.
            #[test]
            fn any_bytes_parse_or_are_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Err(e) = parse_event(&bytes, 256, OffsetDateTime::UNIX_EPOCH) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }

            /// JSON-shaped text (objects with the event's keys and odd values) never panics either.
            #[test]
            fn event_shaped_json_never_panics(
                id in json_value(), t in json_value(), d in json_value(), at in json_value(),
            ) {
                let body = json!({"id": id, "type": t, "data": d, "occurred_at": at}).to_string();
                let _ = parse_event(body.as_bytes(), usize::MAX, OffsetDateTime::UNIX_EPOCH);
            }

            /// A valid event builds a body with the same id, type and data, which itself parses
            /// back to the same event.
            #[test]
            fn a_valid_event_round_trips_through_its_body(
                id in "[!-~]{1,128}",
                t in event_type(),
                d in data(),
                secs in 0i64..4_102_444_800,
                ms in 0u16..1000,
            ) {
                let at = OffsetDateTime::from_unix_timestamp(secs).expect("in range")
                    + time::Duration::milliseconds(i64::from(ms));
                let input = json!({"id": id, "type": t, "data": d, "occurred_at": rfc3339(at)}).to_string();
                let e = parse_event(input.as_bytes(), usize::MAX, OffsetDateTime::UNIX_EPOCH).expect("valid");
                prop_assert_eq!(&e.id, &id);
                prop_assert_eq!(&e.event_type, &t);
                prop_assert_eq!(e.occurred_at, at);
                let body: Value = serde_json::from_str(&e.body).expect("the body is JSON");
                prop_assert_eq!(&body["data"], &d);
                prop_assert_eq!(&body["timestamp"], &Value::String(rfc3339(at)));
                let again = parse_event(e.body.as_bytes(), usize::MAX, OffsetDateTime::UNIX_EPOCH).expect("body parses");
                prop_assert_eq!(again.id, e.id);
                prop_assert_eq!(again.event_type, e.event_type);
                let again_body: Value = serde_json::from_str(&again.body).expect("JSON");
                prop_assert_eq!(&again_body["data"], &d);
            }

            /// Over the limit is always refused as too large, whatever the bytes.
            #[test]
            fn over_the_limit_is_too_large(bytes in prop::collection::vec(any::<u8>(), 1..256), limit in 0usize..255) {
                prop_assume!(bytes.len() > limit);
                let refused = matches!(
                    parse_event(&bytes, limit, OffsetDateTime::UNIX_EPOCH),
                    Err(EventError::TooLarge { .. })
                );
                prop_assert!(refused);
            }
        }
    }
}
