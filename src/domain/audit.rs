//! The audit log's records: who did what to which thing, with which outcome, and the hash that
//! chains each record to the one before it. No I/O here; the store writes and chains them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::{Caller, Scope};

/// The dotted names of what is recorded.
pub mod action {
    pub const LOGIN: &str = "auth.login";
    pub const LOGIN_FAILED: &str = "auth.login_failed";
    pub const DEVICE_AUTHORIZED: &str = "auth.device_authorized";
    pub const SECRET_CREATED: &str = "secret.created";
    pub const SECRET_UPDATED: &str = "secret.updated";
    pub const SECRET_DELETED: &str = "secret.deleted";
    pub const SECRET_READ: &str = "secret.read";
    pub const SECRETS_BACKED_UP: &str = "secret.backed_up";
    pub const SECRETS_RESTORED: &str = "secret.restored";
    pub const CONNECTOR_CREATED: &str = "connector.created";
    pub const CONNECTOR_UPDATED: &str = "connector.updated";
    pub const CONNECTOR_DELETED: &str = "connector.deleted";
    /// A connector read with its secret values (`expand_secrets`).
    pub const CONNECTOR_SECRETS_READ: &str = "connector.secrets_read";
    pub const CONNECTOR_VERIFIED: &str = "connector.verified";
    pub const CONNECTOR_CLIENT_ISSUED: &str = "connector.client_issued";
    pub const IMPLICIT_AUTH_REFUSED: &str = "connector.implicit_auth_refused";
    pub const COMPONENT_CREATED: &str = "component.created";
    pub const COMPONENT_UPDATED: &str = "component.updated";
    pub const COMPONENT_DELETED: &str = "component.deleted";
    pub const STACK_CREATED: &str = "stack.created";
    pub const STACK_UPDATED: &str = "stack.updated";
    pub const STACK_DELETED: &str = "stack.deleted";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_SESSIONS_ENDED: &str = "user.sessions_ended";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_DELETED: &str = "api_key.deleted";
    pub const WORKSPACE_CREATED: &str = "workspace.created";
    pub const WORKSPACE_UPDATED: &str = "workspace.updated";
    pub const WORKSPACE_DELETED: &str = "workspace.deleted";
    pub const MEMBER_ADDED: &str = "workspace.member_added";
    pub const MEMBER_UPDATED: &str = "workspace.member_updated";
    pub const MEMBER_REMOVED: &str = "workspace.member_removed";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const KEY_REWRAPPED: &str = "key.rewrapped";
    pub const KEY_REMOVED: &str = "key.removed";
    pub const MASTER_KEY_ROTATED: &str = "key.master_rotated";
    pub const AUDIT_PURGED: &str = "audit.purged";
}

