//! Plausible histories, generated through the domain: every event comes from a decide
//! function on the aggregate's real state and is appended at the version it was decided
//! on. Tests use small seeded histories; the benchmark uses big ones.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use portico_domain::aggregate::{Aggregate, Scope};
use portico_domain::client::Client;
use portico_domain::clock::TimeZone;
use portico_domain::contact::{AddContact, Contact};
use portico_domain::firm::Firm;
use portico_domain::ids::*;
use portico_domain::invoice::{Invoice, IssueInvoice, PaymentStatus};
use portico_domain::project::{Project, TeamMember};
use portico_domain::streams::StreamId;
use portico_domain::submission::{submit, PaymentLine};
use portico_domain::values::{Email, InvoiceNumber, Locale, Name};
use portico_domain::{Currency, DomainResult, Event, Money};
use portico_store::{AppendStream, EventStore, ExpectedVersion, Metadata, NewEvent, StoreResult};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[derive(Debug)]
pub struct Simulation {
    rng: StdRng,
    streams: HashMap<StreamId, (i64, Vec<Event>)>,
    /// Firm streams grow with every invoice and contact; their state is kept folded so a
    /// decision does not replay them.
    firm_states: HashMap<FirmId, Firm>,
    firms: Vec<FirmId>,
    clients: Vec<(FirmId, ClientId)>,
    projects: Vec<(FirmId, ClientId, ProjectId)>,
    contacts: Vec<(FirmId, ContactId)>,
    invoices: Vec<(FirmId, ClientId, InvoiceId)>,
    members: Vec<(MemberId, TeamMember)>,
    today: NaiveDate,
    now: DateTime<Utc>,
    counter: u64,
}

/// Names the simulation makes up ("Client 12") are always valid.
#[allow(clippy::expect_used)]
fn name(s: &str) -> Name {
    Name::parse("name", s).expect("generated names are short and printable")
}

impl Simulation {
    pub fn new(seed: u64) -> Self {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
            .single()
            .unwrap_or_default();
        Self {
            rng: StdRng::seed_from_u64(seed),
            streams: HashMap::new(),
            firm_states: HashMap::new(),
            firms: Vec::new(),
            clients: Vec::new(),
            projects: Vec::new(),
            contacts: Vec::new(),
            invoices: Vec::new(),
            members: Vec::new(),
            today: start.date_naive(),
            now: start,
            counter: 0,
        }
    }

    /// The simulated calendar date (invoices are issued "today").
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    pub fn firms(&self) -> &[FirmId] {
        &self.firms
    }

    pub fn clients(&self) -> &[(FirmId, ClientId)] {
        &self.clients
    }

    fn firm(&self, firm_id: FirmId) -> &Firm {
        static EMPTY: std::sync::OnceLock<Firm> = std::sync::OnceLock::new();
        self.firm_states
            .get(&firm_id)
            .unwrap_or_else(|| EMPTY.get_or_init(Firm::default))
    }

