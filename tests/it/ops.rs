//! End-to-end tests: ops.
