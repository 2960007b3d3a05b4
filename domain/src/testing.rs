//! Given/when/then for aggregates, with no database: given past events, when a command
//! is decided, then expect these events or this error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use chrono::{DateTime, TimeZone as _, Utc};

use crate::aggregate::Aggregate;
use crate::clock::TimeZone;
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::ids::FirmId;
use crate::money::{Currency, Money};
use crate::values::{Email, Name};

pub struct Given<A>(A);

pub fn given<A: Aggregate>(history: &[Event]) -> Given<A> {
    Given(A::replay(history))
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, decide: impl FnOnce(&A) -> DomainResult<Vec<Event>>) -> Then {
        Then(decide(&self.0))
    }
}

#[derive(Debug)]
pub struct Then(DomainResult<Vec<Event>>);

impl Then {
    #[track_caller]
    pub fn then_events(self, expected: Vec<Event>) {
        assert_eq!(self.0, Ok(expected));
    }

    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        assert_eq!(self.0, Err(expected));
    }

    #[track_caller]
    pub fn then_ok(self) -> Vec<Event> {
        match self.0 {
            Ok(events) => events,
            Err(e) => panic!("expected the command to be accepted, got {e:?}"),
        }
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

pub fn name(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

pub fn usd(s: &str) -> Money {
    Money::parse(s, Currency::parse("USD").unwrap()).unwrap()
}

pub fn firm_registered(firm_id: FirmId) -> Event {
    Event::FirmRegistered {
        firm_id,
        name: name("Acme Advisory"),
        logo_url: None,
        time_zone: TimeZone::UTC,
        locale: crate::values::Locale::default_locale(),
    }
}
