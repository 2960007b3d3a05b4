//! Every change in Portico is one of these events. They are past tense, carry a type name
//! and a `schema_version`, and are stored forever, so:
//! - a field is never renamed or retyped in place: a new schema version plus an upcaster in
//!   [`decode`] turns old payloads into the current shape on read;
//! - no secrets: no password hashes, raw tokens, token hashes or card numbers;
//! - personal data (contact and member names and emails) sits in fields of its own, so
//!   sealing it with a per-contact key later is a local change.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::TimeZone;
use crate::ids::*;
use crate::money::Money;
use crate::streams::StreamId;
use crate::values::{Email, InvoiceNumber, Locale, Name, Url};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    // firm-{id}
    FirmRegistered {
        firm_id: FirmId,
        name: Name,
        logo_url: Option<Url>,
        /// Added in schema version 2; version 1 firms were all billed in UTC.
        time_zone: TimeZone,
        /// Added in schema version 3; earlier firms format as `en-US`.
        locale: Locale,
    },
    FirmProfileUpdated {
        firm_id: FirmId,
        name: Name,
        logo_url: Option<Url>,
    },
    /// Claims an invoice number within the firm, appended atomically with `InvoiceIssued`.
    InvoiceNumberReserved {
        firm_id: FirmId,
        number: InvoiceNumber,
        invoice_id: InvoiceId,
    },
    /// Claims a contact email within the firm, appended atomically with `ContactAdded`.
    ContactEmailReserved {
        firm_id: FirmId,
        /// Personal data.
        email: Email,
        contact_id: ContactId,
    },

    // client-{id}
    ClientAdded {
        firm_id: FirmId,
        client_id: ClientId,
        name: Name,
    },

    // contact-{id}
    ContactAdded {
        firm_id: FirmId,
        client_id: ClientId,
        contact_id: ContactId,
        /// Personal data.
        name: Name,
        /// Personal data.
        email: Email,
    },
    /// The token itself lives only hashed, in the credentials table, keyed by `invite_id`.
    InviteSent {
        contact_id: ContactId,
        invite_id: InviteId,
        expires_at: DateTime<Utc>,
    },
    InviteRevoked {
        contact_id: ContactId,
        invite_id: InviteId,
    },
    AccountCreated {
        contact_id: ContactId,
        invite_id: InviteId,
        /// The invited email, which is the login name. Personal data.
        username: Email,
    },
    PasswordChanged {
        contact_id: ContactId,
    },
    ContactDeactivated {
        contact_id: ContactId,
    },

    // project-{id}
    ProjectCreated {
        firm_id: FirmId,
        client_id: ClientId,
        project_id: ProjectId,
        name: Name,
    },
    TeamMemberAssigned {
        project_id: ProjectId,
        member_id: MemberId,
        /// Personal data.
        name: Name,
        role: Name,
        /// Personal data.
        email: Email,
    },
    TeamMemberUnassigned {
        project_id: ProjectId,
        member_id: MemberId,
    },

    // invoice-{id}
    InvoiceIssued {
        firm_id: FirmId,
        client_id: ClientId,
        project_id: ProjectId,
        invoice_id: InvoiceId,
        number: InvoiceNumber,
        issued_on: NaiveDate,
        due_on: NaiveDate,
        total: Money,
    },
    InvoiceVoided {
        invoice_id: InvoiceId,
        reason: String,
    },
    PaymentSubmitted {
        firm_id: FirmId,
        invoice_id: InvoiceId,
        client_id: ClientId,
        payment_id: PaymentId,
        submission_id: SubmissionId,
        amount: Money,
        /// How it is paid: a gateway method such as `"card"`, or `"offline"`. Never a card
        /// number or token.
        method: String,
    },
    PaymentSettled {
        invoice_id: InvoiceId,
        payment_id: PaymentId,
        amount: Money,
    },
    PaymentFailed {
        invoice_id: InvoiceId,
        payment_id: PaymentId,
        /// The amount that was not charged, which is free to pay again.
        amount: Money,
        reason: String,
    },
    PaymentRefunded {
        invoice_id: InvoiceId,
        payment_id: PaymentId,
        amount: Money,
    },
}

/// Every event type with its current schema version. The decoder accepts versions
/// `1..=current`; [`Event::event_type`]'s exhaustive match keeps this list honest (a test
/// checks that every type named there is listed here).
pub const EVENT_TYPES: &[(&str, i32)] = &[
    ("FirmRegistered", 3),
    ("FirmProfileUpdated", 1),
    ("InvoiceNumberReserved", 1),
    ("ContactEmailReserved", 1),
    ("ClientAdded", 1),
    ("ContactAdded", 1),
    ("InviteSent", 1),
    ("InviteRevoked", 1),
    ("AccountCreated", 1),
    ("PasswordChanged", 1),
    ("ContactDeactivated", 1),
    ("ProjectCreated", 1),
    ("TeamMemberAssigned", 1),
    ("TeamMemberUnassigned", 1),
    ("InvoiceIssued", 1),
    ("InvoiceVoided", 1),
    ("PaymentSubmitted", 1),
    ("PaymentSettled", 1),
    ("PaymentFailed", 1),
    ("PaymentRefunded", 1),
];

