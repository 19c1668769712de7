use super::*;

fn map(src: &str, dest: &str, subject: &str) -> Option<String> {
    SubjectTransform::new(src, dest)
        .unwrap_or_else(|e| panic!("{src} -> {dest}: {e}"))
        .apply(subject)
}

fn refusal(src: &str, dest: &str) -> String {
    SubjectTransform::new(src, dest)
        .expect_err(&format!("{src} -> {dest} must be refused"))
        .to_string()
}

#[test]
fn wildcards_and_rest_as_nats_server_maps_them() {
    assert_eq!(
        map("s.*.*", "o.$2.{{wildcard(1)}}", "s.A.B").as_deref(),
        Some("o.B.A")
    );
    assert_eq!(
        map("s.*.>", "o.$1.>", "s.A.b.c").as_deref(),
        Some("o.A.b.c")
    );
    assert_eq!(map("s.*.>", "o.>", "s.A.b.c").as_deref(), Some("o.b.c"));
    assert_eq!(map("", "o.>", "s23.a.b").as_deref(), Some("o.s23.a.b"));
    assert_eq!(
        map(
            "s1.*",
            "o1.$0.{{wildcard(0)}}.{{wildcard(-1)}}.$x.$1.$1",
            "s1.X"
        )
        .as_deref(),
        Some("o1.s1.s1.s1.$x.X.X")
    );
    assert_eq!(
        map("s21.*", "o21.$1", "s21.a.b"),
        None,
        "no match keeps the subject"
    );
    assert_eq!(
        map(
            "s22.*",
            "o22.{{ wildcard ( 1 ) }}.{{partition(3, 1)}}.{{ SplitFromLeft(1, 1) }}",
            "s22.ab"
        )
        .as_deref(),
        Some("o22.ab.0.a.b")
    );
}

#[test]
fn partitions_hash_like_go_fnv1a() {
    let p = |subject| map("s.*.*", "o.{{partition(3,1,2)}}", subject);
    assert_eq!(p("s.a.b").as_deref(), Some("o.0"));
    assert_eq!(p("s.ab.c").as_deref(), Some("o.2"));
    assert_eq!(p("s.foo.bar").as_deref(), Some("o.1"));
    assert_eq!(
        map("s.*.*", "o.{{partition(3,2,1)}}", "s.a.b").as_deref(),
        Some("o.2")
    );
    assert_eq!(
        map("s4.>", "o.{{partition(10)}}.>", "s4.a.b").as_deref(),
        Some("o.5.a.b")
    );
    assert_eq!(
        map("s.*.*", "{{partition(1000000,1,2)}}", "s.foo.bar").as_deref(),
        Some("735720")
    );
    assert_eq!(
        map("s6.lit", "o6.{{partition(10,1)}}", "s6.lit").as_deref(),
        Some("o6.7")
    );
    assert_eq!(
        map("s7.*", "o7.{{partition(0,1)}}.{{random(0)}}", "s7.x").as_deref(),
        Some("o7.0.0")
    );
    let r: u32 = map("s.*", "{{random(3)}}", "s.x").unwrap().parse().unwrap();
    assert!(r < 3);
}

#[test]
fn splitting_and_slicing_tokens() {
    let f = |dest: &str, token: &str| map("s.*", dest, &format!("s.{token}")).unwrap();
    assert_eq!(f("{{split(1,-)}}", "a-b-c"), "a.b.c");
    assert_eq!(f("{{split(1,-)}}", "-a--b-"), "a.b");
    assert_eq!(f("{{split(1,ab)}}", "xabyabz"), "x.y.z");
    assert_eq!(f("{{splitFromLeft(1,2)}}", "abcdef"), "ab.cdef");
    assert_eq!(f("{{splitFromLeft(1,2)}}", "ab"), "ab");
    assert_eq!(f("{{splitFromRight(1,2)}}", "abcdef"), "abcd.ef");
    assert_eq!(f("{{splitFromRight(1,2)}}", "abc"), "a.bc");
    assert_eq!(f("{{sliceFromLeft(1,2)}}", "abcde"), "ab.cd.e");
    assert_eq!(f("{{sliceFromLeft(1,3)}}", "abcdefgh"), "abc.def.gh");
    assert_eq!(f("{{sliceFromRight(1,2)}}", "abcde"), "a.bc.de");
    assert_eq!(f("{{sliceFromRight(1,3)}}", "abcdefgh"), "ab.cde.fgh");
    assert_eq!(f("{{sliceFromRight(1,2)}}", "ab"), "ab");
    assert_eq!(f("{{left(1,2)}}", "abcde"), "ab");
    assert_eq!(f("{{right(1,2)}}", "abcde"), "de");
    assert_eq!(f("{{left(1,-1)}}", "abc"), "abc");
    assert_eq!(f("{{sliceFromLeft(1,0)}}", "abc"), "abc");
    assert_eq!(f("{{splitfromleft(1,1)}}", "ab"), "a.b");
}

