//! ClickHouse types as JSON: the schema of a tool parameter, the shape of a result
//! value, and the SQL literal for an argument.

use serde_json::{json, Value};

use super::sql::quote_string;

/// A ClickHouse type name reduced to what JSON cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonKind {
    /// Fits a JavaScript number exactly: (U)Int8..32.
    SmallInt {
        min: i64,
        max: i64,
    },
    /// 64-bit and wider integers: carried as strings (JavaScript-safe). `over_64`: 128 or
    /// 256 bits, more than serde_json reads exactly from a bare JSON number.
    WideInt {
        signed: bool,
        over_64: bool,
    },
    Float,
    /// Exact decimals: carried as strings.
    Decimal,
    Bool,
    Date,
    DateTime,
    Uuid,
    Nullable(Box<JsonKind>),
    Array(Box<JsonKind>),
    String,
}

impl JsonKind {
    pub fn of(ch_type: &str) -> JsonKind {
        let t = ch_type.trim();
        if let Some(inner) = unwrap_call(t, "Nullable") {
            return JsonKind::Nullable(Box::new(JsonKind::of(inner)));
        }
        if let Some(inner) = unwrap_call(t, "LowCardinality") {
            return JsonKind::of(inner);
        }
        if let Some(inner) = unwrap_call(t, "Array") {
            return JsonKind::Array(Box::new(JsonKind::of(inner)));
        }
        let base = t.split('(').next().unwrap_or(t);
        match base {
            "Int8" => JsonKind::SmallInt {
                min: i8::MIN.into(),
                max: i8::MAX.into(),
            },
            "Int16" => JsonKind::SmallInt {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            "Int32" => JsonKind::SmallInt {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            "UInt8" => JsonKind::SmallInt {
                min: 0,
                max: u8::MAX.into(),
            },
            "UInt16" => JsonKind::SmallInt {
                min: 0,
                max: u16::MAX.into(),
            },
            "UInt32" => JsonKind::SmallInt {
                min: 0,
                max: u32::MAX.into(),
            },
            "Int64" => JsonKind::WideInt {
                signed: true,
                over_64: false,
            },
            "UInt64" => JsonKind::WideInt {
                signed: false,
                over_64: false,
            },
            "Int128" | "Int256" => JsonKind::WideInt {
                signed: true,
                over_64: true,
            },
            "UInt128" | "UInt256" => JsonKind::WideInt {
                signed: false,
                over_64: true,
            },
            "Float32" | "Float64" => JsonKind::Float,
            "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" | "Decimal256" => {
                JsonKind::Decimal
            }
            "Bool" | "Boolean" => JsonKind::Bool,
            "Date" | "Date32" => JsonKind::Date,
            "DateTime" | "DateTime64" => JsonKind::DateTime,
            "UUID" => JsonKind::Uuid,
            _ => JsonKind::String,
        }
    }

    /// JSON Schema for a value of this type.
    pub fn schema(&self) -> Value {
        match self {
            JsonKind::SmallInt { min, max } => {
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
            JsonKind::WideInt { signed: true, .. } => {
                json!({"type": "string", "pattern": "^-?[0-9]+$"})
            }
            JsonKind::WideInt { signed: false, .. } => {
                json!({"type": "string", "pattern": "^[0-9]+$"})
            }
            JsonKind::Float => json!({"type": "number"}),
            JsonKind::Decimal => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}),
            JsonKind::Bool => json!({"type": "boolean"}),
            JsonKind::Date => json!({"type": "string", "format": "date"}),
            JsonKind::DateTime => json!({"type": "string", "format": "date-time"}),
            JsonKind::Uuid => json!({"type": "string", "format": "uuid"}),
            JsonKind::Nullable(inner) => {
                let mut s = inner.schema();
                if let (Some(Value::String(t)), Value::Object(m)) = (s.get("type").cloned(), &mut s)
                {
                    m.insert("type".into(), json!([t, "null"]));
                    s
                } else {
                    json!({"anyOf": [s, {"type": "null"}]})
                }
            }
            JsonKind::Array(inner) => json!({"type": "array", "items": inner.schema()}),
            JsonKind::String => json!({"type": "string"}),
        }
    }

    /// Values of this type lose digits when a bare JSON number is read (serde_json reads a
    /// number beyond i64/u64, or with a fraction, as an f64: ~16 digits, no trailing zeros):
    /// decimals and 128/256-bit integers, also inside `Nullable` and `Array`. Their text is
    /// kept as it came. 64-bit integers are read exactly, so their rows take the direct parse.
    pub fn keeps_text(&self) -> bool {
        match self {
            JsonKind::WideInt { over_64, .. } => *over_64,
            JsonKind::Decimal => true,
            JsonKind::Nullable(inner) | JsonKind::Array(inner) => inner.keeps_text(),
            _ => false,
        }
    }

    /// A result value as the client receives it: wide integers and decimals as strings.
    pub fn normalize(&self, v: Value) -> Value {
        match (self, v) {
            (JsonKind::WideInt { .. } | JsonKind::Decimal, Value::Number(n)) => {
                Value::String(n.to_string())
            }
            (JsonKind::Nullable(inner), v) if !v.is_null() => inner.normalize(v),
            (JsonKind::Array(inner), Value::Array(items)) => {
                Value::Array(items.into_iter().map(|i| inner.normalize(i)).collect())
            }
            (JsonKind::Bool, Value::Number(n)) => Value::Bool(n.as_u64() == Some(1)),
            (_, v) => v,
        }
    }

    /// The SQL literal for an argument, refusing values that do not fit the type.
    pub fn literal(&self, v: &Value) -> Result<String, String> {
        match (self, v) {
            (JsonKind::Nullable(_), Value::Null) => Ok("NULL".into()),
            (JsonKind::Nullable(inner), v) => inner.literal(v),
            (JsonKind::SmallInt { min, max }, Value::Number(n)) => match n.as_i64() {
                Some(i) if i >= *min && i <= *max => Ok(i.to_string()),
                _ => Err(format!("{n} is not an integer between {min} and {max}")),
            },
            (JsonKind::WideInt { signed, .. }, v) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    other => return Err(format!("{other} is not an integer")),
                };
                let digits = text.strip_prefix('-').filter(|_| *signed).unwrap_or(&text);
                if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                    Ok(text)
                } else {
                    Err(format!("`{text}` is not an integer"))
                }
            }
            (JsonKind::Float, Value::Number(n)) => Ok(n.to_string()),
            (JsonKind::Decimal, v) => {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err(format!("{other} is not a decimal number")),
                };
                let body = text.strip_prefix('-').unwrap_or(&text);
                let mut parts = body.splitn(2, '.');
                let ok = parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                if ok {
                    Ok(text)
                } else {
                    Err(format!("`{text}` is not a decimal number"))
                }
            }
            (JsonKind::Bool, Value::Bool(b)) => Ok(if *b { "true" } else { "false" }.into()),
            (JsonKind::Array(inner), Value::Array(items)) => {
                let parts: Result<Vec<_>, _> = items.iter().map(|i| inner.literal(i)).collect();
                Ok(format!("[{}]", parts?.join(", ")))
            }
            (
                JsonKind::Date | JsonKind::DateTime | JsonKind::Uuid | JsonKind::String,
                Value::String(s),
            ) => Ok(quote_string(s)),
            (kind, v) => Err(format!("{v} does not fit {}", kind.describe())),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            JsonKind::SmallInt { .. } | JsonKind::WideInt { .. } => "an integer",
            JsonKind::Float | JsonKind::Decimal => "a number",
            JsonKind::Bool => "a boolean",
            JsonKind::Array(_) => "an array",
            JsonKind::Nullable(_) => "a nullable value",
            _ => "a string",
        }
    }

    /// Whether a value of this type can be passed as a tool argument at all.
    pub fn is_supported_argument(ch_type: &str) -> bool {
        let t = ch_type.trim();
        ![
            "Map(",
            "Tuple(",
            "Nested(",
            "AggregateFunction(",
            "SimpleAggregateFunction(",
            "Object(",
            "JSON",
            "Variant(",
            "Dynamic",
        ]
        .iter()
        .any(|p| t.contains(p))
    }
}

