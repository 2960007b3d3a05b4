//! One integration-test binary; each module is one area of the HTTP surface.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod health;
mod helpers;
