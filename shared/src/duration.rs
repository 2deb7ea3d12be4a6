//! Durations as people write them in config: `500ms`, `10s`, `30m`, `2h`, `30d`.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration parsed from and printed as `500ms`, `10s`, `30m`, `2h` or `30d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

/// Parses one duration such as `500ms` or `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m, h or d, e.g. `10s`)"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a duration (e.g. `500ms`, `10s`, `30m`, `30d`)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: the number is too large"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses a comma-separated list such as `1s,2s,4s`.
pub fn parse_duration_list(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_duration)
        .collect()
}

/// Prints a duration in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `500ms`, `10s`, `30m` or `30d`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A duration that can also be `off` (never), e.g. `HOOKRELAY_DISABLE_AFTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OrOff(pub Option<Duration>);

impl FromStr for OrOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        parse_duration(s).map(|d| Self(Some(d)))
    }
}

impl Serialize for OrOff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.serialize_str(&format_duration(d)),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for OrOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = OrOff;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `5d`, or `off`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OrOff, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A list of durations written `1s,2s,4s` (or, in TOML, as an array of strings).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DurationList(pub Vec<Duration>);

impl<'de> Deserialize<'de> for DurationList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = DurationList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of durations such as `1s,2s,4s`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationList, E> {
                parse_duration_list(v).map(DurationList).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<DurationList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<HumanDuration>()? {
                    out.push(item.0);
                }
                Ok(DurationList(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
    }

    #[test]
    fn rejects_nonsense_with_a_message() {
        for bad in ["", "10", "s", "10x", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_in_the_largest_unit() {
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(86400 * 30)), "30d");
    }

    #[test]
    fn parses_a_schedule() {
        assert_eq!(
            parse_duration_list("1s,2s,4s"),
            Ok(vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ])
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        fn unit() -> impl Strategy<Value = (&'static str, u64)> {
            prop_oneof![
                Just(("ms", 1)),
                Just(("s", 1_000)),
                Just(("m", 60_000)),
                Just(("h", 3_600_000)),
                Just(("d", 86_400_000)),
            ]
        }

        proptest! {
            /// Any text is a duration or an error with a message, never a panic.
            #[test]
            fn any_text_parses_or_is_refused_with_a_message(s in any::<String>(), t in "[0-9a-z, ]{0,24}") {
                for input in [&s, &t] {
                    if let Err(e) = parse_duration(input) {
                        prop_assert!(!e.is_empty());
                    }
                    let _ = parse_duration_list(input);
                    let _ = input.parse::<HumanDuration>();
                }
            }

            /// `<n><unit>` is n units, or "too large" when that overflows, for every u64.
            #[test]
            fn a_number_and_a_unit_are_exact_or_too_large(n in any::<u64>(), (name, ms) in unit()) {
                let got = parse_duration(&format!("{n}{name}"));
                match n.checked_mul(ms) {
                    Some(total) => prop_assert_eq!(got, Ok(Duration::from_millis(total))),
                    None => prop_assert!(got.is_err()),
                }
            }

            /// Formatting then parsing gives the same duration, for every whole number of
            /// milliseconds; also through serde.
            #[test]
            fn format_then_parse_round_trips(ms in any::<u64>()) {
                let d = Duration::from_millis(ms);
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
                let json = serde_json::to_string(&HumanDuration(d)).expect("serializes");
                let back: HumanDuration = serde_json::from_str(&json).expect("deserializes");
                prop_assert_eq!(back.0, d);
            }

            /// A list is the durations of its items, in order.
            #[test]
            fn a_list_round_trips(items in prop::collection::vec(0u64..10_000_000_000, 0..8)) {
                let ds: Vec<Duration> = items.iter().map(|ms| Duration::from_millis(*ms)).collect();
                let text = ds.iter().map(|d| format_duration(*d)).collect::<Vec<_>>().join(",");
                prop_assert_eq!(parse_duration_list(&text), Ok(ds));
            }
        }
    }
}