fn unwrap_call<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    t.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_follows_the_spec_mapping() {
        assert_eq!(
            JsonKind::of("UInt8").schema(),
            json!({"type": "integer", "minimum": 0, "maximum": 255})
        );
        assert_eq!(JsonKind::of("Int64").schema()["type"], "string");
        assert_eq!(JsonKind::of("UInt256").schema()["pattern"], "^[0-9]+$");
        assert_eq!(JsonKind::of("Float64").schema(), json!({"type": "number"}));
        assert_eq!(JsonKind::of("Decimal(18, 4)").schema()["type"], "string");
        assert_eq!(JsonKind::of("Bool").schema(), json!({"type": "boolean"}));
        assert_eq!(JsonKind::of("Date").schema()["format"], "date");
        assert_eq!(
            JsonKind::of("DateTime64(3, 'UTC')").schema()["format"],
            "date-time"
        );
        assert_eq!(
            JsonKind::of("DateTime('Europe/Berlin')").schema()["format"],
            "date-time"
        );
        assert_eq!(JsonKind::of("UUID").schema()["format"], "uuid");
        assert_eq!(
            JsonKind::of("Nullable(String)").schema(),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            JsonKind::of("Array(Nullable(Int32))").schema()["items"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(
            JsonKind::of("LowCardinality(String)").schema(),
            json!({"type": "string"})
        );
        assert_eq!(
            JsonKind::of("Map(String, UInt8)").schema(),
            json!({"type": "string"})
        );
        assert_eq!(JsonKind::of("IPv4").schema(), json!({"type": "string"}));
    }

    #[test]
    fn wide_numbers_become_strings_in_results() {
        assert_eq!(
            JsonKind::of("UInt64").normalize(json!(18446744073709551615u64)),
            json!("18446744073709551615")
        );
        assert_eq!(JsonKind::of("UInt64").normalize(json!("5")), json!("5"));
        assert_eq!(
            JsonKind::of("Decimal(9,2)").normalize(json!(1.5)),
            json!("1.5")
        );
        assert_eq!(
            JsonKind::of("Nullable(Int64)").normalize(json!(null)),
            json!(null)
        );
        assert_eq!(
            JsonKind::of("Array(Int64)").normalize(json!([1, 2])),
            json!(["1", "2"])
        );
        assert_eq!(JsonKind::of("UInt32").normalize(json!(7)), json!(7));
    }

    #[test]
    fn literals_are_typed_and_escaped() {
        assert_eq!(
            JsonKind::of("String").literal(&json!("a'b")).unwrap(),
            r"'a\'b'"
        );
        assert_eq!(JsonKind::of("UInt8").literal(&json!(7)).unwrap(), "7");
        assert!(JsonKind::of("UInt8").literal(&json!(300)).is_err());
        assert!(JsonKind::of("UInt8").literal(&json!("7")).is_err());
        assert_eq!(JsonKind::of("Int64").literal(&json!("-12")).unwrap(), "-12");
        assert!(JsonKind::of("UInt64").literal(&json!("-12")).is_err());
        assert!(JsonKind::of("Int64").literal(&json!("1; DROP")).is_err());
        assert_eq!(
            JsonKind::of("Nullable(Date)")
                .literal(&json!(null))
                .unwrap(),
            "NULL"
        );
        assert_eq!(
            JsonKind::of("Array(String)")
                .literal(&json!(["x", "y"]))
                .unwrap(),
            "['x', 'y']"
        );
        assert!(JsonKind::of("Decimal(9,2)")
            .literal(&json!("1.2.3"))
            .is_err());
        assert_eq!(JsonKind::of("Bool").literal(&json!(true)).unwrap(), "true");
    }
}
