//! One integration-test binary; each module is one area of the HTTP surface.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod bad_input;
mod browser;
mod fuzz_bodies;
mod health;
mod helpers;
mod invites_and_login;
mod journey;
mod payments;
mod races;
mod replay;
mod session_replicas;
mod tenancy;
mod views_cache;
mod world;
