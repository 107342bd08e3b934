//! Decoding a struct that keeps the keys it does not model in an `extra` map, without serde's
//! `#[serde(flatten)]`.
//!
//! A derived `Deserialize` with a flattened map first buffers every key and value of the object
//! into serde's private `Content` tree (one allocation per string, array and object), then
//! walks that tree again to fill the fields, and nested flattened structs buffer their part
//! once more. [`deserialize_with_extra!`] reads each value once, straight into its field, and
//! only the unknown ones into `extra` (a 20-chunk stream: 2.4% fewer instructions through the
//! gateway; a 13-message request: 10% faster to parse; bench/README.md). Serializing keeps the
//! derive: there flatten only switches the struct to a map, with no buffering.
//!
//! The generated impl behaves as the derive did: a missing required field is serde's
//! `missing field` error, a repeated known key is `duplicate field`, an absent `default` field
//! takes its default, a `nullable` field tells an absent key (`None`) from `null`
//! (`Some(None)`), and the input must be an object.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// An object key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(Cow<'de, str>);

impl<'de> Key<'de> {
    /// The key's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as an owned string, for the `extra` map.
    pub(crate) fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Implements `Deserialize` for a struct with an `extra: JsonObject` field that collects the
/// keys not listed. Each listed field is `"key" | "alias" => field: kind`, where kind is
/// `required` (an error when absent), `default` (`Default::default()` when absent),
/// `(default path)` (`path()` when absent) or `nullable` (a [`super::Nullable`]: absent is
/// `None`, `null` is `Some(None)`).
macro_rules! deserialize_with_extra {
    ($ty:ident, $expecting:literal, {
        $($key:literal $(| $alias:literal)* => $field:ident : $kind:tt),* $(,)?
    }) => {
        impl $ty {
            /// Reads the object's fields from `map`; an internally tagged enum that has already
            /// read its tag hands over the rest of the object here.
            pub(crate) fn decode_fields<'de, A: serde::de::MapAccess<'de>>(
                mut map: A,
            ) -> Result<Self, A::Error> {
                $(let mut $field = None;)*
                let mut extra = $crate::types::JsonObject::new();
                while let Some(key) = map.next_key::<$crate::types::with_extra::Key<'de>>()? {
                    match key.as_str() {
                        $($key $(| $alias)* => {
                            if $field.is_some() {
                                return Err(serde::de::Error::duplicate_field($key));
                            }
                            $field = Some(deserialize_with_extra!(@read map, $kind));
                        })*
                        _ => {
                            let value = map.next_value()?;
                            extra.insert(key.into_owned(), value);
                        }
                    }
                }
                Ok($ty {
                    $($field: deserialize_with_extra!(@finish $field, $key, $kind),)*
                    extra,
                })
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct FieldsVisitor;
                impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$ty, A::Error> {
                        $ty::decode_fields(map)
                    }
                }
                deserializer.deserialize_map(FieldsVisitor)
            }
        }
    };
    (@read $map:ident, nullable) => { Some($map.next_value()?) };
    (@read $map:ident, $kind:tt) => { $map.next_value()? };
    (@finish $field:ident, $key:literal, required) => {
        match $field {
            Some(v) => v,
            None => return Err(serde::de::Error::missing_field($key)),
        }
    };
    (@finish $field:ident, $key:literal, (default $default:path)) => {
        $field.unwrap_or_else($default)
    };
    (@finish $field:ident, $key:literal, $kind:tt) => { $field.unwrap_or_default() };
}

pub(crate) use deserialize_with_extra;

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::super::{JsonObject, Nullable};

    #[derive(Debug, PartialEq, Serialize)]
    struct Sample {
        id: String,
        kind: String,
        count: u32,
        note: Option<String>,
        tag: Nullable<String>,
        models: Option<Vec<String>>,
        #[serde(flatten)]
        extra: JsonObject,
    }

    fn sample_kind() -> String {
        "sample".to_owned()
    }

    deserialize_with_extra!(Sample, "a sample", {
        "id" => id: required,
        "type" => kind: (default sample_kind),
        "count" => count: default,
        "note" => note: default,
        "tag" => tag: nullable,
        "models" | "fallbacks" => models: default,
    });

    fn decode(json: &str) -> serde_json::Result<Sample> {
        serde_json::from_str(json)
    }

    #[test]
    fn listed_keys_fill_fields_and_the_rest_stay_in_extra_in_order() {
        let s =
            decode(r#"{"z":1,"id":"a","count":3,"nested":{"k":[1,"x"]},"a\u0062c":null}"#).unwrap();
        assert_eq!(s.id, "a");
        assert_eq!(s.kind, "sample");
        assert_eq!(s.count, 3);
        assert_eq!(s.note, None);
        assert_eq!(s.tag, None);
        let keys: Vec<&str> = s.extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["z", "nested", "abc"]);
        assert_eq!(s.extra["nested"], serde_json::json!({"k": [1, "x"]}));
        // What was decoded writes back the same object.
        let again: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(again["z"], 1);
        assert_eq!(again["abc"], serde_json::Value::Null);
    }

    #[test]
    fn nullable_tells_absent_from_null() {
        assert_eq!(decode(r#"{"id":"a"}"#).unwrap().tag, None);
        assert_eq!(decode(r#"{"id":"a","tag":null}"#).unwrap().tag, Some(None));
        assert_eq!(
            decode(r#"{"id":"a","tag":"t"}"#).unwrap().tag,
            Some(Some("t".to_owned()))
        );
    }

    #[test]
    fn an_alias_fills_the_same_field() {
        let s = decode(r#"{"id":"a","fallbacks":["m"]}"#).unwrap();
        assert_eq!(s.models, Some(vec!["m".to_owned()]));
        let e = decode(r#"{"id":"a","models":["m"],"fallbacks":["n"]}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `models`"), "{e}");
    }

    #[test]
    fn errors_are_the_ones_the_derive_gave() {
        let e = decode(r#"{"count":1}"#).unwrap_err();
        assert!(e.to_string().starts_with("missing field `id`"), "{e}");
        let e = decode(r#"{"id":"a","id":"b"}"#).unwrap_err();
        assert!(e.to_string().starts_with("duplicate field `id`"), "{e}");
        let e = decode(r#"{"id":"a","count":null}"#).unwrap_err();
        assert!(
            e.to_string().contains("invalid type: null, expected u32"),
            "{e}"
        );
        let e = decode(r#"["a"]"#).unwrap_err();
        assert!(e.to_string().contains("expected a sample"), "{e}");
    }

    #[test]
    fn the_path_of_a_bad_value_is_reported() {
        let body = br#"{"id":"a","nested":{},"count":"three"}"#;
        let (path, e) = crate::types::json::from_slice_tracked::<Sample>(body).unwrap_err();
        assert_eq!(path, "count");
        assert!(e.to_string().contains("expected u32"), "{e}");
    }

    #[test]
    fn decodes_from_a_value_too() {
        let value = serde_json::json!({"id": "a", "tag": null, "other": true});
        let s: Sample = serde_json::from_value(value).unwrap();
        assert_eq!(s.tag, Some(None));
        assert_eq!(s.extra["other"], true);
    }
}
