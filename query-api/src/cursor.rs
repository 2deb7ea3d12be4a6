//! Keyset-pagination cursors of the delivery log: the position after the last item of a page,
//! as (sort value, attempted_at, id), opaque to clients (base64url of a small JSON object).
//! Every cursor is checked on the way in: a cursor made for another sort or order, or one that
//! was edited, is a 400 naming `cursor`. The simpler lists (webhooks, the activity log) page by
//! (time, id) alone: [`encode_time_id`].

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::AppError;

/// What the log is ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    AttemptedAt,
    Status,
    ResponseCode,
}

impl SortKey {
    pub fn parse(s: &str) -> Result<Self, AppError> {
        match s {
            "attempted_at" => Ok(Self::AttemptedAt),
            "status" => Ok(Self::Status),
            "response_code" => Ok(Self::ResponseCode),
            other => Err(AppError::bad(format!(
                "sort: `{}` is not one of attempted_at, status, response_code",
                crate::extract::truncate(other, 40)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AttemptedAt => "attempted_at",
            Self::Status => "status",
            Self::ResponseCode => "response_code",
        }
    }
}

/// The value of the sort key at the cursor (besides attempted_at and id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortValue {
    None,
    Status(&'static str),
    /// The response code with no response counted as 0 (so it sorts lowest).
    Code(i32),
}

/// A decoded, validated cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub value: SortValue,
    pub attempted_at: OffsetDateTime,
    pub id: Uuid,
}

/// The wire form. Short keys keep the cursor short in URLs.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    /// sort key
    s: String,
    /// order: "asc" or "desc"
    o: String,
    /// status value (sort=status)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    st: Option<String>,
    /// response code (sort=response_code)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rc: Option<i32>,
    /// attempted_at, Unix microseconds (PostgreSQL's precision, so it round-trips exactly)
    t: i64,
    i: Uuid,
}

fn invalid(why: &str) -> AppError {
    AppError::bad(format!(
        "cursor: {why}; use the next_cursor of the previous page, with the same sort and order"
    ))
}

impl Cursor {
    pub fn encode(&self, sort: SortKey, descending: bool) -> String {
        let (st, rc) = match &self.value {
            SortValue::None => (None, None),
            SortValue::Status(s) => (Some((*s).to_owned()), None),
            SortValue::Code(c) => (None, Some(*c)),
        };
        let wire = Wire {
            s: sort.as_str().into(),
            o: if descending { "desc" } else { "asc" }.into(),
            st,
            rc,
            t: (self.attempted_at.unix_timestamp_nanos() / 1000) as i64,
            i: self.id,
        };
        // Serialising this plain struct cannot fail.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    pub fn decode(raw: &str, sort: SortKey, descending: bool) -> Result<Self, AppError> {
        if raw.len() > 512 {
            return Err(invalid("too long to be a cursor"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim_end_matches('='))
            .map_err(|_| invalid("not a cursor (bad encoding)"))?;
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| invalid("not a cursor (bad content)"))?;
        let order = if descending { "desc" } else { "asc" };
        if wire.s != sort.as_str() || wire.o != order {
            return Err(invalid(&format!(
                "it was made for sort={}&order={}, not sort={}&order={order}",
                crate::extract::truncate(&wire.s, 20),
                crate::extract::truncate(&wire.o, 10),
                sort.as_str()
            )));
        }
        let value = match (sort, wire.st.as_deref(), wire.rc) {
            (SortKey::AttemptedAt, None, None) => SortValue::None,
            (SortKey::Status, Some("success"), None) => SortValue::Status("success"),
            (SortKey::Status, Some("failed"), None) => SortValue::Status("failed"),
            (SortKey::ResponseCode, None, Some(c)) if (0..=999).contains(&c) => SortValue::Code(c),
            _ => return Err(invalid("its sort value is not valid")),
        };
        let attempted_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(wire.t) * 1000)
            .ok()
            .and_then(crate::deliveries::utc_in_range)
            .ok_or_else(|| invalid("its time is out of range"))?;
        Ok(Self {
            value,
            attempted_at,
            id: wire.i,
        })
    }
}

/// The cursor of a list ordered by (time, id) only (webhooks, the activity log): base64url of
/// `{microseconds}:{id}`.
pub fn encode_time_id(at: OffsetDateTime, id: Uuid) -> String {
    let micros = (at.unix_timestamp_nanos() / 1000) as i64;
    URL_SAFE_NO_PAD.encode(format!("{micros}:{id}"))
}

/// Reads an [`encode_time_id`] cursor; anything else, or a time outside years 1970-9999, is a
/// 400 naming `cursor`.
pub fn decode_time_id(raw: &str) -> Result<(OffsetDateTime, Uuid), AppError> {
    let bad = || AppError::bad("cursor: not a cursor from this API; use the previous page's next_cursor");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).map_err(|_| bad())?;
    if !(1970..=9999).contains(&t.year()) {
        return Err(bad());
    }
    Ok((t, Uuid::parse_str(id).map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_for_every_sort_key() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000).expect("time");
        for (sort, value) in [
            (SortKey::AttemptedAt, SortValue::None),
            (SortKey::Status, SortValue::Status("failed")),
            (SortKey::ResponseCode, SortValue::Code(0)),
            (SortKey::ResponseCode, SortValue::Code(503)),
        ] {
            for desc in [true, false] {
                let c = Cursor {
                    value: value.clone(),
                    attempted_at: t,
                    id: Uuid::now_v7(),
                };
                let raw = c.encode(sort, desc);
                assert_eq!(Cursor::decode(&raw, sort, desc).expect("decodes"), c);
                assert!(Cursor::decode(&raw, sort, !desc).is_err(), "order is checked");
            }
        }
    }