    fn replay<A: Aggregate>(&self, stream: &StreamId) -> A {
        self.streams
            .get(stream)
            .map_or_else(A::default, |(_, events)| A::replay(events))
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Runs `commands` accepted commands against `store`; returns the events appended.
    pub async fn run<S: EventStore + ?Sized>(
        &mut self,
        store: &S,
        commands: usize,
    ) -> StoreResult<u64> {
        let mut events = 0;
        let mut done = 0;
        while done < commands {
            let Some((firm, decided)) = self.decide() else {
                continue;
            };
            events += decided.len() as u64;
            self.append(store, firm, decided).await?;
            done += 1;
        }
        Ok(events)
    }

    /// The next accepted command's events, or `None` when the pick was refused.
    pub fn decide(&mut self) -> Option<(FirmId, Vec<Event>)> {
        if self.rng.gen_bool(0.1) {
            self.today += Duration::days(self.rng.gen_range(0..3));
        }
        let roll = self.rng.gen_range(0..100);
        let decided = if self.firms.is_empty() || (roll < 2 && self.firms.len() < 4) {
            self.register_firm()
        } else if self.clients.is_empty() || roll < 8 {
            self.add_client()
        } else if self.projects.is_empty() || roll < 14 {
            self.create_project()
        } else if roll < 20 {
            self.team_change()
        } else if roll < 28 {
            self.contact_change()
        } else if self.invoices.is_empty() || roll < 50 {
            self.issue_invoice()
        } else if roll < 72 {
            self.pay()
        } else if roll < 95 {
            self.settle_or_fail()
        } else if roll < 97 {
            self.refund()
        } else {
            self.void()
        };
        decided.ok().filter(|(_, e)| !e.is_empty())
    }

    async fn append<S: EventStore + ?Sized>(
        &mut self,
        store: &S,
        firm: FirmId,
        events: Vec<Event>,
    ) -> StoreResult<()> {
        let meta = Metadata::new(Some(firm), "simulation");
        let mut plan: Vec<AppendStream> = Vec::new();
        for e in &events {
            let stream = e.stream_id();
            let new = NewEvent::from_domain(e, meta.clone());
            if let Some(s) = plan.iter_mut().find(|s| s.stream_id == stream) {
                s.events.push(new);
            } else {
                let version = self.streams.get(&stream).map(|(v, _)| *v);
                plan.push(AppendStream {
                    stream_id: stream,
                    expected: ExpectedVersion::from_last_seen(version),
                    events: vec![new],
                });
            }
        }
        store.append(plan).await?;
        for e in events {
            let entry = self
                .streams
                .entry(e.stream_id())
                .or_insert((-1, Vec::new()));
            entry.0 += 1;
            if let Event::FirmRegistered { .. }
            | Event::FirmProfileUpdated { .. }
            | Event::InvoiceNumberReserved { .. }
            | Event::ContactEmailReserved { .. } = e
            {
                // A firm stream's version is all the plan needs; its state is kept folded.
                self.firm_states.entry(firm).or_default().apply(&e);
                continue;
            }
            entry.1.push(e);
        }
        self.now += Duration::seconds(1);
        Ok(())
    }

    fn register_firm(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let firm = FirmId::new();
        let n = self.next_id();
        let zone = ["UTC", "America/New_York", "Europe/London"][self.rng.gen_range(0..3)];
        let events = Firm::default().register(
            firm,
            name(&format!("Firm {n}")),
            None,
            TimeZone::parse(zone).unwrap_or(TimeZone::UTC),
            Locale::default_locale(),
        )?;
        self.firms.push(firm);
        Ok((firm, events))
    }

    fn add_client(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let firm_id = *self.firms.choose(&mut self.rng).unwrap_or(&self.firms[0]);
        let client_id = ClientId::new();
        let n = self.next_id();
        let events =
            Client::default().add(self.firm(firm_id), client_id, name(&format!("Client {n}")))?;
        self.clients.push((firm_id, client_id));
        Ok((firm_id, events))
    }

    fn create_project(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let (firm_id, client_id) = *self
            .clients
            .choose(&mut self.rng)
            .unwrap_or(&self.clients[0]);
        let project_id = ProjectId::new();
        let n = self.next_id();
        let events = Project::default().create(
            self.firm(firm_id),
            &self.replay(&StreamId::client(client_id)),
            project_id,
            name(&format!("Project {n}")),
        )?;
        self.projects.push((firm_id, client_id, project_id));
        Ok((firm_id, events))
    }

    fn team_change(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let (firm_id, _, project_id) = *self
            .projects
            .choose(&mut self.rng)
            .unwrap_or(&self.projects[0]);
        let project: Project = self.replay(&StreamId::project(project_id));
        let scope = Scope::Firm(firm_id);
        if !project.team.is_empty() && self.rng.gen_bool(0.2) {
            let member = *project.team.keys().next().unwrap_or(&MemberId::new());
            return Ok((firm_id, project.unassign(&scope, member)?));
        }
        if self.members.len() < 12 || self.rng.gen_bool(0.2) {
            let n = self.next_id();
            let role = ["Partner", "Manager", "Senior", "Associate"][self.rng.gen_range(0..4)];
            self.members.push((
                MemberId::new(),
                TeamMember {
                    name: name(&format!("Member {n}")),
                    role: name(role),
                    email: Email::parse(&format!("member{n}@firm.example"))
                        .map_err(portico_domain::DomainError::from)?,
                },
            ));
        }
        let (member_id, member) = self
            .members
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_else(|| self.members[0].clone());
        Ok((firm_id, project.assign(&scope, member_id, member)?))
    }

    fn contact_change(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        if self.contacts.is_empty() || self.rng.gen_bool(0.3) {
            let (firm_id, client_id) = *self
                .clients
                .choose(&mut self.rng)
                .unwrap_or(&self.clients[0]);
            let contact_id = ContactId::new();
            let n = self.next_id();
            let events = Contact::default().add(
                self.firm(firm_id),
                &self.replay(&StreamId::client(client_id)),
                AddContact {
                    contact_id,
                    client_id,
                    name: name(&format!("Contact {n}")),
                    email: Email::parse(&format!("contact{n}@client.example"))?,
                },
            )?;
            self.contacts.push((firm_id, contact_id));
            return Ok((firm_id, events));
        }
        let (firm_id, contact_id) = *self
            .contacts
            .choose(&mut self.rng)
            .unwrap_or(&self.contacts[0]);
        let contact: Contact = self.replay(&StreamId::contact(contact_id));
        let scope = Scope::Firm(firm_id);
        let events = match (contact.invite, self.rng.gen_range(0..10)) {
            (Some(invite), 0..=5) => contact.accept_invite(invite.id, self.now)?,
            (Some(_), 6) => contact.revoke_invite(&scope)?,
            (_, 7) if contact.has_account => contact.change_password(&scope)?,
            (_, 8) => contact.deactivate(&scope)?,
            _ => contact.send_invite(&scope, InviteId::new(), self.now)?,
        };
        Ok((firm_id, events))
    }

    fn issue_invoice(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let (firm_id, client_id, project_id) = *self
            .projects
            .choose(&mut self.rng)
            .unwrap_or(&self.projects[0]);
        let invoice_id = InvoiceId::new();
        let n = self.next_id();
        let code = if self.rng.gen_bool(0.8) { "USD" } else { "JPY" };
        let currency = Currency::parse(code)?;
        let minor = self.rng.gen_range(1..500_000);
        let due_on = self.today + Duration::days(self.rng.gen_range(0..45));
        let events = Invoice::default().issue(
            self.firm(firm_id),
            &self.replay(&StreamId::project(project_id)),
            IssueInvoice {
                invoice_id,
                client_id,
                project_id,
                number: InvoiceNumber::parse(&format!("INV-{n:06}"))?,
                issued_on: self.today,
                due_on,
                total: Money::from_minor(minor, currency)?,
            },
        )?;
        self.invoices.push((firm_id, client_id, invoice_id));
        Ok((firm_id, events))
    }

    fn pay(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let (firm_id, client_id, first) = *self
            .invoices
            .choose(&mut self.rng)
            .unwrap_or(&self.invoices[0]);
        let mut picked = vec![first];
        for _ in 0..self.rng.gen_range(0..3) {
            let (_, c, i) = *self
                .invoices
                .choose(&mut self.rng)
                .unwrap_or(&self.invoices[0]);
            if c == client_id && !picked.contains(&i) {
                picked.push(i);
            }
        }
        let states: Vec<Invoice> = picked
            .iter()
            .map(|i| self.replay(&StreamId::invoice(*i)))
            .collect();
        let partial = self.rng.gen_bool(0.2);
        let mut lines = Vec::new();
        for inv in &states {
            let Some(available) = inv.available() else {
                continue;
            };
            let amount = if partial && available.minor_units() > 1 {
                Money::from_minor(available.minor_units() / 2, available.currency())?
            } else {
                available
            };
            lines.push(PaymentLine {
                invoice: inv,
                payment_id: PaymentId::new(),
                amount,
            });
        }
        let scope = Scope::Client { firm_id, client_id };
        Ok((
            firm_id,
            submit(&scope, SubmissionId::new(), "card", &lines)?,
        ))
    }

    fn pick_payment(&mut self, status: PaymentStatus) -> Option<(FirmId, InvoiceId, PaymentId)> {
        for _ in 0..8 {
            let (firm_id, _, invoice_id) = *self.invoices.choose(&mut self.rng)?;
            let inv: Invoice = self.replay(&StreamId::invoice(invoice_id));
            if let Some((p, _)) = inv.payments.iter().find(|(_, p)| p.status == status) {
                return Some((firm_id, invoice_id, *p));
            }
        }
        None
    }

    fn settle_or_fail(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let Some((firm_id, invoice_id, payment_id)) = self.pick_payment(PaymentStatus::Submitted)
        else {
            return Ok((FirmId::new(), vec![]));
        };
        let inv: Invoice = self.replay(&StreamId::invoice(invoice_id));
        let events = if self.rng.gen_bool(0.85) {
            inv.settle(payment_id)?
        } else {
            inv.fail(payment_id, "card declined".into())?
        };
        Ok((firm_id, events))
    }

    fn refund(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        let Some((firm_id, invoice_id, payment_id)) = self.pick_payment(PaymentStatus::Settled)
        else {
            return Ok((FirmId::new(), vec![]));
        };
        let inv: Invoice = self.replay(&StreamId::invoice(invoice_id));
        let Some(payment) = inv.payments.get(&payment_id) else {
            return Ok((firm_id, vec![]));
        };
        let left = payment.amount.minor_units() - payment.refunded.minor_units();
        if left <= 0 {
            return Ok((firm_id, vec![]));
        }
        let amount = Money::from_minor(self.rng.gen_range(1..=left), payment.amount.currency())?;
        Ok((
            firm_id,
            inv.refund(&Scope::Firm(firm_id), payment_id, amount)?,
        ))
    }

    fn void(&mut self) -> DomainResult<(FirmId, Vec<Event>)> {
        // Firms void invoices nobody has paid on; look for one.
        for _ in 0..8 {
            let (firm_id, _, invoice_id) = *self
                .invoices
                .choose(&mut self.rng)
                .unwrap_or(&self.invoices[0]);
            let inv: Invoice = self.replay(&StreamId::invoice(invoice_id));
            if inv.payments.is_empty() && !inv.voided {
                return Ok((
                    firm_id,
                    inv.void(&Scope::Firm(firm_id), "issued in error".into())?,
                ));
            }
        }
        Ok((FirmId::new(), vec![]))
    }
}
