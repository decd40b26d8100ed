//! Random sequences of storage operations on `Overlay` over a populated
//! lower store against the reference model of `tests/model`, eight input
//! bytes an operation: equal outcomes, the whole tree compared after each
//! operation, and the budget back at its start once everything is removed
//! and the overlay reset.

#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    model::Checker::run_on(model::Store::Overlay, &model::Op::decode(data));
});
