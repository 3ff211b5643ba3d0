//! `copy_into_postgres` (`tandem migrate-store`): a SQLite store with every kind of record, copied
//! into an empty PostgreSQL database, reads back the same through the `Store` contract — and the
//! keys made before still verify, the orderings and counters continue, a full target is refused.

mod common;

use tandem_store::*;

struct Filled {
    dir: tempfile::TempDir,
    ring: KeyRing,
    key: String,
    key_id: String,
    project: String,
}

fn filled() -> Filled {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("tandem.sqlite")).unwrap();
    let ring = KeyRing::open(dir.path()).unwrap();
    let new = NewKey {
        name: "alice".into(),
        rpm: Some(60),
        budget: Some(5.0),
        ..Default::default()
    };
    let (rec, key) = create_key(&s, &ring, new, 10).unwrap();
    let admin = NewKey {
        name: "ops".into(),
        admin: true,
        ..Default::default()
    };
    create_key(&s, &ring, admin, 11).unwrap();
    let project = rec.project_id.clone().unwrap();
    for (i, id) in ["file-a", "file-b"].iter().enumerate() {
        s.insert_file(&FileRecord {
            id: id.to_string(),
            bytes: 10 + i as u64,
            created_at: 20 + i as u64,
            filename: format!("{id}.jsonl"),
            purpose: "batch".into(),
            expires_at: None,
            project_id: Some(project.clone()),
        })
        .unwrap();
    }
    for b in ["batch_1", "batch_2"] {
        let mut r = BatchRecord::new(b.into(), "/v1/chat/completions".into(), "file-a".into(), 30, 90);
        r.key_id = Some(rec.id.clone());
        r.project_id = Some(project.clone());
        s.insert_batch(&r).unwrap();
    }
    let lines: Vec<BatchLine> = (1..=3)
        .map(|i| BatchLine {
            line: i,
            custom_id: format!("c{i}"),
            body: "{\"x\":1}".into(),
        })
        .collect();
    s.start_batch("batch_1", "mini", &lines, 31).unwrap();
    let usage = UsageRecord {
        created_at: 40,
        request_id: "req_1".into(),
        batch_id: Some("batch_1".into()),
        line: Some(2),
        model: "m".into(),
        tier: "mini".into(),
        prompt_tokens: 7,
        cached_tokens: 1,
        completion_tokens: 3,
        cost: 0.25,
        key_id: Some(rec.id.clone()),
        latency_ms: 5,
        status: 200,
        project_id: Some(project.clone()),
    };
    let done = LineResult {
        line: 2,
        outcome: LineOutcome::Completed,
        json: "{\"ok\":true}".into(),
    };
    s.complete_line("batch_1", 2, &done, Some(&usage)).unwrap();
    s.insert_usage(&UsageRecord {
        request_id: "req_2".into(),
        batch_id: None,
        line: None,
        ..usage.clone()
    })
    .unwrap();
    s.insert_moderation(&ModerationEvent {
        created_at: 41,
        request_id: "req_3".into(),
        key_id: Some(rec.id.clone()),
        project_id: Some(project.clone()),
        model: "m".into(),
        direction: "input".into(),
        action: "flagged".into(),
        categories: vec!["violence".into(), "harassment".into()],
        text: None,
    })
    .unwrap();
    s.insert_response(&ResponseRecord {
        id: "resp_1".into(),
        project_id: Some(project.clone()),
        created_at: 50,
        expires_at: 5000,
        previous_response_id: None,
        object: "{}".into(),
        messages: "[]".into(),
        input_items: "[]".into(),
        pending: true,
    })
    .unwrap();
    Filled {
        dir,
        ring,
        key,
        key_id: rec.id,
        project,
    }
}

fn secret(dir: &std::path::Path) -> [u8; 32] {
    std::fs::read(dir.join("server.secret")).unwrap().try_into().unwrap()
}

#[test]
fn a_copied_store_reads_back_the_same_and_its_keys_still_verify() {
    let f = filled();
    let pg = common::TestPg::start();
    let copied = copy_into_postgres(&f.dir.path().join("tandem.sqlite"), &pg.url, &secret(f.dir.path())).unwrap();
    let n = |t: &str| copied.iter().find(|(x, _)| *x == t).unwrap().1;
    assert_eq!((n("projects"), n("keys"), n("batch_lines"), n("usage")), (2, 2, 3, 2));

    let a = SqliteStore::open(&f.dir.path().join("tandem.sqlite")).unwrap();
    let b = PgStore::open(&pg.url).unwrap();
    assert_eq!(a.list_projects().unwrap(), b.list_projects().unwrap());
    assert_eq!(a.list_keys().unwrap(), b.list_keys().unwrap());
    assert_eq!(a.key(&f.key_id).unwrap(), b.key(&f.key_id).unwrap());
    let p = Some(f.project.as_str());
    assert_eq!(
        a.list_files(p, None, None, 10, true).unwrap(),
        b.list_files(p, None, None, 10, true).unwrap()
    );
    assert_eq!(
        a.list_batches(p, None, 10).unwrap(),
        b.list_batches(p, None, 10).unwrap()
    );
    assert_eq!(a.line_results("batch_1").unwrap(), b.line_results("batch_1").unwrap());
    assert_eq!(b.pending_lines("batch_1").unwrap(), [1, 3]);
    assert_eq!(a.usage_since(0).unwrap(), b.usage_since(0).unwrap());
    assert_eq!(a.moderation_since(0).unwrap(), b.moderation_since(0).unwrap());
    assert_eq!(a.response("resp_1", 60).unwrap(), b.response("resp_1", 60).unwrap());

    // The shared secret is the file's: the key made against SQLite verifies against PostgreSQL.
    let ring = KeyRing::from_secret(b.server_secret(&[0; 32]).unwrap());
    let (_, digest) = b.key(&f.key_id).unwrap().unwrap();
    assert!(ring.verify(&f.key, &digest) && f.ring.verify(&f.key, &digest));
    // Orderings continue after the copied rows: a new batch lists first.
    b.insert_batch(&BatchRecord {
        project_id: Some(f.project.clone()),
        ..BatchRecord::new(
            "batch_3".into(),
            "/v1/chat/completions".into(),
            "file-a".into(),
            99,
            200,
        )
    })
    .unwrap();
    assert_eq!(b.list_batches(p, None, 1).unwrap()[0].id, "batch_3");
    b.insert_usage(&UsageRecord {
        request_id: "req_new".into(),
        ..a.usage_since(0).unwrap()[1].clone()
    })
    .unwrap();
    assert_eq!(b.usage_since(0).unwrap().last().unwrap().request_id, "req_new");

    // Copying into a database that holds a store is refused, and changes nothing.
    let e = copy_into_postgres(&f.dir.path().join("tandem.sqlite"), &pg.url, &secret(f.dir.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("already holds"), "{e}");
    assert_eq!(b.list_keys().unwrap().len(), 2);
}
