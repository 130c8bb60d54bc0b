//! Runs the unit tests of the module's pure files. A test binary of the module crate
//! itself cannot run (its global allocator is Redis's, absent from a test process), so
//! each such file is compiled into this test as well.

#[path = "../src/error_text.rs"]
mod error_text;
