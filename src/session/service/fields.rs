//! Additional fields and the admin plugin's rules: what a body may set (Better Auth's
//! `parseInputData`), what a response shows, and who is banned.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::SessionService;
use crate::config::{field_type_matches, AdditionalField, FieldType};
use crate::js::date::parse_iso;
use crate::model::User;
use crate::session::{limits, SessionError};
use crate::store::UserChange;

/// Whether a body creates a row or updates one (Better Auth's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Sign-up: defaults apply, required fields must be there.
    Create,
    /// update-user / update-session: only what is sent changes.
    Update,
}

/// Where a user stands with the admin plugin's ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ban {
    /// Not banned.
    None,
    /// Banned, and the ban holds at `now`.
    Active,
    /// Banned until a time that has passed: the ban is lifted at the next sign-in.
    Expired,
}

/// The ban of `user` at `now`: `banned = true` and (`banExpires` unset or
/// `banExpires ≥ now`) ⇒ active; `banned = true` and `banExpires < now` ⇒ expired.
pub fn ban_of(user: &User, now: DateTime<Utc>) -> Ban {
    if user.extra.get("banned") != Some(&Value::Bool(true)) {
        return Ban::None;
    }
    match user.extra.get("banExpires").and_then(parse_iso) {
        Some(until) if until < now => Ban::Expired,
        _ => Ban::Active,
    }
}

/// JavaScript truthiness of a JSON value.
pub(super) fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// zod's name for a JSON value's type.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The fields of `fields` a body sets, by Better Auth's `parseInputData`: a field with
/// `input = false` takes its default on create when it has one, and is refused when sent
/// with a truthy value otherwise; a field sent is checked against its type (`null` clears
/// an optional one); on create, a field not sent takes its default, and a required one
/// without a default is missing. Keys that are not fields are ignored.
pub(super) fn parse_input(
    fields: &[(String, AdditionalField)],
    body: &Map<String, Value>,
    action: Action,
) -> Result<Map<String, Value>, SessionError> {
    let mut set = Map::new();
    for (name, field) in fields {
        match body.get(name) {
            Some(v) if !field.input => {
                if let (Some(d), Action::Create) = (&field.default_value, action) {
                    set.insert(name.clone(), d.clone());
                } else if is_truthy(v) {
                    return Err(SessionError::FieldNotAllowed(name.clone()));
                }
            }
            Some(v) => {
                check_value(name, field, v)?;
                set.insert(name.clone(), v.clone());
            }
            None if action == Action::Create => match &field.default_value {
                Some(d) => {
                    set.insert(name.clone(), d.clone());
                }
                None if field.required => return Err(SessionError::MissingField(name.clone())),
                None => {}
            },
            None => {}
        }
    }
    Ok(set)
}

/// A value sent for a field: text within the stored-text limits, and of the field's type
/// (`null` allowed when the field is optional), with zod's summary when not.
fn check_value(name: &str, field: &AdditionalField, v: &Value) -> Result<(), SessionError> {
    if let Some(problem) = v
        .as_str()
        .and_then(|t| limits::text_problem(t, limits::MAX_FIELD_CHARS))
    {
        return Err(SessionError::InvalidField(format!(
            "[body.{name}] {problem}"
        )));
    }
    if (v.is_null() && !field.required) || field_type_matches(field.kind, v) {
        return Ok(());
    }
    if field.kind == FieldType::Number && v.is_number() {
        return Err(SessionError::InvalidField(format!(
            "[body.{name}] Invalid input: expected an integer from {} to {}",
            i32::MIN,
            i32::MAX
        )));
    }
    let received = match (field.kind, v) {
        (FieldType::Date, Value::String(_)) => "Invalid Date",
        _ => json_type(v),
    };
    Err(SessionError::InvalidField(format!(
        "[body.{name}] Invalid input: expected {}, received {received}",
        field.kind.name()
    )))
}

impl SessionService {
    /// The additional user fields a sign-up or update-user body sets.
    pub(super) fn user_input(
        &self,
        body: &Map<String, Value>,
        action: Action,
    ) -> Result<Map<String, Value>, SessionError> {
        parse_input(&self.inner.user_fields, body, action)
    }

