use super::*;

const GIB: u64 = 1 << 30;

fn server(name: &str, tags: &[&str], free: u64, ha: usize) -> Candidate {
    Candidate {
        name: name.into(),
        cluster: "cjs".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        online: true,
        free_file: free,
        free_memory: free / 2,
        ha_assets: ha,
    }
}

fn three() -> Vec<Candidate> {
    vec![
        server("n1", &["az:1", "disk:ssd"], 10 * GIB, 3),
        server("n2", &["az:2", "disk:ssd"], 30 * GIB, 1),
        server("n3", &["az:3", "disk:ssd"], 20 * GIB, 1),
    ]
}

fn request(replicas: usize) -> Request<'static> {
    Request {
        replicas,
        cluster: "cjs",
        tags: &[],
        storage: Storage::File,
        max_bytes: 0,
        existing: &[],
        ignore: &[],
        max_ha_assets: 0,
    }
}

fn keep_order(_: &mut Vec<&Candidate>) {}

fn place(req: &Request<'_>, servers: &[Candidate]) -> Result<Vec<String>, String> {
    select_peers(req, servers, keep_order).map_err(|e| e.to_string())
}

#[test]
fn an_r1_stream_goes_where_most_storage_is_free() {
    assert_eq!(place(&request(1), &three()), Ok(vec!["n2".to_string()]));
}

#[test]
fn replicated_streams_prefer_the_servers_with_fewest_assets_then_most_free() {
    assert_eq!(
        place(&request(2), &three()),
        Ok(vec!["n2".to_string(), "n3".to_string()])
    );
    assert_eq!(place(&request(3), &three()).map(|p| p.len()), Ok(3));
}

#[test]
fn more_replicas_than_servers_is_refused_with_no_reason() {
    assert_eq!(
        place(&request(4), &three()),
        Err("no suitable peers for placement".into())
    );
}

#[test]
fn tags_must_all_match_case_insensitively_and_misses_are_named() {
    let tags = ["AZ:3".to_string()];
    let req = Request {
        tags: &tags,
        ..request(1)
    };
    assert_eq!(place(&req, &three()), Ok(vec!["n3".to_string()]));
    let tags = ["az:9".to_string()];
    let req = Request {
        tags: &tags,
        ..request(1)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement, tags not matched ['az:9']".into())
    );
    let tags = ["az:1".to_string(), "disk:hdd".to_string()];
    let req = Request {
        tags: &tags,
        ..request(1)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement, tags not matched ['az:1', 'disk:hdd']".into())
    );
}

#[test]
fn storage_offline_and_excluded_servers_are_reasons_in_nats_order() {
    let mut servers = three();
    servers[0].online = false;
    servers[1].tags.push(EXCLUDE_PLACEMENT_TAG.into());
    let req = Request {
        max_bytes: 25 * GIB,
        ..request(1)
    };
    assert_eq!(
        place(&req, &servers),
        Err(
            "no suitable peers for placement, peer offline, exclude tag set, insufficient storage"
                .into()
        )
    );
    // Memory streams count against the memory limit.
    let req = Request {
        max_bytes: 12 * GIB,
        storage: Storage::Memory,
        ..request(1)
    };
    assert_eq!(place(&req, &three()), Ok(vec!["n2".to_string()]));
    let req = Request {
        max_bytes: 16 * GIB,
        storage: Storage::Memory,
        ..request(1)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement, insufficient storage".into())
    );
}

#[test]
fn another_cluster_no_cluster_and_no_servers() {
    let req = Request {
        cluster: "elsewhere",
        ..request(1)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement".into())
    );
    let req = Request {
        cluster: "",
        ..request(1)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement, miscellaneous issue".into())
    );
    assert_eq!(
        place(&request(1), &[]),
        Err("no suitable peers for placement, jetstream not enabled in cluster".into())
    );
}

#[test]
fn scaling_up_keeps_the_current_peers_first_and_removal_skips_the_ignored() {
    let existing = ["n1".to_string()];
    let req = Request {
        existing: &existing,
        ..request(3)
    };
    let peers = place(&req, &three()).expect("placed");
    assert_eq!(peers[0], "n1");
    assert_eq!(peers.len(), 3);
    let existing = ["n1".to_string(), "n3".to_string()];
    let req = Request {
        existing: &existing,
        ..request(1)
    };
    assert_eq!(place(&req, &three()), Ok(vec!["n1".to_string()]));
    let ignore = ["n2".to_string()];
    let req = Request {
        ignore: &ignore,
        ..request(1)
    };
    assert_eq!(place(&req, &three()), Ok(vec!["n3".to_string()]));
}

#[test]
fn the_ha_asset_limit_counts_the_meta_group() {
    let req = Request {
        max_ha_assets: 1,
        ..request(2)
    };
    // n1 holds 3 > 1; n2 and n3 hold exactly 1 (the meta group) and stay eligible.
    assert_eq!(
        place(&req, &three()),
        Ok(vec!["n2".to_string(), "n3".to_string()])
    );
    let req = Request {
        max_ha_assets: 1,
        ..request(3)
    };
    assert_eq!(
        place(&req, &three()),
        Err("no suitable peers for placement, miscellaneous issue".into())
    );
}
