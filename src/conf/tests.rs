//! Each construct of the format, and each error with the line and column it names.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Map {
    parse_str(text, Path::new("test.conf"))
        .unwrap_or_else(|e| panic!("{e}"))
        .root
}

fn value(text: &str, key: &str) -> Value {
    parse(text)
        .get(key)
        .unwrap_or_else(|| panic!("no {key}"))
        .item
        .value
        .clone()
}

fn error(text: &str) -> String {
    match parse_str(text, Path::new("bad.conf")) {
        Ok(doc) => panic!("parsed: {doc:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn three_separators_assign() {
    let map = parse("a: 1\nb = 2\nc 3\n");
    let values: Vec<_> = map
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.item.value.clone()))
        .collect();
    assert_eq!(
        values,
        [
            ("a", Value::Integer(1)),
            ("b", Value::Integer(2)),
            ("c", Value::Integer(3))
        ]
    );
}

#[test]
fn comments_of_both_kinds_are_skipped() {
    let map = parse("# top\nport: 1 # after\n// slashes\nhost: h // after\n");
    assert_eq!(map.get("port").unwrap().item.value, Value::Integer(1));
    assert_eq!(
        map.get("host").unwrap().item.value,
        Value::String("h".into())
    );
}

#[test]
fn blocks_nest_and_keep_positions() {
    let map = parse("jetstream {\n  store_dir: \"/d\"\n  limits { max: 5 }\n}\n");
    let Value::Map(js) = &map.get("jetstream").unwrap().item.value else {
        panic!()
    };
    let dir = js.get("store_dir").unwrap();
    assert_eq!(dir.item.value, Value::String("/d".into()));
    assert_eq!((dir.key_position.line, dir.key_position.column), (2, 3));
    let Value::Map(limits) = &js.get("limits").unwrap().item.value else {
        panic!()
    };
    assert_eq!(limits.get("max").unwrap().item.value, Value::Integer(5));
}

#[test]
fn a_file_may_be_wrapped_in_braces() {
    assert_eq!(value("{ port: 7, host: x }", "port"), Value::Integer(7));
}

#[test]
fn arrays_take_commas_or_new_lines() {
    let Value::Array(items) = value("a: [1, \"two\", three\n 4 # c\n]", "a") else {
        panic!()
    };
    let values: Vec<_> = items.into_iter().map(|i| i.value).collect();
    assert_eq!(
        values,
        [
            Value::Integer(1),
            Value::String("two".into()),
            Value::String("three".into()),
            Value::Integer(4)
        ]
    );
}

#[test]
fn strings_quoted_raw_bare_and_block() {
    assert_eq!(
        value(r#"s: "a\tb\"c\x41""#, "s"),
        Value::String("a\tb\"cA".into())
    );
    assert_eq!(
        value(r"s: 'C:\no\escapes'", "s"),
        Value::String(r"C:\no\escapes".into())
    );
    assert_eq!(
        value("s: nats://h:4222", "s"),
        Value::String("nats://h:4222".into())
    );
    assert_eq!(
        value("s: 127.0.0.1:4222", "s"),
        Value::String("127.0.0.1:4222".into())
    );
    assert_eq!(value("s: 30s", "s"), Value::String("30s".into()));
    assert_eq!(
        value("s: (\nline one\nline (two)\n)\n", "s"),
        Value::String("\nline one\nline (two)".into())
    );
}

#[test]
fn numbers_booleans_and_sizes() {
    assert_eq!(value("n: -12", "n"), Value::Integer(-12));
    assert_eq!(value("n: 1.5", "n"), Value::Float(1.5));
    assert_eq!(value("n: 64MB", "n"), Value::Integer(64 << 20));
    assert_eq!(value("n: 1GB", "n"), Value::Integer(1 << 30));
    assert_eq!(value("n: 512KB", "n"), Value::Integer(512 << 10));
    assert_eq!(value("n: 2k", "n"), Value::Integer(2000));
    for (word, expected) in [
        ("true", true),
        ("YES", true),
        ("on", true),
        ("false", false),
        ("No", false),
        ("off", false),
    ] {
        assert_eq!(
            value(&format!("b: {word}"), "b"),
            Value::Bool(expected),
            "{word}"
        );
    }
    let map = parse("d: 2m\n");
    let item = &map.get("d").unwrap().item;
    assert_eq!(item.value, Value::Integer(2_000_000));
    assert_eq!(item.literal.as_deref(), Some("2m"));
}

#[test]
fn terminators_and_repeated_keys() {
    let map = parse("a: 1; b: 2, c: 3\na: 4\n");
    assert_eq!(map.get("a").unwrap().item.value, Value::Integer(4));
    let effective: Vec<_> = map.effective().map(|e| e.key.as_str()).collect();
    assert_eq!(effective, ["b", "c", "a"]);
}

#[test]
fn variables_come_from_enclosing_blocks_then_the_environment() {
    let doc = parse_str(
        "PORT: 4333\nport: $PORT\nb { x: 1, y: $x, z: $PORT }\n",
        Path::new("v.conf"),
    )
    .unwrap();
    assert_eq!(
        doc.root.get("port").unwrap().item.value,
        Value::Integer(4333)
    );
    let Value::Map(b) = &doc.root.get("b").unwrap().item.value else {
        panic!()
    };
    assert_eq!(b.get("y").unwrap().item.value, Value::Integer(1));
    assert_eq!(b.get("z").unwrap().item.value, Value::Integer(4333));
    assert!(doc.used_variables.contains(&"PORT".to_string()));
    // The name is unique to this test, so setting it cannot disturb another test.
    std::env::set_var("JETLOG_CONF_TEST_SIZE", "2MB");
    assert_eq!(
        value("n: $JETLOG_CONF_TEST_SIZE", "n"),
        Value::Integer(2 << 20)
    );
    assert_eq!(
        value("p: $2a$11$abc", "p"),
        Value::String("$2a$11$abc".into())
    );
}

#[test]
fn includes_are_relative_to_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("main.conf"),
        "port: 1\ninclude 'sub/a.conf'\nj { include b.conf }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sub/a.conf"), "host: \"h\"\n").unwrap();
    std::fs::write(dir.path().join("b.conf"), "store_dir: /x\n").unwrap();
    let doc = parse_file(&dir.path().join("main.conf")).unwrap();
    assert_eq!(
        doc.root.get("host").unwrap().item.value,
        Value::String("h".into())
    );
    let Value::Map(j) = &doc.root.get("j").unwrap().item.value else {
        panic!()
    };
    let dir_entry = j.get("store_dir").unwrap();
    assert!(dir_entry.key_position.file.ends_with("b.conf"));
}