    /// Names of the string-typed additional user fields.
    pub fn user_text_fields(&self) -> Vec<&str> {
        self.inner
            .user_fields
            .iter()
            .filter(|(_, f)| f.kind == FieldType::String && f.input)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Names of the user fields responses leave out (`returned = false`).
    pub fn hidden_user_fields(&self) -> &[String] {
        &self.inner.hidden_user_fields
    }

    /// Refuses a session to a banned user, as the admin plugin's session hook does: an
    /// active ban is 403 `BANNED_USER`; an expired one is lifted (`banned = false`,
    /// `banReason` and `banExpires` cleared, in the store and in `user`) and the session
    /// goes ahead.
    pub(super) async fn admit(&self, user: &mut User) -> Result<(), SessionError> {
        let Some(message) = &self.inner.banned_message else {
            return Ok(());
        };
        let now = self.now();
        match ban_of(user, now) {
            Ban::None => Ok(()),
            Ban::Active => Err(SessionError::Banned(message.clone())),
            Ban::Expired => {
                let mut lift = Map::new();
                lift.insert("banned".into(), Value::Bool(false));
                lift.insert("banReason".into(), Value::Null);
                lift.insert("banExpires".into(), Value::Null);
                let change = UserChange {
                    name: None,
                    image: None,
                    fields: &lift,
                };
                self.inner.store.update_user(&user.id, &change, now).await?;
                change.apply(user, now);
                Ok(())
            }
        }
    }

    /// Whether a resolved session's user is banned now (the admin plugin enabled): such a
    /// session is not served, whoever wrote the ban and whether or not its sessions were
    /// deleted with it.
    pub(super) fn banned_now(&self, user: &User) -> bool {
        self.inner.banned_message.is_some() && ban_of(user, self.now()) == Ban::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(
        kind: FieldType,
        required: bool,
        default: Option<Value>,
        input: bool,
    ) -> AdditionalField {
        AdditionalField {
            kind,
            required,
            default_value: default,
            input,
            returned: true,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn input_follows_better_auths_rules() {
        let fields = vec![
            (
                "plan".to_owned(),
                field(FieldType::String, true, Some(json!("free")), true),
            ),
            (
                "credits".to_owned(),
                field(FieldType::Number, false, None, true),
            ),
            (
                "role".to_owned(),
                field(FieldType::String, false, None, false),
            ),
            (
                "banned".to_owned(),
                field(FieldType::Boolean, false, Some(json!(false)), false),
            ),
            (
                "tenant".to_owned(),
                field(FieldType::String, true, None, true),
            ),
        ];
        let create = |v| parse_input(&fields, &body(v), Action::Create);
        // Defaults fill what is not sent; a required field without one is missing.
        assert!(matches!(create(json!({})), Err(SessionError::MissingField(n)) if n == "tenant"));
        let set = create(json!({"tenant": "t", "banned": true, "other": 1})).unwrap();
        assert_eq!(
            Value::Object(set),
            json!({"plan": "free", "banned": false, "tenant": "t"})
        );
        // input = false without a default: refused when truthy, ignored when falsy.
        assert!(
            matches!(create(json!({"tenant": "t", "role": "admin"})), Err(SessionError::FieldNotAllowed(n)) if n == "role")
        );
        assert!(create(json!({"tenant": "t", "role": ""})).is_ok());
        // Types are checked; null clears an optional field only.
        assert!(
            matches!(create(json!({"tenant": "t", "credits": "x"})), Err(SessionError::InvalidField(m)) if m == "[body.credits] Invalid input: expected number, received string")
        );
        assert!(create(json!({"tenant": "t", "credits": null})).is_ok());
        // Numbers are 32-bit integers (the column Better Auth's migrator makes).
        for n in [
            json!(2_147_483_648_i64),
            json!(1.5),
            json!(-2_147_483_649_i64),
        ] {
            assert!(
                matches!(create(json!({"tenant": "t", "credits": n})), Err(SessionError::InvalidField(m)) if m.contains("an integer from -2147483648 to 2147483647"))
            );
        }
        assert!(create(json!({"tenant": "t", "credits": 2_147_483_647})).is_ok());
        assert!(create(json!({"tenant": null})).is_err());
        // Updates set only what is sent, without defaults.
        let upd = parse_input(&fields, &body(json!({"credits": 5})), Action::Update).unwrap();
        assert_eq!(Value::Object(upd), json!({"credits": 5}));
        assert!(parse_input(&fields, &body(json!({"banned": true})), Action::Update).is_err());
    }

    #[test]
    fn a_ban_holds_until_it_expires() {
        let now = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut u = User::from_json(&body(json!({
            "id": "u", "name": "A", "email": "a@b.co", "emailVerified": false,
            "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"
        })))
        .unwrap();
        assert_eq!(ban_of(&u, now), Ban::None);
        u.extra.insert("banned".into(), json!(true));
        assert_eq!(ban_of(&u, now), Ban::Active);
        u.extra
            .insert("banExpires".into(), json!("2026-06-01T00:00:00.001Z"));
        assert_eq!(ban_of(&u, now), Ban::Active);
        u.extra
            .insert("banExpires".into(), json!("2026-05-31T23:59:59.999Z"));
        assert_eq!(ban_of(&u, now), Ban::Expired);
        u.extra.insert("banned".into(), json!(false));
        assert_eq!(ban_of(&u, now), Ban::None);
    }
}
