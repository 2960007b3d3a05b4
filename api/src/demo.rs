//! `--demo`: a firm with two clients, contacts, projects with their teams, and invoices
//! that are open, past due and paid, seeded through the same commands the API runs. Prints
//! the firm's API key and an invite link so a newcomer can walk the whole journey.

use chrono::Duration;
use portico_domain::client::Client;
use portico_domain::contact::{AddContact, Contact};
use portico_domain::firm::Firm;
use portico_domain::ids::{
    ClientId, ContactId, FirmId, InvoiceId, MemberId, PaymentId, ProjectId, SubmissionId,
};
use portico_domain::invoice::{Invoice, IssueInvoice};
use portico_domain::project::{Project, TeamMember};
use portico_domain::streams::StreamId;
use portico_domain::values::{Email, InvoiceNumber, Name};
use portico_domain::{Currency, Money, Scope};
use portico_store::Metadata;

use crate::auth::api_keys::FirmAuth;
use crate::commands::run;
use crate::state::AppState;

pub const FIRM_NAME: &str = "Harbor & Vale Advisory";

/// What the demo prints.
#[derive(Debug)]
pub struct Demo {
    pub firm_id: FirmId,
    pub api_key: String,
    pub invite_email: String,
    pub invite_link: String,
}

fn name(s: &str) -> anyhow::Result<Name> {
    Ok(Name::parse("name", s)?)
}

