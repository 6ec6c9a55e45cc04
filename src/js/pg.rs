//! The text node-postgres sends for a JavaScript value bound to a text column
//! (`prepareValue` in `pg/lib/utils.js`): what Better Auth on PostgreSQL ends up storing
//! when a client sends a number, a boolean, an object or an array for a text field.

use serde_json::Value;

use super::json::stringify;

/// The parameter text node-postgres makes of `value`; `None` for `null` (SQL `NULL`).
/// Numbers print as JavaScript prints them, objects as `JSON.stringify`, arrays as
/// PostgreSQL array literals (`["a", null]` → `{"a",NULL}`).
pub fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let mut out = String::new();
            array_literal(items, &mut out);
            Some(out)
        }
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(stringify(value)),
    }
}

/// `arrayString`: elements quoted with `"` and `\` escaped, `NULL` for null, nested
/// arrays as nested literals.
fn array_literal(items: &[Value], out: &mut String) {
    out.push('{');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => array_literal(inner, out),
            other => {
                out.push('"');
                for c in param_text(other).unwrap_or_default().chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_node_postgres_sends_them() {
        let text = |v: Value| param_text(&v);
        assert_eq!(text(json!(null)), None);
        assert_eq!(text(json!("x")).as_deref(), Some("x"));
        assert_eq!(text(json!(true)).as_deref(), Some("true"));
        assert_eq!(text(json!(1.0)).as_deref(), Some("1"));
        assert_eq!(text(json!(1e21)).as_deref(), Some("1e+21"));
        assert_eq!(
            text(json!({"b": 1, "1": [2]})).as_deref(),
            Some(r#"{"1":[2],"b":1}"#)
        );
        assert_eq!(text(json!([])).as_deref(), Some("{}"));
        assert_eq!(
            text(json!([["a\"b\\", null], 1.5, false, {"k": "v"}])).as_deref(),
            Some(r#"{{"a\"b\\",NULL},"1.5","false","{\"k\":\"v\"}"}"#)
        );
    }
}
