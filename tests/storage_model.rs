//! The model check of `tests/model/mod.rs` as a property test: random
//! sequences of storage operations on `MemFs`, and on `Overlay` over a
//! populated lower store, against the reference model, with shrinking to
//! the shortest failing sequence.

mod model;

use model::{Checker, Op, RECORD, Store};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memfs_agrees_with_the_model(data in prop::collection::vec(any::<u8>(), 0..RECORD * 100)) {
        Checker::run(&Op::decode(&data));
    }

    #[test]
    fn overlay_agrees_with_the_model(data in prop::collection::vec(any::<u8>(), 0..RECORD * 100)) {
        Checker::run_on(Store::Overlay, &Op::decode(&data));
    }
}