/// An event as it is stored: type name, schema version and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub data: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version} (this build knows 1 to {current})")]
    UnknownVersion {
        event_type: String,
        version: i32,
        current: i32,
    },
    #[error("{event_type} v{version} payload does not match its schema: {source}")]
    Payload {
        event_type: String,
        version: i32,
        source: serde_json::Error,
    },
}

impl Event {
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::FirmRegistered { .. } => "FirmRegistered",
            Event::FirmProfileUpdated { .. } => "FirmProfileUpdated",
            Event::InvoiceNumberReserved { .. } => "InvoiceNumberReserved",
            Event::ContactEmailReserved { .. } => "ContactEmailReserved",
            Event::ClientAdded { .. } => "ClientAdded",
            Event::ContactAdded { .. } => "ContactAdded",
            Event::InviteSent { .. } => "InviteSent",
            Event::InviteRevoked { .. } => "InviteRevoked",
            Event::AccountCreated { .. } => "AccountCreated",
            Event::PasswordChanged { .. } => "PasswordChanged",
            Event::ContactDeactivated { .. } => "ContactDeactivated",
            Event::ProjectCreated { .. } => "ProjectCreated",
            Event::TeamMemberAssigned { .. } => "TeamMemberAssigned",
            Event::TeamMemberUnassigned { .. } => "TeamMemberUnassigned",
            Event::InvoiceIssued { .. } => "InvoiceIssued",
            Event::InvoiceVoided { .. } => "InvoiceVoided",
            Event::PaymentSubmitted { .. } => "PaymentSubmitted",
            Event::PaymentSettled { .. } => "PaymentSettled",
            Event::PaymentFailed { .. } => "PaymentFailed",
            Event::PaymentRefunded { .. } => "PaymentRefunded",
        }
    }

    /// The stream this event belongs to.
    pub fn stream_id(&self) -> StreamId {
        use Event::*;
        match self {
            FirmRegistered { firm_id, .. } | FirmProfileUpdated { firm_id, .. } => {
                StreamId::firm(*firm_id)
            }
            InvoiceNumberReserved {
                firm_id, number, ..
            } => StreamId::invoice_number(*firm_id, number),
            ContactEmailReserved { firm_id, email, .. } => StreamId::contact_email(*firm_id, email),
            ClientAdded { client_id, .. } => StreamId::client(*client_id),
            ContactAdded { contact_id, .. }
            | InviteSent { contact_id, .. }
            | InviteRevoked { contact_id, .. }
            | AccountCreated { contact_id, .. }
            | PasswordChanged { contact_id }
            | ContactDeactivated { contact_id } => StreamId::contact(*contact_id),
            ProjectCreated { project_id, .. }
            | TeamMemberAssigned { project_id, .. }
            | TeamMemberUnassigned { project_id, .. } => StreamId::project(*project_id),
            InvoiceIssued { invoice_id, .. }
            | InvoiceVoided { invoice_id, .. }
            | PaymentSubmitted { invoice_id, .. }
            | PaymentSettled { invoice_id, .. }
            | PaymentFailed { invoice_id, .. }
            | PaymentRefunded { invoice_id, .. } => StreamId::invoice(*invoice_id),
        }
    }

    pub fn schema_version(&self) -> i32 {
        current_version(self.event_type()).unwrap_or(1)
    }

    /// The stored form at the current schema version.
    pub fn encode(&self) -> EncodedEvent {
        // Serializing a derived enum of plain data into a `Value` cannot fail: there are
        // no maps with non-string keys and no fallible `Serialize` impls among the fields.
        let mut tagged = serde_json::to_value(self).unwrap_or(Value::Null);
        let data = tagged
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .unwrap_or(Value::Null);
        EncodedEvent {
            event_type: self.event_type(),
            schema_version: self.schema_version(),
            data,
        }
    }
}

fn current_version(event_type: &str) -> Option<i32> {
    EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, v)| *v)
}

/// Turns a stored payload of any known schema version into the current [`Event`]:
/// upcasters run one version step at a time, then the payload is deserialized.
pub fn decode(event_type: &str, schema_version: i32, data: Value) -> Result<Event, DecodeError> {
    let current = current_version(event_type)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    if schema_version < 1 || schema_version > current {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
            current,
        });
    }
    let mut data = data;
    let mut version = schema_version;
    while version < current {
        data = upcast(event_type, version, data);
        version += 1;
    }
    let tagged = serde_json::json!({ "type": event_type, "data": data });
    serde_json::from_value(tagged).map_err(|source| DecodeError::Payload {
        event_type: event_type.to_owned(),
        version: schema_version,
        source,
    })
}

