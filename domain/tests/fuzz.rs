//! Fuzz targets, driven by proptest: money parsing, and event decoding with its upcasters,
//! fed arbitrary and near-valid input. None may panic; what parses must round-trip.
//!
//! `PORTICO_FUZZ_CASES` sets the cases per target (20,000 by default, the CI run; the
//! README's full run uses 1,000,000). Each target prints how many inputs it executed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicU64, Ordering};

use portico_domain::events::{decode, EVENT_TYPES};
use portico_domain::{Currency, Money};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};

fn cases() -> u32 {
    std::env::var("PORTICO_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

fn report(target: &str, executed: &AtomicU64) {
    eprintln!(
        "FUZZ RESULT {target}: {} executions, 0 panics",
        executed.load(Ordering::Relaxed)
    );
}

/// Arbitrary JSON, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
        "[0-9]{1,20}\\.[0-9]{0,6}".prop_map(Value::String),
        Just(Value::String("01900000-0000-7000-8000-000000000001".into())),
        Just(Value::String("2026-02-30".into())),
        Just(Value::String("USD".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,14}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn amount_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?",
        "[-+]?[0-9]{0,4}([eE][-+]?[0-9]{1,4})?",
        "[0-9 ,._']{0,20}",
        Just("NaN".to_owned()),
        Just("١٢٣".to_owned()),
    ]
}

#[test]
fn money_parsing_never_panics_and_what_parses_round_trips() {
    let executed = AtomicU64::new(0);
    let currencies = prop_oneof![
        Just("USD"),
        Just("JPY"),
        Just("BHD"),
        Just("EUR"),
        Just("usd"),
        Just(""),
        Just("XXXX"),
    ];
    runner()
        .run(&(amount_text(), currencies), |(text, code)| {
            executed.fetch_add(1, Ordering::Relaxed);
            let Ok(currency) = Currency::parse(code) else {
                return Ok(());
            };
            if let Ok(money) = Money::parse(&text, currency) {
                let wire = money.amount().to_string();
                let again = Money::parse(&wire, currency).unwrap();
                prop_assert_eq!(again, money);
                prop_assert_eq!(
                    Money::from_minor(money.minor_units(), currency).unwrap(),
                    money
                );
            }
            Ok(())
        })
        .unwrap();
    report("money parsing", &executed);
}

#[test]
fn decoding_arbitrary_payloads_of_every_type_and_version_never_panics() {
    let executed = AtomicU64::new(0);
    let kinds: Vec<(&str, i32)> = EVENT_TYPES
        .iter()
        .flat_map(|(t, current)| (0..=current + 1).map(move |v| (*t, v)))
        .collect();
    runner()
        .run(&(prop::sample::select(kinds), json()), |((t, v), data)| {
            executed.fetch_add(1, Ordering::Relaxed);
            if let Ok(event) = decode(t, v, data) {
                let encoded = event.encode();
                let again = decode(encoded.event_type, encoded.schema_version, encoded.data)
                    .expect("an encoded event decodes");
                prop_assert_eq!(again, event);
            }
            Ok(())
        })
        .unwrap();
    report("event decoding (arbitrary payloads)", &executed);
}

/// Real payloads, every version (so every upcaster), with one field replaced by arbitrary
/// JSON or removed: near-valid input reaches deeper than random objects.
#[test]
fn decoding_and_upcasting_mutated_fixtures_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events");
    let fixtures: Vec<(String, i32, Map<String, Value>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
            (
                v["event_type"].as_str().unwrap().to_owned(),
                i32::try_from(v["schema_version"].as_i64().unwrap()).unwrap(),
                v["data"].as_object().unwrap().clone(),
            )
        })
        .collect();
    let executed = AtomicU64::new(0);
    runner()
        .run(
            &(
                prop::sample::select(fixtures),
                any::<prop::sample::Index>(),
                prop::option::of(json()),
            ),
            |((t, v, mut data), which, replacement)| {
                executed.fetch_add(1, Ordering::Relaxed);
                let keys: Vec<String> = data.keys().cloned().collect();
                if !keys.is_empty() {
                    let key = which.get(&keys).clone();
                    match replacement {
                        Some(value) => data.insert(key, value),
                        None => data.remove(&key),
                    };
                }
                if let Ok(event) = decode(&t, v, Value::Object(data)) {
                    let encoded = event.encode();
                    let again =
                        decode(encoded.event_type, encoded.schema_version, encoded.data).unwrap();
                    prop_assert_eq!(again, event);
                }
                Ok(())
            },
        )
        .unwrap();
    report("event decoding and upcasting (mutated fixtures)", &executed);
}
