-- Every change to a session row is announced on the channel `portico_sessions`, with the
-- row's token hash ('*' when the table is truncated), so that each API process can drop
-- its checked copy of the row (api/src/auth/session_cache.rs). A trigger sends it, not
-- the application: the notice is then part of the change's own commit, and a change made
-- by hand (an operator ending a contact's sessions in psql) is announced too.
CREATE FUNCTION portico_sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('portico_sessions', '*');
    ELSE
        PERFORM pg_notify('portico_sessions', OLD.token_hash);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION portico_sessions_changed();

CREATE TRIGGER sessions_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION portico_sessions_changed();
