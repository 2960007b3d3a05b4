//! The firm aggregate (`firm-{id}`): profile, time zone, locale, and the per-firm
//! uniqueness of invoice numbers and contact emails. A key is reserved by the first event
//! of its own reservation stream (see [`crate::streams`]), appended atomically with the
//! entity's creation, so two racing commands for one key conflict and exactly one wins.
//! Callers fold the firm from its stream plus the key's reservation stream; reservations
//! stored in the firm stream by earlier versions fold the same way.

use std::collections::HashMap;

use crate::aggregate::Aggregate;
use crate::clock::TimeZone;
use crate::error::{DomainError, DomainResult, Entity};
use crate::events::Event;
use crate::ids::{ContactId, FirmId, InvoiceId};
use crate::values::{Email, InvoiceNumber, Locale, Name, Url};

#[derive(Debug, Clone, Default)]
pub struct Firm {
    pub id: Option<FirmId>,
    pub name: Option<Name>,
    pub logo_url: Option<Url>,
    pub time_zone: Option<TimeZone>,
    pub locale: Option<Locale>,
    invoice_numbers: HashMap<InvoiceNumber, InvoiceId>,
    emails: HashMap<Email, ContactId>,
}

impl Aggregate for Firm {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::FirmRegistered {
                firm_id,
                name,
                logo_url,
                time_zone,
                locale,
            } => {
                self.id = Some(*firm_id);
                self.name = Some(name.clone());
                self.logo_url = logo_url.clone();
                self.time_zone = Some(*time_zone);
                self.locale = Some(locale.clone());
            }
            Event::FirmProfileUpdated { name, logo_url, .. } => {
                self.name = Some(name.clone());
                self.logo_url = logo_url.clone();
            }
            Event::InvoiceNumberReserved {
                number, invoice_id, ..
            } => {
                self.invoice_numbers.insert(number.clone(), *invoice_id);
            }
            Event::ContactEmailReserved {
                email, contact_id, ..
            } => {
                self.emails.insert(email.clone(), *contact_id);
            }
            _ => {}
        }
    }
}

impl Firm {
    pub fn register(
        &self,
        firm_id: FirmId,
        name: Name,
        logo_url: Option<Url>,
        time_zone: TimeZone,
        locale: Locale,
    ) -> DomainResult<Vec<Event>> {
        if self.id.is_some() {
            return Err(DomainError::AlreadyExists(Entity::Firm));
        }
        Ok(vec![Event::FirmRegistered {
            firm_id,
            name,
            logo_url,
            time_zone,
            locale,
        }])
    }

    pub fn update_profile(
        &self,
        firm_id: FirmId,
        name: Name,
        logo_url: Option<Url>,
    ) -> DomainResult<Vec<Event>> {
        if self.id != Some(firm_id) {
            return Err(DomainError::NotFound(Entity::Firm));
        }
        Ok(vec![Event::FirmProfileUpdated {
            firm_id,
            name,
            logo_url,
        }])
    }

    /// The firm's id, or `NotFound` when it was never registered.
    pub fn require(&self) -> DomainResult<FirmId> {
        self.id.ok_or(DomainError::NotFound(Entity::Firm))
    }

    pub fn time_zone(&self) -> TimeZone {
        self.time_zone.unwrap_or(TimeZone::UTC)
    }

    pub(crate) fn reserve_invoice_number(
        &self,
        number: &InvoiceNumber,
        invoice_id: InvoiceId,
    ) -> DomainResult<Event> {
        let firm_id = self.require()?;
        if self.invoice_numbers.contains_key(number) {
            return Err(DomainError::DuplicateInvoiceNumber(number.clone()));
        }
        Ok(Event::InvoiceNumberReserved {
            firm_id,
            number: number.clone(),
            invoice_id,
        })
    }

    pub(crate) fn reserve_email(
        &self,
        email: &Email,
        contact_id: ContactId,
    ) -> DomainResult<Event> {
        let firm_id = self.require()?;
        if self.emails.contains_key(email) {
            return Err(DomainError::DuplicateEmail);
        }
        Ok(Event::ContactEmailReserved {
            firm_id,
            email: email.clone(),
            contact_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn a_firm_registers_once() {
        let f = FirmId::new();
        given::<Firm>(&[firm_registered(f)])
            .when(|firm| {
                firm.register(
                    f,
                    name("Again"),
                    None,
                    TimeZone::UTC,
                    Locale::default_locale(),
                )
            })
            .then_error(DomainError::AlreadyExists(Entity::Firm));
    }

    #[test]
    fn the_profile_update_carries_name_and_logo() {
        let f = FirmId::new();
        let logo = Url::parse("logo_url", "https://cdn.example.com/new.png").unwrap();
        given::<Firm>(&[firm_registered(f)])
            .when(|firm| firm.update_profile(f, name("Acme & Co"), Some(logo.clone())))
            .then_events(vec![Event::FirmProfileUpdated {
                firm_id: f,
                name: name("Acme & Co"),
                logo_url: Some(logo.clone()),
            }]);
    }
}
