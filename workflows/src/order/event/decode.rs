//! Decoding a stored [`OrderEvent`] in one pass.
//!
//! The derived way — `at` beside a `#[serde(flatten)]`ed, internally tagged [`OrderChange`] —
//! makes serde copy the whole object into an intermediate tree twice (once to take `at` out,
//! once to find `type`) before a variant sees its fields: about a microsecond an event, a fifth
//! of a projection rebuild's CPU. Events are written `at` and `type` first, so the decoder reads
//! those two and then hands the rest of the object straight to the variant named by `type`
//! (through [`Body`], the same variants externally tagged, declared from the same list by
//! [`order_changes!`]); a `clocks` key among the fields is taken out on the way
//! ([`Fields`]). An object in another key order (hand-written, or from a
//! `serde_json::Value`, whose keys are sorted) takes the derived path: slower, same result.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::{Body, Clocks, OrderChange, OrderEvent};

/// Declares [`OrderChange`] (as written inside it) and, from the same variant list, `Body`:
/// the same variants with the same fields and attributes, externally tagged and only
/// deserialized, with the conversion from one to the other. One list, so the two cannot drift.
macro_rules! order_changes {
    (
        $(#[$enum_meta:meta])*
        pub enum OrderChange {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident $({
                    $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
                })?
            ),* $(,)?
        }
    ) => {
        $(#[$enum_meta])*
        pub enum OrderChange {
            $(
                $(#[$variant_meta])*
                $variant $({ $( $(#[$field_meta])* $field: $ty ),* })?
            ),*
        }

        /// [`OrderChange`] externally tagged, for [`decode`](self::decode) to hand a variant
        /// its fields directly.
        #[derive(Deserialize)]
        enum Body {
            $(
                $(#[$variant_meta])*
                $variant $({ $( $(#[$field_meta])* $field: $ty ),* })?
            ),*
        }

        impl From<Body> for OrderChange {
            fn from(body: Body) -> OrderChange {
                match body {
                    $( Body::$variant $({ $($field),* })? => OrderChange::$variant $({ $($field),* })? ),*
                }
            }
        }
    };
}

/// `at` as stored (RFC 3339).
#[derive(Deserialize)]
struct At(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

/// The reference decoding: what serde derives for `OrderEvent`'s shape. The slow path, and
/// what tests hold the fast one to.
#[derive(Deserialize)]
pub(crate) struct Derived {
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    #[serde(flatten)]
    change: OrderChange,
    #[serde(default)]
    clocks: Clocks,
}

impl From<Derived> for OrderEvent {
    fn from(derived: Derived) -> OrderEvent {
        OrderEvent {
            at: derived.at,
            change: derived.change,
            clocks: derived.clocks,
        }
    }
}

impl<'de> Deserialize<'de> for OrderEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OrderEvent, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// A key of the event object: one of the two read first, or any other (borrowed from the
/// input when it can be: no copy for most keys).
enum Key<'de> {
    At,
    Type,
    Other(Cow<'de, str>),
}

impl<'de> Key<'de> {
    fn new(name: Cow<'de, str>) -> Key<'de> {
        match &*name {
            "at" => Key::At,
            "type" => Key::Type,
            _ => Key::Other(name),
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::new(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::new(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = OrderEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an order event (an object with `at`, `type` and the change's fields)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderEvent, A::Error> {
        let mut at = None;
        let mut tag: Option<String> = None;
        while at.is_none() || tag.is_none() {
            match map.next_key::<Key>()? {
                Some(Key::At) if at.is_none() => at = Some(map.next_value::<At>()?.0),
                Some(Key::Type) if tag.is_none() => tag = Some(map.next_value()?),
                Some(key) => return buffered(map, at, tag, key),
                None if at.is_none() => return Err(de::Error::missing_field("at")),
                None => return Err(de::Error::missing_field("type")),
            }
        }
        let (Some(at), Some(tag)) = (at, tag) else {
            unreachable!("the loop ends with both read");
        };
        let mut clocks = None;
        let body = Body::deserialize(Rest {
            tag,
            map,
            clocks: &mut clocks,
        })?;
        Ok(OrderEvent {
            at,
            change: body.into(),
            clocks: clocks.unwrap_or_default(),
        })
    }
}

/// The derived path, for an object whose first keys were not `at` and `type`: the rest is
/// collected and decoded as serde derives it.
fn buffered<'de, A: MapAccess<'de>>(
    mut map: A,
    at: Option<OffsetDateTime>,
    tag: Option<String>,
    key: Key<'de>,
) -> Result<OrderEvent, A::Error> {
    let mut object = serde_json::Map::new();
    if let Some(tag) = tag {
        object.insert("type".into(), tag.into());
    }
    let mut next = Some(key);
    while let Some(key) = next {
        let name = match key {
            Key::At if at.is_some() => return Err(de::Error::duplicate_field("at")),
            Key::Type if object.contains_key("type") => {
                return Err(de::Error::duplicate_field("type"))
            }
            Key::At => "at".to_owned(),
            Key::Type => "type".to_owned(),
            Key::Other(name) => name.into_owned(),
        };
        if object.contains_key(&name) {
            return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
        }
        object.insert(name, map.next_value()?);
        next = map.next_key()?;
    }
    let change = match at {
        Some(at) => OrderEvent {
            at,
            clocks: match object.remove("clocks") {
                Some(clocks) => Clocks::deserialize(clocks).map_err(de::Error::custom)?,
                None => Clocks::default(),
            },
            change: OrderChange::deserialize(serde_json::Value::Object(object))
                .map_err(de::Error::custom)?,
        },
        None => Derived::deserialize(serde_json::Value::Object(object))
            .map_err(de::Error::custom)?
            .into(),
    };
    Ok(change)
}

/// The rest of the object after `at` and `type`, as the variant named by `type`; its
/// `clocks`, if any, into `clocks`.
struct Rest<'c, A> {
    tag: String,
    map: A,
    clocks: &'c mut Option<Clocks>,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for Rest<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> de::EnumAccess<'de> for Rest<'_, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), A::Error> {
        let variant = seed.deserialize(self.tag.as_str().into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de, A: MapAccess<'de>> de::VariantAccess<'de> for Rest<'_, A> {
    type Error = A::Error;

    /// A change without fields: anything else in the object is ignored, as serde does.
    fn unit_variant(self) -> Result<(), A::Error> {
        let mut fields = Fields {
            map: self.map,
            clocks: self.clocks,
        };
        while fields
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, A::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::NewtypeVariant,
            &"a change with named fields",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, A::Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::TupleVariant,
            &"a change with named fields",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(Fields {
            map: self.map,
            clocks: self.clocks,
        })
    }
}

/// A change's fields as its variant reads them, without the event's `clocks`, which are
/// read into `clocks` as they pass.
struct Fields<'c, A> {
    map: A,
    clocks: &'c mut Option<Clocks>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            match self.map.next_key::<Key<'de>>()? {
                None => return Ok(None),
                // Read before the fields: a second one is a duplicate, as serde derives it.
                Some(Key::At) => return Err(de::Error::duplicate_field("at")),
                Some(Key::Type) => return Err(de::Error::duplicate_field("type")),
                Some(Key::Other(name)) if name == "clocks" => {
                    if self.clocks.is_some() {
                        return Err(de::Error::duplicate_field("clocks"));
                    }
                    *self.clocks = Some(self.map.next_value()?);
                }
                Some(Key::Other(name)) => {
                    return seed
                        .deserialize(de::value::CowStrDeserializer::new(name))
                        .map(Some)
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}
