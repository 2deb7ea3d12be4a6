//! Integration tests of the dispatcher against the real RabbitMQ, PostgreSQL and Redis, with
//! real HTTP receivers on 127.0.0.1. Each test has its own database and namespace.

mod dead_letter;
mod delivery;
mod helpers;
mod jobs;
mod ordering;
mod outcomes;
mod reconnect;
mod ssrf;