#[test]
fn include_cycles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conf"), "x: 1\ninclude b.conf\n").unwrap();
    std::fs::write(dir.path().join("b.conf"), "\n  include \"a.conf\"\n").unwrap();
    let err = parse_file(&dir.path().join("a.conf")).unwrap_err();
    assert!(matches!(err, ConfError::IncludeCycle { .. }), "{err}");
    let at = err.position().unwrap();
    assert!(at.file.ends_with("b.conf"));
    assert_eq!((at.line, at.column), (2, 3));
}

#[test]
fn a_missing_include_names_the_include_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conf"), "x: 1\ninclude nope.conf\n").unwrap();
    let err = parse_file(&dir.path().join("a.conf")).unwrap_err();
    assert!(
        err.to_string()
            .contains("a.conf:2:1: cannot read included file"),
        "{err}"
    );
}

#[test]
fn errors_name_file_line_and_column() {
    for (text, expected) in [
        (
            "port: 1\nhost: \"open\n",
            "bad.conf:2:7: unterminated string",
        ),
        ("a {\n b: 1\n", "bad.conf:1:3: block is never closed"),
        ("a: [1, 2\n", "bad.conf:1:4: array is never closed"),
        ("a: [1,, 2]\n", "bad.conf:1:7: unexpected ','"),
        ("port: 1 2\n", "bad.conf:1:9: expected a new line"),
        ("x: 1\n: 2\n", "bad.conf:2:1: unexpected key separator"),
        ("x:\n", "bad.conf:1:3: expected a value for \"x\""),
        ("x: \"\\q\"\n", "bad.conf:1:6: invalid escape"),
        (
            "x: 99999999999999999999\n",
            "bad.conf:1:4: integer 99999999999999999999 is out of range",
        ),
        (
            "x: 9999999999999GB\n",
            "bad.conf:1:4: size 9999999999999GB is out of range",
        ),
        ("x: -a\n", "bad.conf:1:5: expected a digit after '-'"),
        ("x: (\nno end\n", "bad.conf:1:4: unterminated block string"),
        ("}\nport: 1\n", "bad.conf:1:1: unexpected '}'"),
        ("a { b: 1 }\n}\nport: 1\n", "bad.conf:2:1: unexpected '}'"),
        ("x:\n{ a: 1 }\n", "bad.conf:1:3: expected a value for \"x\""),
        (
            "x\n# note\n{ a: 1 }\n",
            "bad.conf:2:1: expected a value for \"x\"",
        ),
    ] {
        let message = error(text);
        assert!(message.starts_with(expected), "{text:?}: {message}");
    }
}

/// Files nats-server accepts although they look wrong (found by the clients' test suites,
/// checked against nats-server 2.9.10's `-t`).
#[test]
fn nats_servers_lenient_shapes_are_read_as_it_reads_them() {
    // A block opening on the line after its key, when no separator stands between them.
    let block = value("websocket\n{\n  port: 8080\n}\n", "websocket");
    let Value::Map(map) = block else {
        panic!("not a block: {block:?}")
    };
    assert_eq!(
        map.get("port").map(|e| &e.item.value),
        Some(&Value::Integer(8080))
    );
    assert_eq!(value("port\n\n4222\n", "port"), Value::Integer(4222));
    // One stray closer after the last entry, and a `}` ending a top-level value.
    for text in [
        "port: 4222\n}\n",
        "port: 4222\n]\n",
        "port: 4222 }\n",
        "jetstream {\n  max_mem: 1G\n}}\nport: 4222\n",
        "port: 4222\n}\n# trailing comment\n",
        "}\n",
    ] {
        let map = parse(text);
        assert_eq!(
            map.get("port").map(|e| &e.item.value),
            (text != "}\n").then_some(&Value::Integer(4222)),
            "{text:?}"
        );
    }
}

#[test]
fn an_undefined_variable_is_an_error_at_its_reference() {
    let message = error("a: 1\nb: $JETLOG_CONF_TEST_UNDEFINED_VARIABLE\n");
    assert!(
        message.starts_with("bad.conf:2:4: variable $JETLOG_CONF_TEST_UNDEFINED_VARIABLE"),
        "{message}"
    );
}

#[test]
fn nesting_is_bounded() {
    let text = format!(
        "a: {}{}\n",
        "[".repeat(MAX_NESTING_DEPTH + 1),
        "]".repeat(MAX_NESTING_DEPTH + 1)
    );
    assert!(error(&text).contains("nest deeper"));
}