pub async fn seed(state: &AppState) -> anyhow::Result<Demo> {
    let now = state.clock.now();
    let logo = format!("{}/demo/logo.svg", state.settings.public_url);
    let (firm_id, key) = crate::firm::register_firm(
        &state.db,
        state.store.as_ref(),
        now,
        FIRM_NAME,
        Some(&logo),
        "America/New_York",
        "en-US",
    )
    .await?;
    let firm = FirmAuth { firm_id };
    let meta = Metadata::new(Some(firm_id), "demo");
    let scope = Scope::Firm(firm_id);
    let today = state
        .clock
        .today_in(portico_domain::clock::TimeZone::parse("America/New_York")?);

    let add_client = |client_name: &'static str| {
        let meta = meta.clone();
        async move {
            let client_id = ClientId::new();
            let streams = [StreamId::firm(firm_id), StreamId::client(client_id)];
            let n = name(client_name)?;
            run(state, &meta, &streams, |l| {
                l.replay::<Client>(&streams[1]).add(
                    &l.replay::<Firm>(&streams[0]),
                    client_id,
                    n.clone(),
                )
            })
            .await?;
            Ok::<_, anyhow::Error>(client_id)
        }
    };
    let northwind = add_client("Northwind Traders").await?;
    let blue_harbor = add_client("Blue Harbor Dental").await?;

    let add_contact = |client_id: ClientId, contact_name: &'static str, email: &'static str| {
        let meta = meta.clone();
        async move {
            let cmd = AddContact {
                contact_id: ContactId::new(),
                client_id,
                name: name(contact_name)?,
                email: Email::parse(email)?,
            };
            let streams = [
                StreamId::firm(firm_id),
                StreamId::client(client_id),
                StreamId::contact(cmd.contact_id),
                StreamId::contact_email(firm_id, &cmd.email),
            ];
            run(state, &meta, &streams, |l| {
                l.replay::<Contact>(&streams[2]).add(
                    &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
                    &l.replay::<Client>(&streams[1]),
                    cmd.clone(),
                )
            })
            .await?;
            Ok::<_, anyhow::Error>(cmd.contact_id)
        }
    };
    let ann = add_contact(northwind, "Ann Lee", "ann@northwind.example").await?;
    add_contact(blue_harbor, "Ben Ortiz", "ben@blueharbor.example").await?;

    let add_project = |client_id: ClientId, project_name: &'static str| {
        let meta = meta.clone();
        async move {
            let project_id = ProjectId::new();
            let streams = [
                StreamId::firm(firm_id),
                StreamId::client(client_id),
                StreamId::project(project_id),
            ];
            let n = name(project_name)?;
            run(state, &meta, &streams, |l| {
                l.replay::<Project>(&streams[2]).create(
                    &l.replay::<Firm>(&streams[0]),
                    &l.replay::<Client>(&streams[1]),
                    project_id,
                    n.clone(),
                )
            })
            .await?;
            Ok::<_, anyhow::Error>(project_id)
        }
    };
    let audit = add_project(northwind, "2026 Audit").await?;
    let tax = add_project(northwind, "Tax Advisory").await?;
    let books = add_project(blue_harbor, "Bookkeeping").await?;

    let (priya, marco, lena, sam) = (
        MemberId::new(),
        MemberId::new(),
        MemberId::new(),
        MemberId::new(),
    );
    let team = [
        (
            audit,
            priya,
            "Priya Shah",
            "Engagement Partner",
            "priya@harborvale.example",
        ),
        (
            tax,
            priya,
            "Priya Shah",
            "Engagement Partner",
            "priya@harborvale.example",
        ),
        (
            audit,
            marco,
            "Marco Diaz",
            "Audit Senior",
            "marco@harborvale.example",
        ),
        (
            tax,
            lena,
            "Lena Kim",
            "Tax Manager",
            "lena@harborvale.example",
        ),
        (
            books,
            sam,
            "Sam Park",
            "Bookkeeper",
            "sam@harborvale.example",
        ),
    ];
    for (project, member_id, member_name, role, email) in team {
        let member = TeamMember {
            name: name(member_name)?,
            role: name(role)?,
            email: Email::parse(email)?,
        };
        let stream = StreamId::project(project);
        run(state, &meta, std::slice::from_ref(&stream), |l| {
            l.replay::<Project>(&stream)
                .assign(&scope, member_id, member.clone())
        })
        .await?;
    }

    let usd = Currency::parse("USD")?;
    // (client, project, number, issued days ago, due in days (negative: past), total, paid)
    let invoices = [
        (northwind, audit, "INV-1001", 40, -10, "4250.00", false),
        (northwind, audit, "INV-1002", 5, 25, "1800.00", false),
        (northwind, tax, "INV-1003", 30, -2, "950.00", false),
        (northwind, tax, "INV-1004", 60, -30, "1200.00", true),
        (northwind, audit, "INV-1005", 1, 14, "600.00", false),
        (blue_harbor, books, "INV-2001", 3, 27, "300.00", false),
        (blue_harbor, books, "INV-2002", 45, -15, "420.00", false),
    ];
    for (client_id, project_id, number, issued_ago, due_in, total, paid) in invoices {
        let cmd = IssueInvoice {
            invoice_id: InvoiceId::new(),
            client_id,
            project_id,
            number: InvoiceNumber::parse(number)?,
            issued_on: today - Duration::days(issued_ago),
            due_on: today + Duration::days(due_in),
            total: Money::parse(total, usd)?,
        };
        let streams = [
            StreamId::firm(firm_id),
            StreamId::project(project_id),
            StreamId::invoice(cmd.invoice_id),
            StreamId::invoice_number(firm_id, &cmd.number),
        ];
        run(state, &meta, &streams, |l| {
            l.replay::<Invoice>(&streams[2]).issue(
                &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
                &l.replay::<Project>(&streams[1]),
                cmd.clone(),
            )
        })
        .await?;
        if paid {
            let stream = StreamId::invoice(cmd.invoice_id);
            let (payment_id, submission_id) = (PaymentId::new(), SubmissionId::new());
            run(state, &meta, std::slice::from_ref(&stream), |l| {
                l.replay::<Invoice>(&stream).record_offline_payment(
                    &scope,
                    payment_id,
                    submission_id,
                    cmd.total,
                )
            })
            .await?;
        }
    }

    let (_, token) = crate::firm::people::invite(state, &firm, ann).await?;
    Ok(Demo {
        firm_id,
        api_key: key.expose(),
        invite_email: "ann@northwind.example".into(),
        invite_link: format!("{}/invite/{}", state.settings.public_url, token.expose()),
    })
}
