//! `projects`: each client's projects and their teams, for the dashboard's PROJECT TEAM
//! panel ("All Jobs" or one project).

use std::collections::HashMap;

use portico_domain::ids::{ClientId, FirmId, MemberId, ProjectId};
use portico_domain::Event;

use crate::db::Arg;
use crate::memory::{insert_new, sorted, Cell, MemoryFold, RowSink};
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

    fn memory(&self) -> Option<Box<dyn MemoryFold>> {
        Some(Box::<ProjectsMemory>::default())
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

/// Projects and teams, folded in memory for a rebuild (see [`crate::memory`]).
#[derive(Debug, Default)]
pub struct ProjectsMemory {
    projects: HashMap<ProjectId, ProjectRow>,
    team: HashMap<(ProjectId, MemberId), Box<MemberRow>>,
}

#[derive(Debug)]
struct ProjectRow {
    firm_id: FirmId,
    client_id: ClientId,
    name: Box<str>,
    created_at: Box<str>,
}

#[derive(Debug)]
struct MemberRow {
    firm_id: FirmId,
    client_id: ClientId,
    name: Box<str>,
    role: Box<str>,
    email: Box<str>,
    assigned_at: Box<str>,
}

impl MemoryFold for ProjectsMemory {
    fn apply(&mut self, e: &Envelope<'_>) -> Result<(), String> {
        match e.event {
            Event::ProjectCreated {
                firm_id,
                client_id,
                project_id,
                name,
            } => {
                let row = ProjectRow {
                    firm_id: *firm_id,
                    client_id: *client_id,
                    name: name.as_str().into(),
                    created_at: e.recorded_at.into(),
                };
                insert_new(&mut self.projects, "projects", *project_id, row)?;
            }
            Event::TeamMemberAssigned {
                project_id,
                member_id,
                name,
                role,
                email,
            } => {
                // As the statement's `INSERT ... SELECT ... FROM projects`: no project, no row.
                if let Some(p) = self.projects.get(project_id) {
                    let row = MemberRow {
                        firm_id: p.firm_id,
                        client_id: p.client_id,
                        name: name.as_str().into(),
                        role: role.as_str().into(),
                        email: email.as_str().into(),
                        assigned_at: e.recorded_at.into(),
                    };
                    insert_new(
                        &mut self.team,
                        "project_team",
                        (*project_id, *member_id),
                        Box::new(row),
                    )?;
                }
            }
            Event::TeamMemberUnassigned {
                project_id,
                member_id,
            } => {
                self.team.remove(&(*project_id, *member_id));
            }
            _ => {}
        }
        Ok(())
    }

    fn rows(&self, table: &str, sink: &mut RowSink<'_>) -> Result<(), String> {
        match table {
            "projects" => sorted(&self.projects, sink, |id, p, sink| {
                sink(&[
                    Cell::Id(id.as_uuid()),
                    Cell::Id(p.firm_id.as_uuid()),
                    Cell::Id(p.client_id.as_uuid()),
                    Cell::Text(&p.name),
                    Cell::Text(&p.created_at),
                ])
            }),
            "project_team" => sorted(&self.team, sink, |(project, member), m, sink| {
                sink(&[
                    Cell::Id(project.as_uuid()),
                    Cell::Id(member.as_uuid()),
                    Cell::Id(m.firm_id.as_uuid()),
                    Cell::Id(m.client_id.as_uuid()),
                    Cell::Text(&m.name),
                    Cell::Text(&m.role),
                    Cell::Text(&m.email),
                    Cell::Text(&m.assigned_at),
                ])
            }),
            other => Err(format!("projects has no table {other}")),
        }
    }
}