#[test]
fn invalid_transforms_get_nats_server_texts() {
    let dest = |s: &str| format!("invalid mapping destination: {s}");
    let cases = [
        (
            "a.*",
            "b.$2",
            dest("wildcard index out of range in $2: [2]"),
        ),
        (
            "a.*",
            "b.{{partition(3,2)}}",
            dest("wildcard index out of range in {{partition(3,2)}}: [2]"),
        ),
        ("a", "b.$1", dest("wildcard index out of range in $1")),
        (
            "a",
            "b.{{split(1,-)}}",
            dest("wildcard index out of range in {{split(1,-)}}"),
        ),
        ("a.>", "b.$1", "invalid subject".to_string()),
        ("a.*", "b.>", "invalid subject".to_string()),
        ("", "b", "invalid subject".to_string()),
        ("a.>", "b.>.c", dest("invalid transform in c")),
        ("a.*", "b..c", dest("invalid transform")),
        ("a.*", "b c", dest("invalid transform")),
        (
            "a.*",
            "b.{{foo(1)}}",
            dest("unknown function in {{foo(1)}}"),
        ),
        (
            "a.*",
            "b.{{WILDCARD(1)}}",
            dest("unknown function in {{WILDCARD(1)}}"),
        ),
        (
            "a.*",
            "b.{{wildcard()}}",
            dest("not enough arguments passed to the function in {{wildcard()}}"),
        ),
        (
            "a.*",
            "b.{{wildcard(1,2)}}",
            dest("too many arguments passed to the function in {{wildcard(1,2)}}"),
        ),
        (
            "a.*",
            "b.{{wildcard(x)}}",
            dest("function argument is invalid or in the wrong format in {{wildcard(x)}}"),
        ),
        (
            "a.*",
            "b.{{partition()}}",
            dest("function argument is invalid or in the wrong format in {{partition()}}"),
        ),
        (
            "a.*",
            "b.{{split(1)}}",
            dest("not enough arguments passed to the function in {{split(1)}}"),
        ),
        (
            "a.*",
            "b.{{split(1,a b)}}",
            dest("function argument is invalid or in the wrong format in {{split(1,a b)}}"),
        ),
        (
            "a.*",
            "b.{{splitFromLeft(1)}}",
            dest("not enough arguments passed to the function in {{splitFromLeft(1)}}"),
        ),
        (
            "a.*",
            "b.{{random(1,2)}}",
            dest("not enough arguments passed to the function in {{random(1,2)}}"),
        ),
        (
            "a.*",
            "b.{{random()}}",
            dest("function argument is invalid or in the wrong format in {{random()}}"),
        ),
    ];
    for (src, d, want) in cases {
        assert_eq!(refusal(src, d), want, "{src} -> {d}");
    }
    for (src, d) in [
        ("a.*", "b.$1.$1"),
        ("a.*", "b"),
        ("a.*", "b.$0"),
        ("a.*", "b.$x"),
        ("a", "b.{{partition(3)}}"),
        ("a", "b.{{random(3)}}"),
        ("", "b.>"),
    ] {
        assert!(SubjectTransform::new(src, d).is_ok(), "{src} -> {d}");
    }
    assert!(!is_valid_source("a. b") && !is_valid_source("a..b") && is_valid_source("a.*.>"));
}
