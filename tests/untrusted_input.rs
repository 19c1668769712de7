//! The properties of `tests/properties` (shared with the cargo-fuzz targets in `fuzz/`) as
//! proptests, so that every `cargo test` checks them: each on arbitrary bytes, and on valid
//! inputs with a few random mutations, which reach further than arbitrary bytes do.
//!
//! The fuzzers run the same properties for minutes; this is the short version that keeps them
//! from regressing. `PROPTEST_CASES` raises the count.

mod properties;

use proptest::collection::vec;
use proptest::prelude::*;

/// Cases per test unless `PROPTEST_CASES` says otherwise: enough to catch a regression, few
/// enough to stay well under a second in a debug build.
const CASES: u32 = 2048;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// One edit of a seed: flip a bit, overwrite, insert or remove a byte, or cut the tail.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// A seed with up to four edits; positions are taken modulo the length.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (0..seeds.len(), vec(edit(), 0..4)).prop_map(move |(i, edits)| {
        let mut input = seeds[i].clone();
        for edit in edits {
            let len = input.len();
            match edit {
                Edit::Flip(at, bit) if len > 0 => input[at % len] ^= 1 << bit,
                Edit::Set(at, b) if len > 0 => input[at % len] = b,
                Edit::Insert(at, b) => input.insert(at % (len + 1), b),
                Edit::Remove(at) if len > 0 => {
                    input.remove(at % len);
                }
                Edit::Truncate(at) => input.truncate(at % (len + 1)),
                _ => {}
            }
        }
        input
    })
}

fn bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max_len)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_gives_the_same_ops_for_any_split_of_any_bytes(input in bytes(600)) {
        properties::parser::split_equivalence(&input);
    }

    #[test]
    fn parser_gives_the_same_ops_for_any_split_of_mutated_ops(
        input in mutated(properties::seeds::parser())
    ) {
        properties::parser::split_equivalence(&input);
    }

    #[test]
    fn connect_json_decodes_alike_alone_and_parsed_and_authorizes_exactly(
        input in prop_oneof![bytes(200), mutated(properties::seeds::connect())]
    ) {
        properties::connect::connect_json(&input);
    }

    #[test]
    fn header_blocks_read_back_what_was_built(
        input in prop_oneof![bytes(200), mutated(properties::seeds::headers())]
    ) {
        properties::headers::header_block(&input);
    }

    #[test]
    fn api_requests_are_checked_and_accepted_configs_are_fixed_points(
        input in prop_oneof![bytes(300), mutated(properties::seeds::js_api())]
    ) {
        properties::js_api::js_api_request(&input);
    }

    #[test]
    fn records_decode_checksum_valid_or_not_at_all_and_scans_account_for_every_byte(
        input in prop_oneof![bytes(300), mutated(properties::seeds::record())]
    ) {
        properties::record::segment_record(&input);
    }

    #[test]
    fn store_files_decode_to_what_encodes_back_or_are_refused(
        input in prop_oneof![bytes(200), mutated(properties::seeds::store_files())]
    ) {
        properties::store_files::store_file(&input);
    }

    #[test]
    fn meta_values_decode_or_are_corrupt_never_panic(
        input in prop_oneof![bytes(200), mutated(properties::seeds::meta_values())]
    ) {
        properties::meta_values::meta_value(&input);
    }
}

/// Writes every target's seeds into `fuzz/corpus/<target>/`, where `cargo fuzz run` starts
/// from them: `cargo test --test untrusted_input write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes the fuzzers' seed corpus; run before fuzzing"]
fn write_fuzz_seeds() -> std::io::Result<()> {
    use properties::seeds;
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let targets: [(&str, Vec<Vec<u8>>); 7] = [
        ("parser_split", seeds::parser()),
        ("connect_json", seeds::connect()),
        ("header_block", seeds::headers()),
        ("js_api_request", seeds::js_api()),
        ("segment_record", seeds::record()),
        ("store_files", seeds::store_files()),
        ("meta_values", seeds::meta_values()),
    ];
    for (target, inputs) in targets {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), input)?;
        }
    }
    Ok(())
}
