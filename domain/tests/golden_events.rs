//! Golden JSON fixtures: one file per event type and schema version under
//! `tests/fixtures/events/{Type}.v{N}.json`. A current-version fixture must decode and
//! re-encode to exactly the same JSON; an old-version fixture must upcast to its
//! `expected_current` payload. Fixtures are never edited once committed: changing an
//! event's shape means a new version, a new fixture and an upcaster.
//!
//! To write the fixture of a new event type or version, run with
//! `PORTICO_BLESS_FIXTURES=1`; existing files are never overwritten.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone, Utc};
use portico_domain::clock::TimeZone as Zone;
use portico_domain::events::{decode, EVENT_TYPES};
use portico_domain::ids::*;
use portico_domain::values::{Email, InvoiceNumber, Locale, Name, Url};
use portico_domain::{Currency, Event, Money};
use serde_json::{json, Value};
use uuid::Uuid;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

fn id(n: u128) -> Uuid {
    // Fixed v7-shaped ids so the fixtures are stable.
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// One sample of every event at its current version.
fn samples() -> Vec<Event> {
    let firm_id = FirmId::from_uuid(id(1));
    let client_id = ClientId::from_uuid(id(2));
    let contact_id = ContactId::from_uuid(id(3));
    let invite_id = InviteId::from_uuid(id(4));
    let project_id = ProjectId::from_uuid(id(5));
    let member_id = MemberId::from_uuid(id(6));
    let invoice_id = InvoiceId::from_uuid(id(7));
    let payment_id = PaymentId::from_uuid(id(8));
    let submission_id = SubmissionId::from_uuid(id(9));
    let name = |s| Name::parse("name", s).unwrap();
    let email = |s| Email::parse(s).unwrap();
    let usd = |s| Money::parse(s, Currency::parse("USD").unwrap()).unwrap();
    let logo = Some(Url::parse("logo_url", "https://cdn.example.com/acme.png").unwrap());
    let number = InvoiceNumber::parse("INV-2026-001").unwrap();
    vec![
        Event::FirmRegistered {
            firm_id,
            name: name("Acme Advisory LLP"),
            logo_url: logo.clone(),
            time_zone: Zone::parse("America/New_York").unwrap(),
            locale: Locale::parse("en-US").unwrap(),
        },
        Event::FirmProfileUpdated {
            firm_id,
            name: name("Acme Advisory"),
            logo_url: logo,
        },
        Event::InvoiceNumberReserved {
            firm_id,
            number: number.clone(),
            invoice_id,
        },
        Event::ContactEmailReserved {
            firm_id,
            email: email("ann@client.example"),
            contact_id,
        },
        Event::ClientAdded {
            firm_id,
            client_id,
            name: name("Client Co"),
        },
        Event::ContactAdded {
            firm_id,
            client_id,
            contact_id,
            name: name("Ann Client"),
            email: email("ann@client.example"),
        },
        Event::InviteSent {
            contact_id,
            invite_id,
            expires_at: Utc.with_ymd_and_hms(2026, 3, 8, 9, 0, 0).unwrap(),
        },
        Event::InviteRevoked {
            contact_id,
            invite_id,
        },
        Event::AccountCreated {
            contact_id,
            invite_id,
            username: email("ann@client.example"),
        },
        Event::PasswordChanged { contact_id },
        Event::ContactDeactivated { contact_id },
        Event::ProjectCreated {
            firm_id,
            client_id,
            project_id,
            name: name("2026 Audit"),
        },
        Event::TeamMemberAssigned {
            project_id,
            member_id,
            name: name("Pat Partner"),
            role: name("Engagement Partner"),
            email: email("pat@acme.example"),
        },
        Event::TeamMemberUnassigned {
            project_id,
            member_id,
        },
        Event::InvoiceIssued {
            firm_id,
            client_id,
            project_id,
            invoice_id,
            number,
            issued_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            total: usd("1250.00"),
        },
        Event::InvoiceVoided {
            invoice_id,
            reason: "issued in error".into(),
        },
        Event::PaymentSubmitted {
            firm_id,
            invoice_id,
            client_id,
            payment_id,
            submission_id,
            amount: usd("1250.00"),
            method: "card".into(),
        },
        Event::PaymentSettled {
            invoice_id,
            payment_id,
            amount: usd("1250.00"),
        },
        Event::PaymentFailed {
            invoice_id,
            payment_id,
            amount: usd("1250.00"),
            reason: "card declined".into(),
        },
        Event::PaymentRefunded {
            invoice_id,
            payment_id,
            amount: usd("250.00"),
        },
    ]
}

fn fixture_path(event_type: &str, version: i32) -> PathBuf {
    fixtures_dir().join(format!("{event_type}.v{version}.json"))
}

#[test]
fn every_event_type_has_a_sample_and_a_current_fixture() {
    let sampled: BTreeSet<&str> = samples().iter().map(|e| e.event_type()).collect();
    let listed: BTreeSet<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
    assert_eq!(sampled, listed, "samples() and EVENT_TYPES disagree");

    let bless = std::env::var_os("PORTICO_BLESS_FIXTURES").is_some();
    for event in samples() {
        let encoded = event.encode();
        let path = fixture_path(encoded.event_type, encoded.schema_version);
        if bless && !path.exists() {
            let file = json!({
                "event_type": encoded.event_type,
                "schema_version": encoded.schema_version,
                "data": encoded.data,
            });
            std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
        }
        assert!(path.exists(), "missing fixture {}", path.display());
    }
}

#[test]
fn fixtures_round_trip_or_upcast_exactly() {
    let current: std::collections::HashMap<&str, i32> = EVENT_TYPES.iter().copied().collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let event_type = file["event_type"].as_str().unwrap();
        let version = i32::try_from(file["schema_version"].as_i64().unwrap()).unwrap();
        let data = file["data"].clone();
        let event = decode(event_type, version, data.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let encoded = event.encode();
        assert_eq!(encoded.event_type, event_type);
        assert_eq!(encoded.schema_version, current[event_type]);
        if version == current[event_type] {
            assert_eq!(encoded.data, data, "{} does not round-trip", path.display());
        } else {
            assert_eq!(
                encoded.data,
                file["expected_current"],
                "{} does not upcast to its expected_current payload",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked > EVENT_TYPES.len(),
        "only {checked} fixtures were checked"
    );
}