    #[test]
    fn garbage_and_edited_cursors_are_rejected() {
        for raw in ["", "!!!", "bm90IGpzb24", &"A".repeat(600)] {
            assert!(Cursor::decode(raw, SortKey::AttemptedAt, true).is_err(), "{raw}");
        }
        let edited = URL_SAFE_NO_PAD.encode(
            br#"{"s":"status","o":"desc","st":"maybe","t":0,"i":"00000000-0000-0000-0000-000000000000"}"#,
        );
        assert!(Cursor::decode(&edited, SortKey::Status, true).is_err());
    }

    #[test]
    fn a_cursor_near_year_minus_9999_is_rejected() {
        let t = time::Date::MIN.midnight().assume_utc().unix_timestamp_nanos() / 1000;
        let raw = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"s":"attempted_at","o":"desc","t":{t},"i":"00000000-0000-0000-0000-000000000000"}}"#
        ));
        let err = Cursor::decode(&raw, SortKey::AttemptedAt, true).expect_err("out of range");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        fn sort_key() -> impl Strategy<Value = SortKey> {
            prop_oneof![
                Just(SortKey::AttemptedAt),
                Just(SortKey::Status),
                Just(SortKey::ResponseCode)
            ]
        }

        /// A value that fits `sort` (as the log's queries produce them).
        fn value_for(sort: SortKey) -> BoxedStrategy<SortValue> {
            match sort {
                SortKey::AttemptedAt => Just(SortValue::None).boxed(),
                SortKey::Status => prop_oneof![
                    Just(SortValue::Status("success")),
                    Just(SortValue::Status("failed"))
                ]
                .boxed(),
                SortKey::ResponseCode => (0i32..=999).prop_map(SortValue::Code).boxed(),
            }
        }

        /// A cursor's wire content with odd values: any key, order, status, code and time.
        fn wire_json() -> impl Strategy<Value = String> {
            (
                prop_oneof!["attempted_at|status|response_code", any::<String>()],
                prop_oneof!["asc|desc", any::<String>()],
                proptest::option::of(prop_oneof!["success|failed|maybe", any::<String>()]),
                proptest::option::of(any::<i32>()),
                any::<i64>(),
                any::<u128>(),
            )
                .prop_map(|(s, o, st, rc, t, i)| {
                    serde_json::json!({
                        "s": s, "o": o, "st": st, "rc": rc, "t": t, "i": Uuid::from_u128(i),
                    })
                    .to_string()
                })
        }

        fn is_cursor_error(e: &AppError) -> bool {
            matches!(e, AppError::BadRequest(m) if m.starts_with("cursor: "))
        }

        proptest! {
            /// Every cursor of the log round-trips exactly (microsecond times, years 1-9999),
            /// and is refused for any other sort or order.
            #[test]
            fn every_cursor_round_trips(
                (sort, value) in sort_key().prop_flat_map(|s| (Just(s), value_for(s))),
                micros in -62_135_596_800_000_000i64..253_402_300_799_999_999,
                id in any::<u128>(),
                descending in any::<bool>(),
                other in sort_key(),
            ) {
                let c = Cursor {
                    value,
                    attempted_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).expect("in range"),
                    id: Uuid::from_u128(id),
                };
                let raw = c.encode(sort, descending);
                prop_assert_eq!(Cursor::decode(&raw, sort, descending).expect("decodes"), c);
                prop_assert!(Cursor::decode(&raw, sort, !descending).is_err());
                if other != sort {
                    prop_assert!(Cursor::decode(&raw, other, descending).is_err());
                }
            }

            /// Any text, and any JSON content in the cursor's encoding, is a cursor or a 400
            /// naming `cursor`, never a panic; what decodes re-encodes to the same position.
            #[test]
            fn any_cursor_text_decodes_or_is_a_400(
                text in any::<String>(),
                json in wire_json(),
                sort in sort_key(),
                descending in any::<bool>(),
            ) {
                for raw in [text, URL_SAFE_NO_PAD.encode(json)] {
                    match Cursor::decode(&raw, sort, descending) {
                        Err(e) => prop_assert!(is_cursor_error(&e), "{:?}", e),
                        Ok(c) => {
                            let again = Cursor::decode(&c.encode(sort, descending), sort, descending);
                            prop_assert_eq!(again.ok(), Some(c));
                        }
                    }
                }
            }
        }
    }
}
