//! End-to-end tests live in `tests/api/`: each spawns the real server on port 0 with a
//! fresh database and drives it over HTTP.
