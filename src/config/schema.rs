//! The shape of the `user` and `session` rows beyond Better Auth's core: `user.*` options
//! (additional fields), the admin plugin's columns and rules (`plugins.admin.*`), and how
//! ids are made (`advanced.database.generate_id`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AdditionalField, FieldType, Settings};

/// Better Auth's `user.*` options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    /// Extra user columns, by name (Better Auth's `user.additionalFields`).
    pub additional_fields: BTreeMap<String, AdditionalField>,
}

/// Better Auth plugins whose data sessiond shares with the app.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// The admin plugin's columns and rules (its routes are not served).
    pub admin: AdminSettings,
    /// The bearer plugin.
    pub bearer: super::BearerSettings,
    /// The jwt plugin.
    pub jwt: super::JwtSettings,
    /// The multi-session plugin.
    pub multi_session: super::MultiSessionSettings,
}

/// Better Auth's `admin()` options that bear on sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// The app uses the admin plugin: its user and session columns are read, written and
    /// returned, and banned users get no session.
    pub enabled: bool,
    /// Role given to new users.
    pub default_role: String,
    /// Roles that make a user an admin.
    pub admin_roles: Vec<String>,
    /// Users who are admins whatever their role.
    pub admin_user_ids: Vec<String>,
    /// The message of the 403 `BANNED_USER` answer.
    pub banned_user_message: String,
    /// Lifetime (s) of an impersonation session.
    pub impersonation_session_duration: u64,
    /// Admins may impersonate other admins (`allowImpersonatingAdmins`).
    pub allow_impersonating_admins: bool,
    /// `banReason` of a ban that gives none (`defaultBanReason`).
    pub default_ban_reason: String,
    /// Lifetime (s) of a ban that gives no `banExpiresIn`; 0: for ever
    /// (`defaultBanExpiresIn`).
    pub default_ban_expires_in: u64,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            default_role: "user".into(),
            admin_roles: vec!["admin".into()],
            admin_user_ids: Vec::new(),
            banned_user_message: "You have been banned from this application. Please contact \
                                  support if you believe this is an error."
                .into(),
            impersonation_session_duration: 3600,
            allow_impersonating_admins: false,
            default_ban_reason: "No reason".into(),
            default_ban_expires_in: 0,
        }
    }
}

/// How new rows get their ids (Better Auth's `advanced.database.generateId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GenerateId {
    /// 32 random alphanumeric characters, in `text` columns.
    #[default]
    Default,
    /// Random UUIDs (v4), in PostgreSQL `uuid` columns.
    Uuid,
    /// Integers the database assigns (PostgreSQL identity, SQLite rowid).
    Serial,
}

one_of!(GenerateId, exact, "default, uuid or serial", {
    "default" => Default,
    "uuid" => Uuid,
    "serial" => Serial,
});

/// Better Auth's `advanced.database.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvancedDatabase {
    /// How ids are made.
    pub generate_id: GenerateId,
}

/// An additional field that only the app may set (`input: false`), optional.
fn plugin_field(kind: FieldType, default_value: Option<Value>) -> AdditionalField {
    AdditionalField {
        kind,
        required: false,
        default_value,
        input: false,
        returned: true,
    }
}

impl Settings {
    /// Every column of `user` beyond the core ones, as fields: the admin plugin's (when
    /// enabled), then `user.additional_fields`; a plugin's definition wins over an
    /// additional field of the same name, as in Better Auth's schema merge.
    pub fn user_fields(&self) -> Vec<(String, AdditionalField)> {
        let mut fields: BTreeMap<String, AdditionalField> = self.user.additional_fields.clone();
        if self.plugins.admin.enabled {
            // No default: the plugin sets the role when a user is created, and a role sent
            // on sign-up is refused rather than replaced.
            fields.insert("role".into(), plugin_field(FieldType::String, None));
            let no = Some(Value::Bool(false));
            fields.insert("banned".into(), plugin_field(FieldType::Boolean, no));
            fields.insert("banReason".into(), plugin_field(FieldType::String, None));
            fields.insert("banExpires".into(), plugin_field(FieldType::Date, None));
        }
        fields.into_iter().collect()
    }

    /// Every column of `session` beyond the core ones: `session.additional_fields`, and the
    /// admin plugin's `impersonatedBy`.
    pub fn session_fields(&self) -> Vec<(String, AdditionalField)> {
        let mut fields = self.session.additional_fields.clone();
        if self.plugins.admin.enabled {
            fields.insert(
                "impersonatedBy".into(),
                plugin_field(FieldType::String, None),
            );
        }
        fields.into_iter().collect()
    }
}
