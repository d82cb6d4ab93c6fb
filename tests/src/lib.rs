//! Cross-crate end-to-end tests live in `tests/tests/`; this library holds only shared test harness code.
