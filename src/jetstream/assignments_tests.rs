use super::*;

fn stream(account: &str, name: &str, config: &str, peers: &[&str]) -> StreamAssignment {
    StreamAssignment {
        account: account.into(),
        name: name.into(),
        config: config.into(),
        placement: Placement {
            group: if peers.len() > 1 {
                format!("S-R{}F-test", peers.len())
            } else {
                String::new()
            },
            peers: peers.iter().map(|p| p.to_string()).collect(),
            preferred: peers.first().map(|p| p.to_string()),
        },
        created_ns: 1,
        consumers: BTreeMap::new(),
    }
}

fn consumer(name: &str, config: &str) -> ConsumerAssignment {
    ConsumerAssignment {
        name: name.into(),
        config: config.into(),
        placement: Placement {
            group: String::new(),
            peers: vec!["n1".into()],
            preferred: None,
        },
        created_ns: 2,
    }
}

fn assign(s: StreamAssignment) -> MetaCommand {
    MetaCommand::AssignStream {
        stream: s,
        update: false,
        reply: None,
    }
}

#[test]
fn streams_are_created_once_and_a_different_config_is_refused() {
    let mut a = Assignments::default();
    let orders = stream("APP", "ORD", r#"{"subjects":["o.>"]}"#, &["n1", "n2", "n3"]);
    assert_eq!(a.apply_command(assign(orders.clone())), MetaOutcome::Done);
    assert_eq!(
        a.apply_command(assign(orders.clone())),
        MetaOutcome::Unchanged
    );
    let other = stream("APP", "ORD", r#"{"subjects":["x"]}"#, &["n2"]);
    assert_eq!(
        a.apply_command(assign(other)),
        MetaOutcome::Refused(STREAM_NAME_IN_USE)
    );
    // The same name in another account is another stream.
    let elsewhere = stream("B", "ORD", r#"{"subjects":["x"]}"#, &["n2"]);
    assert_eq!(a.apply_command(assign(elsewhere)), MetaOutcome::Done);
    assert_eq!(a.stream("APP", "ORD"), Some(&orders));
    let on_n2: Vec<_> = a.streams_on("n2").map(|s| s.account.as_str()).collect();
    assert_eq!(on_n2, vec!["APP", "B"]);
    assert_eq!(a.streams_on("n3").count(), 1);
}

#[test]
fn updates_keep_consumers_and_creation_and_need_the_stream() {
    let mut a = Assignments::default();
    a.apply_command(assign(stream("APP", "ORD", "{}", &["n1"])));
    let c = consumer("D1", r#"{"durable_name":"D1"}"#);
    let add = MetaCommand::AssignConsumer {
        account: "APP".into(),
        stream: "ORD".into(),
        consumer: c.clone(),
    };
    assert_eq!(a.apply_command(add.clone()), MetaOutcome::Done);
    assert_eq!(a.apply_command(add), MetaOutcome::Unchanged);
    let mut scaled = stream("APP", "ORD", r#"{"num_replicas":3}"#, &["n1", "n2", "n3"]);
    scaled.created_ns = 99;
    let update = MetaCommand::AssignStream {
        stream: scaled,
        update: true,
        reply: None,
    };
    assert_eq!(a.apply_command(update), MetaOutcome::Done);
    let ord = a.stream("APP", "ORD").expect("stream");
    assert_eq!(ord.created_ns, 1);
    assert_eq!(ord.placement.peers.len(), 3);
    assert_eq!(ord.consumers.get("D1"), Some(&c));
    let missing = MetaCommand::AssignStream {
        stream: stream("APP", "NOPE", "{}", &["n1"]),
        update: true,
        reply: None,
    };
    assert_eq!(
        a.apply_command(missing),
        MetaOutcome::Refused(STREAM_NOT_FOUND)
    );
    assert!(a.stream("APP", "NOPE").is_none());
}

#[test]
fn removals_and_consumers_of_missing_streams() {
    let mut a = Assignments::default();
    a.apply_command(assign(stream("APP", "ORD", "{}", &["n1"])));
    let orphan = MetaCommand::AssignConsumer {
        account: "APP".into(),
        stream: "GONE".into(),
        consumer: consumer("D1", "{}"),
    };
    assert_eq!(
        a.apply_command(orphan),
        MetaOutcome::Refused(STREAM_NOT_FOUND)
    );
    let remove_c = MetaCommand::RemoveConsumer {
        account: "APP".into(),
        stream: "ORD".into(),
        name: "D1".into(),
    };
    assert_eq!(
        a.apply_command(remove_c),
        MetaOutcome::Refused(CONSUMER_NOT_FOUND)
    );
    let remove = MetaCommand::RemoveStream {
        account: "APP".into(),
        name: "ORD".into(),
    };
    assert_eq!(a.apply_command(remove.clone()), MetaOutcome::Done);
    assert_eq!(
        a.apply_command(remove),
        MetaOutcome::Refused(STREAM_NOT_FOUND)
    );
    assert_eq!(a, Assignments::default(), "no empty account is left behind");
}

#[test]
fn the_same_log_gives_the_same_catalog_and_snapshots_restore_it() {
    let log: Vec<Vec<u8>> = (0..40u32)
        .map(|i| {
            let name = format!("S{}", i % 7);
            let command = match i % 4 {
                0 | 1 => assign(stream(
                    "APP",
                    &name,
                    &format!("{{\"v\":{}}}", i % 3),
                    &["n1"],
                )),
                2 => MetaCommand::AssignConsumer {
                    account: "APP".into(),
                    stream: name,
                    consumer: consumer(&format!("C{i}"), "{}"),
                },
                _ => MetaCommand::RemoveStream {
                    account: "APP".into(),
                    name,
                },
            };
            serde_json::to_vec(&command).expect("encode")
        })
        .chain([b"not a command".to_vec()])
        .collect();
    let mut replicas = [
        Assignments::default(),
        Assignments::default(),
        Assignments::default(),
    ];
    let outcomes: Vec<Vec<Vec<u8>>> = replicas
        .iter_mut()
        .map(|r| log.iter().map(|c| r.apply(c)).collect())
        .collect();
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[1], outcomes[2]);
    assert_eq!(replicas[0], replicas[1]);
    assert_eq!(replicas[1], replicas[2]);
    let last: MetaOutcome =
        serde_json::from_slice(outcomes[0].last().expect("outcome")).expect("outcome");
    assert_eq!(last, MetaOutcome::Undecodable);
    let mut restored = Assignments::default();
    restored.restore(&replicas[0].snapshot()).expect("restore");
    assert_eq!(restored, replicas[0]);
    assert!(restored.restore(b"{").is_err());
}

#[test]
fn a_create_whose_subjects_overlap_another_stream_of_the_account_is_refused() {
    let mut a = Assignments::default();
    let orders = stream("APP", "ORD", r#"{"subjects":["o.>"]}"#, &["n1"]);
    assert_eq!(a.apply_command(assign(orders)), MetaOutcome::Done);
    let racing = stream("APP", "ORD2", r#"{"subjects":["o.new"]}"#, &["n2"]);
    assert_eq!(
        a.apply_command(assign(racing)),
        MetaOutcome::Refused(STREAM_SUBJECT_OVERLAP)
    );
    // Another account's streams do not collide.
    let elsewhere = stream("B", "ORD2", r#"{"subjects":["o.new"]}"#, &["n2"]);
    assert_eq!(a.apply_command(assign(elsewhere)), MetaOutcome::Done);
    assert!(a.stream("APP", "ORD2").is_none());
    // Nor may an update move a stream onto another's subjects; its own stay its own.
    let inv = stream("APP", "INV", r#"{"subjects":["i.>"]}"#, &["n1"]);
    assert_eq!(a.apply_command(assign(inv)), MetaOutcome::Done);
    let update = |config: &str| MetaCommand::AssignStream {
        stream: stream("APP", "INV", config, &["n1"]),
        update: true,
        reply: None,
    };
    assert_eq!(
        a.apply_command(update(r#"{"subjects":["i.>","o.x"]}"#)),
        MetaOutcome::Refused(STREAM_SUBJECT_OVERLAP)
    );
    assert_eq!(
        a.apply_command(update(r#"{"subjects":["i.>","j.>"]}"#)),
        MetaOutcome::Done
    );
}