/// How the recorded action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Refused: wrong credentials, missing rights, a policy.
    Denied,
    /// Attempted, and failed (a cloud refused or was unreachable).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    pub fn parse(value: &str) -> Option<Outcome> {
        match value {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Actor {
    /// The account, when one is known.
    pub id: Option<Uuid>,
    /// The account's name, or the name a failed login gave.
    pub name: String,
    /// `user`, `service_account`, `anonymous` (no account authenticated), `operator` (the
    /// command line on the server's host) or `system` (the server itself).
    pub kind: String,
    /// The API key the request authenticated with.
    pub api_key_id: Option<Uuid>,
}

impl Actor {
    pub fn of(caller: &Caller) -> Actor {
        Actor {
            api_key_id: caller.api_key_id,
            ..Actor::account(caller.user_id, &caller.name, caller.is_service_account)
        }
    }

    /// An account, signed in without an API key.
    pub fn account(id: Uuid, name: &str, is_service_account: bool) -> Actor {
        Actor {
            id: Some(id),
            name: name.to_owned(),
            kind: account_kind(is_service_account).into(),
            api_key_id: None,
        }
    }

    /// Someone who has not (yet) authenticated: the name they claimed.
    pub fn anonymous(claimed_name: &str) -> Actor {
        Actor {
            id: None,
            name: claimed_name.to_owned(),
            kind: "anonymous".into(),
            api_key_id: None,
        }
    }

    /// Whoever runs `connector-hub` commands on the server's host.
    pub fn operator() -> Actor {
        Actor {
            id: None,
            name: "operator".into(),
            kind: "operator".into(),
            api_key_id: None,
        }
    }

    /// The server acting on its own, such as rotating a worn data key.
    pub fn system() -> Actor {
        Actor {
            id: None,
            name: "connector-hub".into(),
            kind: "system".into(),
            api_key_id: None,
        }
    }
}

/// What the audit log calls an account, as actor or target.
pub fn account_kind(is_service_account: bool) -> &'static str {
    match is_service_account {
        true => "service_account",
        false => "user",
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Target {
    pub fn new(kind: &str, id: impl ToString, name: &str) -> Target {
        Target {
            kind: kind.to_owned(),
            id: Some(id.to_string()),
            name: Some(name.to_owned()),
        }
    }

    pub fn id_only(kind: &str, id: impl ToString) -> Target {
        Target {
            kind: kind.to_owned(),
            id: Some(id.to_string()),
            name: None,
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

/// One record of the audit log. Never holds a secret value, token or password.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    /// Microseconds, so that it reads back from either database as it was hashed.
    pub created: DateTime<Utc>,
    pub actor: Actor,
    pub workspace_id: Option<Uuid>,
    pub action: String,
    pub target: Option<Target>,
    pub outcome: Outcome,
    /// The HTTP status of the response, for requests.
    pub status: Option<u16>,
    pub origin: Origin,
    /// A small JSON object, stored as written.
    pub details: String,
}

impl AuditEvent {
    /// Ids are UUIDv7, in the order records are made: each new record goes at the end of the
    /// table's indexes rather than at a random place, which with v4 ids cost a page write each.
    pub fn new(actor: Actor, action: &str, outcome: Outcome, now: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            created: truncate_to_micros(now),
            actor,
            workspace_id: None,
            action: action.to_owned(),
            target: None,
            outcome,
            status: None,
            origin: Origin::default(),
            details: "{}".into(),
        }
    }

    /// The same record made anew (its own id and time), for an action repeated in steps.
    pub fn again(&self, now: DateTime<Utc>) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            created: truncate_to_micros(now),
            ..self.clone()
        }
    }

    /// An action of the caller in a workspace, answered 200.
    pub fn in_scope(scope: &Scope, action: &str, now: DateTime<Utc>) -> AuditEvent {
        AuditEvent::new(Actor::of(&scope.caller), action, Outcome::Success, now)
            .in_workspace(scope.workspace_id)
            .with_status(200)
    }

    pub fn in_workspace(mut self, workspace_id: Uuid) -> AuditEvent {
        self.workspace_id = Some(workspace_id);
        self
    }

    pub fn on(mut self, target: Target) -> AuditEvent {
        self.target = Some(target);
        self
    }

    pub fn with_status(mut self, status: u16) -> AuditEvent {
        self.status = Some(status);
        self
    }

    pub fn from_origin(mut self, origin: &Origin) -> AuditEvent {
        self.origin = origin.clone();
        self
    }

    /// `details` must be a JSON object of facts, never a secret.
    pub fn with_details(mut self, details: Value) -> AuditEvent {
        debug_assert!(details.is_object());
        self.details = details.to_string();
        self
    }

    /// What the hash covers: every field, in a fixed order and encoding, and the record's
    /// place in the chain.
    pub fn canonical(&self, chain_seq: i64) -> Vec<u8> {
        let target = self.target.as_ref();
        let mut encoded = Vec::with_capacity(256 + self.details.len());
        let mut fields = CanonicalArray::open(&mut encoded);
        fields.push(&chain_seq);
        fields.push(&self.id);
        fields.push(&self.created.timestamp_micros());
        fields.push(&self.actor.id);
        fields.push(&self.actor.name);
        fields.push(&self.actor.kind);
        fields.push(&self.actor.api_key_id);
        fields.push(&self.workspace_id);
        fields.push(&self.action);
        fields.push(&target.map(|t| &t.kind));
        fields.push(&target.and_then(|t| t.id.as_ref()));
        fields.push(&target.and_then(|t| t.name.as_ref()));
        fields.push(&self.outcome.as_str());
        fields.push(&self.status);
        fields.push(&self.origin.client_address);
        fields.push(&self.origin.request_id);
        fields.push(&self.details);
        fields.close();
        encoded
    }

    /// SHA-256 over the previous record's hash and this record's content, hex.
    pub fn chain_hash(&self, chain_seq: i64, previous_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(previous_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(self.canonical(chain_seq));
        hex(&hasher.finalize())
    }
}

/// The hash before the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// A compact JSON array written element by element: the bytes `serde_json` writes for the
/// same values as one array, without building it first (chaining encodes every record).
struct CanonicalArray<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CanonicalArray<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'[');
        CanonicalArray { out, first: true }
    }

    fn push(&mut self, value: &impl Serialize) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, value).expect("audit fields serialise");
    }

    fn close(self) {
        self.out.push(b']');
    }
}

pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> AuditEvent {
        AuditEvent::new(
            Actor::anonymous("alice"),
            action::LOGIN_FAILED,
            Outcome::Denied,
            Utc::now(),
        )
        .with_status(401)
        .with_details(json!({"method": "password"}))
    }

    /// The encoding is the one chains were first written with (a `serde_json` array of the
    /// fields): records chained then still verify.
    #[test]
    fn the_canonical_encoding_is_the_original_one() {
        let full = AuditEvent {
            workspace_id: Some(Uuid::now_v7()),
            target: Some(Target {
                kind: "secret".into(),
                id: Some("an \"id\"".into()),
                name: Some("näme".into()),
            }),
            status: Some(200),
            origin: Origin {
                client_address: Some("127.0.0.1".into()),
                request_id: Some("r-1".into()),
            },
            actor: Actor {
                api_key_id: Some(Uuid::now_v7()),
                ..Actor::account(Uuid::now_v7(), "alice", false)
            },
            ..event()
        };
        for record in [event(), full] {
            let target = record.target.as_ref();
            let original = json!([
                -3_i64,
                record.id,
                record.created.timestamp_micros(),
                record.actor.id,
                record.actor.name,
                record.actor.kind,
                record.actor.api_key_id,
                record.workspace_id,
                record.action,
                target.map(|t| &t.kind),
                target.and_then(|t| t.id.as_ref()),
                target.and_then(|t| t.name.as_ref()),
                record.outcome.as_str(),
                record.status,
                record.origin.client_address,
                record.origin.request_id,
                record.details,
            ])
            .to_string();
            assert_eq!(String::from_utf8(record.canonical(-3)).unwrap(), original);
        }
        assert_eq!(hex(&[0x00, 0x9f, 0xff]), "009fff");
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let original = event();
        let hash = original.chain_hash(7, GENESIS_HASH);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, original.chain_hash(7, GENESIS_HASH));
        assert_ne!(hash, original.chain_hash(8, GENESIS_HASH));
        assert_ne!(hash, original.chain_hash(7, &hash));
        let changes: [fn(&mut AuditEvent); 5] = [
            |e| e.actor.name.push('x'),
            |e| e.outcome = Outcome::Success,
            |e| e.status = Some(200),
            |e| e.details = "{}".into(),
            |e| e.origin.client_address = Some("10.0.0.1".into()),
        ];
        for change in changes {
            let mut changed = original.clone();
            change(&mut changed);
            assert_ne!(changed.chain_hash(7, GENESIS_HASH), hash);
        }
    }

    #[test]
    fn times_keep_microseconds_only() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate_to_micros(at).timestamp_subsec_nanos(), 123_456_000);
    }
}
