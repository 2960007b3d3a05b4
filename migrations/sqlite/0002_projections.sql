-- One row per projector (and one per blue/green rebuild in progress, named
-- "<projector>#rebuild"): how far it has applied $all, which code version built its
-- tables and which generation of tables is live. Read-model tables themselves are
-- created by the projectors (projections/src/projectors/): they are disposable, rebuilt
-- from the log, and a rebuild creates them under new names beside the live ones.
CREATE TABLE projections (
    name       TEXT    PRIMARY KEY,
    position   BIGINT  NOT NULL,
    version    INTEGER NOT NULL,
    generation BIGINT  NOT NULL,
    updated_at TEXT    NOT NULL
);
