//! The values, rows, parameters and errors every os4x query uses, the
//! same whichever backend runs it (SQLite file or PostgreSQL server).
//!
//! The shape follows rusqlite's (`execute`, `query_row`, `params!`,
//! `.optional()`), so queries read as before; what differs is that rows
//! are read into [`Value`]s first, which is what lets one query run on
//! both backends. Integers are always 64-bit (the schema's `INTEGER` is
//! `BIGINT` on PostgreSQL).

use std::sync::Arc;

/// One SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

/// A statement failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `query_row` found nothing (see [`OptionalExtension`]).
    #[error("query returned no rows")]
    NoRows,
    /// A UNIQUE, CHECK, NOT NULL or foreign-key constraint refused a row.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// Another writer holds the lock (SQLite busy timeout expired) or the
    /// server aborted the transaction to resolve a conflict; retrying
    /// later may succeed.
    #[error("database busy: {0}")]
    Busy(String),
    /// A column could not be read as the type asked for.
    #[error("column {column}: {message}")]
    Conversion { column: String, message: String },
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The server cannot be reached; the next statement reconnects.
    #[error("PostgreSQL server unreachable: {0}; check that it runs and that `database` in os4x.toml names it")]
    Disconnected(String),
}

impl Error {
    /// True for [`Error::Constraint`] (a UNIQUE key that exists, ...).
    pub fn is_constraint(&self) -> bool {
        matches!(self, Error::Constraint(_))
    }

    /// True for [`Error::Busy`].
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::ConstraintViolation => Error::Constraint(e.to_string()),
                C::DatabaseBusy | C::DatabaseLocked => Error::Busy(e.to_string()),
                _ => Error::Sqlite(e),
            },
            _ => Error::Sqlite(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Ok(None)` instead of [`Error::NoRows`].
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A Rust value usable as a statement parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! integer_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Only u64/usize beyond i64::MAX do not fit; no os4x
                // quantity gets there, so saturate rather than fail.
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_to_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for std::borrow::Cow<'_, str> {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

/// A statement's parameters, bound by position (`?1`, `?2`, ...).
pub trait Params {
    fn values(&self) -> Vec<Value>;
}

impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for () {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl Params for Vec<Value> {
    fn values(&self) -> Vec<Value> {
        self.clone()
    }
}

impl Params for &[Value] {
    fn values(&self) -> Vec<Value> {
        self.to_vec()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue> Params for &[T; $n] {
            fn values(&self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);

/// `params![a, b, c]`: parameters of different types.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::sql::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::sql::ToValue),+] as &[&dyn $crate::sql::ToValue]
    };
}
pub use crate::params;

/// A Rust type a column can be read as.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

macro_rules! integer_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<Self, String> {
                match v {
                    Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| format!("{i} does not fit {}", stringify!($t))),
                    other => Err(format!("{} where an integer was expected", other.type_name())),
                }
            }
        }
    )*};
}
integer_from_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            other => Err(format!(
                "{} where a boolean was expected",
                other.type_name()
            )),
        }
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(r) => Ok(*r),
            #[allow(clippy::cast_precision_loss)]
            Value::Integer(i) => Ok(*i as f64),
            other => Err(format!("{} where a number was expected", other.type_name())),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("{} where text was expected", other.type_name())),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            // SQLite stores what it is given; a hash written as text
            // by an old build reads as its bytes.
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("{} where a blob was expected", other.type_name())),
        }
    }
}

/// How a row's column is named in [`Row::get`]: by position or by name.
pub trait RowIndex {
    fn index(&self, names: &[String]) -> Option<usize>;
    fn describe(&self) -> String;
}

impl RowIndex for usize {
    fn index(&self, names: &[String]) -> Option<usize> {
        (*self < names.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        self.to_string()
    }
}

impl RowIndex for &str {
    fn index(&self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n.eq_ignore_ascii_case(self))
    }
    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(names: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { names, values }
    }

    /// Column `idx` as `T`.
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let v = self.get_ref(&idx)?;
        T::from_value(v).map_err(|message| Error::Conversion {
            column: self.column_label(&idx),
            message,
        })
    }

    /// Column `idx` as it came from the database.
    pub fn get_ref<I: RowIndex>(&self, idx: &I) -> Result<&Value> {
        idx.index(&self.names)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| Error::Conversion {
                column: idx.describe(),
                message: "no such column in the result".into(),
            })
    }

    fn column_label<I: RowIndex>(&self, idx: &I) -> String {
        match idx.index(&self.names) {
            Some(i) => self.names[i].clone(),
            None => idx.describe(),
        }
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Value>) -> Row {
        let names: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        Row::new(names.into(), values)
    }

    #[test]
    fn columns_convert_with_range_checks_and_named_errors() {
        let r = row(vec![
            Value::Integer(7),
            Value::Null,
            Value::Integer(-1),
            Value::Text("x".into()),
        ]);
        assert_eq!(r.get::<_, i64>(0).unwrap(), 7);
        assert_eq!(r.get::<_, u32>(0).unwrap(), 7);
        assert!(r.get::<_, bool>(0).unwrap());
        assert_eq!(r.get::<_, Option<i64>>(1).unwrap(), None);
        assert_eq!(r.get::<_, i64>("C0").unwrap(), 7);
        let e = r.get::<_, u64>(2).unwrap_err().to_string();
        assert!(e.contains("c2") && e.contains("does not fit u64"), "{e}");
        let e = r.get::<_, i64>(3).unwrap_err().to_string();
        assert!(e.contains("text where an integer"), "{e}");
        assert!(r.get::<_, i64>(9).is_err());
        assert!(r.get::<_, i64>(1).is_err(), "NULL is not an integer");
    }

    #[test]
    fn params_bind_in_order() {
        let p = params![1_i64, "a", None::<String>, vec![1_u8, 2], true, 2.5_f64];
        assert_eq!(
            p.values(),
            vec![
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Null,
                Value::Blob(vec![1, 2]),
                Value::Integer(1),
                Value::Real(2.5)
            ]
        );
        assert_eq!(["a", "b"].values().len(), 2);
        assert!([].values().is_empty());
        assert_eq!(u64::MAX.to_value(), Value::Integer(i64::MAX));
    }

    #[test]
    fn optional_turns_only_no_rows_into_none() {
        assert_eq!(Err::<i64, _>(Error::NoRows).optional().unwrap(), None);
        assert_eq!(Ok::<_, Error>(3).optional().unwrap(), Some(3));
        assert!(Err::<i64, _>(Error::Busy("x".into())).optional().is_err());
    }
}
