//! End-to-end tests: api.