/// [`decode`] from the payload's JSON text, as the store keeps it. A payload of the current
/// schema version is deserialized straight from the text, with no intermediate
/// `serde_json::Value`; an older one is parsed and upcast as [`decode`] does.
pub fn decode_json(
    event_type: &str,
    schema_version: i32,
    data: &str,
) -> Result<Event, DecodeError> {
    let payload = |source| DecodeError::Payload {
        event_type: event_type.to_owned(),
        version: schema_version,
        source,
    };
    if current_version(event_type) != Some(schema_version) {
        let value = serde_json::from_str(data).map_err(payload)?;
        return decode(event_type, schema_version, value);
    }
    // The tag first, so serde reads the payload as it goes instead of buffering it. Known
    // event types are plain identifiers: nothing in them needs escaping.
    let mut tagged = String::with_capacity(data.len() + event_type.len() + 20);
    tagged.push_str("{\"type\":\"");
    tagged.push_str(event_type);
    tagged.push_str("\",\"data\":");
    tagged.push_str(data);
    tagged.push('}');
    serde_json::from_str(&tagged).map_err(payload)
}

/// One step: `event_type` at `from` → `from + 1`.
fn upcast(event_type: &str, from: i32, mut data: Value) -> Value {
    match (event_type, from) {
        // v1 → v2: firms gained a time zone for "today"; every v1 firm billed in UTC.
        ("FirmRegistered", 1) => {
            if let Some(obj) = data.as_object_mut() {
                obj.entry("time_zone")
                    .or_insert_with(|| Value::String(TimeZone::UTC.name().to_owned()));
            }
            data
        }
        // v2 → v3: firms gained a locale for the portal's dates and amounts.
        ("FirmRegistered", 2) => {
            if let Some(obj) = data.as_object_mut() {
                obj.entry("locale")
                    .or_insert_with(|| Value::String(Locale::DEFAULT.to_owned()));
            }
            data
        }
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_decodable_and_versions_start_at_one() {
        for (t, v) in EVENT_TYPES {
            assert!(*v >= 1, "{t}");
            assert!(matches!(
                decode(t, v + 1, Value::Null),
                Err(DecodeError::UnknownVersion { .. })
            ));
            assert!(matches!(
                decode(t, 0, Value::Null),
                Err(DecodeError::UnknownVersion { .. })
            ));
        }
        assert!(matches!(
            decode("Nope", 1, Value::Null),
            Err(DecodeError::UnknownType(_))
        ));
    }

    #[test]
    fn a_v1_firm_is_upcast_to_utc() {
        let id = FirmId::new();
        let v1 = serde_json::json!({"firm_id": id, "name": "Acme", "logo_url": null});
        let event = decode("FirmRegistered", 1, v1).unwrap();
        assert!(matches!(
            event,
            Event::FirmRegistered { time_zone, locale, .. }
                if time_zone == TimeZone::UTC && locale.as_str() == "en-US"
        ));
    }

    /// The text path reads what the `Value` path reads: current payloads, old ones that
    /// need upcasting, and payloads that do not match their schema.
    #[test]
    fn decoding_the_stored_text_equals_decoding_its_value() {
        let firm_id = FirmId::new();
        let events = [
            Event::FirmProfileUpdated {
                firm_id,
                name: Name::parse("name", "Acme \"Quoted\" & Co").unwrap(),
                logo_url: None,
            },
            Event::InvoiceVoided {
                invoice_id: InvoiceId::new(),
                reason: "issued in error \u{e9}\n".to_owned(),
            },
        ];
        for event in events {
            let encoded = event.encode();
            let text = encoded.data.to_string();
            let from_text = decode_json(encoded.event_type, encoded.schema_version, &text).unwrap();
            assert_eq!(from_text, event);
        }
        let v1 = serde_json::json!({"firm_id": firm_id, "name": "Acme", "logo_url": null});
        assert_eq!(
            decode_json("FirmRegistered", 1, &v1.to_string()).unwrap(),
            decode("FirmRegistered", 1, v1).unwrap()
        );
        for bad in ["{\"invoice_id\": 7}", "not json", "{}"] {
            assert!(matches!(
                decode_json("InvoiceVoided", 1, bad),
                Err(DecodeError::Payload { .. })
            ));
        }
        assert!(matches!(
            decode_json("Nope", 1, "{}"),
            Err(DecodeError::UnknownType(_))
        ));
    }
}
