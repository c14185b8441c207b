//! OLPC canonical JSON (what TUF signatures cover) and strict parsing.
//!
//! Strict parsing refuses JSON objects that name a key twice: serde_json would keep the last
//! value silently, another parser the first, and a signature checked by one could then
//! describe different content to the other.

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::Error;

/// Serialises `value` as OLPC canonical JSON: sorted keys, no insignificant whitespace,
/// integers only.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| Error::Canonical(e.to_string()))?;
    Ok(out)
}

/// Parses JSON bytes into a [`Value`], refusing duplicate object keys and trailing data.
/// `what` names the document in errors ("targets metadata", "root.json", …).
pub fn parse_strict(bytes: &[u8], what: &str) -> Result<Value, Error> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match parsed {
        Ok(value) => Ok(value),
        Err(source) => match duplicate.into_inner() {
            Some(key) => Err(Error::DuplicateKey {
                what: what.to_owned(),
                key,
            }),
            None => Err(Error::malformed(what, source)),
        },
    }
}

/// Builds a [`Value`] while checking every object for repeated keys; the first repeated key
/// is left in `duplicate` so that the caller can name it.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let value: Value = serde_json::from_str(r#"{ "b": [1, 2], "a": {"d": "x", "c": true} }"#)
            .expect("test JSON");
        assert_eq!(
            to_canonical(&value).expect("canonical"),
            br#"{"a":{"c":true,"d":"x"},"b":[1,2]}"#
        );
    }

    #[test]
    fn canonical_form_refuses_floats() {
        let value: Value = serde_json::from_str(r#"{"a": 1.5}"#).expect("test JSON");
        assert!(matches!(to_canonical(&value), Err(Error::Canonical(_))));
    }

    #[test]
    fn duplicate_keys_are_named() {
        let err = parse_strict(br#"{"a": 1, "b": {"c": 1, "c": 2}}"#, "root metadata")
            .expect_err("duplicate key must be refused");
        match err {
            Error::DuplicateKey { key, what } => {
                assert_eq!(key, "c");
                assert_eq!(what, "root metadata");
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn truncated_and_trailing_input_is_malformed() {
        assert!(matches!(
            parse_strict(br#"{"a": [1, 2"#, "x"),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            parse_strict(br#"{"a": 1} {}"#, "x"),
            Err(Error::Malformed { .. })
        ));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::String),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Re-orders every object's keys (reversed) so that key order can be shown irrelevant.
    fn reversed(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let parts: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), reversed(v)))
                    .collect();
                format!("{{ {} }}", parts.join(" , "))
            }
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(reversed).collect();
                format!("[ {} ]", parts.join(", "))
            }
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn canonical_json_is_idempotent(value in json_value()) {
            let once = to_canonical(&value).expect("canonical");
            // olpc-cjson NFC-normalises strings, so the value may change once; the bytes
            // must not change again.
            let reparsed = parse_strict(&once, "test").expect("canonical output parses");
            let twice = to_canonical(&reparsed).expect("canonical");
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn canonical_json_ignores_key_order_and_whitespace(value in json_value()) {
            let shuffled = reversed(&value);
            let reparsed = parse_strict(shuffled.as_bytes(), "test").expect("reordered parses");
            prop_assert_eq!(
                to_canonical(&reparsed).expect("canonical"),
                to_canonical(&value).expect("canonical")
            );
        }
    }
}
