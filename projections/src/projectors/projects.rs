//! `projects`: each client's projects and their teams, for the dashboard's PROJECT TEAM
//! panel ("All Jobs" or one project).

use portico_domain::Event;

use crate::db::Arg;
use crate::projector::{stmt, Envelope, Projector, Stmt, TableDef};

#[derive(Debug)]
pub struct Projects;

const TABLES: &[TableDef] = &[
    TableDef {
        name: "projects",
        columns: &["project_id", "firm_id", "client_id", "name", "created_at"],
        key: &["project_id"],
    },
    TableDef {
        name: "project_team",
        columns: &[
            "project_id",
            "member_id",
            "firm_id",
            "client_id",
            "name",
            "role",
            "email",
            "assigned_at",
        ],
        key: &["project_id", "member_id"],
    },
];

const DDL: &[&str] = &[
    "CREATE TABLE {projects} (
        project_id TEXT PRIMARY KEY,
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    "CREATE INDEX {projects}_client ON {projects} (firm_id, client_id)",
    "CREATE TABLE {project_team} (
        project_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        firm_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        email TEXT NOT NULL,
        assigned_at TEXT NOT NULL,
        PRIMARY KEY (project_id, member_id)
    )",
    "CREATE INDEX {project_team}_client ON {project_team} (firm_id, client_id)",
];

impl Projector for Projects {
    fn name(&self) -> &'static str {
        "projects"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [TableDef] {
        TABLES
    }

    fn ddl(&self) -> &'static [&'static str] {
        DDL
    }

    fn apply(&self, e: &Envelope<'_>, out: &mut Vec<Stmt>) {
        match e.event {
            Event::ProjectCreated {
                firm_id,
                client_id,
                project_id,
                name,
            } => out.push(stmt(
                "INSERT INTO {projects} (project_id, firm_id, client_id, name, created_at) VALUES ($1, $2, $3, $4, $5)",
                vec![
                    project_id.to_string().into(),
                    firm_id.to_string().into(),
                    client_id.to_string().into(),
                    name.as_str().into(),
                    Arg::from(e.recorded_at),
                ],
            )),
            Event::TeamMemberAssigned {
                project_id,
                member_id,
                name,
                role,
                email,
            } => out.push(stmt(
                "INSERT INTO {project_team} (project_id, member_id, firm_id, client_id, name, role, email, assigned_at) \
                 SELECT project_id, $2, firm_id, client_id, $3, $4, $5, $6 FROM {projects} WHERE project_id = $1",
                vec![
                    project_id.to_string().into(),
                    member_id.to_string().into(),
                    name.as_str().into(),
                    role.as_str().into(),
                    email.as_str().into(),
                    Arg::from(e.recorded_at),
                ],
            )),
            Event::TeamMemberUnassigned {
                project_id,
                member_id,
            } => out.push(stmt(
                "DELETE FROM {project_team} WHERE project_id = $1 AND member_id = $2",
                vec![project_id.to_string().into(), member_id.to_string().into()],
            )),
            _ => {}
        }
    }
}
